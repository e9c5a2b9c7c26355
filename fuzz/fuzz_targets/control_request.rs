//! The daemon's side of the control socket: whatever a client sends, the
//! frame's length is checked against the limit and the body decoded as the
//! daemon does it, without a panic; errors say where the JSON broke and
//! hold nothing of the input but a version string that passed its check. A call that
//! decodes encodes back to a frame that decodes to the same call, its
//! `Debug` never shows the value it carries, and the rules of who may do
//! what hold for it whoever asks: an admin, a member, or a stranger. The
//! CLI's side (answers from the daemon) is read from the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;
use supervisor::control::{Caller, authz};
use supervisor_config::{Config, SecretName, is_reserved_env_name};
use supervisor_fuzz::fixture;
use supervisor_protocol::{
    Answer, Call, HEADER_LEN, MAX_CALL, ProtocolError, Request, ScopeFor, TargetScope, body_len,
    decode, encode,
};
use supervisor_store::Scope;

fuzz_target!(|data: &[u8]| {
    // As a frame: a header, then the body the daemon would read.
    if let Some((header, body)) = data.split_first_chunk::<HEADER_LEN>()
        && let Ok(len) = body_len(*header, MAX_CALL)
    {
        assert!(len > 0 && len <= MAX_CALL);
        check(&body[..len.min(body.len())]);
    }
    // And as a body on its own, so that every input reaches the decoder.
    check(data);
});

fn check(body: &[u8]) {
    match decode::<Call>(body) {
        Ok(call) => {
            round_trip(&call);
            if let Call::Request(request) = &call {
                authorize(request);
            }
            hidden(call);
        }
        Err(ProtocolError::Malformed(message)) => {
            // Where the JSON broke, never what it held.
            let shape: String = message.chars().filter(|c| !c.is_ascii_digit()).collect();
            let kinds = ["not JSON", "cut short", "not a message this side knows"];
            assert!(
                kinds
                    .iter()
                    .any(|k| shape == format!("{k} at line , column ")),
                "{message}"
            );
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
        Err(_) => {}
    }
    let _ = decode::<Answer>(body);
}

/// Encoding what was decoded gives a frame that decodes and encodes to the
/// same bytes: both sides read the protocol alike.
fn round_trip(call: &Call) {
    let frame = encode(call).expect("a decoded call encodes");
    let again: Call = decode(&frame[HEADER_LEN..]).expect("an encoded call decodes");
    assert_eq!(*encode(&again).expect("encodes"), *frame);
}

/// A value carried toward the daemon never shows in `Debug` (unless the
/// name or description, which it prints, hold it too).
fn hidden(call: Call) {
    let shown = format!("{call:?}");
    let Call::Request(Request::SecretWrite {
        target,
        description,
        value,
        ..
    }) = call
    else {
        return;
    };
    let value = value.into_inner();
    let v = value.expose_secret();
    let elsewhere =
        target.name.contains(v) || description.as_deref().is_some_and(|d| d.contains(v));
    if v.len() >= 8 && !elsewhere {
        assert!(!shown.contains(v), "Debug shows the value");
    }
}

/// The callers: an admin, a member, and a Unix user who is no member.
fn callers(config: &Config) -> [Caller; 3] {
    let caller = |uid, user: &str| Caller {
        uid,
        user: user.to_owned(),
        member: config.member_by_unix_user(user).cloned(),
        via_socket: true,
    };
    [
        caller(1000, "alice"),
        caller(1001, "morgan"),
        caller(1002, "mallory"),
    ]
}

/// Whatever the request names, an admin may do everything, a member acts
/// on their own secrets and runs, and a stranger on nothing.
fn authorize(request: &Request) {
    let config = &fixture::configs()[0];
    for caller in callers(config) {
        let me = caller.member.as_ref();
        let admin = me.is_some_and(|m| m.admin);
        let allowed = match request {
            Request::SecretCheck { target, .. }
            | Request::SecretWrite { target, .. }
            | Request::SecretDelete { target } => {
                if let Ok(name) = SecretName::new(&target.name) {
                    assert_eq!(name.as_str(), target.name);
                    assert_eq!(
                        is_reserved_env_name(&target.name),
                        None,
                        "a reserved name passed"
                    );
                }
                let scope = authz::secret_scope(&caller, config, target);
                match scope.as_ref() {
                    Ok(Scope::Team) => {
                        assert!(admin, "a member who is no admin changes team secrets")
                    }
                    Ok(Scope::Personal(owner)) => {
                        let mine = me.is_some_and(|m| &m.name == owner);
                        assert!(mine || admin, "{:?} changes {owner}'s secrets", caller.user);
                        assert!(config.member(owner).is_some());
                        if let TargetScope::Personal { member: None } = target.scope {
                            assert!(mine);
                        }
                    }
                    Err(_) => {}
                }
                scope.is_ok()
            }
            Request::SecretList { all } => match authz::secret_list(&caller, config, *all) {
                Ok(authz::Visible::Everything) => {
                    assert!(admin && *all);
                    true
                }
                Ok(authz::Visible::Own(name)) => {
                    assert_eq!(Some(&name), me.map(|m| &m.name));
                    true
                }
                Err(_) => false,
            },
            Request::Scope { member, .. } => {
                let answer = authz::scope_query(&caller, config, member);
                if let Ok(whose) = &answer {
                    let own = match member {
                        ScopeFor::Caller => {
                            assert_eq!(whose.as_ref(), me.map(|m| &m.name));
                            true
                        }
                        ScopeFor::Nobody => {
                            assert_eq!(*whose, None);
                            true
                        }
                        ScopeFor::Member(m) => {
                            assert_eq!(whose.as_ref(), Some(m));
                            Some(m) == me.map(|m| &m.name)
                        }
                    };
                    assert!(
                        own || admin,
                        "{:?} sees what {member:?} receives",
                        caller.user
                    );
                }
                answer.is_ok()
            }
            Request::DryRun { .. } | Request::Run { .. } => match authz::start_run(&caller, config)
            {
                Ok(m) => {
                    assert_eq!(Some(m), me);
                    true
                }
                Err(_) => false,
            },
            Request::RunsList { .. } | Request::RunsShow { .. } | Request::RunsLogs { .. } => {
                match authz::runs(&caller, config) {
                    Ok(authz::Visible::Everything) => {
                        assert!(admin);
                        true
                    }
                    Ok(authz::Visible::Own(name)) => {
                        assert_eq!(Some(&name), me.map(|m| &m.name));
                        true
                    }
                    Err(_) => false,
                }
            }
            Request::AuditList { .. } | Request::AuditVerify => {
                let ok = authz::audit(&caller, config).is_ok();
                assert!(!ok || admin, "a member who is no admin reads the audit log");
                ok
            }
        };
        if me.is_none() {
            assert!(!allowed, "a stranger was let through");
        }
    }
}
