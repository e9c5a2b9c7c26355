//! The validated model and the checks that turn a [`RawConfig`] into it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{ConfigError, Locator, Problem};
use crate::integrations::{LinearConfig, SlackConfig, Webhook};
use crate::names::{SecretName, validate_env_syntax, validate_member_name};
use crate::raw::{RawAgent, RawConfig, RawMember};
use crate::sandbox::{AgentPolicy, Sandbox};
use crate::schedules::Schedule;
use crate::server::Server;
use crate::units::{parse_duration, parse_size};

/// An agent's timeout when the config names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Time between SIGTERM and SIGKILL when a run is stopped.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);
/// Largest run log kept per run before it is cut.
pub const DEFAULT_LOG_LIMIT: u64 = 10 * 1024 * 1024;
/// `PATH` of an agent whose `env` sets none.
pub const DEFAULT_AGENT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What asked for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    Cli,
    Slack,
    Linear,
    Cron,
    Webhook,
}

impl TriggerKind {
    pub const ALL: [TriggerKind; 5] = [
        TriggerKind::Cli,
        TriggerKind::Slack,
        TriggerKind::Linear,
        TriggerKind::Cron,
        TriggerKind::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Cli => "cli",
            TriggerKind::Slack => "slack",
            TriggerKind::Linear => "linear",
            TriggerKind::Cron => "cron",
            TriggerKind::Webhook => "webhook",
        }
    }
}

impl std::fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TriggerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TriggerKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown trigger `{s}` (expected cli, slack, linear, cron or webhook)")
            })
    }
}

/// Where one of the supervisor's own credentials (a signing secret, a token)
/// is read from. Never the value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// A file holding the value (trailing newline ignored).
    File(PathBuf),
    /// An environment variable of the supervisor process.
    Env(String),
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/<name>`.
    Credential(String),
}

/// The organisation this supervisor serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub name: String,
}

/// A person of the team and the identities that name them elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub unix_user: Option<String>,
    pub slack_user: Option<String>,
    pub linear_user: Option<String>,
    pub email: Option<String>,
    pub admin: bool,
}

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

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `state_dir` as written, made absolute against the file's folder.
    pub state_dir: Option<PathBuf>,
    /// `key_file` as written, made absolute against the file's folder.
    pub key_file: Option<PathBuf>,
    pub team: Team,
    pub members: Vec<Member>,
    pub agents: Vec<Agent>,
    /// The daemon's own settings (`[server]`; defaults when absent).
    pub server: Server,
    /// Runs started by the clock (`[[schedules]]`).
    pub schedules: Vec<Schedule>,
    /// `[slack]`, when Slack may start runs.
    pub slack: Option<SlackConfig>,
    /// `[linear]`, when Linear may start runs.
    pub linear: Option<LinearConfig>,
    /// `[[webhooks]]`: signed endpoints for automated integrations.
    pub webhooks: Vec<Webhook>,
    /// `[sandbox]`: containment settings shared by every agent.
    pub sandbox: Sandbox,
    /// `[store]`: SQLite in the state directory, or a shared PostgreSQL.
    pub store: crate::store::StoreConfig,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates config text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let locator = Locator::new(text);
        let invalid = |problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            invalid(vec![locator.problem(
                offset,
                e.message().trim(),
                hint_for(e.message()),
            )])
        })?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let mut v = Validator {
            locator,
            base,
            problems: Vec::new(),
        };
        let config = v.config(raw, path);
        if v.problems.is_empty() {
            Ok(config)
        } else {
            v.problems.sort_by_key(|p| (p.line, p.column));
            Err(invalid(v.problems))
        }
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    pub fn member_by_unix_user(&self, user: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.unix_user.as_deref() == Some(user))
    }

    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }

    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.name == name)
    }

    /// The member whose `slack_user` is `user`.
    pub fn member_by_slack_user(&self, user: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.slack_user.as_deref() == Some(user))
    }

    /// The member whose `linear_user` is `user`.
    pub fn member_by_linear_user(&self, user: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.linear_user.as_deref() == Some(user))
    }

    /// The member whose `email` is `email`, compared case-insensitively.
    pub fn member_by_email(&self, email: &str) -> Option<&Member> {
        self.members.iter().find(|m| {
            m.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    }

    /// The webhook named `name`.
    pub fn webhook(&self, name: &str) -> Option<&Webhook> {
        self.webhooks.iter().find(|w| w.name == name)
    }
}

fn hint_for(message: &str) -> Option<&'static str> {
    if message.contains("unknown field") {
        Some(
            "remove the key or correct its spelling; the README's config reference lists every key",
        )
    } else if message.contains("missing field") {
        Some("add the key; the README's config reference shows an example")
    } else if message.contains("unknown variant") {
        Some("use one of the values listed")
    } else {
        None
    }
}

/// Collects every problem of one file; the section checks live next to their
/// types (`server.rs`, `schedules.rs`) as further `impl` blocks.
pub(crate) struct Validator<'a> {
    locator: Locator<'a>,
    base: &'a Path,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    pub(crate) fn report<T>(
        &mut self,
        at: &Spanned<T>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) {
        self.problems
            .push(self.locator.problem(at.span().start, message, hint));
    }

    /// A credential file named relative to the config file, like every path.
    pub(crate) fn secret_ref(&self, r: SecretRef) -> SecretRef {
        match r {
            SecretRef::File(p) => SecretRef::File(self.path(&p.to_string_lossy())),
            other => other,
        }
    }

    pub(crate) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }

    fn config(&mut self, raw: RawConfig, path: &Path) -> Config {
        if raw.team.name.get_ref().trim().is_empty() {
            self.report(
                &raw.team.name,
                "the team name is empty",
                Some("name the team, e.g. name = \"acme\""),
            );
        }
        let members = self.members(raw.members);
        let agents = self.agents(raw.agents);
        let server = self.server(raw.server);
        let schedules = self.schedules(raw.schedules, &agents);
        let slack = raw.slack.map(|s| self.slack(s, &agents));
        let linear = raw.linear.map(|l| self.linear(l, &agents));
        let webhooks = self.webhooks(raw.webhooks, &agents);
        let sandbox = self.sandbox(raw.sandbox);
        let store = self.store(raw.store);
        Config {
            path: path.to_owned(),
            state_dir: raw.state_dir.map(|s| self.path(s.get_ref())),
            key_file: raw.key_file.map(|s| self.path(s.get_ref())),
            team: crate::load::Team {
                name: raw.team.name.into_inner(),
            },
            members,
            agents,
            server,
            schedules,
            slack,
            linear,
            webhooks,
            sandbox,
            store,
        }
    }

    fn members(&mut self, raw: Vec<RawMember>) -> Vec<Member> {
        // Each identity may name one member only: (kind, value) -> first member.
        let mut seen: HashMap<(&'static str, String), String> = HashMap::new();
        let mut out = Vec::new();
        for m in raw {
            if let Err(e) = validate_member_name(m.name.get_ref()) {
                self.report(&m.name, e.to_string(), None);
            }
            let identities = [
                ("name", Some(&m.name)),
                ("unix_user", m.unix_user.as_ref()),
                ("slack_user", m.slack_user.as_ref()),
                ("linear_user", m.linear_user.as_ref()),
                ("email", m.email.as_ref()),
            ];
            for (kind, value) in identities {
                let Some(value) = value else { continue };
                let key = if kind == "email" {
                    value.get_ref().to_ascii_lowercase()
                } else {
                    value.get_ref().clone()
                };
                if key.trim().is_empty() {
                    self.report(
                        value,
                        format!("`{kind}` is empty"),
                        Some("remove the key or give it a value"),
                    );
                    continue;
                }
                if let Some(first) = seen.get(&(kind, key.clone())) {
                    let message = if kind == "name" {
                        format!("a member named `{}` is defined twice", value.get_ref())
                    } else {
                        format!(
                            "{kind} `{}` already belongs to member `{first}`",
                            value.get_ref()
                        )
                    };
                    self.report(
                        value,
                        message,
                        Some("each person and identity may appear once"),
                    );
                } else {
                    seen.insert((kind, key), m.name.get_ref().clone());
                }
            }
            out.push(Member {
                name: m.name.into_inner(),
                unix_user: m.unix_user.map(Spanned::into_inner),
                slack_user: m.slack_user.map(Spanned::into_inner),
                linear_user: m.linear_user.map(Spanned::into_inner),
                email: m.email.map(Spanned::into_inner),
                admin: m.admin,
            });
        }
        out
    }

    fn agents(&mut self, raw: Vec<RawAgent>) -> Vec<Agent> {
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

    pub(crate) fn duration(
        &mut self,
        value: Option<Spanned<String>>,
        default: Duration,
        what: &str,
    ) -> Duration {
        let Some(value) = value else { return default };
        match parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.report(&value, format!("`{what}` must be longer than zero"), None);
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.report(
                    &value,
                    format!("bad `{what}`: {e}"),
                    Some("write a duration such as \"90s\", \"15m\" or \"1h30m\""),
                );
                default
            }
        }
    }

    /// A size of at least 1 KiB: anything smaller is a typo for a unit.
    pub(crate) fn size(&mut self, value: Option<Spanned<String>>, default: u64, what: &str) -> u64 {
        let Some(value) = value else { return default };
        match parse_size(value.get_ref()) {
            Ok(n) if n >= 1024 => n,
            Ok(_) => {
                self.report(&value, format!("`{what}` must be at least 1 KiB"), None);
                default
            }
            Err(e) => {
                self.report(
                    &value,
                    format!("bad `{what}`: {e}"),
                    Some("write a size such as \"10 MiB\""),
                );
                default
            }
        }
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
                    self.problems.push(self.locator.problem(
                        a.name.span().start,
                        format!("agent `{agent_name}` sets `{name}` in `env` and also takes it as a secret"),
                        Some("rename one of them: a secret would silently replace the variable"),
                    ));
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
