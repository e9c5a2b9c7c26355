use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use sha2::Sha256;

use super::*;
use crate::testing::config;

const SECRET: &[u8] = b"alerts-secret";
const NOW: i64 = 1_772_446_530;
const BODY: &[u8] = br#"{"alert":"disk full","host":"db-1"}"#;

/// The signature header, computed here independently of the crate.
fn sign(secret: &[u8], ts: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn check(ts: &str, sig: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
    verify(SECRET, Some(ts), Some(sig), body, now)
}

#[test]
fn a_signed_request_verifies_within_the_window() {
    let ts = NOW.to_string();
    let sig = sign(SECRET, &ts, BODY);
    for now in [NOW, NOW + 300, NOW - 300] {
        assert_eq!(check(&ts, &sig, BODY, now), Ok(()));
    }
    for now in [NOW + 301, NOW - 301] {
        assert_eq!(
            check(&ts, &sig, BODY, now),
            Err(VerifyError::Stale { skew_ms: 301_000 })
        );
    }
    let empty = sign(SECRET, &ts, b"");
    assert_eq!(check(&ts, &empty, b"", NOW), Ok(()));
}

#[test]
fn anything_else_is_refused() {
    let ts = NOW.to_string();
    let sig = sign(SECRET, &ts, BODY);
    let bad = Err(VerifyError::BadSignature);
    let malformed = Err(VerifyError::MalformedHeader(SIGNATURE_HEADER));
    assert_eq!(
        check(&ts, &sig, br#"{"alert":"disk fine","host":"db-1"}"#, NOW),
        bad
    );
    assert_eq!(check(&(NOW + 1).to_string(), &sig, BODY, NOW), bad);
    assert_eq!(check(&ts, &sign(b"other", &ts, BODY), BODY, NOW), bad);
    // The separator is part of what is signed.
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(ts.as_bytes());
    mac.update(BODY);
    let no_dot = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(check(&ts, &no_dot, BODY, NOW), bad);
    let hex = &sig["sha256=".len()..];
    for wrong in [
        format!("v0={hex}"),
        format!("sha1={hex}"),
        format!("SHA256={hex}"),
        format!("sha256={}", hex.to_ascii_uppercase()),
        hex.to_owned(),
        "sha256=".to_owned(),
        String::new(),
        format!("{sig} "),
    ] {
        assert_eq!(check(&ts, &wrong, BODY, NOW), malformed, "{wrong}");
    }
    assert_eq!(
        verify(SECRET, None, Some(&sig), BODY, NOW),
        Err(VerifyError::MissingHeader(TIMESTAMP_HEADER))
    );
    assert_eq!(
        verify(SECRET, Some(&ts), None, BODY, NOW),
        Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
    );
    assert_eq!(
        check("soon", &sig, BODY, NOW),
        Err(VerifyError::MalformedHeader(TIMESTAMP_HEADER))
    );
    assert_eq!(
        verify(b"", Some(&ts), Some(&sig), BODY, NOW),
        Err(VerifyError::EmptySecret)
    );
}

#[test]
fn the_body_limit_holds_at_its_edge() {
    let ts = NOW.to_string();
    let body = vec![b'x'; MAX_BODY];
    assert_eq!(check(&ts, &sign(SECRET, &ts, &body), &body, NOW), Ok(()));
    let body = vec![b'x'; MAX_BODY + 1];
    assert_eq!(
        check(&ts, &sign(SECRET, &ts, &body), &body, NOW),
        Err(VerifyError::TooLarge { limit: MAX_BODY })
    );
}

#[test]
fn events_are_user_less_runs_of_the_hook_s_agent() {
    let c = config();
    let hook = c.webhook("alerts").unwrap();
    let e = event(hook, BODY);
    assert_eq!(
        e,
        TriggerEvent {
            kind: TriggerKind::Webhook,
            agent: "remediate".into(),
            initiator: None,
            prompt: Some(r#"{"alert":"disk full","host":"db-1"}"#.into()),
            source: serde_json::json!({"webhook": {
                "name": "alerts",
                "body": r#"{"alert":"disk full","host":"db-1"}"#,
            }}),
            reply_to: None,
            delivery: None,
        }
    );
}

#[test]
fn bodies_that_are_not_prompts() {
    let c = config();
    let hook = c.webhook("alerts").unwrap();
    // Not UTF-8: kept whole as base64, no prompt.
    let e = event(hook, &[0xff, 0x00, 0x41]);
    assert_eq!(e.prompt, None);
    assert_eq!(
        e.source,
        serde_json::json!({"webhook": {"name": "alerts", "body_base64": "/wBB"}})
    );
    // Text over the prompt limit: in the source only.
    let long = "a".repeat(MAX_PROMPT + 1);
    let e = event(hook, long.as_bytes());
    assert_eq!(e.prompt, None);
    assert_eq!(e.source["webhook"]["body"], long.as_str());
    let edge = "a".repeat(MAX_PROMPT);
    assert_eq!(
        event(hook, edge.as_bytes()).prompt.as_deref(),
        Some(edge.as_str())
    );
    assert_eq!(event(hook, b"").prompt, None);
    assert_eq!(event(hook, b"  \n").prompt, None);
}

proptest! {
    #[test]
    fn verify_never_panics(
        ts in proptest::option::of(".{0,24}"),
        sig in proptest::option::of(".{0,80}"),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        now in any::<i64>(),
    ) {
        let _ = verify(SECRET, ts.as_deref(), sig.as_deref(), &body, now);
    }

    #[test]
    fn event_keeps_every_body(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let c = config();
        let e = event(c.webhook("alerts").unwrap(), &body);
        let w = &e.source["webhook"];
        let kept = match (w["body"].as_str(), w["body_base64"].as_str()) {
            (Some(text), None) => text.as_bytes().to_vec(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).unwrap(),
            other => panic!("{other:?}"),
        };
        prop_assert_eq!(kept, body);
        prop_assert_eq!(e.initiator, None);
    }
}
