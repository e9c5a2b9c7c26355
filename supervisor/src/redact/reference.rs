//! The redaction rules written out plainly, for tests and the fuzz target to hold the
//! streaming redactor against: the whole buffer at once, every needle tried at every
//! position, no trie, no prefilter, no holding back.
//!
//! - The needles are every form of every value (see `forms`), as the view reads them.
//! - The view from a position leaves out line feeds, carriage returns and complete CSI
//!   escape sequences (`ESC [`, bytes 0x30-0x3F, then bytes 0x20-0x2F, then one byte
//!   0x40-0x7E; 32 bytes at most). A match starts at a byte that is not left out; it may
//!   leave bytes out only after its fourth character, at most 64 between two characters.
//! - A base64 needle may take in one character after it (and then up to two `=`) and the
//!   byte just before it, where the forms allow.
//! - Leftmost match first; at one position, the one that reaches furthest (on a tie, the
//!   longer needle); the byte before it is taken in only when no earlier match took it.

use super::Needles;
use super::forms::{Ext, derived_forms};

/// Every form of `value` the redactor searches for, as the view reads them (for generating
/// output that prints them).
pub fn forms_of(value: &str) -> Vec<Vec<u8>> {
    derived_forms(value)
        .into_iter()
        .map(|f| f.bytes.to_vec())
        .collect()
}

/// A plain, slow redactor with the same rules as [`super::Redactor`].
pub struct Reference {
    needles: Vec<(Vec<u8>, usize, Ext)>,
    markers: Vec<Vec<u8>>,
}

impl Reference {
    /// `secrets`: (name, value), as given to [`super::Redactor::new`].
    pub fn new(secrets: &[(&str, &str)]) -> Reference {
        let n = Needles::new(secrets.iter().copied());
        Reference {
            needles: n
                .needles
                .into_iter()
                .map(|(bytes, secret, ext)| (bytes.to_vec(), secret, ext))
                .collect(),
            markers: n
                .names
                .iter()
                .map(|name| format!("[REDACTED:{name}]").into_bytes())
                .collect(),
        }
    }

    /// Whether there is anything to redact.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// The placeholders, by secret.
    pub fn markers(&self) -> &[Vec<u8>] {
        &self.markers
    }

    /// Whether some needle holds a byte for which `f` is true.
    pub fn any_needle_byte(&self, f: impl Fn(u8) -> bool) -> bool {
        self.needles.iter().any(|(n, _, _)| n.iter().any(|&b| f(b)))
    }

    /// `input` redacted, and the replacements made per secret.
    pub fn redact(&self, input: &[u8]) -> (Vec<u8>, Vec<u64>) {
        let mut out = Vec::new();
        let mut hits = vec![0; self.markers.len()];
        let mut pos = 0;
        let mut s = 0;
        while s < input.len() {
            match self.longest_at(input, s) {
                Some((end, secret, ext)) => {
                    let start = if s > pos && lead_takes(ext, input[s - 1]) {
                        s - 1
                    } else {
                        s
                    };
                    out.extend_from_slice(&input[pos..start]);
                    out.extend_from_slice(&self.markers[secret]);
                    hits[secret] += 1;
                    pos = end;
                    s = end;
                }
                None => s += 1,
            }
        }
        out.extend_from_slice(&input[pos..]);
        (out, hits)
    }

    /// The first place in `hay` where some needle matches, as (start, end).
    pub fn find_any(&self, hay: &[u8]) -> Option<(usize, usize)> {
        (0..hay.len()).find_map(|s| self.longest_at(hay, s).map(|(end, _, _)| (s, end)))
    }

    /// Every place where some needle is spelled, as (start, end of the needle).
    pub fn occurrences(&self, hay: &[u8]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for s in 0..hay.len() {
            if skipped_at(hay, s).is_some() {
                continue;
            }
            for (needle, _, _) in &self.needles {
                if let Some(end) = spells(hay, s, needle) {
                    found.push((s, end));
                }
            }
        }
        found
    }

    /// The match at `s` reaching furthest: (end, secret, extension).
    fn longest_at(&self, buf: &[u8], s: usize) -> Option<(usize, usize, Ext)> {
        if skipped_at(buf, s).is_some() {
            return None;
        }
        let mut best: Option<(usize, usize, usize, Ext)> = None;
        for (needle, secret, ext) in &self.needles {
            let Some(core_end) = spells(buf, s, needle) else {
                continue;
            };
            let end = extended(buf, core_end, *ext);
            let better = match best {
                None => true,
                Some((e, len, _, _)) => end > e || (end == e && needle.len() > len),
            };
            if better {
                best = Some((end, needle.len(), *secret, *ext));
            }
        }
        best.map(|(end, _, secret, ext)| (end, secret, ext))
    }
}

fn lead_takes(ext: Ext, b: u8) -> bool {
    b < 128 && ext.lead >> b & 1 == 1
}

/// Length of what the view leaves out at `p`, if anything.
fn skipped_at(buf: &[u8], p: usize) -> Option<usize> {
    match buf[p] {
        b'\n' | b'\r' => Some(1),
        0x1b if buf.get(p + 1) == Some(&b'[') => {
            let mut i = p + 2;
            while i < buf.len() && (0x30..=0x3f).contains(&buf[i]) {
                i += 1;
            }
            while i < buf.len() && (0x20..=0x2f).contains(&buf[i]) {
                i += 1;
            }
            let complete = i < buf.len() && (0x40..=0x7e).contains(&buf[i]);
            (complete && i + 1 - p <= 32).then_some(i + 1 - p)
        }
        _ => None,
    }
}

/// After `p` and bytes left out (at most 64): the next character's position.
fn next_char(buf: &[u8], mut p: usize) -> Option<usize> {
    let start = p;
    while p < buf.len() {
        match skipped_at(buf, p) {
            Some(n) => p += n,
            None => return (p - start <= 64).then_some(p),
        }
    }
    None
}

/// Where `needle` ends if the view from `s` spells it.
fn spells(buf: &[u8], s: usize, needle: &[u8]) -> Option<usize> {
    let mut p = s;
    for (i, &c) in needle.iter().enumerate() {
        if i > 0 {
            p = if i >= 4 { next_char(buf, p)? } else { p };
        }
        if buf.get(p) != Some(&c) || skipped_at(buf, p).is_some() {
            return None;
        }
        p += 1;
    }
    Some(p)
}

/// The end of a match whose needle ends at `e`, with what its extension takes in.
fn extended(buf: &[u8], e: usize, ext: Ext) -> usize {
    let takes = |set: u128, b: u8| b < 128 && set >> b & 1 == 1;
    let Some(c) = next_char(buf, e).filter(|&c| takes(ext.trail, buf[c])) else {
        return e;
    };
    let mut end = c + 1;
    if takes(ext.pad, buf[c]) {
        for _ in 0..2 {
            match next_char(buf, end) {
                Some(q) if buf[q] == b'=' => end = q + 1,
                _ => break,
            }
        }
    }
    end
}
