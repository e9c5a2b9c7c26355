//! The sources that ask for runs: the CLI, Slack, Linear, cron schedules and
//! signed automation webhooks.
//!
//! Each source verifies what it receives before parsing it, maps the person
//! behind it to a team member (or to nobody), and produces a [`TriggerEvent`].
//! This crate knows nothing of the store or of processes: deciding secrets
//! and starting agents is the supervisor's job.

#![forbid(unsafe_code)]

pub mod cron;

pub use self::cron::{CronError, CronSchedule, validate_schedules};
pub use supervisor_config::TriggerKind;

/// A request for one run of one agent.
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
}

/// Where the supervisor answers about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyTarget {
    /// A Slack thread.
    Slack { channel: String, thread_ts: String },
    /// A Linear issue (UUID or identifier such as `ENG-123`).
    Linear { issue_id: String },
}
