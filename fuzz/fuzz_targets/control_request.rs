//! The daemon's side of the control socket: whatever a client sends, the
//! frame's length is checked against the limit and the body decoded as the
//! daemon does it, without a panic; errors are short and hold nothing of
//! the input but a version string that passed its check.

#![no_main]

use libfuzzer_sys::fuzz_target;
use supervisor_protocol::{Call, HEADER_LEN, MAX_CALL, ProtocolError, body_len, decode};

fuzz_target!(|data: &[u8]| {
    // As a frame: a header, then the body the daemon would read.
    if data.len() >= HEADER_LEN {
        let header: [u8; HEADER_LEN] = data[..HEADER_LEN].try_into().expect("four bytes");
        if let Ok(len) = body_len(header, MAX_CALL) {
            assert!(len > 0 && len <= MAX_CALL);
            let body = &data[HEADER_LEN..];
            check(&body[..len.min(body.len())]);
        }
    }
    // And as a body on its own, so that every input reaches the decoder.
    check(data);
});

fn check(body: &[u8]) {
    match decode::<Call>(body) {
        Err(ProtocolError::Malformed(message)) => {
            assert!(message.is_ascii() && message.len() < 120, "{message}");
        }
        Err(ProtocolError::Version {
            their_supervisor, ..
        }) => {
            assert!(their_supervisor.len() <= 32);
            assert!(
                their_supervisor
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
            );
        }
        _ => {}
    }
}
