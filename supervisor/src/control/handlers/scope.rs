//! `scope` and `dry_run`: what a run would receive (names, owners,
//! versions), decided by the scope rule without opening any value. By
//! default the answer is for the caller, as `supervisor run` would start
//! it; the reply says whom it is for.

use anyhow::Result;
use serde_json::json;
use supervisor_config::TriggerKind;
use supervisor_protocol::{Reply, ScopeFor};
use supervisor_triggers::TriggerEvent;

use crate::control::{Caller, authz, document};
use crate::fail::Failure;
use crate::run::Engine;

/// For any trigger, as the caller by default, or as another member (their
/// own name, or any member for admins), or as nobody.
pub fn handle(
    engine: &Engine,
    caller: &Caller,
    agent: String,
    trigger: TriggerKind,
    who: ScopeFor,
) -> Result<Reply> {
    let member = authz::scope_query(caller, &engine.config, &who)?;
    if let Some(m) = &member
        && engine.config.member(m).is_none()
    {
        return Err(Failure::new(format!("no member named `{m}` in the config")).into());
    }
    // Automation has nobody behind it, whoever asks.
    let member = member.filter(|_| has_a_user(trigger));
    plan(engine, agent, trigger, member)
}

/// Whether runs of this trigger can have a member behind them.
pub fn has_a_user(trigger: TriggerKind) -> bool {
    matches!(
        trigger,
        TriggerKind::Cli | TriggerKind::Slack | TriggerKind::Linear
    )
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
    let req = TriggerEvent {
        agent,
        kind,
        initiator: initiator.clone(),
        prompt: None,
        source: json!({}),
        reply_to: None,
        delivery: None,
    };
    let (_, decision) = engine.plan(&req)?;
    let injection = decision.map_err(|r| Failure::new(r.to_string()))?;
    Ok(Reply::Scope {
        member: initiator,
        secrets: injection
            .secrets
            .iter()
            .map(document)
            .collect::<Result<_>>()?,
        missing: injection.missing.iter().map(|n| n.to_string()).collect(),
    })
}
