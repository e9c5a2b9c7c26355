//! The sending side of each webhook scheme, written from the providers'
//! documentation with the `hmac` crate directly rather than through the
//! triggers crate, so that the verifiers are checked against a signer that
//! shares no code with them.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The secret every target signs with.
pub const SECRET: &[u8] = b"fuzz-signing-secret";

fn hex_mac(parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// `X-Slack-Signature`: `v0=` + hex(HMAC(`v0:` + timestamp + `:` + body)).
pub fn slack(timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex_mac(&[b"v0:", timestamp.as_bytes(), b":", body])
    )
}

/// `Linear-Signature`: hex(HMAC(body)).
pub fn linear(body: &[u8]) -> String {
    hex_mac(&[body])
}

/// `X-Supervisor-Signature`: `sha256=` + hex(HMAC(timestamp + `.` + body)).
pub fn webhook(timestamp: &str, body: &[u8]) -> String {
    format!("sha256={}", hex_mac(&[timestamp.as_bytes(), b".", body]))
}
