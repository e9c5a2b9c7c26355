//! The two stores side by side, in one run: `secret list --json` at 10,000
//! secrets, a whole `supervisor run` of `/bin/true`, and how fast the
//! daemon acknowledges signed `/hooks` requests at 500 per second, on
//! SQLite and on PostgreSQL over loopback (a server of the benchmark's own
//! that syncs its writes, as a production one does).
//!
//! Run with `cargo bench -p supervisor --bench backends` (or `scripts/bench
//! backends`). Environment: `BACKENDS_BENCH_SECRETS` (default 10000),
//! `BACKENDS_BENCH_RUNS` (default 30), `BACKENDS_BENCH_RATE` (default 500)
//! and `BACKENDS_BENCH_SECS` (default 3).

use std::time::{Duration, Instant};

use secrecy::SecretString;
use supervisor_config::SecretName;
use supervisor_store::{Location, MasterKey, PgLocation, Scope, Store};
use supervisor_tests::http::request;
use supervisor_tests::postgres::PgServer;
use supervisor_tests::signing::{now_secs, webhook_headers};
use supervisor_tests::{Daemon, Team};

const HOOK_SECRET: &str = "whsec-bench-backends-0123";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
queue_limit = 100000

[[agents]]
name = "true"
command = ["/bin/true"]
triggers = ["cli", "webhook"]

[[webhooks]]
name = "load"
agent = "true"
secret = { file = "hook-secret" }
"#;

/// A team on SQLite, or on the PostgreSQL database at `url`.
fn team(url: Option<&str>) -> Team {
    let store = if url.is_some() {
        "[store]\nurl = { file = \"pg.url\" }\n"
    } else {
        ""
    };
    let team = Team::uninitialised(&format!("{store}{CONFIG}"));
    if let Some(url) = url {
        std::fs::write(team.path().join("pg.url"), url).unwrap();
    }
    std::fs::write(team.path().join("hook-secret"), HOOK_SECRET).unwrap();
    team.cmd(&["init"]).ok();
    team
}

/// Fills the store with `n` team and personal secrets through the store's
/// own API (each write synced, as `secret create` does).
fn fill(team: &Team, location: &Location, n: usize) {
    let key = MasterKey::load(&team.state_dir().join("master.key"), None).unwrap();
    let mut store = Store::open_at(location, Some(&key)).unwrap();
    for i in 0..n {
        let scope = if i % 2 == 0 {
            Scope::Team
        } else {
            Scope::Personal(format!("member{}", i % 50))
        };
        let name = SecretName::new(&format!("SECRET_{i:05}")).unwrap();
        let value = SecretString::from(format!("value-{i}-of-the-benchmark"));
        store
            .create_secret(&scope, &name, Some("bench"), &value, "alice")
            .unwrap();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn timed(team: &Team, args: &[&str], n: usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let out = team.command(args).output().unwrap();
        times.push(t.elapsed());
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    median(times)
}

/// Acknowledgement latencies of `/hooks/load` at `rate` per second for
/// `secs` seconds: (p50, p99, answers other than 202).
fn acks(daemon: &Daemon, rate: usize, secs: usize) -> (Duration, Duration, usize) {
    let total = rate * secs;
    let ts = now_secs();
    let addr = daemon.addr;
    let start = Instant::now() + Duration::from_millis(200);
    let clients = 32;
    let results: Vec<(Duration, u16)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    for k in (c..total).step_by(clients) {
                        let due = start + Duration::from_secs_f64(k as f64 / rate as f64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let body = format!("{{\"n\":{k}}}");
                        let headers = webhook_headers(HOOK_SECRET, ts, body.as_bytes());
                        let t = Instant::now();
                        let r = request(addr, "POST", "/hooks/load", &headers, body.as_bytes())
                            .expect("the daemon answers");
                        out.push((t.elapsed(), r.status));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let other = results.iter().filter(|(_, s)| *s != 202).count();
    let mut lat: Vec<Duration> = results.into_iter().map(|(d, _)| d).collect();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    (p(0.50), p(0.99), other)
}

fn main() {
    let secrets = env("BACKENDS_BENCH_SECRETS", 10_000);
    let runs = env("BACKENDS_BENCH_RUNS", 30);
    let rate = env("BACKENDS_BENCH_RATE", 500);
    let secs = env("BACKENDS_BENCH_SECS", 3);
    let Some(server) = PgServer::start_durable("the backends benchmark") else {
        eprintln!("no PostgreSQL server: nothing to compare");
        return;
    };
    let url = server.fresh_database();
    let sqlite = team(None);
    let pg = team(Some(&url));
    let pg_location = Location::Postgres(Box::new(
        PgLocation::parse(&SecretString::from(url.clone()), Duration::from_secs(30)).unwrap(),
    ));
    println!(
        "# {secrets} secrets, {runs} runs, /hooks at {rate}/s for {secs}s; PostgreSQL {} over loopback, fsync on",
        server.port
    );
    println!(
        "{:<12} {:>18} {:>18} {:>14} {:>14} {:>8}",
        "store", "secret list --json", "run /bin/true", "ack p50", "ack p99", "not 202"
    );
    for (label, team, location) in [
        ("sqlite", &sqlite, Location::Sqlite(sqlite.state_dir())),
        ("postgres", &pg, pg_location),
    ] {
        let filled = Instant::now();
        fill(team, &location, secrets);
        eprintln!(
            "{label}: {secrets} secrets stored in {:?}",
            filled.elapsed()
        );
        let list = timed(team, &["secret", "list", "--json", "--all"], 5);
        let run = timed(team, &["run", "true"], runs);
        let daemon = team.serve();
        let (p50, p99, other) = acks(&daemon, rate, secs);
        drop(daemon);
        println!(
            "{label:<12} {:>15.1} ms {:>15.1} ms {:>11.2} ms {:>11.2} ms {other:>8}",
            ms(list),
            ms(run),
            ms(p50),
            ms(p99)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
