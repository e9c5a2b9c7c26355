//! The validated model and the checks that turn a [`RawConfig`] into it.
//! Problems of the TOML layer (see `document`) and of the meaning of the
//! values are collected together and reported sorted by place.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::agents::Agent;
use crate::error::{ConfigError, Locator, Problem};
use crate::integrations::{LinearConfig, SlackConfig, Webhook};
use crate::names::validate_member_name;
use crate::raw::{RawConfig, RawMember};
use crate::sandbox::Sandbox;
use crate::schedules::Schedule;
use crate::server::Server;
use crate::units::{parse_duration, parse_size};

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

/// Checks the config crate cannot make itself: a schedule's cron
/// expression and time zone need a cron parser and a time zone database
/// (the triggers crate has both). Each says why the text cannot be used.
pub trait ScheduleCheck {
    fn cron(&self, expression: &str) -> Result<(), Fault>;
    fn timezone(&self, name: &str) -> Result<(), Fault>;
}

/// Why a value cannot be used, and how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub message: String,
    pub hint: Option<String>,
}

impl Config {
    /// Reads and validates a config file (schedule expressions and time
    /// zones stay unchecked: see [`Config::load_with`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_checked(path, None)
    }

    /// Reads and validates a config file, schedules included.
    pub fn load_with(path: &Path, schedules: &dyn ScheduleCheck) -> Result<Config, ConfigError> {
        Config::load_checked(path, Some(schedules))
    }

    fn load_checked(
        path: &Path,
        schedules: Option<&dyn ScheduleCheck>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse_checked(&text, path, schedules)
    }

    /// Validates config text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_checked(text, path, None)
    }

    /// [`Config::parse`], schedules included.
    pub fn parse_with(
        text: &str,
        path: &Path,
        schedules: &dyn ScheduleCheck,
    ) -> Result<Config, ConfigError> {
        Config::parse_checked(text, path, Some(schedules))
    }

    fn parse_checked(
        text: &str,
        path: &Path,
        schedules: Option<&dyn ScheduleCheck>,
    ) -> Result<Config, ConfigError> {
        let locator = Locator::new(text);
        let read = crate::document::read(text, &locator);
        let mut problems = read.problems;
        let config = read.raw.map(|raw| {
            let base = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut v = Validator {
                locator,
                base,
                problems: Vec::new(),
                damaged_agents: read.damaged_agents,
                schedules,
            };
            let config = v.config(raw, path);
            problems.append(&mut v.problems);
            config
        });
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => {
                problems.sort_by_key(|p| (p.line, p.column));
                Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    problems,
                })
            }
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

    /// The member behind an outside identity: the one whose id for
    /// `source` is `id`, else the one whose `email` matches `email`
    /// (case-insensitively) and who has no id for that source. A member
    /// whose id is configured is only ever matched by that id, so another
    /// account that shows the same email cannot stand in for them.
    pub fn member_by_identity(
        &self,
        source: IdSource,
        id: Option<&str>,
        email: Option<&str>,
    ) -> Option<&Member> {
        let id_of: fn(&Member) -> Option<&str> = match source {
            IdSource::Slack => |m| m.slack_user.as_deref(),
            IdSource::Linear => |m| m.linear_user.as_deref(),
        };
        if let Some(id) = id.filter(|i| !i.is_empty())
            && let Some(m) = self.members.iter().find(|m| id_of(m) == Some(id))
        {
            return Some(m);
        }
        let email = email.map(str::trim).filter(|e| !e.is_empty())?;
        self.members.iter().find(|m| {
            id_of(m).is_none()
                && m.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    }

    /// The webhook named `name`.
    pub fn webhook(&self, name: &str) -> Option<&Webhook> {
        self.webhooks.iter().find(|w| w.name == name)
    }
}

/// The outside sources that know members by an id of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// `slack_user`
    Slack,
    /// `linear_user`
    Linear,
}

/// Collects every problem of one file; the section checks live next to their
/// types (`server.rs`, `schedules.rs`) as further `impl` blocks.
pub(crate) struct Validator<'a> {
    locator: Locator<'a>,
    base: &'a Path,
    pub(crate) problems: Vec<Problem>,
    /// Agents that lost a part at the TOML layer (already reported):
    /// references to them are not checked.
    pub(crate) damaged_agents: HashSet<String>,
    /// The checks of cron expressions and time zones, when the caller has them.
    pub(crate) schedules: Option<&'a dyn ScheduleCheck>,
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

    /// A [`Fault`] of a check outside this crate, at `at`.
    pub(crate) fn report_fault<T>(&mut self, at: &Spanned<T>, fault: Fault) {
        self.report(at, fault.message, fault.hint.as_deref());
    }

    /// A problem at the start of the file (something missing from it).
    pub(crate) fn report_at_start(&mut self, message: impl Into<String>, hint: Option<&str>) {
        self.problems.push(self.locator.problem(0, message, hint));
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
        let team = match raw.team {
            Some(team) => {
                if team.name.get_ref().trim().is_empty() {
                    self.report(
                        &team.name,
                        "the team name is empty",
                        Some("name the team, e.g. name = \"acme\""),
                    );
                }
                team.name.into_inner()
            }
            None => {
                self.report_at_start(
                    "the config has no [team] section",
                    Some("add one, e.g.\n\n  [team]\n  name = \"acme\"\n"),
                );
                String::new()
            }
        };
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
            team: Team { name: team },
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
}
