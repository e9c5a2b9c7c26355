//! Replies about a run in its Slack thread: "Starting …" when it starts,
//! then its outcome, how long it took and the end of its redacted output.
//! Every reply passes the run's redactor after it is escaped and cut.

use std::time::Duration;

use supervisor_store::{RunRecord, RunStatus};
use tokio::sync::watch;

use super::api::SlackApi;
use crate::daemon::runner::{Replier, ReplyFuture};
use crate::run::Outcome;
use crate::wording;

/// How much of the run's output a reply quotes.
const MAX_QUOTED_CHARS: usize = 3000;
/// How long the "finished" reply waits for the "started" one to land, so
/// the thread reads in order.
const STARTED_WAIT: Duration = Duration::from_secs(2 * 60);

/// Answers about one run in one Slack thread.
pub(super) struct ThreadReplier {
    api: SlackApi,
    channel: String,
    thread_ts: String,
    /// Set once the "started" reply was sent (or failed).
    started: watch::Sender<bool>,
}

impl ThreadReplier {
    pub(super) fn new(api: SlackApi, channel: &str, thread_ts: &str) -> ThreadReplier {
        ThreadReplier {
            api,
            channel: channel.to_owned(),
            thread_ts: thread_ts.to_owned(),
            started: watch::Sender::new(false),
        }
    }
}

impl Replier for ThreadReplier {
    fn started(&self, record: &RunRecord) -> ReplyFuture {
        let text = started_text(record);
        let (api, channel, thread_ts) = (
            self.api.clone(),
            self.channel.clone(),
            self.thread_ts.clone(),
        );
        let done = self.started.clone();
        Box::pin(async move {
            let result = api.post(&channel, &thread_ts, &text).await;
            done.send_replace(true);
            result
                .err()
                .map(|e| format!("Slack reply (started) failed: {e}"))
                .into_iter()
                .collect()
        })
    }

    fn finished(&self, outcome: &Outcome) -> ReplyFuture {
        let text = finished_text(outcome);
        // A refused run never had a "started" reply to wait for.
        let wait = !matches!(outcome.record.status, RunStatus::Rejected { .. });
        let mut started = self.started.subscribe();
        let (api, channel, thread_ts) = (
            self.api.clone(),
            self.channel.clone(),
            self.thread_ts.clone(),
        );
        Box::pin(async move {
            if wait {
                let _ = tokio::time::timeout(STARTED_WAIT, started.wait_for(|s| *s)).await;
            }
            api.post(&channel, &thread_ts, &text)
                .await
                .err()
                .map(|e| format!("Slack reply (finished) failed: {e}"))
                .into_iter()
                .collect()
        })
    }
}

fn started_text(record: &RunRecord) -> String {
    format!(
        "Starting `{}` (run `{}`)…",
        escape(&record.agent),
        escape(&record.id)
    )
}

/// The outcome, how long it took and the end of the redacted output. The
/// whole text passes the run's redactor again after escaping, so no value
/// can reach Slack even through the formatting.
fn finished_text(outcome: &Outcome) -> String {
    let r = &outcome.record;
    let mut text = format!(
        "`{}` (run `{}`) {}",
        escape(&r.agent),
        escape(&r.id),
        escape(&wording::outcome(&r.status))
    );
    if let (false, Some(ended)) = (matches!(r.status, RunStatus::Rejected { .. }), r.ended_at) {
        text.push_str(&format!(" after {}", wording::elapsed(r.started_at, ended)));
    }
    text.push('.');
    let redact = |s: &str| match &outcome.redactor {
        Some(red) => red.redact_text(s),
        None => s.to_owned(),
    };
    let quoted = last_lines(&redact(&outcome.tail), MAX_QUOTED_CHARS);
    if !quoted.is_empty() {
        text.push_str("\n```\n");
        text.push_str(&escape(&quoted).replace("```", "``\u{200b}`"));
        text.push_str("\n```");
    }
    redact(&text)
}

/// At most `max` characters from the end of `text`, starting at a line
/// boundary when it had to be cut.
fn last_lines(text: &str, max: usize) -> String {
    let text = text.trim_end();
    let count = text.chars().count();
    if count <= max {
        return text.trim_start_matches('\n').to_owned();
    }
    let start = text.char_indices().nth(count - max).map_or(0, |(i, _)| i);
    let mut rest = &text[start..];
    if let Some(nl) = rest.find('\n') {
        if nl + 1 < rest.len() {
            rest = &rest[nl + 1..];
        }
    }
    format!("…\n{rest}")
}

/// Escapes the three characters Slack's message format reserves.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use secrecy::SecretString;

    fn outcome(status: RunStatus, tail: &str, secrets: &[(&str, &str)]) -> Outcome {
        let values: Vec<(String, SecretString)> = secrets
            .iter()
            .map(|(n, v)| (n.to_string(), SecretString::from(v.to_string())))
            .collect();
        let redactor = crate::redact::Redactor::new(values.iter().map(|(n, v)| (n.as_str(), v)));
        let started = chrono::Utc::now();
        Outcome {
            record: RunRecord {
                id: "0190-run".into(),
                agent: "triage".into(),
                trigger: "slack".into(),
                member: Some("alice".into()),
                status,
                started_at: started,
                ended_at: Some(started + chrono::Duration::milliseconds(2500)),
                log_bytes: 0,
                redactions: 0,
                detail: serde_json::json!({}),
            },
            tail: tail.into(),
            redactor: Some(Arc::new(redactor)),
        }
    }

    #[test]
    fn the_finished_reply_quotes_the_end_of_the_output_in_a_code_block() {
        let text = finished_text(&outcome(
            RunStatus::Succeeded,
            "checking <deploy> & co\ndone\n",
            &[],
        ));
        assert_eq!(
            text,
            "`triage` (run `0190-run`) succeeded after 2.5 s.\n```\nchecking &lt;deploy&gt; &amp; co\ndone\n```"
        );
        let text = finished_text(&outcome(RunStatus::Failed { code: 3 }, "", &[]));
        assert_eq!(
            text,
            "`triage` (run `0190-run`) failed (exit code 3) after 2.5 s."
        );
        let text = finished_text(&outcome(
            RunStatus::Rejected {
                reason: "the run queue is full (64 runs waiting)".into(),
            },
            "",
            &[],
        ));
        assert_eq!(
            text,
            "`triage` (run `0190-run`) rejected: the run queue is full (64 runs waiting)."
        );
    }

    #[test]
    fn the_finished_reply_never_carries_a_value() {
        // A value that only appears once escaped, and one in the output.
        let secrets = [("AMP", "x&amp;y-value"), ("TOKEN", "tok-123456789")];
        let text = finished_text(&outcome(
            RunStatus::Succeeded,
            "x&y-value and tok-123456789\n",
            &secrets,
        ));
        assert!(!text.contains("x&amp;y-value"), "{text}");
        assert!(!text.contains("tok-123456789"), "{text}");
        assert!(text.contains("[REDACTED:TOKEN]"), "{text}");
    }

    #[test]
    fn the_tail_is_redacted_whole_before_it_is_cut() {
        // One line longer than the quote: cut first, the reply would start inside the value.
        let value = "slack-secret-0123456789";
        let tail = format!("{value}{}", "y".repeat(MAX_QUOTED_CHARS - 6));
        let text = finished_text(&outcome(RunStatus::Succeeded, &tail, &[("TOKEN", value)]));
        assert!(!text.contains(&value[value.len() - 6..]), "{text}");
        assert!(text.contains(&"y".repeat(MAX_QUOTED_CHARS - 6)), "{text}");
    }

    #[test]
    fn long_output_is_cut_at_a_line_boundary() {
        let tail: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        let q = last_lines(&tail, MAX_QUOTED_CHARS);
        assert!(q.chars().count() <= MAX_QUOTED_CHARS + 2, "{}", q.len());
        assert!(q.starts_with("…\nline "), "{}", &q[..20]);
        assert!(q.ends_with("line 1999"));
        let multibyte = "é".repeat(5000);
        assert_eq!(last_lines(&multibyte, 10), format!("…\n{}", "é".repeat(10)));
        assert_eq!(last_lines("\n\nshort\n\n", 100), "short");
    }
}
