//! Automation webhooks as the daemon takes them: the timestamp and
//! signature checked first (the verifier must accept exactly what the
//! sender's own signing gives, on time), then, for a request it accepts,
//! the run built from the body. Whatever the body, nothing panics, the
//! run has nobody behind it (team secrets only), and the body reaches the
//! agent unchanged: as text when it is UTF-8, else as base64.

#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use supervisor_config::TriggerKind;
use supervisor_fuzz::delivery::Delivery;
use supervisor_fuzz::{fixture, sign};
use supervisor_triggers::webhook;

/// The server's clock.
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some(d) = Delivery::read(data) else {
        return;
    };
    let timestamp = (NOW + d.skew).to_string();
    let correct = sign::webhook(&timestamp, d.body);
    let header = d.header(&correct);
    let verdict = webhook::verify(
        sign::SECRET,
        Some(&timestamp),
        header.as_deref(),
        d.body,
        NOW,
    );
    let fresh = d.skew.unsigned_abs() <= webhook::WINDOW_SECS;
    d.check_verdict(
        &verdict,
        header.as_deref(),
        &correct,
        fresh,
        webhook::SIGNATURE_HEADER,
    );
    if verdict.is_err() {
        return;
    }
    let config = &fixture::configs()[0];
    let hook = config.webhook("alerts").expect("a configured hook");
    let run = webhook::event(hook, d.body);
    assert_eq!(run.kind, TriggerKind::Webhook);
    assert_eq!(run.agent, hook.agent);
    assert_eq!(run.initiator, None, "a webhook run has nobody behind it");
    assert_eq!(run.reply_to, None);
    let source = &run.source["webhook"];
    assert_eq!(source["name"], hook.name.as_str());
    match std::str::from_utf8(d.body) {
        Ok(text) => {
            assert_eq!(source["body"], text);
            let prompt =
                (!text.trim().is_empty() && text.len() <= webhook::MAX_PROMPT).then_some(text);
            assert_eq!(run.prompt.as_deref(), prompt);
        }
        Err(_) => {
            let encoded = source["body_base64"].as_str().expect("a body as base64");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .expect("base64");
            assert_eq!(decoded, d.body);
            assert_eq!(run.prompt, None);
        }
    }
});
