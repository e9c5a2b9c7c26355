use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use sha2::Sha256;

use super::*;
use crate::testing::{config, config_with};

const VECTOR_SECRET: &[u8] = b"lin_wh_test_secret";
const VECTOR_BODY: &[u8] =
    br#"{"action":"create","type":"Comment","webhookTimestamp":1700000000000}"#;
const VECTOR_SIG: &str = "4c28d51e1f2541913b729e3cc180e37479c2058c4bbda5f19a149952450e44d7";

const ISSUE_UPDATE: &str = r#"{"action":"update","type":"Issue","createdAt":"2026-03-02T10:15:30.123Z",
 "actor":{"id":"u-ada","name":"Ada","email":"ada@example.com","url":"https://linear.app/acme/profiles/ada","type":"user"},
 "data":{"id":"6a17c5cc-0000-4000-8000-000000000001","identifier":"ENG-123","number":123,
   "title":"Fix flaky login test","description":"Fails one run in ten.",
   "teamId":"t-eng","team":{"id":"t-eng","key":"ENG","name":"Engineering"},
   "state":{"id":"s-todo","name":"Todo","type":"unstarted"},
   "assigneeId":"u-agent","assignee":{"id":"u-agent","name":"agent"},
   "labelIds":["l-bug","l-agent"],"labels":[{"id":"l-agent","name":"agent"}],
   "updatedAt":"2026-03-02T10:15:30.100Z","url":"https://linear.app/acme/issue/ENG-123/fix-flaky-login-test"},
 "updatedFrom":{"assigneeId":null,"labelIds":["l-bug"],"updatedAt":"2026-03-01T09:00:00.000Z"},
 "url":"https://linear.app/acme/issue/ENG-123/fix-flaky-login-test",
 "organizationId":"c8986123-0000-4000-8000-000000000002","webhookId":"wh-1","webhookTimestamp":1772446530456}"#;

const COMMENT_CREATE: &str = r#"{"action":"create","type":"Comment","createdAt":"2023-06-19T23:49:08.407Z",
 "actor":{"id":"u-morgan","name":"Morgan","email":"morgan@example.com","type":"user"},
 "data":{"id":"66b59ec2-0000-4000-8000-000000000003","body":"@agent please take this",
   "issueId":"6a17c5cc-0000-4000-8000-000000000001",
   "issue":{"id":"6a17c5cc-0000-4000-8000-000000000001","identifier":"LIN-28","title":"Save comments!"},
   "userId":"u-morgan","parentId":null,"botActor":null},
 "url":"https://linear.app/acme/issue/LIN-28#comment-66b59ec2",
 "organizationId":"c8986123-0000-4000-8000-000000000002","webhookId":"wh-1","webhookTimestamp":1687218548502}"#;

/// Parses `text` after replacing `from` (which must occur) with `to`.
fn hook(text: &str, from: &str, to: &str) -> LinearWebhook {
    assert!(text.contains(from), "{from}");
    parse(text.replacen(from, to, 1).as_bytes()).unwrap()
}

fn issue_update() -> LinearWebhook {
    hook(ISSUE_UPDATE, "", "")
}

fn comment() -> LinearWebhook {
    hook(COMMENT_CREATE, "", "")
}

fn run(d: Decision) -> TriggerEvent {
    match d {
        Decision::Run(e) => e,
        other => panic!("expected a run, got {other:?}"),
    }
}

#[test]
fn the_self_computed_vector_verifies() {
    assert_eq!(verify(VECTOR_SECRET, Some(VECTOR_SIG), VECTOR_BODY), Ok(()));
    // And our HMAC agrees with one computed here independently.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"other").unwrap();
    mac.update(ISSUE_UPDATE.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    assert_eq!(
        verify(b"other", Some(&sig), ISSUE_UPDATE.as_bytes()),
        Ok(())
    );
}

#[test]
fn anything_else_is_refused() {
    let bad = Err(VerifyError::BadSignature);
    let malformed = Err(VerifyError::MalformedHeader(SIGNATURE_HEADER));
    let mut tampered = VECTOR_BODY.to_vec();
    *tampered.last_mut().unwrap() = b' ';
    assert_eq!(verify(VECTOR_SECRET, Some(VECTOR_SIG), &tampered), bad);
    let later = br#"{"action":"create","type":"Comment","webhookTimestamp":1700000060000}"#;
    assert_eq!(verify(VECTOR_SECRET, Some(VECTOR_SIG), later), bad);
    assert_eq!(
        verify(b"lin_wh_test_secreT", Some(VECTOR_SIG), VECTOR_BODY),
        bad
    );
    assert_eq!(
        verify(
            VECTOR_SECRET,
            Some(&VECTOR_SIG.to_ascii_uppercase()),
            VECTOR_BODY
        ),
        malformed
    );
    for sig in [
        "",
        "sha256=",
        &format!("sha256={VECTOR_SIG}"),
        &format!("v0={VECTOR_SIG}"),
        &VECTOR_SIG[1..],
    ] {
        assert_eq!(
            verify(VECTOR_SECRET, Some(sig), VECTOR_BODY),
            malformed,
            "{sig}"
        );
    }
    assert_eq!(
        verify(VECTOR_SECRET, None, VECTOR_BODY),
        Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
    );
    assert_eq!(
        verify(b"", Some(VECTOR_SIG), VECTOR_BODY),
        Err(VerifyError::EmptySecret)
    );
    let huge = vec![b' '; MAX_BODY + 1];
    assert_eq!(
        verify(VECTOR_SECRET, Some(VECTOR_SIG), &huge),
        Err(VerifyError::TooLarge { limit: MAX_BODY })
    );
}

#[test]
fn freshness_window_edges() {
    let t = 1_700_000_000_000;
    for now in [t, t + 60_000, t - 60_000] {
        assert_eq!(check_fresh(t, now), Ok(()));
    }
    for now in [t + 60_001, t - 60_001] {
        assert_eq!(
            check_fresh(t, now),
            Err(VerifyError::Stale { skew_ms: 60_001 })
        );
    }
    assert!(check_fresh(i64::MIN, i64::MAX).is_err());
}

#[test]
fn parses_the_spec_issue_update() {
    let w = issue_update();
    assert_eq!((w.action.as_str(), w.kind.as_str()), ("update", "Issue"));
    assert_eq!(w.webhook_timestamp, 1_772_446_530_456);
    assert_eq!(
        w.actor,
        Some(Actor {
            kind: ActorKind::User,
            id: Some("u-ada".into()),
            name: Some("Ada".into()),
            email: Some("ada@example.com".into()),
        })
    );
    assert_eq!(
        w.data,
        Data::Issue(Box::new(Issue {
            id: "6a17c5cc-0000-4000-8000-000000000001".into(),
            identifier: "ENG-123".into(),
            title: "Fix flaky login test".into(),
            description: Some("Fails one run in ten.".into()),
            team_key: Some("ENG".into()),
            assignee_id: Some("u-agent".into()),
            labels: vec![Label {
                id: "l-agent".into(),
                name: "agent".into()
            }],
            label_ids: vec!["l-bug".into(), "l-agent".into()],
        }))
    );
    assert_eq!(
        w.updated_from,
        Some(UpdatedFrom {
            assignee_changed: true,
            label_ids: Some(vec!["l-bug".into()])
        })
    );
    let w = hook(ISSUE_UPDATE, r#""assigneeId":null,"#, "");
    assert!(!w.updated_from.unwrap().assignee_changed);
}

#[test]
fn parses_the_spec_comment() {
    let w = comment();
    assert_eq!(
        w.data,
        Data::Comment(Box::new(Comment {
            id: "66b59ec2-0000-4000-8000-000000000003".into(),
            body: "@agent please take this".into(),
            issue_id: "6a17c5cc-0000-4000-8000-000000000001".into(),
            issue: Some(IssueRef {
                id: "6a17c5cc-0000-4000-8000-000000000001".into(),
                identifier: Some("LIN-28".into()),
                title: Some("Save comments!".into()),
            }),
            user_id: Some("u-morgan".into()),
            bot_actor: false,
        }))
    );
    assert_eq!(w.updated_from, None);
    let w = parse(VECTOR_BODY).map(|_| ());
    assert!(w.is_err(), "a Comment without data is malformed");
}

#[test]
fn actor_types_are_compared_case_insensitively() {
    let kind = |t: &str| {
        hook(
            ISSUE_UPDATE,
            r#""type":"user""#,
            &format!(r#""type":"{t}""#),
        )
        .actor
        .unwrap()
        .kind
    };
    assert_eq!(kind("User"), ActorKind::User);
    assert_eq!(kind("USER"), ActorKind::User);
    assert_eq!(kind("integration"), ActorKind::Integration);
    assert_eq!(kind("oauth_client"), ActorKind::OauthClient);
    assert_eq!(kind("app"), ActorKind::Other("app".into()));
    let w = hook(ISSUE_UPDATE, r#""actor":{"#, r#""actor":null,"old":{"#);
    assert_eq!(w.actor, None);
}

#[test]
fn malformed_bodies_are_errors() {
    for body in [
        "",
        "{}",
        r#"{"action":"update","type":"Issue","data":{}}"#,
        r#"{"action":"update","type":"Issue","webhookTimestamp":"1","data":{}}"#,
        r#"{"action":"update","type":"Issue","webhookTimestamp":1.5,"data":{}}"#,
        r#"{"action":"update","type":"Issue","webhookTimestamp":1,"data":{"id":"i"}}"#,
        r#"{"action":"create","type":"Comment","webhookTimestamp":1,"data":{"id":"c","body":7,"issueId":"i"}}"#,
        r#"{"action":"update","type":"Issue","webhookTimestamp":1,"data":{"id":"i","identifier":"E-1","title":"t","labelIds":[1]}}"#,
    ] {
        assert!(parse(body.as_bytes()).is_err(), "{body}");
    }
    let other =
        r#"{"action":"create","type":"Reaction","webhookTimestamp":1,"data":{"emoji":{"x":[1]}}}"#;
    assert_eq!(parse(other.as_bytes()).unwrap().data, Data::Other);
}

#[test]
fn deep_nesting_is_bounded() {
    let deep = "[".repeat(200_000) + &"]".repeat(200_000);
    // Skipped fields: no recursion, however deep.
    let w = hook(
        COMMENT_CREATE,
        r#""parentId":null"#,
        &format!(r#""parentId":{deep}"#),
    );
    assert!(matches!(w.data, Data::Comment(_)));
    // A read field that is built as a tree: serde_json's depth limit holds.
    let nested = "[".repeat(100) + &"]".repeat(100);
    let w = hook(
        COMMENT_CREATE,
        r#""botActor":null"#,
        &format!(r#""botActor":{nested}"#),
    );
    assert!(matches!(w.data, Data::Comment(c) if c.bot_actor));
    let body = COMMENT_CREATE.replacen(r#""botActor":null"#, &format!(r#""botActor":{deep}"#), 1);
    match parse(body.as_bytes()) {
        Err(ParseError::Json { kind: "syntax", .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn assignment_by_a_person_runs_as_that_person() {
    // The spec's update also adds the `agent` label; the first rule wins.
    let c = config_with("name = \"alice\"\n", "name = \"ada\"\n");
    let e = run(route(&issue_update(), &c));
    assert_eq!(
        e,
        TriggerEvent {
            kind: TriggerKind::Linear,
            agent: "fixer".into(),
            initiator: Some("ada".into()),
            prompt: Some("Fix flaky login test\n\nFails one run in ten.".into()),
            source: serde_json::json!({"linear": {
                "event": "issue.assigned",
                "issue_id": "6a17c5cc-0000-4000-8000-000000000001",
                "identifier": "ENG-123",
                "title": "Fix flaky login test",
                "description": "Fails one run in ten.",
                "comment": null,
                "url": "https://linear.app/acme/issue/ENG-123/fix-flaky-login-test",
            }}),
            reply_to: Some(ReplyTarget::Linear {
                issue_id: "6a17c5cc-0000-4000-8000-000000000001".into()
            }),
            delivery: None,
        }
    );
}

#[test]
fn assignment_by_an_integration_is_user_less() {
    for actor in [
        r#""actor":{"id":"int-1","service":"github","type":"integration"}"#,
        r#""actor":{"id":"app-1","name":"Zap","type":"oauth_client"}"#,
        r#""actor":{"id":"x","type":"app"}"#,
        r#""actor":{"id":"x"}"#,
        r#""actor":null"#,
        // Our own bot user is automation too, though Linear calls it a user.
        r#""actor":{"id":"u-agent","type":"user"}"#,
    ] {
        let w = hook(
            ISSUE_UPDATE,
            r#""actor":{"id":"u-ada","name":"Ada","email":"ada@example.com","url":"https://linear.app/acme/profiles/ada","type":"user"}"#,
            actor,
        );
        let e = run(route(&w, &config()));
        assert_eq!((e.initiator, e.agent.as_str()), (None, "fixer"), "{actor}");
    }
}

#[test]
fn people_map_by_linear_id_then_email() {
    // u-ada is alice's Linear id, whatever email Linear shows.
    let e = run(route(&issue_update(), &config()));
    assert_eq!(e.initiator.as_deref(), Some("alice"));
    // Morgan has no Linear id: matched by email, case-insensitively.
    let e = run(route(&comment(), &config()));
    assert_eq!(e.initiator.as_deref(), Some("morgan"));
    // An unknown person is refused with a reply on the issue ...
    let w = hook(COMMENT_CREATE, "morgan@example.com", "stranger@example.com");
    match route(&w, &config()) {
        Decision::Reply(text) => {
            assert!(
                text.contains("not a member of acme") && text.contains("u-morgan"),
                "{text}"
            )
        }
        other => panic!("{other:?}"),
    }
    // ... or runs user-less when the config says so.
    let c = config_with(
        "bot_user = \"u-agent\"",
        "bot_user = \"u-agent\"\nunknown_users = \"team-only\"",
    );
    assert_eq!(run(route(&w, &c)).initiator, None);
    // Carol is bound to u-carol: another Linear account with her email is not her.
    let w = hook(COMMENT_CREATE, "morgan@example.com", "carol@acme.example");
    assert!(matches!(route(&w, &config()), Decision::Reply(_)));
}

#[test]
fn assignment_fires_only_when_the_assignee_changed_to_the_rule_s() {
    let c = config_with("label = \"agent\"", "label = \"other\"");
    assert!(matches!(route(&issue_update(), &c), Decision::Run(_)));
    // Assignee unchanged (another field changed).
    let w = hook(
        ISSUE_UPDATE,
        r#""assigneeId":null,"labelIds":["l-bug"],"#,
        "",
    );
    assert_eq!(route(&w, &c), Decision::Ignore("no rule matches"));
    // Assigned to someone else.
    let w = hook(
        ISSUE_UPDATE,
        r#""assigneeId":"u-agent","#,
        r#""assigneeId":"u-bob","#,
    );
    assert_eq!(route(&w, &c), Decision::Ignore("no rule matches"));
    // Not an update.
    let w = hook(ISSUE_UPDATE, r#""action":"update""#, r#""action":"create""#);
    assert_eq!(route(&w, &c), Decision::Ignore("no rule matches"));
}

/// The config with the assignment rule out of the way, so the label rule
/// (for `label`) is the first that can match the spec's update.
fn label_config(label: &str) -> supervisor_config::Config {
    let mut c = config_with("assignee = \"u-agent\"", "assignee = \"u-nobody\"");
    for r in &mut c.linear.as_mut().unwrap().rules {
        if let LinearOn::IssueLabeled { label: l } = &mut r.on {
            *l = label.to_owned();
        }
    }
    c
}

#[test]
fn a_label_fires_when_it_was_just_added() {
    for label in ["agent", "AGENT", "l-agent"] {
        let e = run(route(&issue_update(), &label_config(label)));
        assert_eq!(
            (e.agent.as_str(), e.initiator.as_deref()),
            ("triage", Some("alice")),
            "{label}"
        );
        assert_eq!(e.source["linear"]["event"], "issue.labeled");
    }
    // Already there before: no fire.
    let w = hook(
        ISSUE_UPDATE,
        r#""labelIds":["l-bug"],"updatedAt""#,
        r#""labelIds":["l-bug","l-agent"],"updatedAt""#,
    );
    assert_eq!(
        route(&w, &label_config("agent")),
        Decision::Ignore("no rule matches")
    );
    // Labels did not change in this update.
    let w = hook(
        ISSUE_UPDATE,
        r#""labelIds":["l-bug"],"updatedAt""#,
        r#""updatedAt""#,
    );
    assert_eq!(
        route(&w, &label_config("agent")),
        Decision::Ignore("no rule matches")
    );
    // A label known only by id matches by id; its name cannot be known.
    let c = label_config("l-bug");
    let w = hook(
        ISSUE_UPDATE,
        r#""labelIds":["l-bug"],"updatedAt""#,
        r#""labelIds":[],"updatedAt""#,
    );
    assert!(matches!(route(&w, &c), Decision::Run(_)));
    assert_eq!(
        route(&w, &label_config("bug")),
        Decision::Ignore("no rule matches")
    );
}

#[test]
fn the_team_filter_uses_the_key_or_the_identifier() {
    let w = hook(ISSUE_UPDATE, r#""key":"ENG""#, r#""key":"OPS""#);
    assert_eq!(
        route(&w, &label_config("agent")),
        Decision::Ignore("no rule matches")
    );
    let w = hook(
        ISSUE_UPDATE,
        r#""team":{"id":"t-eng","key":"ENG","name":"Engineering"},"#,
        "",
    );
    assert!(matches!(
        route(&w, &label_config("agent")),
        Decision::Run(_)
    ));
    let w = hook(
        &ISSUE_UPDATE.replacen(
            r#""team":{"id":"t-eng","key":"ENG","name":"Engineering"},"#,
            "",
            1,
        ),
        "ENG-123\",\"number",
        "OPS-123\",\"number",
    );
    assert_eq!(
        route(&w, &label_config("agent")),
        Decision::Ignore("no rule matches")
    );

    // Comments: the issue's identifier prefix.
    let c = config_with(
        "contains = \"@agent\"",
        "contains = \"@agent\"\nteam = \"lin\"",
    );
    assert!(matches!(route(&comment(), &c), Decision::Run(_)));
    let c = config_with(
        "contains = \"@agent\"",
        "contains = \"@agent\"\nteam = \"ENG\"",
    );
    assert_eq!(route(&comment(), &c), Decision::Ignore("no rule matches"));
}

#[test]
fn a_comment_starts_a_run_with_its_body_as_prompt() {
    let e = run(route(&comment(), &config()));
    assert_eq!(e.agent, "fixer");
    assert_eq!(e.prompt.as_deref(), Some("@agent please take this"));
    assert_eq!(
        e.source["linear"],
        serde_json::json!({
            "event": "comment.created",
            "issue_id": "6a17c5cc-0000-4000-8000-000000000001",
            "identifier": "LIN-28",
            "title": "Save comments!",
            "description": null,
            "comment": "@agent please take this",
            "url": "https://linear.app/acme/issue/LIN-28#comment-66b59ec2",
        })
    );
    assert_eq!(
        e.reply_to,
        Some(ReplyTarget::Linear {
            issue_id: "6a17c5cc-0000-4000-8000-000000000001".into()
        })
    );
    let w = hook(COMMENT_CREATE, "@agent please", "@Agent please");
    assert!(matches!(route(&w, &config()), Decision::Run(_)));
}

#[test]
fn comments_that_cannot_start_runs() {
    let none = Decision::Ignore("no rule matches");
    // Written by our own bot user.
    let w = hook(
        COMMENT_CREATE,
        r#""userId":"u-morgan""#,
        r#""userId":"u-agent""#,
    );
    assert_eq!(route(&w, &config()), none);
    // Written by an app.
    for bot in [
        r#"{"id":"app","type":"oauthClient","name":"Bot"}"#,
        r#""Bot""#,
        "true",
    ] {
        let w = hook(
            COMMENT_CREATE,
            r#""botActor":null"#,
            &format!(r#""botActor":{bot}"#),
        );
        assert_eq!(route(&w, &config()), none, "{bot}");
    }
    let w = hook(COMMENT_CREATE, r#""botActor":null"#, r#""botActor":{}"#);
    assert!(matches!(route(&w, &config()), Decision::Run(_)));
    // Without the text, edited rather than created, or not configured.
    let w = hook(COMMENT_CREATE, "@agent please", "please");
    assert_eq!(route(&w, &config()), none);
    let w = hook(
        COMMENT_CREATE,
        r#""action":"create""#,
        r#""action":"update""#,
    );
    assert_eq!(route(&w, &config()), none);
    let mut c = config();
    c.linear = None;
    assert_eq!(
        route(&comment(), &c),
        Decision::Ignore("linear is not configured")
    );
    let w = hook(
        COMMENT_CREATE,
        r#""type":"Comment""#,
        r#""type":"Reaction""#,
    );
    assert_eq!(route(&w, &config()), none);
}

proptest! {
    #[test]
    fn verify_never_panics(
        sig in proptest::option::of(".{0,80}"),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        ts in any::<i64>(),
        now in any::<i64>(),
    ) {
        let _ = verify(VECTOR_SECRET, sig.as_deref(), &body);
        let _ = check_fresh(ts, now);
    }

    #[test]
    fn parse_never_panics(body in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = parse(&body);
    }

    #[test]
    fn parse_and_route_never_panic_on_shaped_input(
        kind in "Issue|Comment|Other",
        action in "create|update|remove",
        actor_type in proptest::option::of("user|User|integration|app"),
        text in ".{0,40}",
        label in "[a-z-]{0,8}",
        identifier in ".{0,8}",
    ) {
        let body = serde_json::json!({
            "action": action, "type": kind, "webhookTimestamp": 1,
            "actor": {"id": "u-ada", "type": actor_type},
            "data": {
                "id": "i", "identifier": identifier, "title": text, "body": text, "issueId": "i",
                "labels": [{"id": label, "name": label}], "labelIds": [label],
                "issue": {"id": "i", "identifier": identifier},
            },
            "updatedFrom": {"assigneeId": null, "labelIds": []},
        });
        if let Ok(w) = parse(body.to_string().as_bytes()) {
            let _ = route(&w, &config());
        }
    }
}
