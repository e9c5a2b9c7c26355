//! Load on `POST /slack/events`: the release daemon with an agent that is
//! `/bin/true` and a fake Slack Web API, fed signed mentions at increasing
//! rates, one in five a retry of the previous delivery (same `event_id`).
//!
//! Reports, per rate, acknowledged requests per second and acknowledgement
//! latency (p50, p99, max; measured from when each request was due, so a
//! slow daemon cannot hide behind a slow generator), then checks that every
//! distinct delivery became exactly one run and every retry none.
//!
//! Environment: `SLACK_BENCH_RATES` (requests per second, comma separated,
//! default `100,250,500`), `SLACK_BENCH_SECS` (seconds per rate, default 5),
//! `SLACK_BENCH_CONNECTIONS` (keep-alive connections, default 32),
//! `SLACK_BENCH_MAX_RUNS` (`[server] max_concurrent_runs`, default 64),
//! `SLACK_BENCH_BOTS=1` (mentions from a bot: acknowledged and ignored, no
//! runs; measures the acknowledgement path alone), `SUPERVISOR_BIN` (the
//! binary to start instead of the one cargo built).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use supervisor_tests::signing::slack_signature;
use supervisor_tests::{STOP_TIMEOUT, Team, server_section};

const SECRET: &str = "bench-signing-secret-0123456789";
/// The Slack id of `alice`, a member of every test team.
const MEMBER_SLACK_ID: &str = "U061F7AUR";

fn main() {
    let rates: Vec<f64> = std::env::var("SLACK_BENCH_RATES")
        .unwrap_or_else(|_| "100,250,500".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let secs: f64 = env_num("SLACK_BENCH_SECS", 5.0);
    let connections = env_num("SLACK_BENCH_CONNECTIONS", 32.0) as usize;
    let max_runs = env_num("SLACK_BENCH_MAX_RUNS", 64.0) as usize;
    let bots = std::env::var("SLACK_BENCH_BOTS").is_ok_and(|v| v == "1");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let posts = Arc::new(AtomicU64::new(0));
    let fake = rt.block_on(fake_slack(posts.clone()));

    let team = Team::uninitialised(&config(fake, max_runs));
    std::fs::write(team.path().join("signing-secret"), SECRET).expect("write secret");
    std::fs::write(team.path().join("bot-token"), "xoxb-bench").expect("write token");
    team.cmd(&["init"]).ok();
    // The readiness line is logged at info.
    let mut daemon = team.serve_logging("info");
    let listen = daemon.addr;

    println!(
        "slack_load: {connections} connections, {secs} s per rate, 1 in 5 a retry; {}",
        if bots {
            "mentions from a bot (no runs)".to_owned()
        } else {
            format!("agent /bin/true, max_concurrent_runs {max_runs}")
        }
    );
    println!(
        "{:>6} {:>6} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>6}",
        "rate", "sent", "acked", "dups", "acked/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    let mut totals = Totals::default();
    let mut next_id = 0u64;
    for rate in &rates {
        let phase = rt.block_on(phase(*rate, secs, listen, connections, bots, &mut next_id));
        phase.print(*rate);
        totals.add(&phase);
    }

    // Every run ends and answers twice in its thread before counting.
    let deadline = Instant::now() + Duration::from_secs(300);
    let runs = loop {
        let runs = team.runs();
        let running = runs.iter().filter(|r| r["status"] == "running").count();
        let want_posts = 2 * runs.len() as u64;
        if running == 0 && posts.load(Ordering::Relaxed) >= want_posts {
            break runs;
        }
        if Instant::now() > deadline {
            eprintln!("runs did not settle: {running} still running");
            break runs;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let rejected = runs.iter().filter(|r| r["status"] == "rejected").count();
    let succeeded = runs.iter().filter(|r| r["status"] == "succeeded").count();
    println!(
        "distinct deliveries acknowledged: {}; runs recorded: {} ({succeeded} succeeded, {rejected} refused); retries answered as duplicates: {} of {}; replies posted: {}",
        totals.unique_acked,
        runs.len(),
        totals.dup_acked,
        totals.dups,
        posts.load(Ordering::Relaxed)
    );
    let status = daemon.stop(STOP_TIMEOUT);
    let expected_runs = if bots { 0 } else { totals.unique_acked };
    let ok = runs.len() as u64 == expected_runs && totals.dup_acked == totals.dups;
    if ok {
        println!("no run lost or doubled (daemon exit: {status})");
    } else {
        println!(
            "MISMATCH: {expected_runs} runs expected but {} recorded; {} of {} retries seen as duplicates",
            runs.len(),
            totals.dup_acked,
            totals.dups
        );
        std::process::exit(1);
    }
}

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bench's config after the team's members: an agent that is
/// `/bin/true` for every mention, replies going to the fake at `fake`.
fn config(fake: SocketAddr, max_runs: usize) -> String {
    let server = server_section(&format!(
        "max_concurrent_runs = {max_runs}\nqueue_limit = 100000"
    ));
    format!(
        r#"
[[agents]]
name = "noop"
command = ["/bin/true"]
triggers = ["slack"]

{server}
[slack]
signing_secret = {{ file = "signing-secret" }}
bot_token = {{ file = "bot-token" }}
api_base = "http://{fake}"
default_agent = "noop"
"#
    )
}

/// A Slack Web API that answers every call at once and counts
/// `chat.postMessage`.
async fn fake_slack(posts: Arc<AtomicU64>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the fake Slack");
    let addr = listener.local_addr().expect("fake address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let posts = posts.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let posts = posts.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let _ = req.into_body().collect().await;
                            if path == "/chat.postMessage" {
                                posts.fetch_add(1, Ordering::Relaxed);
                            }
                            let body = r#"{"ok":true,"channel":"C0BENCH","ts":"1700000001.000200","message":{"ts":"1700000001.000200","text":"ok"}}"#;
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json; charset=utf-8")
                                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                                    .expect("response"),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn mention(event_id: &str, n: u64, bot: bool) -> Vec<u8> {
    let mut m = serde_json::json!({
        "token": "x", "team_id": "T0BENCH", "api_app_id": "A0BENCH",
        "type": "event_callback", "event_id": event_id, "event_time": 1700000000,
        "event": {
            "type": "app_mention", "user": MEMBER_SLACK_ID,
            "text": format!("<@U0BOT> check request {n}"),
            "ts": format!("1700000000.{n:06}"), "channel": "C0BENCH",
        },
        "authorizations": [{"user_id": "U0BOT", "is_bot": true}],
    });
    if bot {
        m["event"]["bot_id"] = serde_json::json!("B0OTHER");
    }
    m.to_string().into_bytes()
}

/// One request's fate.
struct Sent {
    latency: Duration,
    status: Option<u16>,
    /// Why it failed, when it did.
    failure: Option<String>,
    duplicate_sent: bool,
    duplicate_seen: bool,
}

#[derive(Default)]
struct Phase {
    sent: usize,
    acked: usize,
    dups: u64,
    dup_acked: u64,
    unique_acked: u64,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn print(&self, rate: f64) {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| -> f64 {
            if l.is_empty() {
                return f64::NAN;
            }
            let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
            l[i].as_secs_f64() * 1000.0
        };
        println!(
            "{:>6} {:>6} {:>7} {:>6} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>6}",
            rate,
            self.sent,
            self.acked,
            self.dups,
            self.acked as f64 / self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            l.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            self.errors
        );
        if let Some(e) = &self.first_error {
            println!("       first error: {e}");
        }
    }
}

#[derive(Default)]
struct Totals {
    unique_acked: u64,
    dups: u64,
    dup_acked: u64,
}

impl Totals {
    fn add(&mut self, p: &Phase) {
        self.unique_acked += p.unique_acked;
        self.dups += p.dups;
        self.dup_acked += p.dup_acked;
    }
}

async fn phase(
    rate: f64,
    secs: f64,
    target: SocketAddr,
    connections: usize,
    bots: bool,
    next_id: &mut u64,
) -> Phase {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build(connector);
    let gate = Arc::new(tokio::sync::Semaphore::new(connections));
    let total = (rate * secs).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sent>();
    let start = tokio::time::Instant::now();
    let mut last_id = String::new();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let duplicate = i % 5 == 4;
        if !duplicate {
            *next_id += 1;
            last_id = format!("EvBENCH{:08}", *next_id);
        }
        let body = mention(&last_id, *next_id, bots);
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = slack_signature(SECRET, &ts, &body);
        let mut req = hyper::Request::post(format!("http://{target}/slack/events"))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", &ts)
            .header("x-slack-signature", sig);
        if duplicate {
            req = req
                .header("x-slack-retry-num", "1")
                .header("x-slack-retry-reason", "http_timeout");
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let (client, tx, gate) = (client.clone(), tx.clone(), gate.clone());
        tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let res = tokio::time::timeout(Duration::from_secs(10), async {
                let res = client.request(req).await?;
                let status = res.status().as_u16();
                let body = res.into_body().collect().await?.to_bytes();
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
            })
            .await;
            let latency = due.elapsed();
            let (status, seen, failure) = match res {
                Ok(Ok((status, body))) => (
                    Some(status),
                    body.windows(9).any(|w| w == b"duplicate"),
                    (status != 200).then(|| {
                        format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim())
                    }),
                ),
                Ok(Err(e)) => (None, false, Some(e.to_string())),
                Err(_) => (None, false, Some("no answer within 10 s".into())),
            };
            let _ = tx.send(Sent {
                latency,
                status,
                failure,
                duplicate_sent: duplicate,
                duplicate_seen: seen,
            });
        });
    }
    drop(tx);
    let mut p = Phase {
        sent: total as usize,
        ..Phase::default()
    };
    while let Some(s) = rx.recv().await {
        p.latencies.push(s.latency);
        if s.duplicate_sent {
            p.dups += 1;
        }
        match s.status {
            Some(200) => {
                p.acked += 1;
                if s.duplicate_seen {
                    p.dup_acked += 1;
                } else {
                    p.unique_acked += 1;
                }
            }
            _ => {
                p.errors += 1;
                if p.first_error.is_none() {
                    p.first_error = s.failure;
                }
            }
        }
    }
    p.elapsed = start.elapsed();
    p
}
