//! Helpers for the tests (and the load benchmark) of the daemon's Linear and
//! automation webhook endpoints: the daemon as a child process, a fake
//! Linear GraphQL server on 127.0.0.1 that records what it is sent, a small
//! blocking HTTP client, and the two signing schemes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::Team;

/// Lowercase hex of HMAC-SHA256 under `key` over `message`.
pub fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// A fresh delivery id, unique within this process and across runs.
pub fn delivery_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:016x}-{:08x}-{}",
        now_ms(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The headers of a Linear delivery of `body`: signature and delivery id.
pub fn linear_headers(secret: &str, delivery: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("Linear-Signature".into(), hmac_hex(secret.as_bytes(), body)),
        ("Linear-Delivery".into(), delivery.into()),
        ("Linear-Event".into(), "Issue".into()),
        ("User-Agent".into(), "Linear-Webhook".into()),
    ]
}

/// The headers of an automation webhook request signed at `timestamp`
/// (Unix seconds): `sha256=<hex HMAC of "<timestamp>.<body>">`.
pub fn webhook_headers(secret: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    vec![
        ("X-Supervisor-Timestamp".into(), timestamp.to_string()),
        (
            "X-Supervisor-Signature".into(),
            format!("sha256={}", hmac_hex(secret.as_bytes(), &message)),
        ),
    ]
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// One request over a fresh connection (`Connection: close`). A refusal
/// that closes the connection while the body is still being sent is
/// reported with the status the server managed to send, if any.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    // The server may answer and close before it read everything (413).
    let write_error = stream.write_all(&out).err();
    let mut raw = Vec::new();
    let read_error = stream.read_to_end(&mut raw).err();
    if raw.is_empty() {
        return Err(write_error
            .or(read_error)
            .unwrap_or_else(|| std::io::Error::other("empty answer")));
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head:?}")))?;
    Ok(Response {
        status,
        body: body.to_owned(),
    })
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

/// `supervisor serve` for a team, as a child process. Stopped (SIGTERM,
/// then SIGKILL) when dropped.
pub struct Daemon {
    child: Option<Child>,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts the daemon with the team's `supervisor.toml` (whose `[server]
    /// listen` may use port 0) and waits until it listens.
    pub fn start(team: &Team) -> Daemon {
        Daemon::start_with(team, "supervisor.toml")
    }

    pub fn start_with(team: &Team, config: &str) -> Daemon {
        let mut child = team
            .command_with(config, &["serve"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start supervisor serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let addr = Arc::new((
            Mutex::new(None::<Result<SocketAddr, String>>),
            Condvar::new(),
        ));
        {
            let (log, addr) = (log.clone(), addr.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let found = rest
                            .split(|c: char| c == ';' || c.is_whitespace())
                            .next()
                            .and_then(|a| a.parse().ok());
                        if let Some(a) = found {
                            *addr.0.lock().unwrap() = Some(Ok(a));
                            addr.1.notify_all();
                        }
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                let mut found = addr.0.lock().unwrap();
                if found.is_none() {
                    *found = Some(Err("the daemon exited".into()));
                }
                addr.1.notify_all();
            });
        }
        let (lock, ready) = &*addr;
        let (found, _) = ready
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(30), |a| {
                a.is_none()
            })
            .unwrap();
        let found = found.clone();
        let mut daemon = Daemon {
            child: Some(child),
            addr: "127.0.0.1:0".parse().unwrap(),
            log,
        };
        match found {
            Some(Ok(a)) => daemon.addr = a,
            other => panic!(
                "the daemon did not start ({other:?}):\n{}",
                daemon.log_text()
            ),
        }
        daemon
    }

    /// What the daemon logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn post(&self, path: &str, headers: &[(String, String)], body: &[u8]) -> Response {
        request(self.addr, "POST", path, headers, body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.log_text()))
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"")
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log_text()))
    }

    /// A counter of `/metrics`, 0 when absent: `line` is the series name
    /// with its labels, such as `supervisor_webhook_requests_total{...}`.
    pub fn metric(&self, series: &str) -> u64 {
        let text = self.get("/metrics").body;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// How many webhook requests of `source` ended as `result`.
    pub fn webhook_count(&self, source: &str, result: &str) -> u64 {
        self.metric(&format!(
            "supervisor_webhook_requests_total{{source=\"{source}\",result=\"{result}\"}}"
        ))
    }

    /// SIGTERM, then waits for the exit (at most 30 s).
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// What the fake Linear API answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `commentCreate` succeeded.
    Ok,
    /// HTTP 200 with a GraphQL `errors` array.
    GraphqlError,
    /// This HTTP status with an error body.
    Status(u16),
}

/// One request the fake Linear API received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub body: serde_json::Value,
}

impl Recorded {
    /// `variables.input.body`: the comment's text.
    pub fn comment(&self) -> String {
        self.body["variables"]["input"]["body"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `variables.input.issueId`.
    pub fn issue(&self) -> String {
        self.body["variables"]["input"]["issueId"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

struct FakeState {
    answer: Answer,
    requests: Vec<Recorded>,
}

/// A fake of Linear's GraphQL endpoint on 127.0.0.1 that records every
/// request; keep-alive connections, `Content-Length` bodies.
pub struct FakeLinear {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    stop: Arc<AtomicBool>,
}

impl FakeLinear {
    pub fn start() -> FakeLinear {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Linear API");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(FakeState {
            answer: Answer::Ok,
            requests: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || serve_connection(stream, &state));
                }
            });
        }
        FakeLinear { addr, state, stop }
    }

    /// The GraphQL endpoint, for `[linear] api_url`.
    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    /// What the following requests get.
    pub fn answer(&self, answer: Answer) {
        self.state.lock().unwrap().answer = answer;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests arrived and returns them all.
    #[track_caller]
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        wait_for(
            &format!("{n} requests to the fake Linear API"),
            timeout,
            || {
                let r = self.requests();
                (r.len() >= n).then_some(r)
            },
        )
    }
}

impl Drop for FakeLinear {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_connection(stream: TcpStream, state: &Mutex<FakeState>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut length = 0usize;
        let mut authorization = None;
        let mut close = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "authorization" => authorization = Some(value.to_owned()),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer = {
            let mut s = state.lock().unwrap();
            s.requests.push(Recorded {
                path,
                authorization,
                body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            });
            s.answer.clone()
        };
        let (status, text) = match answer {
            Answer::Ok => (
                200,
                r#"{"data":{"commentCreate":{"success":true,"comment":{"id":"c-1","url":"https://linear.app/acme/issue/ENG-123#comment-c-1"}}}}"#.to_owned(),
            ),
            Answer::GraphqlError => (
                200,
                r#"{"errors":[{"message":"Entity not found: Issue","extensions":{"code":"INVALID_INPUT"}}],"data":null}"#.to_owned(),
            ),
            Answer::Status(code) => (code, r#"{"errors":[{"message":"authentication failed"}]}"#.to_owned()),
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(text.as_bytes()).is_err()
        {
            return;
        }
        if close {
            return;
        }
    }
}
