//! `supervisor runs list|show|logs`.

use std::io::Write;

use anyhow::{Context as _, Result};
use supervisor_store::{RunFilter, RunRecord, RunStatus, format_time};

use crate::context::Context;
use crate::run::log_path;

pub fn list(ctx: &Context, json: bool, agent: Option<&str>, limit: usize) -> Result<()> {
    let store = ctx.store(false)?;
    let runs = store.list_runs(&RunFilter {
        agent,
        limit: Some(limit),
    })?;
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
    for r in &runs {
        println!(
            "{:<36}   {:<16} {:<8} {:<10} {:<24} {:>9}",
            r.id,
            r.agent,
            r.trigger,
            r.member.as_deref().unwrap_or("-"),
            outcome(&r.status),
            duration(r)
        );
    }
    Ok(())
}

fn outcome(s: &RunStatus) -> String {
    match s {
        RunStatus::Failed { code } => format!("failed (exit {code})"),
        RunStatus::Killed { signal } => format!("killed (signal {signal})"),
        other => other.label().to_owned(),
    }
}

fn duration(r: &RunRecord) -> String {
    match r.ended_at {
        Some(end) => format!(
            "{:.1}s",
            (end - r.started_at).num_milliseconds() as f64 / 1000.0
        ),
        None => "-".into(),
    }
}

pub fn show(ctx: &Context, id: &str, json: bool) -> Result<()> {
    let store = ctx.store(false)?;
    let r = store.get_run(id)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("run       {}", r.id);
    println!("agent     {}", r.agent);
    println!("trigger   {}", r.trigger);
    println!(
        "member    {}",
        r.member.as_deref().unwrap_or("none (team secrets only)")
    );
    println!("outcome   {}", outcome(&r.status));
    match &r.status {
        RunStatus::Rejected { reason } => println!("reason    {reason}"),
        RunStatus::Leaked { secret } => println!(
            "reason    its output showed the value of {secret} (redacted); on_leak = \"fail\" stopped it"
        ),
        _ => {}
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

pub fn logs(ctx: &Context, id: &str) -> Result<()> {
    let store = ctx.store(false)?;
    let r = store.get_run(id)?;
    let path = log_path(&ctx.state_dir, &r.id);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("run {} has no log (it never started an agent)", r.id);
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    std::io::stdout().write_all(&bytes)?;
    Ok(())
}
