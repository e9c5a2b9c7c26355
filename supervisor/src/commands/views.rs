//! The documents replies carry (as `--json` prints them), read back into
//! types for the tables. Only the fields a table shows.

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use supervisor_protocol::Reply;
use supervisor_store::RunStatus;

/// An answer that does not fit the request (a daemon of another version).
pub fn unexpected(reply: Reply) -> anyhow::Error {
    anyhow::anyhow!(
        "the answer `{}` does not fit the request; are the CLI and the daemon of the same version?",
        reply.label()
    )
}

/// Reads a document into a view; a document of another shape is an error
/// (a daemon of another version), never a silently empty cell.
pub fn read<T: DeserializeOwned>(doc: &Value, what: &str) -> Result<T> {
    T::deserialize(doc).with_context(|| format!("reading a {what} from the answer"))
}

pub fn read_all<T: DeserializeOwned>(docs: &[Value], what: &str) -> Result<Vec<T>> {
    docs.iter().map(|d| read(d, what)).collect()
}

#[derive(Debug, Deserialize)]
pub struct SecretView {
    pub name: String,
    pub scope: String,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// Set when a run's output showed the value (redacted).
    #[serde(default)]
    pub leak: Option<LeakView>,
}

/// The last run whose output showed a secret's value, when, and how many did.
#[derive(Debug, Deserialize)]
pub struct LeakView {
    pub run: String,
    pub at: DateTime<Utc>,
    pub runs: i64,
}

impl SecretView {
    /// "team secret X" or "personal secret X of bob".
    pub fn describe(&self) -> String {
        match &self.owner {
            Some(owner) => format!("personal secret {} of {owner}", self.name),
            None => format!("team secret {}", self.name),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct InjectedView {
    pub name: String,
    pub scope: String,
    pub owner: Option<String>,
    pub version: i64,
    pub shadows: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct RunView {
    pub id: String,
    pub agent: String,
    pub trigger: String,
    pub member: Option<String>,
    pub status: String,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<String>,
    /// The secret whose value a `leaked` run showed.
    pub secret: Option<String>,
    /// The exit status `supervisor run` gives the run (null: none).
    #[serde(default)]
    pub exit_code: Option<i32>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub log_bytes: u64,
    pub redactions: u64,
    #[serde(default)]
    pub detail: Value,
}

impl RunView {
    /// The status the document describes (`None` for a word this version
    /// does not know).
    pub fn status(&self) -> Option<RunStatus> {
        Some(match self.status.as_str() {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed {
                code: self.code.unwrap_or(1),
            },
            "killed" => RunStatus::Killed {
                signal: self.signal.unwrap_or(9),
            },
            "timed_out" => RunStatus::TimedOut,
            "interrupted" => RunStatus::Interrupted,
            "lost" => RunStatus::Lost,
            "leaked" => RunStatus::Leaked {
                secret: self.secret.clone().unwrap_or_default(),
            },
            "rejected" => RunStatus::Rejected {
                reason: self.reason.clone().unwrap_or_default(),
            },
            _ => return None,
        })
    }

    /// The outcome as [`crate::wording::outcome`] words it.
    pub fn outcome(&self) -> String {
        self.status()
            .map_or_else(|| self.status.clone(), |s| crate::wording::outcome(&s))
    }

    /// How long it ran, once it ended.
    pub fn duration(&self) -> Option<String> {
        self.ended_at
            .map(|end| crate::wording::elapsed(self.started_at, end))
    }
}

#[derive(Debug, Deserialize)]
pub struct AuditView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    pub action: String,
    pub detail: Value,
}
