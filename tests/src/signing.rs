//! Signing requests the way each sender does, for tests and benchmarks:
//! Slack's `v0` scheme, Linear's body HMAC, and the automation webhooks'
//! timestamped HMAC. All are HMAC-SHA256 in lowercase hex.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Lowercase hex of HMAC-SHA256 under `key` over `message`.
pub fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// Unix time in seconds.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

/// A fresh delivery id, unique within this process and across runs.
pub fn delivery_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:016x}-{:08x}-{}",
        now_ms(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Slack's `X-Slack-Signature` of `body` sent at `timestamp` (Unix
/// seconds, as text): `v0=<hex HMAC of "v0:<timestamp>:<body>">`.
pub fn slack_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut message = format!("v0:{timestamp}:").into_bytes();
    message.extend_from_slice(body);
    format!("v0={}", hmac_hex(secret.as_bytes(), &message))
}

/// The headers of a Linear delivery of `body`: signature and delivery id.
pub fn linear_headers(secret: &str, delivery: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("Linear-Signature".into(), hmac_hex(secret.as_bytes(), body)),
        ("Linear-Delivery".into(), delivery.into()),
        ("Linear-Event".into(), "Issue".into()),
        ("User-Agent".into(), "Linear-Webhook".into()),
    ]
}

/// The automation webhooks' `X-Supervisor-Signature` of `body` sent at
/// `timestamp` (Unix seconds, as text): `sha256=<hex HMAC of
/// "<timestamp>.<body>">`.
pub fn webhook_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    format!("sha256={}", hmac_hex(secret.as_bytes(), &message))
}

/// The headers of an automation webhook request signed at `timestamp`:
/// the timestamp first, then the signature.
pub fn webhook_headers(secret: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("X-Supervisor-Timestamp".into(), timestamp.to_string()),
        (
            "X-Supervisor-Signature".into(),
            webhook_signature(secret, &timestamp.to_string(), body),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_signs_the_documented_example() {
        // Slack's "Verifying requests" example.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            slack_signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }
}
