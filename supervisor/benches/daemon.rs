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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};

const HOOK_SECRET: &str = "bench-hook-secret-8f2c1d";
const TEAM_SECRETS: usize = 10;

fn main() {
    let agents = env_number("DAEMON_BENCH_AGENTS", 100);
    let seconds = env_number("DAEMON_BENCH_SECONDS", 20);
    let bin = binary();
    println!("daemon: {}", bin.display());
    memory(&bin, agents);
    lateness(&bin, seconds);
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SUPERVISOR_BIN") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_supervisor"))
}

/// A team in a temporary directory, initialised, with some team secrets.
struct Team {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Team {
    fn new(bin: &Path, extra: &str) -> Team {
        let dir = tempfile::Builder::new()
            .prefix("supervisor-bench-")
            .tempdir()
            .expect("temp dir");
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .expect("user name");
        let config = format!(
            "state_dir = \"state\"\n[team]\nname = \"bench\"\n\n[[members]]\nname = \"me\"\nunix_user = \"{user}\"\nadmin = true\n\n[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"1s\"\n{extra}\n"
        );
        std::fs::write(dir.path().join("supervisor.toml"), config).expect("config");
        let team = Team {
            dir,
            bin: bin.to_owned(),
        };
        team.check(&["init"], b"");
        for i in 0..TEAM_SECRETS {
            let value = format!("bench-team-value-{i:02}-{}", "x".repeat(24));
            let name = format!("TEAM_{i:02}");
            team.check(
                &["secret", "create", "--team", "--name", &name],
                value.as_bytes(),
            );
        }
        team
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config")
            .arg(self.path().join("supervisor.toml"))
            .args(args)
            .current_dir(self.path())
            .env_remove("SUPERVISOR_CONFIG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("STATE_DIRECTORY")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG");
        c
    }

    /// Runs a command to its end with `input` on stdin; panics unless it succeeds.
    fn check(&self, args: &[&str], input: &[u8]) -> String {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start supervisor");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "supervisor {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    fn serve(&self) -> Daemon {
        let mut child = self
            .command(&["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let text = log.lock().unwrap().clone();
            if let Some(rest) = text.split("listening on ").nth(1) {
                break rest
                    .split(';')
                    .next()
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                    .expect("an address");
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let daemon = Daemon { child, addr, log };
        while daemon.get("/healthz").is_err() {
            assert!(Instant::now() < deadline, "no /healthz");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }
}

struct Daemon {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// VmRSS and VmHWM, in KiB.
    fn memory(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
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

    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        self.request("GET", path, &[], b"")
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let status = raw
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    fn healthz(&self) -> serde_json::Value {
        let (_, body) = self.get("/healthz").expect("/healthz");
        serde_json::from_str(&body).expect("JSON")
    }

    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "the daemon failed:\n{}",
            self.log.lock().unwrap()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sign(timestamp: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn memory(bin: &Path, agents: usize) {
    let secret_file = tempfile::NamedTempFile::new().expect("secret file");
    std::fs::write(secret_file.path(), HOOK_SECRET).expect("write secret");
    let team = Team::new(
        bin,
        &format!(
            "max_concurrent_runs = {agents}\nqueue_limit = {agents}\n\n[[agents]]\nname = \"sleeper\"\ncommand = [\"/bin/sleep\", \"30\"]\ntriggers = [\"webhook\"]\n\n[[webhooks]]\nname = \"load\"\nagent = \"sleeper\"\nsecret = {{ file = \"{}\" }}\n",
            secret_file.path().display()
        ),
    );
    let daemon = team.serve();
    // Warm the HTTP path, then let the allocator settle.
    for _ in 0..20 {
        daemon.get("/healthz").expect("/healthz");
        daemon.get("/metrics").expect("/metrics");
    }
    std::thread::sleep(Duration::from_secs(2));
    let (idle, idle_peak) = daemon.memory();

    let started = Instant::now();
    for i in 0..agents {
        let body = format!("{{\"load\": {i}}}");
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let sig = sign(&ts, body.as_bytes());
        let (status, text) = daemon
            .request(
                "POST",
                "/hooks/load",
                &[
                    ("X-Supervisor-Timestamp", &ts),
                    ("X-Supervisor-Signature", &sig),
                ],
                body.as_bytes(),
            )
            .expect("POST");
        assert_eq!(status, 202, "{text}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon.healthz()["runs_running"].as_u64() != Some(agents as u64) {
        assert!(Instant::now() < deadline, "not all agents started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let all_running = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (loaded, loaded_peak) = daemon.memory();
    daemon.stop();

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

fn lateness(bin: &Path, seconds: usize) {
    let team = Team::new(bin, "");
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
    let (_, metrics) = daemon.get("/metrics").expect("/metrics");
    daemon.stop();

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
    let runs: serde_json::Value =
        serde_json::from_str(&team.check(&["runs", "list", "--json", "--limit", "100000"], b""))
            .expect("runs JSON");
    let mut recorded: Vec<f64> = runs
        .as_array()
        .expect("an array")
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
