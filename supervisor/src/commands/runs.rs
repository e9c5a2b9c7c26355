//! `supervisor runs list|show|logs`: your runs (admins: all), their
//! records and redacted logs.

use anyhow::Result;
use supervisor_protocol::{Reply, Request};
use supervisor_store::format_time;

use super::views::{RunView, read, read_all, unexpected};
use crate::backend::Backend;

pub fn list(backend: &mut Backend, json: bool, agent: Option<&str>, limit: usize) -> Result<()> {
    let runs = match backend.call(Request::RunsList {
        agent: agent.map(str::to_owned),
        limit,
    })? {
        Reply::Runs { runs } => runs,
        other => return Err(unexpected(other)),
    };
    if json {
        println!("{}", serde_json::to_string(&runs)?);
        return Ok(());
    }
    if runs.is_empty() {
        println!("(no runs yet: `supervisor run AGENT` starts one)");
        return Ok(());
    }
    println!(
        "{:<36}   {:<16} {:<8} {:<10} {:<24} {:>9}",
        "ID", "AGENT", "TRIGGER", "MEMBER", "OUTCOME", "DURATION"
    );
    for r in read_all::<RunView>(&runs, "run")? {
        println!(
            "{:<36}   {:<16} {:<8} {:<10} {:<24} {:>9}",
            r.id,
            r.agent,
            r.trigger,
            r.member.as_deref().unwrap_or("-"),
            r.outcome(),
            r.seconds()
                .map(|s| format!("{s:.1}s"))
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

pub fn show(backend: &mut Backend, id: &str, json: bool) -> Result<()> {
    let doc = match backend.call(Request::RunsShow { id: id.to_owned() })? {
        Reply::Run { run } => run,
        other => return Err(unexpected(other)),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let r: RunView = read(&doc, "run")?;
    println!("run       {}", r.id);
    println!("agent     {}", r.agent);
    println!("trigger   {}", r.trigger);
    println!(
        "member    {}",
        r.member.as_deref().unwrap_or("none (team secrets only)")
    );
    println!("outcome   {}", r.outcome());
    if let Some(reason) = &r.reason {
        println!("reason    {reason}");
    }
    if let Some(secret) = &r.secret {
        println!(
            "reason    its output showed the value of {secret} (redacted); on_leak = \"fail\" stopped it"
        );
    }
    println!("started   {}", format_time(r.started_at));
    println!(
        "ended     {}",
        r.ended_at.map(format_time).unwrap_or_else(|| "-".into())
    );
    println!(
        "log       {} bytes, {} redaction(s)",
        r.log_bytes, r.redactions
    );
    if let Some(list) = r.detail["injected"].as_array() {
        println!("secrets   {}", if list.is_empty() { "none" } else { "" });
        for s in list {
            let shadows = s["shadows"]
                .as_i64()
                .map(|v| format!(", overrides team v{v}"))
                .unwrap_or_default();
            println!(
                "  {} ({}{}, v{}{})",
                s["name"].as_str().unwrap_or("?"),
                s["scope"].as_str().unwrap_or("?"),
                s["owner"]
                    .as_str()
                    .map(|o| format!(" of {o}"))
                    .unwrap_or_default(),
                s["version"],
                shadows
            );
        }
    }
    if let Some(list) = r.detail["leaks"].as_array().filter(|l| !l.is_empty()) {
        let shown: Vec<String> = list
            .iter()
            .map(|l| format!("{} ({}x)", l["name"].as_str().unwrap_or("?"), l["hits"]))
            .collect();
        println!("leaked    {} (values redacted)", shown.join(", "));
    }
    for (key, label) in [
        ("missing", "not in scope"),
        ("not_redacted", "too short to redact"),
    ] {
        if let Some(list) = r.detail[key].as_array().filter(|l| !l.is_empty()) {
            let names: Vec<&str> = list.iter().filter_map(|v| v.as_str()).collect();
            println!("{label:<9} {}", names.join(", "));
        }
    }
    for key in ["error", "log_error"] {
        if let Some(e) = r.detail[key].as_str() {
            println!("{key:<9} {e}");
        }
    }
    Ok(())
}

/// The log streams to stdout as it arrives.
pub fn logs(backend: &mut Backend, id: &str) -> Result<()> {
    match backend.call(Request::RunsLogs { id: id.to_owned() })? {
        Reply::Log { found: true, .. } => Ok(()),
        Reply::Log { id, found: false } => {
            eprintln!("run {id} has no log (it never started an agent)");
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}
