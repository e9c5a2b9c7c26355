//! The scope rule: which secrets a run receives. One pure function of the
//! secrets' metadata, the agent and the trigger context; nothing here reads
//! a value.
//!
//! - A run started by a member through a user-initiated trigger (`cli`,
//!   `slack`, `linear`) receives every team secret and that member's
//!   personal secrets; a personal secret overrides a team secret of the same
//!   name for its owner's runs.
//! - A run with nobody behind it (`cron`, `webhook`, or no initiator)
//!   receives team secrets only.
//! - Never another member's personal secrets.
//! - An agent's `secrets` allow-list narrows the set; `required_secrets`
//!   that are not in scope refuse the run before anything starts.

use std::collections::BTreeMap;

use serde::Serialize;
use supervisor_config::{Agent, SecretName, TriggerKind};
use supervisor_store::{Scope, SecretMeta};

/// Who and what asked for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerContext<'a> {
    pub kind: TriggerKind,
    /// The member behind the request, if a person is behind it.
    pub initiator: Option<&'a str>,
}

impl TriggerContext<'_> {
    /// The member whose personal secrets this run may receive. Automated
    /// triggers have none, whoever the caller claims is behind them.
    pub fn personal_owner(&self) -> Option<&str> {
        match self.kind {
            TriggerKind::Cli | TriggerKind::Slack | TriggerKind::Linear => self.initiator,
            TriggerKind::Cron | TriggerKind::Webhook => None,
        }
    }
}

/// One secret a run receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Injected {
    pub name: SecretName,
    #[serde(serialize_with = "scope_kind")]
    pub scope: Scope,
    pub owner: Option<String>,
    pub version: i64,
    /// The version of the team secret of the same name that this personal
    /// secret overrides for this run.
    pub shadows: Option<i64>,
}

fn scope_kind<S: serde::Serializer>(scope: &Scope, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(scope.kind())
}

/// What a run receives, decided before anything is decrypted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Injection {
    /// Sorted by name.
    pub secrets: Vec<Injected>,
    /// Names on the agent's allow-list that are not in scope for this run.
    pub missing: Vec<SecretName>,
}

impl Injection {
    /// `(scope, name)` of every injected secret, for the store to open.
    pub fn keys(&self) -> Vec<(Scope, SecretName)> {
        self.secrets
            .iter()
            .map(|s| (s.scope.clone(), s.name.clone()))
            .collect()
    }
}

/// Why a run may not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("agent `{agent}` does not accept `{trigger}` runs (its triggers: {allowed})")]
    TriggerNotAllowed {
        agent: String,
        trigger: TriggerKind,
        allowed: String,
    },
    #[error(
        "agent `{agent}` requires secret `{name}`, which is not in scope for this run: {needs}"
    )]
    RequiredMissing {
        agent: String,
        name: SecretName,
        needs: String,
    },
    #[error(
        "secret `{name}` has the name of a variable that agent `{agent}` sets in its `env`; rename one of them"
    )]
    EnvCollision { agent: String, name: SecretName },
}

/// Decides what a run of `agent` for `trigger` receives.
pub fn resolve(
    secrets: &[SecretMeta],
    agent: &Agent,
    trigger: &TriggerContext<'_>,
) -> Result<Injection, Refusal> {
    if !agent.allows(trigger.kind) {
        return Err(Refusal::TriggerNotAllowed {
            agent: agent.name.clone(),
            trigger: trigger.kind,
            allowed: agent
                .triggers
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let owner = trigger.personal_owner();

    // Team secrets first; the owner's personal secrets then take their place.
    let mut chosen: BTreeMap<&SecretName, Injected> = BTreeMap::new();
    for s in secrets.iter().filter(|s| s.scope == Scope::Team) {
        chosen.insert(&s.name, injected(s, None));
    }
    for s in secrets
        .iter()
        .filter(|s| matches!(&s.scope, Scope::Personal(o) if Some(o.as_str()) == owner))
    {
        let shadows = chosen.get(&s.name).map(|team| team.version);
        chosen.insert(&s.name, injected(s, shadows));
    }

    let mut missing = Vec::new();
    if let Some(allowed) = &agent.secrets {
        chosen.retain(|name, _| allowed.contains(name));
        missing = allowed
            .iter()
            .filter(|n| !chosen.contains_key(n))
            .cloned()
            .collect();
    }
    if let Some(name) = agent
        .required_secrets
        .iter()
        .find(|n| !chosen.contains_key(n))
    {
        return Err(Refusal::RequiredMissing {
            agent: agent.name.clone(),
            name: name.clone(),
            needs: match owner {
                Some(member) => format!(
                    "create it as a team secret, or as a personal secret of `{member}` (`supervisor secret create --personal --name {name}`)"
                ),
                None => format!(
                    "`{}` runs receive team secrets only, so it must be a team secret (`supervisor secret create --team --name {name}`)",
                    trigger.kind
                ),
            },
        });
    }
    if let Some(name) = chosen.keys().find(|n| agent.env.contains_key(n.as_str())) {
        return Err(Refusal::EnvCollision {
            agent: agent.name.clone(),
            name: (*name).clone(),
        });
    }
    Ok(Injection {
        secrets: chosen.into_values().collect(),
        missing,
    })
}

fn injected(s: &SecretMeta, shadows: Option<i64>) -> Injected {
    Injected {
        name: s.name.clone(),
        scope: s.scope.clone(),
        owner: s.owner.clone(),
        version: s.version,
        shadows,
    }
}

#[cfg(test)]
mod tests;
