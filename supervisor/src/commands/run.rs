//! `supervisor run` and `supervisor scope`: a local run, or what one would receive.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde_json::json;
use supervisor_config::TriggerKind;
use supervisor_store::RunStatus;

use crate::cli::{RunArgs, ScopeArgs};
use crate::context::Context;
use crate::fail::Failure;
use crate::run::{Echo, Engine, RunRequest};
use crate::sandbox::{Host, Role};
use crate::scope::{Injection, Refusal};

fn engine(ctx: &Context, unlocked: bool, host: Host) -> Result<Engine> {
    Ok(Engine {
        config: Arc::new(ctx.config.clone()),
        state_dir: ctx.state_dir.clone(),
        store: Arc::new(Mutex::new(ctx.store(unlocked)?)),
        host: Arc::new(host),
    })
}

/// `supervisor run AGENT`: returns the agent's exit status.
pub fn run(ctx: &Context, args: &RunArgs) -> Result<u8> {
    let me = ctx.require_me()?.name.clone();
    let req = RunRequest {
        agent: args.agent.clone(),
        kind: TriggerKind::Cli,
        initiator: Some(me),
        prompt: args.prompt.clone(),
        source: json!({ "cli": { "user": crate::context::os_user()? } }),
    };
    if args.dry_run {
        let engine = engine(ctx, false, Host::inert())?;
        let (_, decision) = engine.plan(&req)?;
        return show(decision, args.json).map(|()| 0);
    }
    // One thread: the agent is spawned from this long-lived thread, so its
    // parent-death signal is tied to this process's life.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Listen before anything is recorded or started: a Ctrl-C that killed
    // the process in between would leave the run marked running, its home
    // on disk and what the agent started alive.
    let caught = Arc::new(AtomicI32::new(libc::SIGINT));
    let stop = {
        let _entered = runtime.enter();
        interrupted(caught.clone())?
    };
    let mut host = Host::probe(&ctx.config, &ctx.state_dir, &ctx.key_file, Role::Run);
    if host.cgroups.root().is_none() {
        // One run per process: whatever the agent leaves behind becomes ours
        // to find and kill, even after a double fork.
        host.adopts_orphans = crate::spawn::adopt_orphans().is_ok();
    }
    let engine = engine(ctx, true, host)?;
    {
        let mut store = engine.store.lock().unwrap_or_else(|p| p.into_inner());
        let lost =
            crate::run::recover::recover(&mut store, &engine.state_dir, &engine.host.cgroups)?;
        if !lost.is_empty() {
            eprintln!(
                "note: {} run(s) of a supervisor that died are now marked lost",
                lost.len()
            );
        }
    }
    let outcome = runtime.block_on(engine.execute(req, Echo::Terminal, stop, |_| {}))?;
    let record = &outcome.record;
    if let RunStatus::Rejected { reason } = &record.status {
        eprintln!("error: {reason}");
        eprintln!(
            "hint: `supervisor scope {} --trigger cli` shows what runs receive",
            record.agent
        );
    } else if std::io::stderr().is_terminal() {
        let secs = record
            .ended_at
            .map(|e| (e - record.started_at).num_milliseconds() as f64 / 1000.0)
            .unwrap_or_default();
        eprintln!(
            "supervisor: run {} {} in {secs:.1}s",
            record.id,
            describe(&record.status)
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(record)?);
    }
    let code = match record.status {
        // As a shell reports it: 128 + the signal that stopped us.
        RunStatus::Interrupted => 128 + caught.load(Ordering::SeqCst),
        _ => outcome.exit_code(),
    };
    Ok(code.clamp(0, 255) as u8)
}

fn describe(status: &RunStatus) -> String {
    match status {
        RunStatus::Failed { code } => format!("failed with exit code {code}"),
        RunStatus::Killed { signal } => format!("was killed by signal {signal}"),
        RunStatus::TimedOut => "timed out".into(),
        other => other.label().replace('_', " "),
    }
}

/// Catches SIGINT and SIGTERM from now on; the future resolves on the
/// first and leaves its number in `caught`. Needs a runtime context.
fn interrupted(caught: Arc<AtomicI32>) -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        let signal = tokio::select! {
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
        };
        caught.store(signal, Ordering::SeqCst);
    })
}

/// `supervisor scope AGENT --trigger KIND [--member NAME]`.
pub fn scope(ctx: &Context, args: &ScopeArgs) -> Result<u8> {
    if let Some(m) = &args.member
        && ctx.config.member(m).is_none()
    {
        return Err(Failure::new(format!("no member named `{m}` in the config")).into());
    }
    if args.member.is_some() && matches!(args.trigger, TriggerKind::Cron | TriggerKind::Webhook) {
        eprintln!(
            "note: `{}` runs have no user behind them; --member is ignored",
            args.trigger
        );
    }
    let engine = engine(ctx, false, Host::inert())?;
    let req = RunRequest {
        agent: args.agent.clone(),
        kind: args.trigger,
        initiator: args.member.clone(),
        prompt: None,
        source: json!({}),
    };
    let (_, decision) = engine.plan(&req)?;
    show(decision, args.json).map(|()| 0)
}

fn show(decision: Result<Injection, Refusal>, json: bool) -> Result<()> {
    let injection = decision.map_err(|r| Failure::new(r.to_string()))?;
    for name in &injection.missing {
        eprintln!("note: `{name}` is on the agent's allow-list but not in scope for this run");
    }
    if json {
        println!("{}", serde_json::to_string(&injection.secrets)?);
        return Ok(());
    }
    if injection.secrets.is_empty() {
        println!("(no secrets: the run would start with its base environment only)");
        return Ok(());
    }
    let width = injection
        .secrets
        .iter()
        .map(|s| s.name.as_str().len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<width$}   SCOPE      OWNER      VERSION   NOTE", "NAME");
    for s in &injection.secrets {
        let note = s
            .shadows
            .map(|v| format!("overrides team version {v}"))
            .unwrap_or_default();
        let line = format!(
            "{:<width$}   {:<10} {:<10} {:<9} {}",
            s.name,
            s.scope.kind(),
            s.owner.as_deref().unwrap_or("-"),
            s.version,
            note
        );
        println!("{}", line.trim_end());
    }
    Ok(())
}
