//! Where a run's output goes: every byte passes the run's redactor, then
//! the run log (capped), the terminal for local runs or the client of the
//! control socket for its runs, and a short tail kept for replies to Slack
//! or Linear.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::redact::Redactor;

/// How much redacted output is kept for replies.
pub const TAIL_BYTES: usize = 8 * 1024;

/// The first read buffer of each stream. It doubles, up to [`MAX_READ`], each
/// time a read fills it: a hundred quiet agents cost little memory, and busy
/// output still reaches the redactor in big chunks.
const FIRST_READ: usize = 1024;
/// The largest read buffer.
const MAX_READ: usize = 16 * 1024;

/// Which of the child's streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where redacted output goes besides the log and the tail.
#[derive(Debug, Clone)]
pub enum Echo {
    /// This process's stdout and stderr (a local run).
    Terminal,
    Quiet,
    /// A client of the control socket, as `(stream, redacted chunk)` in
    /// order. A client that reads slowly slows the run's output, as a
    /// terminal does; one that went away is skipped.
    Channel(mpsc::Sender<(Stream, Vec<u8>)>),
}

/// What the sinks saw, for the run record.
#[derive(Debug, Default)]
pub struct Written {
    pub log_bytes: u64,
    pub cut: bool,
    pub redactions: u64,
    /// The last [`TAIL_BYTES`] of redacted output, both streams interleaved.
    pub tail: Vec<u8>,
    pub log_error: Option<String>,
}

/// Reads one of the child's streams to its end, redacting as it goes, and
/// hands redacted chunks to the writer. Returns the replacements made.
pub async fn pump(
    mut from: impl AsyncRead + Unpin,
    stream: Stream,
    redactor: Arc<Redactor>,
    to: mpsc::Sender<(Stream, Vec<u8>)>,
) -> u64 {
    let mut redacting = redactor.stream();
    let mut buf = Zeroizing::new(vec![0u8; FIRST_READ]);
    let mut count = 0u64;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n + 64);
        count += redacting.push(&buf[..n], &mut out) as u64;
        if !out.is_empty() && to.send((stream, out)).await.is_err() {
            break;
        }
        if n == buf.len() && buf.len() < MAX_READ {
            // A new buffer, not a reallocation: the old one, which held
            // unredacted output, is zeroized as it is dropped.
            buf = Zeroizing::new(vec![0u8; 2 * buf.len()]);
        }
    }
    let mut out = Vec::new();
    count += redacting.finish(&mut out) as u64;
    if !out.is_empty() {
        let _ = to.send((stream, out)).await;
    }
    count
}

/// Writes redacted chunks to the log (up to `limit` bytes, then a marker),
/// the terminal, and the tail, until every pump has finished.
pub async fn write_all(
    mut from: mpsc::Receiver<(Stream, Vec<u8>)>,
    mut log: File,
    limit: u64,
    echo: Echo,
) -> Written {
    let mut w = Written::default();
    let mut tail: VecDeque<u8> = VecDeque::with_capacity(TAIL_BYTES);
    let mut client_gone = false;
    while let Some((stream, chunk)) = from.recv().await {
        match &echo {
            Echo::Terminal => {
                // A closed terminal must not stop the run or its log.
                let _ = match stream {
                    Stream::Stdout => std::io::stdout()
                        .lock()
                        .write_all(&chunk)
                        .and_then(|()| std::io::stdout().flush()),
                    Stream::Stderr => std::io::stderr().lock().write_all(&chunk),
                };
            }
            Echo::Channel(client) if !client_gone => {
                client_gone = client.send((stream, chunk.clone())).await.is_err();
            }
            Echo::Channel(_) | Echo::Quiet => {}
        }
        if !w.cut && w.log_error.is_none() {
            let room = limit.saturating_sub(w.log_bytes) as usize;
            let part = &chunk[..chunk.len().min(room)];
            let mut result = log.write_all(part);
            w.log_bytes += part.len() as u64;
            if part.len() < chunk.len() {
                w.cut = true;
                let marker = format!(
                    "\n[supervisor: the log was cut at {limit} bytes; later output was not kept]\n"
                );
                result = result.and_then(|()| log.write_all(marker.as_bytes()));
            }
            if let Err(e) = result {
                w.log_error = Some(e.to_string());
            }
        }
        tail.extend(chunk.iter().copied());
        if tail.len() > TAIL_BYTES {
            tail.drain(..tail.len() - TAIL_BYTES);
        }
    }
    w.tail = tail.into_iter().collect();
    w
}
