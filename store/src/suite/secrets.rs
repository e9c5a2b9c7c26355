//! Secrets: round trip, versions, validation, and rows held to the seal.

use secrecy::{ExposeSecret, SecretString};
use supervisor_config::SecretName;

use super::{Case, CaseFn, Raw, V};
use crate::{MAX_VALUE_LEN, Scope, Store, StoreError};

pub(super) const CASES: &[(&str, CaseFn)] = &[
    (
        "create_update_delete_round_trip",
        create_update_delete_round_trip,
    ),
    (
        "a_ciphertext_moved_to_another_row_fails_to_open",
        moved_ciphertext,
    ),
    (
        "a_restored_older_row_refuses_to_open_and_names_the_secret",
        restored_row,
    ),
    (
        "the_same_version_recreated_and_rows_put_back_or_removed_are_found",
        recreated,
    ),
    ("values_are_validated_without_echo", values_are_validated),
    ("metadata_needs_no_key_but_values_do", metadata_needs_no_key),
    (
        "secrets_are_listed_team_first_then_by_owner_and_name",
        listing_order,
    ),
    ("a_wrong_key_is_recognised", wrong_key),
];

fn name(n: &str) -> SecretName {
    SecretName::new(n).unwrap()
}

fn value(v: &str) -> SecretString {
    SecretString::from(v.to_owned())
}

fn create_update_delete_round_trip(c: &Case) {
    let mut s = c.store(4);
    let alice = Scope::Personal("alice".into());
    s.create_secret(
        &Scope::Team,
        &name("API"),
        Some("shared"),
        &value("team-value-1"),
        "alice",
    )
    .unwrap();
    s.create_secret(&alice, &name("API"), None, &value("alice-value-1"), "alice")
        .unwrap();
    let err = s
        .create_secret(&Scope::Team, &name("API"), None, &value("x"), "alice")
        .unwrap_err();
    assert!(matches!(err, StoreError::SecretExists { .. }));
    let m = s
        .update_secret(
            &Scope::Team,
            &name("API"),
            None,
            &value("team-value-2"),
            "bob",
        )
        .unwrap();
    assert_eq!(
        (m.version, m.description.as_deref(), m.updated_by.as_str()),
        (2, Some("shared"), "bob")
    );
    assert_eq!(m.created_by, "alice");
    let opened = s
        .open_secrets(&[(Scope::Team, name("API")), (alice.clone(), name("API"))])
        .unwrap();
    assert_eq!(opened[0].value.expose_secret(), "team-value-2");
    assert_eq!(opened[0].version, 2);
    assert_eq!(opened[1].value.expose_secret(), "alice-value-1");
    assert!(!format!("{opened:?}").contains("value-"));
    let list = s.list_secrets().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].scope, Scope::Team);
    s.delete_secret(&alice, &name("API"), "alice").unwrap();
    assert_eq!(s.list_secrets().unwrap().len(), 1);
    assert!(matches!(
        s.delete_secret(&alice, &name("API"), "alice"),
        Err(StoreError::SecretNotFound { .. })
    ));
    assert!(matches!(
        s.update_secret(&alice, &name("API"), None, &value("v"), "alice"),
        Err(StoreError::SecretNotFound { .. })
    ));
    assert!(s.expect_secret(&Scope::Team, &name("API"), true).is_ok());
    assert!(matches!(
        s.expect_secret(&Scope::Team, &name("API"), false),
        Err(StoreError::SecretExists { .. })
    ));
}

fn moved_ciphertext(c: &Case) {
    let mut s = c.store(4);
    let mut raw = c.raw();
    let bob = Scope::Personal("bob".into());
    s.create_secret(&Scope::Team, &name("A"), None, &value("team-secret"), "x")
        .unwrap();
    s.create_secret(&bob, &name("B"), None, &value("bob-secret"), "x")
        .unwrap();
    // Copy bob's sealed value over the team row.
    let b = row(&mut raw, "B");
    raw.run(
        "UPDATE secrets SET nonce = $1, ciphertext = $2 WHERE name = 'A'",
        &[V::B(b.1), V::B(b.2)],
    );
    let err = s.open_secrets(&[(Scope::Team, name("A"))]).unwrap_err();
    assert!(matches!(err, StoreError::Tampered { .. }), "{err}");
    // Rolling the version back also fails.
    s.update_secret(&bob, &name("B"), None, &value("bob-secret-2"), "x")
        .unwrap();
    raw.run("UPDATE secrets SET version = 1 WHERE name = 'B'", &[]);
    assert!(s.open_secrets(&[(bob, name("B"))]).is_err());
}

/// The row of `name` as it is stored now (version, nonce, ciphertext).
fn row(raw: &mut Raw, n: &str) -> (i64, Vec<u8>, Vec<u8>) {
    let rows = raw.query(
        "SELECT version, nonce, ciphertext FROM secrets WHERE name = $1",
        &[V::T(n.into())],
    );
    (rows[0][0].i(), rows[0][1].b(), rows[0][2].b())
}

fn put_back(raw: &mut Raw, n: &str, (version, nonce, ct): &(i64, Vec<u8>, Vec<u8>)) {
    raw.run(
        "UPDATE secrets SET version = $1, nonce = $2, ciphertext = $3 WHERE name = $4",
        &[
            V::I(*version),
            V::B(nonce.clone()),
            V::B(ct.clone()),
            V::T(n.into()),
        ],
    );
}

fn refusal(s: &mut Store, wanted: &[(Scope, SecretName)]) -> String {
    match s.open_secrets(wanted) {
        Err(e @ StoreError::Tampered { .. }) => e.to_string(),
        Err(e) => panic!("expected a refusal naming the secret, got {e}"),
        Ok(_) => panic!("a restored row opened"),
    }
}

fn restored_row(c: &Case) {
    let mut s = c.store(4);
    let mut raw = c.raw();
    let team = || (Scope::Team, name("API"));
    s.create_secret(&Scope::Team, &name("API"), None, &value("value-v1"), "x")
        .unwrap();
    s.create_secret(&Scope::Team, &name("OTHER"), None, &value("other-v1"), "x")
        .unwrap();
    let v1 = row(&mut raw, "API");
    s.update_secret(&Scope::Team, &name("API"), None, &value("value-v2"), "x")
        .unwrap();
    put_back(&mut raw, "API", &v1);
    let msg = refusal(&mut s, &[team()]);
    assert!(
        msg.contains("team secret `API`")
            && msg.contains("its row is version 1, but audit entry 3 wrote version 2"),
        "{msg}"
    );
    // A run that does not receive it is not held up by it.
    assert!(s.open_secrets(&[(Scope::Team, name("OTHER"))]).is_ok());
    // Rotating heals it.
    s.update_secret(&Scope::Team, &name("API"), None, &value("value-v4"), "x")
        .unwrap();
    let opened = s.open_secrets(&[team()]).unwrap();
    assert_eq!(opened[0].value.expose_secret(), "value-v4");
    assert_eq!(opened[0].version, 3);
}

fn recreated(c: &Case) {
    let mut s = c.store(4);
    let mut raw = c.raw();
    let alice = Scope::Personal("alice".into());
    s.create_secret(&alice, &name("TOKEN"), None, &value("first-value"), "x")
        .unwrap();
    let first = row(&mut raw, "TOKEN");
    s.delete_secret(&alice, &name("TOKEN"), "x").unwrap();
    s.create_secret(&alice, &name("TOKEN"), None, &value("second-value"), "x")
        .unwrap();
    // Same version 1, an older ciphertext: the AEAD alone would open it.
    put_back(&mut raw, "TOKEN", &first);
    let msg = refusal(&mut s, &[(alice.clone(), name("TOKEN"))]);
    assert!(msg.contains("same version, another ciphertext"), "{msg}");
    assert!(
        msg.contains("personal (owner alice) secret `TOKEN`"),
        "{msg}"
    );

    // A deleted secret put back.
    s.delete_secret(&alice, &name("TOKEN"), "x").unwrap();
    raw.run(
        "INSERT INTO secrets (scope, owner, name, version, nonce, ciphertext, created_at, created_by, updated_at, updated_by)
         VALUES ('personal', 'alice', 'TOKEN', 1, $1, $2, '2026-01-01T00:00:00.000Z', 'x', '2026-01-01T00:00:00.000Z', 'x')",
        &[V::B(first.1), V::B(first.2)],
    );
    let msg = refusal(&mut s, &[(alice.clone(), name("TOKEN"))]);
    assert!(
        msg.contains("deleted it, and an older row was put back"),
        "{msg}"
    );
    raw.run("DELETE FROM secrets", &[]);
    assert!(s.open_secrets(&[]).is_ok());

    // A secret removed behind the supervisor's back.
    s.create_secret(&Scope::Team, &name("KEEP"), None, &value("keep-value"), "x")
        .unwrap();
    raw.run("DELETE FROM secrets WHERE name = 'KEEP'", &[]);
    let msg = s.open_secrets(&[]).unwrap_err().to_string();
    assert!(
        msg.contains("`KEEP`") && msg.contains("its row is gone"),
        "{msg}"
    );
}

fn values_are_validated(c: &Case) {
    let mut s = c.store(4);
    let cases = [
        (String::new(), "empty"),
        ("a\0b-sentinel".to_owned(), "NUL"),
        ("x".repeat(MAX_VALUE_LEN + 1), "limit"),
    ];
    for (v, want) in cases {
        let err = s
            .create_secret(&Scope::Team, &name("V"), None, &value(&v), "x")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(want), "{msg}");
        assert!(!msg.contains("sentinel"));
    }
    let big = "x".repeat(MAX_VALUE_LEN);
    s.create_secret(&Scope::Team, &name("V"), None, &value(&big), "x")
        .unwrap();
    let opened = s.open_secrets(&[(Scope::Team, name("V"))]).unwrap();
    assert_eq!(opened[0].value.expose_secret().len(), MAX_VALUE_LEN);
}

fn metadata_needs_no_key(c: &Case) {
    let mut s = c.store(4);
    s.create_secret(&Scope::Team, &name("A"), None, &value("value-a"), "x")
        .unwrap();
    drop(s);
    let mut s = c.open(None).unwrap();
    assert_eq!(s.list_secrets().unwrap().len(), 1);
    assert!(matches!(
        s.open_secrets(&[(Scope::Team, name("A"))]),
        Err(StoreError::KeyRequired)
    ));
    assert!(matches!(
        s.create_secret(&Scope::Team, &name("B"), None, &value("v"), "x"),
        Err(StoreError::KeyRequired)
    ));
}

fn listing_order(c: &Case) {
    let mut s = c.store(4);
    for (scope, n) in [
        (Scope::Personal("bob".into()), "b_TOKEN"),
        (Scope::Personal("Alice".into()), "Z"),
        (Scope::Team, "b"),
        (Scope::Team, "B"),
        (Scope::Personal("alice".into()), "A"),
    ] {
        s.create_secret(&scope, &name(n), None, &value("some-value"), "x")
            .unwrap();
    }
    let order: Vec<(Option<String>, String)> = s
        .list_secrets()
        .unwrap()
        .into_iter()
        .map(|m| (m.owner, m.name.to_string()))
        .collect();
    let expected: Vec<(Option<String>, String)> = [
        (None, "B"),
        (None, "b"),
        (Some("Alice"), "Z"),
        (Some("alice"), "A"),
        (Some("bob"), "b_TOKEN"),
    ]
    .into_iter()
    .map(|(o, n)| (o.map(str::to_owned), n.to_owned()))
    .collect();
    assert_eq!(order, expected);
}

fn wrong_key(c: &Case) {
    drop(c.store(1));
    let err = c.open(Some(2)).unwrap_err();
    assert_eq!(err.to_string(), "this master key does not open this store");
    assert!(matches!(
        Store::init_at(&c.location, &crate::MasterKey::from_bytes([2; 32])),
        Err(StoreError::WrongKey)
    ));
    // Initialising again with the right key changes nothing.
    let mut s = c.store(1);
    assert!(matches!(
        s.audit_verify().unwrap(),
        crate::AuditVerdict::Intact { entries: 0, .. }
    ));
}
