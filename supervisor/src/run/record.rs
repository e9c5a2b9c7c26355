//! What a run's record holds beyond its columns: a fresh record for a
//! request, the status an exit makes, the texts of its detail redacted
//! whole (cut only after), and the secrets whose values the output showed.

use serde_json::json;
use supervisor_store::{LeakReport, OpenedSecret, RunRecord, RunStatus};
use supervisor_triggers::TriggerEvent;

use super::EXIT_REFUSED;
use crate::redact::Redactor;

/// A fresh record for a request: a time-ordered id, nothing decided yet.
pub(super) fn new_record(req: &TriggerEvent) -> RunRecord {
    RunRecord {
        id: uuid::Uuid::now_v7().to_string(),
        agent: req.agent.clone(),
        trigger: req.kind.to_string(),
        member: req.initiator.clone(),
        status: RunStatus::Running,
        started_at: supervisor_store::now(),
        ended_at: None,
        log_bytes: 0,
        redactions: 0,
        detail: match &req.delivery {
            Some(d) => json!({ "delivery": d }),
            None => json!({}),
        },
    }
}

pub(super) fn status_of(status: std::process::ExitStatus) -> RunStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => RunStatus::Succeeded,
        (Some(code), _) => RunStatus::Failed { code },
        (None, Some(signal)) => RunStatus::Killed { signal },
        (None, None) => RunStatus::Failed { code: EXIT_REFUSED },
    }
}

/// Redacts every string in a JSON value (a run record's detail).
pub(super) fn redact_json(redactor: &Redactor, value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => *s = redactor.redact_text(s),
        serde_json::Value::Array(items) => {
            for v in items {
                redact_json(redactor, v);
            }
        }
        serde_json::Value::Object(map) => {
            for v in map.values_mut() {
                redact_json(redactor, v);
            }
        }
        _ => {}
    }
}

/// The secrets whose values the output showed, from the replacements per secret.
pub(super) fn leaks(
    redactor: &Redactor,
    hits: &[u64],
    secrets: &[OpenedSecret],
) -> Vec<LeakReport> {
    redactor
        .names()
        .iter()
        .zip(hits)
        .filter(|&(_, &h)| h > 0)
        .filter_map(|(name, &hits)| {
            let s = secrets.iter().find(|s| s.name.as_str() == name)?;
            Some(LeakReport {
                scope: s.scope.clone(),
                name: s.name.clone(),
                version: s.version,
                hits,
            })
        })
        .collect()
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
