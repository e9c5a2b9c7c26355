//! The codec: round trips, bounds, versions, and errors that never echo input.

use proptest::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use super::*;
use crate::{
    Answer, Call, ErrorKind, MAX_CALL, OutputStream, Reply, Request, SecretValue, Target,
    TargetScope,
};

fn body(frame: &[u8]) -> &[u8] {
    let header: [u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().unwrap();
    let len = body_len(header, usize::MAX).unwrap();
    assert_eq!(frame.len(), HEADER_LEN + len);
    &frame[HEADER_LEN..]
}

fn write(value: &str) -> Call {
    Call::Request(Request::SecretWrite {
        target: Target {
            scope: TargetScope::Personal { member: None },
            name: "GITHUB_TOKEN".into(),
        },
        update: false,
        description: Some("CI bot".into()),
        value: SecretValue::new(SecretString::from(value.to_owned())),
    })
}

#[test]
fn a_request_with_a_value_round_trips_and_the_value_is_base64_on_the_wire() {
    let value = "line one\n\"quoted\" \\ ünïcode\ttab";
    let frame = encode(&write(value)).unwrap();
    let text = std::str::from_utf8(body(&frame)).unwrap();
    assert!(text.starts_with(r#"{"v":2,"supervisor":""#), "{text}");
    assert!(
        !text.contains("quoted"),
        "the value is not readable in the frame"
    );
    match decode::<Call>(body(&frame)).unwrap() {
        Call::Request(Request::SecretWrite {
            target,
            value: got,
            description,
            update,
        }) => {
            assert_eq!(got.into_inner().expose_secret(), value);
            assert_eq!(target.name, "GITHUB_TOKEN");
            assert_eq!(description.as_deref(), Some("CI bot"));
            assert!(!update);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn debug_output_never_shows_a_value() {
    let call = write("hunter2-hunter2");
    let shown = format!("{call:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn a_value_that_is_not_plain_base64_is_refused() {
    // An escaped string would have gone through serde_json's scratch copy.
    for value in [r#""aGk\u003d""#, r#""not base64!""#, r#""//79""#] {
        let text = format!(
            r#"{{"v":2,"supervisor":"x","msg":{{"request":{{"secret_write":{{"target":{{"scope":"team","name":"A"}},"update":false,"description":null,"value":{value}}}}}}}}}"#
        );
        let err = decode::<Call>(text.as_bytes()).unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed(_)), "{value}: {err}");
    }
}

#[test]
fn answers_round_trip() {
    let frame = encode(&Answer::Output {
        stream: OutputStream::Stderr,
        data: crate::Bytes(vec![0, 159, 146, 150, b'\n']),
    })
    .unwrap();
    match decode::<Answer>(body(&frame)).unwrap() {
        Answer::Output { stream, data } => {
            assert_eq!(stream, OutputStream::Stderr);
            assert_eq!(data.0, [0, 159, 146, 150, b'\n']);
        }
        other => panic!("{other:?}"),
    }
    let frame = encode(&Answer::Done(Reply::AuditIntact {
        entries: 3,
        sealed: 3,
        keyed_from: 1,
    }))
    .unwrap();
    assert!(matches!(
        decode::<Answer>(body(&frame)).unwrap(),
        Answer::Done(Reply::AuditIntact {
            entries: 3,
            sealed: 3,
            keyed_from: 1
        })
    ));
}

#[test]
fn frames_are_bounded() {
    assert_eq!(body_len([0, 0, 0, 0], MAX_CALL), Err(ProtocolError::Empty));
    assert_eq!(body_len([0, 0, 0, 9], MAX_CALL), Ok(9));
    let over = (MAX_CALL as u32 + 1).to_be_bytes();
    assert_eq!(
        body_len(over, MAX_CALL),
        Err(ProtocolError::TooLarge {
            len: MAX_CALL + 1,
            max: MAX_CALL
        })
    );
    assert!(body_len([255, 255, 255, 255], MAX_CALL).is_err());
}

#[test]
fn another_version_is_named_and_its_errors_still_read() {
    let other = br#"{"v":7,"supervisor":"9.9.9","msg":{"request":{"future_thing":{}}}}"#;
    match decode::<Call>(other) {
        Err(ProtocolError::Version {
            theirs,
            their_supervisor,
        }) => assert_eq!((theirs, their_supervisor.as_str()), (7, "9.9.9")),
        other => panic!("{other:?}"),
    }
    let err = decode::<Call>(other).unwrap_err().to_string();
    assert!(err.contains("protocol 7 (supervisor 9.9.9)"), "{err}");
    assert!(
        err.contains(&format!("this one speaks protocol {PROTOCOL}")),
        "{err}"
    );

    // The peer's version string is shown only when it looks like one.
    for odd in ["", "0.1.0\nINFO forged log line", &"9".repeat(33)] {
        let text = format!(
            r#"{{"v":7,"supervisor":{},"msg":{{}}}}"#,
            serde_json::to_string(odd).unwrap()
        );
        match decode::<Call>(text.as_bytes()) {
            Err(ProtocolError::Version {
                their_supervisor, ..
            }) => {
                assert_eq!(their_supervisor, "unknown", "{odd:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    // An error from a daemon of another version, of a kind not known here.
    let error = br#"{"v":7,"supervisor":"9.9.9","error":{"kind":"brand_new","message":"nope","hint":"upgrade"}}"#;
    match decode::<Answer>(error) {
        Err(ProtocolError::Remote(e)) => {
            assert_eq!(e.kind, ErrorKind::Other);
            assert_eq!(e.message, "nope");
            assert_eq!(e.hint.as_deref(), Some("upgrade"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_frames_round_trip() {
    let sent = WireError::new(ErrorKind::NotAMember, "uid 1234 is not a member").hint("add it");
    let frame = encode_error(&sent);
    match decode::<Answer>(body(&frame)) {
        Err(ProtocolError::Remote(got)) => assert_eq!(got, sent),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_input_is_located_and_never_echoed() {
    let cases: [&[u8]; 6] = [
        b"not json at all: sekrit-value",
        br#"{"v":2,"supervisor":"x","msg":{"request":{"secret_list":{"all":"sekrit-value"}}}}"#,
        br#"{"v":2,"supervisor":"x","msg":{"request":{"sekrit-value":{}}}}"#,
        br#"{"supervisor":"sekrit-value"}"#,
        br#"{"v":2,"supervisor":"x","msg":{"request":{"run":{"agent":"a","prompt":"sekrit-value""#,
        br#"{"v":2,"supervisor":"x"}"#,
    ];
    for input in cases {
        let err = decode::<Call>(input).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ProtocolError::Malformed(_)), "{text}");
        assert!(!text.contains("sekrit"), "{text}");
        assert!(text.contains("line 1, column"), "{text}");
    }
}

proptest! {
    #[test]
    fn no_input_makes_the_decoder_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<Call>(&bytes);
        let _ = decode::<Answer>(&bytes);
    }

    #[test]
    fn any_value_round_trips(value in "[^\u{0}]{1,200}") {
        let frame = encode(&write(&value)).unwrap();
        match decode::<Call>(body(&frame)).unwrap() {
            Call::Request(Request::SecretWrite { value: got, .. }) => {
                let got = got.into_inner();
                prop_assert_eq!(got.expose_secret(), value.as_str());
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }
}
