//! Output redaction: every injected secret value, and the forms a program commonly prints it
//! in, becomes `[REDACTED:NAME]` before agent output leaves the supervisor.
//!
//! Invariants: however a stream is split into pushes, a stream's output equals
//! [`Redactor::redact_all`] of the whole stream (see `reference` for the rules, written out
//! plainly); a stream holds back only bytes that could still become part of a match. The two
//! output streams of a run are redacted each on its own and then once more where they meet
//! ([`Output`]), so that no sink, whether it keeps them apart or joins them, ever shows a value
//! assembled from pieces. Secret bytes are never formatted, and buffers of ours that held them
//! are zeroized.

#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod check;
mod filter;
mod forms;
mod junction;
mod matcher;
mod output;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod reference;
mod shared;
mod stream;
mod view;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

pub use output::{Emitted, Output, Stream};
pub use shared::shared;
pub use stream::RedactStream;

use forms::Ext;
use matcher::{Matcher, Tail};
use stream::ToVec;

/// Values (and lines of values) shorter than this are not redacted: they would match
/// ordinary output everywhere.
pub const MIN_REDACTABLE_LEN: usize = 6;

/// Built once per run from the injected values; shared (Arc) by the run's streams.
pub struct Redactor {
    /// Built on first use: deriving every form of every value is most of what a redactor
    /// costs, and a run does it while its agent starts (see [`Redactor::prepare`]).
    matcher: OnceLock<Option<Matcher>>,
    /// The values of `names`, in order, until the matcher is built from them.
    values: Mutex<Vec<SecretString>>,
    /// Secrets redacted, in the order given: hit counts are indexed alike.
    names: Vec<String>,
    replacements: Vec<Box<[u8]>>,
    too_short: Vec<String>,
}

/// The needles of a set of secrets: (form as the view reads it, secret index, extension),
/// sorted and merged; with the names of the secrets they belong to (values too short to
/// redact are left out).
pub(crate) struct Needles {
    pub needles: Vec<(Zeroizing<Vec<u8>>, usize, Ext)>,
    // The redactor keeps its own (it builds its needles later, from the redactable values
    // alone); the reference model reads them.
    #[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
    pub names: Vec<String>,
}

/// Whether a value is long enough to redact (see [`MIN_REDACTABLE_LEN`]).
fn redactable(value: &str) -> bool {
    value.len() >= MIN_REDACTABLE_LEN
}

impl Needles {
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Needles {
        let mut names = Vec::new();
        let mut needles = Vec::new();
        for (name, value) in secrets.into_iter().filter(|(_, v)| redactable(v)) {
            let secret = names.len();
            needles.extend(
                forms::derived_forms(value)
                    .into_iter()
                    .map(|f| (f.bytes, secret, f.ext)),
            );
            names.push(name.to_owned());
        }
        // Stable sort, so a needle shared by two secrets is credited to the first one given;
        // the characters either may take in beside it are merged.
        needles.sort_by(|a, b| a.0.cmp(&b.0));
        let mut merged: Vec<(Zeroizing<Vec<u8>>, usize, Ext)> = Vec::with_capacity(needles.len());
        for (bytes, secret, ext) in needles {
            match merged.last_mut() {
                Some(last) if last.0 == bytes => last.2.union(ext),
                _ => merged.push((bytes, secret, ext)),
            }
        }
        Needles {
            needles: merged,
            names,
        }
    }
}

impl Redactor {
    /// `secrets`: (env var name, value). Values shorter than [`MIN_REDACTABLE_LEN`] are not
    /// redacted; their names are reported by [`Redactor::too_short`].
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a SecretString)>) -> Redactor {
        let mut names = Vec::new();
        let mut values = Vec::new();
        let mut too_short = Vec::new();
        for (name, value) in secrets {
            if redactable(value.expose_secret()) {
                names.push(name.to_owned());
                values.push(value.clone());
            } else {
                too_short.push(name.to_owned());
            }
        }
        Redactor {
            matcher: OnceLock::new(),
            values: Mutex::new(values),
            replacements: names
                .iter()
                .map(|name| format!("[REDACTED:{name}]").into_bytes().into_boxed_slice())
                .collect(),
            names,
            too_short,
        }
    }

    /// Builds the matcher now, if nothing has used it yet, so that the first output does
    /// not wait for it.
    pub fn prepare(&self) {
        self.matcher();
    }

    /// The matcher of every form of every value; `None` when there is nothing to redact.
    fn matcher(&self) -> Option<&Matcher> {
        self.matcher
            .get_or_init(|| {
                // Taken, so the copies of the values go (zeroized) once the needles exist.
                let values =
                    std::mem::take(&mut *self.values.lock().unwrap_or_else(|p| p.into_inner()));
                let n = Needles::new(
                    self.names
                        .iter()
                        .zip(&values)
                        .map(|(name, value)| (name.as_str(), value.expose_secret())),
                );
                (!n.needles.is_empty()).then(|| Matcher::new(&n.needles))
            })
            .as_ref()
    }

    /// Names of the secrets whose values are too short to redact.
    pub fn too_short(&self) -> &[String] {
        &self.too_short
    }

    /// Names of the secrets redacted; hit counts ([`RedactStream::hits`], [`Output::hits`])
    /// are indexed alike.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// True when there is nothing to redact: output passes through unchanged.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// One-shot redaction of a complete buffer (replies, prompts, error texts).
    /// Returns the redacted bytes and the number of replacements.
    pub fn redact_all(&self, input: &[u8]) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(input.len());
        let mut hits = vec![0; self.names.len()];
        match self.matcher() {
            Some(m) => {
                let mut emit = ToVec {
                    out: &mut out,
                    replacements: &self.replacements,
                    hits: &mut hits,
                };
                m.process(input, Tail::End, usize::MAX, &mut emit);
            }
            None => out.extend_from_slice(input),
        }
        (out, hits.iter().sum::<u64>() as usize)
    }

    /// Redacts text that will be stored or shown, whole, before anything cuts it.
    pub fn redact_text(&self, text: &str) -> String {
        let (out, _) = self.redact_all(text.as_bytes());
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A fresh stream sharing this redactor.
    pub fn stream(self: &Arc<Self>) -> RedactStream {
        RedactStream::new(self)
    }

    /// Both output streams of a run, redacted each on its own and where they meet.
    pub fn output(self: &Arc<Self>) -> Output {
        Output::new(self)
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.names.len())
            .field("too_short", &self.too_short.len())
            .finish_non_exhaustive()
    }
}
