//! Where a run's output goes. Both of the child's streams are read by one task, in the order
//! their bytes arrive, and pass the run's redactor as a pair ([`crate::redact::Output`]: each
//! stream, and where they meet); every sink then gets `(stream, redacted bytes)` chunks: the
//! run log (capped), the terminal for local runs or the client of the control socket for
//! its runs, a short tail kept for replies, and any other sink a caller adds. No sink ever
//! sees unredacted bytes, nor redacts on its own.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

pub use crate::redact::Stream;
use crate::redact::{Emitted, Redactor};

/// How much redacted output is kept for replies.
pub const TAIL_BYTES: usize = 8 * 1024;

/// The first read buffer of each stream. It doubles, up to [`MAX_READ`], each
/// time a read fills it: a hundred quiet agents cost little memory, and busy
/// output still reaches the redactor in big chunks.
const FIRST_READ: usize = 1024;
/// The largest read buffer.
const MAX_READ: usize = 1 << 20;
/// What the child's pipes are asked to hold, so that a busy agent writes (and
/// we read) in big chunks; the kernel may refuse (`fs.pipe-max-size`, a user's
/// pipe quota), which only costs speed.
const PIPE_SIZE: i32 = 1 << 20;

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

/// Another consumer of a run's redacted output (such as a client watching the run).
pub type ExtraSink = Box<dyn FnMut(Stream, &[u8]) + Send>;

/// Where redacted output goes besides the log.
pub struct Sinks {
    pub echo: Echo,
    pub extra: Vec<ExtraSink>,
}

/// What the sinks saw, for the run record.
#[derive(Debug, Default)]
pub struct Written {
    pub log_bytes: u64,
    pub cut: bool,
    /// Replacements per secret, indexed as [`Redactor::names`].
    pub hits: Vec<u64>,
    /// The last [`TAIL_BYTES`] of redacted output, both streams interleaved.
    pub tail: Vec<u8>,
    pub log_error: Option<String>,
}

impl Written {
    pub fn redactions(&self) -> u64 {
        self.hits.iter().sum()
    }
}

/// Reads both of the child's streams to their end, redacting as it goes, and
/// hands redacted chunks to the log (up to `limit` bytes, then a marker) and
/// the sinks. At the first replacement, sends the index of its secret on `leak`.
pub async fn pump(
    mut stdout: impl AsyncRead + AsFd + Unpin,
    mut stderr: impl AsyncRead + AsFd + Unpin,
    redactor: Arc<Redactor>,
    log: File,
    limit: u64,
    sinks: Sinks,
    mut leak: Option<oneshot::Sender<usize>>,
) -> Written {
    for pipe in [stdout.as_fd(), stderr.as_fd()] {
        let _ = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    let mut output = redactor.output();
    let mut sinks = sinks;
    // A client is written to with blocking sends, which belong on the writer's
    // own thread: it gets one from the start.
    let client = match &sinks.echo {
        Echo::Channel(client) => Some(client.clone()),
        Echo::Terminal | Echo::Quiet => None,
    };
    if let Some(client) = client.clone() {
        let mut gone = false;
        sinks.extra.push(Box::new(move |stream, chunk| {
            if !gone {
                gone = client.blocking_send((stream, chunk.to_vec())).is_err();
            }
        }));
    }
    let mut writer = Writer::Inline(Fanout::new(log, limit, sinks), Emitted::default());
    if client.is_some() {
        writer.go_busy();
    }
    let mut bufs = [
        Zeroizing::new(vec![0u8; FIRST_READ]),
        Zeroizing::new(vec![0u8; FIRST_READ]),
    ];
    let mut open = [true, true];
    let mut read = 0u64;
    while open != [false, false] {
        let [out_buf, err_buf] = &mut bufs;
        // Stdout first when both have bytes: the order a program wrote them in when it
        // wrote stdout first, and a stable one.
        let (stream, got) = tokio::select! {
            biased;
            r = stdout.read(out_buf), if open[0] => (Stream::Stdout, r),
            r = stderr.read(err_buf), if open[1] => (Stream::Stderr, r),
        };
        let i = usize::from(stream == Stream::Stderr);
        let mut em = writer.spare();
        match got {
            Ok(0) | Err(_) => {
                open[i] = false;
                output.close_to(stream, &mut em);
            }
            Ok(n) => {
                output.push_to(stream, &bufs[i][..n], &mut em);
                read += n as u64;
                if n == bufs[i].len() && n < MAX_READ {
                    // A new buffer, not a reallocation: the old one, which held
                    // unredacted output, is zeroized as it is dropped.
                    bufs[i] = Zeroizing::new(vec![0u8; 2 * n]);
                }
            }
        }
        writer.write(em).await;
        if read > BUSY {
            writer.go_busy();
        }
        if let Some(first) = leak.as_ref().and_then(|_| output.first_hit()) {
            if let Some(tx) = leak.take() {
                let _ = tx.send(first);
            }
        }
    }
    writer.finish().await.finish(output.hits())
}

/// Output after which the sinks get a thread of their own, so that writing (the log above
/// all) overlaps with reading and redacting: a busy agent's output, not a quiet one's.
const BUSY: u64 = 4 << 20;

/// Where redacted chunks are written: here, or on a thread of their own.
enum Writer {
    /// The sinks, and the buffer to fill next.
    Inline(Fanout, Emitted),
    Thread {
        chunks: tokio::sync::mpsc::Sender<Emitted>,
        spare: std::sync::mpsc::Receiver<Emitted>,
        done: tokio::task::JoinHandle<Fanout>,
    },
    Switching,
}

impl Writer {
    /// A buffer for the next chunks: one the writer is done with, when there is one.
    fn spare(&mut self) -> Emitted {
        match self {
            Writer::Inline(_, spare) => std::mem::take(spare),
            Writer::Thread { spare, .. } => spare.try_recv().unwrap_or_default(),
            Writer::Switching => Emitted::default(),
        }
    }

    async fn write(&mut self, em: Emitted) {
        match self {
            Writer::Inline(to, spare) => {
                for (stream, chunk) in em.chunks() {
                    to.chunk(stream, chunk);
                }
                *spare = em;
            }
            Writer::Thread { chunks, .. } => {
                if !em.is_empty() {
                    // Only fails if the thread is gone, which `finish` reports.
                    let _ = chunks.send(em).await;
                }
            }
            Writer::Switching => unreachable!("a writer is never left switching"),
        }
    }

    fn go_busy(&mut self) {
        if !matches!(self, Writer::Inline(..)) {
            return;
        }
        let Writer::Inline(mut to, _) = std::mem::replace(self, Writer::Switching) else {
            unreachable!("checked above");
        };
        // Two batches in flight: enough to keep both sides busy, little memory.
        let (chunks, mut rx) = tokio::sync::mpsc::channel::<Emitted>(2);
        let (spare_tx, spare) = std::sync::mpsc::channel();
        let done = tokio::task::spawn_blocking(move || {
            while let Some(em) = rx.blocking_recv() {
                for (stream, chunk) in em.chunks() {
                    to.chunk(stream, chunk);
                }
                let _ = spare_tx.send(em);
            }
            to
        });
        *self = Writer::Thread {
            chunks,
            spare,
            done,
        };
    }

    async fn finish(self) -> Fanout {
        match self {
            Writer::Inline(to, _) => to,
            Writer::Thread { chunks, done, .. } => {
                drop(chunks);
                match done.await {
                    Ok(to) => to,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
            Writer::Switching => unreachable!("a writer is never left switching"),
        }
    }
}

/// Hands each redacted chunk to every sink.
struct Fanout {
    log: File,
    limit: u64,
    terminal: Option<[File; 2]>,
    extra: Vec<ExtraSink>,
    w: Written,
    tail: Vec<u8>,
}

impl Fanout {
    fn new(log: File, limit: u64, sinks: Sinks) -> Fanout {
        // Written to directly, not through this process's buffered handles: one write per
        // chunk. Whatever those handles buffered goes first.
        let terminal = matches!(sinks.echo, Echo::Terminal)
            .then(|| {
                let _ = std::io::stdout().flush();
                let _ = std::io::stderr().flush();
                let out = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
                let err = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
                Some([File::from(out), File::from(err)])
            })
            .flatten();
        Fanout {
            log,
            limit,
            terminal,
            extra: sinks.extra,
            w: Written::default(),
            tail: Vec::with_capacity(2 * TAIL_BYTES),
        }
    }

    fn chunk(&mut self, stream: Stream, chunk: &[u8]) {
        if let Some(terminal) = &mut self.terminal {
            // A closed terminal must not stop the run or its log.
            let _ = terminal[usize::from(stream == Stream::Stderr)].write_all(chunk);
        }
        for sink in &mut self.extra {
            sink(stream, chunk);
        }
        let w = &mut self.w;
        if !w.cut && w.log_error.is_none() {
            let room = self.limit.saturating_sub(w.log_bytes) as usize;
            let part = &chunk[..chunk.len().min(room)];
            let mut result = self.log.write_all(part);
            w.log_bytes += part.len() as u64;
            if part.len() < chunk.len() {
                w.cut = true;
                let marker = format!(
                    "\n[supervisor: the log was cut at {} bytes; later output was not kept]\n",
                    self.limit
                );
                result = result.and_then(|()| self.log.write_all(marker.as_bytes()));
            }
            if let Err(e) = result {
                w.log_error = Some(e.to_string());
            }
        }
        let keep = &chunk[chunk.len().saturating_sub(TAIL_BYTES)..];
        if self.tail.len() + keep.len() > 2 * TAIL_BYTES {
            let drop = (self.tail.len() + keep.len()).saturating_sub(TAIL_BYTES);
            self.tail.drain(..drop.min(self.tail.len()));
        }
        self.tail.extend_from_slice(keep);
    }

    fn finish(mut self, hits: Vec<u64>) -> Written {
        let start = self.tail.len().saturating_sub(TAIL_BYTES);
        self.w.tail = self.tail.split_off(start);
        self.w.hits = hits;
        self.w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_bytes_of_the_joined_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = File::create(dir.path().join("log")).unwrap();
        let mut f = Fanout::new(
            log,
            1 << 20,
            Sinks {
                echo: Echo::Quiet,
                extra: Vec::new(),
            },
        );
        let mut all = Vec::new();
        for i in 0..5000u32 {
            let line = format!("line {i}\n");
            let stream = if i % 3 == 0 {
                Stream::Stderr
            } else {
                Stream::Stdout
            };
            f.chunk(stream, line.as_bytes());
            all.extend_from_slice(line.as_bytes());
        }
        f.chunk(Stream::Stdout, &[b'x'; 3 * TAIL_BYTES]);
        all.extend_from_slice(&[b'x'; 3 * TAIL_BYTES]);
        f.chunk(Stream::Stdout, b"end");
        all.extend_from_slice(b"end");
        let w = f.finish(vec![0]);
        assert_eq!(w.tail, all[all.len() - TAIL_BYTES..]);
        assert_eq!(
            std::fs::read(dir.path().join("log")).unwrap(),
            all,
            "the log holds everything under its limit"
        );
    }

    #[test]
    fn the_log_is_cut_at_its_limit_with_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let log = File::create(dir.path().join("log")).unwrap();
        let mut f = Fanout::new(
            log,
            10,
            Sinks {
                echo: Echo::Quiet,
                extra: Vec::new(),
            },
        );
        f.chunk(Stream::Stdout, b"0123456");
        f.chunk(Stream::Stderr, b"789abc");
        f.chunk(Stream::Stdout, b"more");
        let w = f.finish(vec![]);
        assert!(w.cut);
        assert_eq!(w.log_bytes, 10);
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert!(log.starts_with("0123456789\n[supervisor: the log was cut at 10 bytes"));
    }
}
