//! The output redactor against its plain reference: values, printed forms of them (also
//! wrapped, coloured and split by line breaks), pushes of any size on either stream, in any
//! order, and each stream alone. Any difference from the reference, or a needle left whole,
//! is a crash.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use std::sync::Arc;
use supervisor::redact::check;
use supervisor::redact::reference::{Reference, forms_of};
use supervisor::redact::{Redactor, Stream};

#[derive(Debug, Arbitrary)]
struct Case {
    values: Vec<String>,
    pieces: Vec<Piece>,
    /// Push sizes (cycled), each with the stream it goes to.
    pushes: Vec<(u8, bool)>,
    stdout_closes_first: bool,
}

#[derive(Debug, Arbitrary)]
enum Piece {
    Bytes(Vec<u8>),
    /// Form `form` of value `value` (both wrapped around), with `gap` inserted before each
    /// byte offset listed.
    Form {
        value: u8,
        form: u8,
        gaps: Vec<(u8, Gap)>,
    },
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum Gap {
    Lf,
    CrLf,
    Reset,
    Colour,
    Long,
}

impl Gap {
    fn bytes(self) -> &'static [u8] {
        match self {
            Gap::Lf => b"\n",
            Gap::CrLf => b"\r\n",
            Gap::Reset => b"\x1b[0m",
            Gap::Colour => b"\x1b[01;31m\x1b[K",
            Gap::Long => {
                b"\x1b[38;5;208m\r\n\x1b[48;5;17m\x1b[1m\x1b[4m\x1b[0m\x1b[38;5;208m\x1b[48;5;17m"
            }
        }
    }
}

fuzz_target!(|case: Case| {
    let values: Vec<&str> = case
        .values
        .iter()
        .take(3)
        .map(|v| {
            let end = (0..=v.len().min(48))
                .rev()
                .find(|&i| v.is_char_boundary(i))
                .unwrap_or(0);
            &v[..end]
        })
        .collect();
    if values.is_empty() {
        return;
    }
    let names: Vec<String> = (0..values.len()).map(|i| format!("S{i}")).collect();
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(values.iter().copied())
        .collect();
    let owned: Vec<(&str, SecretString)> = pairs
        .iter()
        .map(|&(n, v)| (n, SecretString::from(v.to_owned())))
        .collect();
    let r = Arc::new(Redactor::new(owned.iter().map(|(n, v)| (*n, v))));
    let reference = Reference::new(&pairs);

    let forms: Vec<Vec<Vec<u8>>> = values.iter().map(|v| forms_of(v)).collect();
    let mut input = Vec::new();
    for piece in case.pieces.iter().take(24) {
        match piece {
            Piece::Bytes(b) => input.extend_from_slice(&b[..b.len().min(64)]),
            Piece::Form { value, form, gaps } => {
                let of = &forms[usize::from(*value) % forms.len()];
                if of.is_empty() {
                    continue;
                }
                let f = &of[usize::from(*form) % of.len()];
                let mut cuts: Vec<(usize, Gap)> = gaps
                    .iter()
                    .take(4)
                    .map(|&(at, g)| (usize::from(at) % (f.len() + 1), g))
                    .collect();
                cuts.sort_by_key(|c| c.0);
                let mut last = 0;
                for (at, gap) in cuts {
                    input.extend_from_slice(&f[last..at]);
                    input.extend_from_slice(gap.bytes());
                    last = at;
                }
                input.extend_from_slice(&f[last..]);
            }
        }
    }
    if input.len() > 4096 {
        return;
    }

    let sizes: Vec<usize> = case
        .pushes
        .iter()
        .map(|&(n, _)| usize::from(n).max(1))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![input.len().max(1)]
    } else {
        sizes
    };
    if let Err(e) = check::one_stream(&r, &reference, &input, &sizes) {
        panic!("{e}");
    }
    let mut pushes = Vec::new();
    let mut rest = &input[..];
    for i in 0.. {
        if rest.is_empty() {
            break;
        }
        let (size, stderr) = case
            .pushes
            .get(i % case.pushes.len().max(1))
            .copied()
            .unwrap_or((0, false));
        let (chunk, tail) = rest.split_at(usize::from(size).clamp(1, rest.len()));
        pushes.push((
            if stderr {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            chunk,
        ));
        rest = tail;
    }
    if let Err(e) = check::two_streams(&r, &reference, &pushes, case.stdout_closes_first) {
        panic!("{e}");
    }
    if let Err(e) = check::each_stream_alone(&r, &reference, &pushes, &sizes) {
        panic!("{e}");
    }
});
