//! The forms a program commonly prints a value in, as needles for the matcher: the value
//! itself, trimmed of surrounding whitespace, and each line of a multi-line value; and of
//! each of those, base64 (both alphabets, every alignment, with the characters it shares with
//! its neighbours), hex (both cases, with no separator or one of ` `, `:`), percent-encoding
//! (the unreserved sets of RFC 3986, JavaScript, Java and Python, either hex case, space as
//! `%20` or `+`) and JSON string escaping (as serde, Python, Go, PHP, Gson and Jackson write it).
//!
//! Needles are stored as the view reads them (see `view`). Every buffer that holds a form is
//! zeroized when dropped.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use zeroize::Zeroizing;

use super::MIN_REDACTABLE_LEN;
use super::view::normalize;

/// Characters a match may take in beyond its needle, each set as a bitmask over ASCII.
///
/// A base64 form's needle holds only the characters that depend on the value alone; the one
/// before it (when the value does not start on a 3-byte boundary) and the one after it (when
/// it does not end on one) mix the value's bits with a neighbour's. A match takes in such a
/// character when its bits agree with the value, and after a last character whose free bits
/// are zero, up to two `=` of padding: so nothing beside the placeholder depends on the value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ext {
    /// Characters that may stand just before the needle.
    pub lead: u128,
    /// Characters that may stand just after it.
    pub trail: u128,
    /// Trailing characters that may be followed by `=` padding.
    pub pad: u128,
}

impl Ext {
    pub fn union(&mut self, other: Ext) {
        self.lead |= other.lead;
        self.trail |= other.trail;
        self.pad |= other.pad;
    }
}

/// Whether ASCII byte `b` is in `set`.
#[inline]
pub fn has(set: u128, b: u8) -> bool {
    b < 128 && set & (1u128 << b) != 0
}

/// One form of one value: what the view must show to be replaced.
pub struct Form {
    pub bytes: Zeroizing<Vec<u8>>,
    pub ext: Ext,
}

/// Every form of `value` worth searching for, as the view reads them (duplicates are merged
/// by the caller).
pub fn derived_forms(value: &str) -> Vec<Form> {
    let mut sources = vec![value];
    let trimmed = value.trim();
    if trimmed != value {
        sources.push(trimmed);
    }
    if value.contains('\n') {
        for line in value.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            sources.push(line);
            sources.push(line.trim());
        }
    }
    sources.retain(|s| s.len() >= MIN_REDACTABLE_LEN);
    sources.sort_unstable();
    sources.dedup();
    let mut forms = Vec::new();
    for source in sources {
        let bytes = source.as_bytes();
        forms.push(plain(Zeroizing::new(normalize(bytes))));
        forms.extend(base64_forms(bytes));
        forms.extend(hex_forms(bytes).into_iter().map(plain));
        forms.extend(percent_forms(bytes).into_iter().map(plain));
        forms.extend(json_forms(source).into_iter().map(plain));
    }
    // A base64 needle of a short value can be shorter than is safe to match.
    forms.retain(|f| f.bytes.len() >= MIN_REDACTABLE_LEN);
    forms
}

fn plain(bytes: Zeroizing<Vec<u8>>) -> Form {
    Form {
        bytes,
        ext: Ext::default(),
    }
}

/// The 64 characters of a base64 alphabet, by value.
fn alphabet(url: bool) -> &'static [u8; 64] {
    if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    }
}

/// The characters whose 6 bits are `fixed` in the bits of `mask` (the others free).
fn chars_with(url: bool, mask: u8, fixed: u8) -> u128 {
    alphabet(url)
        .iter()
        .enumerate()
        .filter(|&(v, _)| v as u8 & mask == fixed)
        .fold(0, |set, (_, &c)| set | 1u128 << c)
}

/// Base64 of `value` in both alphabets at the three byte alignments it can have inside a
/// larger encoded blob: the characters that depend on `value`'s bytes alone, and (as [`Ext`])
/// the partial characters at either end.
pub fn base64_forms(value: &[u8]) -> Vec<Form> {
    let (first_byte, last_byte) = match (value.first(), value.last()) {
        (Some(&f), Some(&l)) => (f, l),
        _ => return Vec::new(),
    };
    let mut forms = Vec::with_capacity(6);
    // Sized for the longest alignment, so neither buffer ever reallocates.
    let mut shifted = Zeroizing::new(Vec::with_capacity(2 + value.len()));
    let mut encoded = Zeroizing::new(vec![
        0;
        base64::encoded_len(2 + value.len(), false)
            .expect("secret size fits usize")
    ]);
    for align in 0..3 {
        shifted.clear();
        shifted.resize(align, 0);
        shifted.extend_from_slice(value);
        let first = (8 * align).div_ceil(6);
        let end = 8 * shifted.len() / 6;
        let len = STANDARD_NO_PAD
            .encode_slice(&*shifted, &mut encoded[..])
            .expect("buffer sized by encoded_len");
        for url in [false, true] {
            let mut needle = Zeroizing::new(encoded[first..end.min(len)].to_vec());
            if url {
                // The two alphabets differ in their last two characters only.
                for c in needle.iter_mut() {
                    *c = match *c {
                        b'+' => b'-',
                        b'/' => b'_',
                        c => c,
                    };
                }
            }
            // The character before: 2 (align 1) or 4 (align 2) bits of the preceding byte
            // above the first 4 or 2 bits of the value.
            let lead = match align {
                1 => chars_with(url, 0b00_1111, first_byte >> 4),
                2 => chars_with(url, 0b00_0011, first_byte >> 6),
                _ => 0,
            };
            // The character after: the value's last 2 or 4 bits above bits of what follows,
            // all zero when the data ends there (then `=` padding follows).
            let (trail, pad) = match shifted.len() % 3 {
                1 => (
                    chars_with(url, 0b11_0000, (last_byte & 0b11) << 4),
                    chars_with(url, 0b11_1111, (last_byte & 0b11) << 4),
                ),
                2 => (
                    chars_with(url, 0b11_1100, (last_byte & 0b1111) << 2),
                    chars_with(url, 0b11_1111, (last_byte & 0b1111) << 2),
                ),
                _ => (0, 0),
            };
            forms.push(Form {
                bytes: needle,
                ext: Ext { lead, trail, pad },
            });
        }
    }
    forms
}

/// Hex of `value`, lower and upper case, with no separator, a space or a colon between bytes
/// (`xxd -p`, Python's `.hex()` and `.hex(":")`, `od -An -tx1`, OpenSSL fingerprints).
pub fn hex_forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    const DIGITS: [&[u8; 16]; 2] = [b"0123456789abcdef", b"0123456789ABCDEF"];
    let mut forms = Vec::with_capacity(6);
    for digits in DIGITS {
        for sep in [None, Some(b' '), Some(b':')] {
            let mut out = Zeroizing::new(Vec::with_capacity(3 * value.len()));
            for (i, &b) in value.iter().enumerate() {
                if let (Some(sep), true) = (sep, i > 0) {
                    out.push(sep);
                }
                out.push(digits[usize::from(b >> 4)]);
                out.push(digits[usize::from(b & 15)]);
            }
            forms.push(out);
        }
    }
    forms
}

/// Percent-encodings of `value`: (bytes left as they are besides ASCII letters and digits,
/// space written as `+`, upper-case hex).
const PERCENT: [(&[u8], bool, bool); 8] = [
    // RFC 3986 unreserved: Python `quote(v, safe="")`, Go `url.PathEscape` of a segment.
    (b"-._~", false, true),
    (b"-._~", false, false),
    // HTML forms: Python `quote_plus`, Go `url.QueryEscape`.
    (b"-._~", true, true),
    (b"-._~", true, false),
    // Python `quote(v)`, which keeps `/`.
    (b"-._~/", false, true),
    // JavaScript `encodeURIComponent` and `encodeURI`.
    (b"-_.!~*'()", false, true),
    (b"-_.!~*'();,/?:@&=+$#", false, true),
    // Java `URLEncoder.encode`, PHP `urlencode`.
    (b".-*_", true, true),
];

pub fn percent_forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    // Letters and digits are left as they are by every encoder.
    if value.iter().all(u8::is_ascii_alphanumeric) {
        return vec![Zeroizing::new(value.to_vec())];
    }
    let mut forms = Vec::with_capacity(PERCENT.len());
    for (kept, space_as_plus, upper) in PERCENT {
        let hex: &[u8; 16] = if upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let mut encoded = Zeroizing::new(Vec::with_capacity(3 * value.len()));
        for &b in value {
            if b.is_ascii_alphanumeric() || kept.contains(&b) {
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
    dedup(forms)
}

/// How a JSON encoder escapes a string.
#[derive(Clone, Copy)]
struct JsonStyle {
    /// Non-ASCII characters (and DEL) as `\uXXXX`, astral ones as surrogate pairs.
    ascii: bool,
    /// Upper-case hex digits in `\u` escapes.
    upper: bool,
    /// `/` as `\/` (PHP).
    slash: bool,
    /// Characters written as `\u` escapes to be safe in HTML: Go's `<>&` (and U+2028,
    /// U+2029), or Gson's `<>&='`.
    html: &'static str,
}

/// What JSON encoders write between the quotes for `value`: serde and JavaScript, Python's
/// default `ensure_ascii`, Go, PHP, Gson, Jackson (upper-case hex).
///
/// Only the style choices that can change this value's escaping are varied: a plain token
/// (letters, digits, `-`, `_`) has one form, not 24.
pub fn json_forms(value: &str) -> Vec<Zeroizing<Vec<u8>>> {
    const HTML: [&str; 2] = ["<>&\u{2028}\u{2029}", "<>&='"];
    let non_ascii = value.bytes().any(|b| b >= 0x7f);
    let control = value
        .bytes()
        .any(|b| b < 0x20 && !b"\n\r\t\x08\x0c".contains(&b));
    let slash = value.contains('/');
    let html: Vec<&'static str> = std::iter::once("")
        .chain(
            HTML.into_iter()
                .filter(|set| value.chars().any(|c| set.contains(c))),
        )
        .collect();
    let mut forms = Vec::new();
    for ascii in [false, true]
        .into_iter()
        .take(if non_ascii { 2 } else { 1 })
    {
        for slash in [false, true].into_iter().take(if slash { 2 } else { 1 }) {
            for &html in &html {
                // Hex digits show only where something is written as `\uXXXX`.
                let escapes = control || (ascii && non_ascii) || !html.is_empty();
                for upper in [false, true].into_iter().take(if escapes { 2 } else { 1 }) {
                    let style = JsonStyle {
                        ascii,
                        upper,
                        slash,
                        html,
                    };
                    forms.push(json_escaped(value, style));
                }
            }
        }
    }
    dedup(forms)
}

fn json_escaped(value: &str, style: JsonStyle) -> Zeroizing<Vec<u8>> {
    // Sized for the worst case (a surrogate pair, 12 bytes, per 4-byte character; `\u00XX` per
    // byte), so the buffer never reallocates and leaves a copy behind.
    let mut out = Zeroizing::new(Vec::with_capacity(6 * value.len()));
    let hex: &[u8; 16] = if style.upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let unit = |out: &mut Vec<u8>, u: u16| {
        out.extend_from_slice(b"\\u");
        for shift in [12, 8, 4, 0] {
            out.push(hex[usize::from((u >> shift) & 15)]);
        }
    };
    let mut units = [0u16; 2];
    for c in value.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '/' if style.slash => out.extend_from_slice(b"\\/"),
            c if (c as u32) < 0x20 || (style.ascii && (c as u32) >= 0x7f) => {
                for &u in c.encode_utf16(&mut units).iter() {
                    unit(&mut out, u);
                }
            }
            c if style.html.contains(c) => unit(&mut out, c as u16),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

fn dedup(mut forms: Vec<Zeroizing<Vec<u8>>>) -> Vec<Zeroizing<Vec<u8>>> {
    forms.sort_unstable_by(|a, b| a.as_slice().cmp(b.as_slice()));
    forms.dedup_by(|a, b| a.as_slice() == b.as_slice());
    forms
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    fn text(forms: &[Zeroizing<Vec<u8>>]) -> Vec<String> {
        forms
            .iter()
            .map(|f| String::from_utf8(f.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn hex_in_both_cases_and_separators() {
        let forms = text(&hex_forms(b"\x01\xab\xff"));
        for expected in [
            "01abff", "01ABFF", "01 ab ff", "01 AB FF", "01:ab:ff", "01:AB:FF",
        ] {
            assert!(
                forms.contains(&expected.to_owned()),
                "{expected} in {forms:?}"
            );
        }
    }

    #[test]
    fn percent_encoders_agree_with_their_documentation() {
        let forms = text(&percent_forms("a b/~*'é".as_bytes()));
        for expected in [
            "a%20b%2F~%2A%27%C3%A9", // Python quote(v, safe="")
            "a%20b%2f~%2a%27%c3%a9", // the same, lower-case hex
            "a+b%2F~%2A%27%C3%A9",   // Python quote_plus
            "a%20b/~%2A%27%C3%A9",   // Python quote
            "a%20b%2F~*'%C3%A9",     // encodeURIComponent
            "a%20b/~*'%C3%A9",       // encodeURI
            "a+b%2F%7E*%27%C3%A9",   // Java URLEncoder
        ] {
            assert!(
                forms.contains(&expected.to_owned()),
                "{expected} in {forms:?}"
            );
        }
    }

    #[test]
    fn json_escapes_as_encoders_write_them() {
        let value = "é\"/<=\u{1}\u{1F600}\u{7f}";
        let forms = text(&json_forms(value));
        let serde = serde_json::to_string(value).unwrap();
        for expected in [
            &serde[1..serde.len() - 1],
            // Python json.dumps (ensure_ascii): lower-case hex, surrogate pairs, DEL escaped.
            r#"\u00e9\"/<=\u0001\ud83d\ude00\u007f"#,
            // Jackson with ESCAPE_NON_ASCII: upper-case hex.
            r#"\u00E9\"/<=\u0001\uD83D\uDE00\u007F"#,
            // PHP json_encode: `/` escaped too.
            r#"\u00e9\"\/<=\u0001\ud83d\ude00\u007f"#,
            // Go: HTML characters escaped, the rest as it is.
            "é\\\"/\\u003c=\\u0001\u{1F600}\u{7f}",
            // Gson: `=` too.
            "é\\\"/\\u003c\\u003d\\u0001\u{1F600}\u{7f}",
        ] {
            assert!(
                forms.contains(&expected.to_owned()),
                "{expected} in {forms:?}"
            );
        }
    }

    #[test]
    fn base64_needles_and_their_neighbours() {
        let value = b"0123456789-secret";
        for prefix in [&b""[..], b"x", b"xy", b"xyz"] {
            for suffix in [&b""[..], b"!", b"!?", b"\n"] {
                let data = [prefix, value, suffix].concat();
                for (url, encoded) in [
                    (false, STANDARD.encode(&data)),
                    (true, URL_SAFE.encode(&data)),
                ] {
                    let form = &base64_forms(value)[2 * (prefix.len() % 3) + usize::from(url)];
                    let at = encoded
                        .find(std::str::from_utf8(&form.bytes).unwrap())
                        .expect("the needle is in the encoding");
                    let (before, after) = (&encoded[..at], &encoded[at + form.bytes.len()..]);
                    // Everything outside the needle and its neighbours depends on the prefix
                    // and suffix alone: encoding another value of the same length shows it.
                    if form.ext.lead != 0 {
                        let c = *before.as_bytes().last().unwrap();
                        assert!(has(form.ext.lead, c), "lead {}", c as char);
                    }
                    let mut tail = after.bytes();
                    if form.ext.trail != 0 {
                        let c = tail.next().unwrap();
                        assert!(has(form.ext.trail, c), "trail {}", c as char);
                        let pads = tail.clone().take_while(|&b| b == b'=').count();
                        assert_eq!(
                            has(form.ext.pad, c) && pads > 0,
                            suffix.is_empty(),
                            "padding follows the last character only at the end"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn trimmed_values_and_lines_are_sources() {
        let forms = derived_forms("  tok-123456  \nsecond-line\r\n");
        let raw: Vec<&[u8]> = forms.iter().map(|f| f.bytes.as_slice()).collect();
        for expected in [&b"tok-123456"[..], b"second-line", b"  tok-123456  "] {
            assert!(
                raw.contains(&expected),
                "{}",
                String::from_utf8_lossy(expected)
            );
        }
    }

    proptest::proptest! {
        /// Varying only the style choices that can matter gives the same forms as trying
        /// every style.
        #[test]
        fn json_forms_are_those_of_every_style(
            value in "([a-z0-9_/<>&='\\\"\u{1}\n\t\u{7f}\u{e9}\u{2028}\u{1f600} -]){1,12}"
        ) {
            let mut every = Vec::new();
            for ascii in [false, true] {
                for upper in [false, true] {
                    for slash in [false, true] {
                        for html in ["", "<>&\u{2028}\u{2029}", "<>&='"] {
                            every.push(json_escaped(&value, JsonStyle { ascii, upper, slash, html }));
                        }
                    }
                }
            }
            proptest::prop_assert_eq!(text(&json_forms(&value)), text(&dedup(every)));
        }
    }
}
