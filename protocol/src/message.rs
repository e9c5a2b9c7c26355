//! The messages: a [`Call`] toward the daemon (one request, then possibly
//! an interrupt), [`Answer`]s back (a run's start and output, then exactly
//! one [`Reply`] or an error frame).
//!
//! Enums are externally tagged (`{"secret_write": {...}}`): serde reads
//! such messages in one pass, where internally tagged ones are first copied
//! into a buffer, and a copy of a secret value would outlive the frame.
//!
//! Records (secrets, runs, audit entries) travel as the JSON documents that
//! `--json` prints: the store's records (a run's with its exit code added
//! by the handler); they never hold a value.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use supervisor_config::TriggerKind;

use crate::value::{Bytes, SecretValue};

/// What a client sends: first a request, then, during a run, interrupts.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    Request(Request),
    /// Stop the run: the client got this signal (SIGINT, SIGTERM).
    Interrupt {
        signal: i32,
    },
}

/// One thing a member asks of the supervisor. Who asks is never part of
/// it: the daemon takes that from the socket's peer credentials.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// May the caller write this secret, and does it exist as expected?
    /// Asked before anyone types a value for nothing.
    SecretCheck {
        target: Target,
        exists: bool,
    },
    /// Create (or, with `update`, replace) a secret's value.
    SecretWrite {
        target: Target,
        update: bool,
        description: Option<String>,
        value: SecretValue,
    },
    SecretDelete {
        target: Target,
    },
    /// The caller's personal secrets and the team's; `all`: everyone's.
    SecretList {
        all: bool,
    },
    /// What a run would receive (names and versions only).
    Scope {
        agent: String,
        trigger: TriggerKind,
        /// Whose run: the caller's unless said otherwise.
        member: ScopeFor,
    },
    /// What a `cli` run by the caller would receive.
    DryRun {
        agent: String,
    },
    /// Start a `cli` run as the caller and stream its redacted output.
    Run {
        agent: String,
        prompt: Option<String>,
    },
    RunsList {
        agent: Option<String>,
        limit: usize,
    },
    RunsShow {
        id: String,
    },
    /// The run's redacted log, as output answers.
    RunsLogs {
        id: String,
    },
    AuditList {
        limit: Option<usize>,
    },
    AuditVerify,
}

impl Request {
    /// The request's name, for logs and metrics (never its arguments).
    pub fn label(&self) -> &'static str {
        match self {
            Request::SecretCheck { .. } => "secret_check",
            Request::SecretWrite { .. } => "secret_write",
            Request::SecretDelete { .. } => "secret_delete",
            Request::SecretList { .. } => "secret_list",
            Request::Scope { .. } => "scope",
            Request::DryRun { .. } => "dry_run",
            Request::Run { .. } => "run",
            Request::RunsList { .. } => "runs_list",
            Request::RunsShow { .. } => "runs_show",
            Request::RunsLogs { .. } => "runs_logs",
            Request::AuditList { .. } => "audit_list",
            Request::AuditVerify => "audit_verify",
        }
    }
}

/// Whose run a scope question is about. Runs that have no user behind
/// them (`cron`, `webhook`) have nobody, whatever is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeFor {
    /// The member who asks: what a run of theirs would get.
    Caller,
    /// Another member (admins), or the caller by name.
    Member(String),
    /// A run with nobody behind it (team secrets only).
    Nobody,
}

/// Which secret a write or delete is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub scope: TargetScope,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetScope {
    Team,
    /// The caller's own, or `member`'s (`--member`).
    Personal {
        member: Option<String>,
    },
}

/// What the daemon sends back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The run was recorded and its agent is starting.
    Started { run: Value },
    /// Redacted output of a run (or a stored log), in order.
    Output { stream: OutputStream, data: Bytes },
    /// The request is done; nothing follows.
    Done(Reply),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// The result of a request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// A `secret_check` passed.
    Checked,
    SecretChanged {
        change: Change,
        secret: Value,
    },
    Secrets {
        secrets: Vec<Value>,
    },
    Scope {
        /// The member the answer is for (`None`: nobody behind the run).
        member: Option<String>,
        secrets: Vec<Value>,
        missing: Vec<String>,
    },
    /// A run ended (or was refused); `exit_code` is what `supervisor run`
    /// exits with.
    RunEnded {
        run: Value,
        exit_code: i32,
    },
    Runs {
        runs: Vec<Value>,
    },
    Run {
        run: Value,
    },
    /// The log was sent as output answers; `id` is the full run id.
    Log {
        id: String,
        found: bool,
    },
    Audit {
        entries: Vec<Value>,
    },
    /// Every entry holds and the seal names the last one (`sealed`);
    /// entries before `keyed_from` predate keyed entries.
    AuditIntact {
        entries: u64,
        sealed: i64,
        keyed_from: i64,
    },
    /// The log does not hold: `entry` is the first broken one (when one
    /// entry is to blame), `problem` says what is wrong.
    AuditBroken {
        entry: Option<i64>,
        problem: String,
        hint: String,
    },
}

impl Reply {
    /// The reply's name, for messages about an answer that does not fit.
    pub fn label(&self) -> &'static str {
        match self {
            Reply::Checked => "checked",
            Reply::SecretChanged { .. } => "secret_changed",
            Reply::Secrets { .. } => "secrets",
            Reply::Scope { .. } => "scope",
            Reply::RunEnded { .. } => "run_ended",
            Reply::Runs { .. } => "runs",
            Reply::Run { .. } => "run",
            Reply::Log { .. } => "log",
            Reply::Audit { .. } => "audit",
            Reply::AuditIntact { .. } => "audit_intact",
            Reply::AuditBroken { .. } => "audit_broken",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Updated,
    Deleted,
}

/// An error, in the shape every protocol version keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl WireError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> WireError {
        WireError {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> WireError {
        self.hint = Some(hint.into());
        self
    }
}

/// What kind of error; kinds a peer does not know read as `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Client and daemon speak different protocol versions.
    Version,
    /// The frame could not be read.
    Malformed,
    TooLarge,
    /// The request did not arrive in time.
    Timeout,
    /// The caller's uid maps to no member.
    NotAMember,
    /// The caller is a process the supervisor started (an agent).
    Agent,
    /// The caller may not do this.
    Denied,
    /// The request was understood and failed (no such secret, bad name...).
    Failed,
    /// The daemon is busy or shutting down.
    Busy,
    #[serde(other)]
    Other,
}
