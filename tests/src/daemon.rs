//! A running `supervisor serve` for end-to-end tests and benchmarks: started
//! on a port the kernel picks on 127.0.0.1 (read back from its own
//! "listening on" log line, so another process on a reused port cannot pass
//! for it), ready once `/healthz` answers, killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Team;
use crate::http::{NO_HEADERS, Response, request};

/// How long a daemon may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`Daemon::stop`] callers usually let the daemon take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A free port on 127.0.0.1 (bound, then released): for an address where
/// nothing listens.
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address")
}

/// A `[server]` section listening on a free loopback port, plus `extra` keys.
pub fn server_section(extra: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\n{extra}\n")
}

/// Calls `check` every 50 ms until it returns true or `timeout` passes;
/// returns its last answer.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Team {
    /// The `serve` command of this team, with none of the test runner's
    /// systemd or logging variables.
    pub fn serve_command(&self) -> Command {
        let mut c = self.command(&["serve"]);
        c.env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID");
        c
    }

    /// Starts the daemon and waits until it answers `/healthz`.
    pub fn serve(&self) -> Daemon {
        Daemon::start(self.serve_command())
    }

    /// Like [`Team::serve`] with `RUST_LOG` set to `filter` (over the
    /// config's `[server] log`).
    pub fn serve_logging(&self, filter: &str) -> Daemon {
        let mut cmd = self.serve_command();
        cmd.env("RUST_LOG", filter);
        Daemon::start(cmd)
    }

    /// Every run record, newest first.
    pub fn runs(&self) -> Vec<serde_json::Value> {
        let listed = self.cmd(&["runs", "list", "--json", "--limit", "100000"]);
        match listed.json() {
            serde_json::Value::Array(runs) => runs,
            other => panic!("runs list --json is not an array: {other}"),
        }
    }

    /// Waits until exactly `n` runs exist and none is running, then returns
    /// them oldest first. Panics after `timeout`, or as soon as there are
    /// more than `n`.
    #[track_caller]
    pub fn finished_runs(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let mut runs = wait_for(&format!("{n} finished runs"), timeout, || {
            let runs = self.runs();
            assert!(runs.len() <= n, "more runs than expected: {runs:#?}");
            (runs.len() == n && runs.iter().all(|r| r["status"] != "running")).then_some(runs)
        });
        runs.reverse();
        runs
    }
}

/// A `supervisor serve` child process.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `cmd` (a `serve` command whose config listens on
    /// 127.0.0.1:0) and waits until it answers `/healthz`.
    pub fn start(mut cmd: Command) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start supervisor serve");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut daemon = Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            status: None,
        };
        let mut addr = None;
        let started = wait_until(START_TIMEOUT, || {
            addr = listening_address(&daemon.log());
            addr.is_some() || daemon.exited()
        });
        let Some(addr) = addr.filter(|_| started) else {
            daemon.kill();
            panic!("the daemon did not start listening:\n{}", daemon.log());
        };
        daemon.addr = addr;
        let healthy = wait_until(START_TIMEOUT, || {
            daemon.try_get("/healthz").is_ok_and(|r| r.status == 200)
        });
        assert!(healthy, "/healthz never answered:\n{}", daemon.log());
        daemon
    }

    /// The daemon's process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(needle))
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid()), sig).expect("signal the daemon");
    }

    /// Whether the daemon has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status.is_some()
    }

    /// Waits for the daemon to exit; `None` when it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_until(timeout, || self.exited());
        self.status
    }

    /// SIGTERM, then waits up to `timeout` for the exit; panics if it does not come.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        match self.wait_exit(timeout) {
            Some(status) => status,
            None => {
                self.kill();
                panic!(
                    "the daemon ignored SIGTERM for {timeout:?}:\n{}",
                    self.log()
                );
            }
        }
    }

    /// SIGKILL, and reaps it (a zombie would still count as alive).
    pub fn kill(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            self.status = Some(self.child.wait().expect("wait for the daemon"));
        }
    }

    /// `GET path`; `Err` when the daemon does not answer.
    pub fn try_get(&self, path: &str) -> std::io::Result<Response> {
        self.try_request("GET", path, NO_HEADERS, b"")
    }

    /// One request on a fresh connection; `Err` when the daemon does not
    /// answer (a 413 that closes early still counts as an answer).
    pub fn try_request<K: AsRef<str>, V: AsRef<str>>(
        &self,
        method: &str,
        path: &str,
        headers: &[(K, V)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        request(self.addr, method, path, headers, body)
    }

    /// Like [`Daemon::try_request`]; panics with the daemon's log when it
    /// does not answer.
    #[track_caller]
    pub fn request<K: AsRef<str>, V: AsRef<str>>(
        &self,
        method: &str,
        path: &str,
        headers: &[(K, V)],
        body: &[u8],
    ) -> Response {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()))
    }

    /// `GET path`; panics when the daemon does not answer.
    #[track_caller]
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, NO_HEADERS, b"")
    }

    /// `POST path`; panics when the daemon does not answer.
    #[track_caller]
    pub fn post<K: AsRef<str>, V: AsRef<str>>(
        &self,
        path: &str,
        headers: &[(K, V)],
        body: &[u8],
    ) -> Response {
        self.request("POST", path, headers, body)
    }

    /// The value of one `/metrics` sample, 0 when absent: `series` is the
    /// name with its labels, such as `supervisor_webhook_requests_total{...}`.
    pub fn metric(&self, series: &str) -> u64 {
        let text = self.get("/metrics").text();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// How many webhook requests of `source` ended as `result`.
    pub fn webhook_count(&self, source: &str, result: &str) -> u64 {
        self.metric(&format!(
            "supervisor_webhook_requests_total{{source=\"{source}\",result=\"{result}\"}}"
        ))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The address in a "listening on ADDR;" log line.
fn listening_address(log: &str) -> Option<SocketAddr> {
    let rest = &log[log.find("listening on ")? + "listening on ".len()..];
    rest.split(|c: char| c == ';' || c.is_whitespace())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_from_the_log() {
        let log =
            "2026-01-01T00:00:00Z  INFO listening on 127.0.0.1:41234; 1 agents, 0 schedules\n";
        assert_eq!(
            listening_address(log),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(listening_address("INFO starting\n"), None);
    }
}
