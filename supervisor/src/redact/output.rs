//! Both output streams of a run, for every sink. A value may be printed whole on one stream,
//! or begun on one and ended on the other; and sinks either keep the streams apart (a
//! terminal's stdout and stderr, each possibly sent to a file) or join them (the run log,
//! replies, a terminal showing both). So output passes three stages:
//!
//! 1. *Arrival order*: the raw bytes of both streams, in the order they were read, searched
//!    where the stream changes. A match there is a value split across the streams; each
//!    stream's piece of it is marked to be replaced (a [`Cover`]).
//! 2. *Each stream* on its own, as `RedactStream` does, replacing its matches and the covers;
//!    bytes that stage 1 has not settled wait.
//! 3. *Emitted order*: both streams' redacted output, in the order it is emitted (a stream
//!    holding back the start of a possible match lets the other one pass), searched where the
//!    stream changes once more, so that no reordering joins pieces into a value.
//!
//! Every sink gets `(stream, bytes)` chunks of stage 3. A match that spans both streams is
//! replaced in each stream that holds a piece of it, by that stream's own placeholder:
//! removing a piece from one stream without a mark in its place could join that stream's
//! bytes around it into a new value.

use std::sync::Arc;

use super::junction::{Junction, Meet};
use super::stream::Cover;
use super::{RedactStream, Redactor};

/// Which of the child's streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn other(self) -> Stream {
        match self {
            Stream::Stdout => Stream::Stderr,
            Stream::Stderr => Stream::Stdout,
        }
    }
}

/// What one push (or close) settled: chunks of either stream, in order. Most bytes are stage
/// 2's output as it is, kept in one buffer; the rest (bytes held back where the streams meet,
/// placeholders put there) in another. Reused from push to push.
#[derive(Debug, Default)]
pub struct Emitted {
    data: Vec<u8>,
    extra: Vec<u8>,
    /// (stream, in `extra` rather than `data`, start, end).
    chunks: Vec<(Stream, bool, usize, usize)>,
}

impl Emitted {
    pub fn clear(&mut self) {
        self.data.clear();
        self.extra.clear();
        self.chunks.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> impl Iterator<Item = (Stream, &[u8])> + '_ {
        self.chunks.iter().map(|&(stream, extra, a, b)| {
            let buf = if extra { &self.extra } else { &self.data };
            (stream, &buf[a..b])
        })
    }
}

/// Redacts a run's two output streams for every sink.
pub struct Output {
    redactor: Arc<Redactor>,
    /// Stage 1, with the covers it found (per stream) and the bytes read (per stream).
    arrival: Option<Junction>,
    covers: [Vec<Cover>; 2],
    read: [u64; 2],
    /// Stage 2.
    lanes: [RedactStream; 2],
    open: [bool; 2],
    /// Stage 3, and the bytes emitted per stream.
    emitted: Option<Junction>,
    sent: [u64; 2],
    /// For [`Output::push`] and [`Output::close`].
    spare: Emitted,
    /// Replacements made where the streams meet (stages 1 and 3), per secret.
    hits: Vec<u64>,
}

impl Output {
    pub(super) fn new(redactor: &Arc<Redactor>) -> Output {
        Output {
            redactor: Arc::clone(redactor),
            arrival: (!redactor.is_empty()).then(Junction::default),
            covers: [Vec::new(), Vec::new()],
            read: [0; 2],
            lanes: [redactor.stream(), redactor.stream()],
            open: [true, true],
            emitted: (!redactor.is_empty()).then(Junction::default),
            sent: [0; 2],
            spare: Emitted::default(),
            hits: vec![0; redactor.names.len()],
        }
    }

    /// Bytes read from `stream`; hands what is settled to `sink`.
    pub fn push(&mut self, stream: Stream, input: &[u8], sink: &mut impl FnMut(Stream, &[u8])) {
        let mut em = std::mem::take(&mut self.spare);
        self.push_to(stream, input, &mut em);
        for (s, b) in em.chunks() {
            sink(s, b);
        }
        self.spare = em;
    }

    /// `stream` ended. Once both have, everything left is handed to `sink`.
    pub fn close(&mut self, stream: Stream, sink: &mut impl FnMut(Stream, &[u8])) {
        let mut em = std::mem::take(&mut self.spare);
        self.close_to(stream, &mut em);
        for (s, b) in em.chunks() {
            sink(s, b);
        }
        self.spare = em;
    }

    /// Like [`Output::push`], into `em` (cleared first).
    pub fn push_to(&mut self, stream: Stream, input: &[u8], em: &mut Emitted) {
        em.clear();
        let redactor = Arc::clone(&self.redactor);
        let (Some(m), Some(arrival)) = (redactor.matcher(), &mut self.arrival) else {
            if !input.is_empty() {
                em.data.extend_from_slice(input);
                em.chunks.push((stream, false, 0, input.len()));
            }
            return;
        };
        let at = self.read[stream.index()];
        self.read[stream.index()] += input.len() as u64;
        let mut found = Found {
            covers: &mut self.covers,
            hits: &mut self.hits,
        };
        arrival.join(m, stream, at, input, &mut found);
        // What the other stream held for this one to settle may go first, then this push.
        self.settle(stream.other(), &[], em);
        self.settle(stream, input, em);
    }

    /// Like [`Output::close`], into `em` (cleared first).
    pub fn close_to(&mut self, stream: Stream, em: &mut Emitted) {
        em.clear();
        if !std::mem::replace(&mut self.open[stream.index()], false) {
            return;
        }
        let redactor = Arc::clone(&self.redactor);
        let (Some(m), Some(arrival)) = (redactor.matcher(), &mut self.arrival) else {
            return;
        };
        let both = self.open == [false, false];
        if both {
            let mut found = Found {
                covers: &mut self.covers,
                hits: &mut self.hits,
            };
            arrival.flush(m, &mut found);
        }
        for s in [Stream::Stdout, Stream::Stderr] {
            if !self.open[s.index()] {
                self.settle(s, &[], em);
            }
        }
        if let (true, Some(emitted)) = (both, &mut self.emitted) {
            let Emitted {
                data: _,
                extra,
                chunks,
            } = em;
            emitted.flush(
                m,
                &mut ToEmitted {
                    extra,
                    chunks,
                    base: 0,
                    replacements: &redactor.replacements,
                    hits: &mut self.hits,
                },
            );
        }
    }

    /// Replacements so far, per secret (indexed as [`Redactor::names`]).
    pub fn hits(&self) -> Vec<u64> {
        let [a, b] = &self.lanes;
        self.hits
            .iter()
            .zip(a.hits())
            .zip(b.hits())
            .map(|((j, a), b)| j + a + b)
            .collect()
    }

    /// A secret replaced at least once so far, if any.
    pub fn first_hit(&self) -> Option<usize> {
        let [a, b] = &self.lanes;
        (0..self.hits.len()).find(|&i| self.hits[i] + a.hits()[i] + b.hits()[i] > 0)
    }

    /// Replacements of values split across the streams, per secret.
    #[cfg(any(test, fuzzing))]
    #[doc(hidden)]
    pub fn joint_hits(&self) -> &[u64] {
        &self.hits
    }

    /// The spans of `stream` replaced so far.
    #[cfg(any(test, fuzzing))]
    #[doc(hidden)]
    pub fn replaced(&self, stream: Stream) -> &[(u64, u64)] {
        &self.lanes[stream.index()].replaced
    }

    /// Where stage 1 holds `stream`'s bytes from.
    fn cap(&self, stream: Stream) -> u64 {
        self.arrival
            .as_ref()
            .and_then(|a| a.held_from(stream))
            .unwrap_or(u64::MAX)
    }

    /// Stage 2 of `stream` with `input` (none: what a moved cap or the stream's end lets
    /// go), then stage 3; appends to `em`.
    fn settle(&mut self, stream: Stream, input: &[u8], em: &mut Emitted) {
        let redactor = Arc::clone(&self.redactor);
        let cap = self.cap(stream);
        let (Some(m), Some(emitted)) = (redactor.matcher(), &mut self.emitted) else {
            return;
        };
        let start = em.data.len();
        let lane = &mut self.lanes[stream.index()];
        let covers = &mut self.covers[stream.index()];
        if !self.open[stream.index()] {
            lane.close(cap, covers, &mut em.data);
        } else if input.is_empty() {
            lane.release(cap, covers, &mut em.data);
        } else {
            lane.feed(input, cap, covers, &mut em.data);
        }
        let Emitted {
            data,
            extra,
            chunks,
        } = em;
        let out = &data[start..];
        let at = self.sent[stream.index()];
        self.sent[stream.index()] += out.len() as u64;
        emitted.join(
            m,
            stream,
            at,
            out,
            &mut ToEmitted {
                extra,
                chunks,
                base: start,
                replacements: &redactor.replacements,
                hits: &mut self.hits,
            },
        );
    }
}

/// Stage 1's findings: covers for stage 2.
struct Found<'a> {
    covers: &'a mut [Vec<Cover>; 2],
    hits: &'a mut [u64],
}

impl Meet for Found<'_> {
    fn bytes(&mut self, _stream: Stream, _bytes: &[u8]) {}

    fn piece(&mut self, stream: Stream, at: u64, len: usize, secret: usize) {
        self.covers[stream.index()].push(Cover {
            start: at,
            end: at + len as u64,
            secret,
        });
    }

    fn hit(&mut self, secret: usize) {
        self.hits[secret] += 1;
    }
}

/// Stage 3's output, into an [`Emitted`]: chunks of stage 2's output where they are,
/// anything else (held bytes, placeholders) copied aside.
struct ToEmitted<'a> {
    extra: &'a mut Vec<u8>,
    chunks: &'a mut Vec<(Stream, bool, usize, usize)>,
    /// Where the chunk being joined starts in `data`.
    base: usize,
    replacements: &'a [Box<[u8]>],
    hits: &'a mut [u64],
}

impl ToEmitted<'_> {
    fn chunk(&mut self, stream: Stream, extra: bool, a: usize, b: usize) {
        match self.chunks.last_mut() {
            Some(last) if last.0 == stream && last.1 == extra && last.3 == a => last.3 = b,
            _ => self.chunks.push((stream, extra, a, b)),
        }
    }

    fn aside(&mut self, stream: Stream, bytes: &[u8]) {
        let a = self.extra.len();
        self.extra.extend_from_slice(bytes);
        self.chunk(stream, true, a, self.extra.len());
    }
}

impl Meet for ToEmitted<'_> {
    fn bytes(&mut self, stream: Stream, bytes: &[u8]) {
        self.aside(stream, bytes);
    }

    fn passed(&mut self, stream: Stream, _data: &[u8], from: usize, to: usize) {
        self.chunk(stream, false, self.base + from, self.base + to);
    }

    fn piece(&mut self, stream: Stream, _at: u64, _len: usize, secret: usize) {
        let marker = &self.replacements[secret];
        self.aside(stream, marker);
    }

    fn hit(&mut self, secret: usize) {
        self.hits[secret] += 1;
    }
}
