//! HMAC-SHA256 request signatures, shared by every webhook source: the one
//! place that computes or compares a MAC.
//!
//! Invariants: a signature is accepted only as exactly 64 lowercase hex
//! digits, so each has one spelling (the generic webhook dedupes on it);
//! the comparison checks lengths first and then the bytes in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::VerifyError;

/// Length of a hex-encoded SHA-256 MAC.
pub(crate) const HEX_LEN: usize = 64;

/// Lowercase hex of HMAC-SHA256 under `key` over the concatenated `parts`.
pub(crate) fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Equality of two byte strings without an early exit on the first
/// difference; unequal lengths differ at once (the length is public).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Checks `given` (a header's hex digits, prefix removed) against the MAC of
/// `parts`. `header` names the header in the error.
pub(crate) fn check(
    key: &[u8],
    parts: &[&[u8]],
    given: &str,
    header: &'static str,
) -> Result<(), VerifyError> {
    if key.is_empty() {
        return Err(VerifyError::EmptySecret);
    }
    let well_formed = given.len() == HEX_LEN
        && given
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(VerifyError::MalformedHeader(header));
    }
    let expected = hmac_sha256_hex(key, parts);
    if constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// A scheme that signs `<lead><timestamp><separator><raw body>` and sends
/// the timestamp (Unix seconds) and `<prefix><hex MAC>` in two headers.
pub(crate) struct Timestamped {
    pub timestamp_header: &'static str,
    pub signature_header: &'static str,
    pub prefix: &'static str,
    pub lead: &'static [u8],
    pub separator: &'static [u8],
    pub window_secs: u64,
    pub max_body: usize,
}

impl Timestamped {
    /// Checks size, headers, the time window, then the MAC: the one order
    /// every timestamped source follows.
    pub(crate) fn verify(
        &self,
        secret: &[u8],
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), VerifyError> {
        if body.len() > self.max_body {
            return Err(VerifyError::TooLarge {
                limit: self.max_body,
            });
        }
        let ts_text = timestamp.ok_or(VerifyError::MissingHeader(self.timestamp_header))?;
        let given = signature.ok_or(VerifyError::MissingHeader(self.signature_header))?;
        let ts = unix_seconds(ts_text, self.timestamp_header)?;
        let hex = given
            .strip_prefix(self.prefix)
            .ok_or(VerifyError::MalformedHeader(self.signature_header))?;
        check_window(ts, now_unix, self.window_secs, 1000)?;
        check(
            secret,
            &[self.lead, ts_text.as_bytes(), self.separator, body],
            hex,
            self.signature_header,
        )
    }
}

/// Parses a timestamp header: ASCII digits only (no sign, no spaces).
pub(crate) fn unix_seconds(value: &str, header: &'static str) -> Result<i64, VerifyError> {
    if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedHeader(header));
    }
    value
        .parse()
        .map_err(|_| VerifyError::MalformedHeader(header))
}

/// Accepts `at` when it is within `window` of `now`, in the past or the
/// future (both in the same unit; `unit_ms` converts it for the error).
pub(crate) fn check_window(
    at: i64,
    now: i64,
    window: u64,
    unit_ms: u64,
) -> Result<(), VerifyError> {
    let skew = at.abs_diff(now);
    if skew > window {
        Err(VerifyError::Stale {
            skew_ms: skew.saturating_mul(unit_ms),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        // HMAC-SHA256 test case 2 of RFC 4231.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn check_refuses_every_other_spelling() {
        let good = hmac_sha256_hex(b"k", &[b"m"]);
        assert_eq!(check(b"k", &[b"m"], &good, "H"), Ok(()));
        let upper = good.to_ascii_uppercase();
        assert_eq!(
            check(b"k", &[b"m"], &upper, "H"),
            Err(VerifyError::MalformedHeader("H"))
        );
        assert_eq!(
            check(b"k", &[b"m"], &good[..63], "H"),
            Err(VerifyError::MalformedHeader("H"))
        );
        assert_eq!(
            check(b"k", &[b"m"], &format!("{good} "), "H"),
            Err(VerifyError::MalformedHeader("H"))
        );
        assert_eq!(
            check(b"other", &[b"m"], &good, "H"),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check(b"", &[b"m"], &good, "H"),
            Err(VerifyError::EmptySecret)
        );
    }

    #[test]
    fn timestamps_and_windows() {
        assert_eq!(unix_seconds("1531420618", "T"), Ok(1_531_420_618));
        for bad in [
            "",
            "+1",
            "-1",
            " 1",
            "1.5",
            "1e3",
            "99999999999999999999",
            "١٢",
        ] {
            assert_eq!(
                unix_seconds(bad, "T"),
                Err(VerifyError::MalformedHeader("T")),
                "{bad}"
            );
        }
        assert!(check_window(0, 300, 300, 1000).is_ok());
        assert!(check_window(600, 300, 300, 1000).is_ok());
        assert_eq!(
            check_window(0, 301, 300, 1000),
            Err(VerifyError::Stale { skew_ms: 301_000 })
        );
        assert!(check_window(i64::MIN, i64::MAX, 300, 1000).is_err());
    }
}
