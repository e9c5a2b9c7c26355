//! Counters and gauges of the daemon, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Schedule lateness buckets, in seconds.
const LATENESS_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];

#[derive(Default)]
pub struct Metrics {
    started: Mutex<BTreeMap<(String, String), u64>>,
    finished: Mutex<BTreeMap<(String, String, String), u64>>,
    webhooks: Mutex<BTreeMap<(String, String), u64>>,
    control: Mutex<BTreeMap<(String, String), u64>>,
    leaks: Mutex<BTreeMap<(String, String), u64>>,
    pub running: AtomicU64,
    pub queued: AtomicU64,
    pub redactions: AtomicU64,
    lateness: Mutex<Histogram>,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; LATENESS_BUCKETS.len()],
    count: u64,
    sum: f64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    *map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default() += 1;
}

impl Metrics {
    pub fn run_started(&self, agent: &str, trigger: &str) {
        bump(&self.started, (agent.to_owned(), trigger.to_owned()));
    }

    pub fn run_finished(&self, agent: &str, trigger: &str, outcome: &str) {
        bump(
            &self.finished,
            (agent.to_owned(), trigger.to_owned(), outcome.to_owned()),
        );
    }

    /// One webhook request and what became of it (accepted, bad_signature,
    /// stale, duplicate, malformed, ...).
    pub fn webhook(&self, source: &str, result: &str) {
        bump(&self.webhooks, (source.to_owned(), result.to_owned()));
    }

    /// One request on the control socket and how it ended (`ok`, or the
    /// error's kind: `denied`, `not_a_member`, `agent`, `malformed`, ...).
    pub fn control(&self, request: &str, result: &str) {
        bump(&self.control, (request.to_owned(), result.to_owned()));
    }

    /// A run of `agent` whose output showed the value of `secret`.
    pub fn leak(&self, agent: &str, secret: &str) {
        bump(&self.leaks, (agent.to_owned(), secret.to_owned()));
    }

    pub fn schedule_lateness(&self, seconds: f64) {
        let mut h = self.lateness.lock().unwrap_or_else(|p| p.into_inner());
        for (i, bound) in LATENESS_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let started = snapshot(&self.started);
        let finished = snapshot(&self.finished);
        let webhooks = snapshot(&self.webhooks);
        let control = snapshot(&self.control);
        let leaks = snapshot(&self.leaks);
        header(
            &mut out,
            "supervisor_runs_started_total",
            "counter",
            "Runs started, by agent and trigger.",
        );
        for ((agent, trigger), n) in started {
            let _ = writeln!(
                out,
                "supervisor_runs_started_total{{agent=\"{}\",trigger=\"{}\"}} {n}",
                esc(&agent),
                esc(&trigger)
            );
        }
        header(
            &mut out,
            "supervisor_runs_finished_total",
            "counter",
            "Runs finished, by agent, trigger and outcome.",
        );
        for ((agent, trigger, outcome), n) in finished {
            let _ = writeln!(
                out,
                "supervisor_runs_finished_total{{agent=\"{}\",trigger=\"{}\",outcome=\"{}\"}} {n}",
                esc(&agent),
                esc(&trigger),
                esc(&outcome)
            );
        }
        header(
            &mut out,
            "supervisor_runs_running",
            "gauge",
            "Agents running now.",
        );
        let _ = writeln!(
            out,
            "supervisor_runs_running {}",
            self.running.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "supervisor_runs_queued",
            "gauge",
            "Runs waiting for a free slot.",
        );
        let _ = writeln!(
            out,
            "supervisor_runs_queued {}",
            self.queued.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "supervisor_webhook_requests_total",
            "counter",
            "Webhook requests, by source and result.",
        );
        for ((source, result), n) in webhooks {
            let _ = writeln!(
                out,
                "supervisor_webhook_requests_total{{source=\"{}\",result=\"{}\"}} {n}",
                esc(&source),
                esc(&result)
            );
        }
        header(
            &mut out,
            "supervisor_control_requests_total",
            "counter",
            "Requests on the control socket, by request and result.",
        );
        for ((request, result), n) in control {
            let _ = writeln!(
                out,
                "supervisor_control_requests_total{{request=\"{}\",result=\"{}\"}} {n}",
                esc(&request),
                esc(&result)
            );
        }
        header(
            &mut out,
            "supervisor_redactions_total",
            "counter",
            "Secret values replaced in agent output.",
        );
        let _ = writeln!(
            out,
            "supervisor_redactions_total {}",
            self.redactions.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "supervisor_secret_leaks_total",
            "counter",
            "Runs whose output showed a secret's value (redacted), by agent and secret name.",
        );
        for ((agent, secret), n) in leaks {
            let _ = writeln!(
                out,
                "supervisor_secret_leaks_total{{agent=\"{}\",secret=\"{}\"}} {n}",
                esc(&agent),
                esc(&secret)
            );
        }
        header(
            &mut out,
            "supervisor_schedule_lateness_seconds",
            "histogram",
            "How late scheduled runs were submitted.",
        );
        let h = self.lateness.lock().unwrap_or_else(|p| p.into_inner());
        for (bound, n) in LATENESS_BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(
                out,
                "supervisor_schedule_lateness_seconds_bucket{{le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "supervisor_schedule_lateness_seconds_bucket{{le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "supervisor_schedule_lateness_seconds_sum {}", h.sum);
        let _ = writeln!(
            out,
            "supervisor_schedule_lateness_seconds_count {}",
            h.count
        );
        out
    }
}

fn snapshot<K: Clone>(m: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    m.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.run_started("fixer", "cron");
        m.run_started("fixer", "cron");
        m.run_finished("fixer", "cron", "succeeded");
        m.webhook("slack", "bad_signature");
        m.schedule_lateness(0.003);
        m.leak("fixer", "GITHUB_TOKEN");
        let text = m.render();
        assert!(
            text.contains(
                "supervisor_secret_leaks_total{agent=\"fixer\",secret=\"GITHUB_TOKEN\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("supervisor_runs_started_total{agent=\"fixer\",trigger=\"cron\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "supervisor_webhook_requests_total{source=\"slack\",result=\"bad_signature\"} 1"
        ));
        assert!(text.contains("supervisor_schedule_lateness_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("supervisor_schedule_lateness_seconds_bucket{le=\"0.001\"} 0"));
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
