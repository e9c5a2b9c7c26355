//! A running `supervisor serve` for end-to-end tests: started on a port the
//! kernel picks on 127.0.0.1 (read back from its "listening on" log line),
//! ready once `/healthz` answers, killed when dropped. Also a small HTTP/1.1
//! client over `std::net::TcpStream`, enough for the daemon's endpoints.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Team;

/// How long a daemon may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

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

    /// Every run record, newest first.
    pub fn runs(&self) -> Vec<serde_json::Value> {
        let listed = self.cmd(&["runs", "list", "--json", "--limit", "100000"]);
        match listed.json() {
            serde_json::Value::Array(runs) => runs,
            other => panic!("runs list --json is not an array: {other}"),
        }
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
            daemon.get("/healthz").is_ok_and(|r| r.status == 200)
        });
        assert!(healthy, "/healthz never answered:\n{}", daemon.log());
        daemon
    }

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

    pub fn get(&self, path: &str) -> std::io::Result<Response> {
        self.request("GET", path, &[], b"")
    }

    pub fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        self.request("POST", path, headers, body)
    }

    /// One request on a fresh connection (`Connection: close`).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        http(self.addr, head.as_bytes(), body)
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

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` and `body` on a new connection and reads the response
/// until the server closes it. A server that answers before reading the
/// whole body (413) may stop reading: writing the rest is then abandoned.
pub fn http(addr: SocketAddr, head: &[u8], body: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(head)?;
    let writer = {
        let mut stream = stream.try_clone()?;
        let body = body.to_vec();
        std::thread::spawn(move || {
            let _ = stream.write_all(&body);
        })
    };
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    let _ = writer.join();
    if let Err(e) = read {
        // A reset after a complete answer (the server did not read all we sent).
        if raw.is_empty() {
            return Err(e);
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("malformed chunked body"))?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
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

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig")
            .unwrap();
        assert_eq!((r.status, r.text().as_str()), (413, "big"));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.text(), "abcde");
        assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    }
}
