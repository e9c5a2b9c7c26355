//! The matcher: leftmost-longest replacement of needles in the view of a buffer, settling only
//! what later input cannot change.
//!
//! Needles sit in one sorted table, walked as a trie (narrowing the range of needles that
//! share what was read so far) at candidate starts only. Candidates come from a prefilter: every needle is at least `stride + GRAM - 1` characters long, so an occurrence
//! starting at `s` covers the window at the one sampled position in `s..s + stride`, and the
//! filter holds the windows at needle offsets `0..stride`. A window is read through the view
//! (line breaks and escape sequences left out), and a sampled position inside an escape
//! sequence is read both as the walks from before and from within that sequence see it.

use zeroize::Zeroizing;

use super::filter::{GRAM, GramFilter, StartFilter, has_control};
use super::forms::{Ext, has};
use super::view::{CHARS_BEFORE_GAP, ESC, MAX_CSI, MAX_GAP, Step, char_before, step};

/// Upper bound on the prefilter's sampling stride, which keeps its bitset small.
const MAX_STRIDE: usize = 16;

/// The needles compiled for matching.
pub struct Matcher {
    /// Every needle's bytes, one after another, in sorted order of the needles.
    bytes: Zeroizing<Vec<u8>>,
    /// Where each needle (pattern) lies in `bytes`.
    spans: Vec<(usize, usize)>,
    /// The patterns that begin with each byte, as a range.
    by_first: Vec<(u32, u32)>,
    /// Secret index per pattern.
    owner: Vec<usize>,
    ext: Vec<Ext>,
    /// Every character some needle may take in before it.
    lead_chars: u128,
    filter: GramFilter,
    starts: StartFilter,
    /// Distance between the positions the prefilter samples.
    stride: usize,
    /// The longest needle, in characters of the view.
    max_chars: usize,
    /// The most bytes a walk reads from its start before its outcome is settled.
    pub max_span: usize,
}

/// Where [`Matcher::process`] must stop.
#[derive(Clone, Copy, Debug)]
pub enum Tail {
    /// The stream ends with this buffer: settle all of it.
    End,
    /// More input follows: hold back whatever could begin a match.
    Open,
    /// More input follows, but the buffer runs at least `max_span` bytes past this position,
    /// so every match starting before it is settled: stop there (a character before it may be
    /// held for a match starting there), or after the last match.
    Before(usize),
}

/// Receives what [`Matcher::process`] settles, in order.
pub trait Emit {
    /// `buf[from..to]`, unchanged.
    fn bytes(&mut self, buf: &[u8], from: usize, to: usize);
    /// `buf[start..end]`, a match of secret `secret`, to be replaced.
    fn marker(&mut self, buf: &[u8], start: usize, end: usize, secret: usize);
    /// Whether this match is to be replaced; a refused one is searched past.
    fn accept(&self, _start: usize, _end: usize) -> bool {
        true
    }
}

/// The first characters of the view from a position (see [`Matcher::gram_at`]).
enum Gram {
    /// `GRAM` characters, packed.
    Chars(u32),
    /// Too many bytes left out in a row before them: no needle's window.
    Apart,
    /// The buffer ends (or may hold an unfinished escape sequence) before them.
    Short,
}

/// A settled match: `start..end` (the needle starts at `core`), of `pattern`.
#[derive(Debug, Clone, Copy)]
struct Found {
    start: usize,
    core: usize,
    end: usize,
    pattern: usize,
}

/// Result of following the needles from one position.
struct Walk {
    /// End and pattern of the longest match starting there, extensions included.
    best: Option<(usize, usize)>,
    /// More input could still change `best`.
    open: bool,
}

/// The number of leading indices `0..n` for which `pred` holds (it holds for a prefix).
fn partition(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// What follows a position in the view.
enum Next {
    Char(usize),
    Open,
    None,
}

impl Matcher {
    /// `needles`: (bytes as the view reads them, secret index, extension).
    /// `needles`: (bytes as the view reads them, secret index, extension), sorted by bytes,
    /// no two alike, none empty.
    pub fn new(needles: &[(Zeroizing<Vec<u8>>, usize, Ext)]) -> Matcher {
        debug_assert!(needles.windows(2).all(|w| w[0].0[..] < w[1].0[..]));
        let total = needles.iter().map(|(n, _, _)| n.len()).sum();
        let mut bytes = Zeroizing::new(Vec::with_capacity(total));
        let mut spans = Vec::with_capacity(needles.len());
        for (n, _, _) in needles {
            spans.push((bytes.len(), n.len()));
            bytes.extend_from_slice(n);
        }
        let mut by_first = vec![(0u32, 0u32); 256];
        for (i, (n, _, _)) in needles.iter().enumerate() {
            let r = &mut by_first[usize::from(n[0])];
            if r.0 == r.1 {
                *r = (i as u32, i as u32);
            }
            r.1 = i as u32 + 1;
        }
        let min_chars = spans.iter().map(|s| s.1).min().unwrap_or(GRAM);
        let stride = (min_chars + 1 - GRAM).min(MAX_STRIDE);
        let max_chars = spans.iter().map(|s| s.1).max().unwrap_or(0);
        Matcher {
            bytes,
            spans,
            by_first,
            owner: needles.iter().map(|(_, secret, _)| *secret).collect(),
            ext: needles.iter().map(|(_, _, ext)| *ext).collect(),
            lead_chars: needles.iter().fold(0, |set, (_, _, ext)| set | ext.lead),
            filter: GramFilter::new(needles.iter().map(|(n, _, _)| &n[..]), stride),
            starts: StartFilter::new(needles.iter().map(|(n, _, _)| &n[..])),
            stride,
            max_chars,
            // Every character of the needle, the one that ends the walk and three of
            // extension, each after a gap; and an escape sequence to tell from a character.
            max_span: (max_chars + 4) * (MAX_GAP + 1) + MAX_CSI,
        }
    }

    /// Replaces matches in `buf` up to where `tail` says to stop, and before `cap` (from where
    /// another rule holds the bytes back), through `emit`. Returns that position: the bytes
    /// from it on are held back for the next call.
    pub fn process<E: Emit>(&self, buf: &[u8], tail: Tail, cap: usize, emit: &mut E) -> usize {
        let end = matches!(tail, Tail::End);
        let open_from = |from: usize| {
            let limit = match tail {
                Tail::End => buf.len(),
                Tail::Open => self.first_open(buf, from),
                Tail::Before(limit) => limit.max(from),
            };
            limit.min(cap)
        };
        let (mut pos, mut search) = (0, 0);
        // A match starting before `limit` is settled: nothing from which a match could still
        // run past the end of `buf` starts before it.
        let mut limit = open_from(0);
        while let Some(m) = self.find(buf, search, limit, pos, end) {
            if !emit.accept(m.start, m.end) {
                search = m.core + 1;
                continue;
            }
            emit.bytes(buf, pos, m.start);
            emit.marker(buf, m.start, m.end, self.owner[m.pattern]);
            pos = m.end;
            search = pos;
            if limit < pos {
                limit = open_from(pos);
            }
        }
        let keep = if end && limit >= buf.len() {
            buf.len()
        } else {
            self.lead_back(buf, limit, pos)
        };
        emit.bytes(buf, pos, keep);
        keep
    }

    /// Where a buffer that no match of its own starts in settles (its matches replaced
    /// elsewhere): the first open position, or the character before it that a match starting
    /// there may take in.
    pub fn hold_point(&self, buf: &[u8]) -> usize {
        self.lead_back(buf, self.first_open(buf, 0), 0)
    }

    /// `limit`, or the character before it when a match starting there may take it in; never
    /// before `floor`.
    fn lead_back(&self, buf: &[u8], limit: usize, floor: usize) -> usize {
        match char_before(limit, floor) {
            Some(q) if has(self.lead_chars, buf[q]) => q,
            _ => limit.max(floor),
        }
    }

    /// The first position at or after `from` from which a match could still run past the end
    /// of `buf` (or be extended), or `buf.len()`.
    pub fn first_open(&self, buf: &[u8], from: usize) -> usize {
        for p in from.max(self.open_window(buf))..buf.len() {
            // Needles are at least four characters long and have no gap in those: two bytes
            // that begin none rule the position out.
            if let [a, b, ..] = buf[p..] {
                if !self.starts.may_start(a, b) && a != ESC && b != ESC {
                    continue;
                }
            }
            match step(buf, p, false) {
                Step::Skip(_) => continue,
                Step::Unknown => return p,
                Step::Char => {}
            }
            // The filter holds every needle's first window: a cheap way to skip most
            // positions without walking the trie.
            match self.gram_at(buf, p, false) {
                Gram::Chars(g) if !self.filter.may_contain(g) => continue,
                Gram::Apart => continue,
                _ => {}
            }
            if self.walk(buf, p, false).open {
                return p;
            }
        }
        buf.len()
    }

    /// A position before which no match can be open: from there to the end the view has more
    /// characters than a needle and its extension. Counted back over the bytes that are
    /// characters in any view: not a line break, not an escape character, and not within an
    /// escape sequence's length after one (which is seen only once passed, going back).
    fn open_window(&self, buf: &[u8]) -> usize {
        let mut need = self.max_chars + 4;
        let mut p = buf.len();
        while p > 0 && need > 0 {
            p -= 1;
            let after_esc =
                || memchr::memrchr(ESC, &buf[p.saturating_sub(MAX_CSI - 1)..p]).is_some();
            match buf[p] {
                b'\n' | b'\r' | ESC => {}
                _ if after_esc() => {}
                _ => need -= 1,
            }
        }
        p
    }

    /// Leftmost-longest settled match whose needle starts in `from..limit` and lies wholly in
    /// `buf`; a leading extension may reach back to `floor`.
    fn find(
        &self,
        buf: &[u8],
        from: usize,
        limit: usize,
        floor: usize,
        end: bool,
    ) -> Option<Found> {
        let len = buf.len();
        let mut lo = from;
        let mut at = from + self.stride - 1;
        // No escape character lies in `lo..clear`: looked for a page at a time, so that a
        // search that ends early does not scan the whole buffer.
        let mut clear = lo;
        while lo < limit && at < len {
            clear = clear.max(lo);
            if clear < at {
                let end = len.min(at.max(clear + 4096));
                clear = memchr::memchr(ESC, &buf[clear..end]).map_or(end, |i| clear + i);
            }
            let hit = if clear >= at && at + GRAM <= len {
                let w = u32::from_le_bytes(buf[at..at + GRAM].try_into().expect("GRAM bytes"));
                if has_control(w) {
                    self.window_hits(buf, at, end)
                } else {
                    Some(self.filter.may_contain(w))
                }
            } else {
                self.window_hits_after_esc(buf, lo, at, end)
            };
            match hit {
                // The view from `at` ends before a whole window, and so does that of every
                // later start, unless an escape sequence it passed over holds bytes that read
                // as characters from within.
                None if memchr::memchr(ESC, &buf[at..]).is_none() => break,
                None | Some(false) => {}
                Some(true) => {
                    for s in lo..=at.min(limit - 1) {
                        // A needle's first two characters stand next to each other.
                        let starts = match buf.get(s..s + 2) {
                            Some(&[a, b]) => self.starts.may_start(a, b),
                            _ => true,
                        };
                        if !starts || step(buf, s, end) != Step::Char {
                            continue;
                        }
                        let walk = self.walk(buf, s, end);
                        debug_assert!(!walk.open || walk.best.is_none(), "a settled position");
                        if let Some((e, pattern)) = walk.best {
                            let lead = self.ext[pattern].lead;
                            let start = match char_before(s, floor) {
                                Some(q) if has(lead, buf[q]) => q,
                                _ => s,
                            };
                            return Some(Found {
                                start,
                                core: s,
                                end: e,
                                pattern,
                            });
                        }
                    }
                }
            }
            lo = at + 1;
            at += self.stride;
        }
        None
    }

    /// Whether the window at `at` read through the view may begin at a needle offset below
    /// `stride`; `None` when the view ends before a whole window.
    fn window_hits(&self, buf: &[u8], at: usize, end: bool) -> Option<bool> {
        match self.gram_at(buf, at, end) {
            Gram::Chars(g) => Some(self.filter.may_contain(g)),
            Gram::Apart => Some(false),
            Gram::Short => None,
        }
    }

    /// Like [`Matcher::window_hits`] when an escape character lies in `lo..at`: if its
    /// sequence covers `at`, walks from before it read past the sequence, and walks from
    /// within it read its bytes as characters; either may hit.
    fn window_hits_after_esc(&self, buf: &[u8], lo: usize, at: usize, end: bool) -> Option<bool> {
        let e = memchr::memrchr(ESC, &buf[lo..at]).map(|i| lo + i);
        let inside = e.and_then(|e| match step(buf, e, end) {
            Step::Skip(n) if e + n > at => Some(e + n),
            _ => None,
        });
        let here = self.window_hits(buf, at, end);
        match inside {
            None => here,
            Some(after) => match (self.window_hits(buf, after, end), here) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (None, None) => None,
                _ => Some(false),
            },
        }
    }

    /// The first `GRAM` characters of the view from `p`, packed. Reading stops early where
    /// no needle's window can be: past more than `MAX_GAP` bytes left out in a row (a match
    /// leaves out no more between two of its characters), which also bounds the read.
    fn gram_at(&self, buf: &[u8], mut p: usize, end: bool) -> Gram {
        let mut gram = 0u32;
        let (mut n, mut gap) = (0, 0);
        while n < GRAM {
            let Some(&b) = buf.get(p) else {
                return Gram::Short;
            };
            let skip = match b {
                b'\n' | b'\r' => 1,
                ESC => match step(buf, p, end) {
                    Step::Skip(k) => k,
                    Step::Unknown => return Gram::Short,
                    Step::Char => 0,
                },
                _ => 0,
            };
            if skip > 0 {
                gap += skip;
                if gap > MAX_GAP {
                    return Gram::Apart;
                }
                p += skip;
                continue;
            }
            gram |= u32::from(b) << (8 * n);
            n += 1;
            p += 1;
            gap = 0;
        }
        Gram::Chars(gram)
    }

    /// Follows the needles along the view from `s`, a character.
    fn walk(&self, buf: &[u8], s: usize, end: bool) -> Walk {
        // Patterns `lo..hi` are those whose first `depth` characters were read; sorted, so a
        // pattern of exactly `depth` characters comes first among them. `first` is the first
        // of those that go on.
        let (lo, hi) = self.by_first[usize::from(buf[s])];
        let (mut first, mut hi, mut depth) = (lo as usize, hi as usize, 0);
        let (mut p, mut gap) = (s, 0);
        let mut best: Option<(usize, usize)> = None;
        let mut open = false;
        while first < hi {
            if p >= buf.len() {
                open |= !end;
                break;
            }
            match step(buf, p, end) {
                Step::Char => {}
                Step::Skip(n) => {
                    gap += n;
                    if depth < CHARS_BEFORE_GAP || gap > MAX_GAP {
                        break;
                    }
                    p += n;
                    continue;
                }
                Step::Unknown => {
                    open = true;
                    break;
                }
            }
            let c = buf[p];
            let range = &self.spans[first..hi];
            let at = |i: usize| self.bytes[range[i].0 + depth];
            let a = partition(range.len(), |i| at(i) < c);
            let b = a + partition(range.len() - a, |i| at(a + i) <= c);
            if a == b {
                break;
            }
            let lo = first + a;
            hi = first + b;
            depth += 1;
            p += 1;
            gap = 0;
            first = lo;
            if self.spans[lo].1 == depth {
                let (e, ext_open) = self.extend(buf, p, lo, end);
                open |= ext_open;
                // The match reaching furthest; on a tie, the longer needle.
                if best.is_none_or(|(b, _)| e >= b) {
                    best = Some((e, lo));
                }
                first = lo + 1;
            }
        }
        Walk { best, open }
    }

    /// The end of a match of `pattern` whose needle ends at `e`, with the trailing character
    /// and padding it takes in; and whether more input could take in more.
    fn extend(&self, buf: &[u8], e: usize, pattern: usize, end: bool) -> (usize, bool) {
        let ext = self.ext[pattern];
        if ext.trail == 0 {
            return (e, false);
        }
        let c = match next_char(buf, e, end) {
            Next::Char(c) if has(ext.trail, buf[c]) => c,
            Next::Open => return (e, true),
            _ => return (e, false),
        };
        let mut e = c + 1;
        if has(ext.pad, buf[c]) {
            for _ in 0..2 {
                match next_char(buf, e, end) {
                    Next::Char(q) if buf[q] == b'=' => e = q + 1,
                    Next::Open => return (e, true),
                    _ => break,
                }
            }
        }
        (e, false)
    }
}

/// The next character of the view at or after `q`, across a gap of at most [`MAX_GAP`] bytes.
fn next_char(buf: &[u8], mut q: usize, end: bool) -> Next {
    let mut gap = 0;
    loop {
        if q >= buf.len() {
            return if end { Next::None } else { Next::Open };
        }
        match step(buf, q, end) {
            Step::Char => return Next::Char(q),
            Step::Unknown => return Next::Open,
            Step::Skip(n) => {
                gap += n;
                if gap > MAX_GAP {
                    return Next::None;
                }
                q += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Needles;

    fn matcher(values: &[&str]) -> Matcher {
        let names: Vec<String> = (0..values.len()).map(|i| format!("S{i}")).collect();
        let n = Needles::new(names.iter().map(String::as_str).zip(values.iter().copied()));
        Matcher::new(&n.needles)
    }

    /// Where `process` replaces (as start..end pairs) in `buf`, the stream ended.
    fn matches(m: &Matcher, buf: &[u8]) -> Vec<(usize, usize)> {
        struct Spans(Vec<(usize, usize)>);
        impl Emit for Spans {
            fn bytes(&mut self, _: &[u8], _: usize, _: usize) {}
            fn marker(&mut self, _: &[u8], start: usize, end: usize, _: usize) {
                self.0.push((start, end));
            }
        }
        let mut spans = Spans(Vec::new());
        m.process(buf, Tail::End, usize::MAX, &mut spans);
        spans.0
    }

    #[test]
    fn only_what_could_still_become_a_match_is_held() {
        let m = matcher(&["abcdef-123"]);
        assert_eq!(m.first_open(b"xx abc", 0), 3);
        assert_eq!(m.first_open(b"xx abz", 0), 6);
        assert_eq!(m.first_open(b"xx abcd\n", 0), 3, "a line break after four");
        assert_eq!(m.first_open(b"xx ab\n", 0), 6, "a line break after two");
        assert_eq!(m.first_open(b"xx \x1b[3", 0), 3, "an unfinished escape");
    }

    #[test]
    fn a_gap_counts_only_after_four_characters_and_up_to_its_limit() {
        let m = matcher(&["abcdef-123"]);
        assert_eq!(matches(&m, b"<abcd\r\nef-123>"), [(1, 13)]);
        assert_eq!(matches(&m, b"<abc\ndef-123>"), []);
        let long = [b"<abcd".as_slice(), &[b'\n'; MAX_GAP], b"ef-123>"].concat();
        assert_eq!(matches(&m, &long), [(1, long.len() - 1)]);
        let longer = [b"<abcd".as_slice(), &[b'\n'; MAX_GAP + 1], b"ef-123>"].concat();
        assert_eq!(matches(&m, &longer), []);
    }

    #[test]
    fn a_base64_match_takes_in_its_partial_characters() {
        // "Zm9vYmFy" is base64 of "foobar"; at the end of the data its last quantum is whole.
        let m = matcher(&["foobar-x"]);
        // "foobar-x" (8 bytes): the last character mixes 4 bits of 'x' with padding.
        let line = b"Zm9vYmFyLXg=\n";
        assert_eq!(matches(&m, line), [(0, 12)]);
        // After one byte before it ("!foobar-x"), the character that mixes that byte with
        // the value ('W') is taken in too; the one before depends on '!' alone.
        let blob = b"IWZvb2Jhci14\n";
        assert_eq!(matches(&m, blob), [(1, 12)]);
    }

    #[test]
    fn the_partition_is_a_binary_search() {
        let v = [1, 3, 3, 5, 8];
        for x in 0..10 {
            assert_eq!(
                partition(v.len(), |i| v[i] < x),
                v.iter().filter(|&&e| e < x).count()
            );
        }
    }
}
