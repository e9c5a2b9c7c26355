//! Running `supervisor serve` in a test, and a tiny HTTP/1.1 client to
//! talk to it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Team;

/// A free port on 127.0.0.1 (bound, then released for the caller).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address")
}

/// A `supervisor serve` child process; killed when dropped.
pub struct Serve {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// Where its stderr (the daemon's log) goes.
    pub log: PathBuf,
}

impl Serve {
    /// Starts the daemon of `team` (its config must listen on `addr`) and
    /// waits until it listens and `/healthz` answers.
    #[track_caller]
    pub fn start(team: &Team, addr: SocketAddr) -> Serve {
        Serve::try_start(team, addr)
            .unwrap_or_else(|log| panic!("supervisor serve exited early:\n{log}"))
    }

    /// Like [`Serve::start`], but a daemon that exits before it listens
    /// (its port was taken meanwhile: [`free_addr`] can only release one)
    /// is an `Err` with its log, for the caller to try another port.
    #[track_caller]
    pub fn try_start(team: &Team, addr: SocketAddr) -> Result<Serve, String> {
        let n = std::fs::read_dir(team.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = team.path().join(format!("serve-{n}.log"));
        let err = std::fs::File::create(&log).expect("daemon log file");
        let child = team
            .command(&["serve"])
            .env("RUST_LOG", "info,supervisor=debug")
            .stdin(Stdio::null())
            .stdout(err.try_clone().expect("log file"))
            .stderr(err)
            .spawn()
            .expect("start supervisor serve");
        let mut serve = Serve {
            child: Some(child),
            addr,
            log,
        };
        // Its own log says it listens: another process answering on a
        // reused port must not pass for it.
        let listening = format!("listening on {addr};");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = serve
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                serve.child = None;
                return Err(format!("exit {status}\n{}", serve.log_text()));
            }
            if serve.log_text().contains(&listening) {
                if let Ok(r) = http(addr, "GET", "/healthz", &[], b"") {
                    if r.status == 200 {
                        return Ok(serve);
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "supervisor serve did not answer /healthz:\n{}",
                serve.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit.
    #[track_caller]
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait for supervisor serve") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "supervisor serve did not stop on SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A request to the daemon.
    #[track_caller]
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpReply {
        http(self.addr, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log_text()))
    }

    /// The value of one `/metrics` sample (0 when absent).
    pub fn metric(&self, sample: &str) -> u64 {
        let text = self.request("GET", "/metrics", &[], b"").text();
        text.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpReply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_reply(&raw).ok_or_else(|| std::io::Error::other("malformed HTTP answer"))
}

fn parse_reply(raw: &[u8]) -> Option<HttpReply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(HttpReply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..nl]).ok()?.trim(), 16).ok()?;
        raw = &raw[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}
