//! The command line itself: completions, help, and what the binary loads.

use std::process::Command;

use supervisor_tests::{Team, binary, run_with_input};

/// The binary with `args` and no config: completions need none.
fn supervisor(args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args).env_remove("SUPERVISOR_CONFIG");
    cmd
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_with_input(supervisor(&["completions", shell]), b"");
        let script = out.ok();
        assert!(script.len() > 200, "{shell}: {out}");
        assert!(script.contains("supervisor"), "{shell}: {out}");
        // Subcommands are completed too.
        assert!(script.contains("secret"), "{shell}: {out}");
    }
    let out = run_with_input(supervisor(&["completions", "tcsh"]), b"");
    assert_eq!(out.code, Some(2), "{out}");
}

#[test]
fn create_help_says_where_the_value_comes_from() {
    let team = Team::uninitialised("");
    let out = team.cmd(&["secret", "create", "--help"]);
    let help = out.ok();
    for want in [
        "--value-file",
        "hidden prompt",
        "standard input",
        "No flag takes the value itself",
        "--team",
        "--personal",
    ] {
        assert!(help.contains(want), "missing {want:?}:\n{help}");
    }
    // No flag could take a value on the command line.
    assert!(!help.contains("--value "), "{help}");
}

/// Every read command takes `--json` and prints one JSON document on one
/// line of stdout, in one style: keys sorted, numbers as numbers.
#[test]
fn every_read_command_prints_one_json_document() {
    let team = Team::new(
        r#"
[[agents]]
name = "quiet"
command = ["/bin/sh", "-c", "echo to the log >&2"]
triggers = ["cli", "cron"]

[[schedules]]
name = "nightly"
cron = "0 6 * * *"
agent = "quiet"
"#,
    );
    team.secret(&["--team"], "API_TOKEN", "token-0123456789");
    let run = team.cmd(&["run", "quiet", "--json"]);
    let ended: serde_json::Value = serde_json::from_str(run.ok()).expect("run --json");
    let id = ended["id"].as_str().unwrap().to_owned();
    assert_eq!(ended["exit_code"], 0, "{run}");
    assert_eq!(
        ended["detail"]["exit"],
        serde_json::json!({"code": 0, "signal": null})
    );

    let commands: &[&[&str]] = &[
        &["secret", "list", "--json"],
        &["scope", "quiet", "--json"],
        &["run", "quiet", "--dry-run", "--json"],
        &["runs", "list", "--json"],
        &["runs", "show", &id, "--json"],
        &["runs", "logs", &id, "--json"],
        &["audit", "list", "--json"],
        &["audit", "verify", "--json"],
        &["config", "check", "--json"],
        &["schedules", "--json"],
    ];
    for args in commands {
        let out = team.cmd(args);
        let text = out.ok();
        assert_eq!(text.lines().count(), 1, "{args:?}: one line:\n{out}");
        let doc: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"));
        // Sorted keys: the document prints back as it came.
        assert_eq!(format!("{doc}\n"), text, "{args:?}");
    }
    let show = team.cmd(&["runs", "show", &id, "--json"]).json();
    assert_eq!(show["exit_code"], 0);
    assert_eq!(show["status"], "succeeded");
    // Every field of a status is there, null when this one has none.
    for key in ["code", "signal", "reason", "secret"] {
        assert_eq!(
            show.get(key),
            Some(&serde_json::Value::Null),
            "{key}: {show}"
        );
    }
    let logs = team.cmd(&["runs", "logs", &id, "--json"]).json();
    assert_eq!(logs, serde_json::json!({"id": id, "log": "to the log\n"}));
    let verify = team.cmd(&["audit", "verify", "--json"]).json();
    assert_eq!(verify["intact"], true);
    assert_eq!(verify["problem"], serde_json::Value::Null);
    let check = team.cmd(&["config", "check", "--json"]).json();
    assert_eq!(check["valid"], true);
    assert_eq!(check["agents"][0]["name"], "quiet");
    let schedules = team.cmd(&["schedules", "--json"]).json();
    assert_eq!(schedules[0]["error"], serde_json::Value::Null);
    assert_eq!(schedules[0]["next"].as_array().unwrap().len(), 3);
}

/// A config that does not read is a document too, with every problem
/// located, and the command exits 1.
#[test]
fn config_check_json_lists_every_problem() {
    let team = Team::uninitialised(
        "[[agents]]\nname = \"a\"\ncommand = [\"/bin/true\"]\ntimout = \"1m\"\n",
    );
    let out = team.cmd(&["config", "check", "--json"]);
    assert_eq!(out.code, Some(1), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(doc["valid"], false);
    let problem = &doc["problems"][0];
    assert_eq!(problem["message"], "unknown key `timout`");
    assert_eq!(problem["hint"], "did you mean `timeout`?");
    assert!(problem["line"].as_u64().unwrap() > 1, "{doc}");
    assert_eq!(problem["column"], 1);
    // The same keys as a valid config's document, null.
    assert_eq!(doc["agents"], serde_json::Value::Null);
    assert!(doc.as_object().unwrap().contains_key("schedules"), "{doc}");
}

/// The `supervisor` command needs the C library and no other shared
/// library (but the dynamic loader, loaded anyway): each one more is
/// opened, mapped and relocated at every start, a sixth of `/bin/true`'s
/// whole run each (`supervisor/build.rs` links the unwinder statically,
/// `supervisor/src/main.rs` brings its own `pow`). A dependency that brings
/// one back fails here, not only in the start-up benchmark.
#[test]
fn the_command_needs_no_shared_library_but_the_c_library() {
    let out = Command::new("readelf")
        .args(["--dynamic", "--wide"])
        .arg(binary())
        .output()
        .expect("readelf (binutils) runs");
    assert!(out.status.success(), "{out:?}");
    let dynamic = String::from_utf8(out.stdout).unwrap();
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split_once('[')?.1.split_once(']').map(|(name, _)| name))
        .filter(|name| !name.starts_with("ld-linux"))
        .collect();
    assert_eq!(needed, ["libc.so.6"], "{dynamic}");
}
