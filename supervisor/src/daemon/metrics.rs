//! Counters and gauges of the daemon, served at `/metrics` in the
//! OpenMetrics text format by the Prometheus client library, which does the
//! format and its escaping. Labels are names (agents, triggers, secrets,
//! results), never values.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Schedule lateness buckets, in seconds.
const LATENESS_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];

/// A series' labels: names and their values, in order.
type Labels<const N: usize> = [(&'static str, String); N];

/// Counters by label values, counted up one at a time.
type Counters<const N: usize> = Family<Labels<N>, Counter>;

pub struct Metrics {
    registry: Registry,
    started: Counters<2>,
    finished: Counters<3>,
    webhooks: Counters<2>,
    control: Counters<2>,
    leaks: Counters<2>,
    /// Agents running now.
    pub running: Gauge,
    /// Runs waiting for a free slot.
    pub queued: Gauge,
    redactions: Counter,
    lateness: Histogram,
}

/// Counts one more of the series with these label values.
fn bump<const N: usize>(family: &Counters<N>, labels: [(&'static str, &str); N]) {
    family
        .get_or_create(&labels.map(|(name, value)| (name, value.to_owned())))
        .inc();
}

/// A metric registered under `name` (counters without `_total`: the
/// format adds it), and a handle to it.
fn registered<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut r = Registry::default();
        Metrics {
            started: registered(
                &mut r,
                "supervisor_runs_started",
                "Runs started, by agent and trigger",
                Family::default(),
            ),
            finished: registered(
                &mut r,
                "supervisor_runs_finished",
                "Runs finished, by agent, trigger and outcome",
                Family::default(),
            ),
            running: registered(
                &mut r,
                "supervisor_runs_running",
                "Agents running now",
                Gauge::default(),
            ),
            queued: registered(
                &mut r,
                "supervisor_runs_queued",
                "Runs waiting for a free slot",
                Gauge::default(),
            ),
            webhooks: registered(
                &mut r,
                "supervisor_webhook_requests",
                "Webhook requests, by source and result",
                Family::default(),
            ),
            control: registered(
                &mut r,
                "supervisor_control_requests",
                "Requests on the control socket, by request and result",
                Family::default(),
            ),
            redactions: registered(
                &mut r,
                "supervisor_redactions",
                "Secret values replaced in agent output",
                Counter::default(),
            ),
            leaks: registered(
                &mut r,
                "supervisor_secret_leaks",
                "Runs whose output showed a secret's value (redacted), by agent and secret name",
                Family::default(),
            ),
            lateness: registered(
                &mut r,
                "supervisor_schedule_lateness_seconds",
                "How late scheduled runs were submitted",
                Histogram::new(LATENESS_BUCKETS),
            ),
            registry: r,
        }
    }
}

impl Metrics {
    pub fn run_started(&self, agent: &str, trigger: &str) {
        bump(&self.started, [("agent", agent), ("trigger", trigger)]);
    }

    pub fn run_finished(&self, agent: &str, trigger: &str, outcome: &str) {
        bump(
            &self.finished,
            [("agent", agent), ("trigger", trigger), ("outcome", outcome)],
        );
    }

    /// One webhook request and what became of it (accepted, bad_signature,
    /// stale, duplicate, malformed, ...).
    pub fn webhook(&self, source: &str, result: &str) {
        bump(&self.webhooks, [("source", source), ("result", result)]);
    }

    /// One request on the control socket and how it ended (`ok`, or the
    /// error's kind: `denied`, `not_a_member`, `agent`, `malformed`, ...).
    pub fn control(&self, request: &str, result: &str) {
        bump(&self.control, [("request", request), ("result", result)]);
    }

    /// A run of `agent` whose output showed the value of `secret`.
    pub fn leak(&self, agent: &str, secret: &str) {
        bump(&self.leaks, [("agent", agent), ("secret", secret)]);
    }

    /// Values replaced in the output of a run that ended.
    pub fn redacted(&self, count: u64) {
        self.redactions.inc_by(count);
    }

    pub fn schedule_lateness(&self, seconds: f64) {
        self.lateness.observe(seconds);
    }

    /// The exposition, ending with `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_metric_names_the_readme_gives() {
        let m = Metrics::default();
        m.run_started("fixer", "cron");
        m.run_started("fixer", "cron");
        m.run_finished("fixer", "cron", "succeeded");
        m.webhook("slack", "bad_signature");
        m.control("secret_list", "ok");
        m.schedule_lateness(0.003);
        m.leak("fixer", "GITHUB_TOKEN");
        m.redacted(4);
        m.running.inc();
        let text = m.render();
        for line in [
            "supervisor_runs_started_total{agent=\"fixer\",trigger=\"cron\"} 2",
            "supervisor_runs_finished_total{agent=\"fixer\",trigger=\"cron\",outcome=\"succeeded\"} 1",
            "supervisor_webhook_requests_total{source=\"slack\",result=\"bad_signature\"} 1",
            "supervisor_control_requests_total{request=\"secret_list\",result=\"ok\"} 1",
            "supervisor_secret_leaks_total{agent=\"fixer\",secret=\"GITHUB_TOKEN\"} 1",
            "supervisor_redactions_total 4",
            "supervisor_runs_running 1",
            "supervisor_runs_queued 0",
            "supervisor_schedule_lateness_seconds_bucket{le=\"0.005\"} 1",
            "supervisor_schedule_lateness_seconds_bucket{le=\"0.001\"} 0",
            "supervisor_schedule_lateness_seconds_bucket{le=\"+Inf\"} 1",
            "supervisor_schedule_lateness_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.webhook("slack", "a\"b\\c\nd");
        let text = m.render();
        assert!(
            text.contains(r#"result="a\"b\\c\nd"} 1"#),
            "escaped by the format's rules: {text}"
        );
    }
}
