//! `supervisor run`, `scope` and `runs` through the real binary: the child's
//! exact environment, the scope rule, the run context, exit statuses, log
//! caps, a tampered store, and the run records.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use supervisor_tests::{Run, Team, binary, os_user, run_with_input};

/// Agents whose only act is to copy their own environment, byte for byte, to
/// `environ.bin` in the working directory (the team's directory): no shell
/// that adds variables of its own, no output that the redactor would change.
const DUMP: &str = r#"
[[agents]]
name = "dump"
command = ["/bin/cp", "/proc/self/environ", "environ.bin"]
timeout = "10s"
triggers = ["cli", "cron", "slack"]

[[agents]]
name = "dump-env"
command = ["/bin/cp", "/proc/self/environ", "environ.bin"]
timeout = "10s"
triggers = ["cli"]
env = { PATH = "/usr/bin:/bin", LANG = "C.UTF-8", HOME = "/srv/agent-home" }

[[agents]]
name = "narrow"
command = ["/bin/cp", "/proc/self/environ", "environ.bin"]
timeout = "10s"
triggers = ["cli"]
secrets = ["TEAM_ONLY", "ALICE_KEY", "NOT_STORED"]

[[agents]]
name = "needs"
command = ["/bin/touch", "needs.ran"]
timeout = "10s"
triggers = ["cli", "cron"]
required_secrets = ["DEPLOY_KEY"]

[[agents]]
name = "home"
command = ["/bin/sh", "-c", "stat -c %a \"$HOME\" > home.mode && printf %s \"$HOME\" > home.path && [ \"$TMPDIR\" = \"$HOME\" ] && touch \"$HOME/scratch\""]
timeout = "10s"
triggers = ["cli"]
env = { PATH = "/usr/bin:/bin" }
"#;

/// Reads and removes the environment the last `dump` run wrote.
#[track_caller]
fn take_env(team: &Team) -> BTreeMap<String, String> {
    let path = team.path().join("environ.bin");
    let bytes = std::fs::read(&path).expect("the agent wrote its environment");
    std::fs::remove_file(&path).unwrap();
    let text = String::from_utf8(bytes).expect("UTF-8 environment");
    let entries: Vec<&str> = text.split_terminator('\0').collect();
    let env: BTreeMap<String, String> = entries
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').expect("NAME=value");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert_eq!(
        env.len(),
        entries.len(),
        "a variable appears twice: {entries:?}"
    );
    env
}

/// The variables of `env` that are not the run's own (`SUPERVISOR_*`,
/// PATH, HOME, TMPDIR): the secrets.
fn secrets_of(env: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    env.iter()
        .filter(|(k, _)| {
            !k.starts_with("SUPERVISOR_") && !matches!(k.as_str(), "PATH" | "HOME" | "TMPDIR")
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run_dir(team: &Team, id: &str) -> String {
    format!("{}/tmp/{id}", team.state_dir().display())
}

/// The run record that `supervisor run --json` prints after the agent's output.
#[track_caller]
fn record_of(run: &Run) -> Value {
    let last = run.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no run record ({e}):\n{run}"))
}

const TOKEN: &str = "ghp_Q7vX2mR9tL4wK8zN3cH6dF1sJ5bY0eU2aP8o";
const TEAM_SHARED: &str = "team-shared-Zx81Pq0Lw3Rt";
const ALICE_SHARED: &str = "alice-shared-Hy62Vn4Ke9Sd";
const TEAM_ONLY: &str = "team-only-Mb37Qc5Wa2Xe";
const ALICE_KEY: &str = "alice-key-Ft94Jg1Ur6Zo";
const BOB_KEY: &str = "bob-key-Nc58Dp7Yh3Lq";

#[test]
fn the_childs_environment_is_exactly_the_expected_set() {
    let team = Team::new(DUMP);
    team.secret(&["--team"], "API_TOKEN", TOKEN);
    team.secret(&["--personal"], "ALICE_KEY", ALICE_KEY);
    let prompt = "fix the \"flaky\" test, ünïcode and all";

    let mut cmd = team.command(&["run", "dump", "--json", "--prompt", prompt]);
    cmd.env("SUPERVISOR_E2E_LEAK", "sentinel-leak-7d31")
        .env("LD_LIBRARY_PATH", "/nonexistent-e2e")
        .env("PATH", "/nonexistent-e2e:/usr/bin:/bin");
    let run = run_with_input(cmd, b"");
    let id = record_of(&run)["id"].as_str().unwrap().to_owned();
    let home = run_dir(&team, &id);
    let expected = map(&[
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", &home),
        ("TMPDIR", &home),
        ("SUPERVISOR_RUN_ID", &id),
        ("SUPERVISOR_AGENT", "dump"),
        ("SUPERVISOR_TRIGGER", "cli"),
        ("SUPERVISOR_MEMBER", "alice"),
        ("SUPERVISOR_PROMPT", prompt),
        ("API_TOKEN", TOKEN),
        ("ALICE_KEY", ALICE_KEY),
    ]);
    // The whole set: the sentinel, PATH and LD_LIBRARY_PATH given to the
    // supervisor are absent, and nothing else slipped in.
    assert_eq!(take_env(&team), expected);
    assert!(!Path::new(&home).exists(), "the run's home outlived it");

    // The agent's own `env` table: its HOME wins, TMPDIR stays the run's,
    // and without a prompt there is no SUPERVISOR_PROMPT.
    let run = team.cmd(&["run", "dump-env", "--json"]);
    let id = record_of(&run)["id"].as_str().unwrap().to_owned();
    let tmp = run_dir(&team, &id);
    let expected = map(&[
        ("PATH", "/usr/bin:/bin"),
        ("LANG", "C.UTF-8"),
        ("HOME", "/srv/agent-home"),
        ("TMPDIR", &tmp),
        ("SUPERVISOR_RUN_ID", &id),
        ("SUPERVISOR_AGENT", "dump-env"),
        ("SUPERVISOR_TRIGGER", "cli"),
        ("SUPERVISOR_MEMBER", "alice"),
        ("API_TOKEN", TOKEN),
        ("ALICE_KEY", ALICE_KEY),
    ]);
    assert_eq!(take_env(&team), expected);
}

#[test]
fn the_run_home_is_private_absolute_and_removed_after() {
    let team = Team::new(DUMP);
    team.cmd(&["run", "home"]).ok();
    let id = team.last_run()["id"].as_str().unwrap().to_owned();
    let read = |f: &str| std::fs::read_to_string(team.path().join(f)).unwrap();
    assert_eq!(read("home.mode"), "700\n");
    assert_eq!(read("home.path"), run_dir(&team, &id));
    assert!(!Path::new(&run_dir(&team, &id)).exists());

    // Started with a relative config path, the home is still absolute: an
    // agent that changes directory must still find it.
    let mut cmd = Command::new(binary());
    cmd.args(["--config", "supervisor.toml", "run", "home"])
        .current_dir(team.path())
        .env_remove("SUPERVISOR_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY");
    run_with_input(cmd, b"").ok();
    let home = read("home.path");
    assert!(home.starts_with('/'), "HOME is relative: {home}");
    assert_eq!(read("home.mode"), "700\n");
    assert!(!Path::new(&home).exists());
    let left: Vec<_> = std::fs::read_dir(team.state_dir().join("tmp"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The daemon wipes a run's home while it records the run's end; both are
/// done before the client hears that the run is over.
#[test]
fn through_the_daemon_the_home_is_gone_when_the_run_is_answered() {
    let team = Team::new(&format!(
        "{DUMP}{}",
        supervisor_tests::server_section("control_socket = \"control.sock\"")
    ));
    let _daemon = team.serve();
    for _ in 0..5 {
        team.cmd(&["run", "home"]).ok();
        let home = std::fs::read_to_string(team.path().join("home.path")).unwrap();
        assert!(home.starts_with('/'), "HOME is relative: {home}");
        // The agent left a file in it: the wipe is more than an rmdir.
        assert!(
            !Path::new(&home).exists(),
            "the run's home outlived its answer"
        );
        assert_eq!(team.last_run()["status"], "succeeded");
    }
}

/// Stores a personal secret of bob's, as bob.
fn bob_secret(team: &Team, name: &str, value: &str) {
    team.cmd_as(
        "bob",
        value,
        &["secret", "create", "--personal", "--name", name],
        DUMP,
    )
    .ok();
}

/// A team with team, alice's and bob's secrets, one of each overriding.
fn scoped_team() -> Team {
    let team = Team::new(DUMP);
    team.secret(&["--team"], "SHARED_TOKEN", TEAM_SHARED);
    team.secret(&["--team"], "TEAM_ONLY", TEAM_ONLY);
    team.secret(&["--personal"], "SHARED_TOKEN", ALICE_SHARED);
    team.secret(&["--personal"], "ALICE_KEY", ALICE_KEY);
    bob_secret(&team, "BOB_KEY", BOB_KEY);
    team
}

#[test]
fn each_member_gets_the_team_and_their_own_personal_secrets_only() {
    let team = scoped_team();

    team.cmd(&["run", "dump"]).ok();
    let alice = take_env(&team);
    assert_eq!(
        secrets_of(&alice),
        BTreeMap::from([
            ("SHARED_TOKEN", ALICE_SHARED),
            ("TEAM_ONLY", TEAM_ONLY),
            ("ALICE_KEY", ALICE_KEY),
        ])
    );
    assert_eq!(alice["SUPERVISOR_MEMBER"], "alice");
    let alice_run = team.last_run();

    team.cmd_as("bob", "", &["run", "dump"], DUMP).ok();
    let bob = take_env(&team);
    assert_eq!(
        secrets_of(&bob),
        BTreeMap::from([
            ("SHARED_TOKEN", TEAM_SHARED),
            ("TEAM_ONLY", TEAM_ONLY),
            ("BOB_KEY", BOB_KEY),
        ])
    );
    assert_eq!(bob["SUPERVISOR_MEMBER"], "bob");

    // The record says what alice's personal secret overrode.
    let id = alice_run["id"].as_str().unwrap();
    let shown = team.cmd(&["runs", "show", id, "--json"]).json();
    let injected = &shown["detail"]["injected"];
    let shared = injected
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "SHARED_TOKEN")
        .unwrap();
    assert_eq!(
        shared,
        &json!({"name": "SHARED_TOKEN", "scope": "personal", "owner": "alice", "version": 1, "shadows": 1})
    );
    let text = team.cmd(&["runs", "show", id]).ok().to_owned();
    assert!(text.contains("overrides team v1"), "{text}");
}

#[test]
fn an_allow_list_narrows_what_a_run_receives_and_reports_the_rest() {
    let team = scoped_team();
    team.cmd(&["run", "narrow"]).ok();
    assert_eq!(
        secrets_of(&take_env(&team)),
        BTreeMap::from([("TEAM_ONLY", TEAM_ONLY), ("ALICE_KEY", ALICE_KEY)])
    );
    assert_eq!(team.last_run()["detail"]["missing"], json!(["NOT_STORED"]));

    team.cmd_as("bob", "", &["run", "narrow"], DUMP).ok();
    assert_eq!(
        secrets_of(&take_env(&team)),
        BTreeMap::from([("TEAM_ONLY", TEAM_ONLY)])
    );
    assert_eq!(
        team.last_run()["detail"]["missing"],
        json!(["ALICE_KEY", "NOT_STORED"])
    );
}

#[test]
fn a_missing_required_secret_refuses_the_run_before_anything_starts() {
    let team = scoped_team();
    let marker = team.path().join("needs.ran");

    let run = team.cmd(&["run", "needs"]);
    assert_eq!(run.code, Some(125), "{run}");
    assert!(run.stderr.contains("DEPLOY_KEY"), "{run}");
    assert!(
        run.stderr.contains("team secret") && run.stderr.contains("personal secret of `alice`"),
        "the message names the scope it would need: {run}"
    );
    assert!(!marker.exists(), "the agent ran");
    let last = team.last_run();
    assert_eq!(last["status"], "rejected");
    assert!(last["reason"].as_str().unwrap().contains("DEPLOY_KEY"));

    // Bob's personal DEPLOY_KEY serves bob's runs, never alice's.
    bob_secret(&team, "DEPLOY_KEY", "deploy-key-Wq40Rz8Tn1Bv");
    assert_eq!(team.cmd(&["run", "needs"]).code, Some(125));
    assert!(!marker.exists(), "the agent ran for alice");
    team.cmd_as("bob", "", &["run", "needs"], DUMP).ok();
    assert!(marker.exists(), "bob's run started");

    // A cron run could only ever have it as a team secret.
    let err = team
        .cmd(&["scope", "needs", "--trigger", "cron"])
        .err()
        .to_owned();
    assert!(
        err.contains("DEPLOY_KEY") && err.contains("team secrets only"),
        "{err}"
    );
}

#[test]
fn scope_and_dry_run_show_names_never_values() {
    let team = scoped_team();
    let values = [TEAM_SHARED, ALICE_SHARED, TEAM_ONLY, ALICE_KEY, BOB_KEY];
    let team_only = json!([
        {"name": "SHARED_TOKEN", "scope": "team", "owner": null, "version": 1, "shadows": null},
        {"name": "TEAM_ONLY", "scope": "team", "owner": null, "version": 1, "shadows": null},
    ]);

    let cron = team.cmd(&["scope", "dump", "--trigger", "cron", "--json"]);
    assert_eq!(
        cron.json(),
        json!({"agent": "dump", "trigger": "cron", "member": null, "secrets": team_only, "missing": []})
    );
    // A member named for a run that has no user changes nothing.
    let cron_alice = team.cmd(&[
        "scope",
        "dump",
        "--trigger",
        "cron",
        "--member",
        "alice",
        "--json",
    ]);
    assert_eq!(cron_alice.json()["secrets"], team_only);
    assert_eq!(cron_alice.json()["member"], Value::Null);
    let slack_bob = team.cmd(&[
        "scope",
        "dump",
        "--trigger",
        "slack",
        "--member",
        "bob",
        "--json",
    ]);
    assert_eq!(slack_bob.json()["member"], "bob");
    assert_eq!(
        slack_bob.json()["secrets"],
        json!([
            {"name": "BOB_KEY", "scope": "personal", "owner": "bob", "version": 1, "shadows": null},
            {"name": "SHARED_TOKEN", "scope": "team", "owner": null, "version": 1, "shadows": null},
            {"name": "TEAM_ONLY", "scope": "team", "owner": null, "version": 1, "shadows": null},
        ])
    );

    let dry = team.cmd(&["run", "dump", "--dry-run", "--json"]);
    assert_eq!(dry.json()["member"], "alice");
    assert_eq!(
        dry.json()["secrets"],
        json!([
            {"name": "ALICE_KEY", "scope": "personal", "owner": "alice", "version": 1, "shadows": null},
            {"name": "SHARED_TOKEN", "scope": "personal", "owner": "alice", "version": 1, "shadows": 1},
            {"name": "TEAM_ONLY", "scope": "team", "owner": null, "version": 1, "shadows": null},
        ])
    );
    let table = team.cmd(&["run", "dump", "--dry-run"]);
    let text = team.cmd(&["scope", "dump", "--trigger", "cli", "--member", "bob"]);
    for out in [&cron, &cron_alice, &slack_bob, &dry, &table, &text] {
        for v in values {
            assert!(!out.all().contains(v), "a value in:\n{out}");
        }
    }
    assert!(table.ok().contains("SHARED_TOKEN"), "{table}");
    // Nothing started, nothing was recorded.
    assert!(!team.path().join("environ.bin").exists());
    assert_eq!(team.cmd(&["runs", "list", "--json"]).json(), json!([]));
}

/// `supervisor scope AGENT` answers "what will my run get?": without
/// --member it is the caller's run through the trigger asked about (cli by
/// default), as `supervisor run` starts it, and it says whom it assumed.
#[test]
fn scope_answers_for_the_caller_by_default() {
    let team = scoped_team();
    let names = |doc: &Value| -> Vec<String> {
        doc["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}:{}",
                    s["name"].as_str().unwrap(),
                    s["scope"].as_str().unwrap()
                )
            })
            .collect()
    };
    let alice_gets = [
        "ALICE_KEY:personal",
        "SHARED_TOKEN:personal",
        "TEAM_ONLY:team",
    ];
    let team_gets = ["SHARED_TOKEN:team", "TEAM_ONLY:team"];

    // Alice asks, with no flag: her own cli run, the same as `run --dry-run`.
    let mine = team.cmd(&["scope", "dump", "--json"]).json();
    assert_eq!(mine["member"], "alice");
    assert_eq!(mine["trigger"], "cli");
    assert_eq!(names(&mine), alice_gets);
    let dry = team.cmd(&["run", "dump", "--dry-run", "--json"]).json();
    assert_eq!(dry, mine);
    // Through Slack too, her mention would carry her secrets.
    let slack = team
        .cmd(&["scope", "dump", "--trigger", "slack", "--json"])
        .json();
    assert_eq!(
        (slack["member"].clone(), names(&slack)),
        (json!("alice"), alice_gets.map(String::from).to_vec())
    );
    // Cron has nobody behind it, whoever asks; --nobody asks for that on purpose.
    let cron = team
        .cmd(&["scope", "dump", "--trigger", "cron", "--json"])
        .json();
    assert_eq!(
        (cron["member"].clone(), names(&cron)),
        (Value::Null, team_gets.map(String::from).to_vec())
    );
    let nobody = team
        .cmd(&["scope", "dump", "--trigger", "slack", "--nobody", "--json"])
        .json();
    assert_eq!(
        (nobody["member"].clone(), names(&nobody)),
        (Value::Null, team_gets.map(String::from).to_vec())
    );

    // The table says whom it assumed.
    let text = team.cmd(&["scope", "dump"]);
    assert!(
        text.ok()
            .starts_with("A `cli` run of `dump` by you (member `alice`) would receive:\nNAME "),
        "{text}"
    );
    let text = team.cmd(&["scope", "dump", "--trigger", "cron"]);
    assert!(
        text.ok().starts_with(
            "A `cron` run of `dump` with nobody behind it (team secrets only) would receive:\n"
        ),
        "{text}"
    );
    // Bob, who is no admin, asks about his own run by default.
    let bob = team.cmd_as("bob", "", &["scope", "dump", "--json"], DUMP);
    assert_eq!(bob.json()["member"], "bob");
    assert!(
        names(&bob.json()).contains(&"BOB_KEY:personal".to_owned()),
        "{bob}"
    );
    let denied = team.cmd_as("bob", "", &["scope", "dump", "--member", "alice"], DUMP);
    assert!(denied.err().contains("only admins may see"), "{denied}");
}

#[test]
fn the_run_context_arrives_on_stdin_as_one_json_document() {
    let team = Team::new(
        r#"
[[agents]]
name = "ctx"
command = ["/bin/cat"]
timeout = "10s"
triggers = ["cli"]
"#,
    );
    let prompt = "summarise {\"this\"}\nand that";
    let run = team.cmd(&["run", "ctx", "--prompt", prompt]);
    let out = run.ok();
    // `cat` ends only at EOF: the document is followed by the end of stdin.
    let doc: Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(out.trim_end().lines().count(), 1, "one line: {out}");
    let id = team.last_run()["id"].clone();
    assert_eq!(
        doc,
        json!({
            "run_id": id,
            "agent": "ctx",
            "trigger": "cli",
            "member": "alice",
            "prompt": prompt,
            "source": {"cli": {"user": os_user()}},
        })
    );
}

const EXITS: &str = r#"
[[agents]]
name = "three"
command = ["/bin/sh", "-c", "exit 3"]
triggers = ["cli"]

[[agents]]
name = "sleepy"
command = ["/bin/sleep", "30"]
timeout = "300ms"
kill_grace = "1s"
triggers = ["cli"]

[[agents]]
name = "missing"
command = ["/nonexistent-e2e/agent-program"]
triggers = ["cli"]

[[agents]]
name = "unlisted"
command = ["no-such-agent-program-e2e"]
triggers = ["cli"]

[[agents]]
name = "noexec"
command = ["./not-executable"]
triggers = ["cli"]

[[agents]]
name = "sigkill"
command = ["/bin/sh", "-c", "kill -KILL $$"]
triggers = ["cli"]

[[agents]]
name = "sigterm"
command = ["/bin/sh", "-c", "kill -TERM $$"]
triggers = ["cli"]
"#;

#[test]
fn exit_statuses_pass_through_and_match_the_records() {
    let team = Team::new(EXITS);
    let script = team.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();

    let cases: &[(&str, i32, Value)] = &[
        ("three", 3, json!({"status": "failed", "code": 3})),
        ("sleepy", 124, json!({"status": "timed_out"})),
        ("missing", 127, json!({"status": "failed", "code": 127})),
        ("unlisted", 127, json!({"status": "failed", "code": 127})),
        ("noexec", 126, json!({"status": "failed", "code": 126})),
        ("sigkill", 137, json!({"status": "killed", "signal": 9})),
        ("sigterm", 143, json!({"status": "killed", "signal": 15})),
    ];
    for (agent, code, _) in cases {
        let run = team.cmd(&["run", agent]);
        assert_eq!(run.code, Some(*code), "{agent}: {run}");
        match *agent {
            "missing" => assert!(
                run.stderr
                    .contains("/nonexistent-e2e/agent-program: command not found"),
                "{run}"
            ),
            "unlisted" => assert!(
                run.stderr
                    .contains("no-such-agent-program-e2e: command not found"),
                "{run}"
            ),
            "noexec" => assert!(
                run.stderr.contains("./not-executable: permission denied"),
                "{run}"
            ),
            _ => {}
        }
    }
    let runs = team.cmd(&["runs", "list", "--json"]).json();
    let by_agent: BTreeMap<&str, &Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["agent"].as_str().unwrap(), r))
        .collect();
    assert_eq!(by_agent.len(), cases.len());
    for (agent, _, outcome) in cases {
        let r = by_agent[agent];
        for (k, v) in outcome.as_object().unwrap() {
            assert_eq!(&r[k], v, "{agent}: {r}");
        }
        if r["status"] == "failed" && *agent != "three" {
            assert!(r["detail"]["error"].as_str().is_some(), "{agent}: {r}");
        }
    }
}

#[test]
fn the_log_is_capped_while_the_terminal_gets_everything() {
    let team = Team::new(
        r#"
[[agents]]
name = "chatty"
command = ["/bin/sh", "-c", "i=0; while [ $i -lt 160 ]; do printf '%063d\n' $i; i=$((i+1)); done"]
triggers = ["cli"]
env = { PATH = "/usr/bin:/bin" }
log_limit = "1 KiB"
"#,
    );
    let expected: String = (0..160).map(|i| format!("{i:063}\n")).collect();
    assert_eq!(expected.len(), 10 * 1024);
    let run = team.cmd(&["run", "chatty"]);
    assert_eq!(run.ok(), expected, "the terminal got everything");

    let record = team.last_run();
    let id = record["id"].as_str().unwrap();
    assert_eq!(record["log_bytes"], 1024);
    assert_eq!(record["detail"]["log_cut"], true);
    let log = team.cmd(&["runs", "logs", id]).ok().to_owned();
    let (kept, marker) = log.split_at(1024);
    assert_eq!(kept, &expected[..1024]);
    assert_eq!(
        marker,
        "\n[supervisor: the log was cut at 1024 bytes; later output was not kept]\n"
    );
    let file = team.state_dir().join("runs").join(format!("{id}.log"));
    let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_ciphertext_moved_to_another_row_fails_the_run_that_would_receive_it() {
    let team = Team::new(DUMP);
    team.secret(&["--team"], "API_TOKEN", TOKEN);
    team.secret(&["--team"], "TEAM_ONLY", TEAM_ONLY);
    bob_secret(&team, "BOB_KEY", BOB_KEY);
    // Bob's sealed value, copied over the team row: valid ciphertext, wrong place.
    let db = rusqlite::Connection::open(team.state_dir().join("store.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE secrets SET
               nonce = (SELECT nonce FROM secrets WHERE name = 'BOB_KEY'),
               ciphertext = (SELECT ciphertext FROM secrets WHERE name = 'BOB_KEY')
             WHERE name = 'API_TOKEN'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let run = team.cmd(&["run", "dump"]);
    assert_eq!(run.code, Some(125), "{run}");
    assert!(
        run.stderr.contains("API_TOKEN") && run.stderr.contains("altered or moved"),
        "{run}"
    );
    assert!(!team.path().join("environ.bin").exists(), "the agent ran");
    let bob = team.cmd_as("bob", "", &["run", "dump"], DUMP);
    assert_eq!(bob.code, Some(125), "{bob}");

    // A run that does not receive it is unaffected.
    team.cmd(&["run", "narrow"]).ok();
    assert_eq!(
        secrets_of(&take_env(&team)),
        BTreeMap::from([("TEAM_ONLY", TEAM_ONLY)])
    );
    for out in [&run, &bob] {
        for v in [TOKEN, BOB_KEY, TEAM_ONLY] {
            assert!(!out.all().contains(v), "a value in:\n{out}");
        }
    }
    for v in [TOKEN, BOB_KEY, TEAM_ONLY] {
        team.assert_not_in_state(v);
    }
}

#[test]
fn runs_list_show_and_logs_work_by_prefix_and_never_show_values() {
    let team = Team::new(
        r#"
[[agents]]
name = "talker"
command = ["/bin/sh", "-c", "echo \"hello from $SUPERVISOR_AGENT\"; echo \"token $API_TOKEN\" >&2; exit 2"]
triggers = ["cli"]
env = { PATH = "/usr/bin:/bin" }

[[agents]]
name = "quiet"
command = ["/bin/true"]
triggers = ["cli"]
"#,
    );
    team.secret(&["--team"], "API_TOKEN", TOKEN);
    let talk = team.cmd(&["run", "talker"]);
    assert_eq!(talk.code, Some(2), "{talk}");
    team.cmd(&["run", "quiet"]).ok();

    let list = team.cmd(&["runs", "list"]);
    let lines: Vec<&str> = list.ok().lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID", "AGENT", "TRIGGER", "MEMBER", "STARTED", "STATUS", "EXIT", "DURATION"
        ],
        "{list}"
    );
    // ID, agent, trigger, member, start date and time, status, exit, duration.
    let quiet: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(quiet[1..4], ["quiet", "cli", "alice"], "{list}");
    assert_eq!(quiet[6..8], ["succeeded", "0"], "{list}");
    let talker: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(talker[1], "talker", "{list}");
    assert_eq!(talker[6..8], ["failed", "2"], "{list}");
    // Columns line up: each starts where its header does.
    for column in ["STARTED", "STATUS", "EXIT"] {
        let at = lines[0].find(column).unwrap();
        assert!(
            lines[1..].iter().all(|l| l[..at].ends_with("   ")),
            "{list}"
        );
    }

    let only = team
        .cmd(&["runs", "list", "--json", "--agent", "talker"])
        .json();
    assert_eq!(only.as_array().unwrap().len(), 1);
    let id = only[0]["id"].as_str().unwrap();
    assert_eq!(only[0]["redactions"], 1);
    assert_eq!(
        only[0]["detail"]["injected"],
        json!([{"name": "API_TOKEN", "scope": "team", "owner": null, "version": 1, "shadows": null}])
    );
    let limited = team.cmd(&["runs", "list", "--json", "--limit", "1"]).json();
    assert_eq!(limited[0]["agent"], "quiet");

    // A unique prefix is enough.
    let prefix = &id[..id.len() - 4];
    let show = team.cmd(&["runs", "show", prefix]);
    assert!(show.ok().contains(id), "{show}");
    assert!(show.stdout.contains("API_TOKEN (team, v1)"), "{show}");
    let shown = team.cmd(&["runs", "show", prefix, "--json"]).json();
    assert_eq!(shown["id"], id);
    let logs = team.cmd(&["runs", "logs", prefix]);
    assert_eq!(logs.ok(), "hello from talker\ntoken [REDACTED:API_TOKEN]\n");

    let unknown = team.cmd(&["runs", "show", "ffffffff"]);
    assert!(
        unknown.err().contains("no run with id `ffffffff`"),
        "{unknown}"
    );
    // Every id starts with a digit of the time: "0" names them all.
    let ambiguous = team.cmd(&["runs", "show", "0"]);
    assert!(
        ambiguous.err().contains("matches several runs"),
        "{ambiguous}"
    );
    assert!(!ambiguous.stderr.contains("no run with id"), "{ambiguous}");

    let mut outputs = vec![talk, list];
    for args in [
        &["runs", "list", "--json"][..],
        &["runs", "show", id, "--json"],
        &["runs", "show", id],
        &["runs", "logs", id],
        &["audit", "list", "--json"],
    ] {
        outputs.push(team.cmd(args));
    }
    for out in &outputs {
        assert!(!out.all().contains(TOKEN), "the value in:\n{out}");
    }
    team.assert_not_in_state(TOKEN);
}
