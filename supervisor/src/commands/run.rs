//! `supervisor run` and `supervisor scope`: a run as you, or what one would
//! receive. Either mode: the run happens in this process (local) or in the
//! daemon, and this process shows its redacted output and exits with its
//! status.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use serde_json::Value;
use supervisor_config::TriggerKind;
use supervisor_protocol::{Reply, Request};

use super::views::{InjectedView, RunView, read, read_all, unexpected};
use crate::backend::Backend;
use crate::cli::{RunArgs, ScopeArgs};

/// `supervisor run AGENT`: returns the agent's exit status.
pub fn run(backend: &mut Backend, args: &RunArgs) -> Result<u8> {
    if args.dry_run {
        let reply = backend.call(Request::DryRun {
            agent: args.agent.clone(),
        })?;
        return show(reply, args.json).map(|()| 0);
    }
    let (doc, exit_code) = match backend.run(args.agent.clone(), args.prompt.clone())? {
        Reply::RunEnded { run, exit_code } => (run, exit_code),
        other => return Err(unexpected(other)),
    };
    let record: RunView = read(&doc, "run")?;
    if let Some(reason) = &record.reason {
        eprintln!("error: {reason}");
        // Refusals of the scope rule, not of a busy daemon or a Ctrl-C.
        let busy = reason.starts_with("the run queue is full")
            || reason == "the supervisor is shutting down";
        if !busy && exit_code <= 128 {
            eprintln!(
                "hint: `supervisor scope {} --trigger cli` shows what runs receive",
                record.agent
            );
        }
    } else if let Some(error) = record.detail["error"].as_str() {
        eprintln!("error: {error}");
    } else if std::io::stderr().is_terminal() {
        let via = match backend.socket() {
            Some(socket) => format!(" (by the daemon on {})", socket.display()),
            None => String::new(),
        };
        eprintln!(
            "supervisor: run {} {} in {:.1}s{via}",
            record.id,
            describe(&record),
            record.seconds().unwrap_or_default()
        );
    }
    if args.json {
        // A closed stdout must not hide the agent's status behind a panic.
        let _ = writeln!(std::io::stdout(), "{}", serde_json::to_string(&doc)?);
    }
    Ok(exit_code.clamp(0, 255) as u8)
}

fn describe(r: &RunView) -> String {
    match (r.status.as_str(), r.code, r.signal) {
        ("failed", Some(code), _) => format!("failed with exit code {code}"),
        ("killed", _, Some(signal)) => format!("was killed by signal {signal}"),
        (other, _, _) => other.replace('_', " "),
    }
}

/// `supervisor scope AGENT --trigger KIND [--member NAME]`.
pub fn scope(backend: &mut Backend, args: &ScopeArgs) -> Result<u8> {
    if args.member.is_some() && matches!(args.trigger, TriggerKind::Cron | TriggerKind::Webhook) {
        eprintln!(
            "note: `{}` runs have no user behind them; --member is ignored",
            args.trigger
        );
    }
    let reply = backend.call(Request::Scope {
        agent: args.agent.clone(),
        trigger: args.trigger,
        member: args.member.clone(),
    })?;
    show(reply, args.json).map(|()| 0)
}

fn show(reply: Reply, json: bool) -> Result<()> {
    let (secrets, missing): (Vec<Value>, Vec<String>) = match reply {
        Reply::Scope { secrets, missing } => (secrets, missing),
        other => return Err(unexpected(other)),
    };
    for name in &missing {
        eprintln!("note: `{name}` is on the agent's allow-list but not in scope for this run");
    }
    if json {
        println!("{}", serde_json::to_string(&secrets)?);
        return Ok(());
    }
    let secrets: Vec<InjectedView> = read_all(&secrets, "secret")?;
    if secrets.is_empty() {
        println!("(no secrets: the run would start with its base environment only)");
        return Ok(());
    }
    let width = secrets
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<width$}   SCOPE      OWNER      VERSION   NOTE", "NAME");
    for s in &secrets {
        let note = s
            .shadows
            .map(|v| format!("overrides team version {v}"))
            .unwrap_or_default();
        let line = format!(
            "{:<width$}   {:<10} {:<10} {:<9} {}",
            s.name,
            s.scope,
            s.owner.as_deref().unwrap_or("-"),
            s.version,
            note
        );
        println!("{}", line.trim_end());
    }
    Ok(())
}
