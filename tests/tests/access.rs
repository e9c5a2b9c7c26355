//! Who may do what: admins manage team secrets, members their own personal
//! ones, and nobody but an admin sees another member's secrets, even by name.

use supervisor_tests::{Team, item, listed, os_user, run_with_input, sentinel};

/// A team with a team secret, a personal secret each for alice and bob, and
/// a personal secret of the same name for both.
fn team_with_secrets() -> Team {
    let team = Team::new("");
    team.secret(&["--team"], "SHARED", "shared-value");
    team.secret(&["--personal"], "ALICE_ONLY", "alice-value");
    team.secret(&["--personal"], "GITHUB_TOKEN", "alice-github");
    team.cmd_as(
        "bob",
        "bob-value",
        &["secret", "create", "--personal", "--name", "BOB_ONLY"],
        "",
    )
    .ok();
    team.cmd_as(
        "bob",
        "bob-github",
        &["secret", "create", "--personal", "--name", "GITHUB_TOKEN"],
        "",
    )
    .ok();
    team
}

#[test]
fn a_member_who_is_not_admin_cannot_touch_team_secrets() {
    let team = team_with_secrets();
    let value = sentinel("bob-team");
    for verb in ["create", "update"] {
        let out = team.cmd_as(
            "bob",
            &value,
            &["secret", verb, "--team", "--name", "SHARED"],
            "",
        );
        let err = out.err();
        assert!(
            err.contains("error: team secrets are managed by admins, and member `bob` is not one"),
            "{out}"
        );
        assert!(
            err.contains("hint: ask an admin, or store it for yourself with --personal"),
            "{out}"
        );
        assert!(!out.all().contains(&value));
    }
    let out = team.cmd_as(
        "bob",
        "",
        &["secret", "delete", "--team", "--name", "SHARED"],
        "",
    );
    assert!(out.err().contains("managed by admins"), "{out}");
    let list = team.cmd(&["secret", "list", "--json"]).json();
    let shared = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "SHARED")
        .expect("SHARED is still there");
    assert_eq!(shared["version"], 1);
}

#[test]
fn in_local_mode_too_only_an_admin_touches_another_members_personal_secrets() {
    let team = team_with_secrets();
    let value = sentinel("bob-replaces");
    for verb in ["create", "update"] {
        let out = team.cmd_as(
            "bob",
            &value,
            &[
                "secret",
                verb,
                "--personal",
                "--member",
                "alice",
                "--name",
                "GITHUB_TOKEN",
            ],
            "",
        );
        let err = out.err();
        assert!(
            err.contains(
                "only admins manage other members' personal secrets, and member `bob` is not one"
            ),
            "{out}"
        );
        assert!(err.contains("note: local mode"), "{out}");
    }
    let out = team.cmd_as(
        "bob",
        "",
        &[
            "secret",
            "delete",
            "--personal",
            "--member",
            "alice",
            "--name",
            "GITHUB_TOKEN",
        ],
        "",
    );
    assert!(out.err().contains("only admins"), "{out}");
    // alice's is as she left it; bob may still name himself.
    let alice = team.cmd(&["secret", "list", "--json"]).json();
    let token = alice
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "GITHUB_TOKEN")
        .unwrap();
    assert_eq!(
        (&token["version"], &token["updated_by"]),
        (&1.into(), &"alice".into())
    );
    team.cmd_as(
        "bob",
        "bob-github-2",
        &[
            "secret",
            "update",
            "--personal",
            "--member",
            "bob",
            "--name",
            "GITHUB_TOKEN",
        ],
        "",
    )
    .ok();
}

#[test]
fn members_see_team_secrets_and_their_own_only() {
    let team = team_with_secrets();
    let bob = team.cmd_as("bob", "", &["secret", "list", "--json"], "");
    assert_eq!(
        listed(&bob.json()),
        [
            item("BOB_ONLY", Some("bob")),
            item("GITHUB_TOKEN", Some("bob")),
            item("SHARED", None),
        ]
    );
    let bob_table = team.cmd_as("bob", "", &["secret", "list"], "");
    assert!(!bob_table.ok().contains("ALICE_ONLY"), "{bob_table}");

    let alice = team.cmd(&["secret", "list", "--json"]);
    assert_eq!(
        listed(&alice.json()),
        [
            item("ALICE_ONLY", Some("alice")),
            item("GITHUB_TOKEN", Some("alice")),
            item("SHARED", None),
        ]
    );
    assert!(!team.cmd(&["secret", "list"]).ok().contains("BOB_ONLY"));

    // Bob's --personal is bob's: deleting GITHUB_TOKEN leaves alice's alone.
    team.cmd_as(
        "bob",
        "",
        &["secret", "delete", "--personal", "--name", "GITHUB_TOKEN"],
        "",
    )
    .ok();
    let alice = team.cmd(&["secret", "list", "--json"]).json();
    assert!(listed(&alice).contains(&item("GITHUB_TOKEN", Some("alice"))));
    // And alice's own secrets cannot be reached by name from bob's side.
    let out = team.cmd_as(
        "bob",
        "",
        &["secret", "delete", "--personal", "--name", "ALICE_ONLY"],
        "",
    );
    assert!(
        out.err()
            .contains("no personal (owner bob) secret named `ALICE_ONLY`"),
        "{out}"
    );
}

#[test]
fn all_is_for_admins_and_shows_owners() {
    let team = team_with_secrets();
    let out = team.cmd_as("bob", "", &["secret", "list", "--all"], "");
    assert!(out.err().contains("--all"), "{out}");
    assert!(out.stderr.contains("needs an admin"), "{out}");
    assert!(!out.all().contains("ALICE_ONLY"));
    let out = team.cmd_as("bob", "", &["secret", "list", "--all", "--json"], "");
    assert!(out.err().contains("needs an admin"), "{out}");

    let all = team.cmd(&["secret", "list", "--all", "--json"]).json();
    assert_eq!(
        listed(&all),
        [
            item("ALICE_ONLY", Some("alice")),
            item("BOB_ONLY", Some("bob")),
            item("GITHUB_TOKEN", Some("alice")),
            item("GITHUB_TOKEN", Some("bob")),
            item("SHARED", None),
        ]
    );
    let table = team.cmd(&["secret", "list", "--all"]);
    let lines: Vec<&str> = table.ok().lines().collect();
    assert!(lines[0].contains("OWNER"), "{table}");
    let row = |name: &str, owner: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{name} ")) && l.contains(&format!(" {owner} ")))
    };
    assert!(row("BOB_ONLY", "bob"), "{table}");
    assert!(row("ALICE_ONLY", "alice"), "{table}");
    assert!(
        row("GITHUB_TOKEN", "bob") && row("GITHUB_TOKEN", "alice"),
        "{table}"
    );
}

#[test]
fn the_key_holder_creates_personal_secrets_for_other_members() {
    let team = Team::new("");
    let out = team.cmd_in(
        "slack-only-value",
        &[
            "secret",
            "create",
            "--personal",
            "--member",
            "bob",
            "--name",
            "LINEAR_TOKEN",
        ],
    );
    assert!(
        out.ok()
            .contains("created personal secret LINEAR_TOKEN of bob (version 1)"),
        "{out}"
    );
    let bob = team
        .cmd_as("bob", "", &["secret", "list", "--json"], "")
        .json();
    let s = &bob[0];
    assert_eq!(
        (&s["name"], &s["owner"], &s["created_by"]),
        (&"LINEAR_TOKEN".into(), &"bob".into(), &"alice".into())
    );
    // Not alice's own.
    assert!(
        listed(&team.cmd(&["secret", "list", "--json"]).json()).is_empty(),
        "bob's secret is not in alice's list"
    );
    // Updating and deleting work the same way.
    team.cmd_in(
        "slack-only-value-2",
        &[
            "secret",
            "update",
            "--personal",
            "--member",
            "bob",
            "--name",
            "LINEAR_TOKEN",
        ],
    )
    .ok();
    let bob = team
        .cmd_as("bob", "", &["secret", "list", "--json"], "")
        .json();
    assert_eq!(bob[0]["version"], 2);

    let out = team.cmd_in(
        "value-for-nobody",
        &[
            "secret",
            "create",
            "--personal",
            "--member",
            "carol",
            "--name",
            "X",
        ],
    );
    assert!(out.err().contains("no member named `carol`"), "{out}");
    assert!(out.stderr.contains("config check"), "{out}");

    // --member with --team makes no sense and is refused by the parser.
    let out = team.cmd_in(
        "value",
        &[
            "secret", "create", "--team", "--member", "bob", "--name", "X",
        ],
    );
    assert_eq!(out.code, Some(2), "{out}");
}

#[test]
fn an_os_user_who_is_no_member_is_told_which_entry_to_add() {
    let team = Team::new("");
    team.secret(&["--team"], "SHARED", "shared-value");
    team.secret(&["--personal"], "ALICE_ONLY", "alice-value");
    team.write_config("nobody.toml", "nobody", "");
    let user = os_user();
    for scope in ["--team", "--personal"] {
        let out = run_with_input(
            team.command_with(
                "nobody.toml",
                &["secret", "create", scope, "--name", "ANYTHING"],
            ),
            b"some-value",
        );
        let err = out.err();
        assert!(
            err.contains(&format!("the user `{user}` is not a member of team `acme`")),
            "{out}"
        );
        assert!(
            err.contains("nobody.toml"),
            "names the file to edit:\n{out}"
        );
        assert!(
            err.contains(&format!(
                "[[members]]\n  name = \"{user}\"\n  unix_user = \"{user}\""
            )),
            "{out}"
        );
        // The entry is complete for what was asked: a team secret needs an
        // admin, or the next `secret create --team` fails again.
        assert_eq!(
            err.contains("  admin = true"),
            scope == "--team",
            "{scope}: {out}"
        );
    }
    // Someone who is nobody sees nothing of the store, not even team
    // secrets' names, and is told the same (the rule of the daemon, too).
    for args in [
        &["secret", "list", "--json"][..],
        &["secret", "list", "--all"],
        &["runs", "list"],
        &["scope", "dump", "--trigger", "cron"],
        &["audit", "list"],
    ] {
        let out = run_with_input(team.command_with("nobody.toml", args), b"");
        let err = out.err();
        assert!(
            err.contains(&format!("the user `{user}` is not a member of team `acme`")),
            "{args:?}: {out}"
        );
        assert!(!out.all().contains("SHARED"), "{out}");
        assert!(err.contains("note: local mode"), "says which mode: {out}");
    }
}
