//! Daemon mode: requests go to `supervisor serve` over its control socket,
//! which knows the caller from the kernel (`SO_PEERCRED`). A [`Client`]
//! holds the socket's path and nothing else, so in this mode the CLI has
//! no way to the key or the store: values it reads go out once, to the
//! daemon, and nothing but names and redacted output comes back.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use supervisor_protocol::{
    Answer, Call, ErrorKind, MAX_ANSWER, MAX_CALL, ProtocolError, Reply, Request, decode, encode,
};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::control::Output;
use crate::fail::Failure;
use crate::socket::{ReadError, read_frame, write_frame, write_msg};

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
        runtime()?.block_on(async {
            let (mut read, _write) = self.send(request).await?;
            loop {
                let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.answer(&mut read))
                    .await
                    .map_err(|_| {
                        Failure::new(format!(
                            "the daemon on {} did not answer within {}s",
                            self.socket.display(),
                            ANSWER_TIMEOUT.as_secs()
                        ))
                        .hint("`journalctl -u supervisor` shows what the daemon is doing")
                    })??;
                match answer {
                    Answer::Output { stream, data } => out.output(stream, &data.0),
                    Answer::Started { .. } => {}
                    Answer::Done(reply) => return Ok(reply),
                }
            }
        })
    }

    /// Starts the run in the daemon and streams its output to this
    /// terminal. SIGINT or SIGTERM here asks the daemon to stop the run;
    /// the run ends (and this returns) when the daemon says it has.
    pub fn run(&self, agent: String, prompt: Option<String>) -> Result<Reply> {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = runtime()?;
        runtime.block_on(async {
            // Before the request: a Ctrl-C from now on reaches the run.
            let mut int = signal(SignalKind::interrupt())?;
            let mut term = signal(SignalKind::terminate())?;
            let (mut read, mut write) = self.send(Request::Run { agent, prompt }).await?;
            let mut terminal = super::Terminal;
            loop {
                let signal = tokio::select! {
                    answer = self.answer(&mut read) => match answer? {
                        Answer::Output { stream, data } => {
                            terminal.output(stream, &data.0);
                            continue;
                        }
                        Answer::Started { .. } => continue,
                        Answer::Done(reply) => return Ok(reply),
                    },
                    _ = int.recv() => libc::SIGINT,
                    _ = term.recv() => libc::SIGTERM,
                };
                // The daemon stops the run and still sends its end. Should the
                // message not go out, the daemon is gone, and the next read says so.
                let _ = write_msg(&mut write, &Call::Interrupt { signal }).await;
            }
        })
    }

    /// Connects and sends the request.
    async fn send(&self, request: Request) -> Result<(OwnedReadHalf, OwnedWriteHalf)> {
        let frame = encode(&Call::Request(request))?;
        if frame.len() > MAX_CALL {
            return Err(Failure::new(format!(
                "the request is {} bytes; the control socket takes at most {MAX_CALL}",
                frame.len()
            ))
            .hint("a prompt this long belongs in a file the agent reads")
            .into());
        }
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.unreachable(e))?;
        let (read, mut write) = stream.into_split();
        // A daemon that refuses at once (a version it does not speak, an
        // unknown user) may close before reading all of it: its answer says why.
        let _ = write_frame(&mut write, &frame).await;
        Ok((read, write))
    }

    /// The next answer; the daemon's errors become this command's errors.
    async fn answer(&self, read: &mut OwnedReadHalf) -> Result<Answer> {
        let body = match read_frame(read, MAX_ANSWER).await {
            Ok(body) => body,
            Err(ReadError::Closed) => {
                return Err(Failure::new(format!(
                    "the daemon on {} closed the connection without an answer",
                    self.socket.display()
                ))
                .hint("it may have been stopped; `systemctl status supervisor` says")
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
