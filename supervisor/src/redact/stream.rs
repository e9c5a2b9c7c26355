//! One output stream, redacted as it arrives. The bytes that could still become part of a
//! match are held back; so are bytes that the arrival-order stage (see `output`) has not
//! settled yet, up to its `cap`, and spans it found to belong to a value printed across both
//! streams (its `covers`) are replaced like any match.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::Redactor;
use super::matcher::{Emit, Tail};
use super::view::LEAD_BACK;

/// Part of a value found across both streams: `start..end` of this stream's bytes (offsets
/// from the stream's beginning), to be replaced by the placeholder of `secret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cover {
    pub start: u64,
    pub end: u64,
    pub secret: usize,
}

/// Redacts one output stream incrementally.
pub struct RedactStream {
    redactor: Arc<Redactor>,
    /// Bytes not yet settled, waiting for the next push.
    held: Zeroizing<Vec<u8>>,
    /// Offset of `held[0]` in the stream.
    held_at: u64,
    closed: bool,
    hits: Vec<u64>,
    /// Every span of the stream replaced so far (tests check that each needle in the input
    /// lost at least one byte to a placeholder).
    #[cfg(any(test, fuzzing))]
    pub(super) replaced: Vec<(u64, u64)>,
}

impl RedactStream {
    pub(super) fn new(redactor: &Arc<Redactor>) -> RedactStream {
        RedactStream {
            redactor: Arc::clone(redactor),
            held: Zeroizing::new(Vec::new()),
            held_at: 0,
            closed: false,
            hits: vec![0; redactor.names.len()],
            #[cfg(any(test, fuzzing))]
            replaced: Vec::new(),
        }
    }

    /// Feed bytes as they arrive; appends what is safe to emit now to `out`; returns the
    /// number of replacements made.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let before = self.total();
        self.feed(input, u64::MAX, &mut Vec::new(), out);
        (self.total() - before) as usize
    }

    /// End of stream: flush the held-back tail (redacted); returns the replacements made.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> usize {
        let before = self.total();
        self.close(u64::MAX, &mut Vec::new(), out);
        (self.total() - before) as usize
    }

    /// Replacements so far, per secret (indexed as [`Redactor::names`]).
    pub fn hits(&self) -> &[u64] {
        &self.hits
    }

    fn total(&self) -> u64 {
        self.hits.iter().sum()
    }

    /// Like [`RedactStream::push`], settling nothing at or after stream offset `cap`, and
    /// replacing `covers` (which it drops once passed).
    pub(super) fn feed(
        &mut self,
        input: &[u8],
        cap: u64,
        covers: &mut Vec<Cover>,
        out: &mut Vec<u8>,
    ) {
        let redactor = Arc::clone(&self.redactor);
        let Some(m) = redactor.matcher() else {
            out.extend_from_slice(input);
            return;
        };
        let tail = if self.closed { Tail::End } else { Tail::Open };
        // How far past a position the buffer must run for every match starting there to be
        // settled; and a character before it, which such a match may take in.
        let settle = m.max_span + LEAD_BACK;
        let (rest, base) = if self.held.is_empty() {
            (input, self.held_at)
        } else if input.len() <= settle {
            append(&mut self.held, input);
            let mut emit = Covering::new(&redactor, out, &mut self.hits, covers, self.held_at);
            let keep = m.process(&self.held, tail, local(cap, self.held_at), &mut emit);
            #[cfg(any(test, fuzzing))]
            self.replaced.append(&mut emit.replaced);
            self.held.drain(..keep);
            self.held_at += keep as u64;
            return;
        } else {
            // Join the held bytes to only the first input bytes, just enough to settle every
            // match that starts in them; the bulk is then searched in place, not copied.
            let joint = self.held.len();
            append(&mut self.held, &input[..settle]);
            let mut emit = Covering::new(&redactor, out, &mut self.hits, covers, self.held_at);
            let limit = Tail::Before(joint + LEAD_BACK);
            let keep = m.process(&self.held, limit, local(cap, self.held_at), &mut emit);
            #[cfg(any(test, fuzzing))]
            self.replaced.append(&mut emit.replaced);
            if keep < joint {
                // Held back by `cap` inside the old bytes: keep all of it. (The caller's cap
                // lies near the end of a push this long, so this does not happen.)
                self.held.truncate(joint);
                self.held.drain(..keep);
                append(&mut self.held, input);
                self.held_at += keep as u64;
                return;
            }
            self.held.clear();
            self.held_at += keep as u64;
            (&input[keep - joint..], self.held_at)
        };
        let mut emit = Covering::new(&redactor, out, &mut self.hits, covers, base);
        let keep = m.process(rest, tail, local(cap, base), &mut emit);
        #[cfg(any(test, fuzzing))]
        self.replaced.append(&mut emit.replaced);
        append(&mut self.held, &rest[keep..]);
        self.held_at = base + keep as u64;
    }

    /// Settles what the new `cap` allows of the held bytes.
    pub(super) fn release(&mut self, cap: u64, covers: &mut Vec<Cover>, out: &mut Vec<u8>) {
        if !self.held.is_empty() {
            self.feed(&[], cap, covers, out);
        }
    }

    /// The stream ended: settles the held bytes, before `cap`.
    pub(super) fn close(&mut self, cap: u64, covers: &mut Vec<Cover>, out: &mut Vec<u8>) {
        self.closed = true;
        self.release(cap, covers, out);
    }
}

/// Appends to a buffer that may hold unredacted bytes, never reallocating it in place (which
/// would leave a copy in freed memory): a full buffer moves to a new one twice its size, and
/// the old one is zeroized as it is dropped.
pub(super) fn append(buf: &mut Zeroizing<Vec<u8>>, bytes: &[u8]) {
    if buf.capacity() - buf.len() < bytes.len() {
        let size = (buf.len() + bytes.len()).max(2 * buf.capacity()).max(256);
        let mut grown = Zeroizing::new(Vec::with_capacity(size));
        grown.extend_from_slice(buf);
        *buf = grown;
    }
    buf.extend_from_slice(bytes);
}

/// `cap` (a stream offset) as a position in a buffer starting at stream offset `base`.
fn local(cap: u64, base: u64) -> usize {
    usize::try_from(cap.saturating_sub(base)).unwrap_or(usize::MAX)
}

impl fmt::Debug for RedactStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedactStream")
            .field("held_bytes", &self.held.len())
            .finish_non_exhaustive()
    }
}

/// Appends what the matcher settles to a buffer, counting replacements per secret.
pub(super) struct ToVec<'a> {
    pub out: &'a mut Vec<u8>,
    pub replacements: &'a [Box<[u8]>],
    pub hits: &'a mut [u64],
}

impl Emit for ToVec<'_> {
    fn bytes(&mut self, buf: &[u8], from: usize, to: usize) {
        self.out.extend_from_slice(&buf[from..to]);
    }

    fn marker(&mut self, _buf: &[u8], _start: usize, _end: usize, secret: usize) {
        self.out.extend_from_slice(&self.replacements[secret]);
        self.hits[secret] += 1;
    }
}

/// [`ToVec`] that also replaces the covers among the bytes it passes on; `base` is the
/// stream offset of the buffer's first byte.
struct Covering<'a> {
    to: ToVec<'a>,
    covers: &'a mut Vec<Cover>,
    base: u64,
    #[cfg(any(test, fuzzing))]
    replaced: Vec<(u64, u64)>,
}

impl<'a> Covering<'a> {
    fn new(
        redactor: &'a Redactor,
        out: &'a mut Vec<u8>,
        hits: &'a mut [u64],
        covers: &'a mut Vec<Cover>,
        base: u64,
    ) -> Covering<'a> {
        Covering {
            to: ToVec {
                out,
                replacements: &redactor.replacements,
                hits,
            },
            covers,
            base,
            #[cfg(any(test, fuzzing))]
            replaced: Vec::new(),
        }
    }

    #[cfg(any(test, fuzzing))]
    fn record(&mut self, start: u64, end: u64) {
        self.replaced.push((start, end));
    }

    #[cfg(not(any(test, fuzzing)))]
    fn record(&mut self, _start: u64, _end: u64) {}
}

impl Emit for Covering<'_> {
    fn bytes(&mut self, buf: &[u8], from: usize, to: usize) {
        if self.covers.is_empty() {
            return self.to.bytes(buf, from, to);
        }
        let (base, end) = (self.base, self.base + to as u64);
        let mut p = self.base + from as u64;
        for c in self.covers.iter() {
            if c.end <= p || c.start >= end {
                continue;
            }
            let start = c.start.max(p);
            self.to
                .out
                .extend_from_slice(&buf[(p - base) as usize..(start - base) as usize]);
            self.to
                .out
                .extend_from_slice(&self.to.replacements[c.secret]);
            p = c.end.min(end);
            #[cfg(any(test, fuzzing))]
            self.replaced.push((start, p));
        }
        self.to.out.extend_from_slice(&buf[(p - base) as usize..to]);
        self.covers.retain(|c| c.end > end);
    }

    fn marker(&mut self, buf: &[u8], start: usize, end: usize, secret: usize) {
        self.record(self.base + start as u64, self.base + end as u64);
        self.to.marker(buf, start, end, secret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn a_full_buffer_moves_instead_of_growing_in_place() {
        let mut buf = Zeroizing::new(Vec::new());
        append(&mut buf, b"abc");
        let (ptr, cap) = (buf.as_ptr(), buf.capacity());
        assert!(cap >= 256);
        append(&mut buf, &vec![b'x'; cap - 3]);
        assert_eq!(buf.as_ptr(), ptr, "it fits: no move");
        append(&mut buf, b"y");
        assert_ne!(buf.as_ptr(), ptr, "full: a new buffer");
        assert!(buf.capacity() >= 2 * cap);
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(buf.last(), Some(&b'y'));
    }

    #[test]
    fn covers_are_replaced_where_they_fall_and_held_bytes_wait_for_the_cap() {
        let value = SecretString::from("cover-me-0123".to_owned());
        let r = Arc::new(Redactor::new([("V", &value)]));
        let mut s = r.stream();
        let mut covers = vec![Cover {
            start: 2,
            end: 5,
            secret: 0,
        }];
        let mut out = Vec::new();
        // Nothing at or after offset 4 is settled yet.
        s.feed(b"0123456789", 4, &mut covers, &mut out);
        assert_eq!(out, b"01[REDACTED:V]");
        s.release(u64::MAX, &mut covers, &mut out);
        assert!(covers.is_empty(), "a cover passed is dropped");
        // The last digit could still lead a base64 form that a next push begins.
        assert_eq!(out, b"01[REDACTED:V][REDACTED:V]5678");
        s.close(u64::MAX, &mut covers, &mut out);
        assert_eq!(out, b"01[REDACTED:V][REDACTED:V]56789");
    }
}
