//! One connection of the control socket: the request (within
//! [`REQUEST_TIMEOUT`], at most `MAX_CALL` bytes), the caller from the
//! kernel's peer credentials, then the answer: for a run, its output as it
//! comes and its end; otherwise one reply. Every failure is an error frame
//! to the client and a log line, never a panic.
//!
//! Store work runs on blocking threads ([`blocking`]), never on the
//! daemon's async workers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor_protocol::{
    Answer, Bytes, Call, ErrorKind, MAX_CALL, OutputStream, PROTOCOL, ProtocolError, Request,
    WireError, decode, encode_error,
};
use supervisor_store::RunRecord;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};

use super::Daemon;
use super::peer::{self, PeerCred};
use super::runner::{Attach, Replier, ReplyFuture};
use crate::control::{self, Caller, Output, handlers};
use crate::run::Outcome;
use crate::run::output::Stream;
use crate::socket::{ReadError, read_frame, write_frame, write_msg};

/// How long a client has, from connecting, to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one connection to its end.
pub async fn serve(daemon: Arc<Daemon>, stream: UnixStream) {
    let cred = match stream.peer_cred() {
        Ok(c) => PeerCred {
            uid: c.uid(),
            pid: c.pid(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "control socket: no peer credentials; connection dropped");
            return;
        }
    };
    let metrics = daemon.runner.metrics.clone();
    // Who connected is known from the kernel already: look them up while
    // the request is on its way.
    let config = daemon.config();
    let daemon_pid = std::process::id() as i32;
    let who = blocking(move || peer::identify(&config, cred, daemon_pid));
    let (mut read, mut write) = stream.into_split();
    let request = match receive(&mut read).await {
        Ok(r) => r,
        Err(None) => return,
        Err(Some(error)) => {
            tracing::info!(uid = cred.uid, kind = ?error.kind, "control socket: request refused: {}", error.message);
            metrics.control("unknown", kind_label(error.kind));
            let _ = write_frame(&mut write, &encode_error(&error)).await;
            return;
        }
    };
    let who = who.await;
    let caller = match who {
        Ok(Ok(caller)) => caller,
        Ok(Err(error)) | Err(error) => {
            tracing::warn!(uid = cred.uid, pid = ?cred.pid, request = request.label(), "control socket: caller refused: {}", error.message);
            metrics.control(request.label(), kind_label(error.kind));
            let _ = write_frame(&mut write, &encode_error(&error)).await;
            return;
        }
    };
    let label = request.label();
    let member = caller
        .member
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let result = match request {
        Request::Run { agent, prompt } => {
            run(&daemon, caller, agent, prompt, read, &mut write).await
        }
        other => answer(&daemon, caller, other, &mut write).await,
    };
    match result {
        Ok(()) => {
            tracing::info!(uid = cred.uid, %member, request = label, "control request done");
            metrics.control(label, "ok");
        }
        Err(e) => {
            tracing::info!(uid = cred.uid, %member, request = label, kind = ?e.kind, "control request failed: {}", e.message);
            metrics.control(label, kind_label(e.kind));
        }
    }
}

/// An error kind as a metrics label.
fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Version => "version",
        ErrorKind::Malformed => "malformed",
        ErrorKind::TooLarge => "too_large",
        ErrorKind::Timeout => "timeout",
        ErrorKind::NotAMember => "not_a_member",
        ErrorKind::Agent => "agent",
        ErrorKind::Denied => "denied",
        ErrorKind::Failed => "failed",
        ErrorKind::Busy => "busy",
        ErrorKind::Other => "other",
    }
}

/// Tells a client why it is not served, without reading what it sent.
pub async fn refuse(stream: UnixStream, error: WireError) {
    let (_read, mut write) = stream.into_split();
    let _ = write_frame(&mut write, &encode_error(&error)).await;
}

/// Reads and decodes the request. `Err(None)`: the client left without
/// one; `Err(Some(_))`: the error to answer with.
async fn receive(read: &mut OwnedReadHalf) -> Result<Request, Option<WireError>> {
    let body = match tokio::time::timeout(REQUEST_TIMEOUT, read_frame(read, MAX_CALL)).await {
        Err(_) => {
            return Err(Some(WireError::new(
                ErrorKind::Timeout,
                format!(
                    "no request within {}s of connecting",
                    REQUEST_TIMEOUT.as_secs()
                ),
            )));
        }
        Ok(Ok(body)) => body,
        Ok(Err(ReadError::Closed)) | Ok(Err(ReadError::Io(_))) => return Err(None),
        Ok(Err(ReadError::Protocol(e))) => return Err(Some(protocol_error(e))),
    };
    match decode::<Call>(&body) {
        Ok(Call::Request(request)) => Ok(request),
        Ok(Call::Interrupt { .. }) => Err(Some(WireError::new(
            ErrorKind::Malformed,
            "an interrupt before any request",
        ))),
        Err(e) => Err(Some(protocol_error(e))),
    }
}

fn protocol_error(e: ProtocolError) -> WireError {
    let version = env!("CARGO_PKG_VERSION");
    match e {
        ProtocolError::Version {
            theirs,
            their_supervisor,
        } => WireError::new(
            ErrorKind::Version,
            format!(
                "the daemon speaks protocol {PROTOCOL} (supervisor {version}), this client protocol {theirs} (supervisor {their_supervisor})"
            ),
        )
        .hint("use the supervisor binary of the daemon's version (after an upgrade, restart the daemon)"),
        ProtocolError::TooLarge { .. } => WireError::new(ErrorKind::TooLarge, e.to_string()),
        // Its text is the client's: not something to repeat or log.
        ProtocolError::Remote(_) => WireError::new(
            ErrorKind::Malformed,
            "the daemon could not read the request: an error is no request",
        ),
        other => WireError::new(
            ErrorKind::Malformed,
            format!("the daemon could not read the request: {other}"),
        ),
    }
}

/// Runs `work` on a blocking thread: the store's calls block, and the
/// daemon's async workers must not wait for them.
fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> impl Future<Output = Result<T, WireError>> {
    // Started now; awaited whenever the caller is ready for the result.
    let job = tokio::task::spawn_blocking(work);
    async move {
        job.await.map_err(|e| {
            tracing::error!(error = %e, "a control handler failed");
            WireError::new(
                ErrorKind::Failed,
                "the daemon failed to handle the request; its log says more",
            )
        })
    }
}

/// Output of a handler (a stored log) on its way to the client.
struct ToClient(mpsc::Sender<(OutputStream, Vec<u8>)>);

impl Output for ToClient {
    fn output(&mut self, stream: OutputStream, bytes: &[u8]) {
        // A client that left needs nothing more.
        let _ = self.0.blocking_send((stream, bytes.to_vec()));
    }
}

/// Every request but a run: the handler on a blocking thread, its output
/// as it comes, then its reply.
async fn answer(
    daemon: &Daemon,
    caller: Caller,
    request: Request,
    write: &mut OwnedWriteHalf,
) -> Result<(), WireError> {
    let engine = daemon.runner.engine();
    let (tx, mut rx) = mpsc::channel(8);
    let job = blocking(move || {
        control::handle(&engine, &caller, request, &mut ToClient(tx))
            .map_err(|e| crate::fail::to_wire(&e))
    });
    let mut open = true;
    while let Some((stream, data)) = rx.recv().await {
        let msg = Answer::Output {
            stream,
            data: Bytes(data),
        };
        open = open && write_msg(write, &msg).await.is_ok();
    }
    let result = job.await.and_then(|r| r);
    send_result(write, result.map(Answer::Done)).await
}

async fn send_result(
    write: &mut OwnedWriteHalf,
    result: Result<Answer, WireError>,
) -> Result<(), WireError> {
    match result {
        Ok(answer) => {
            let _ = write_msg(write, &answer).await;
            Ok(())
        }
        Err(error) => {
            let _ = write_frame(write, &encode_error(&error)).await;
            Err(error)
        }
    }
}

/// A `cli` run for the caller through the daemon's runner: output to the
/// client as it comes; an interrupt from the client, or the client going
/// away, stops the run.
async fn run(
    daemon: &Daemon,
    caller: Caller,
    agent: String,
    prompt: Option<String>,
    mut read: OwnedReadHalf,
    write: &mut OwnedWriteHalf,
) -> Result<(), WireError> {
    let engine = daemon.runner.engine();
    let req = match handlers::run::request(&engine, &caller, agent, prompt) {
        Ok(r) => r,
        Err(e) => return send_result(write, Err(crate::fail::to_wire(&e))).await,
    };
    let (output, mut chunks) = mpsc::channel::<(Stream, Vec<u8>)>(64);
    let (cancel_tx, cancel) = watch::channel(false);
    let (started_tx, mut started) = oneshot::channel();
    let (finished_tx, mut finished) = oneshot::channel();
    let follower = Arc::new(Follower {
        started: Mutex::new(Some(started_tx)),
        finished: Mutex::new(Some(finished_tx)),
    });
    // A refusal (a full queue, a shutdown) reaches the follower as the end.
    let _ = daemon
        .runner
        .submit_attached(req, follower, Attach { output, cancel });

    // The client's calls, read on a task of their own: reading a frame is
    // not something to abandon halfway when output is ready first.
    let (calls_tx, mut calls) = mpsc::channel::<Option<i32>>(4);
    let reader = tokio::spawn(async move {
        loop {
            match read_frame(&mut read, MAX_CALL).await {
                Ok(body) => {
                    // Anything but an interrupt is ignored during a run.
                    if let Ok(Call::Interrupt { signal }) = decode::<Call>(&body)
                        && calls_tx.send(Some(signal)).await.is_err()
                    {
                        return;
                    }
                }
                Err(_) => {
                    let _ = calls_tx.send(None).await;
                    return;
                }
            }
        }
    });
    let result = follow(
        write,
        &mut chunks,
        &mut calls,
        &mut started,
        &mut finished,
        &cancel_tx,
    )
    .await;
    reader.abort();
    result
}

/// Forwards a run's output and start to the client and its interrupts to
/// the run, until the run's end has been sent.
async fn follow(
    write: &mut OwnedWriteHalf,
    chunks: &mut mpsc::Receiver<(Stream, Vec<u8>)>,
    calls: &mut mpsc::Receiver<Option<i32>>,
    started: &mut oneshot::Receiver<RunRecord>,
    finished: &mut oneshot::Receiver<(RunRecord, i32)>,
    cancel_tx: &watch::Sender<bool>,
) -> Result<(), WireError> {
    let mut interrupted_by: Option<i32> = None;
    let (mut client_open, mut output_open, mut started_open) = (true, true, true);
    loop {
        tokio::select! {
            chunk = chunks.recv(), if output_open => match chunk {
                Some((stream, data)) => {
                    let stream = match stream {
                        Stream::Stdout => OutputStream::Stdout,
                        Stream::Stderr => OutputStream::Stderr,
                    };
                    let msg = Answer::Output { stream, data: Bytes(data) };
                    if client_open && write_msg(write, &msg).await.is_err() {
                        client_open = false;
                        let _ = cancel_tx.send(true);
                    }
                }
                None => output_open = false,
            },
            record = &mut *started, if started_open => {
                started_open = false;
                if let Ok(record) = record
                    && let Ok(run) = crate::control::run_document(&record)
                    && client_open
                {
                    let _ = write_msg(write, &Answer::Started { run }).await;
                }
            },
            call = calls.recv(), if client_open => match call {
                Some(Some(signal)) => {
                    interrupted_by.get_or_insert(signal);
                    let _ = cancel_tx.send(true);
                }
                Some(None) | None => {
                    // The client went away: nobody follows the run any more.
                    client_open = false;
                    let _ = cancel_tx.send(true);
                }
            },
            // Only after the last output: the end comes last.
            end = &mut *finished, if !output_open => {
                let result = match end {
                    Ok((record, exit_code)) => {
                        handlers::run::ended(&record, exit_code, interrupted_by)
                            .map(Answer::Done)
                            .map_err(|e| crate::fail::to_wire(&e))
                    }
                    Err(_) => Err(WireError::new(
                        ErrorKind::Failed,
                        "the run failed in the daemon before it could end properly; the daemon's log says why",
                    )),
                };
                if !client_open {
                    return result.map(|_| ());
                }
                return send_result(write, result).await;
            },
        }
    }
}

/// Follows a run for its client: hands over the record when the run
/// starts and its end when it ends.
struct Follower {
    started: Mutex<Option<oneshot::Sender<RunRecord>>>,
    finished: Mutex<Option<oneshot::Sender<(RunRecord, i32)>>>,
}

impl Replier for Follower {
    fn started(&self, record: &RunRecord) -> ReplyFuture {
        if let Some(tx) = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = tx.send(record.clone());
        }
        Box::pin(async { Vec::new() })
    }

    fn finished(&self, outcome: &Outcome) -> ReplyFuture {
        if let Some(tx) = self
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = tx.send((outcome.record.clone(), outcome.exit_code()));
        }
        Box::pin(async { Vec::new() })
    }
}
