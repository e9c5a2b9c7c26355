//! The audit log through the binary: append-only against plain SQL, keyed
//! with the master key and sealed, so that `audit verify` names the entry
//! that someone with the database file (but not the key) cut, removed,
//! inserted or rewrote, and exits 1.

use supervisor_tests::{Run, Team};

/// A team whose audit log has five entries.
fn team_with_history() -> Team {
    let team = Team::new("");
    team.secret(&["--team"], "ONE", "value-one");
    team.secret(&["--team"], "TWO", "value-two");
    team.secret(&["--personal"], "THREE", "value-three");
    team.cmd_in(
        "value-one-b",
        &["secret", "update", "--team", "--name", "ONE"],
    )
    .ok();
    team.cmd(&["secret", "delete", "--team", "--name", "TWO"])
        .ok();
    let out = team.cmd(&["audit", "verify"]);
    assert!(out.ok().contains("intact: 5 entries"), "{out}");
    assert!(out.stdout.contains("the seal names entry 5"), "{out}");
    team
}

/// `audit verify` failed with exit 1, naming `entry` and saying `why`.
#[track_caller]
fn assert_broken(out: &Run, entry: i64, why: &str) {
    assert_eq!(out.code, Some(1), "{out}");
    let want = format!("error: the audit log is broken at entry {entry}: ");
    assert!(out.stderr.contains(&want), "expected {want:?}:\n{out}");
    assert!(out.stderr.contains(why), "expected {why:?}:\n{out}");
}

fn unguard(db: &rusqlite::Connection) {
    db.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
}

#[test]
fn the_audit_log_refuses_edits_through_sql() {
    let team = team_with_history();
    let db = team.db();
    let err = db
        .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = db
        .execute("DELETE FROM audit WHERE seq = 3", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[test]
fn an_audit_entry_edited_by_hand_breaks_verify_at_that_entry() {
    let team = team_with_history();
    let db = team.db();
    unguard(&db);
    db.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3", [])
        .unwrap();
    drop(db);
    let out = team.cmd(&["audit", "verify"]);
    assert_broken(&out, 3, "its MAC does not verify under this store's key");
    assert!(
        out.stderr.contains("hint: entries before it are intact"),
        "{out}"
    );
    // As JSON: a document that says so, and exit 1 all the same.
    let out = team.cmd(&["audit", "verify", "--json"]);
    assert_eq!(out.code, Some(1), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(doc["intact"], false);
    assert_eq!(doc["entry"], 3);
    assert!(
        doc["problem"]
            .as_str()
            .unwrap()
            .starts_with("the audit log is broken at entry 3: its MAC does not verify"),
        "{doc}"
    );
}

#[test]
fn a_cut_tail_is_named_by_the_seal() {
    let team = team_with_history();
    let db = team.db();
    unguard(&db);
    db.execute("DELETE FROM audit WHERE seq = 5", []).unwrap();
    drop(db);
    let out = team.cmd(&["audit", "verify"]);
    assert_broken(&out, 5, "the tail was cut");
    // Nothing more is written over a cut tail.
    let out = team.cmd_in(
        "value-four",
        &["secret", "create", "--team", "--name", "FOUR"],
    );
    assert!(out.err().contains("the audit log does not hold"), "{out}");
}

#[test]
fn a_removed_audit_entry_is_named() {
    let team = team_with_history();
    let db = team.db();
    unguard(&db);
    db.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
    drop(db);
    let out = team.cmd(&["audit", "verify"]);
    assert_broken(&out, 2, "it is missing (the next entry is 3)");
}

#[test]
fn an_inserted_audit_entry_is_named() {
    let team = team_with_history();
    let db = team.db();
    unguard(&db);
    // Entries 3.. move up one; a forged entry 3 links to entry 2.
    db.execute_batch(
        "UPDATE audit SET seq = seq + 100 WHERE seq >= 3;
         UPDATE audit SET seq = seq - 99 WHERE seq >= 103;
         INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash)
           SELECT 3, at, 'mallory', 'secret.delete', detail, hash, hash FROM audit WHERE seq = 2;",
    )
    .unwrap();
    drop(db);
    let out = team.cmd(&["audit", "verify"]);
    assert_broken(&out, 3, "its MAC does not verify");
}

/// HMAC-SHA256 as the store computes an entry's MAC, under a key of the
/// forger's choosing.
fn forged_mac(key: &[u8], fields: &serde_json::Value, subject: Option<&str>) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(b"supervisor/v1\0audit-entry\0");
    mac.update(fields.to_string().as_bytes());
    mac.update(b"\0");
    mac.update(subject.unwrap_or("").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn an_entry_rewritten_with_every_later_mac_recomputed_under_a_guessed_key_is_named() {
    let team = team_with_history();
    let db = team.db();
    unguard(&db);
    // The forger knows the format and guesses the key (the master key
    // itself, or any other 32 bytes): entries 3 to 5 rewritten and relinked.
    let guessed = std::fs::read(team.state_dir().join("master.key")).unwrap();
    let mut prev: String = db
        .query_row("SELECT hash FROM audit WHERE seq = 2", [], |r| r.get(0))
        .unwrap();
    for seq in 3..=5i64 {
        let (at, actor, action, detail, subject): (
            String,
            Option<String>,
            String,
            String,
            Option<String>,
        ) = db
            .query_row(
                "SELECT at, actor, action, detail, subject FROM audit WHERE seq = ?1",
                [seq],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        let actor = if seq == 3 {
            Some("mallory".to_owned())
        } else {
            actor
        };
        let fields = serde_json::json!({
            "seq": seq, "at": at, "actor": actor, "action": action,
            "detail": detail, "prev_hash": prev,
        });
        let hash = forged_mac(&guessed, &fields, subject.as_deref());
        db.execute(
            "UPDATE audit SET actor = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
            rusqlite::params![seq, actor, prev, hash],
        )
        .unwrap();
        prev = hash;
    }
    db.execute("UPDATE audit_seal SET hash = ?1", [&prev])
        .unwrap();
    drop(db);
    let out = team.cmd(&["audit", "verify"]);
    assert_broken(&out, 3, "its MAC does not verify");
}

#[test]
fn a_forged_seal_is_reported() {
    let team = team_with_history();
    let db = team.db();
    db.execute("UPDATE audit_seal SET mac = ?1", ["0".repeat(64)])
        .unwrap();
    drop(db);
    let out = team.cmd(&["audit", "verify"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("its seal does not verify"), "{out}");
}

#[test]
fn verify_needs_the_key_and_says_so() {
    let team = team_with_history();
    std::fs::rename(
        team.state_dir().join("master.key"),
        team.path().join("elsewhere.key"),
    )
    .unwrap();
    let out = team.cmd(&["audit", "verify"]);
    assert!(out.err().contains("no master key at"), "{out}");
    // Listing needs no key.
    assert_eq!(
        team.cmd(&["audit", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        5
    );
}
