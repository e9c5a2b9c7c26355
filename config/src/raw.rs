//! The file as written: serde structs that keep the location of every value
//! that validation may need to point at.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::agents::OnLeak;
use crate::integrations::UnknownUsers;
use crate::load::{SecretRef, TriggerKind};
use crate::schedules::Overlap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub state_dir: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    /// Optional here so that its absence is reported with the rest.
    pub team: Option<RawTeam>,
    #[serde(default)]
    pub members: Vec<RawMember>,
    #[serde(default)]
    pub agents: Vec<RawAgent>,
    pub server: Option<RawServer>,
    #[serde(default)]
    pub schedules: Vec<RawSchedule>,
    pub slack: Option<RawSlack>,
    pub linear: Option<RawLinear>,
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
    pub sandbox: Option<RawSandbox>,
    pub store: Option<RawStore>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub url: Option<SecretRef>,
    pub lease: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSandbox {
    pub cgroup: Option<Spanned<String>>,
    pub agent_user: Option<Spanned<String>>,
    pub read: Option<Vec<Spanned<String>>>,
    pub write: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTeam {
    pub name: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMember {
    pub name: Spanned<String>,
    pub unix_user: Option<Spanned<String>>,
    pub slack_user: Option<Spanned<String>>,
    pub linear_user: Option<Spanned<String>>,
    pub email: Option<Spanned<String>>,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub name: Spanned<String>,
    pub description: Option<String>,
    pub command: Spanned<Vec<String>>,
    pub working_dir: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub kill_grace: Option<Spanned<String>>,
    pub triggers: Option<Vec<Spanned<TriggerKind>>>,
    pub secrets: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub required_secrets: Vec<Spanned<String>>,
    pub env: Option<BTreeMap<Spanned<String>, String>>,
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub max_concurrent: Option<Spanned<u32>>,
    pub log_limit: Option<Spanned<String>>,
    pub read: Option<Vec<Spanned<String>>>,
    pub write: Option<Vec<Spanned<String>>>,
    pub network: Option<bool>,
    pub memory_max: Option<Spanned<String>>,
    pub pids_max: Option<Spanned<u64>>,
    pub cpu_max: Option<Spanned<String>>,
    pub allow_unconfined: Option<bool>,
    #[serde(default)]
    pub on_leak: OnLeak,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub max_concurrent_runs: Option<Spanned<u32>>,
    pub queue_limit: Option<u32>,
    pub shutdown_grace: Option<Spanned<String>>,
    pub body_limit: Option<Spanned<String>>,
    pub log: Option<Spanned<String>>,
    pub control_socket: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub name: Spanned<String>,
    pub cron: Spanned<String>,
    pub timezone: Option<Spanned<String>>,
    pub agent: Spanned<String>,
    pub prompt: Option<String>,
    #[serde(default)]
    pub overlap: Overlap,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlack {
    pub signing_secret: SecretRef,
    pub bot_token: SecretRef,
    pub bot_user: Option<Spanned<String>>,
    pub api_base: Option<Spanned<String>>,
    pub default_agent: Option<Spanned<String>>,
    pub unknown_users: Option<UnknownUsers>,
    #[serde(default)]
    pub routes: Vec<RawSlackRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlackRoute {
    pub channel: Spanned<String>,
    pub agent: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLinear {
    pub webhook_secret: SecretRef,
    pub api_key: SecretRef,
    pub api_url: Option<Spanned<String>>,
    pub bot_user: Option<Spanned<String>>,
    pub unknown_users: Option<UnknownUsers>,
    #[serde(default)]
    pub rules: Vec<RawLinearRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLinearRule {
    pub on: Spanned<String>,
    pub assignee: Option<Spanned<String>>,
    pub label: Option<Spanned<String>>,
    pub contains: Option<Spanned<String>>,
    pub team: Option<Spanned<String>>,
    pub agent: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub name: Spanned<String>,
    pub agent: Spanned<String>,
    pub secret: SecretRef,
}

/// A credential reference is a table with exactly one of `file`, `env` or
/// `credential`. A plain string is refused without being quoted back: it
/// would be the value itself.
impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretRefVisitor)
    }
}

const SECRET_REF_FORMS: &str =
    "write { file = \"path\" }, { env = \"NAME\" } or { credential = \"name\" }";

struct SecretRefVisitor;

impl<'de> serde::de::Visitor<'de> for SecretRefVisitor {
    type Value = SecretRef;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a credential reference: {SECRET_REF_FORMS}")
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SecretRef, E> {
        Err(E::custom(format!(
            "inline secret values are refused: {SECRET_REF_FORMS}"
        )))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
        use serde::de::Error;

        let exactly_one = || {
            A::Error::custom(format!(
                "a credential reference takes exactly one of `file`, `env` or `credential`: {SECRET_REF_FORMS}"
            ))
        };
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            let value: String = map.next_value()?;
            let r = match key.as_str() {
                "file" => SecretRef::File(value.into()),
                "env" => SecretRef::Env(value),
                "credential" => SecretRef::Credential(value),
                other => {
                    return Err(A::Error::custom(format!(
                        "unknown key `{other}` in a credential reference: {SECRET_REF_FORMS}"
                    )));
                }
            };
            if found.replace(r).is_some() {
                return Err(exactly_one());
            }
        }
        found.ok_or_else(exactly_one)
    }
}
