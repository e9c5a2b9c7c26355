//! `POST /hooks/<name>` end to end: signed requests from automated
//! integrations start the hook's agent with team secrets only.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use supervisor_tests::signing::{now_secs, webhook_headers};
use supervisor_tests::{Daemon, Response, STOP_TIMEOUT, Team, read_env0, read_json};

const HOOK_SECRET: &str = "whsec-alerts-e2e-4f1b";
const TEAM_TOKEN: &str = "team-value-c0ffee12";
const ALICE_TOKEN: &str = "alice-value-badd0g34";
const WAIT: Duration = Duration::from_secs(30);

struct Setup {
    team: Team,
    daemon: Option<Daemon>,
    out: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let out = tempfile::Builder::new()
            .prefix("supervisor-hooks-out-")
            .tempdir()
            .unwrap()
            .keep();
        let script = r#"env -0 > "$OUT/$SUPERVISOR_RUN_ID.env"; cat > "$OUT/$SUPERVISOR_RUN_ID.json"; echo "restarting with ${TEAM_TOKEN:-absent}""#;
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:0"

[[agents]]
name = "remediate"
command = ["/bin/sh", "-c", {script}]
triggers = ["webhook"]
timeout = "30s"
env = {{ PATH = "/usr/bin:/bin", OUT = {out} }}

[[agents]]
name = "local"
command = ["/bin/true"]

[[webhooks]]
name = "alerts"
agent = "remediate"
secret = {{ file = "alerts-secret" }}
"#,
            script = serde_json::to_string(script).unwrap(),
            out = serde_json::to_string(&out.to_string_lossy()).unwrap(),
        );
        let team = Team::uninitialised(&config);
        std::fs::write(team.path().join("alerts-secret"), HOOK_SECRET).unwrap();
        team.cmd(&["init"]).ok();
        // Alice's personal secret exists: a webhook run must not get it.
        team.secret(&["--personal"], "ALICE_TOKEN", ALICE_TOKEN);
        team.secret(&["--team"], "TEAM_TOKEN", TEAM_TOKEN);
        let daemon = team.serve_logging("info");
        Setup {
            team,
            daemon: Some(daemon),
            out,
        }
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon runs")
    }

    fn restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(STOP_TIMEOUT);
        }
        self.daemon = Some(self.team.serve_logging("info"));
    }

    fn post(&self, name: &str, headers: &[(String, String)], body: &[u8]) -> Response {
        self.daemon().post(&format!("/hooks/{name}"), headers, body)
    }

    /// Signs `body` now and sends it to `/hooks/alerts`.
    fn send(&self, body: &[u8]) -> (Vec<(String, String)>, Response) {
        let headers = webhook_headers(HOOK_SECRET, now_secs(), body);
        let r = self.post("alerts", &headers, body);
        (headers, r)
    }

    fn runs(&self) -> Vec<Value> {
        self.team.runs()
    }

    #[track_caller]
    fn finished_runs(&self, n: usize) -> Vec<Value> {
        self.team.finished_runs(n, WAIT)
    }

    fn env_of(&self, id: &str) -> HashMap<String, String> {
        read_env0(&self.out.join(format!("{id}.env")))
    }

    fn context_of(&self, id: &str) -> Value {
        read_json(&self.out.join(format!("{id}.json")))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        drop(self.daemon.take());
        let _ = std::fs::remove_dir_all(&self.out);
    }
}

#[track_caller]
fn assert_status(r: &Response, status: u16, text: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert!(r.text().contains(text), "expected {text:?} in {r:?}");
}

#[test]
fn a_signed_request_runs_the_agent_with_team_secrets_only() {
    let s = Setup::new();
    let body = br#"{"alert":"disk full","host":"db-1","action":"restart the service"}"#;
    let (_, r) = s.send(body);
    assert_status(&r, 202, "run queued");
    let runs = s.finished_runs(1);
    let run = &runs[0];
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["trigger"], "webhook");
    assert_eq!(run["agent"], "remediate");
    assert_eq!(run["member"], Value::Null);
    let id = run["id"].as_str().unwrap();
    let env = s.env_of(id);
    assert_eq!(env["TEAM_TOKEN"], TEAM_TOKEN);
    assert!(!env.contains_key("ALICE_TOKEN"), "{env:?}");
    assert!(!env.contains_key("SUPERVISOR_MEMBER"), "{env:?}");
    assert_eq!(env["SUPERVISOR_TRIGGER"], "webhook");
    assert_eq!(env["SUPERVISOR_PROMPT"].as_bytes(), body);
    let ctx = s.context_of(id);
    assert_eq!(ctx["source"]["webhook"]["name"], "alerts");
    assert_eq!(
        ctx["source"]["webhook"]["body"]
            .as_str()
            .unwrap()
            .as_bytes(),
        body
    );
    assert_eq!(ctx["member"], Value::Null);
    // The output is redacted in the run log.
    let log = s.team.cmd(&["runs", "logs", id]).ok().to_owned();
    assert!(
        log.contains("restarting with [REDACTED:TEAM_TOKEN]"),
        "{log}"
    );
    assert!(!log.contains(TEAM_TOKEN));
    // What `scope` says for this trigger matches what the run received.
    let scope = s
        .team
        .cmd(&["scope", "remediate", "--trigger", "webhook", "--json"])
        .ok()
        .to_owned();
    assert!(
        scope.contains("TEAM_TOKEN") && !scope.contains("ALICE_TOKEN"),
        "{scope}"
    );
    assert_eq!(s.daemon().webhook_count("webhook", "accepted"), 1);
}

#[test]
fn binary_bodies_reach_the_agent_as_base64_without_a_prompt() {
    let s = Setup::new();
    let body = [0xff, 0xfe, 0x00, 0x01, b'x'];
    let (_, r) = s.send(&body);
    assert_status(&r, 202, "run queued");
    let runs = s.finished_runs(1);
    let id = runs[0]["id"].as_str().unwrap();
    let ctx = s.context_of(id);
    assert_eq!(ctx["source"]["webhook"]["body_base64"], "//4AAXg=");
    assert!(!s.env_of(id).contains_key("SUPERVISOR_PROMPT"));
}

#[test]
fn forged_old_replayed_and_oversized_requests_start_nothing() {
    let mut s = Setup::new();
    let body = br#"{"alert":"cpu high"}"#;
    let ts = now_secs();

    // Signed with another secret.
    let headers = webhook_headers("another-secret", ts, body);
    assert_status(&s.post("alerts", &headers, body), 401, "bad signature");
    // A valid signature for another body.
    let headers = webhook_headers(HOOK_SECRET, ts, b"{}");
    assert_status(&s.post("alerts", &headers, body), 401, "bad signature");
    // The signature of one timestamp sent with another.
    let mut headers = webhook_headers(HOOK_SECRET, ts, body);
    headers[0].1 = (ts - 1).to_string();
    assert_status(&s.post("alerts", &headers, body), 401, "bad signature");
    // Correctly signed six minutes ago, and six minutes ahead.
    for skew in [-360, 360] {
        let headers = webhook_headers(HOOK_SECRET, ts + skew, body);
        assert_status(&s.post("alerts", &headers, body), 401, "stale");
    }
    // No headers at all, and a signature without its `sha256=` prefix.
    assert_status(&s.post("alerts", &[], body), 401, "missing header");
    let mut headers = webhook_headers(HOOK_SECRET, ts, body);
    headers[1].1 = headers[1].1.trim_start_matches("sha256=").to_owned();
    assert_status(&s.post("alerts", &headers, body), 401, "malformed");
    // A hook that does not exist.
    let headers = webhook_headers(HOOK_SECRET, ts, body);
    assert_status(&s.post("nope", &headers, body), 404, "no such webhook");
    // Over 256 KiB, correctly signed: refused before it is read whole.
    let big = vec![b'a'; 256 * 1024 + 1];
    let headers = webhook_headers(HOOK_SECRET, ts, &big);
    if let Ok(r) = s
        .daemon()
        .try_request("POST", "/hooks/alerts", &headers, &big)
    {
        assert_eq!(r.status, 413, "{r:?}");
    }
    // Exactly 256 KiB is accepted (not a prompt: too long).
    let max = vec![b'b'; 256 * 1024];
    let (_, r) = s.send(&max);
    assert_status(&r, 202, "run queued");

    // The real request, then its replay: one run.
    let (headers, r) = s.send(body);
    assert_status(&r, 202, "run queued");
    assert_status(&s.post("alerts", &headers, body), 200, "duplicate");

    let runs = s.finished_runs(2);
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    // The two runs may start in either order.
    let body_len = |id: &str| {
        s.context_of(id)["source"]["webhook"]["body"]
            .as_str()
            .unwrap()
            .len()
    };
    let big_run = runs
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .find(|id| body_len(id) == 256 * 1024)
        .expect("the 256 KiB request ran");
    assert!(!s.env_of(big_run).contains_key("SUPERVISOR_PROMPT"));

    let d = s.daemon();
    assert_eq!(d.webhook_count("webhook", "bad_signature"), 3);
    assert_eq!(d.webhook_count("webhook", "stale"), 2);
    assert_eq!(d.webhook_count("webhook", "missing_header"), 1);
    assert_eq!(d.webhook_count("webhook", "malformed"), 1);
    assert_eq!(d.webhook_count("webhook", "unknown_hook"), 1);
    assert_eq!(d.webhook_count("webhook", "too_large"), 1);
    assert_eq!(d.webhook_count("webhook", "duplicate"), 1);
    assert_eq!(d.webhook_count("webhook", "accepted"), 2);

    // A replay after a restart is still a replay.
    s.restart();
    assert_status(&s.post("alerts", &headers, body), 200, "duplicate");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.runs().len(), 2);
}

#[test]
fn a_request_refused_by_a_full_queue_runs_once_when_retried() {
    let secret_file = "busy-secret";
    let config = r#"
[server]
listen = "127.0.0.1:0"
max_concurrent_runs = 1
queue_limit = 0

[[agents]]
name = "slow"
command = ["/bin/sleep", "2"]
triggers = ["webhook"]
timeout = "30s"

[[webhooks]]
name = "busy"
agent = "slow"
secret = { file = "busy-secret" }
"#;
    let team = Team::uninitialised(config);
    std::fs::write(team.path().join(secret_file), HOOK_SECRET).unwrap();
    team.cmd(&["init"]).ok();
    let daemon = team.serve_logging("info");
    let post =
        |headers: &[(String, String)], body: &[u8]| daemon.post("/hooks/busy", headers, body);

    let first = br#"{"n":1}"#;
    let second = br#"{"n":2}"#;
    assert_status(
        &post(&webhook_headers(HOOK_SECRET, now_secs(), first), first),
        202,
        "run queued",
    );
    // Once the first run holds the only slot, the queue (of 0) is full.
    supervisor_tests::wait_for("the first run to start", WAIT, || {
        (team.runs().first().map(|r| r["status"] == "running") == Some(true)).then_some(())
    });
    let headers = webhook_headers(HOOK_SECRET, now_secs(), second);
    let refused = post(&headers, second);
    assert_status(&refused, 503, "try again later");
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    // The sender retries the same signed request after the first run ends:
    // accepted, and run once; a further retry is a duplicate.
    team.finished_runs(1, WAIT);
    assert_status(&post(&headers, second), 202, "run queued");
    assert_status(&post(&headers, second), 200, "duplicate");
    let runs = team.finished_runs(2, WAIT);
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    assert_eq!(daemon.webhook_count("webhook", "refused"), 1);
}
