//! Signed webhooks for automated integrations (alerting, CI, scripts): verify
//! the request and turn its body into a user-less run of the hook's agent.
//!
//! Invariants: a run is only built from a body that [`verify`] accepted;
//! these runs never carry a person, so they receive team secrets only. The
//! caller dedupes on the signature header, which has a single spelling.

use base64::Engine;
use supervisor_config::Webhook;

use crate::{TriggerEvent, TriggerKind, VerifyError, signature};

/// The header carrying the Unix seconds the signature covers.
pub const TIMESTAMP_HEADER: &str = "X-Supervisor-Timestamp";
/// The header carrying `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "X-Supervisor-Signature";
/// How far a request's timestamp may be from now, either way. Signatures
/// used for dedupe must be remembered at least twice this long.
pub const WINDOW_SECS: u64 = 300;
/// Largest body accepted; the server refuses bigger ones before reading them.
pub const MAX_BODY: usize = 256 * 1024;
/// Largest body passed to the agent as its prompt.
pub const MAX_PROMPT: usize = 32 * 1024;

/// Checks `X-Supervisor-Signature` over `<timestamp>.<raw body>`, with the
/// timestamp within [`WINDOW_SECS`] of `now_unix`.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), VerifyError> {
    SCHEME.verify(secret, timestamp, signature, body, now_unix)
}

const SCHEME: signature::Timestamped = signature::Timestamped {
    timestamp_header: TIMESTAMP_HEADER,
    signature_header: SIGNATURE_HEADER,
    prefix: "sha256=",
    lead: b"",
    separator: b".",
    window_secs: WINDOW_SECS,
    max_body: MAX_BODY,
};

/// The run a verified request asks for: the hook's agent, no initiator.
///
/// `source.webhook.body` holds the body when it is UTF-8 text; any other
/// body is passed whole as standard base64 in `source.webhook.body_base64`
/// instead (never a lossy conversion, which would change what the sender
/// sent). The prompt is the body when it is non-empty UTF-8 text of at most
/// [`MAX_PROMPT`] bytes.
pub fn event(hook: &Webhook, body: &[u8]) -> TriggerEvent {
    let text = std::str::from_utf8(body).ok();
    let source = match text {
        Some(text) => serde_json::json!({ "name": hook.name, "body": text }),
        None => serde_json::json!({
            "name": hook.name,
            "body_base64": base64::engine::general_purpose::STANDARD.encode(body),
        }),
    };
    let prompt = text
        .filter(|t| !t.trim().is_empty() && t.len() <= MAX_PROMPT)
        .map(str::to_owned);
    TriggerEvent {
        kind: TriggerKind::Webhook,
        agent: hook.agent.clone(),
        initiator: None,
        prompt,
        source: serde_json::json!({ "webhook": source }),
        reply_to: None,
        delivery: None,
    }
}

#[cfg(test)]
mod tests;
