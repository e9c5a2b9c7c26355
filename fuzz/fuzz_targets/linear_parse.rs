//! Linear bodies: parsing, the freshness check and routing must never
//! panic, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use supervisor_triggers::linear;

mod config;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = linear::parse(data) {
        let _ = linear::check_fresh(w.webhook_timestamp, 1_700_000_000_000);
        let _ = linear::route(&w, config::config());
    }
    let _ = linear::verify(b"secret", std::str::from_utf8(data).ok(), data);
});
