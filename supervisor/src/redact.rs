//! Output redaction: every injected secret value, and the forms a program commonly prints it
//! in (single lines of a multi-line value, base64, percent-encoding, JSON escaping), becomes
//! `[REDACTED:NAME]` before agent output leaves the supervisor.
//!
//! Invariants: however a stream is split into pushes, the streamed output equals
//! [`Redactor::redact_all`] of the whole stream, and no needle survives in it. A stream holds
//! back only bytes that could still turn out to begin a needle. Secret bytes are never
//! formatted, and buffers of ours that held them are zeroized.

use std::fmt;
use std::sync::Arc;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind, PatternID};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Values (and lines of values) shorter than this are not redacted: they would match
/// ordinary output everywhere.
pub const MIN_REDACTABLE_LEN: usize = 6;

/// Width of the windows the prefilter hashes; every needle is at least this long.
const GRAM: usize = 4;
/// Upper bound on the prefilter's sampling stride, which keeps its bitset small.
const MAX_STRIDE: usize = 16;

/// Built once per run from the injected values; shared (Arc) by the stdout and stderr streams.
pub struct Redactor {
    matcher: Option<Matcher>,
    too_short: Vec<String>,
    secrets: usize,
}

impl Redactor {
    /// `secrets`: (env var name, value). Values shorter than [`MIN_REDACTABLE_LEN`] are not
    /// redacted; their names are reported by [`Redactor::too_short`].
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a SecretString)>) -> Redactor {
        let mut names = Vec::new();
        let mut too_short = Vec::new();
        let mut needles = Vec::new();
        for (name, value) in secrets {
            let value = value.expose_secret();
            if value.len() < MIN_REDACTABLE_LEN {
                too_short.push(name.to_owned());
                continue;
            }
            needles.extend(derived_forms(value).into_iter().map(|n| (n, names.len())));
            names.push(name);
        }
        // Stable sort, so a needle shared by two secrets is credited to the first one given.
        needles.sort_by(|a, b| a.0.cmp(&b.0));
        needles.dedup_by(|a, b| a.0 == b.0);
        let matcher = (!needles.is_empty()).then(|| Matcher::new(&needles, &names));
        Redactor {
            matcher,
            too_short,
            secrets: names.len(),
        }
    }

    /// Names of the secrets whose values are too short to redact.
    pub fn too_short(&self) -> &[String] {
        &self.too_short
    }

    /// True when there is nothing to redact: output passes through unchanged.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// One-shot redaction of a complete buffer (replies, prompts, error texts).
    /// Returns the redacted bytes and the number of replacements.
    pub fn redact_all(&self, input: &[u8]) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(input.len());
        let count = match &self.matcher {
            Some(m) => m.process(input, Tail::End, &mut out).1,
            None => {
                out.extend_from_slice(input);
                0
            }
        };
        (out, count)
    }

    /// A fresh stream (one per output pipe) sharing this redactor.
    pub fn stream(self: &Arc<Self>) -> RedactStream {
        // Sized once so it never reallocates: a reallocation would leave a partial secret
        // behind in freed memory. `push` keeps it below twice the longest needle.
        let cap = self.matcher.as_ref().map_or(0, |m| 2 * m.max_len);
        RedactStream {
            redactor: Arc::clone(self),
            held: Zeroizing::new(Vec::with_capacity(cap)),
        }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets)
            .field(
                "needles",
                &self.matcher.as_ref().map_or(0, |m| m.owner.len()),
            )
            .field("too_short", &self.too_short.len())
            .finish_non_exhaustive()
    }
}

/// Redacts one output stream incrementally.
pub struct RedactStream {
    redactor: Arc<Redactor>,
    /// Bytes that may begin a needle, waiting for the next push.
    held: Zeroizing<Vec<u8>>,
}

impl RedactStream {
    /// Feed bytes as they arrive; appends what is safe to emit now to `out`; returns the
    /// number of replacements made.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let Some(m) = &self.redactor.matcher else {
            out.extend_from_slice(input);
            return 0;
        };
        let mut count = 0;
        let rest = if self.held.is_empty() {
            input
        } else if input.len() <= m.max_len {
            self.held.extend_from_slice(input);
            let (keep, n) = m.process(&self.held, Tail::Open, out);
            self.held.drain(..keep);
            return n;
        } else {
            // Join the held bytes to only the first `max_len` input bytes, just enough to settle
            // every match that starts in them; the bulk is then searched in place, not copied.
            let joint = self.held.len();
            self.held.extend_from_slice(&input[..m.max_len]);
            let (keep, n) = m.process(&self.held, Tail::Before(joint), out);
            self.held.clear();
            count += n;
            &input[keep - joint..]
        };
        let (keep, n) = m.process(rest, Tail::Open, out);
        self.held.extend_from_slice(&rest[keep..]);
        debug_assert!(self.held.len() < m.max_len);
        count + n
    }

    /// End of stream: flush the held-back tail (redacted); returns the replacements made.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> usize {
        let count = match &self.redactor.matcher {
            Some(m) => m.process(&self.held, Tail::End, out).1,
            None => 0,
        };
        self.held.clear();
        count
    }
}

impl fmt::Debug for RedactStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedactStream")
            .field("held_bytes", &self.held.len())
            .finish_non_exhaustive()
    }
}

/// Every form of `value` worth searching for (duplicates are removed by the caller).
fn derived_forms(value: &str) -> Vec<Zeroizing<Vec<u8>>> {
    let mut sources = vec![value];
    if value.contains('\n') {
        let lines = value.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        sources.extend(lines.filter(|l| l.len() >= MIN_REDACTABLE_LEN));
    }
    let mut forms = Vec::new();
    for source in sources {
        forms.push(Zeroizing::new(source.as_bytes().to_vec()));
        forms.extend(base64_forms(source.as_bytes()));
        forms.extend(percent_forms(source.as_bytes()));
        forms.push(json_escaped(source));
    }
    // Base64 trimming could in principle leave a fragment too short to be safe to match.
    forms.retain(|f| f.len() >= MIN_REDACTABLE_LEN);
    forms
}

/// Base64 of `value` in both alphabets at the three byte alignments it can have inside a
/// larger encoded blob, trimmed to the characters that depend on `value`'s bytes alone.
fn base64_forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut forms = Vec::with_capacity(6);
    for align in 0..3 {
        let mut shifted = Zeroizing::new(vec![0; align + value.len()]);
        shifted[align..].copy_from_slice(value);
        // Characters before `first` mix in bits of the preceding bytes; a partial last
        // character mixes in bits of the following ones.
        let first = (8 * align).div_ceil(6);
        let end = 8 * shifted.len() / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let len = base64::encoded_len(shifted.len(), false).expect("secret size fits usize");
            let mut encoded = Zeroizing::new(vec![0; len]);
            engine
                .encode_slice(&*shifted, &mut encoded[..])
                .expect("buffer sized by encoded_len");
            forms.push(Zeroizing::new(encoded[first..end].to_vec()));
        }
    }
    forms
}

/// Percent-encoding of every byte outside the unreserved set, with upper- and lower-case
/// hex, each also in the form-encoding variant that writes space as `+`; and the form
/// Python's `urllib.parse.quote` writes by default, which leaves `/` unencoded.
fn percent_forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    // (hex digits, space as `+`, bytes kept besides the unreserved ones)
    const VARIANTS: [(&[u8; 16], bool, &[u8]); 5] = [
        (UPPER, false, b""),
        (UPPER, true, b""),
        (LOWER, false, b""),
        (LOWER, true, b""),
        (UPPER, false, b"/"),
    ];
    let mut forms = Vec::with_capacity(VARIANTS.len());
    for (hex, space_as_plus, kept) in VARIANTS {
        // Without a kept byte in the value this repeats the first variant: no new needle.
        if !kept.is_empty() && !value.iter().any(|b| kept.contains(b)) {
            continue;
        }
        let mut encoded = Zeroizing::new(Vec::with_capacity(3 * value.len()));
        for &b in value {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || kept.contains(&b) {
                encoded.push(b);
            } else if b == b' ' && space_as_plus {
                encoded.push(b'+');
            } else {
                let (hi, lo) = (hex[usize::from(b >> 4)], hex[usize::from(b & 15)]);
                encoded.extend_from_slice(&[b'%', hi, lo]);
            }
        }
        forms.push(encoded);
    }
    forms
}

/// What serde_json writes between the quotes for `value`.
fn json_escaped(value: &str) -> Zeroizing<Vec<u8>> {
    // Sized for the worst case (`\u00XX` per byte, plus quotes) so the writer never
    // reallocates and leaves a copy behind.
    let mut quoted = Zeroizing::new(Vec::with_capacity(6 * value.len() + 2));
    serde_json::to_writer(&mut *quoted, value).expect("writing a str to a Vec cannot fail");
    Zeroizing::new(quoted[1..quoted.len() - 1].to_vec())
}

/// The needles compiled for matching, and how to replace each.
struct Matcher {
    /// A trie of all needles, walked anchored at candidate positions only. The automaton
    /// (and the builder's intermediate one) keeps its own copy of every needle, which cannot
    /// be zeroized; it lives as long as the run.
    nfa: NFA,
    start: StateID,
    /// Secret index per pattern, into `replacements`.
    owner: Vec<usize>,
    replacements: Vec<Box<[u8]>>,
    filter: GramFilter,
    /// Distance between the positions the prefilter samples.
    stride: usize,
    max_len: usize,
}

/// Where [`Matcher::process`] must stop.
#[derive(Clone, Copy)]
enum Tail {
    /// The stream ends with this buffer: redact all of it.
    End,
    /// More input follows: hold back whatever could begin a needle.
    Open,
    /// More input follows, but the buffer runs at least the longest needle past this position,
    /// so every match starting before it is final: stop there, or after the last match.
    Before(usize),
}

/// Result of following the trie from one position.
struct Walk {
    /// Length and pattern of the longest needle starting there.
    longest: Option<(usize, PatternID)>,
    /// The rest of the haystack is a proper prefix of some needle: more input could extend it.
    open: bool,
}

impl Matcher {
    fn new(needles: &[(Zeroizing<Vec<u8>>, usize)], names: &[&str]) -> Matcher {
        let nfa = NFA::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .prefilter(false)
            .build(needles.iter().map(|(n, _)| &n[..]))
            // Only gigabytes of secrets exceed the automaton's limits; refusing is safer than
            // running unredacted.
            .expect("needles fit the automaton");
        let start = nfa
            .start_state(Anchored::Yes)
            .expect("contiguous NFAs support anchored");
        let stride = (nfa.min_pattern_len() + 1 - GRAM).min(MAX_STRIDE);
        Matcher {
            start,
            owner: needles.iter().map(|(_, secret)| *secret).collect(),
            replacements: names
                .iter()
                .map(|name| format!("[REDACTED:{name}]").into_bytes().into_boxed_slice())
                .collect(),
            filter: GramFilter::new(needles.iter().map(|(n, _)| &n[..]), stride),
            stride,
            max_len: nfa.max_pattern_len(),
            nfa,
        }
    }

    /// Redacts `buf` into `out`, up to where `tail` says to stop. Returns that position
    /// (the held-back tail starts there) and the number of replacements.
    fn process(&self, buf: &[u8], tail: Tail, out: &mut Vec<u8>) -> (usize, usize) {
        let hold_from = |from: usize| match tail {
            Tail::End => buf.len(),
            Tail::Open => self.hold_from(buf, from),
            Tail::Before(limit) => limit.max(from),
        };
        let (mut pos, mut count) = (0, 0);
        let mut hold = hold_from(0);
        // A match starting before `hold` is final: nothing before it can begin a needle
        // that runs past the end of `buf`, and neither can its own start.
        while let Some((start, end, pattern)) = self.find(buf, pos, hold) {
            out.extend_from_slice(&buf[pos..start]);
            out.extend_from_slice(&self.replacements[self.owner[pattern.as_usize()]]);
            count += 1;
            pos = end;
            if hold < pos {
                hold = hold_from(pos);
            }
        }
        out.extend_from_slice(&buf[pos..hold]);
        (hold, count)
    }

    /// The first position at or after `from` from which the rest of `buf` is a proper prefix
    /// of some needle, or `buf.len()`.
    fn hold_from(&self, buf: &[u8], from: usize) -> usize {
        let first = from.max(buf.len().saturating_sub(self.max_len - 1));
        (first..buf.len())
            .find(|&p| {
                // The filter holds every needle's first window: a cheap way to skip most
                // positions of a long tail without walking the trie.
                let gram = buf.get(p..p + GRAM);
                gram.is_none_or(|g| {
                    self.filter
                        .may_contain(u32::from_le_bytes(g.try_into().expect("GRAM")))
                }) && self.walk(&buf[p..]).open
            })
            .unwrap_or(buf.len())
    }

    /// Leftmost-longest needle lying wholly in `buf` and starting in `from..limit`,
    /// as (start, end, pattern).
    ///
    /// Every needle is at least `stride + GRAM - 1` bytes long, so an occurrence starting at
    /// `s` covers the window at the one sampled position in `s..s + stride`; the filter holds
    /// the windows at needle offsets `0..stride`. Only starts just before a sampled window
    /// the filter accepts are checked against the trie.
    fn find(&self, buf: &[u8], from: usize, limit: usize) -> Option<(usize, usize, PatternID)> {
        let mut lo = from;
        let mut at = from + self.stride - 1;
        while lo < limit && at + GRAM <= buf.len() {
            let gram = u32::from_le_bytes(buf[at..at + GRAM].try_into().expect("GRAM bytes"));
            if self.filter.may_contain(gram) {
                for start in lo..=at.min(limit - 1) {
                    if let Some((len, pattern)) = self.walk(&buf[start..]).longest {
                        return Some((start, start + len, pattern));
                    }
                }
            }
            lo = at + 1;
            at += self.stride;
        }
        None
    }

    /// Follows the trie from the start of `hay`.
    fn walk(&self, hay: &[u8]) -> Walk {
        let nfa = &self.nfa;
        let mut sid = self.start;
        let mut longest = None;
        for (i, &byte) in hay.iter().enumerate() {
            sid = nfa.next_state(Anchored::Yes, sid, byte);
            if nfa.is_dead(sid) {
                return Walk {
                    longest,
                    open: false,
                };
            }
            if nfa.is_match(sid) {
                // A match state also lists needles that end here but start later (copied
                // along failure links); only the one spelled from `hay`'s start counts.
                let spelled = (0..nfa.match_len(sid))
                    .map(|j| nfa.match_pattern(sid, j))
                    .find(|&p| nfa.pattern_len(p) == i + 1);
                longest = spelled.map(|p| (i + 1, p)).or(longest);
            }
        }
        // Inside the trie, only a complete needle can lack a continuation.
        let open = !nfa.is_match(sid)
            || (0..=255).any(|b| !nfa.is_dead(nfa.next_state(Anchored::Yes, sid, b)));
        Walk { longest, open }
    }
}

/// A Bloom filter (two hashes) over the `GRAM`-byte windows at offsets `0..stride` of every
/// needle. It holds hash bits only, never needle bytes.
struct GramFilter {
    bits: Vec<u64>,
    shift: u32,
}

impl GramFilter {
    fn new<'a>(needles: impl ExactSizeIterator<Item = &'a [u8]>, stride: usize) -> GramFilter {
        // 32 bits per entry and two hashes keep false positives under 0.5%; each one costs
        // up to `stride` trie walks.
        let size = (needles.len() * stride * 32)
            .next_power_of_two()
            .clamp(1 << 12, 1 << 26);
        let mut filter = GramFilter {
            bits: vec![0; size / 64],
            shift: 64 - size.trailing_zeros(),
        };
        for needle in needles {
            for window in needle.windows(GRAM).take(stride) {
                let (a, b) = filter.slots(u32::from_le_bytes(window.try_into().expect("GRAM")));
                filter.bits[a / 64] |= 1 << (a % 64);
                filter.bits[b / 64] |= 1 << (b % 64);
            }
        }
        filter
    }

    /// Two slots: the top bits of two multiplicative hashes.
    fn slots(&self, gram: u32) -> (usize, usize) {
        let gram = u64::from(gram);
        let a = gram.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift;
        let b = gram.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) >> self.shift;
        (a as usize, b as usize)
    }

    fn may_contain(&self, gram: u32) -> bool {
        let (a, b) = self.slots(gram);
        self.bits[a / 64] & (1 << (a % 64)) != 0 && self.bits[b / 64] & (1 << (b % 64)) != 0
    }
}

/// The redactor for these secrets, shared with every live run of this process that
/// received the same names and values in the same order. Runs started by the same trigger
/// usually do (a schedule's runs, a webhook's), and a redactor's automaton is most of what a
/// running agent costs the daemon in memory. A redactor lives as long as one run holds it.
pub fn shared<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a SecretString)>) -> Arc<Redactor> {
    static SHARED: std::sync::LazyLock<Shared> = std::sync::LazyLock::new(Shared::default);
    SHARED.get(secrets.into_iter().collect())
}

/// Live redactors by a keyed 128-bit fingerprint of what they were built from: the values
/// themselves are not kept, and the key (random per process) makes a collision as unlikely
/// as a guess of 128 random bits.
#[derive(Default)]
struct Shared {
    key: std::hash::RandomState,
    live: std::sync::Mutex<Vec<([u64; 2], std::sync::Weak<Redactor>)>>,
}

impl Shared {
    fn get(&self, secrets: Vec<(&str, &SecretString)>) -> Arc<Redactor> {
        let print = self.fingerprint(&secrets);
        let found = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.retain(|(_, r)| r.strong_count() > 0);
            live.iter()
                .find(|(p, _)| *p == print)
                .and_then(|(_, r)| r.upgrade())
        };
        if let Some(redactor) = found {
            return redactor;
        }
        // Built outside the lock; two runs racing may build one each, which is harmless.
        let redactor = Arc::new(Redactor::new(secrets));
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((print, Arc::downgrade(&redactor)));
        redactor
    }

    fn fingerprint(&self, secrets: &[(&str, &SecretString)]) -> [u64; 2] {
        use std::hash::{BuildHasher, Hasher};
        [0u8, 1].map(|half| {
            let mut h = self.key.build_hasher();
            h.write_u8(half);
            h.write_usize(secrets.len());
            for (name, value) in secrets {
                let value = value.expose_secret().as_bytes();
                h.write_usize(name.len());
                h.write(name.as_bytes());
                h.write_usize(value.len());
                h.write(value);
            }
            h.finish()
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_with_the_same_secrets_share_a_redactor_while_one_lives() {
        let cache = Shared::default();
        let (a, b) = (
            SecretString::from("value-one-123"),
            SecretString::from("value-two-456"),
        );
        let first = cache.get(vec![("A", &a), ("B", &b)]);
        let again = cache.get(vec![("A", &a), ("B", &b)]);
        assert!(Arc::ptr_eq(&first, &again));
        // Another value, another name or another order is another redactor.
        let changed = SecretString::from("value-one-124");
        for other in [
            vec![("A", &changed), ("B", &b)],
            vec![("C", &a), ("B", &b)],
            vec![("B", &b), ("A", &a)],
            vec![("A", &a)],
        ] {
            assert!(!Arc::ptr_eq(&first, &cache.get(other)));
        }
        let (out, n) = again.redact_all(b"x value-two-456 y");
        assert_eq!((out.as_slice(), n), (&b"x [REDACTED:B] y"[..], 1));
        // Once no run holds them, redactors and their entries go.
        drop((first, again));
        cache.get(vec![("Z", &a)]);
        assert_eq!(
            cache.live.lock().unwrap().len(),
            1,
            "only the last entry is left"
        );
    }

    use super::*;
    use proptest::prelude::*;

    fn redactor(secrets: &[(&str, &str)]) -> Arc<Redactor> {
        let owned: Vec<(&str, SecretString)> = secrets
            .iter()
            .map(|&(name, value)| (name, SecretString::from(value)))
            .collect();
        Arc::new(Redactor::new(owned.iter().map(|(n, v)| (*n, v))))
    }

    /// Streams `input` in chunks of the given sizes (cycled) and finishes.
    fn streamed(r: &Arc<Redactor>, input: &[u8], sizes: &[usize]) -> (Vec<u8>, usize) {
        let mut stream = r.stream();
        let (mut out, mut count, mut rest) = (Vec::new(), 0, input);
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
            count += stream.push(chunk, &mut out);
            rest = tail;
        }
        count += stream.finish(&mut out);
        (out, count)
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[track_caller]
    fn assert_absent(hay: &[u8], secret: &[u8]) {
        // Never print the buffer itself: it may hold the secret.
        assert!(
            !contains(hay, secret),
            "a secret form leaked into the output"
        );
    }

    /// What the library's own unanchored leftmost-longest search would produce.
    fn oracle(r: &Redactor, input: &[u8]) -> Vec<u8> {
        let Some(m) = &r.matcher else {
            return input.to_vec();
        };
        let (mut out, mut pos) = (Vec::new(), 0);
        for found in m
            .nfa
            .try_find_iter(aho_corasick::Input::new(input))
            .unwrap()
        {
            out.extend_from_slice(&input[pos..found.start()]);
            out.extend_from_slice(&m.replacements[m.owner[found.pattern().as_usize()]]);
            pos = found.end();
        }
        out.extend_from_slice(&input[pos..]);
        out
    }

    /// Checks redact_all against the oracle and against several chunkings; returns its output.
    #[track_caller]
    fn check(r: &Arc<Redactor>, input: &[u8]) -> Vec<u8> {
        let (all, count) = r.redact_all(input);
        assert_eq!(all, oracle(r, input));
        for sizes in [&[1][..], &[2, 3, 5], &[7, 1, 64], &[65536]] {
            assert_eq!(streamed(r, input, sizes), (all.clone(), count));
        }
        all
    }

    #[test]
    fn replaces_value_with_name() {
        let r = redactor(&[("API_TOKEN", "tok_4f9a1c2e")]);
        let out = check(&r, b"curl -H 'Authorization: tok_4f9a1c2e' x");
        assert_eq!(out, b"curl -H 'Authorization: [REDACTED:API_TOKEN]' x");
    }

    #[test]
    fn overlapping_secrets_leave_no_tail() {
        let r = redactor(&[("SHORT", "abcdefgh"), ("LONG", "abcdefghijkl")]);
        let out = check(&r, b"1 abcdefghijkl 2 abcdefgh 3 abcdefghijk");
        assert_eq!(
            out,
            &b"1 [REDACTED:LONG] 2 [REDACTED:SHORT] 3 [REDACTED:SHORT]ijk"[..]
        );
        // The shorter needle complete at the end of a push must wait for what follows.
        let mut stream = r.stream();
        let mut out = Vec::new();
        assert_eq!(stream.push(b"x abcdefgh", &mut out), 0);
        assert_eq!(out, b"x ");
        stream.push(b"ijkl y", &mut out);
        stream.finish(&mut out);
        assert_eq!(out, b"x [REDACTED:LONG] y");
    }

    #[test]
    fn prefix_and_inner_values() {
        let r = redactor(&[
            ("OUTER", "xxsecret-inner-valuexx"),
            ("INNER", "inner-value"),
        ]);
        let out = check(
            &r,
            b"[xxsecret-inner-valuexx] [inner-value] [xxsecret-inner-value-]",
        );
        assert_eq!(
            out,
            &b"[[REDACTED:OUTER]] [[REDACTED:INNER]] [xxsecret-[REDACTED:INNER]-]"[..]
        );
    }

    #[test]
    fn complete_needle_at_end_is_not_held() {
        let r = redactor(&[("A", "abcdefgh")]);
        let mut stream = r.stream();
        let mut out = Vec::new();
        assert_eq!(stream.push(b"x abcdefgh", &mut out), 1);
        assert_eq!(out, b"x [REDACTED:A]");
        // A partial needle is held, but only from where it could begin.
        out.clear();
        stream.push(b" abc", &mut out);
        assert_eq!(out, b" ");
        stream.push(b"x", &mut out);
        assert_eq!(out, b" abcx");
    }

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\r\n\
        MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\r\n\
        q3Zx9vW2kLmN0pQrStUvWxYz1A2B3C4D5E6F7G8H9I0J1K2L3M4N\r\n\
        -----END PRIVATE KEY-----\r\n";

    #[test]
    fn multi_line_value_whole_and_by_line() {
        let r = redactor(&[("TLS_KEY", PEM)]);
        let whole = check(&r, format!("key:\n{PEM}done").as_bytes());
        assert_eq!(whole, b"key:\n[REDACTED:TLS_KEY]done");
        let lines: String = PEM.lines().map(|l| format!("> {l}\n")).collect();
        let out = check(&r, lines.as_bytes());
        for line in PEM.lines() {
            assert_absent(&out, line.as_bytes());
        }
        assert_eq!(r.redact_all(lines.as_bytes()).1, 4);
    }

    #[test]
    fn base64_every_alphabet_and_alignment() {
        // '>' and '?' make the two alphabets differ.
        let value = "s3cr3t>>>???~~~value";
        let r = redactor(&[("B64", value)]);
        for prefix in ["", "a", "ab", "abc"] {
            let blob = format!("{prefix}{value}!!");
            let std = STANDARD_NO_PAD.encode(&blob);
            let url = URL_SAFE_NO_PAD.encode(&blob);
            assert_ne!(std, url);
            for encoded in [std, url] {
                let (out, count) = r.redact_all(encoded.as_bytes());
                assert_eq!(count, 1, "alignment {}", prefix.len() % 3);
                check(&r, encoded.as_bytes());
                for form in base64_forms(value.as_bytes()) {
                    assert_absent(&out, &form);
                }
            }
        }
    }

    #[test]
    fn percent_encoded_forms() {
        let value = "p@ss w/rd=&é";
        let r = redactor(&[("PW", value)]);
        for encoded in [
            "p%40ss%20w%2Frd%3D%26%C3%A9",
            "p%40ss%20w%2frd%3d%26%c3%a9",
            "p%40ss+w%2Frd%3D%26%C3%A9",
            "p%40ss+w%2frd%3d%26%c3%a9",
            // Python's `urllib.parse.quote(value)`, `/` left as it is.
            "p%40ss%20w/rd%3D%26%C3%A9",
        ] {
            let out = check(&r, format!("GET /?pw={encoded} HTTP/1.1").as_bytes());
            assert_eq!(out, b"GET /?pw=[REDACTED:PW] HTTP/1.1");
        }
    }

    #[test]
    fn json_escaped_form() {
        let value = "say \"hi\"\\now\nthen\ttab";
        let r = redactor(&[("JSONISH", value)]);
        let doc = serde_json::json!({ "v": value, "w": 1 }).to_string();
        let out = check(&r, doc.as_bytes());
        assert_eq!(out, br#"{"v":"[REDACTED:JSONISH]","w":1}"#);
        assert_absent(&out, value.as_bytes());
    }

    #[test]
    fn nothing_to_redact_passes_through_at_once() {
        let r = redactor(&[]);
        assert!(r.is_empty());
        let mut stream = r.stream();
        let mut out = Vec::new();
        assert_eq!(stream.push(b"partial line, no newline", &mut out), 0);
        assert_eq!(out, b"partial line, no newline");
        // With secrets, output that cannot begin one is not held either.
        let r = redactor(&[("A", "zzzzzzzz")]);
        let mut stream = r.stream();
        out.clear();
        stream.push(b"hello world", &mut out);
        assert_eq!(out, b"hello world");
    }

    #[test]
    fn short_values_are_reported_not_redacted() {
        let r = redactor(&[("PIN", "12345"), ("TOKEN", "abcdefg")]);
        assert_eq!(r.too_short(), ["PIN"]);
        assert_eq!(r.redact_all(b"12345 abcdefg").0, b"12345 [REDACTED:TOKEN]");
        let only_short = redactor(&[("PIN", "12345")]);
        assert!(only_short.is_empty());
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        let r = redactor(&[("A", "secret-value")]);
        let input = b"\xff\xfe\x00bin\x80 secret-value \xc3\x28";
        let out = check(&r, input);
        assert_eq!(out, b"\xff\xfe\x00bin\x80 [REDACTED:A] \xc3\x28");
    }

    #[test]
    fn debug_shows_no_bytes() {
        let r = redactor(&[("A", "hunter22"), ("B", "pw123")]);
        let shown = format!("{r:?} {:?}", r.stream());
        assert!(
            !shown.contains("hunter") && !shown.contains("pw123"),
            "{shown}"
        );
    }

    #[test]
    fn base64_needles_sit_in_any_blob() {
        let value = b"0123456789-secret";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand_bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect()
        };
        let forms = base64_forms(value);
        for prefix_len in 0..9 {
            let mut blob = rand_bytes(prefix_len);
            blob.extend_from_slice(value);
            blob.extend(rand_bytes(prefix_len % 4));
            let align = prefix_len % 3;
            let std = STANDARD_NO_PAD.encode(&blob);
            let url = URL_SAFE_NO_PAD.encode(&blob);
            assert!(contains(std.as_bytes(), &forms[2 * align]));
            assert!(contains(url.as_bytes(), &forms[2 * align + 1]));
        }
    }

    /// A piece of generated output: noise, or one derived form of one secret.
    #[derive(Debug, Clone)]
    enum Piece {
        Noise(Vec<u8>),
        Form(usize, usize),
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Piece::Noise),
            (any::<usize>(), any::<usize>()).prop_map(|(s, f)| Piece::Form(s, f)),
        ]
    }

    proptest! {
        #[test]
        fn any_split_matches_redact_all_and_leaks_nothing(
            // No brackets or colons, so no needle can be a piece of the replacement text.
            values in proptest::collection::vec("[a-hA-H0-9 \"\\\\/+=%\n\r~é-]{6,16}", 1..4),
            // Overlapping secrets: a second secret that extends or cuts into the first.
            overlap in "[a-c]{0,6}",
            pieces in proptest::collection::vec(piece(), 0..24),
            sizes in proptest::collection::vec(1usize..160, 1..8),
        ) {
            let mut values = values;
            let half: String = values[0].chars().take(values[0].chars().count() / 2).collect();
            values.push(format!("{half}{overlap}"));
            let names: Vec<String> = (0..values.len()).map(|i| format!("S{i}")).collect();
            let pairs: Vec<(&str, &str)> =
                names.iter().map(String::as_str).zip(values.iter().map(String::as_str)).collect();
            let r = redactor(&pairs);
            let forms: Vec<Vec<Zeroizing<Vec<u8>>>> = values
                .iter()
                .map(|v| if v.len() < MIN_REDACTABLE_LEN { Vec::new() } else { derived_forms(v) })
                .collect();
            let mut input = Vec::new();
            for p in &pieces {
                match p {
                    Piece::Noise(bytes) => input.extend_from_slice(bytes),
                    Piece::Form(s, f) => {
                        let of = &forms[s % forms.len()];
                        if !of.is_empty() {
                            input.extend_from_slice(&of[f % of.len()]);
                        }
                    }
                }
            }
            let (all, count) = r.redact_all(&input);
            prop_assert_eq!(&all, &oracle(&r, &input));
            prop_assert_eq!(streamed(&r, &input, &sizes), (all.clone(), count));
            prop_assert_eq!(streamed(&r, &input, &[1]), (all.clone(), count));
            for form in forms.iter().flatten() {
                prop_assert!(!contains(&all, form), "a needle survived");
            }
        }
    }
}
