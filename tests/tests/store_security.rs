//! The store's security properties, seen from outside: no plaintext on disk
//! or in any output, private files, and concurrent writers that lose nothing.

use std::os::unix::fs::PermissionsExt;

use supervisor_tests::{Team, mode, sentinel};

/// Panics if `needle`, or its hex form, is in any file under the state directory.
#[track_caller]
fn assert_nowhere_in_state(team: &Team, needle: &str) {
    team.assert_not_in_state(needle);
    team.assert_not_in_state(&hex::encode(needle));
}

#[test]
fn a_sentinel_value_is_in_no_file_and_no_output() {
    let team = Team::new("");
    let db = team.db();
    let team_v1 = sentinel("sentinel-team-v1");
    let team_v2 = sentinel("sentinel-team-v2");
    let mine = sentinel("sentinel-alice");
    let bobs = sentinel("sentinel-bob");
    let all_values = [&team_v1, &team_v2, &mine, &bobs];

    let mut outputs = vec![
        team.cmd_in(
            &team_v1,
            &[
                "secret",
                "create",
                "--team",
                "--name",
                "SENTINEL",
                "--description",
                "a test value",
            ],
        ),
        team.cmd_in(
            &mine,
            &["secret", "create", "--personal", "--name", "SENTINEL"],
        ),
        team.cmd_in(
            &bobs,
            &[
                "secret",
                "create",
                "--personal",
                "--member",
                "bob",
                "--name",
                "SENTINEL",
            ],
        ),
        team.cmd_in(
            &team_v2,
            &["secret", "update", "--team", "--name", "SENTINEL"],
        ),
        team.cmd(&["secret", "delete", "--personal", "--name", "SENTINEL"]),
        // A refused create with the value on stdin.
        team.cmd_in(
            &team_v1,
            &["secret", "create", "--team", "--name", "SENTINEL"],
        ),
    ];
    for out in &outputs[..5] {
        out.ok();
    }
    outputs[5].err();
    for args in [
        &["secret", "list"][..],
        &["secret", "list", "--json"],
        &["secret", "list", "--all"],
        &["secret", "list", "--all", "--json"],
        &["audit", "list"],
        &["audit", "list", "--json"],
        &["audit", "verify"],
        &["config", "check"],
    ] {
        let out = team.cmd(args);
        out.ok();
        outputs.push(out);
    }
    outputs.push(team.cmd_as("bob", "", &["secret", "list", "--json"], ""));
    for out in &outputs {
        for v in all_values {
            assert!(
                !out.all().contains(v.as_str()),
                "a value was printed:\n{out}"
            );
        }
    }

    // Secret writes end with a checkpoint that empties the WAL: nothing
    // replaced or deleted lingers there, and what is left is in store.db.
    let wal = team.state_dir().join("store.db-wal");
    assert_eq!(
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
        0,
        "expected {} to be emptied",
        wal.display()
    );
    assert!(team.state_dir().join("store.db-shm").exists());
    for v in all_values {
        assert_nowhere_in_state(&team, v);
    }
    db.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .expect("checkpoint");
    for v in all_values {
        assert_nowhere_in_state(&team, v);
    }
    drop(db);
    for v in all_values {
        assert_nowhere_in_state(&team, v);
    }
    // There was something to find: sealed values of the remaining rows.
    let db = team.db();
    let sealed: i64 = db
        .query_row(
            "SELECT count(*) FROM secrets WHERE length(ciphertext) > 16",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sealed, 2);
}

#[test]
fn a_ciphertext_moved_to_another_row_is_named_by_audit_verify() {
    let team = Team::new("");
    team.secret(&["--team"], "TEAM_KEY", "team-value-123");
    team.secret(
        &["--personal", "--member", "bob"],
        "BOB_KEY",
        "bob-value-456",
    );
    let db = team.db();
    let changed = db
        .execute(
            "UPDATE secrets SET
                nonce = (SELECT nonce FROM secrets WHERE name = 'BOB_KEY'),
                ciphertext = (SELECT ciphertext FROM secrets WHERE name = 'BOB_KEY')
             WHERE name = 'TEAM_KEY'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    // The chain itself holds, but the seal's sum of the secret rows does
    // not: verify names the row. (Runs that would receive it are refused:
    // `runs.rs` checks that end to end.)
    let out = team.cmd(&["audit", "verify"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("the audit log holds, but a secret row does not")
            && out.stderr.contains("team secret `TEAM_KEY`")
            && out.stderr.contains("altered or moved"),
        "{out}"
    );
    // Metadata still lists.
    let list = team.cmd(&["secret", "list", "--all", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[test]
fn eight_processes_creating_fifty_secrets_each_lose_nothing() {
    const WRITERS: usize = 8;
    const EACH: usize = 50;
    let team = Team::new("");
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let team = &team;
            s.spawn(move || {
                for i in 0..EACH {
                    let name = format!("W{w}_S{i:02}");
                    let value = format!("value-of-{name}");
                    // Half personal, half team: both take the same write path.
                    let scope = if i % 2 == 0 { "--team" } else { "--personal" };
                    team.cmd_in(&value, &["secret", "create", scope, "--name", &name])
                        .ok();
                }
            });
        }
    });
    let list = team.cmd(&["secret", "list", "--json"]).json();
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), WRITERS * EACH);

    let out = team.cmd(&["audit", "verify"]);
    assert!(
        out.ok()
            .contains(&format!("audit log intact: {} entries", WRITERS * EACH)),
        "{out}"
    );
    let audit = team.cmd(&["audit", "list", "--json"]).json();
    let seqs: Vec<i64> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=(WRITERS * EACH) as i64).collect::<Vec<_>>());
}

#[test]
fn the_state_directory_is_private() {
    let team = Team::new("");
    let check = |when: &str| {
        assert_eq!(mode(&team.state_dir()), 0o700, "state dir {when}");
        let files = team.state_files();
        assert!(!files.is_empty());
        for f in files {
            assert_eq!(mode(&f), 0o600, "{} {when}", f.display());
        }
    };
    check("after init");
    // Keep a connection so that the WAL and SHM files stay and are checked too.
    let db = team.db();
    team.secret(&["--team"], "A_SECRET", "private-value");
    team.secret(&["--personal"], "B_SECRET", "private-value");
    team.cmd_in(
        "private-value-2",
        &["secret", "update", "--team", "--name", "A_SECRET"],
    )
    .ok();
    let names: Vec<String> = team
        .state_files()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["master.key", "store.db", "store.db-wal", "store.db-shm"] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    check("after writes");
    drop(db);
    check("after the last connection closed");
    // A state directory made too open is tightened again by init.
    std::fs::set_permissions(team.state_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    team.cmd(&["init"]).ok();
    check("after init on a loosened directory");
}
