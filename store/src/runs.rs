//! Run records: one row per run, from start (or refusal) to outcome.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::json;

use crate::audit::{RowChange, append};
use crate::db::{Sync, write_tx};
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

const RUN_COLUMNS: &str = "id, agent, trigger, member, status, exit_code, signal, reason, started_at, ended_at, log_bytes, redactions, detail";

fn run_from_row(r: &Row<'_>) -> rusqlite::Result<Result<RunRecord>> {
    let status: String = r.get(4)?;
    let started: String = r.get(8)?;
    let ended: Option<String> = r.get(9)?;
    let detail: String = r.get(12)?;
    let id: String = r.get(0)?;
    let (agent, trigger, member) = (r.get(1)?, r.get(2)?, r.get(3)?);
    let (code, signal, reason) = (r.get(5)?, r.get(6)?, r.get(7)?);
    let (log_bytes, redactions): (i64, i64) = (r.get(10)?, r.get(11)?);
    Ok((|| {
        Ok(RunRecord {
            status: RunStatus::from_columns(&status, code, signal, reason)?,
            started_at: parse_time(&started)?,
            ended_at: ended.as_deref().map(parse_time).transpose()?,
            detail: serde_json::from_str(&detail)
                .map_err(|_| StoreError::Corrupt(format!("run {id} has a malformed detail")))?,
            id,
            agent,
            trigger,
            member,
            log_bytes: log_bytes.max(0) as u64,
            redactions: redactions.max(0) as u64,
        })
    })())
}

impl Store {
    /// Records a run as it starts (or is refused), with its audit entry
    /// (`run.start` or `run.rejected`) in the same transaction. A starting
    /// run's record (which secrets, which versions) is on disk when this
    /// returns, before the agent starts: it is the evidence of what went
    /// where.
    pub fn start_run(&mut self, run: &RunRecord, audit_detail: &serde_json::Value) -> Result<()> {
        let (code, signal, reason) = run.status.columns();
        let (action, sync) = match run.status {
            RunStatus::Rejected { .. } => ("run.rejected", Sync::Normal),
            _ => ("run.start", Sync::Full),
        };
        self.write(sync, |tx, key| {
            tx.execute(
                &format!("INSERT INTO runs ({RUN_COLUMNS}, pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
                params![
                    run.id,
                    run.agent,
                    run.trigger,
                    run.member,
                    run.status.label(),
                    code,
                    signal,
                    reason,
                    format_time(run.started_at),
                    run.ended_at.map(format_time),
                    run.log_bytes as i64,
                    run.redactions as i64,
                    run.detail.to_string(),
                    std::process::id(),
                ],
            )?;
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
        let (code, signal, reason) = run.status.columns();
        self.write(Sync::Normal, |tx, key| {
            let stored: Option<String> = tx
                .query_row("SELECT detail FROM runs WHERE id = ?1", [&run.id], |r| {
                    r.get(0)
                })
                .optional()?;
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
            let changed = tx.execute(
                "UPDATE runs SET status = ?2, exit_code = ?3, signal = ?4, reason = ?5, ended_at = ?6, log_bytes = ?7, redactions = ?8, detail = ?9 WHERE id = ?1",
                params![
                    run.id,
                    run.status.label(),
                    code,
                    signal,
                    reason,
                    run.ended_at.map(format_time),
                    run.log_bytes as i64,
                    run.redactions as i64,
                    detail.to_string(),
                ],
            )?;
            if changed == 0 {
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
    pub fn list_runs(&self, filter: &RunFilter<'_>) -> Result<Vec<RunRecord>> {
        let limit = filter.limit.map_or(-1, |l| l as i64);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR agent = ?1) AND (?3 IS NULL OR member = ?3) ORDER BY started_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![filter.agent, limit, filter.member], run_from_row)?;
        rows.map(|r| r?).collect()
    }

    /// One run by its id or a unique prefix of it.
    pub fn get_run(&self, id: &str) -> Result<RunRecord> {
        let pattern = format!("{}%", id.replace(['%', '_'], ""));
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id LIKE ?1 LIMIT 2"
        ))?;
        let mut found: Vec<RunRecord> = stmt
            .query_map([pattern], run_from_row)?
            .map(|r| r?)
            .collect::<Result<_>>()?;
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(StoreError::RunNotFound(id.to_owned())),
            _ => Err(StoreError::RunAmbiguous(id.to_owned())),
        }
    }

    /// Marks runs left `running` by a supervisor process that no longer
    /// exists as `lost`. Returns their ids.
    pub fn mark_lost_runs(&mut self, is_alive: impl Fn(i64) -> bool) -> Result<Vec<String>> {
        self.write(Sync::Normal, |tx, key| {
            let mut stmt =
                tx.prepare("SELECT id, pid, member, agent FROM runs WHERE status = 'running'")?;
            let orphans: Vec<(String, Option<i64>, Option<String>, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut lost = Vec::new();
            for (id, pid, member, agent) in orphans {
                if pid.is_some_and(&is_alive) {
                    continue;
                }
                tx.execute(
                    "UPDATE runs SET status = 'lost', ended_at = ?2 WHERE id = ?1",
                    params![id, format_time(crate::now())],
                )?;
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
        write_tx(&mut self.conn, Sync::Normal, |tx| {
            let detail: Option<String> = tx
                .query_row("SELECT detail FROM runs WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            let detail = detail.ok_or_else(|| StoreError::RunNotFound(id.to_owned()))?;
            let mut detail: serde_json::Value = serde_json::from_str(&detail)
                .map_err(|_| StoreError::Corrupt(format!("run {id} has a malformed detail")))?;
            if !detail["notes"].is_array() {
                detail["notes"] = json!([]);
            }
            if let Some(notes) = detail["notes"].as_array_mut() {
                notes.push(json!(note));
            }
            tx.execute(
                "UPDATE runs SET detail = ?2 WHERE id = ?1",
                params![id, detail.to_string()],
            )?;
            Ok(())
        })
    }

    /// The run recorded for a webhook delivery (`detail.delivery`), if any:
    /// how a restarted daemon tells a delivery it already ran from one whose
    /// run was never recorded.
    pub fn run_for_delivery(&self, delivery: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM runs WHERE json_extract(detail, '$.delivery') = ?1 LIMIT 1",
                [delivery],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Whether a run exists (used to check ids from the outside).
    pub fn run_exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM runs WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuditVerdict, MasterKey};

    fn record(id: &str, agent: &str) -> RunRecord {
        RunRecord {
            id: id.into(),
            agent: agent.into(),
            trigger: "cli".into(),
            member: Some("alice".into()),
            status: RunStatus::Running,
            started_at: crate::now(),
            ended_at: None,
            log_bytes: 0,
            redactions: 0,
            detail: json!({ "injected": [{ "name": "A", "version": 1 }] }),
        }
    }

    #[test]
    fn runs_are_listed_by_member() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(dir.path(), &MasterKey::from_bytes([6; 32])).unwrap();
        s.start_run(&record("0190-aaaa", "fixer"), &json!({}))
            .unwrap();
        let mut bobs = record("0190-bbbb", "fixer");
        bobs.member = Some("bob".into());
        s.start_run(&bobs, &json!({})).unwrap();
        let mut nobodys = record("0190-cccc", "fixer");
        nobodys.member = None;
        s.start_run(&nobodys, &json!({})).unwrap();
        let ids = |member| {
            s.list_runs(&RunFilter {
                member,
                ..RunFilter::default()
            })
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
        };
        assert_eq!(ids(Some("bob")), ["0190-bbbb"]);
        assert_eq!(ids(Some("alice")), ["0190-aaaa"]);
        assert_eq!(ids(None).len(), 3);
    }

    #[test]
    fn runs_round_trip_and_are_audited() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(dir.path(), &MasterKey::from_bytes([6; 32])).unwrap();
        let mut r = record("0190-aaaa", "fixer");
        s.start_run(&r, &json!({ "run": r.id })).unwrap();
        s.start_run(&record("0190-bbbb", "other"), &json!({}))
            .unwrap();
        r.status = RunStatus::Failed { code: 3 };
        r.ended_at = Some(crate::now());
        r.log_bytes = 42;
        s.finish_run(&r).unwrap();
        let got = s.get_run("0190-a").unwrap();
        assert_eq!(got.status, RunStatus::Failed { code: 3 });
        assert_eq!(got.log_bytes, 42);
        assert!(matches!(
            s.get_run("0190"),
            Err(StoreError::RunAmbiguous(p)) if p == "0190"
        ));
        assert!(s.get_run("nope").is_err());
        let only = s
            .list_runs(&RunFilter {
                agent: Some("fixer"),
                ..RunFilter::default()
            })
            .unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(
            s.list_runs(&RunFilter {
                limit: Some(1),
                ..RunFilter::default()
            })
            .unwrap()
            .len(),
            1
        );
        let actions: Vec<String> = s
            .audit_list(None)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["run.start", "run.start", "run.end"]);
        assert!(matches!(
            s.audit_verify().unwrap(),
            AuditVerdict::Intact { entries: 3, .. }
        ));
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(json["status"], "failed");
        assert_eq!(json["code"], 3);
    }

    #[test]
    fn a_run_is_found_by_its_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(dir.path(), &MasterKey::from_bytes([6; 32])).unwrap();
        let mut r = record("r1", "a");
        r.detail["delivery"] = json!("slack:Ev1");
        s.start_run(&r, &json!({})).unwrap();
        assert_eq!(
            s.run_for_delivery("slack:Ev1").unwrap().as_deref(),
            Some("r1")
        );
        assert_eq!(s.run_for_delivery("slack:Ev2").unwrap(), None);
    }

    #[test]
    fn orphaned_runs_become_lost_unless_their_process_lives() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(dir.path(), &MasterKey::from_bytes([6; 32])).unwrap();
        s.start_run(&record("r1", "a"), &json!({})).unwrap();
        assert!(s.mark_lost_runs(|_| true).unwrap().is_empty());
        assert_eq!(s.mark_lost_runs(|_| false).unwrap(), ["r1"]);
        assert_eq!(s.get_run("r1").unwrap().status, RunStatus::Lost);
        s.note_run("r1", "reply failed: not_in_channel").unwrap();
        s.note_run("r1", "second").unwrap();
        assert_eq!(
            s.get_run("r1").unwrap().detail["notes"],
            json!(["reply failed: not_in_channel", "second"])
        );
        assert!(s.note_run("nope", "x").is_err());
    }

    #[test]
    fn notes_made_while_a_run_goes_survive_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(dir.path(), &MasterKey::from_bytes([6; 32])).unwrap();
        let mut r = record("r1", "a");
        s.start_run(&r, &json!({})).unwrap();
        s.note_run("r1", "start reply failed").unwrap();
        r.status = RunStatus::Succeeded;
        r.ended_at = Some(crate::now());
        r.detail["exit"] = json!({"code": 0, "signal": null});
        s.finish_run(&r).unwrap();
        let got = s.get_run("r1").unwrap();
        assert_eq!(got.detail["notes"], json!(["start reply failed"]));
        assert_eq!(got.detail["exit"]["code"], 0);
        assert_eq!(got.detail["injected"], r.detail["injected"]);
        s.note_run("r1", "end reply failed").unwrap();
        assert_eq!(
            s.get_run("r1").unwrap().detail["notes"],
            json!(["start reply failed", "end reply failed"])
        );
    }
}
