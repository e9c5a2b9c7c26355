//! Every clause of the scope rule, and properties over random teams.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use supervisor_config::{Agent, SecretName, TriggerKind};
use supervisor_store::{Scope, SecretMeta};

use super::*;

fn name(n: &str) -> SecretName {
    SecretName::new(n).unwrap()
}

fn meta(scope: Scope, n: &str, version: i64) -> SecretMeta {
    let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    SecretMeta {
        name: name(n),
        owner: scope.owner().map(str::to_owned),
        scope,
        description: None,
        version,
        created_at: t,
        created_by: "x".into(),
        updated_at: t,
        updated_by: "x".into(),
        leak: None,
    }
}

fn agent(triggers: &[TriggerKind]) -> Agent {
    Agent {
        name: "a".into(),
        description: None,
        command: vec!["/bin/true".into()],
        working_dir: None,
        timeout: Duration::from_secs(60),
        kill_grace: Duration::from_secs(1),
        triggers: triggers.to_vec(),
        secrets: None,
        required_secrets: vec![],
        env: BTreeMap::from([("PATH".to_owned(), "/bin".to_owned())]),
        user: None,
        group: None,
        max_concurrent: None,
        log_limit: 1 << 20,
        policy: Default::default(),
        on_leak: Default::default(),
    }
}

fn personal(m: &str) -> Scope {
    Scope::Personal(m.into())
}

fn team_fixture() -> Vec<SecretMeta> {
    vec![
        meta(Scope::Team, "TEAM_TOKEN", 3),
        meta(Scope::Team, "SHARED", 1),
        meta(personal("alice"), "ALICE_TOKEN", 1),
        meta(personal("alice"), "SHARED", 2),
        meta(personal("bob"), "BOB_TOKEN", 5),
    ]
}

fn names(i: &Injection) -> Vec<(&str, Option<&str>)> {
    i.secrets
        .iter()
        .map(|s| (s.name.as_str(), s.owner.as_deref()))
        .collect()
}

const ALL: &[TriggerKind] = &TriggerKind::ALL;

#[test]
fn a_member_gets_team_and_own_personal_secrets() {
    let i = resolve(
        &team_fixture(),
        &agent(ALL),
        &TriggerContext {
            kind: TriggerKind::Cli,
            initiator: Some("alice"),
        },
    )
    .unwrap();
    assert_eq!(
        names(&i),
        [
            ("ALICE_TOKEN", Some("alice")),
            ("SHARED", Some("alice")),
            ("TEAM_TOKEN", None)
        ]
    );
    let shared = i
        .secrets
        .iter()
        .find(|s| s.name.as_str() == "SHARED")
        .unwrap();
    assert_eq!((shared.version, shared.shadows), (2, Some(1)));
}

#[test]
fn another_member_never_gets_them() {
    for kind in [TriggerKind::Cli, TriggerKind::Slack, TriggerKind::Linear] {
        let i = resolve(
            &team_fixture(),
            &agent(ALL),
            &TriggerContext {
                kind,
                initiator: Some("bob"),
            },
        )
        .unwrap();
        assert_eq!(
            names(&i),
            [
                ("BOB_TOKEN", Some("bob")),
                ("SHARED", None),
                ("TEAM_TOKEN", None)
            ]
        );
    }
}

#[test]
fn runs_without_a_user_get_team_secrets_only() {
    for (kind, initiator) in [
        (TriggerKind::Cron, None),
        (TriggerKind::Webhook, None),
        (TriggerKind::Slack, None),
        (TriggerKind::Linear, None),
        // An automated trigger never carries personal secrets, even if a caller names someone.
        (TriggerKind::Cron, Some("alice")),
        (TriggerKind::Webhook, Some("bob")),
    ] {
        let i = resolve(
            &team_fixture(),
            &agent(ALL),
            &TriggerContext { kind, initiator },
        )
        .unwrap();
        assert_eq!(
            names(&i),
            [("SHARED", None), ("TEAM_TOKEN", None)],
            "{kind} {initiator:?}"
        );
    }
}

#[test]
fn the_allow_list_narrows_and_reports_what_is_missing() {
    let mut a = agent(ALL);
    a.secrets = Some(vec![name("TEAM_TOKEN"), name("ALICE_TOKEN")]);
    let bob = resolve(
        &team_fixture(),
        &a,
        &TriggerContext {
            kind: TriggerKind::Cli,
            initiator: Some("bob"),
        },
    )
    .unwrap();
    assert_eq!(names(&bob), [("TEAM_TOKEN", None)]);
    assert_eq!(bob.missing, [name("ALICE_TOKEN")]);
    let alice = resolve(
        &team_fixture(),
        &a,
        &TriggerContext {
            kind: TriggerKind::Cli,
            initiator: Some("alice"),
        },
    )
    .unwrap();
    assert_eq!(
        names(&alice),
        [("ALICE_TOKEN", Some("alice")), ("TEAM_TOKEN", None)]
    );
    assert!(alice.missing.is_empty());
}

#[test]
fn a_missing_required_secret_refuses_the_run_naming_the_scope_it_needs() {
    let mut a = agent(ALL);
    a.required_secrets = vec![name("ALICE_TOKEN")];
    let err = resolve(
        &team_fixture(),
        &a,
        &TriggerContext {
            kind: TriggerKind::Cron,
            initiator: None,
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ALICE_TOKEN") && msg.contains("team secret") && msg.contains("cron"),
        "{msg}"
    );
    let err = resolve(
        &team_fixture(),
        &a,
        &TriggerContext {
            kind: TriggerKind::Cli,
            initiator: Some("bob"),
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("personal secret of `bob`"),
        "{err}"
    );
    assert!(
        resolve(
            &team_fixture(),
            &a,
            &TriggerContext {
                kind: TriggerKind::Cli,
                initiator: Some("alice")
            }
        )
        .is_ok()
    );
}

#[test]
fn a_trigger_the_agent_does_not_list_is_refused() {
    let err = resolve(
        &team_fixture(),
        &agent(&[TriggerKind::Cli]),
        &TriggerContext {
            kind: TriggerKind::Cron,
            initiator: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, Refusal::TriggerNotAllowed { .. }));
    assert!(
        err.to_string().contains("does not accept `cron` runs"),
        "{err}"
    );
}

#[test]
fn a_secret_named_like_an_env_variable_refuses_the_run() {
    let mut a = agent(ALL);
    a.env.insert("TEAM_TOKEN".into(), "plain".into());
    let err = resolve(
        &team_fixture(),
        &a,
        &TriggerContext {
            kind: TriggerKind::Cron,
            initiator: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, Refusal::EnvCollision { .. }), "{err}");
}

#[test]
fn no_secrets_at_all_is_an_empty_injection() {
    let i = resolve(
        &[],
        &agent(ALL),
        &TriggerContext {
            kind: TriggerKind::Cli,
            initiator: Some("alice"),
        },
    )
    .unwrap();
    assert_eq!(i, Injection::default());
}

// Properties over random teams, secrets and triggers.

const MEMBERS: [&str; 3] = ["alice", "bob", "carol"];
const NAMES: [&str; 5] = ["A", "B", "C", "D", "E"];

fn arb_secrets() -> impl Strategy<Value = Vec<SecretMeta>> {
    proptest::collection::btree_map((0usize..4, 0usize..NAMES.len()), 1i64..5, 0..15).prop_map(
        |m| {
            m.into_iter()
                .map(|((owner, n), v)| {
                    let scope = if owner == 3 {
                        Scope::Team
                    } else {
                        personal(MEMBERS[owner])
                    };
                    meta(scope, NAMES[n], v)
                })
                .collect()
        },
    )
}

fn arb_trigger() -> impl Strategy<Value = (TriggerKind, Option<&'static str>)> {
    (0usize..5, proptest::option::of(0usize..3))
        .prop_map(|(k, m)| (TriggerKind::ALL[k], m.map(|i| MEMBERS[i])))
}

fn arb_allow() -> impl Strategy<Value = Option<Vec<SecretName>>> {
    proptest::option::of(proptest::sample::subsequence(
        NAMES.to_vec(),
        0..=NAMES.len(),
    ))
    .prop_map(|o| o.map(|v| v.into_iter().map(name).collect()))
}

proptest! {
    #[test]
    fn personal_secrets_reach_only_their_owners_user_runs(
        secrets in arb_secrets(), (kind, initiator) in arb_trigger(), allow in arb_allow()
    ) {
        let mut a = agent(ALL);
        a.secrets = allow;
        let i = resolve(&secrets, &a, &TriggerContext { kind, initiator }).unwrap();
        let user_run = matches!(kind, TriggerKind::Cli | TriggerKind::Slack | TriggerKind::Linear);
        for s in &i.secrets {
            match &s.scope {
                Scope::Team => prop_assert!(s.owner.is_none()),
                Scope::Personal(owner) => {
                    prop_assert!(user_run, "personal secret in a {kind} run");
                    prop_assert_eq!(Some(owner.as_str()), initiator);
                }
            }
        }
        // Names are unique and sorted.
        let names: Vec<_> = i.secrets.iter().map(|s| &s.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(names, sorted);
    }

    #[test]
    fn team_secrets_always_arrive_unless_narrowed_or_overridden(
        secrets in arb_secrets(), (kind, initiator) in arb_trigger(), allow in arb_allow()
    ) {
        let mut a = agent(ALL);
        a.secrets = allow.clone();
        let i = resolve(&secrets, &a, &TriggerContext { kind, initiator }).unwrap();
        let ctx = TriggerContext { kind, initiator };
        for t in secrets.iter().filter(|s| s.scope == Scope::Team) {
            let allowed = allow.as_ref().is_none_or(|l| l.contains(&t.name));
            let overridden = secrets.iter().any(|s| {
                s.name == t.name && matches!(&s.scope, Scope::Personal(o) if Some(o.as_str()) == ctx.personal_owner())
            });
            let got = i.secrets.iter().find(|s| s.name == t.name);
            if !allowed {
                prop_assert!(got.is_none());
            } else if overridden {
                prop_assert_eq!(got.unwrap().shadows, Some(t.version));
            } else {
                prop_assert_eq!(got.unwrap().scope.clone(), Scope::Team);
            }
        }
    }

    #[test]
    fn the_result_is_deterministic(
        mut secrets in arb_secrets(), (kind, initiator) in arb_trigger(), allow in arb_allow()
    ) {
        let mut a = agent(ALL);
        a.secrets = allow;
        let ctx = TriggerContext { kind, initiator };
        let first = resolve(&secrets, &a, &ctx).unwrap();
        secrets.reverse();
        prop_assert_eq!(first, resolve(&secrets, &a, &ctx).unwrap());
    }
}
