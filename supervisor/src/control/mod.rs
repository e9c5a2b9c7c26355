//! The requests the CLI makes of the supervisor (secrets, scope, runs,
//! audit), executed in one place whichever mode asked: in this process in
//! local mode, in the daemon for a client of the control socket. Who asks
//! is a [`Caller`]; what they may do is decided in [`authz`] alone.
//!
//! A `run` is the one request that is not answered here at once: its
//! caller-side rules are in [`handlers::run`], and the local backend or the
//! daemon's runner executes it.

pub mod authz;
mod caller;
pub mod handlers;

use std::sync::MutexGuard;

use anyhow::{Result, anyhow};
use supervisor_protocol::{OutputStream, Reply, Request};
use supervisor_store::{RunRecord, Store};

pub use caller::Caller;

use crate::run::Engine;

/// Where a request's output goes (a stored run log): the terminal in
/// local mode, the socket in the daemon.
pub trait Output {
    fn output(&mut self, stream: OutputStream, bytes: &[u8]);
}

/// Executes one request for `caller`. Blocks on the store: the daemon
/// calls it off its async threads.
pub fn handle(
    engine: &Engine,
    caller: &Caller,
    request: Request,
    out: &mut dyn Output,
) -> Result<Reply> {
    use handlers::*;
    match request {
        Request::SecretCheck { target, exists } => {
            secret_check::handle(engine, caller, &target, exists)
        }
        Request::SecretWrite {
            target,
            update,
            description,
            value,
        } => secret_write::handle(engine, caller, &target, update, description, value),
        Request::SecretDelete { target } => secret_delete::handle(engine, caller, &target),
        Request::SecretList { all } => secret_list::handle(engine, caller, all),
        Request::Scope {
            agent,
            trigger,
            member,
        } => scope::handle(engine, caller, agent, trigger, member),
        Request::DryRun { agent } => scope::dry_run(engine, caller, agent),
        Request::RunsList { agent, limit } => runs_list::handle(engine, caller, agent, limit),
        Request::RunsShow { id } => runs_show::handle(engine, caller, &id),
        Request::RunsLogs { id } => runs_logs::handle(engine, caller, &id, out),
        Request::AuditList { limit } => audit_list::handle(engine, caller, limit),
        Request::AuditVerify => audit_verify::handle(engine, caller),
        Request::Run { .. } => Err(anyhow!("a run is streamed, not answered at once")),
    }
}

/// Whether a request needs the master key (in local mode, where this
/// process opens the store itself): whatever the audit log records is
/// written with a key derived from it, and checking the log needs it too.
pub fn needs_key(request: &Request) -> bool {
    matches!(
        request,
        Request::SecretCheck { .. }
            | Request::SecretWrite { .. }
            | Request::SecretDelete { .. }
            | Request::AuditVerify
            | Request::Run { .. }
    )
}

/// The store, for the handlers.
fn store(engine: &Engine) -> MutexGuard<'_, Store> {
    // A panic while holding the lock cannot leave SQLite half-written
    // (transactions roll back), so a poisoned lock is still usable.
    engine.store.lock().unwrap_or_else(|p| p.into_inner())
}

/// A record as the JSON document `--json` prints.
fn document(record: &impl serde::Serialize) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(record)?)
}

/// A run as the JSON document `--json` prints: the record, with every
/// field of its status present (`null` when this status has none), and
/// the exit status `supervisor run` gives it, as a number (`null` while it
/// runs or when it was stopped from outside).
pub fn run_document(record: &RunRecord) -> Result<serde_json::Value> {
    let mut doc = document(record)?;
    if let Some(fields) = doc.as_object_mut() {
        for key in ["code", "signal", "reason", "secret"] {
            fields.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    doc["exit_code"] = serde_json::json!(crate::wording::exit_code(&record.status));
    Ok(doc)
}
