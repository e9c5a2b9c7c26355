//! `scope` and `dry_run`: what a run would receive (names, owners,
//! versions), decided by the scope rule without opening any value.

use anyhow::Result;
use serde_json::json;
use supervisor_config::TriggerKind;
use supervisor_protocol::Reply;

use crate::control::{Caller, authz, document};
use crate::fail::Failure;
use crate::run::{Engine, RunRequest};

/// For any trigger and member (someone else's needs an admin).
pub fn handle(
    engine: &Engine,
    caller: &Caller,
    agent: String,
    trigger: TriggerKind,
    member: Option<String>,
) -> Result<Reply> {
    authz::scope_query(caller, &engine.config, member.as_deref())?;
    if let Some(m) = &member
        && engine.config.member(m).is_none()
    {
        return Err(Failure::new(format!("no member named `{m}` in the config")).into());
    }
    plan(engine, agent, trigger, member)
}

/// For a `cli` run by the caller.
pub fn dry_run(engine: &Engine, caller: &Caller, agent: String) -> Result<Reply> {
    let me = authz::start_run(caller, &engine.config)?.name.clone();
    plan(engine, agent, TriggerKind::Cli, Some(me))
}

fn plan(
    engine: &Engine,
    agent: String,
    kind: TriggerKind,
    initiator: Option<String>,
) -> Result<Reply> {
    let req = RunRequest {
        agent,
        kind,
        initiator,
        prompt: None,
        source: json!({}),
        delivery: None,
    };
    let (_, decision) = engine.plan(&req)?;
    let injection = decision.map_err(|r| Failure::new(r.to_string()))?;
    Ok(Reply::Scope {
        secrets: injection
            .secrets
            .iter()
            .map(document)
            .collect::<Result<_>>()?,
        missing: injection.missing.iter().map(|n| n.to_string()).collect(),
    })
}
