//! The `[server]` section: how the daemon listens and how much work it takes
//! on at once. Every key has a default, so the section may be left out.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use crate::load::Validator;
use crate::raw::RawServer;

/// Where the daemon listens for Slack, Linear and webhook requests when the
/// config names nothing: loopback only, for a reverse proxy in front.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8780));
/// Runs that may be alive at the same time across all agents.
pub const DEFAULT_MAX_CONCURRENT_RUNS: u32 = 8;
/// Runs that may wait for a free slot before new requests are refused.
pub const DEFAULT_QUEUE_LIMIT: u32 = 64;
/// Time the daemon gives running agents to finish when it is stopped.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Largest request body the daemon reads from the network.
pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;
/// Log filter when neither the config nor `RUST_LOG` names one.
pub const DEFAULT_LOG: &str = "info";
/// The longest path a Unix socket can be bound at (`sun_path` holds 108
/// bytes with the terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The daemon's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Address of the HTTP listener (Slack, Linear, webhooks).
    pub listen: SocketAddr,
    /// Runs alive at once; further requests wait in the queue.
    pub max_concurrent_runs: u32,
    /// Runs that may wait for a slot; beyond it requests are refused
    /// (0: refuse as soon as every slot is taken).
    pub queue_limit: u32,
    /// Between asking running agents to stop and killing them at shutdown.
    pub shutdown_grace: Duration,
    /// Largest request body read, in bytes.
    pub body_limit: u64,
    /// A tracing filter such as `info` or `supervisor=debug`; `RUST_LOG`
    /// overrides it.
    pub log: String,
    /// The control socket: `serve` listens there, and the CLI sends its
    /// commands there instead of opening the key and the store itself.
    /// Relative to the config file; `None` when the config names none.
    pub control_socket: Option<PathBuf>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: DEFAULT_LISTEN,
            max_concurrent_runs: DEFAULT_MAX_CONCURRENT_RUNS,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            body_limit: DEFAULT_BODY_LIMIT,
            log: DEFAULT_LOG.to_owned(),
            control_socket: None,
        }
    }
}

impl Validator<'_> {
    pub(crate) fn server(&mut self, raw: Option<RawServer>) -> Server {
        let Some(raw) = raw else {
            return Server::default();
        };
        let listen = match raw.listen {
            None => DEFAULT_LISTEN,
            Some(value) => match value.get_ref().trim().parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => {
                    self.report(
                        &value,
                        format!("`listen` = `{}` is not an address and port", value.get_ref()),
                        Some("write an IP address and a port, e.g. \"127.0.0.1:8780\" or \"[::1]:8780\""),
                    );
                    DEFAULT_LISTEN
                }
            },
        };
        let max_concurrent_runs = match raw.max_concurrent_runs {
            None => DEFAULT_MAX_CONCURRENT_RUNS,
            Some(value) if *value.get_ref() == 0 => {
                self.report(
                    &value,
                    "`max_concurrent_runs` must be at least 1",
                    Some("with 0 no run could ever start"),
                );
                DEFAULT_MAX_CONCURRENT_RUNS
            }
            Some(value) => value.into_inner(),
        };
        let shutdown_grace =
            self.duration(raw.shutdown_grace, DEFAULT_SHUTDOWN_GRACE, "shutdown_grace");
        let body_limit = self.size(raw.body_limit, DEFAULT_BODY_LIMIT, "body_limit");
        let log = match raw.log {
            None => DEFAULT_LOG.to_owned(),
            Some(value) if value.get_ref().trim().is_empty() => {
                self.report(
                    &value,
                    "`log` is empty",
                    Some("write a filter such as \"info\" or \"supervisor=debug\", or remove the key"),
                );
                DEFAULT_LOG.to_owned()
            }
            Some(value) => Spanned::into_inner(value),
        };
        let control_socket = raw
            .control_socket
            .and_then(|value| self.socket_path(&value));
        Server {
            listen,
            max_concurrent_runs,
            queue_limit: raw.queue_limit.unwrap_or(DEFAULT_QUEUE_LIMIT),
            shutdown_grace,
            body_limit,
            log,
            control_socket,
        }
    }

    /// A socket path made absolute against the config file, reported when
    /// it is empty, names a directory or is too long to bind.
    fn socket_path(&mut self, value: &Spanned<String>) -> Option<PathBuf> {
        let text = value.get_ref();
        if text.trim().is_empty() || text.ends_with('/') {
            self.report(
                value,
                format!("`control_socket` = `{text}` is not a file path"),
                Some("name the socket file, e.g. \"/run/supervisor/control.sock\""),
            );
            return None;
        }
        let path = self.path(text);
        let len = path.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            self.report(
                value,
                format!(
                    "`control_socket` is {len} bytes long as an absolute path; a Unix socket path is at most {MAX_SOCKET_PATH}"
                ),
                Some("choose a shorter path, e.g. \"/run/supervisor/control.sock\""),
            );
            return None;
        }
        Some(path)
    }
}
