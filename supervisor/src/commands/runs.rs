//! `supervisor runs list|show|logs`: your runs (admins: all), their
//! records and redacted logs.

use anyhow::Result;
use supervisor_protocol::{Reply, Request};

use super::print::{self, Table};
use super::views::{RunView, read, read_all, unexpected};
use crate::backend::Backend;
use crate::when;

pub fn list(backend: &mut Backend, json: bool, agent: Option<&str>, limit: usize) -> Result<()> {
    let runs = match backend.call(Request::RunsList {
        agent: agent.map(str::to_owned),
        limit,
    })? {
        Reply::Runs { runs } => runs,
        other => return Err(unexpected(other)),
    };
    if json {
        return print::json(&runs);
    }
    if runs.is_empty() {
        println!("(no runs yet: `supervisor run AGENT` starts one)");
        return Ok(());
    }
    let mut table = Table::new(&[
        "ID", "AGENT", "TRIGGER", "MEMBER", "STARTED", "STATUS", "EXIT", "DURATION",
    ]);
    for r in read_all::<RunView>(&runs, "run")? {
        table.row(vec![
            r.id.clone(),
            r.agent.clone(),
            r.trigger.clone(),
            r.member.clone().unwrap_or_else(|| "-".into()),
            when::local(r.started_at),
            r.status.clone(),
            r.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
            r.duration().unwrap_or_else(|| "-".into()),
        ]);
    }
    table.print();
    Ok(())
}

pub fn show(backend: &mut Backend, id: &str, json: bool) -> Result<()> {
    let doc = match backend.call(Request::RunsShow { id: id.to_owned() })? {
        Reply::Run { run } => run,
        other => return Err(unexpected(other)),
    };
    if json {
        return print::json(&doc);
    }
    let r: RunView = read(&doc, "run")?;
    println!("run        {}", r.id);
    println!("agent      {}", r.agent);
    println!("trigger    {}", r.trigger);
    println!(
        "member     {}",
        r.member.as_deref().unwrap_or("none (team secrets only)")
    );
    println!("status     {}", r.status);
    if let Some(code) = r.exit_code {
        println!("exit code  {code}");
    }
    if let Some(signal) = r.signal {
        println!("signal     {signal}");
    }
    if let Some(reason) = &r.reason {
        println!("reason     {reason}");
    }
    if let Some(secret) = &r.secret {
        println!(
            "reason     its output showed the value of {secret} (redacted); `on_leak = \"fail\"` stopped it"
        );
    }
    println!("started    {}", when::local(r.started_at));
    println!(
        "ended      {}",
        r.ended_at.map(when::local).unwrap_or_else(|| "-".into())
    );
    if let Some(d) = r.duration() {
        println!("duration   {d}");
    }
    println!(
        "log        {} bytes, {} redaction(s)",
        r.log_bytes, r.redactions
    );
    print_detail(&r.detail);
    Ok(())
}

/// What the run received and what its output showed, from `detail`.
fn print_detail(detail: &serde_json::Value) {
    if let Some(list) = detail["injected"].as_array() {
        println!("secrets    {}", if list.is_empty() { "none" } else { "" });
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
    if let Some(list) = detail["leaks"].as_array().filter(|l| !l.is_empty()) {
        let shown: Vec<String> = list
            .iter()
            .map(|l| format!("{} ({}x)", l["name"].as_str().unwrap_or("?"), l["hits"]))
            .collect();
        println!("leaked     {} (values redacted)", shown.join(", "));
    }
    for (key, label) in [
        ("missing", "not in scope"),
        ("not_redacted", "too short to redact"),
    ] {
        if let Some(list) = detail[key].as_array().filter(|l| !l.is_empty()) {
            let names: Vec<&str> = list.iter().filter_map(|v| v.as_str()).collect();
            println!("{label:<10} {}", names.join(", "));
        }
    }
    for key in ["error", "log_error"] {
        if let Some(e) = detail[key].as_str() {
            println!("{key:<10} {e}");
        }
    }
    for note in detail["notes"].as_array().into_iter().flatten() {
        if let Some(n) = note.as_str() {
            println!("note       {n}");
        }
    }
}

/// The log streams to stdout as it arrives; with `json`, it is gathered
/// into one document.
pub fn logs(backend: &mut Backend, id: &str, json: bool) -> Result<()> {
    if json {
        let (reply, bytes) = backend.call_gathered(Request::RunsLogs { id: id.to_owned() })?;
        let Reply::Log { id, found } = reply else {
            return Err(unexpected(reply));
        };
        let log = found.then(|| String::from_utf8_lossy(&bytes).into_owned());
        return print::json(&serde_json::json!({ "id": id, "log": log }));
    }
    match backend.call(Request::RunsLogs { id: id.to_owned() })? {
        Reply::Log { found: true, .. } => Ok(()),
        Reply::Log { id, found: false } => {
            eprintln!("run {id} has no log (it never started an agent)");
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}
