//! `supervisor secret create|update|delete|list` through the real binary:
//! the round trip, the `--json` shape, and which names are refused.
//! Refusals must never echo the value on stdin.

use serde_json::Value;
use supervisor_tests::{Team, sentinel};

/// The one entry of `list --json` with this name and owner.
fn entry<'a>(list: &'a Value, name: &str, owner: Option<&str>) -> &'a Value {
    list.as_array()
        .expect("an array")
        .iter()
        .find(|s| s["name"] == name && s["owner"].as_str() == owner)
        .unwrap_or_else(|| panic!("no {name} of {owner:?} in {list:#}"))
}

fn count(list: &Value) -> usize {
    list.as_array().expect("an array").len()
}

#[test]
fn create_update_delete_and_list_team_and_personal() {
    let team = Team::new("");
    let out = team.cmd_in(
        "team-value-1",
        &[
            "secret",
            "create",
            "--team",
            "--name",
            "API_TOKEN",
            "--description",
            "for the API",
        ],
    );
    assert!(
        out.ok()
            .contains("created team secret API_TOKEN (version 1)"),
        "{out}"
    );
    let out = team.cmd_in(
        "alice-value-1",
        &["secret", "create", "--personal", "--name", "API_TOKEN"],
    );
    assert!(
        out.ok()
            .contains("created personal secret API_TOKEN of alice (version 1)"),
        "{out}"
    );

    let list = team.cmd(&["secret", "list", "--json"]).json();
    assert_eq!(count(&list), 2);
    let t = entry(&list, "API_TOKEN", None);
    assert_eq!(
        (&t["scope"], &t["version"], &t["description"]),
        (&"team".into(), &1.into(), &"for the API".into())
    );
    let p = entry(&list, "API_TOKEN", Some("alice"));
    assert_eq!(
        (&p["scope"], &p["description"]),
        (&"personal".into(), &Value::Null)
    );

    let table = team.cmd(&["secret", "list"]);
    let lines: Vec<&str> = table.ok().lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("SCOPE"),
        "{table}"
    );
    assert!(lines[0].contains("LAST UPDATED") && lines[0].contains("DESCRIPTION"));
    assert!(
        !lines[0].contains("OWNER"),
        "owners only with --all:\n{table}"
    );
    // Team secrets come first.
    assert!(lines[1].contains("API_TOKEN") && lines[1].contains("team"));
    assert!(lines[1].contains("just now") && lines[1].ends_with("for the API"));
    assert!(lines[2].contains("personal"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");

    // Update without a description keeps it, and bumps the version.
    let out = team.cmd_in(
        "team-value-2",
        &["secret", "update", "--team", "--name", "API_TOKEN"],
    );
    assert!(
        out.ok()
            .contains("updated team secret API_TOKEN (version 2)"),
        "{out}"
    );
    let list = team.cmd(&["secret", "list", "--json"]).json();
    let t2 = entry(&list, "API_TOKEN", None);
    assert_eq!(
        (&t2["version"], &t2["description"]),
        (&2.into(), &"for the API".into())
    );
    assert_eq!(t2["created_at"], t["created_at"], "creation time is kept");
    assert!(t2["updated_at"].as_str() >= t["updated_at"].as_str());

    // With a description, it replaces the old one.
    team.cmd_in(
        "team-value-3",
        &[
            "secret",
            "update",
            "--team",
            "--name",
            "API_TOKEN",
            "--description",
            "rotated monthly",
        ],
    )
    .ok();
    let list = team.cmd(&["secret", "list", "--json"]).json();
    let t3 = entry(&list, "API_TOKEN", None);
    assert_eq!(
        (&t3["version"], &t3["description"]),
        (&3.into(), &"rotated monthly".into())
    );
    // The personal secret of the same name was not touched.
    assert_eq!(entry(&list, "API_TOKEN", Some("alice"))["version"], 1);

    let out = team.cmd(&["secret", "delete", "--personal", "--name", "API_TOKEN"]);
    assert!(
        out.ok()
            .contains("deleted personal secret API_TOKEN of alice"),
        "{out}"
    );
    let list = team.cmd(&["secret", "list", "--json"]).json();
    assert_eq!(count(&list), 1);
    entry(&list, "API_TOKEN", None);

    team.cmd(&["secret", "delete", "--team", "--name", "API_TOKEN"])
        .ok();
    assert_eq!(
        team.cmd(&["secret", "list", "--json"]).json(),
        Value::Array(vec![])
    );
    let empty = team.cmd(&["secret", "list"]);
    assert!(empty.ok().contains("no secrets yet"), "{empty}");

    // Deleting or updating what is not there says so.
    let err = team.cmd(&["secret", "delete", "--team", "--name", "API_TOKEN"]);
    assert!(
        err.err().contains("no team secret named `API_TOKEN`"),
        "{err}"
    );
    assert!(err.stderr.contains("secret list"), "{err}");
    let err = team.cmd_in(
        "v-value-v",
        &["secret", "update", "--personal", "--name", "API_TOKEN"],
    );
    assert!(
        err.err()
            .contains("no personal (owner alice) secret named `API_TOKEN`"),
        "{err}"
    );
}

#[test]
fn list_json_has_exactly_the_documented_fields_and_no_value() {
    let team = Team::new("");
    let team_value = sentinel("json-team");
    let mine = sentinel("json-personal");
    team.cmd_in(
        &team_value,
        &[
            "secret",
            "create",
            "--team",
            "--name",
            "SHARED",
            "--description",
            "shared",
        ],
    )
    .ok();
    team.secret(&["--personal"], "MINE", &mine);
    team.secret(
        &["--personal", "--member", "bob"],
        "BOBS",
        &sentinel("json-bob"),
    );

    for args in [
        &["secret", "list", "--json"][..],
        &["secret", "list", "--json", "--all"][..],
    ] {
        let out = team.cmd(args);
        assert!(!out.all().contains(&team_value) && !out.all().contains(&mine));
        let list = out.json();
        for s in list.as_array().unwrap() {
            let obj = s.as_object().expect("each entry is an object");
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                [
                    "created_at",
                    "created_by",
                    "description",
                    "leak",
                    "name",
                    "owner",
                    "scope",
                    "updated_at",
                    "updated_by",
                    "version"
                ],
                "{s}"
            );
            assert_eq!(s["leak"], serde_json::Value::Null, "no run leaked it: {s}");
            for key in ["created_at", "updated_at"] {
                let t = s[key].as_str().expect("a string");
                chrono::DateTime::parse_from_rfc3339(t)
                    .unwrap_or_else(|e| panic!("{key} = {t} is not RFC 3339: {e}"));
            }
            assert!(s["version"].is_i64());
            assert_eq!(s["created_by"], "alice");
            assert_eq!(s["updated_by"], "alice");
            match s["scope"].as_str() {
                Some("team") => assert_eq!(s["owner"], Value::Null),
                Some("personal") => assert!(s["owner"].is_string(), "{s}"),
                other => panic!("scope {other:?}"),
            }
        }
    }
    let all = team.cmd(&["secret", "list", "--json", "--all"]).json();
    assert_eq!(entry(&all, "SHARED", None)["description"], "shared");
    assert_eq!(
        entry(&all, "MINE", Some("alice"))["description"],
        Value::Null
    );
    assert_eq!(entry(&all, "BOBS", Some("bob"))["scope"], "personal");
}

#[test]
fn creating_an_existing_name_points_to_update() {
    let team = Team::new("");
    team.secret(&["--team"], "DB_PASSWORD", "first-value");
    let second = sentinel("second");
    let out = team.cmd_in(
        &second,
        &["secret", "create", "--team", "--name", "DB_PASSWORD"],
    );
    let err = out.err();
    assert!(
        err.contains("a team secret named `DB_PASSWORD` already exists"),
        "{out}"
    );
    assert!(err.contains("supervisor secret update"), "{out}");
    assert!(!out.all().contains(&second));
    let list = team.cmd(&["secret", "list", "--json"]).json();
    assert_eq!(entry(&list, "DB_PASSWORD", None)["version"], 1);

    // The same name in another scope is another secret.
    team.secret(&["--personal"], "DB_PASSWORD", "personal-value");
    team.secret(
        &["--personal", "--member", "bob"],
        "DB_PASSWORD",
        "bobs-value",
    );
    let out = team.cmd_in(
        "again-value",
        &["secret", "create", "--personal", "--name", "DB_PASSWORD"],
    );
    assert!(out.err().contains("already exists"), "{out}");
}

#[test]
fn bad_names_are_refused_with_the_reason_and_without_the_value() {
    let team = Team::new("");
    let long = "A".repeat(129);
    let cases: &[(&str, &str)] = &[
        (
            "PATH",
            "the name `PATH` is reserved: it decides which programs run",
        ),
        ("path", "the name `path` is reserved"),
        (
            "LD_PRELOAD",
            "the name `LD_PRELOAD` is reserved: the dynamic loader reads it",
        ),
        (
            "SUPERVISOR_X",
            "the name `SUPERVISOR_X` is reserved: the supervisor sets these variables itself",
        ),
        ("HTTPS_PROXY", "reserved"),
        ("BASH_ENV", "reserved"),
        (
            "1ABC",
            "the name `1ABC` is not a valid environment variable name",
        ),
        (
            "A-B",
            "the name `A-B` is not a valid environment variable name",
        ),
        (&long, "is longer than 128 characters"),
        ("", "a secret name cannot be empty"),
    ];
    for (name, want) in cases {
        let value = sentinel("name-case");
        for scope in ["--team", "--personal"] {
            let out = team.cmd_in(&value, &["secret", "create", scope, "--name", name]);
            let err = out.err();
            assert!(err.contains(want), "{name}: {out}");
            assert!(err.starts_with("error: "), "{out}");
            assert!(!out.all().contains(&value), "{name}: the value was echoed");
        }
    }
    // The longest name allowed is accepted.
    team.secret(&["--team"], &"A".repeat(128), "long-name-value");
    assert_eq!(count(&team.cmd(&["secret", "list", "--json"]).json()), 1);
}
