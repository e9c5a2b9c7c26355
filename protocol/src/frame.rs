//! Frames: a 4-byte big-endian length, then a JSON envelope of that length.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{PROTOCOL, ProtocolError, WireError};

/// The length prefix of every frame.
pub const HEADER_LEN: usize = 4;

const SUPERVISOR: &str = env!("CARGO_PKG_VERSION");

#[derive(Serialize)]
struct Outgoing<'a, T> {
    v: u32,
    supervisor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<&'a T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a WireError>,
}

/// The part of a frame every version reads alike.
#[derive(Deserialize)]
struct Head {
    v: u32,
    #[serde(default)]
    supervisor: String,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct Incoming<T> {
    msg: T,
}

/// A whole frame (header and body) carrying `msg`. The buffer is zeroized
/// when dropped, since a request may hold a secret value.
pub fn encode<T: Serialize>(msg: &T) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    frame(&Outgoing {
        v: PROTOCOL,
        supervisor: SUPERVISOR,
        msg: Some(msg),
        error: None,
    })
}

/// A whole frame carrying an error.
pub fn encode_error(error: &WireError) -> Zeroizing<Vec<u8>> {
    frame(&Outgoing::<()> {
        v: PROTOCOL,
        supervisor: SUPERVISOR,
        msg: None,
        error: Some(error),
    })
    .unwrap_or_else(|_| Zeroizing::new(Vec::new()))
}

fn frame<T: Serialize>(out: &Outgoing<'_, T>) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    // Measure first, then write into a buffer of exactly that size: a
    // growing buffer would leave copies of a value behind as it moves.
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, out).map_err(|e| {
        ProtocolError::Malformed(format!("could not encode: {}", e.classify_text()))
    })?;
    let len = counter.0;
    let header = u32::try_from(len).map_err(|_| ProtocolError::TooLarge {
        len,
        max: u32::MAX as usize,
    })?;
    let mut buf = Zeroizing::new(Vec::with_capacity(HEADER_LEN + len));
    buf.extend_from_slice(&header.to_be_bytes());
    serde_json::to_writer(&mut *buf, out).map_err(|e| {
        ProtocolError::Malformed(format!("could not encode: {}", e.classify_text()))
    })?;
    debug_assert_eq!(buf.len(), HEADER_LEN + len);
    Ok(buf)
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The length of the body that follows `header`, checked against `max`.
pub fn body_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 {
        return Err(ProtocolError::Empty);
    }
    if len > max {
        return Err(ProtocolError::TooLarge { len, max });
    }
    Ok(len)
}

/// Reads a frame's body: the other side's error, a version mismatch, or
/// the message. Errors say where the JSON broke, never what it held.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProtocolError> {
    let head: Head = serde_json::from_slice(body).map_err(malformed)?;
    if let Some(error) = head.error {
        return Err(ProtocolError::Remote(error));
    }
    if head.v != PROTOCOL {
        return Err(ProtocolError::Version {
            theirs: head.v,
            their_supervisor: version_text(head.supervisor),
        });
    }
    let incoming: Incoming<T> = serde_json::from_slice(body).map_err(malformed)?;
    Ok(incoming.msg)
}

/// The peer's version as it may be shown and logged: a short version
/// string, else `unknown` (it is the peer's text, so nothing else of it).
fn version_text(text: String) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+');
    if text.is_empty() || text.len() > 32 || !text.chars().all(plain) {
        return "unknown".into();
    }
    text
}

fn malformed(e: serde_json::Error) -> ProtocolError {
    ProtocolError::Malformed(format!(
        "{} at line {}, column {}",
        e.classify_text(),
        e.line(),
        e.column()
    ))
}

/// What kind of JSON error, in words that hold nothing of the input.
trait ClassifyText {
    fn classify_text(&self) -> &'static str;
}

impl ClassifyText for serde_json::Error {
    fn classify_text(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "an I/O error",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "not a message this side knows",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

#[cfg(test)]
mod tests;
