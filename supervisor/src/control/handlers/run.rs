//! `run`: a `cli` run as the caller, with the caller's personal secrets and
//! no one else's. The local backend runs it here; the daemon queues it in
//! its runner, where the concurrency limits apply.

use anyhow::Result;
use supervisor_protocol::Reply;
use supervisor_store::{RunRecord, RunStatus};
use supervisor_triggers::TriggerEvent;

use crate::control::{Caller, authz, run_document};
use crate::fail::Failure;
use crate::run::Engine;
#[cfg(doc)]
use crate::run::Outcome;

/// The run the caller asked for: trigger `cli`, the caller as initiator.
pub fn request(
    engine: &Engine,
    caller: &Caller,
    agent: String,
    prompt: Option<String>,
) -> Result<TriggerEvent> {
    let me = authz::start_run(caller, &engine.config)?;
    // Known before anything is queued, so that the answer says so (a run
    // of no agent has no record to answer with).
    if engine.config.agent(&agent).is_none() {
        return Err(
            Failure::new(format!("no agent named `{agent}` in the config"))
                .hint(format!("the agents are: {}", engine.agent_names()))
                .into(),
        );
    }
    Ok(TriggerEvent::cli(
        agent,
        me.name.clone(),
        &caller.user,
        prompt,
    ))
}

/// How the run ended, with the status `supervisor run` exits with: the
/// agent's own (`exit_code`, from [`Outcome::exit_code`]), or 128 + the
/// signal that stopped the run: `signal` is the one the caller sent (a run
/// they stopped before it started exits so too), else a shutdown's SIGTERM.
pub fn ended(record: &RunRecord, exit_code: i32, signal: Option<i32>) -> Result<Reply> {
    let exit_code = match (&record.status, signal) {
        (RunStatus::Interrupted, _) => 128 + signal.unwrap_or(libc::SIGTERM),
        (RunStatus::Rejected { .. }, Some(signal)) => 128 + signal,
        _ => exit_code,
    };
    Ok(Reply::RunEnded {
        run: run_document(record)?,
        exit_code: exit_code.clamp(0, 255),
    })
}
