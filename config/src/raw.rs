//! The file as written: serde structs that keep the location of every value
//! that validation may need to point at.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::integrations::UnknownUsers;
use crate::load::{OnLeak, SecretRef, TriggerKind};
use crate::schedules::Overlap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub state_dir: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
    pub team: RawTeam,
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
    pub cron: String,
    pub timezone: Option<String>,
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

/// How a credential reference is written: a table with exactly one key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecretRef {
    pub file: Option<String>,
    pub env: Option<String>,
    pub credential: Option<String>,
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;

        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Table(RawSecretRef),
            // Accepted by the parser only so that the error can say why it is refused.
            Inline(#[allow(dead_code)] String),
        }
        match Form::deserialize(d)? {
            Form::Inline(_) => Err(D::Error::custom(
                "inline secret values are refused: write { file = \"path\" }, { env = \"NAME\" } or { credential = \"name\" }",
            )),
            Form::Table(RawSecretRef {
                file: Some(path),
                env: None,
                credential: None,
            }) => Ok(SecretRef::File(path.into())),
            Form::Table(RawSecretRef {
                file: None,
                env: Some(name),
                credential: None,
            }) => Ok(SecretRef::Env(name)),
            Form::Table(RawSecretRef {
                file: None,
                env: None,
                credential: Some(name),
            }) => Ok(SecretRef::Credential(name)),
            Form::Table(_) => Err(D::Error::custom(
                "a credential reference takes exactly one of `file`, `env` or `credential`",
            )),
        }
    }
}
