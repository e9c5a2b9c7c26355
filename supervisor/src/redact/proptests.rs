//! The streaming redactor against the plain reference, over random secrets, printed forms,
//! chunkings and interleavings of the two streams.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use proptest::prelude::*;

use super::check;
use super::forms::derived_forms;
use super::tests::redactor;
use super::*;

/// A piece of generated output.
#[derive(Debug, Clone)]
enum Piece {
    /// Bytes from a small alphabet, so that they often begin or continue a needle.
    Noise(Vec<u8>),
    /// One derived form of one secret (by index, wrapped around).
    Form(usize, usize),
    /// A form with a line break or an escape sequence inserted at each of these places.
    Gapped(usize, usize, Vec<(usize, u8)>),
    /// A secret inside a padded base64 blob: (secret, bytes before, bytes after, URL-safe
    /// alphabet, line width or 0, CRLF).
    Blob(usize, Vec<u8>, Vec<u8>, bool, usize, bool),
}

fn piece() -> impl Strategy<Value = Piece> {
    let noise = proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(b"abcABC019+/=-_ %\"\\".to_vec()),
            1 => proptest::sample::select(b"\n\r\x1b[m;".to_vec()),
            1 => any::<u8>(),
        ],
        0..10,
    );
    let gaps = proptest::collection::vec((any::<usize>(), 0u8..4), 1..3);
    prop_oneof![
        3 => noise.prop_map(Piece::Noise),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(s, f)| Piece::Form(s, f)),
        2 => (any::<usize>(), any::<usize>(), gaps).prop_map(|(s, f, g)| Piece::Gapped(s, f, g)),
        2 => (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 0..4),
            proptest::collection::vec(any::<u8>(), 0..3),
            any::<bool>(),
            prop_oneof![Just(0usize), 4usize..24],
            any::<bool>(),
        )
            .prop_map(|(s, pre, post, url, w, crlf)| Piece::Blob(s, pre, post, url, w, crlf)),
    ]
}

const GAPS: [&[u8]; 4] = [b"\n", b"\r\n", b"\x1b[0m", b"\x1b[01;31m\x1b[K"];

/// The bytes a list of pieces prints, given each secret's value.
fn print(values: &[String], pieces: &[Piece]) -> Vec<u8> {
    let forms: Vec<Vec<Vec<u8>>> = values
        .iter()
        .map(|v| {
            derived_forms(v)
                .into_iter()
                .map(|f| f.bytes.to_vec())
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for p in pieces {
        match p {
            Piece::Noise(bytes) => out.extend_from_slice(bytes),
            Piece::Form(s, f) | Piece::Gapped(s, f, _) => {
                let of = &forms[s % forms.len()];
                if of.is_empty() {
                    continue;
                }
                let form = &of[f % of.len()];
                let mut cuts: Vec<(usize, u8)> = match p {
                    Piece::Gapped(_, _, g) => g
                        .iter()
                        .map(|&(at, k)| (at % (form.len() + 1), k))
                        .collect(),
                    _ => Vec::new(),
                };
                cuts.sort();
                let mut last = 0;
                for (at, kind) in cuts {
                    out.extend_from_slice(&form[last..at]);
                    out.extend_from_slice(GAPS[usize::from(kind)]);
                    last = at;
                }
                out.extend_from_slice(&form[last..]);
            }
            Piece::Blob(s, pre, post, url, width, crlf) => {
                let data = [pre.as_slice(), values[s % values.len()].as_bytes(), post].concat();
                let encoded = if *url {
                    URL_SAFE.encode(&data)
                } else {
                    STANDARD.encode(&data)
                };
                let eol: &[u8] = if *crlf { b"\r\n" } else { b"\n" };
                if *width == 0 {
                    out.extend_from_slice(encoded.as_bytes());
                } else {
                    for line in encoded.as_bytes().chunks(*width) {
                        out.extend_from_slice(line);
                        out.extend_from_slice(eol);
                    }
                }
            }
        }
    }
    out
}

/// Cuts `input` into pushes of the given sizes (cycled), each on the stream its flag says.
fn interleave<'a>(input: &'a [u8], sizes: &[usize], flags: &[bool]) -> Vec<(Stream, &'a [u8])> {
    let mut pushes = Vec::new();
    let mut rest = input;
    for (i, &size) in sizes.iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        let stream = if flags[i % flags.len()] {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        pushes.push((stream, chunk));
        rest = tail;
    }
    pushes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn streaming_agrees_with_the_reference(
        // Brackets now and then: a needle may then be made of placeholder characters.
        values in proptest::collection::vec("[a-cA-C0-9 \"\\\\/+=%~é\n-]{6,40}|[a-c\\[\\]:]{6,12}", 1..4),
        // Overlapping secrets: one that extends or cuts into the first.
        overlap in "[a-c]{0,6}",
        pieces in proptest::collection::vec(piece(), 0..16),
        sizes in proptest::collection::vec(1usize..48, 1..8),
        flags in proptest::collection::vec(any::<bool>(), 1..6),
    ) {
        let mut values = values;
        let half: String = values[0].chars().take(values[0].chars().count() / 2).collect();
        values.push(format!("{half}{overlap}"));
        let names: Vec<String> = (0..values.len()).map(|i| format!("S{i}")).collect();
        let pairs: Vec<(&str, &str)> =
            names.iter().map(String::as_str).zip(values.iter().map(String::as_str)).collect();
        let (r, reference) = redactor(&pairs);
        let input = print(&values, &pieces);
        check::one_stream(&r, &reference, &input, &sizes).map_err(TestCaseError::fail)?;
        let pushes = interleave(&input, &sizes, &flags);
        check::each_stream_alone(&r, &reference, &pushes, &sizes).map_err(TestCaseError::fail)?;
        for stdout_closes_first in [false, true] {
            check::two_streams(&r, &reference, &pushes, stdout_closes_first)
                .map_err(TestCaseError::fail)?;
        }
    }
}
