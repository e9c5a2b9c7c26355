//! The control socket's protocol: the typed messages the CLI and the daemon
//! exchange, and the frames that carry them. No I/O happens here: callers
//! read a header, ask [`body_len`] how much follows, read that, and
//! [`decode`] it; [`encode`] makes a whole frame.
//!
//! A frame is a 4-byte big-endian length, then that many bytes of JSON:
//! `{"v": 2, "supervisor": "0.1.0", "msg": ...}`. Errors travel in the one
//! shape every version keeps, `{"v", "supervisor", "error": {"kind",
//! "message", "hint"}}`, so that a client and a daemon of different versions
//! can still tell each other what is wrong.
//!
//! Invariants: frames are bounded ([`MAX_CALL`] toward the daemon,
//! [`MAX_ANSWER`] toward the CLI); nothing the peer sent is ever echoed in
//! an error (messages name a line and column, never content); a secret value
//! crosses only toward the daemon, as base64 inside a frame buffer that is
//! zeroized when dropped, and no answer type can carry one.

#![forbid(unsafe_code)]

mod frame;
mod message;
mod value;

pub use frame::{HEADER_LEN, body_len, decode, encode, encode_error};
pub use message::{
    Answer, Call, Change, ErrorKind, OutputStream, Reply, Request, ScopeFor, Target, TargetScope,
    WireError,
};
pub use value::{Bytes, SecretValue};

/// The protocol version both sides must speak. It changes whenever a
/// message changes shape; the package version rides along for messages.
pub const PROTOCOL: u32 = 2;

/// The largest frame a client may send the daemon: a request with a value
/// of 64 KiB (as base64) and a long prompt fit with room to spare.
pub const MAX_CALL: usize = 256 * 1024;

/// The largest frame the daemon sends back (a long `audit list`).
pub const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// What can go wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("a message of {len} bytes is over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("an empty message")]
    Empty,
    /// Never holds content of the message: only where it broke.
    #[error("a malformed message ({0})")]
    Malformed(String),
    #[error(
        "the other side speaks protocol {theirs} (supervisor {their_supervisor}); this one speaks protocol {PROTOCOL} (supervisor {})",
        env!("CARGO_PKG_VERSION")
    )]
    Version {
        theirs: u32,
        their_supervisor: String,
    },
    /// The other side answered with an error.
    #[error("{}", .0.message)]
    Remote(WireError),
}
