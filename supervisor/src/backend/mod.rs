//! Where the CLI's requests go, chosen once per command and said in errors:
//!
//! - [`Backend::Daemon`]: a [`Client`] of the control socket. It holds the
//!   socket's path and nothing else: no config, no key, no store. In this
//!   mode the CLI cannot open the key, because nothing it can reach would.
//! - [`Backend::Local`]: this process opens the key and the store itself
//!   (one person's machine, or an operator holding the key) and executes
//!   the same handlers the daemon does.
//!
//! The choice is explicit: `--local`; else `--socket PATH` or
//! `$SUPERVISOR_SOCKET`; else the config's `[server] control_socket`; else
//! local. A configured socket that does not answer is an error, never a
//! reason to fall back.

mod client;
mod local;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use supervisor_config::Config;
use supervisor_protocol::{OutputStream, Reply, Request};

pub use client::Client;
pub use local::Local;

use crate::cli::Global;
use crate::context::{Context, config_path};
use crate::control::Output;

pub enum Backend {
    Local(Box<Local>),
    Daemon(Client),
}

impl Backend {
    /// The backend `global` and the config ask for.
    pub fn choose(global: &Global) -> Result<Backend> {
        if !global.local
            && let Some(socket) = &global.socket
        {
            return Ok(Backend::Daemon(Client::new(
                socket.clone(),
                "--socket or $SUPERVISOR_SOCKET",
            )));
        }
        let config = Config::load(&config_path(global)?)?;
        match config.server.control_socket.clone() {
            Some(socket) if !global.local => Ok(Backend::Daemon(Client::new(
                socket,
                "[server] control_socket",
            ))),
            _ => Ok(Backend::Local(Box::new(Local::new(
                Context::with_config(global, config),
                global.local,
            )))),
        }
    }

    /// Sends one request; output it produces goes to this terminal.
    pub fn call(&mut self, request: Request) -> Result<Reply> {
        let mut out = Terminal;
        match self {
            Backend::Local(local) => local.call(request, &mut out),
            Backend::Daemon(client) => client.call(request, &mut out),
        }
    }

    /// Sends one request and gathers the output it produces (a stored log)
    /// instead of showing it.
    pub fn call_gathered(&mut self, request: Request) -> Result<(Reply, Vec<u8>)> {
        let mut out = Gathered(Vec::new());
        let reply = match self {
            Backend::Local(local) => local.call(request, &mut out),
            Backend::Daemon(client) => client.call(request, &mut out),
        }?;
        Ok((reply, out.0))
    }

    /// Starts a run as the caller and streams its output here; the reply
    /// is the run's end.
    pub fn run(&mut self, agent: String, prompt: Option<String>) -> Result<Reply> {
        match self {
            Backend::Local(local) => local.run(agent, prompt),
            Backend::Daemon(client) => client.run(agent, prompt),
        }
    }

    /// Which mode answered, for errors and summaries.
    pub fn mode(&self) -> String {
        match self {
            Backend::Local(local) => local.mode(),
            Backend::Daemon(client) => client.mode(),
        }
    }

    /// The socket, in daemon mode.
    pub fn socket(&self) -> Option<&PathBuf> {
        match self {
            Backend::Local(_) => None,
            Backend::Daemon(client) => Some(client.socket()),
        }
    }
}

/// Output to this process's stdout and stderr. A closed terminal is not an
/// error: the run and its log go on.
pub struct Terminal;

impl Output for Terminal {
    fn output(&mut self, stream: OutputStream, bytes: &[u8]) {
        let _ = match stream {
            OutputStream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            OutputStream::Stderr => std::io::stderr().lock().write_all(bytes),
        };
    }
}

/// Output kept in memory, in order, both streams together.
struct Gathered(Vec<u8>);

impl Output for Gathered {
    fn output(&mut self, _: OutputStream, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}
