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
    /// One stream's redacted output of one push.
    scratch: Vec<u8>,
    /// Replacements made where the streams meet (stages 1 and 3), per secret.
    hits: Vec<u64>,
}

impl Output {
    pub(super) fn new(redactor: &Arc<Redactor>) -> Output {
        Output {
            redactor: Arc::clone(redactor),
            arrival: redactor.matcher.as_ref().map(Junction::new),
            covers: [Vec::new(), Vec::new()],
            read: [0; 2],
            lanes: [redactor.stream(), redactor.stream()],
            open: [true, true],
            emitted: redactor.matcher.as_ref().map(Junction::new),
            sent: [0; 2],
            scratch: Vec::new(),
            hits: vec![0; redactor.names.len()],
        }
    }

    /// Bytes read from `stream`; hands what is settled to `sink`.
    pub fn push(&mut self, stream: Stream, input: &[u8], sink: &mut impl FnMut(Stream, &[u8])) {
        let redactor = Arc::clone(&self.redactor);
        let (Some(m), Some(arrival)) = (&redactor.matcher, &mut self.arrival) else {
            if !input.is_empty() {
                sink(stream, input);
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
        self.settle(stream.other(), &[], sink);
        self.settle(stream, input, sink);
    }

    /// `stream` ended. Once both have, everything left is handed to `sink`.
    pub fn close(&mut self, stream: Stream, sink: &mut impl FnMut(Stream, &[u8])) {
        if !std::mem::replace(&mut self.open[stream.index()], false) {
            return;
        }
        let redactor = Arc::clone(&self.redactor);
        let (Some(m), Some(arrival)) = (&redactor.matcher, &mut self.arrival) else {
            return;
        };
        if self.open == [false, false] {
            let mut found = Found {
                covers: &mut self.covers,
                hits: &mut self.hits,
            };
            arrival.flush(m, &mut found);
        }
        for s in [Stream::Stdout, Stream::Stderr] {
            if !self.open[s.index()] {
                let cap = self.cap(s);
                let mut out = std::mem::take(&mut self.scratch);
                out.clear();
                self.lanes[s.index()].close(cap, &mut self.covers[s.index()], &mut out);
                self.emit(s, &out, sink);
                self.scratch = out;
            }
        }
        if self.open == [false, false] {
            if let Some(emitted) = &mut self.emitted {
                emitted.flush(
                    m,
                    &mut ToSink {
                        sink,
                        replacements: &redactor.replacements,
                        hits: &mut self.hits,
                    },
                );
            }
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

    /// Stage 2 of `stream` with `input` (none: what a moved cap lets go), then stage 3.
    fn settle(&mut self, stream: Stream, input: &[u8], sink: &mut impl FnMut(Stream, &[u8])) {
        let cap = self.cap(stream);
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let lane = &mut self.lanes[stream.index()];
        let covers = &mut self.covers[stream.index()];
        if input.is_empty() {
            lane.release(cap, covers, &mut out);
        } else {
            lane.feed(input, cap, covers, &mut out);
        }
        self.emit(stream, &out, sink);
        self.scratch = out;
    }

    /// Stage 3: `data`, redacted output of `stream`, joins the emitted sequence.
    fn emit(&mut self, stream: Stream, data: &[u8], sink: &mut impl FnMut(Stream, &[u8])) {
        let redactor = Arc::clone(&self.redactor);
        let (Some(m), Some(emitted)) = (&redactor.matcher, &mut self.emitted) else {
            return;
        };
        let at = self.sent[stream.index()];
        self.sent[stream.index()] += data.len() as u64;
        let mut send = ToSink {
            sink,
            replacements: &redactor.replacements,
            hits: &mut self.hits,
        };
        emitted.join(m, stream, at, data, &mut send);
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

/// Stage 3's output: to the sink, placeholders in place of pieces.
struct ToSink<'a, S> {
    sink: &'a mut S,
    replacements: &'a [Box<[u8]>],
    hits: &'a mut [u64],
}

impl<S: FnMut(Stream, &[u8])> Meet for ToSink<'_, S> {
    fn bytes(&mut self, stream: Stream, bytes: &[u8]) {
        (self.sink)(stream, bytes);
    }

    fn piece(&mut self, stream: Stream, _at: u64, _len: usize, secret: usize) {
        (self.sink)(stream, &self.replacements[secret]);
    }

    fn hit(&mut self, secret: usize) {
        self.hits[secret] += 1;
    }
}
