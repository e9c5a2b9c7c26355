//! The chain's guarantees against someone who can write the database file
//! but does not hold the key.

use super::*;
use crate::MasterKey;
use serde_json::json;

fn store_with_entries(n: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::init(dir.path(), &MasterKey::from_bytes([5; 32])).unwrap();
    for i in 0..n {
        s.audit(Some("alice"), "test.event", &json!({ "i": i }))
            .unwrap();
    }
    (dir, s)
}

fn broken_at(s: &Store) -> (i64, String) {
    match s.audit_verify().unwrap() {
        AuditVerdict::Broken { seq, reason } => (seq, reason),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

fn unguard(s: &Store) {
    s.conn
        .execute_batch(
            "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;",
        )
        .unwrap();
}

/// What a forger without the key does: recompute every MAC from `from` on
/// (and the seal) with a key of their own.
fn rehash_from(s: &Store, from: i64, guessed: &AuditKey) {
    let mut prev: String = s
        .conn
        .query_row("SELECT hash FROM audit WHERE seq = ?1", [from - 1], |r| {
            r.get(0)
        })
        .unwrap_or_else(|_| GENESIS.to_owned());
    let rows: Vec<Stored> = s
        .conn
        .prepare(&format!(
            "SELECT {ENTRY_COLUMNS} FROM audit WHERE seq >= ?1 ORDER BY seq"
        ))
        .unwrap()
        .query_map([from], stored)
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for mut e in rows {
        e.prev_hash = prev.clone();
        let hash = guessed.entry_mac(&e.fields());
        s.conn
            .execute(
                "UPDATE audit SET prev_hash = ?2, hash = ?3 WHERE seq = ?1",
                params![e.seq, e.prev_hash, hash],
            )
            .unwrap();
        prev = hash;
    }
    let (mut head, _) = read_seal(&s.conn).unwrap().unwrap();
    head.hash = prev;
    write_seal(&s.conn, guessed, &head).unwrap();
}

#[test]
fn an_untouched_chain_verifies() {
    let (_d, s) = store_with_entries(5);
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
}

#[test]
fn the_log_refuses_updates_and_deletes() {
    let (_d, s) = store_with_entries(2);
    assert!(
        s.conn
            .execute("UPDATE audit SET actor = 'mallory'", [])
            .is_err()
    );
    assert!(s.conn.execute("DELETE FROM audit", []).is_err());
}

#[test]
fn a_cut_tail_is_found_by_the_seal() {
    let (_d, s) = store_with_entries(5);
    unguard(&s);
    s.conn
        .execute("DELETE FROM audit WHERE seq >= 4", [])
        .unwrap();
    let (seq, reason) = broken_at(&s);
    assert_eq!(seq, 4);
    assert!(reason.contains("the tail was cut"), "{reason}");
}

#[test]
fn a_deleted_entry_is_named() {
    let (_d, s) = store_with_entries(5);
    unguard(&s);
    s.conn
        .execute("DELETE FROM audit WHERE seq = 2", [])
        .unwrap();
    let (seq, reason) = broken_at(&s);
    assert_eq!(seq, 2);
    assert!(reason.contains("missing"), "{reason}");
}

#[test]
fn an_inserted_entry_is_named() {
    let (_d, s) = store_with_entries(5);
    unguard(&s);
    // Make room at 3 and insert an entry that links to entry 2.
    s.conn
        .execute_batch(
            "UPDATE audit SET seq = seq + 100 WHERE seq >= 3;
             UPDATE audit SET seq = seq - 99 WHERE seq >= 103;",
        )
        .unwrap();
    let prev: String = s
        .conn
        .query_row("SELECT hash FROM audit WHERE seq = 2", [], |r| r.get(0))
        .unwrap();
    s.conn
        .execute(
            "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash) VALUES (3, '2026-01-01T00:00:00.000Z', 'mallory', 'test.event', '{}', ?1, ?2)",
            params![prev, "ab".repeat(32)],
        )
        .unwrap();
    let (seq, reason) = broken_at(&s);
    assert_eq!(seq, 3);
    assert!(reason.contains("MAC does not verify"), "{reason}");
}

#[test]
fn a_rewrite_rehashed_with_a_guessed_key_is_named_at_its_first_entry() {
    let (_d, s) = store_with_entries(5);
    unguard(&s);
    s.conn
        .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3", [])
        .unwrap();
    let guessed = AuditKey::derive(&MasterKey::from_bytes([6; 32]));
    rehash_from(&s, 3, &guessed);
    let (seq, reason) = broken_at(&s);
    assert_eq!(seq, 3);
    assert!(reason.contains("MAC does not verify"), "{reason}");
    // And a legacy-style SHA-256 rehash does not pass either.
    assert!(!matches!(
        s.audit_verify().unwrap(),
        AuditVerdict::Intact { .. }
    ));
}

#[test]
fn a_removed_or_forged_seal_is_found_and_stops_writes() {
    let (_d, mut s) = store_with_entries(3);
    let (head, _) = read_seal(&s.conn).unwrap().unwrap();
    s.conn
        .execute("UPDATE audit_seal SET mac = ?1", ["00".repeat(32)])
        .unwrap();
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerdict::SealBroken { .. }
    ));
    let err = s.audit(None, "x", &json!({})).unwrap_err();
    assert!(matches!(err, StoreError::Evidence(_)), "{err}");
    s.conn.execute("DELETE FROM audit_seal", []).unwrap();
    match s.audit_verify().unwrap() {
        AuditVerdict::SealBroken { reason } => assert!(reason.contains("missing"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Reopening with the key does not seal the store afresh.
    drop(s);
    let s = Store::open(_d.path(), Some(&MasterKey::from_bytes([5; 32]))).unwrap();
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerdict::SealBroken { .. }
    ));
    assert_eq!(head.seq, 3);
}

#[test]
fn writes_need_the_key() {
    let (d, s) = store_with_entries(1);
    drop(s);
    let mut s = Store::open(d.path(), None).unwrap();
    assert!(matches!(
        s.audit(None, "x", &json!({})),
        Err(StoreError::KeyRequired)
    ));
    assert!(matches!(s.audit_verify(), Err(StoreError::KeyRequired)));
    assert_eq!(s.audit_list(None).unwrap().len(), 1);
}

/// A store as the previous version left it: unkeyed SHA-256 links and the
/// old key check, with a secret.
fn unkeyed_store(entries: usize) -> (tempfile::TempDir, MasterKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([9; 32]);
    let mut s = Store::init(dir.path(), &key).unwrap();
    s.create_secret(
        &crate::Scope::Team,
        &supervisor_config::SecretName::new("OLD").unwrap(),
        None,
        &secrecy::SecretString::from("old-value-1".to_owned()),
        "alice",
    )
    .unwrap();
    // Rewrite the chain the old way, and take the seal away.
    unguard(&s);
    s.conn
        .execute_batch("DELETE FROM audit; DELETE FROM audit_seal;")
        .unwrap();
    let mut prev = GENESIS.to_owned();
    for i in 1..=entries as i64 {
        let detail = json!({ "i": i }).to_string();
        let e = crate::evidence::Entry {
            seq: i,
            at: "2026-01-01T00:00:00.000Z",
            actor: Some("alice"),
            action: "old.event",
            detail: &detail,
            prev_hash: &prev,
            subject: None,
        };
        let hash = e.legacy_hash();
        s.conn
            .execute(
                "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash) VALUES (?1, ?2, 'alice', 'old.event', ?3, ?4, ?5)",
                params![i, e.at, detail, prev, hash],
            )
            .unwrap();
        prev = hash;
    }
    let old_check = s.cipher().unwrap().unsealed_key_check().unwrap();
    s.conn
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'key_check'",
            [old_check],
        )
        .unwrap();
    (dir, key)
}

#[test]
fn an_unkeyed_chain_is_sealed_once_with_entries_saying_so() {
    let (dir, key) = unkeyed_store(4);
    // Without the key nothing changes.
    let s = Store::open(dir.path(), None).unwrap();
    assert_eq!(s.audit_list(None).unwrap().len(), 4);
    drop(s);
    let s = Store::open(dir.path(), Some(&key)).unwrap();
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
    // The old part is now held by the keyed part: a SHA-256 rehash of an
    // edited old entry breaks the first keyed link.
    unguard(&s);
    s.conn
        .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 4", [])
        .unwrap();
    let (seq, _) = broken_at(&s);
    assert_eq!(seq, 4);
    drop(s);
    // Opening again seals nothing more.
    let s = Store::open(dir.path(), Some(&key)).unwrap();
    assert_eq!(s.audit_list(None).unwrap().len(), 6);
}
