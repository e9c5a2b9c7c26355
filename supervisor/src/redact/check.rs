//! The properties the streaming redactor must have, held against the plain reference: shared
//! by the property test (in the test suite) and the fuzz target.
//!
//! 1. One stream, however it is cut into pushes, comes out exactly as the reference makes it,
//!    with the same replacements per secret; so does each of two streams alone.
//! 2. Two streams, pushed in any interleaving: every needle of the arrival order, and of each
//!    stream alone, lost at least one byte to a placeholder, so no sink can show one whole,
//!    in order or not; no sink's view (the joined output, either stream) holds a needle; and
//!    where no value crossed between the streams, each stream is exactly its own reference.

use std::sync::Arc;

use super::reference::Reference;
use super::{Redactor, Stream};

/// Property 1 for `input` cut into pushes of `sizes` (cycled).
pub fn one_stream(
    r: &Arc<Redactor>,
    reference: &Reference,
    input: &[u8],
    sizes: &[usize],
) -> Result<(), String> {
    let (expected, hits) = reference.redact(input);
    let count = hits.iter().sum::<u64>() as usize;
    if r.redact_all(input) != (expected.clone(), count) {
        return Err("redact_all differs from the reference".into());
    }
    for sizes in [sizes, &[1]] {
        let mut stream = r.stream();
        let mut out = Vec::new();
        let mut rest = input;
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
            stream.push(chunk, &mut out);
            rest = tail;
        }
        stream.finish(&mut out);
        if out != expected || stream.hits() != hits.as_slice() {
            return Err(format!("pushes of {sizes:?} differ from the reference"));
        }
    }
    Ok(())
}

/// Property 1 for each stream alone, as a sink that keeps one stream gets it (a terminal's
/// stdout sent to a file), cut into pushes of `sizes`.
pub fn each_stream_alone(
    r: &Arc<Redactor>,
    reference: &Reference,
    pushes: &[(Stream, &[u8])],
    sizes: &[usize],
) -> Result<(), String> {
    for stream in [Stream::Stdout, Stream::Stderr] {
        one_stream(r, reference, &raw(pushes, stream), sizes)
            .map_err(|e| format!("{stream:?} alone: {e}"))?;
    }
    Ok(())
}

/// Whether a needle could be made of placeholder characters: then property 2's "no sink's
/// view holds a needle" cannot hold, and is not checked.
pub fn placeholders_are_inert(reference: &Reference) -> bool {
    !reference.any_needle_byte(|b| b == b'[' || b == b']')
        && reference
            .markers()
            .iter()
            .all(|m| reference.find_any(m).is_none())
}

/// Property 2 for these pushes; returns the chunks every sink got.
pub fn two_streams(
    r: &Arc<Redactor>,
    reference: &Reference,
    pushes: &[(Stream, &[u8])],
    stdout_closes_first: bool,
) -> Result<Vec<(Stream, Vec<u8>)>, String> {
    let mut output = r.output();
    let mut chunks: Vec<(Stream, Vec<u8>)> = Vec::new();
    let mut sink = |s: Stream, b: &[u8]| chunks.push((s, b.to_vec()));
    let close_at = if stdout_closes_first {
        pushes
            .iter()
            .rposition(|(s, _)| *s == Stream::Stdout)
            .map_or(0, |i| i + 1)
    } else {
        pushes.len()
    };
    for (i, (stream, bytes)) in pushes.iter().enumerate() {
        if i == close_at {
            output.close(Stream::Stdout, &mut sink);
        }
        output.push(*stream, bytes, &mut sink);
    }
    output.close(Stream::Stdout, &mut sink);
    output.close(Stream::Stderr, &mut sink);

    let input: Vec<u8> = pushes.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let mut origin = Vec::with_capacity(input.len());
    let mut read = [0u64; 2];
    for (stream, bytes) in pushes {
        let i = usize::from(*stream == Stream::Stderr);
        origin.extend((0..bytes.len() as u64).map(|k| (*stream, read[i] + k)));
        read[i] += bytes.len() as u64;
    }
    let replaced = |stream: Stream, at: u64| {
        output
            .replaced(stream)
            .iter()
            .any(|&(a, b)| a <= at && at < b)
    };
    for (s, e) in reference.occurrences(&input) {
        if !(s..e).any(|i| replaced(origin[i].0, origin[i].1)) {
            return Err(format!(
                "the needle at {s}..{e} of the arrival order is whole"
            ));
        }
    }
    for stream in [Stream::Stdout, Stream::Stderr] {
        for (s, e) in reference.occurrences(&raw(pushes, stream)) {
            if !(s as u64..e as u64).any(|i| replaced(stream, i)) {
                return Err(format!("the needle at {s}..{e} of {stream:?} is whole"));
            }
        }
    }
    if placeholders_are_inert(reference) {
        let joined: Vec<u8> = chunks.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        for (what, view) in [
            ("the joined output", joined),
            ("stdout", only(&chunks, Stream::Stdout)),
            ("stderr", only(&chunks, Stream::Stderr)),
        ] {
            if let Some((s, e)) = reference.find_any(&view) {
                return Err(format!("a needle is left in {what} at {s}..{e}"));
            }
        }
    }
    if output.joint_hits().iter().all(|&h| h == 0) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if only(&chunks, stream) != reference.redact(&raw(pushes, stream)).0 {
                return Err(format!("{stream:?} differs from its own reference"));
            }
        }
    }
    Ok(chunks)
}

/// The bytes of `stream` among `chunks`, in order.
pub fn only(chunks: &[(Stream, Vec<u8>)], stream: Stream) -> Vec<u8> {
    chunks
        .iter()
        .filter(|(s, _)| *s == stream)
        .flat_map(|(_, b)| b.iter().copied())
        .collect()
}

fn raw(pushes: &[(Stream, &[u8])], stream: Stream) -> Vec<u8> {
    pushes
        .iter()
        .filter(|(s, _)| *s == stream)
        .flat_map(|(_, b)| b.iter().copied())
        .collect()
}
