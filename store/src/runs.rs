//! Run records: one row per run, from start (or refusal) to outcome.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::audit::{RowChange, append};
use crate::backend::{Appends, IsAlive, RunRow, Sync};
use crate::time::{format_time, parse_time};
use crate::{Result, Store, StoreError};

/// Where a run stands or how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed {
        code: i32,
    },
    Killed {
        signal: i32,
    },
    TimedOut,
    /// Refused before anything started.
    Rejected {
        reason: String,
    },
    /// Stopped by a shutdown of the supervisor.
    Interrupted,
    /// Left marked running by a supervisor that died.
    Lost,
    /// Stopped because its output showed the value of `secret` (agent `on_leak = "fail"`).
    Leaked {
        secret: String,
    },
}

impl RunStatus {
    pub fn label(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed { .. } => "failed",
            RunStatus::Killed { .. } => "killed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Rejected { .. } => "rejected",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Lost => "lost",
            RunStatus::Leaked { .. } => "leaked",
        }
    }

    fn columns(&self) -> (Option<i32>, Option<i32>, Option<&str>) {
        match self {
            RunStatus::Failed { code } => (Some(*code), None, None),
            RunStatus::Killed { signal } => (None, Some(*signal), None),
            RunStatus::Rejected { reason } => (None, None, Some(reason)),
            RunStatus::Leaked { secret } => (None, None, Some(secret)),
            _ => (None, None, None),
        }
    }

    fn from_columns(
        label: &str,
        code: Option<i32>,
        signal: Option<i32>,
        reason: Option<String>,
    ) -> Result<RunStatus> {
        Ok(match label {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed {
                code: code.unwrap_or(1),
            },
            "killed" => RunStatus::Killed {
                signal: signal.unwrap_or(9),
            },
            "timed_out" => RunStatus::TimedOut,
            "rejected" => RunStatus::Rejected {
                reason: reason.unwrap_or_default(),
            },
            "interrupted" => RunStatus::Interrupted,
            "lost" => RunStatus::Lost,
            "leaked" => RunStatus::Leaked {
                secret: reason.unwrap_or_default(),
            },
            other => return Err(StoreError::Corrupt(format!("unknown run status `{other}`"))),
        })
    }
}

/// A run as recorded. `detail` holds what the run path records beyond the
/// columns (injected names and versions, shadowed and missing names, notes,
/// reply failures): names, never values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub agent: String,
    pub trigger: String,
    pub member: Option<String>,
    #[serde(flatten)]
    pub status: RunStatus,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::rfc3339_opt")]
    pub ended_at: Option<DateTime<Utc>>,
    pub log_bytes: u64,
    pub redactions: u64,
    pub detail: serde_json::Value,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter<'a> {
    pub agent: Option<&'a str>,
    /// Only runs this member started.
    pub member: Option<&'a str>,
    pub limit: Option<usize>,
}

fn record_from_row(r: RunRow) -> Result<RunRecord> {
    let id = r.id;
    Ok(RunRecord {
        status: RunStatus::from_columns(&r.status, r.exit_code, r.signal, r.reason)?,
        started_at: parse_time(&r.started_at)?,
        ended_at: r.ended_at.as_deref().map(parse_time).transpose()?,
        detail: serde_json::from_str(&r.detail)
            .map_err(|_| StoreError::Corrupt(format!("run {id} has a malformed detail")))?,
        id,
        agent: r.agent,
        trigger: r.trigger,
        member: r.member,
        log_bytes: r.log_bytes.max(0) as u64,
        redactions: r.redactions.max(0) as u64,
    })
}

fn row_from_record(run: &RunRecord, detail: &serde_json::Value) -> RunRow {
    let (code, signal, reason) = run.status.columns();
    RunRow {
        id: run.id.clone(),
        agent: run.agent.clone(),
        trigger: run.trigger.clone(),
        member: run.member.clone(),
        status: run.status.label().to_owned(),
        exit_code: code,
        signal,
        reason: reason.map(str::to_owned),
        started_at: format_time(run.started_at),
        ended_at: run.ended_at.map(format_time),
        log_bytes: run.log_bytes as i64,
        redactions: run.redactions as i64,
        detail: detail.to_string(),
    }
}

impl Store {
    /// Records a run as it starts (or is refused), with its audit entry
    /// (`run.start` or `run.rejected`) in the same transaction. A starting
    /// run's record (which secrets, which versions) is on disk when this
    /// returns, before the agent starts: it is the evidence of what went
    /// where.
    pub fn start_run(&mut self, run: &RunRecord, audit_detail: &serde_json::Value) -> Result<()> {
        let (action, sync) = match run.status {
            RunStatus::Rejected { .. } => ("run.rejected", Sync::Normal),
            _ => ("run.start", Sync::Full),
        };
        let row = row_from_record(run, &run.detail);
        let delivery = run.detail["delivery"].as_str();
        self.write(sync, |tx, key| {
            tx.insert_run(&row, delivery)?;
            append(
                tx,
                key,
                run.member.as_deref(),
                action,
                audit_detail,
                None,
                RowChange::default(),
            )
            .map(|_| ())
        })
    }

    /// Records how a run ended, with a `run.end` audit entry. Notes added
    /// while the run was going (a reply that failed as it started) are kept.
    pub fn finish_run(&mut self, run: &RunRecord) -> Result<()> {
        self.write(Sync::Normal, |tx, key| {
            let stored = tx.run_detail(&run.id)?;
            let mut detail = run.detail.clone();
            let noted = stored
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                .and_then(|mut d| d.get_mut("notes").map(serde_json::Value::take))
                .and_then(|n| match n {
                    serde_json::Value::Array(a) if !a.is_empty() => Some(a),
                    _ => None,
                });
            if let Some(mut notes) = noted {
                if let Some(own) = detail["notes"].as_array() {
                    notes.extend(own.iter().cloned());
                }
                detail["notes"] = serde_json::Value::Array(notes);
            }
            if tx.end_run(&row_from_record(run, &detail))? == 0 {
                return Err(StoreError::RunNotFound(run.id.clone()));
            }
            append(
                tx,
                key,
                run.member.as_deref(),
                "run.end",
                &json!({ "run": run.id, "agent": run.agent, "outcome": run.status }),
                None,
                RowChange::default(),
            )
            .map(|_| ())
        })
    }

    /// Runs, newest first.
    pub fn list_runs(&mut self, filter: &RunFilter<'_>) -> Result<Vec<RunRecord>> {
        let rows = self
            .db
            .read(|tx| tx.list_runs(filter.agent, filter.member, filter.limit))?;
        rows.into_iter().map(record_from_row).collect()
    }

    /// One run by its id or a unique prefix of it.
    pub fn get_run(&mut self, id: &str) -> Result<RunRecord> {
        let mut found = self.db.read(|tx| tx.runs_by_prefix(id))?;
        match found.len() {
            1 => record_from_row(found.remove(0)),
            0 => Err(StoreError::RunNotFound(id.to_owned())),
            _ => Err(StoreError::RunAmbiguous(id.to_owned())),
        }
    }

    /// Marks runs left `running` by an owner that is gone as `lost`: on
    /// SQLite, a supervisor process of this host that no longer exists
    /// (`is_alive` says); on PostgreSQL, a node whose lease ran out.
    /// Returns their ids.
    pub fn mark_lost_runs(&mut self, is_alive: IsAlive<'_>) -> Result<Vec<String>> {
        self.write(Sync::Normal, |tx, key| {
            let orphans = tx.orphaned_runs(is_alive)?;
            let at = format_time(crate::now());
            let mut lost = Vec::new();
            for (id, member, agent) in orphans {
                tx.mark_lost(&id, &at)?;
                append(
                    tx,
                    key,
                    member.as_deref(),
                    "run.end",
                    &json!({ "run": id, "agent": agent, "outcome": RunStatus::Lost }),
                    None,
                    RowChange::default(),
                )?;
                lost.push(id);
            }
            Ok(lost)
        })
    }

    /// Appends a note (such as a failed reply to Slack) to a run's
    /// `detail.notes`. Notes are written by the supervisor, never by agents.
    pub fn note_run(&mut self, id: &str, note: &str) -> Result<()> {
        self.db.write(Sync::Normal, Appends::No, |tx| {
            let detail = tx
                .run_detail(id)?
                .ok_or_else(|| StoreError::RunNotFound(id.to_owned()))?;
            let mut detail: serde_json::Value = serde_json::from_str(&detail)
                .map_err(|_| StoreError::Corrupt(format!("run {id} has a malformed detail")))?;
            if !detail["notes"].is_array() {
                detail["notes"] = json!([]);
            }
            if let Some(notes) = detail["notes"].as_array_mut() {
                notes.push(json!(note));
            }
            tx.set_run_detail(id, &detail.to_string())
        })
    }

    /// The run recorded for a webhook delivery (`detail.delivery`), if any:
    /// how a restarted daemon tells a delivery it already ran from one whose
    /// run was never recorded.
    pub fn run_for_delivery(&mut self, delivery: &str) -> Result<Option<String>> {
        self.db.read(|tx| tx.run_for_delivery(delivery))
    }

    /// Whether a run exists (used to check ids from the outside).
    pub fn run_exists(&mut self, id: &str) -> Result<bool> {
        self.db.read(|tx| tx.run_exists(id))
    }
}
