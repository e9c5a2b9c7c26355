//! `runs_list`: the caller's own runs (admins: all), newest first.

use anyhow::Result;
use supervisor_protocol::Reply;
use supervisor_store::RunFilter;

use crate::control::{Caller, authz, run_document, store};
use crate::run::Engine;

pub fn handle(
    engine: &Engine,
    caller: &Caller,
    agent: Option<String>,
    limit: usize,
) -> Result<Reply> {
    let visible = authz::runs(caller, &engine.config)?;
    let runs = store(engine).list_runs(&RunFilter {
        agent: agent.as_deref(),
        member: visible.member(),
        limit: Some(limit),
    })?;
    Ok(Reply::Runs {
        runs: runs.iter().map(run_document).collect::<Result<_>>()?,
    })
}
