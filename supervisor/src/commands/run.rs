//! `supervisor run` and `supervisor scope`: a run as you, or what one would
//! receive. Either mode: the run happens in this process (local) or in the
//! daemon, and this process shows its redacted output and exits with its
//! status.

use std::io::IsTerminal;

use anyhow::Result;
use serde_json::json;
use supervisor_config::TriggerKind;
use supervisor_protocol::{Reply, Request, ScopeFor};
use supervisor_store::RunStatus;

use super::print::{self, Table};
use super::views::{InjectedView, RunView, read, read_all, unexpected};
use crate::backend::Backend;
use crate::cli::{RunArgs, ScopeArgs};

/// `supervisor run AGENT`: returns the agent's exit status.
pub fn run(backend: &mut Backend, args: &RunArgs) -> Result<u8> {
    if args.dry_run {
        let reply = backend.call(Request::DryRun {
            agent: args.agent.clone(),
        })?;
        return show(reply, &args.agent, TriggerKind::Cli, true, args.json).map(|()| 0);
    }
    let (mut doc, exit_code) = match backend.run(args.agent.clone(), args.prompt.clone())? {
        Reply::RunEnded { run, exit_code } => (run, exit_code),
        other => return Err(unexpected(other)),
    };
    let record: RunView = read(&doc, "run")?;
    report_end(backend, &record, exit_code);
    if args.json {
        // The status this process exits with, which a run stopped by a
        // signal has only here.
        doc["exit_code"] = json!(exit_code);
        print::json(&doc)?;
    }
    Ok(exit_code.clamp(0, 255) as u8)
}

/// Says on stderr how the run ended. A run that did not end on its own
/// (timeout, interrupt, a signal, a leak) is always said, terminal or not:
/// a script's log then shows why `supervisor run` exited 124 or 130. An
/// ordinary end is said on a terminal only; the agent's own exit status
/// speaks for it.
fn report_end(backend: &Backend, record: &RunView, exit_code: i32) {
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
        return;
    }
    if let Some(error) = record.detail["error"].as_str() {
        eprintln!("error: {error}");
        return;
    }
    let ordinary = matches!(
        record.status(),
        Some(RunStatus::Succeeded | RunStatus::Failed { .. })
    );
    if ordinary && !std::io::stderr().is_terminal() {
        return;
    }
    let via = match backend.socket() {
        Some(socket) => format!(" (by the daemon on {})", socket.display()),
        None => String::new(),
    };
    let after = record
        .duration()
        .map(|d| format!(" after {d}"))
        .unwrap_or_default();
    eprintln!(
        "supervisor: run {} {}{after}, exit status {exit_code}{via}",
        record.id,
        record.outcome(),
    );
}

/// `supervisor scope AGENT [--trigger KIND] [--member NAME | --nobody]`.
pub fn scope(backend: &mut Backend, args: &ScopeArgs) -> Result<u8> {
    let automated = matches!(args.trigger, TriggerKind::Cron | TriggerKind::Webhook);
    if args.member.is_some() && automated {
        eprintln!(
            "note: `{}` runs have no user behind them; --member is ignored",
            args.trigger
        );
    }
    let member = match (&args.member, args.nobody) {
        (Some(name), _) => ScopeFor::Member(name.clone()),
        (None, true) => ScopeFor::Nobody,
        (None, false) => ScopeFor::Caller,
    };
    let you = member == ScopeFor::Caller;
    let reply = backend.call(Request::Scope {
        agent: args.agent.clone(),
        trigger: args.trigger,
        member,
    })?;
    show(reply, &args.agent, args.trigger, you, args.json).map(|()| 0)
}

/// What a run would receive: a title saying whose run (`you`: the caller's,
/// assumed when no member was named), then the table; or one JSON document.
fn show(reply: Reply, agent: &str, trigger: TriggerKind, you: bool, json: bool) -> Result<()> {
    let (member, secrets, missing) = match reply {
        Reply::Scope {
            member,
            secrets,
            missing,
        } => (member, secrets, missing),
        other => return Err(unexpected(other)),
    };
    for name in &missing {
        eprintln!("note: `{name}` is on the agent's allow-list but not in scope for this run");
    }
    if json {
        return print::json(&json!({
            "agent": agent,
            "trigger": trigger,
            "member": member,
            "secrets": secrets,
            "missing": missing,
        }));
    }
    let whose = match (&member, you) {
        (Some(m), true) => format!("by you (member `{m}`)"),
        (Some(m), false) => format!("by member `{m}`"),
        (None, _) => "with nobody behind it (team secrets only)".to_owned(),
    };
    let secrets: Vec<InjectedView> = read_all(&secrets, "secret")?;
    if secrets.is_empty() {
        println!(
            "A `{trigger}` run of `{agent}` {whose} would receive no secrets: it starts with its base environment only."
        );
        return Ok(());
    }
    println!("A `{trigger}` run of `{agent}` {whose} would receive:");
    let mut table = Table::new(&["NAME", "SCOPE", "OWNER", "VERSION", "NOTE"]);
    for s in &secrets {
        table.row(vec![
            s.name.clone(),
            s.scope.clone(),
            s.owner.clone().unwrap_or_else(|| "-".into()),
            s.version.to_string(),
            s.shadows
                .map(|v| format!("overrides team version {v}"))
                .unwrap_or_default(),
        ]);
    }
    table.print();
    Ok(())
}
