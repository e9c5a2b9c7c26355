//! `runs_show`: one run the caller may see, by id or unique prefix.

use anyhow::Result;
use supervisor_protocol::Reply;
use supervisor_store::{RunRecord, StoreError};

use crate::control::{Caller, authz, run_document, store};
use crate::run::Engine;

pub fn handle(engine: &Engine, caller: &Caller, id: &str) -> Result<Reply> {
    let run = visible_run(engine, caller, id)?;
    Ok(Reply::Run {
        run: run_document(&run)?,
    })
}

/// The run `id` names, if the caller may see it. Someone else's run reads
/// as no run at all, so that ids say nothing about other members.
pub fn visible_run(engine: &Engine, caller: &Caller, id: &str) -> Result<RunRecord> {
    let visible = authz::runs(caller, &engine.config)?;
    let run = store(engine).get_run(id)?;
    if !visible.run(run.member.as_deref()) {
        return Err(StoreError::RunNotFound(id.to_owned()).into());
    }
    Ok(run)
}
