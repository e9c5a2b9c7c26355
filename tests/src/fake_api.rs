//! A fake HTTP API on 127.0.0.1 for end-to-end tests: it records every
//! request (method, path, headers, body) and answers from a script of
//! responses per path.
//!
//! Plain HTTP/1.1 on `std::net`, one thread per connection, one request per
//! connection (`Connection: close`), bodies by `Content-Length` or chunked.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One request the fake received, with the status it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The query string, without `?` (empty when absent).
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: u16,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header(&self.headers, name)
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, or the query/form fields as a JSON object.
    pub fn json(&self) -> serde_json::Value {
        if let Ok(v) = serde_json::from_slice(&self.body) {
            return v;
        }
        let text = if self.body.is_empty() {
            self.query.clone()
        } else {
            self.body_text()
        };
        let fields: serde_json::Map<String, serde_json::Value> = text
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        serde_json::Value::Object(fields)
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// `status` with `body` as JSON.
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.to_string().into_bytes(),
        }
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Answers of Linear's GraphQL API, served at [`linear::PATH`].
pub mod linear {
    use super::Response;

    /// Where the fake serves Linear's API: `[linear] api_url` is
    /// `FakeApi::url()` followed by this.
    pub const PATH: &str = "/graphql";

    /// `commentCreate` succeeded.
    pub fn comment_created() -> Response {
        Response::json(
            200,
            &serde_json::json!({"data": {"commentCreate": {"success": true, "comment": {
                "id": "c-1", "url": "https://linear.app/acme/issue/ENG-123#comment-c-1"}}}}),
        )
    }

    /// HTTP 200 with a GraphQL `errors` array.
    pub fn graphql_error() -> Response {
        Response::json(
            200,
            &serde_json::json!({"errors": [{"message": "Entity not found: Issue",
                "extensions": {"code": "INVALID_INPUT"}}], "data": null}),
        )
    }

    /// HTTP `status` with an error body.
    pub fn failure(status: u16) -> Response {
        Response::json(
            status,
            &serde_json::json!({"errors": [{"message": "authentication failed"}]}),
        )
    }
}

/// Builds the answer to a request (for answers that depend on it).
pub type Handler = Arc<dyn Fn(&Recorded) -> Response + Send + Sync>;

#[derive(Default)]
struct Script {
    /// Answers used once each, in order, before the default.
    once: HashMap<String, VecDeque<Response>>,
    default: HashMap<String, Handler>,
}

struct Shared {
    script: Mutex<Script>,
    recorded: Mutex<Vec<Recorded>>,
    arrived: Condvar,
    stop: AtomicBool,
}

/// The running fake; stops when dropped.
pub struct FakeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeApi {
    /// Starts on a free port of 127.0.0.1. Unscripted paths get 404.
    pub fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake API");
        let addr = listener.local_addr().expect("fake API address");
        let shared = Arc::new(Shared {
            script: Mutex::new(Script::default()),
            recorded: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(stream, &s));
            }
        });
        FakeApi { addr, shared }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers every request to `path` with `response` (after any queued
    /// one-time answers).
    pub fn respond(&self, path: &str, response: Response) {
        self.respond_with(path, move |_| response.clone());
    }

    /// Answers requests to `path` with what `f` builds from each.
    pub fn respond_with(
        &self,
        path: &str,
        f: impl Fn(&Recorded) -> Response + Send + Sync + 'static,
    ) {
        self.lock_script()
            .default
            .insert(path.to_owned(), Arc::new(f));
    }

    /// Answers the next request to `path` with `response`, once.
    pub fn respond_once(&self, path: &str, response: Response) {
        self.lock_script()
            .once
            .entry(path.to_owned())
            .or_default()
            .push_back(response);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The requests to `path` so far.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until `path` received at least `n` requests (panics after
    /// `timeout`), and returns them.
    #[track_caller]
    pub fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        let mut recorded = self
            .shared
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        loop {
            let got: Vec<Recorded> = recorded
                .iter()
                .filter(|r| r.path == path)
                .cloned()
                .collect();
            if got.len() >= n {
                return got;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "the fake API got {} of {n} requests to {path} within {timeout:?}: {got:#?}",
                got.len()
            );
            recorded = self
                .shared
                .arrived
                .wait_timeout(recorded, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn lock_script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.shared.script.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let Some(mut req) = read_request(&mut reader) else {
        return;
    };
    let response = {
        let mut script = shared.script.lock().unwrap_or_else(|p| p.into_inner());
        match script.once.get_mut(&req.path).and_then(VecDeque::pop_front) {
            Some(r) => r,
            None => match script.default.get(&req.path).cloned() {
                Some(h) => {
                    drop(script);
                    h(&req)
                }
                None => Response::json(
                    404,
                    &serde_json::json!({"ok": false, "error": "unknown_method"}),
                ),
            },
        }
    };
    req.status = response.status;
    shared
        .recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(req);
    shared.arrived.notify_all();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\nconnection: close\r\n",
        response.status,
        reason(response.status),
        response.body.len()
    );
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = writer.write_all(head.as_bytes());
    let _ = writer.write_all(&response.body);
    let _ = writer.flush();
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Recorded> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Some(Recorded {
        method,
        path,
        query,
        headers,
        body,
        status: 0,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
