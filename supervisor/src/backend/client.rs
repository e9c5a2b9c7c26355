//! Daemon mode: requests go to `supervisor serve` over its control socket,
//! which knows the caller from the kernel (`SO_PEERCRED`). A [`Client`]
//! holds the socket's path and nothing else, so in this mode the CLI has
//! no way to the key or the store: values it reads go out once, to the
//! daemon, and nothing but names and redacted output comes back.
//!
//! One request and its answers over a blocking socket, with no async
//! runtime: building one, with its signal handling, cost a `supervisor
//! run` through the daemon about 0.35 of its 4 ms.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use supervisor_protocol::{
    Answer, Call, ErrorKind, MAX_ANSWER, MAX_CALL, ProtocolError, Reply, Request, decode, encode,
};

use crate::control::Output;
use crate::fail::Failure;
use crate::socket::{ReadError, read_frame_blocking};

/// How long the daemon may take to answer a request other than a run.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Client {
    socket: PathBuf,
    /// Where the path came from, for messages.
    from: &'static str,
}

impl Client {
    pub fn new(socket: PathBuf, from: &'static str) -> Client {
        Client { socket, from }
    }

    pub fn socket(&self) -> &PathBuf {
        &self.socket
    }

    pub fn mode(&self) -> String {
        format!(
            "sent to the daemon on {} ({})",
            self.socket.display(),
            self.from
        )
    }

    pub fn call(&self, request: Request, out: &mut dyn Output) -> Result<Reply> {
        let mut stream = self.send(request)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        loop {
            match self.answer(&mut stream)? {
                Answer::Output { stream, data } => out.output(stream, &data.0),
                Answer::Started { .. } => {}
                Answer::Done(reply) => return Ok(reply),
            }
        }
    }

    /// Starts the run in the daemon and streams its output to this
    /// terminal. SIGINT or SIGTERM here asks the daemon to stop the run;
    /// the run ends (and this returns) when the daemon says it has.
    pub fn run(&self, agent: String, prompt: Option<String>) -> Result<Reply> {
        // Before the request: a Ctrl-C from now on reaches the run.
        let signals = Interrupts::take()?;
        let mut stream = self.send(Request::Run { agent, prompt })?;
        let mut terminal = super::Terminal;
        loop {
            if let Some(signal) = signals.wait(&stream)? {
                // The daemon stops the run and still sends its end. Should the
                // message not go out, the daemon is gone, and the next read says so.
                if let Ok(frame) = encode(&Call::Interrupt { signal }) {
                    let _ = stream.write_all(&frame);
                }
                continue;
            }
            match self.answer(&mut stream)? {
                Answer::Output { stream, data } => terminal.output(stream, &data.0),
                Answer::Started { .. } => {}
                Answer::Done(reply) => return Ok(reply),
            }
        }
    }

    /// Connects and sends the request.
    fn send(&self, request: Request) -> Result<UnixStream> {
        let frame = encode(&Call::Request(request))?;
        if frame.len() > MAX_CALL {
            return Err(Failure::new(format!(
                "the request is {} bytes; the control socket takes at most {MAX_CALL}",
                frame.len()
            ))
            .hint("a prompt this long belongs in a file the agent reads")
            .into());
        }
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| self.unreachable(e))?;
        // A daemon that stopped reading must not hold the write forever; the
        // answer read after it reports what went wrong.
        stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        // A daemon that refuses at once (a version it does not speak, an
        // unknown user) may close before reading all of it: its answer says why.
        let _ = stream.write_all(&frame);
        Ok(stream)
    }

    /// The next answer; the daemon's errors become this command's errors.
    fn answer(&self, stream: &mut UnixStream) -> Result<Answer> {
        let body = match read_frame_blocking(stream, MAX_ANSWER) {
            Ok(body) => body,
            Err(ReadError::Closed) => {
                return Err(Failure::new(format!(
                    "the daemon on {} closed the connection without an answer",
                    self.socket.display()
                ))
                .hint("it may have been stopped; `systemctl status supervisor` says")
                .into());
            }
            Err(ReadError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Failure::new(format!(
                    "the daemon on {} did not answer within {}s",
                    self.socket.display(),
                    ANSWER_TIMEOUT.as_secs()
                ))
                .hint("`journalctl -u supervisor` shows what the daemon is doing")
                .into());
            }
            Err(ReadError::Io(e)) => {
                return Err(Failure::new(format!(
                    "reading from the daemon on {}: {e}",
                    self.socket.display()
                ))
                .into());
            }
            Err(ReadError::Protocol(e)) => return Err(self.protocol(e)),
        };
        decode::<Answer>(&body).map_err(|e| self.protocol(e))
    }

    fn protocol(&self, e: ProtocolError) -> anyhow::Error {
        let socket = self.socket.display();
        match e {
            ProtocolError::Remote(w) => {
                let mut f = Failure::new(w.message);
                f.hint = w.hint;
                if w.kind == ErrorKind::Version && f.hint.is_none() {
                    f = f.hint(VERSION_HINT);
                }
                f.into()
            }
            ProtocolError::Version { .. } => {
                Failure::new(format!("the daemon on {socket} cannot be understood: {e}"))
                    .hint(VERSION_HINT)
                    .into()
            }
            other => Failure::new(format!("the daemon on {socket} sent {other}"))
                .hint(VERSION_HINT)
                .into(),
        }
    }

    fn unreachable(&self, e: std::io::Error) -> anyhow::Error {
        use std::io::ErrorKind::*;
        let socket = self.socket.display();
        let start = format!(
            "start the daemon (`systemctl start supervisor`), or, where you hold the master key, add --local to open the store from this process (the socket comes from {})",
            self.from
        );
        match e.kind() {
            NotFound => Failure::new(format!(
                "no supervisor daemon is listening on {socket}: the socket does not exist"
            ))
            .hint(start),
            ConnectionRefused => Failure::new(format!(
                "the supervisor daemon does not answer on {socket} (connection refused)"
            ))
            .hint(start),
            PermissionDenied => Failure::new(format!(
                "you may not connect to the control socket {socket} (permission denied)"
            ))
            .hint("the socket and the directories above it must be open to the team's users: see the README's \"Install for a team\""),
            _ => Failure::new(format!("connecting to the daemon on {socket}: {e}")).hint(start),
        }
        .into()
    }
}

const VERSION_HINT: &str =
    "use the supervisor binary of the daemon's version (after an upgrade, restart the daemon)";

/// SIGINT and SIGTERM, taken from a descriptor instead of a handler while
/// a run is followed. They stay blocked for the rest of this process,
/// which ends with the run: one that comes after the run's end does not
/// kill it with another status than the run's.
struct Interrupts(SignalFd);

impl Interrupts {
    fn take() -> Result<Interrupts> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        // Blocked first, so that none arrives between the two calls and ends
        // the process; this thread is the CLI's only one.
        set.thread_block()?;
        // Non-blocking: a read that finds nothing returns, and the wait goes on.
        let flags = SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK;
        Ok(Interrupts(SignalFd::with_flags(&set, flags)?))
    }

    /// Waits until `stream` has something to read (`None`) or a signal
    /// came (its number). A signal is taken first: the run is to stop.
    fn wait(&self, stream: &UnixStream) -> Result<Option<i32>> {
        loop {
            let mut fds = [
                PollFd::new(self.0.as_fd(), PollFlags::POLLIN),
                PollFd::new(stream.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            if fds[0].any().unwrap_or(false)
                && let Some(info) = self.0.read_signal()?
            {
                return Ok(Some(info.ssi_signo as i32));
            }
            // Readable, closed or failed: the read that follows says which.
            if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                return Ok(None);
            }
        }
    }
}
