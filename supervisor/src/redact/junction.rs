//! Where two streams meet in one sequence: replaces the matches that span a change of
//! stream, and only those (each stream's own matches are the stream's business). It holds
//! back the end of the sequence that could begin such a match, and settles the rest.

use zeroize::Zeroizing;

use super::matcher::{Emit, Matcher, Tail};
use super::output::Stream;
use super::stream::append;
use super::view::{ESC, LEAD_BACK};

/// What a [`Junction`] settles.
pub trait Meet {
    /// Bytes of `stream`, unchanged, held back earlier.
    fn bytes(&mut self, stream: Stream, bytes: &[u8]);
    /// Bytes `from..to` of the chunk being joined, unchanged.
    fn passed(&mut self, stream: Stream, data: &[u8], from: usize, to: usize) {
        self.bytes(stream, &data[from..to]);
    }
    /// One stream's piece of a match: `len` bytes from offset `at` of `stream`.
    fn piece(&mut self, stream: Stream, at: u64, len: usize, secret: usize);
    /// A match of `secret` (once, whatever its pieces).
    fn hit(&mut self, secret: usize);
}

/// Consecutive bytes of one stream in the sequence.
#[derive(Debug, Clone, Copy)]
struct Run {
    stream: Stream,
    /// Offset in `pending` just past the run.
    end: usize,
    /// Offset in its stream of the run's first byte.
    at: u64,
}

/// The held end of a sequence of two streams' bytes.
#[derive(Default)]
pub struct Junction {
    pending: Zeroizing<Vec<u8>>,
    runs: Vec<Run>,
}

impl Junction {
    /// Offset in `stream` of its first held byte, if it has any.
    pub fn held_from(&self, stream: Stream) -> Option<u64> {
        self.runs.iter().find(|r| r.stream == stream).map(|r| r.at)
    }

    /// Adds `data`, bytes of `stream` from its offset `at`, to the sequence.
    pub fn join(
        &mut self,
        m: &Matcher,
        stream: Stream,
        at: u64,
        data: &[u8],
        meet: &mut impl Meet,
    ) {
        if data.is_empty() {
            return;
        }
        let (mut rest, mut rest_at, mut skip) = (data, at, 0);
        if !self.pending.is_empty() {
            // Where the streams may meet: the held end and the start of this chunk.
            let joint = self.pending.len();
            let take = data.len().min(m.max_span + LEAD_BACK);
            append(&mut self.pending, &data[..take]);
            self.add_run(stream, at);
            let tail = if take == data.len() {
                Tail::Open
            } else {
                Tail::Before(joint + LEAD_BACK)
            };
            let mut emit = Crossing {
                runs: &self.runs,
                pending: &self.pending,
                meet: &mut *meet,
            };
            let keep = m.process(&self.pending, tail, usize::MAX, &mut emit);
            if take == data.len() {
                self.drain(keep);
                return;
            }
            debug_assert!(keep >= joint);
            self.pending.clear();
            self.runs.clear();
            skip = keep - joint;
            rest = &data[skip..];
            rest_at = at + skip as u64;
        }
        // No stream changes inside `rest`: only its end may meet the other stream.
        let hold = m.hold_point(rest);
        if hold > 0 {
            meet.passed(stream, data, skip, skip + hold);
        }
        if hold < rest.len() {
            append(&mut self.pending, &rest[hold..]);
            self.add_run(stream, rest_at + hold as u64);
        }
    }

    /// Nothing more comes: settles everything held.
    pub fn flush(&mut self, m: &Matcher, meet: &mut impl Meet) {
        let mut emit = Crossing {
            runs: &self.runs,
            pending: &self.pending,
            meet,
        };
        m.process(&self.pending, Tail::End, usize::MAX, &mut emit);
        self.pending.clear();
        self.runs.clear();
    }

    /// Notes that `pending` now ends with bytes of `stream`, the first new one at `at`.
    fn add_run(&mut self, stream: Stream, at: u64) {
        let end = self.pending.len();
        match self.runs.last_mut() {
            Some(last) if last.stream == stream => last.end = end,
            _ => self.runs.push(Run { stream, end, at }),
        }
    }

    /// Drops the first `n` bytes of `pending`, and of its runs.
    fn drain(&mut self, n: usize) {
        self.pending.drain(..n);
        let mut start = 0;
        self.runs.retain_mut(|r| {
            let (old_start, old_end) = (start, r.end);
            start = old_end;
            if old_end <= n {
                return false;
            }
            if old_start < n {
                r.at += (n - old_start) as u64;
            }
            r.end = old_end - n;
            true
        });
    }
}

/// Passes what the matcher settles in `pending` on, by stream; accepts only the matches that
/// span a change of stream, or that the stream's own view may not see.
struct Crossing<'a, M> {
    runs: &'a [Run],
    pending: &'a [u8],
    meet: &'a mut M,
}

impl<M: Meet> Crossing<'_, M> {
    /// Calls `f(stream, offset in the stream, from, to)` for each run overlapping `from..to`.
    fn pieces(
        &mut self,
        from: usize,
        to: usize,
        mut f: impl FnMut(&mut M, Stream, u64, usize, usize),
    ) {
        let mut start = 0;
        for r in self.runs {
            let (a, b) = (start.max(from), r.end.min(to));
            if a < b {
                f(self.meet, r.stream, r.at + (a - start) as u64, a, b);
            }
            start = r.end;
        }
    }
}

impl<M: Meet> Emit for Crossing<'_, M> {
    fn bytes(&mut self, buf: &[u8], from: usize, to: usize) {
        self.pieces(from, to, |meet, stream, _, a, b| {
            meet.bytes(stream, &buf[a..b])
        });
    }

    fn marker(&mut self, _buf: &[u8], start: usize, end: usize, secret: usize) {
        self.pieces(start, end, |meet, stream, at, a, b| {
            meet.piece(stream, at, b - a, secret)
        });
        self.meet.hit(secret);
    }

    fn accept(&self, start: usize, end: usize) -> bool {
        // A match with an escape character in it (a value holding one) may read it as a
        // character here, where the other stream's bytes cut its sequence short, while in its
        // own stream the sequence goes on and hides the match.
        self.runs.iter().any(|r| start < r.end && r.end < end)
            || memchr::memchr(ESC, &self.pending[start..end]).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Needles;

    #[derive(Default)]
    struct Seen {
        out: Vec<(Stream, Vec<u8>)>,
        pieces: Vec<(Stream, u64, usize)>,
    }

    impl Meet for Seen {
        fn bytes(&mut self, stream: Stream, bytes: &[u8]) {
            self.out.push((stream, bytes.to_vec()));
        }
        fn piece(&mut self, stream: Stream, at: u64, len: usize, _: usize) {
            self.pieces.push((stream, at, len));
            self.out.push((stream, b"#".to_vec()));
        }
        fn hit(&mut self, _: usize) {}
    }

    #[test]
    fn only_matches_across_a_change_of_stream_are_replaced_with_their_offsets() {
        let n = Needles::new([("S", "joined-value-7")]);
        let m = Matcher::new(&n.needles);
        let mut j = Junction::default();
        let mut seen = Seen::default();
        j.join(&m, Stream::Stdout, 0, b"x joined-", &mut seen);
        assert_eq!(j.held_from(Stream::Stdout), Some(2));
        j.join(&m, Stream::Stderr, 10, b"value-7 y", &mut seen);
        assert_eq!(j.held_from(Stream::Stdout), None);
        j.flush(&m, &mut seen);
        assert_eq!(
            seen.pieces,
            [(Stream::Stdout, 2, 7), (Stream::Stderr, 10, 7)],
            "each stream's piece, at its own offsets"
        );
        // A whole match inside one stream is that stream's business.
        let mut j = Junction::default();
        let mut seen = Seen::default();
        j.join(&m, Stream::Stdout, 0, b"joined-value-7 z", &mut seen);
        j.flush(&m, &mut seen);
        assert!(seen.pieces.is_empty());
    }
}
