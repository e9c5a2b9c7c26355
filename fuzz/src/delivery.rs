//! How the webhook targets read their input: two bytes that choose how the
//! request is signed and how far the sender's clock is off, then the body.
//! A seed is `[0, 0]` and a provider's example payload: signed correctly,
//! on time, so that mutations of it reach the parser behind the check.

use supervisor_triggers::VerifyError;

/// How the request's signature header is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature<'a> {
    /// As the sender computes it.
    Valid,
    /// As the sender computes it, then one hex digit changed to another.
    Flipped(usize),
    /// The input's first line, as written (`None`: not text, which the
    /// server reads as no header at all).
    Raw(Option<&'a str>),
    /// No signature header.
    Missing,
}

/// One request as a target sends it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub signature: Signature<'a>,
    /// Seconds between the time the request is signed for and now
    /// (-384 to 381: either side of every window).
    pub skew: i64,
    pub body: &'a [u8],
}

impl<'a> Delivery<'a> {
    /// `None` for inputs shorter than the two leading bytes.
    pub fn read(data: &'a [u8]) -> Option<Delivery<'a>> {
        let (&[mode, skew], rest) = data.split_first_chunk::<2>()?;
        let skew = i64::from(skew as i8) * 3;
        let (signature, body) = match mode % 4 {
            0 => (Signature::Valid, rest),
            1 => (Signature::Flipped(usize::from(mode / 4)), rest),
            2 => {
                let (line, body) = match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (rest, &[][..]),
                };
                (Signature::Raw(std::str::from_utf8(line).ok()), body)
            }
            _ => (Signature::Missing, rest),
        };
        Some(Delivery {
            signature,
            skew,
            body,
        })
    }

    /// The signature header sent, given the one the sender computes.
    pub fn header(&self, correct: &str) -> Option<String> {
        match self.signature {
            Signature::Valid => Some(correct.to_owned()),
            Signature::Flipped(at) => {
                let mut bytes = correct.as_bytes().to_vec();
                let i = bytes.len() - 64 + at % 64;
                bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
                Some(String::from_utf8(bytes).expect("hex digits"))
            }
            Signature::Raw(text) => text.map(str::to_owned),
            Signature::Missing => None,
        }
    }

    /// Checks a verifier's verdict on this delivery, sent with `header`
    /// when the sender computes `correct`: it is accepted exactly when the
    /// header is the correct one and `fresh` (inside the scheme's window),
    /// and each way of spoiling it is refused for that reason.
    pub fn check_verdict(
        &self,
        verdict: &Result<(), VerifyError>,
        header: Option<&str>,
        correct: &str,
        fresh: bool,
        header_name: &'static str,
    ) {
        assert_eq!(
            verdict.is_ok(),
            fresh && header == Some(correct),
            "{verdict:?}"
        );
        match self.signature {
            Signature::Valid if !fresh => {
                assert!(matches!(verdict, Err(VerifyError::Stale { .. })))
            }
            Signature::Flipped(_) if fresh => assert_eq!(*verdict, Err(VerifyError::BadSignature)),
            Signature::Missing => {
                assert_eq!(*verdict, Err(VerifyError::MissingHeader(header_name)))
            }
            _ => {}
        }
    }
}
