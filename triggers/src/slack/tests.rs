use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use sha2::Sha256;

use super::*;
use crate::testing::{config, config_with};

// The published vector from Slack's documentation.
const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
const TS: &str = "1531420618";
const NOW: i64 = 1_531_420_618;
const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

fn check(ts: &str, sig: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
    verify(SECRET, Some(ts), Some(sig), body, now)
}

#[test]
fn the_published_vector_verifies_within_the_window() {
    for now in [NOW, NOW + 300, NOW - 300] {
        assert_eq!(
            check(TS, SIG, BODY, now),
            Ok(()),
            "now = ts {:+}",
            now - NOW
        );
    }
    for now in [NOW + 301, NOW - 301] {
        assert_eq!(
            check(TS, SIG, BODY, now),
            Err(VerifyError::Stale { skew_ms: 301_000 })
        );
    }
}

#[test]
fn anything_else_is_refused() {
    let mut tampered = BODY.to_vec();
    tampered[0] ^= 1;
    assert_eq!(
        check(TS, SIG, &tampered, NOW),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        check(TS, SIG, &BODY[1..], NOW),
        Err(VerifyError::BadSignature)
    );
    // A later timestamp with the old signature: the timestamp is signed too.
    assert_eq!(
        check("1531420619", SIG, BODY, NOW),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        verify(
            b"8f742231b10e8888abcd99yyyzzz85a6",
            Some(TS),
            Some(SIG),
            BODY,
            NOW
        ),
        Err(VerifyError::BadSignature)
    );
    let malformed = Err(VerifyError::MalformedHeader(SIGNATURE_HEADER));
    assert_eq!(check(TS, &SIG.to_ascii_uppercase(), BODY, NOW), malformed);
    assert_eq!(
        check(
            TS,
            &format!("v0={}", &SIG[3..].to_ascii_uppercase()),
            BODY,
            NOW
        ),
        malformed
    );
    assert_eq!(check(TS, "", BODY, NOW), malformed);
    assert_eq!(check(TS, "v0=", BODY, NOW), malformed);
    assert_eq!(check(TS, &SIG.replace("v0=", "v1="), BODY, NOW), malformed);
    assert_eq!(check(TS, &SIG[3..], BODY, NOW), malformed);
    assert_eq!(check(TS, &SIG[..SIG.len() - 1], BODY, NOW), malformed);
    assert_eq!(check(TS, &format!("{SIG}0"), BODY, NOW), malformed);
    assert_eq!(
        check(TS, &format!("{SIG},v0={}", &SIG[3..]), BODY, NOW),
        malformed
    );
    for ts in [
        "",
        " 1531420618",
        "1531420618.0",
        "-1531420618",
        "+1531420618",
    ] {
        assert_eq!(
            check(ts, SIG, BODY, NOW),
            Err(VerifyError::MalformedHeader(TIMESTAMP_HEADER)),
            "{ts:?}"
        );
    }
    assert_eq!(
        verify(SECRET, None, Some(SIG), BODY, NOW),
        Err(VerifyError::MissingHeader(TIMESTAMP_HEADER))
    );
    assert_eq!(
        verify(SECRET, Some(TS), None, BODY, NOW),
        Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
    );
    assert_eq!(
        verify(b"", Some(TS), Some(SIG), BODY, NOW),
        Err(VerifyError::EmptySecret)
    );
    let huge = vec![b' '; MAX_BODY + 1];
    assert_eq!(
        check(TS, SIG, &huge, NOW),
        Err(VerifyError::TooLarge { limit: MAX_BODY })
    );
}

#[test]
fn a_signature_computed_over_a_json_body_verifies() {
    let body = MENTION.as_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"shh").unwrap();
    mac.update(format!("v0:{TS}:").as_bytes());
    mac.update(body);
    let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(verify(b"shh", Some(TS), Some(&sig), body, NOW), Ok(()));
}

#[test]
fn errors_never_show_the_signature_or_secret() {
    let e = check(TS, &SIG.replace('a', "b"), BODY, NOW)
        .unwrap_err()
        .to_string();
    assert!(!e.contains(&SIG[3..13]) && !e.contains("8f7422"), "{e}");
}

const URL_VERIFICATION: &str = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;

const MENTION: &str = r#"{"token":"XXYYZZ","team_id":"T123ABC456","api_app_id":"A123ABC456",
 "event":{"type":"app_mention","user":"U061F7AUR","text":"<@U0LAN0Z89> please fix the build",
   "ts":"1515449522.000016","thread_ts":"1515449000.000100","channel":"C123ABC456","event_ts":"1515449522.000016"},
 "type":"event_callback","event_id":"Ev123ABC456","event_time":1515449522,
 "authorizations":[{"enterprise_id":null,"team_id":"T123ABC456","user_id":"U0LAN0Z89","is_bot":true,"is_enterprise_install":false}],
 "is_ext_shared_channel":false,"event_context":"EC123ABC456"}"#;

fn mention() -> Mention {
    match parse(MENTION.as_bytes()).unwrap() {
        SlackRequest::AppMention(m) => *m,
        other => panic!("{other:?}"),
    }
}

/// The spec's mention with another text, user and thread.
fn mention_with(text: &str, user: &str, thread_ts: Option<&str>) -> Mention {
    Mention {
        text: text.to_owned(),
        user: Some(user.to_owned()),
        thread_ts: thread_ts.map(str::to_owned),
        ..mention()
    }
}

fn run(d: Decision) -> TriggerEvent {
    match d {
        Decision::Run(e) => e,
        other => panic!("expected a run, got {other:?}"),
    }
}

#[test]
fn parses_the_spec_payloads() {
    assert_eq!(
        parse(URL_VERIFICATION.as_bytes()),
        Ok(SlackRequest::UrlVerification {
            challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into()
        })
    );
    assert_eq!(
        mention(),
        Mention {
            event_id: "Ev123ABC456".into(),
            team_id: "T123ABC456".into(),
            user: Some("U061F7AUR".into()),
            text: "<@U0LAN0Z89> please fix the build".into(),
            channel: "C123ABC456".into(),
            ts: "1515449522.000016".into(),
            thread_ts: Some("1515449000.000100".into()),
            bot_id: None,
            subtype: None,
            our_bot_user: Some("U0LAN0Z89".into()),
        }
    );
}

#[test]
fn other_events_are_acknowledged_without_reading_them() {
    let reaction = r#"{"type":"event_callback","event_id":"Ev1","team_id":"T1",
        "event":{"type":"reaction_added","user":{"odd":"shape"},"item":{"type":"message"}}}"#;
    assert_eq!(parse(reaction.as_bytes()), Ok(SlackRequest::Other));
    let limited = r#"{"type":"app_rate_limited","team_id":"T1","minute_rate_limited":1518467820}"#;
    assert_eq!(parse(limited.as_bytes()), Ok(SlackRequest::Other));
}

#[test]
fn malformed_bodies_are_errors() {
    for body in [
        "",
        "{",
        "null",
        "[]",
        r#"{"type":1}"#,
        r#"{"challenge":"x"}"#,
        r#"{"type":"url_verification"}"#,
        r#"{"type":"event_callback"}"#,
        r#"{"type":"event_callback","event_id":"E","team_id":"T","event":{"type":"app_mention","ts":"1"}}"#,
        r#"{"type":"event_callback","event_id":"E","team_id":"T","event":{"type":"app_mention","channel":"C","ts":1.5}}"#,
        r#"{"type":"event_callback","team_id":"T","event":{"type":"app_mention","channel":"C","ts":"1"}}"#,
        // Two values for one field are refused rather than guessed at.
        r#"{"type":"event_callback","event_id":"E","team_id":"T","event":{"type":"app_mention","channel":"C","ts":"1","user":"U1","user":"U2"}}"#,
    ] {
        assert!(parse(body.as_bytes()).is_err(), "{body}");
    }
    assert_eq!(
        parse(br#"{"type":"url_verification"}"#),
        Err(ParseError::Missing("challenge"))
    );
}

#[test]
fn deep_nesting_is_bounded() {
    // Ignored fields are skipped without recursion, however deep.
    let deep = "[".repeat(200_000) + &"]".repeat(200_000);
    let body = format!(
        r#"{{"type":"event_callback","event_id":"E","team_id":"T","x":{deep},"event":{{"type":"app_mention","channel":"C","ts":"1","user":"U1","y":{deep}}}}}"#
    );
    assert!(body.len() < MAX_BODY);
    assert!(matches!(
        parse(body.as_bytes()),
        Ok(SlackRequest::AppMention(_))
    ));
    // Unclosed nesting where a value is read: an error, not a crash.
    let open = "[".repeat(MAX_BODY - 20);
    assert!(parse(format!(r#"{{"type":{open}"#).as_bytes()).is_err());
    assert!(parse(open.as_bytes()).is_err());
}

#[test]
fn bots_never_start_runs() {
    let c = config();
    let mut m = mention();
    m.bot_id = Some("B123".into());
    assert_eq!(route(&m, &c, None), Decision::Ignore("message from a bot"));
    let mut m = mention();
    m.subtype = Some("bot_message".into());
    assert_eq!(route(&m, &c, None), Decision::Ignore("message from a bot"));
    // Our own bot, known from the event's authorizations.
    let m = mention_with("<@U0LAN0Z89> triage loop", "U0LAN0Z89", None);
    assert_eq!(
        route(&m, &c, None),
        Decision::Ignore("message from our own bot")
    );
    // ... or from the config when the event carries none.
    let c = config_with(
        "default_agent = \"triage\"",
        "default_agent = \"triage\"\nbot_user = \"UBOT\"",
    );
    let mut m = mention_with("<@UBOT> hi", "UBOT", None);
    m.our_bot_user = None;
    assert_eq!(
        route(&m, &c, None),
        Decision::Ignore("message from our own bot")
    );
    let mut m = mention();
    m.user = None;
    assert_eq!(
        route(&m, &c, None),
        Decision::Ignore("message without a user")
    );
}

#[test]
fn a_member_mention_runs_the_default_agent_in_the_thread() {
    let e = run(route(&mention(), &config(), None));
    assert_eq!(
        e,
        TriggerEvent {
            kind: TriggerKind::Slack,
            agent: "triage".into(),
            initiator: Some("alice".into()),
            prompt: Some("please fix the build".into()),
            source: serde_json::json!({"slack": {
                "channel": "C123ABC456",
                "thread_ts": "1515449000.000100",
                "ts": "1515449522.000016",
                "user": "U061F7AUR",
                "text": "please fix the build",
            }}),
            reply_to: Some(ReplyTarget::Slack {
                channel: "C123ABC456".into(),
                thread_ts: "1515449000.000100".into()
            }),
            delivery: None,
        }
    );
    // Outside a thread, the reply starts one under the message.
    let e = run(route(
        &mention_with("<@U0LAN0Z89> hi", "U061F7AUR", None),
        &config(),
        None,
    ));
    assert_eq!(
        e.reply_to,
        Some(ReplyTarget::Slack {
            channel: "C123ABC456".into(),
            thread_ts: "1515449522.000016".into()
        })
    );
    assert_eq!(e.source["slack"]["thread_ts"], "1515449522.000016");
}

#[test]
fn the_first_word_can_name_the_agent() {
    let c = config();
    let m = mention_with(
        "<@U0LAN0Z89> deploy-helper ship v2 &amp; tell &lt;#ops&gt;",
        "U061F7AUR",
        None,
    );
    let e = run(route(&m, &c, None));
    assert_eq!(e.agent, "deploy-helper");
    assert_eq!(e.prompt.as_deref(), Some("ship v2 & tell <#ops>"));
    // The run context keeps the whole message, less the mention.
    assert_eq!(
        e.source["slack"]["text"],
        "deploy-helper ship v2 & tell <#ops>"
    );
    let e = run(route(
        &mention_with("<@U0LAN0Z89|agent>  deploy-helper: go", "U061F7AUR", None),
        &c,
        None,
    ));
    assert_eq!(
        (e.agent.as_str(), e.prompt.as_deref()),
        ("deploy-helper", Some("go"))
    );
    let e = run(route(
        &mention_with("<@U0LAN0Z89> deploy-helper", "U061F7AUR", None),
        &c,
        None,
    ));
    assert_eq!((e.agent.as_str(), e.prompt), ("deploy-helper", None));
    // An agent that does not take Slack requests is not chosen by name.
    let e = run(route(
        &mention_with("<@U0LAN0Z89> fixer now", "U061F7AUR", None),
        &c,
        None,
    ));
    assert_eq!(
        (e.agent.as_str(), e.prompt.as_deref()),
        ("triage", Some("fixer now"))
    );
    // A leading mention of someone else is kept.
    let e = run(route(
        &mention_with("<@UOTHER> ask <@U0LAN0Z89>", "U061F7AUR", None),
        &c,
        None,
    ));
    assert_eq!(e.prompt.as_deref(), Some("<@UOTHER> ask <@U0LAN0Z89>"));
}

#[test]
fn the_channel_route_comes_before_the_default() {
    let mut m = mention();
    m.channel = "C0123DEPLOY".into();
    let e = run(route(&m, &config(), None));
    assert_eq!(e.agent, "deploy-helper");
    assert_eq!(e.prompt.as_deref(), Some("please fix the build"));
    // Naming an agent still wins over the route.
    m.text = "<@U0LAN0Z89> triage this".into();
    assert_eq!(run(route(&m, &config(), None)).agent, "triage");
}

#[test]
fn without_an_agent_the_reply_lists_the_choices() {
    let c = config_with("default_agent = \"triage\"\n", "");
    match route(&mention(), &c, None) {
        Decision::Reply(text) => {
            assert!(text.contains("`triage`, `deploy-helper`"), "{text}");
            assert!(
                !text.contains("fixer") && !text.contains("local-only"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_users_are_refused_or_run_without_user() {
    let m = mention_with("<@U0LAN0Z89> hi", "USTRANGER", None);
    match route(&m, &config(), None) {
        Decision::Reply(text) => assert!(text.contains("not a member of acme"), "{text}"),
        other => panic!("{other:?}"),
    }
    let c = config_with(
        "default_agent = \"triage\"",
        "default_agent = \"triage\"\nunknown_users = \"team-only\"",
    );
    let e = run(route(&m, &c, None));
    assert_eq!((e.initiator, e.agent.as_str()), (None, "triage"));
    assert_eq!(e.source["slack"]["user"], "USTRANGER");
}

#[test]
fn an_email_the_caller_looked_up_maps_to_a_member() {
    let m = mention_with("<@U0LAN0Z89> hi", "UMORGAN", None);
    let e = run(route(&m, &config(), Some("MORGAN@example.com")));
    assert_eq!(e.initiator.as_deref(), Some("morgan"));
    // Carol is bound to UCAROL: her email from another account is not enough.
    let m = mention_with("<@U0LAN0Z89> hi", "UIMPOSTOR", None);
    assert!(matches!(
        route(&m, &config(), Some("carol@acme.example")),
        Decision::Reply(_)
    ));
}

#[test]
fn unescape_handles_only_slacks_three_entities() {
    assert_eq!(
        unescape("a &amp;lt; b &gt; c &lt; &quot; &"),
        "a &lt; b > c < &quot; &"
    );
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
    fn parse_never_panics(body in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = parse(&body);
    }

    #[test]
    fn parse_and_route_never_panic_on_mention_shaped_input(
        text in ".{0,64}",
        user in proptest::option::of("[A-Z0-9<@>|]{0,12}"),
        channel in ".{0,12}",
    ) {
        let body = serde_json::json!({
            "type": "event_callback", "event_id": "E", "team_id": "T",
            "event": {"type": "app_mention", "user": user, "text": text, "channel": channel, "ts": "1"},
        });
        if let Ok(SlackRequest::AppMention(m)) = parse(body.to_string().as_bytes()) {
            let _ = route(&m, &config(), None);
        }
    }
}

#[test]
fn an_email_identifies_only_a_user_of_the_event_s_own_workspace() {
    let email = Some("alice@acme.example");
    assert_eq!(identity_email("T1", Some("T1"), email), email);
    // A Slack Connect guest from another workspace, or one whose workspace
    // is unknown, is not matched by the email they show.
    assert_eq!(identity_email("T1", Some("T9"), email), None);
    assert_eq!(identity_email("T1", None, email), None);
    assert_eq!(identity_email("", Some(""), email), None);
    assert_eq!(identity_email("T1", Some("T1"), None), None);
}
