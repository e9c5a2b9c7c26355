//! The sources that ask for runs: the CLI, Slack, Linear, cron schedules and
//! signed automation webhooks.
//!
//! Each source verifies what it receives before parsing it, maps the person
//! behind it to a team member (or to nobody), and produces a [`TriggerEvent`].
//! This crate knows nothing of the store or of processes: deciding secrets
//! and starting agents is the supervisor's job.

#![forbid(unsafe_code)]

pub mod cron;

pub use self::cron::{CronCheck, CronError, CronSchedule, Zone};

mod error;
pub mod linear;
mod signature;
pub mod slack;
pub mod webhook;

pub use error::{ParseError, VerifyError};
pub use supervisor_config::TriggerKind;

/// A request for one run of one agent: what every source produces and
/// the run path takes, from the trigger to the runner.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerEvent {
    pub kind: TriggerKind,
    /// The agent to start.
    pub agent: String,
    /// The member behind the request; `None` for automation (team secrets only).
    pub initiator: Option<String>,
    /// Free text for the agent (a Slack message, a Linear comment, a schedule's prompt).
    pub prompt: Option<String>,
    /// The run context's `source` object: where the request came from.
    pub source: serde_json::Value,
    /// Where replies about the run go, if anywhere.
    pub reply_to: Option<ReplyTarget>,
    /// The webhook delivery this run answers (`<source>:<key>`), recorded in
    /// the run's `detail.delivery`, so that a restarted daemon knows it ran.
    pub delivery: Option<String>,
}

impl TriggerEvent {
    /// A run a member starts at the command line (directly, or through
    /// the daemon's control socket): as themselves, with their Unix user
    /// in the run context.
    pub fn cli(agent: String, member: String, unix_user: &str, prompt: Option<String>) -> Self {
        TriggerEvent {
            kind: TriggerKind::Cli,
            agent,
            initiator: Some(member),
            prompt,
            source: serde_json::json!({ "cli": { "user": unix_user } }),
            reply_to: None,
            delivery: None,
        }
    }

    /// The same request, answering a webhook delivery (`<source>:<key>`).
    pub fn answering(self, delivery: String) -> Self {
        TriggerEvent {
            delivery: Some(delivery),
            ..self
        }
    }
}

/// Where the supervisor answers about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyTarget {
    /// A Slack thread.
    Slack { channel: String, thread_ts: String },
    /// A Linear issue (UUID or identifier such as `ENG-123`).
    Linear { issue_id: String },
}

/// What to do with an authenticated, parsed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start a run.
    Run(TriggerEvent),
    /// Start nothing, and answer the person with this text (in the Slack
    /// thread, or as a comment on the Linear issue).
    Reply(String),
    /// Start nothing and say nothing; the reason is a short label for logs.
    Ignore(&'static str),
}

#[cfg(test)]
pub(crate) mod testing {
    //! A config shared by the sources' tests.

    use supervisor_config::Config;

    pub(crate) const CONFIG: &str = r#"
[team]
name = "acme"

[[members]]
name = "alice"
slack_user = "U061F7AUR"
linear_user = "u-ada"
email = "alice@acme.example"

[[members]]
name = "morgan"
email = "Morgan@Example.com"

[[members]]
name = "carol"
slack_user = "UCAROL"
linear_user = "u-carol"
email = "carol@acme.example"

[[agents]]
name = "triage"
command = ["/bin/true"]
triggers = ["slack", "linear"]

[[agents]]
name = "deploy-helper"
command = ["/bin/true"]
triggers = ["slack"]

[[agents]]
name = "fixer"
command = ["/bin/true"]
triggers = ["linear"]

[[agents]]
name = "local-only"
command = ["/bin/true"]
triggers = ["cli"]

[[agents]]
name = "remediate"
command = ["/bin/true"]
triggers = ["webhook"]

[slack]
signing_secret = { credential = "slack-signing-secret" }
bot_token = { credential = "slack-bot-token" }
default_agent = "triage"

[[slack.routes]]
channel = "C0123DEPLOY"
agent = "deploy-helper"

[linear]
webhook_secret = { credential = "linear-webhook-secret" }
api_key = { credential = "linear-api-key" }
bot_user = "u-agent"

[[linear.rules]]
on = "issue.assigned"
assignee = "u-agent"
agent = "fixer"

[[linear.rules]]
on = "issue.labeled"
label = "agent"
team = "ENG"
agent = "triage"

[[linear.rules]]
on = "comment.created"
contains = "@agent"
agent = "fixer"

[[webhooks]]
name = "alerts"
agent = "remediate"
secret = { credential = "alerts-webhook-secret" }
"#;

    /// The shared config with `from` replaced by `to` (`from` must occur).
    pub(crate) fn config_with(from: &str, to: &str) -> Config {
        assert!(CONFIG.contains(from), "{from}");
        Config::parse(
            &CONFIG.replacen(from, to, 1),
            std::path::Path::new("supervisor.toml"),
        )
        .unwrap()
    }

    pub(crate) fn config() -> Config {
        config_with("", "")
    }
}
