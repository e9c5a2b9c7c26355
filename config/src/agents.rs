//! The `[[agents]]` section: the programs runs start, with their limits,
//! triggers, allow-lists and base environment.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::load::{TriggerKind, Validator};
use crate::names::{SecretName, validate_env_syntax, validate_member_name};
use crate::raw::RawAgent;
use crate::sandbox::AgentPolicy;

/// An agent's timeout when the config names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Time between SIGTERM and SIGKILL when a run is stopped.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);
/// Largest run log kept per run before it is cut.
pub const DEFAULT_LOG_LIMIT: u64 = 10 * 1024 * 1024;
/// `PATH` of an agent whose `env` sets none.
pub const DEFAULT_AGENT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A configured program that runs can start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    pub description: Option<String>,
    pub command: Vec<String>,
    pub working_dir: Option<PathBuf>,
    pub timeout: Duration,
    pub kill_grace: Duration,
    pub triggers: Vec<TriggerKind>,
    /// The allow-list: `None` means every secret in scope.
    pub secrets: Option<Vec<SecretName>>,
    pub required_secrets: Vec<SecretName>,
    /// Base environment (always holds `PATH`).
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub max_concurrent: Option<u32>,
    pub log_limit: u64,
    /// What it may read and write, its network, its limits.
    pub policy: AgentPolicy,
    pub on_leak: OnLeak,
}

/// What happens to a run whose output showed the value of a secret it received (the value
/// itself is redacted either way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLeak {
    /// The run goes on; the secret is marked as leaked.
    #[default]
    Flag,
    /// The secret is marked, and the run is stopped.
    Fail,
}

impl OnLeak {
    pub fn as_str(self) -> &'static str {
        match self {
            OnLeak::Flag => "flag",
            OnLeak::Fail => "fail",
        }
    }
}

impl Agent {
    pub fn allows(&self, trigger: TriggerKind) -> bool {
        self.triggers.contains(&trigger)
    }
}

impl Validator<'_> {
    pub(crate) fn agents(&mut self, raw: Vec<RawAgent>) -> Vec<Agent> {
        let mut names: HashMap<String, ()> = HashMap::new();
        raw.into_iter()
            .map(|a| {
                if let Err(e) = validate_member_name(a.name.get_ref()) {
                    let message = e.to_string().replace("member name", "agent name");
                    self.report(&a.name, message, None);
                }
                if names.insert(a.name.get_ref().clone(), ()).is_some() {
                    self.report(
                        &a.name,
                        format!("an agent named `{}` is defined twice", a.name.get_ref()),
                        Some("give each [[agents]] entry its own name"),
                    );
                }
                self.agent(a)
            })
            .collect()
    }

    fn secret_names(&mut self, list: Vec<Spanned<String>>, key: &str) -> Vec<SecretName> {
        let mut out: Vec<SecretName> = Vec::new();
        for item in list {
            match SecretName::new(item.get_ref()) {
                Ok(n) if out.contains(&n) => {
                    self.report(&item, format!("`{n}` is listed twice in `{key}`"), None);
                }
                Ok(n) => out.push(n),
                Err(e) => self.report(&item, e.to_string(), None),
            }
        }
        out
    }

    fn agent(&mut self, mut a: RawAgent) -> Agent {
        let agent_name = a.name.get_ref().clone();
        let policy = self.agent_policy(&mut a);
        if a.command.get_ref().is_empty() || a.command.get_ref()[0].trim().is_empty() {
            self.report(
                &a.command,
                format!("agent `{agent_name}` has an empty command"),
                Some("give the program and its arguments, e.g. command = [\"/usr/local/bin/agent\", \"--once\"]"),
            );
        }
        let timeout = self.duration(a.timeout, DEFAULT_TIMEOUT, "timeout");
        let kill_grace = self.duration(a.kill_grace, DEFAULT_KILL_GRACE, "kill_grace");
        let log_limit = self.size(a.log_limit, DEFAULT_LOG_LIMIT, "log_limit");
        let mut triggers: Vec<TriggerKind> = match a.triggers {
            None => vec![TriggerKind::Cli],
            Some(list) => list.into_iter().map(Spanned::into_inner).collect(),
        };
        triggers.sort();
        triggers.dedup();

        let secrets = a.secrets.map(|list| self.secret_names(list, "secrets"));
        let required_ref = a.required_secrets.clone();
        let required = self.secret_names(a.required_secrets, "required_secrets");
        if let Some(allowed) = &secrets {
            for (name, at) in required.iter().zip(&required_ref) {
                if !allowed.contains(name) {
                    self.report(
                        at,
                        format!("required secret `{name}` is not in this agent's `secrets` list"),
                        Some(
                            "add it to `secrets`, or drop `secrets` to allow every secret in scope",
                        ),
                    );
                }
            }
        }

        let mut env = BTreeMap::new();
        for (key, value) in a.env.unwrap_or_default() {
            if let Err(e) = validate_env_syntax(key.get_ref()) {
                self.report(&key, e.to_string(), None);
            } else if key
                .get_ref()
                .to_ascii_uppercase()
                .starts_with("SUPERVISOR_")
            {
                self.report(
                    &key,
                    format!("`{}` is set by the supervisor for every run", key.get_ref()),
                    Some("remove it from `env`"),
                );
            } else if value.contains('\0') {
                self.report(
                    &key,
                    format!("the value of `{}` holds a NUL byte", key.get_ref()),
                    None,
                );
            }
            env.insert(key.into_inner(), value);
        }
        env.entry("PATH".to_owned())
            .or_insert_with(|| DEFAULT_AGENT_PATH.to_owned());
        for list in [secrets.as_deref().unwrap_or(&[]), &required[..]] {
            for name in list {
                if env.contains_key(name.as_str()) {
                    self.report(
                        &a.name,
                        format!("agent `{agent_name}` sets `{name}` in `env` and also takes it as a secret"),
                        Some("rename one of them: a secret would silently replace the variable"),
                    );
                }
            }
        }

        if let (Some(group), None) = (&a.group, &a.user) {
            self.report(
                group,
                "`group` needs `user`",
                Some("set `user` too, or remove `group`"),
            );
        }
        let max_concurrent = a.max_concurrent.map(|m| {
            if *m.get_ref() == 0 {
                self.report(&m, "`max_concurrent` must be at least 1", None);
            }
            m.into_inner()
        });

        Agent {
            name: agent_name,
            description: a.description,
            command: a.command.into_inner(),
            working_dir: a.working_dir.map(|p| self.path(p.get_ref())),
            timeout,
            kill_grace,
            triggers,
            secrets,
            required_secrets: required,
            env,
            user: a.user.map(Spanned::into_inner),
            group: a.group.map(Spanned::into_inner),
            max_concurrent,
            log_limit,
            policy,
            on_leak: a.on_leak,
        }
    }
}
