//! Slack bodies: parsing and routing must never panic, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use supervisor_triggers::slack::{self, SlackRequest};

mod config;

fuzz_target!(|data: &[u8]| {
    if let Ok(SlackRequest::AppMention(m)) = slack::parse(data) {
        let _ = slack::route(&m, config::config(), None);
        let _ = slack::route(&m, config::config(), Some("bob@example.com"));
    }
    let _ = slack::verify(
        b"secret",
        Some("1"),
        std::str::from_utf8(data).ok(),
        data,
        1,
    );
});
