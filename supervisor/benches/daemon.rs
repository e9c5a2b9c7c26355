//! The daemon's footprint and punctuality, measured on the real `supervisor serve`:
//! - resident memory (VmRSS) idle, then with 100 agents running `sleep 30`, submitted as
//!   100 signed requests to a webhook; the difference per running agent;
//! - how late an every-second schedule fires over 20 s: the schedule timer (the daemon's
//!   `supervisor_schedule_lateness_seconds` histogram), the run record's start, and the
//!   agent's own clock when it starts.
//!
//! Aims: under 20 MiB idle, under 100 KiB more per running agent, p99 lateness under 50 ms.
//!
//! Needs the release binary, which `cargo bench` builds (or `SUPERVISOR_BIN`). Run with
//! `cargo bench -p supervisor --bench daemon`; `DAEMON_BENCH_AGENTS` (default 100) and
//! `DAEMON_BENCH_SECONDS` (default 20) change the load.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use supervisor_tests::signing::webhook_signature;
use supervisor_tests::{Daemon, STOP_TIMEOUT, Team, binary, server_section};

const HOOK_SECRET: &str = "bench-hook-secret-8f2c1d";
const TEAM_SECRETS: usize = 10;

fn main() {
    let agents = env_number("DAEMON_BENCH_AGENTS", 100);
    let seconds = env_number("DAEMON_BENCH_SECONDS", 20);
    println!("daemon: {}", binary().display());
    memory(agents);
    lateness(seconds);
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A team in a temporary directory, initialised, with some team secrets;
/// `extra` continues its `[server]` section.
fn team(extra: &str) -> Team {
    let team = Team::new(&server_section(&format!(
        "shutdown_grace = \"1s\"\n{extra}"
    )));
    for i in 0..TEAM_SECRETS {
        let value = format!("bench-team-value-{i:02}-{}", "x".repeat(24));
        team.secret(&["--team"], &format!("TEAM_{i:02}"), &value);
    }
    team
}

/// VmRSS and VmHWM of the daemon, in KiB.
fn memory_of(daemon: &Daemon) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("a /proc status field")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// SIGTERM; panics unless the daemon exits cleanly.
fn stop(mut daemon: Daemon) {
    let status = daemon.stop(STOP_TIMEOUT);
    assert!(status.success(), "the daemon failed:\n{}", daemon.log());
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn memory(agents: usize) {
    let secret_file = tempfile::NamedTempFile::new().expect("secret file");
    std::fs::write(secret_file.path(), HOOK_SECRET).expect("write secret");
    let team = team(&format!(
        "max_concurrent_runs = {agents}\nqueue_limit = {agents}\n\n[[agents]]\nname = \"sleeper\"\ncommand = [\"/bin/sleep\", \"30\"]\ntriggers = [\"webhook\"]\n\n[[webhooks]]\nname = \"load\"\nagent = \"sleeper\"\nsecret = {{ file = \"{}\" }}\n",
        secret_file.path().display()
    ));
    let daemon = team.serve();
    // Warm the HTTP path, then let the allocator settle.
    for _ in 0..20 {
        daemon.get("/healthz");
        daemon.get("/metrics");
    }
    std::thread::sleep(Duration::from_secs(2));
    let (idle, idle_peak) = memory_of(&daemon);

    let started = Instant::now();
    for i in 0..agents {
        let body = format!("{{\"load\": {i}}}");
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let sig = webhook_signature(HOOK_SECRET, &ts, body.as_bytes());
        let answer = daemon.post(
            "/hooks/load",
            &[
                ("X-Supervisor-Timestamp", &ts),
                ("X-Supervisor-Signature", &sig),
            ],
            body.as_bytes(),
        );
        assert_eq!(answer.status, 202, "{}", answer.text());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon.get("/healthz").json()["runs_running"].as_u64() != Some(agents as u64) {
        assert!(Instant::now() < deadline, "not all agents started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let all_running = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (loaded, loaded_peak) = memory_of(&daemon);
    stop(daemon);

    println!();
    println!("resident memory of `supervisor serve` ({TEAM_SECRETS} team secrets)");
    println!(
        "  idle:                          {:6.1} MiB   (peak so far {:.1} MiB)   aim < 20 MiB",
        mib(idle),
        mib(idle_peak)
    );
    println!(
        "  {agents} agents running sleep 30:   {:6.1} MiB   (peak {:.1} MiB), all started in {:.2} s",
        mib(loaded),
        mib(loaded_peak),
        all_running.as_secs_f64()
    );
    println!(
        "  per running agent:             {:6.1} KiB   aim < 100 KiB",
        loaded.saturating_sub(idle) as f64 / agents as f64
    );
}

fn lateness(seconds: usize) {
    let team = team("");
    let marks = team.path().join("marks");
    std::fs::write(
        team.path().join("supervisor.toml"),
        std::fs::read_to_string(team.path().join("supervisor.toml")).unwrap()
            + &format!(
                "\n[[agents]]\nname = \"clock\"\ncommand = [\"/bin/sh\", \"-c\", \"date +%s.%N >> {}\"]\ntriggers = [\"cron\"]\n\n[[schedules]]\nname = \"each-second\"\ncron = \"* * * * * *\"\nagent = \"clock\"\noverlap = \"allow\"\n",
                marks.display()
            ),
    )
    .unwrap();
    let daemon = team.serve();
    std::thread::sleep(Duration::from_secs(seconds as u64) + Duration::from_millis(500));
    let metrics = daemon.get("/metrics").text();
    stop(daemon);

    // The timer: the daemon's histogram (bucket bounds only).
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("supervisor_schedule_lateness_seconds_bucket{le=\"") {
            let (bound, count) = rest.split_once("\"} ").expect("a bucket");
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().expect("a bound")
            };
            buckets.push((bound, count.parse().expect("a count")));
        }
    }
    let total = buckets.last().map_or(0, |b| b.1);
    let bucket_of = |q: f64| {
        let need = (q * total as f64).ceil() as u64;
        buckets
            .iter()
            .find(|(_, n)| *n >= need)
            .map_or(f64::INFINITY, |b| b.0)
    };

    // The run record's start (milliseconds), against the whole second it was due.
    let mut recorded: Vec<f64> = team
        .runs()
        .iter()
        .filter_map(|r| r["started_at"].as_str())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_subsec_millis() as f64 / 1000.0)
        .collect();
    // The agent's own clock as it starts.
    let mut observed: Vec<f64> = std::fs::read_to_string(&marks)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse::<f64>().ok())
        .map(|t| t.fract())
        .collect();

    println!();
    println!("lateness of an every-second schedule over {seconds} s");
    println!(
        "  timer fired ({total} firings):       p50 <= {:.0} ms   p99 <= {:.0} ms   aim p99 < 50 ms",
        bucket_of(0.5) * 1000.0,
        bucket_of(0.99) * 1000.0
    );
    let n = recorded.len();
    let (p50, p99, max) = percentiles(&mut recorded);
    println!(
        "  run recorded as started ({n}): p50 {:6.1} ms   p99 {:6.1} ms   max {:6.1} ms",
        p50 * 1000.0,
        p99 * 1000.0,
        max * 1000.0
    );
    let n = observed.len();
    let (p50, p99, max) = percentiles(&mut observed);
    println!(
        "  agent's clock at start ({n}):  p50 {:6.1} ms   p99 {:6.1} ms   max {:6.1} ms",
        p50 * 1000.0,
        p99 * 1000.0,
        max * 1000.0
    );
}

/// p50, p99 and the maximum (nearest rank).
fn percentiles(values: &mut [f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let rank =
        |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    (rank(0.5), rank(0.99), values[values.len() - 1])
}
