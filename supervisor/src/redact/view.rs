//! What the matcher reads through: a value printed with line breaks or terminal escape
//! sequences inside it is still that value. Matching walks the *view* of the output, in which
//! line feeds, carriage returns and complete CSI escape sequences (`ESC [` parameters, then a
//! final byte: colours, cursor movement) are left out; every other byte is a character.
//!
//! The view is read from wherever a walk starts (an escape sequence begun before that point is
//! not known to it), so it needs no context from earlier output. A match may leave bytes out
//! only after its first [`CHARS_BEFORE_GAP`] characters, and at most [`MAX_GAP`] bytes between
//! two of its characters, which bounds how far a match can reach. The first rule keeps
//! ordinary output flowing: were a line break after any character skippable, the last
//! character of nearly every line could begin some needle continued on the next line, and
//! would have to wait for it.

/// Most bytes left out between two characters of one match.
pub const MAX_GAP: usize = 64;
/// Characters a match must have before bytes may be left out inside it.
pub const CHARS_BEFORE_GAP: usize = 4;
/// Longest escape sequence recognised, `ESC [` and the final byte included.
pub const MAX_CSI: usize = 32;
/// Bytes between the leading character of an extended base64 match and its needle: none,
/// the character just before.
pub const LEAD_BACK: usize = 1;

/// The escape character, which begins every CSI sequence.
pub const ESC: u8 = 0x1b;

/// What the byte at a position is in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A character.
    Char,
    /// The start of this many bytes that are left out.
    Skip(usize),
    /// The buffer ends inside what may be an escape sequence: undecided until more arrives.
    Unknown,
}

/// Reads the view at `p` (< `buf.len()`). `end`: nothing follows `buf`, so an unfinished
/// escape sequence is plain characters.
#[inline]
pub fn step(buf: &[u8], p: usize, end: bool) -> Step {
    match buf[p] {
        b'\n' | b'\r' => Step::Skip(1),
        ESC => match csi_len(&buf[p..]) {
            Some(n) => Step::Skip(n),
            None if end => Step::Char,
            None => csi_pending(&buf[p..]),
        },
        _ => Step::Char,
    }
}

/// Length of the complete CSI sequence at the start of `s` (which starts with ESC).
fn csi_len(s: &[u8]) -> Option<usize> {
    if s.get(1) != Some(&b'[') {
        return None;
    }
    let mut intermediate = false;
    for (i, &b) in s.iter().enumerate().take(MAX_CSI).skip(2) {
        match b {
            0x30..=0x3f if !intermediate => {}
            0x20..=0x2f => intermediate = true,
            0x40..=0x7e => return Some(i + 1),
            _ => return None,
        }
    }
    None
}

/// For an ESC that does not start a complete sequence: whether the bytes after it could
/// still become one (`Unknown`) or cannot (`Char`).
fn csi_pending(s: &[u8]) -> Step {
    let Some(&second) = s.get(1) else {
        return Step::Unknown;
    };
    if second != b'[' || s.len() >= MAX_CSI {
        return Step::Char;
    }
    let mut intermediate = false;
    for &b in &s[2..] {
        match b {
            0x30..=0x3f if !intermediate => {}
            0x20..=0x2f => intermediate = true,
            _ => return Step::Char,
        }
    }
    Step::Unknown
}

/// `bytes` as the view reads them from their start, everything after them known.
pub fn normalize(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut p = 0;
    while p < bytes.len() {
        match step(bytes, p, true) {
            Step::Skip(n) => p += n,
            _ => {
                out.push(bytes[p]);
                p += 1;
            }
        }
    }
    out
}

/// The position of the byte just before `s`, when it lies at or after `floor`.
#[inline]
pub fn char_before(s: usize, floor: usize) -> Option<usize> {
    (s > floor).then(|| s - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_escape_sequences_are_left_out() {
        assert_eq!(normalize(b"ab\ncd\r\nef"), b"abcdef");
        assert_eq!(normalize(b"ab\x1b[31mcd\x1b[0m\x1b[Kef"), b"abcdef");
        assert_eq!(normalize(b"a\x1b[38;5;208mb"), b"ab");
        // Not a CSI sequence: the bytes are characters.
        assert_eq!(normalize(b"a\x1bXb"), b"a\x1bXb");
        assert_eq!(normalize(b"a\x1b[\x01b"), b"a\x1b[\x01b");
        assert_eq!(normalize(b"a\x1b[31"), b"a\x1b[31");
    }

    #[test]
    fn an_unfinished_sequence_waits_for_more_input() {
        assert_eq!(step(b"\x1b", 0, false), Step::Unknown);
        assert_eq!(step(b"\x1b[3", 0, false), Step::Unknown);
        assert_eq!(step(b"\x1b[3", 0, true), Step::Char);
        assert_eq!(step(b"\x1bx", 0, false), Step::Char);
        assert_eq!(step(b"\x1b[31m", 0, false), Step::Skip(5));
        let long = [b"\x1b[".as_slice(), &[b'1'; MAX_CSI]].concat();
        assert_eq!(step(&long, 0, false), Step::Char);
    }
}
