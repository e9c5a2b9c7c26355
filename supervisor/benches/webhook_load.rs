//! Load on the daemon's webhook endpoints: how fast `POST /linear/webhook`
//! and `POST /hooks/<name>` acknowledge signed requests at steady rates,
//! with one request in five a duplicate delivery, and whether every unique
//! request made exactly one run (none lost, none doubled).
//!
//! The release daemon runs as a child process with an agent that is
//! `/bin/true`; Linear comments go to a fake Linear API on loopback. Each
//! request is its own connection, sent at its scheduled time by a pool of
//! client threads; latency runs from the start of the connection to the
//! full answer. `late` counts requests a client sent more than 5 ms after
//! their time (the client, not the daemon, fell behind); `dup first` counts
//! pairs where the duplicate won the race and its original was the one
//! answered as a duplicate.
//!
//! Run with `cargo bench -p supervisor --bench webhook_load`. Environment:
//! `WEBHOOK_BENCH_RATES` (requests per second, comma-separated, default
//! `100,250,500`), `WEBHOOK_BENCH_SECS` (seconds per rate, default 3),
//! `WEBHOOK_BENCH_CLIENTS` (client threads, default 64).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use supervisor_tests::fake_api::{FakeApi, linear};
use supervisor_tests::http::request;
use supervisor_tests::signing::{delivery_id, linear_headers, now_ms, webhook_headers};
use supervisor_tests::{Daemon, STOP_TIMEOUT, Team};

const LINEAR_SECRET: &str = "lin_wh_bench_secret_0123";
const HOOK_SECRET: &str = "whsec-bench-0123456789";
/// Every this many requests, one repeats the one before it.
const DUPLICATE_EVERY: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Linear,
    Hook,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Linear => "/linear/webhook",
            Endpoint::Hook => "/hooks/load",
        }
    }

    fn trigger(self) -> &'static str {
        match self {
            Endpoint::Linear => "linear",
            Endpoint::Hook => "webhook",
        }
    }
}

/// One prepared request: its headers and body, and whether it repeats
/// the one before.
struct Prepared {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    duplicate: bool,
}

fn prepare(endpoint: Endpoint, n: usize, phase: usize) -> Vec<Prepared> {
    let mut out: Vec<Prepared> = Vec::with_capacity(n);
    let ts = now_ms();
    for i in 0..n {
        if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 {
            let prev = &out[i - 1];
            out.push(Prepared {
                headers: prev.headers.clone(),
                body: prev.body.clone(),
                duplicate: true,
            });
            continue;
        }
        let (headers, body) = match endpoint {
            Endpoint::Linear => {
                let body = serde_json::to_vec(&json!({
                    "action": "create", "type": "Comment",
                    "actor": {"id": "int-bench", "service": "bench", "type": "integration"},
                    "data": {
                        "id": format!("c-{phase}-{i}"), "body": format!("@agent request {phase}/{i}"),
                        "issueId": "6a17c5cc-0000-4000-8000-000000000001",
                        "issue": {"id": "6a17c5cc-0000-4000-8000-000000000001", "identifier": "ENG-1", "title": "Load"},
                        "userId": "int-bench", "botActor": null
                    },
                    "url": "https://linear.app/acme/issue/ENG-1",
                    "webhookTimestamp": ts,
                }))
                .unwrap();
                (linear_headers(LINEAR_SECRET, &delivery_id(), &body), body)
            }
            Endpoint::Hook => {
                let body = format!(r#"{{"alert":"load {phase}/{i}"}}"#).into_bytes();
                (webhook_headers(HOOK_SECRET, ts / 1000, &body), body)
            }
        };
        out.push(Prepared {
            headers,
            body,
            duplicate: false,
        });
    }
    out
}

struct Sample {
    /// The request's position; a duplicate repeats the one before it.
    index: usize,
    latency: Duration,
    duplicate: bool,
    /// What the daemon said: 0 when the request failed.
    status: u16,
    answer: String,
    late: bool,
}

struct Phase {
    endpoint: Endpoint,
    rate: usize,
    samples: Vec<Sample>,
    elapsed: Duration,
}

fn run_phase(
    daemon: &Daemon,
    endpoint: Endpoint,
    rate: usize,
    secs: f64,
    clients: usize,
    phase: usize,
) -> Phase {
    let n = ((rate as f64) * secs).round().max(1.0) as usize;
    let requests = Arc::new(prepare(endpoint, n, phase));
    let next = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let addr = daemon.addr;
    let start = Instant::now() + Duration::from_millis(100);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (requests, next, samples) = (requests.clone(), next.clone(), samples.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(r) = requests.get(i) else { break };
                    let due = start + interval * i as u32;
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let sent = Instant::now();
                    let late = sent.duration_since(due) > Duration::from_millis(5);
                    let answer = request(addr, "POST", endpoint.name(), &r.headers, &r.body);
                    let latency = sent.elapsed();
                    let (status, answer) = match answer {
                        Ok(a) => (a.status, a.text()),
                        Err(e) => (0, e.to_string()),
                    };
                    samples.lock().unwrap().push(Sample {
                        index: i,
                        latency,
                        duplicate: r.duplicate,
                        status,
                        answer,
                        late,
                    });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed();
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    Phase {
        endpoint,
        rate,
        samples,
        elapsed,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rates: Vec<usize> = std::env::var("WEBHOOK_BENCH_RATES")
        .unwrap_or_else(|_| "100,250,500".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .filter(|r| *r > 0)
        .collect();
    let secs: f64 = env_or("WEBHOOK_BENCH_SECS", 3.0);
    let clients: usize = env_or("WEBHOOK_BENCH_CLIENTS", 64).max(1);

    let fake = FakeApi::start();
    fake.respond(linear::PATH, linear::comment_created());
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_concurrent_runs = 32
queue_limit = 1000000
log = "warn"

[[agents]]
name = "noop"
command = ["/bin/true"]
triggers = ["linear", "webhook"]

[linear]
webhook_secret = {{ file = "linear-secret" }}
api_key = {{ file = "linear-key" }}
api_url = "{}{}"
bot_user = "u-agent"

[[linear.rules]]
on = "comment.created"
contains = "@agent"
agent = "noop"

[[webhooks]]
name = "load"
agent = "noop"
secret = {{ file = "hook-secret" }}
"#,
        fake.url(),
        linear::PATH
    );
    let team = Team::uninitialised(&config);
    std::fs::write(team.path().join("linear-secret"), LINEAR_SECRET).unwrap();
    std::fs::write(team.path().join("linear-key"), "lin_api_bench").unwrap();
    std::fs::write(team.path().join("hook-secret"), HOOK_SECRET).unwrap();
    team.cmd(&["init"]).ok();
    // The config logs warnings only; the harness reads the address from an info line.
    let mut daemon = team.serve_logging("info");

    println!(
        "webhook load: {secs} s per rate, {clients} client threads, one request in {DUPLICATE_EVERY} a duplicate, agent /bin/true"
    );
    println!(
        "{:<16} {:>7} {:>7} {:>8} {:>7} {:>7} {:>7} {:>6} {:>6} {:>9} {:>6}  result",
        "endpoint",
        "rate/s",
        "sent",
        "actual/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "late",
        "dup",
        "dup first",
        "runs"
    );

    let mut failed = false;
    let mut expected = std::collections::HashMap::<&str, usize>::new();
    let mut phase_no = 0;
    for endpoint in [Endpoint::Linear, Endpoint::Hook] {
        for &rate in &rates {
            phase_no += 1;
            let phase = run_phase(&daemon, endpoint, rate, secs, clients, phase_no);
            let unique = phase.samples.iter().filter(|s| !s.duplicate).count();
            let total = expected.entry(endpoint.trigger()).or_default();
            *total += unique;
            let want = *total;
            // A request and its duplicate race: whichever arrives first
            // starts the run, the other is told it is a duplicate.
            let mut by_index: Vec<&Sample> = phase.samples.iter().collect();
            by_index.sort_by_key(|s| s.index);
            let queued = |s: &Sample| {
                (s.status == 200 || s.status == 202) && s.answer.contains("run queued")
            };
            let duplicate = |s: &Sample| s.status == 200 && s.answer.contains("duplicate");
            let mut wrong: Vec<&Sample> = Vec::new();
            let mut dup_first = 0;
            for (i, s) in by_index.iter().enumerate() {
                let paired = by_index.get(i + 1).is_some_and(|d| d.duplicate);
                if s.duplicate {
                    continue;
                }
                if paired {
                    let d = by_index[i + 1];
                    let one_each = (queued(s) && duplicate(d)) || (duplicate(s) && queued(d));
                    if !one_each {
                        wrong.extend([*s, d]);
                    } else if queued(d) {
                        dup_first += 1;
                    }
                } else if !queued(s) {
                    wrong.push(s);
                }
            }
            let bad = wrong.len();
            let problems: Vec<String> = wrong
                .iter()
                .take(3)
                .map(|s| format!("{} {}", s.status, s.answer.trim()))
                .collect();
            // Every unique request must make exactly one run.
            let series = format!(
                "supervisor_runs_finished_total{{agent=\"noop\",trigger=\"{}\",outcome=\"succeeded\"}}",
                endpoint.trigger()
            );
            let started = format!(
                "supervisor_runs_started_total{{agent=\"noop\",trigger=\"{}\"}}",
                endpoint.trigger()
            );
            let finished = wait_for_count(&daemon, &series, want);
            std::thread::sleep(Duration::from_millis(200));
            let started_n = daemon.metric(&started) as usize;
            let finished_n = daemon.metric(&series) as usize;
            let dups = phase.samples.iter().filter(|s| s.duplicate).count();
            let late = phase.samples.iter().filter(|s| s.late).count();
            let mut lat: Vec<Duration> = phase.samples.iter().map(|s| s.latency).collect();
            lat.sort();
            let runs_ok = finished && started_n == want && finished_n == want;
            let verdict = if bad == 0 && runs_ok {
                "ok".to_owned()
            } else {
                failed = true;
                format!(
                    "FAILED: {bad} wrong answers {problems:?}; runs started {started_n}, succeeded {finished_n}, expected {want}"
                )
            };
            println!(
                "{:<16} {:>7} {:>7} {:>8.0} {:>7.2} {:>7.2} {:>7.2} {:>6} {:>6} {:>9} {:>6}  {verdict}",
                phase.endpoint.name(),
                phase.rate,
                phase.samples.len(),
                phase.samples.len() as f64 / phase.elapsed.as_secs_f64(),
                percentile(&lat, 0.50),
                percentile(&lat, 0.99),
                lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
                late,
                dups,
                dup_first,
                unique,
            );
        }
    }

    // The store agrees: one record per unique request, all succeeded.
    let want: usize = expected.values().sum();
    let runs = team
        .cmd(&["runs", "list", "--json", "--limit", "100000000"])
        .json();
    let runs = runs.as_array().unwrap();
    let succeeded = runs.iter().filter(|r| r["status"] == "succeeded").count();
    println!(
        "run records: {} (expected {want}), {succeeded} succeeded",
        runs.len()
    );
    if runs.len() != want || succeeded != want {
        failed = true;
    }
    // Two comments per Linear run: none lost either.
    let comments = expected.get("linear").copied().unwrap_or(0) * 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.requests().len() < comments && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let got = fake.requests().len();
    println!("Linear comments: {got} (expected {comments})");
    if got != comments {
        failed = true;
    }
    daemon.stop(STOP_TIMEOUT);
    if failed {
        eprintln!("webhook load: FAILED");
        std::process::exit(1);
    }
}

/// Waits until the counter reaches `want` (at most 120 s); false when it did not.
fn wait_for_count(daemon: &Daemon, series: &str, want: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if daemon.metric(series) as usize >= want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
