//! The chain's guarantees against someone who can write the database but
//! does not hold the key; the migration of unkeyed chains and of schemas.

use serde_json::json;

use super::{Case, CaseFn, Raw, V};
use crate::crypto::Cipher;
use crate::evidence::{AuditKey, Entry, GENESIS, Head};
use crate::{AuditVerdict, MasterKey, Store, StoreError};

pub(super) const CASES: &[(&str, CaseFn)] = &[
    ("an_untouched_chain_verifies", untouched),
    ("the_log_refuses_updates_and_deletes", append_only),
    ("a_cut_tail_is_found_by_the_seal", cut_tail),
    ("a_deleted_entry_is_named", deleted_entry),
    ("an_inserted_entry_is_named", inserted_entry),
    ("a_rewrite_rehashed_with_a_guessed_key_is_named", rehashed),
    (
        "a_removed_or_forged_seal_is_found_and_stops_writes",
        forged_seal,
    ),
    ("writes_need_the_key", writes_need_the_key),
    (
        "an_unkeyed_chain_is_sealed_once_with_entries_saying_so",
        unkeyed_chain,
    ),
    ("a_newer_schema_is_refused", newer_schema),
];

fn with_entries(c: &Case, n: usize) -> Store {
    let mut s = c.store(5);
    for i in 0..n {
        s.audit(Some("alice"), "test.event", &json!({ "i": i }))
            .unwrap();
    }
    s
}

fn broken_at(s: &mut Store) -> (i64, String) {
    match s.audit_verify().unwrap() {
        AuditVerdict::Broken { seq, reason } => (seq, reason),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

fn seal(raw: &mut Raw) -> Head {
    let r = &raw.query(
        "SELECT anchor, seq, hash, secrets FROM audit_seal WHERE id = 1",
        &[],
    )[0];
    Head {
        anchor: r[0].i(),
        seq: r[1].i(),
        hash: r[2].t(),
        secrets: r[3].t(),
    }
}

/// What a forger without the key does: recompute every MAC from `from` on
/// (and the seal) with a key of their own.
fn rehash_from(raw: &mut Raw, from: i64, guessed: &AuditKey) {
    let mut prev = raw
        .query("SELECT hash FROM audit WHERE seq = $1", &[V::I(from - 1)])
        .first()
        .map_or(GENESIS.to_owned(), |r| r[0].t());
    let rows = raw.query(
        "SELECT seq, at, actor, action, detail, subject FROM audit WHERE seq >= $1 ORDER BY seq",
        &[V::I(from)],
    );
    for r in rows {
        let (at, actor, action, detail) = (r[1].t(), opt(&r[2]), r[3].t(), r[4].t());
        let subject = opt(&r[5]);
        let entry = Entry {
            seq: r[0].i(),
            at: &at,
            actor: actor.as_deref(),
            action: &action,
            detail: &detail,
            prev_hash: &prev,
            subject: subject.as_deref(),
        };
        let hash = guessed.entry_mac(&entry);
        raw.run(
            "UPDATE audit SET prev_hash = $1, hash = $2 WHERE seq = $3",
            &[V::T(prev.clone()), V::T(hash.clone()), r[0].clone()],
        );
        prev = hash;
    }
    let mut head = seal(raw);
    head.hash = prev;
    raw.run(
        "UPDATE audit_seal SET hash = $1, mac = $2 WHERE id = 1",
        &[V::T(head.hash.clone()), V::T(guessed.seal(&head))],
    );
}

fn opt(v: &V) -> Option<String> {
    match v {
        V::N => None,
        other => Some(other.t()),
    }
}

fn untouched(c: &Case) {
    let mut s = with_entries(c, 5);
    assert_eq!(
        s.audit_verify().unwrap(),
        AuditVerdict::Intact {
            entries: 5,
            sealed: 5,
            keyed_from: 1
        }
    );
    let list = s.audit_list(Some(2)).unwrap();
    assert_eq!(list.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(list[1].prev_hash, list[0].hash);
    assert_eq!(s.audit_list(None).unwrap().len(), 5);
}

fn append_only(c: &Case) {
    let _s = with_entries(c, 2);
    let mut raw = c.raw();
    assert!(raw.exec("UPDATE audit SET actor = 'mallory'", &[]).is_err());
    assert!(raw.exec("DELETE FROM audit", &[]).is_err());
    if raw.is_pg() {
        assert!(raw.exec("TRUNCATE audit", &[]).is_err());
    }
}

fn cut_tail(c: &Case) {
    let mut s = with_entries(c, 5);
    let mut raw = c.raw();
    raw.unguard();
    raw.run("DELETE FROM audit WHERE seq >= 4", &[]);
    let (seq, reason) = broken_at(&mut s);
    assert_eq!(seq, 4);
    assert!(reason.contains("the tail was cut"), "{reason}");
}

fn deleted_entry(c: &Case) {
    let mut s = with_entries(c, 5);
    let mut raw = c.raw();
    raw.unguard();
    raw.run("DELETE FROM audit WHERE seq = 2", &[]);
    let (seq, reason) = broken_at(&mut s);
    assert_eq!(seq, 2);
    assert!(reason.contains("missing"), "{reason}");
}

fn inserted_entry(c: &Case) {
    let mut s = with_entries(c, 5);
    let mut raw = c.raw();
    raw.unguard();
    // Make room at 3 and insert an entry that links to entry 2.
    for seq in (3..=5).rev() {
        raw.run(
            "UPDATE audit SET seq = $1 WHERE seq = $2",
            &[V::I(seq + 1), V::I(seq)],
        );
    }
    let prev = raw.query("SELECT hash FROM audit WHERE seq = 2", &[])[0][0].t();
    raw.run(
        "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash) VALUES (3, '2026-01-01T00:00:00.000Z', 'mallory', 'test.event', '{}', $1, $2)",
        &[V::T(prev), V::T("ab".repeat(32))],
    );
    let (seq, reason) = broken_at(&mut s);
    assert_eq!(seq, 3);
    assert!(reason.contains("MAC does not verify"), "{reason}");
}

fn rehashed(c: &Case) {
    let mut s = with_entries(c, 5);
    let mut raw = c.raw();
    raw.unguard();
    raw.run("UPDATE audit SET actor = 'mallory' WHERE seq = 3", &[]);
    let guessed = AuditKey::derive(&MasterKey::from_bytes([6; 32]));
    rehash_from(&mut raw, 3, &guessed);
    let (seq, reason) = broken_at(&mut s);
    assert_eq!(seq, 3);
    assert!(reason.contains("MAC does not verify"), "{reason}");
}

fn forged_seal(c: &Case) {
    let mut s = with_entries(c, 3);
    let mut raw = c.raw();
    raw.run("UPDATE audit_seal SET mac = $1", &[V::T("00".repeat(32))]);
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerdict::SealBroken { .. }
    ));
    let err = s.audit(None, "x", &json!({})).unwrap_err();
    assert!(matches!(err, StoreError::Evidence(_)), "{err}");
    raw.run("DELETE FROM audit_seal", &[]);
    match s.audit_verify().unwrap() {
        AuditVerdict::SealBroken { reason } => assert!(reason.contains("missing"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Reopening with the key does not seal the store afresh.
    drop(s);
    let mut s = c.open(Some(5)).unwrap();
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerdict::SealBroken { .. }
    ));
}

fn writes_need_the_key(c: &Case) {
    drop(with_entries(c, 1));
    let mut s = c.open(None).unwrap();
    assert!(matches!(
        s.audit(None, "x", &json!({})),
        Err(StoreError::KeyRequired)
    ));
    assert!(matches!(s.audit_verify(), Err(StoreError::KeyRequired)));
    assert_eq!(s.audit_list(None).unwrap().len(), 1);
}

/// A store as the previous version left it: unkeyed SHA-256 links and the
/// old key check, with a secret.
fn make_unkeyed(c: &Case, entries: i64) {
    let key = MasterKey::from_bytes([9; 32]);
    let mut s = Store::init_at(&c.location, &key).unwrap();
    s.create_secret(
        &crate::Scope::Team,
        &supervisor_config::SecretName::new("OLD").unwrap(),
        None,
        &secrecy::SecretString::from("old-value-1".to_owned()),
        "alice",
    )
    .unwrap();
    drop(s);
    let mut raw = c.raw();
    raw.unguard();
    raw.run("DELETE FROM audit", &[]);
    raw.run("DELETE FROM audit_seal", &[]);
    let mut prev = GENESIS.to_owned();
    for i in 1..=entries {
        let detail = json!({ "i": i }).to_string();
        let e = Entry {
            seq: i,
            at: "2026-01-01T00:00:00.000Z",
            actor: Some("alice"),
            action: "old.event",
            detail: &detail,
            prev_hash: &prev,
            subject: None,
        };
        let hash = e.legacy_hash();
        raw.run(
            "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash) VALUES ($1, $2, 'alice', 'old.event', $3, $4, $5)",
            &[V::I(i), V::T(e.at.into()), V::T(detail.clone()), V::T(prev.clone()), V::T(hash.clone())],
        );
        prev = hash;
    }
    let old_check = Cipher::new(&key).unsealed_key_check().unwrap();
    raw.run(
        "UPDATE meta SET value = $1 WHERE key = 'key_check'",
        &[V::B(old_check)],
    );
}

fn unkeyed_chain(c: &Case) {
    make_unkeyed(c, 4);
    // Without the key nothing changes.
    let mut s = c.open(None).unwrap();
    assert_eq!(s.audit_list(None).unwrap().len(), 4);
    drop(s);
    let mut s = c.open(Some(9)).unwrap();
    let list = s.audit_list(None).unwrap();
    let actions: Vec<&str> = list.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions[4..], ["audit.anchor", "secret.seal"]);
    assert_eq!(list[4].detail["unkeyed_entries"], 4);
    assert_eq!(list[4].detail["unkeyed_chain"], "intact");
    assert_eq!(
        s.audit_verify().unwrap(),
        AuditVerdict::Intact {
            entries: 6,
            sealed: 6,
            keyed_from: 5
        }
    );
    // The old part is now held by the keyed part: an edited old entry
    // breaks the chain.
    let mut raw = c.raw();
    raw.run("UPDATE audit SET actor = 'mallory' WHERE seq = 4", &[]);
    let (seq, _) = broken_at(&mut s);
    assert_eq!(seq, 4);
    drop(s);
    // Opening again seals nothing more.
    let mut s = c.open(Some(9)).unwrap();
    assert_eq!(s.audit_list(None).unwrap().len(), 6);
}

fn newer_schema(c: &Case) {
    drop(c.store(1));
    let mut raw = c.raw();
    match raw {
        Raw::Sqlite(ref conn) => conn.pragma_update(None, "user_version", 99).unwrap(),
        Raw::Pg(_) => raw.run("UPDATE supervisor_schema SET version = 99", &[]),
    }
    let err = c.open(None).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer supervisor"), "{err}");
}
