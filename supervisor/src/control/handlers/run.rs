//! `run`: a `cli` run as the caller, with the caller's personal secrets and
//! no one else's. The local backend runs it here; the daemon queues it in
//! its runner, where the concurrency limits apply.

use anyhow::Result;
use serde_json::json;
use supervisor_config::TriggerKind;
use supervisor_protocol::Reply;
use supervisor_store::{RunRecord, RunStatus};

use crate::control::{Caller, authz, document};
#[cfg(doc)]
use crate::run::Outcome;
use crate::run::{Engine, RunRequest};

/// The run the caller asked for: trigger `cli`, the caller as initiator.
pub fn request(
    engine: &Engine,
    caller: &Caller,
    agent: String,
    prompt: Option<String>,
) -> Result<RunRequest> {
    let me = authz::start_run(caller, &engine.config)?;
    Ok(RunRequest {
        agent,
        kind: TriggerKind::Cli,
        initiator: Some(me.name.clone()),
        prompt,
        source: json!({ "cli": { "user": caller.user } }),
    })
}

/// How the run ended, with the status `supervisor run` exits with: the
/// agent's own (`exit_code`, from [`Outcome::exit_code`]), or 128 + the
/// signal that interrupted the run.
pub fn ended(record: &RunRecord, exit_code: i32, interrupted_by: i32) -> Result<Reply> {
    let exit_code = match record.status {
        RunStatus::Interrupted => 128 + interrupted_by,
        _ => exit_code,
    };
    Ok(Reply::RunEnded {
        run: document(record)?,
        exit_code: exit_code.clamp(0, 255),
    })
}
