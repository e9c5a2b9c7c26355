//! How run outcomes and durations read wherever people see them: tables,
//! the terminal, Slack threads and Linear comments. One wording each, built
//! on the status words of the run records (`succeeded`, `failed`, `killed`,
//! `timed_out`, `rejected`, `interrupted`, `lost`, `leaked`, `running`), so
//! that a reply, a table, `--json` and the README all say the same thing.

use std::time::Duration;

use supervisor_store::RunStatus;

use crate::run::{EXIT_LEAKED, EXIT_REFUSED, EXIT_TIMEOUT};

/// The status word, with what tells more: "failed (exit code 3)",
/// "killed (signal 9)", "rejected: <reason>".
pub fn outcome(status: &RunStatus) -> String {
    match status {
        RunStatus::Failed { code } => format!("failed (exit code {code})"),
        RunStatus::Killed { signal } => format!("killed (signal {signal})"),
        RunStatus::Rejected { reason } => format!("rejected: {reason}"),
        RunStatus::Leaked { secret } => format!(
            "leaked: its output showed the value of {secret} (redacted), and `on_leak = \"fail\"` stopped it"
        ),
        other => other.label().to_owned(),
    }
}

/// The exit status `supervisor run` gives a run that ended so: the agent's
/// own, 128+N for signal N, 124, 123 or 125 (see the README's table).
/// `None` while it runs, and for a run that was stopped from outside (its
/// exit status is that of the signal that stopped it, which the record
/// does not keep) or lost.
pub fn exit_code(status: &RunStatus) -> Option<i32> {
    match status {
        RunStatus::Succeeded => Some(0),
        RunStatus::Failed { code } => Some(*code),
        RunStatus::Killed { signal } => Some(128 + signal),
        RunStatus::TimedOut => Some(EXIT_TIMEOUT),
        RunStatus::Leaked { .. } => Some(EXIT_LEAKED),
        RunStatus::Rejected { .. } => Some(EXIT_REFUSED),
        RunStatus::Running | RunStatus::Interrupted | RunStatus::Lost => None,
    }
}

/// "850 ms", "2.5 s", "2 min 05 s", "1 h 05 min".
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let secs = d.as_secs();
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", d.as_secs_f64()),
        _ if secs < 3600 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// The time from `start` to `end` (none when the clock went backwards).
pub fn elapsed(start: chrono::DateTime<chrono::Utc>, end: chrono::DateTime<chrono::Utc>) -> String {
    duration((end - start).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(12)), "12 ms");
        assert_eq!(duration(Duration::from_millis(2345)), "2.3 s");
        assert_eq!(duration(Duration::from_secs(125)), "2 min 05 s");
        assert_eq!(duration(Duration::from_secs(7500)), "2 h 05 min");
    }

    #[test]
    fn outcomes_use_the_status_words() {
        assert_eq!(outcome(&RunStatus::Succeeded), "succeeded");
        assert_eq!(outcome(&RunStatus::TimedOut), "timed_out");
        assert_eq!(
            outcome(&RunStatus::Failed { code: 3 }),
            "failed (exit code 3)"
        );
        assert_eq!(
            outcome(&RunStatus::Rejected {
                reason: "the run queue is full (64 runs waiting)".into()
            }),
            "rejected: the run queue is full (64 runs waiting)"
        );
        assert_eq!(exit_code(&RunStatus::Killed { signal: 9 }), Some(137));
        assert_eq!(exit_code(&RunStatus::Interrupted), None);
    }
}
