//! Secrets round trip, validation, and rows held to the audit seal.
use super::*;
use crate::MasterKey;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::init(dir.path(), &MasterKey::from_bytes([4; 32])).unwrap();
    (dir, s)
}

fn name(n: &str) -> SecretName {
    SecretName::new(n).unwrap()
}

fn value(v: &str) -> SecretString {
    SecretString::from(v.to_owned())
}

#[test]
fn create_update_delete_round_trip() {
    let (_d, mut s) = store();
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
}

#[test]
fn a_ciphertext_moved_to_another_row_fails_to_open() {
    let (_d, mut s) = store();
    let bob = Scope::Personal("bob".into());
    s.create_secret(&Scope::Team, &name("A"), None, &value("team-secret"), "x")
        .unwrap();
    s.create_secret(&bob, &name("B"), None, &value("bob-secret"), "x")
        .unwrap();
    // Copy bob's sealed value over the team row.
    s.conn
        .execute(
            "UPDATE secrets SET nonce = (SELECT nonce FROM secrets WHERE name = 'B'),
             ciphertext = (SELECT ciphertext FROM secrets WHERE name = 'B') WHERE name = 'A'",
            [],
        )
        .unwrap();
    let err = s.open_secrets(&[(Scope::Team, name("A"))]).unwrap_err();
    assert!(matches!(err, StoreError::Tampered { .. }), "{err}");
    // Rolling the version back also fails.
    s.update_secret(&bob, &name("B"), None, &value("bob-secret-2"), "x")
        .unwrap();
    s.conn
        .execute("UPDATE secrets SET version = 1 WHERE name = 'B'", [])
        .unwrap();
    assert!(s.open_secrets(&[(bob, name("B"))]).is_err());
}

/// The row of `name` as it is stored now (version, nonce, ciphertext).
fn row(s: &Store, n: &str) -> (i64, Vec<u8>, Vec<u8>) {
    s.conn
        .query_row(
            "SELECT version, nonce, ciphertext FROM secrets WHERE name = ?1",
            [n],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

fn put_back(s: &Store, n: &str, (version, nonce, ct): &(i64, Vec<u8>, Vec<u8>)) {
    s.conn
        .execute(
            "UPDATE secrets SET version = ?2, nonce = ?3, ciphertext = ?4 WHERE name = ?1",
            params![n, version, nonce, ct],
        )
        .unwrap();
}

fn refusal(s: &Store, wanted: &[(Scope, SecretName)]) -> String {
    match s.open_secrets(wanted) {
        Err(e @ StoreError::Tampered { .. }) => e.to_string(),
        Err(e) => panic!("expected a refusal naming the secret, got {e}"),
        Ok(_) => panic!("a restored row opened"),
    }
}

#[test]
fn a_restored_older_row_refuses_to_open_and_names_the_secret() {
    let (_d, mut s) = store();
    let team = || (Scope::Team, name("API"));
    s.create_secret(&Scope::Team, &name("API"), None, &value("value-v1"), "x")
        .unwrap();
    s.create_secret(&Scope::Team, &name("OTHER"), None, &value("other-v1"), "x")
        .unwrap();
    let v1 = row(&s, "API");
    s.update_secret(&Scope::Team, &name("API"), None, &value("value-v2"), "x")
        .unwrap();
    put_back(&s, "API", &v1);
    let msg = refusal(&s, &[team()]);
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

#[test]
fn the_same_version_recreated_and_rows_put_back_or_removed_are_found() {
    let (_d, mut s) = store();
    let alice = Scope::Personal("alice".into());
    s.create_secret(&alice, &name("TOKEN"), None, &value("first-value"), "x")
        .unwrap();
    let first = row(&s, "TOKEN");
    s.delete_secret(&alice, &name("TOKEN"), "x").unwrap();
    s.create_secret(&alice, &name("TOKEN"), None, &value("second-value"), "x")
        .unwrap();
    // Same version 1, an older ciphertext: the AEAD alone would open it.
    put_back(&s, "TOKEN", &first);
    let msg = refusal(&s, &[(alice.clone(), name("TOKEN"))]);
    assert!(msg.contains("same version, another ciphertext"), "{msg}");
    assert!(
        msg.contains("personal (owner alice) secret `TOKEN`"),
        "{msg}"
    );

    // A deleted secret put back.
    s.delete_secret(&alice, &name("TOKEN"), "x").unwrap();
    s.conn
        .execute(
            "INSERT INTO secrets (scope, owner, name, version, nonce, ciphertext, created_at, created_by, updated_at, updated_by)
             VALUES ('personal', 'alice', 'TOKEN', 1, ?1, ?2, '2026-01-01T00:00:00.000Z', 'x', '2026-01-01T00:00:00.000Z', 'x')",
            params![first.1, first.2],
        )
        .unwrap();
    let msg = refusal(&s, &[(alice.clone(), name("TOKEN"))]);
    assert!(
        msg.contains("deleted it, and an older row was put back"),
        "{msg}"
    );
    s.conn.execute("DELETE FROM secrets", []).unwrap();
    assert!(s.open_secrets(&[]).is_ok());

    // A secret removed behind the supervisor's back.
    s.create_secret(&Scope::Team, &name("KEEP"), None, &value("keep-value"), "x")
        .unwrap();
    s.conn
        .execute("DELETE FROM secrets WHERE name = 'KEEP'", [])
        .unwrap();
    let msg = s.open_secrets(&[]).unwrap_err().to_string();
    assert!(
        msg.contains("`KEEP`") && msg.contains("its row is gone"),
        "{msg}"
    );
}

#[test]
fn values_are_validated_without_echo() {
    let (_d, mut s) = store();
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
    assert!(
        s.create_secret(
            &Scope::Team,
            &name("V"),
            None,
            &value(&"x".repeat(MAX_VALUE_LEN)),
            "x"
        )
        .is_ok()
    );
}

#[test]
fn metadata_needs_no_key_but_values_do() {
    let (d, mut s) = store();
    s.create_secret(&Scope::Team, &name("A"), None, &value("value-a"), "x")
        .unwrap();
    drop(s);
    let mut s = Store::open(d.path(), None).unwrap();
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
