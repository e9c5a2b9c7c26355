//! Automation webhooks: header checks and building the run must never
//! panic, whatever the bytes. The input is split into timestamp, signature
//! and body at the first two newlines.

#![no_main]

use libfuzzer_sys::fuzz_target;
use supervisor_triggers::webhook;

mod config;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let ts = parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let sig = parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let body = parts.next().unwrap_or_default();
    let _ = webhook::verify(b"secret", ts, sig, body, 1_700_000_000);
    let hook = config::config().webhook("hook").expect("configured hook");
    let _ = webhook::event(hook, body);
});
