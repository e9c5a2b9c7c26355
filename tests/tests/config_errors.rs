//! `supervisor config check`: a good config is summarised; each kind of
//! mistake is reported at its file, line and column, with exit code 1.

use supervisor_tests::Team;

/// Writes `text` as `name` in the team's folder and runs `config check` on it.
fn check(team: &Team, name: &str, text: &str) -> supervisor_tests::Run {
    let path = team.path().join(name);
    std::fs::write(&path, text).unwrap();
    let mut cmd = std::process::Command::new(supervisor_tests::binary());
    cmd.arg("--config")
        .arg(&path)
        .args(["config", "check"])
        .current_dir(team.path())
        .env_remove("SUPERVISOR_CONFIG");
    supervisor_tests::run_with_input(cmd, b"")
}

const HEAD: &str = "state_dir = \"state\"\n[team]\nname = \"acme\"\n";

#[test]
fn a_good_config_prints_a_summary() {
    let team = Team::uninitialised(
        r#"
[[agents]]
name = "pipeline-check"
command = ["/bin/true"]
triggers = ["cli", "cron"]
secrets = ["METABASE_API_KEY"]
"#,
    );
    let out = team.cmd(&["config", "check"]);
    let text = out.ok();
    let path = team.path().join("supervisor.toml");
    assert!(
        text.contains(&format!("config {} is valid", path.display())),
        "{out}"
    );
    assert!(text.contains("team     acme"), "{out}");
    assert!(text.contains("members  alice (admin), bob"), "{out}");
    assert!(
        text.contains("pipeline-check [cli, cron] secrets: METABASE_API_KEY"),
        "{out}"
    );
    assert!(out.stderr.is_empty(), "{out}");
}

#[test]
fn each_mistake_is_located() {
    let team = Team::uninitialised("");
    // (file, text, line:col, what the message says)
    let cases: &[(&str, String, &str, &str)] = &[
        (
            "unknown-key.toml",
            format!("{HEAD}colour = \"blue\"\n"),
            "4:1",
            "unknown key `colour`",
        ),
        (
            "unknown-key-in-agent.toml",
            format!("{HEAD}[[agents]]\nname = \"a\"\ncommand = [\"x\"]\ntimout = \"1m\"\n"),
            "7:1",
            "unknown key `timout`",
        ),
        (
            "duplicate-member.toml",
            format!(
                "{HEAD}[[members]]\nname = \"ann\"\nunix_user = \"ann\"\n\
                 [[members]]\nname = \"ann\"\nunix_user = \"other\"\n"
            ),
            "8:8",
            "a member named `ann` is defined twice",
        ),
        (
            "empty-command.toml",
            format!("{HEAD}[[agents]]\nname = \"a\"\ncommand = []\n"),
            "6:11",
            "agent `a` has an empty command",
        ),
        (
            "bad-duration.toml",
            format!(
                "{HEAD}[[agents]]\nname = \"a\"\ncommand = [\"x\"]\ntimeout = \"15 parsecs\"\n"
            ),
            "7:11",
            "bad `timeout`",
        ),
        (
            "unknown-trigger.toml",
            format!(
                "{HEAD}[[agents]]\nname = \"a\"\ncommand = [\"x\"]\ntriggers = [\"cli\", \"pigeon\"]\n"
            ),
            "7:20",
            "`triggers` cannot be `pigeon`",
        ),
    ];
    for (file, text, at, what) in cases {
        let out = check(&team, file, text);
        assert_eq!(out.code, Some(1), "{file}: {out}");
        let located = format!("{}:{at}: {what}", team.path().join(file).display());
        assert!(
            out.stderr.contains(&located),
            "{file}: want {located}\n{out}"
        );
        assert!(out.stderr.contains("hint: "), "{file}: {out}");
        assert!(out.stdout.is_empty(), "{file}: {out}");
    }
}

#[test]
fn every_problem_of_a_config_is_reported_at_once() {
    let team = Team::uninitialised("");
    let text = format!(
        "{HEAD}[[members]]\nname = \"ann\"\nunix_user = \"ann\"\n\
         [[members]]\nname = \"ann\"\nunix_user = \"other\"\n\
         [[agents]]\nname = \"a\"\ncommand = []\ntimeout = \"3 fortnights\"\n"
    );
    let out = check(&team, "many.toml", &text);
    let err = out.err();
    assert!(err.contains("the config has 3 problem(s)"), "{out}");
    let file = team.path().join("many.toml");
    for at in ["8:8", "12:11", "13:11"] {
        assert!(
            err.contains(&format!("{}:{at}: ", file.display())),
            "{at}: {out}"
        );
    }
}

/// The issue's own case: five different mistakes, each reported in one
/// run at its own place, the TOML-level ones (an unknown key, a wrong
/// type) with the others, and a schedule's bad time zone beside its bad
/// expression.
#[test]
fn five_different_mistakes_are_reported_in_one_run() {
    let team = Team::uninitialised("");
    let text = format!(
        r#"{HEAD}
[[agents]]
name = "nightly"
command = ["/bin/true"]
triggers = ["cli", "cron"]
timout = "5m"
max_concurrent = "two"
kill_grace = "10 parsecs"

[[schedules]]
name = "every-morning"
cron = "0 6 * *"
timezone = "Europe/Berln"
agent = "nightly"
"#
    );
    let out = check(&team, "five.toml", &text);
    let err = out.err();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(err.contains("the config has 5 problem(s)"), "{out}");
    let file = team.path().join("five.toml");
    let located = [
        ("9:1", "unknown key `timout`"),
        ("10:18", "`max_concurrent` must be a whole number"),
        ("11:14", "bad `kill_grace`"),
        ("15:8", "`0 6 * *` has 4 fields"),
        ("16:12", "unknown time zone `Europe/Berln`"),
    ];
    for (at, what) in located {
        let want = format!("{}:{at}: {what}", file.display());
        assert!(err.contains(&want), "want {want}\n{out}");
    }
    assert_eq!(err.matches("\n  hint: ").count(), 5, "a hint each: {out}");
    assert!(err.contains("did you mean `timeout`?"), "{out}");
    assert!(err.contains("did you mean `Europe/Berlin`?"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
}

#[test]
fn nothing_runs_on_a_bad_config() {
    let team = Team::uninitialised("colour = \"blue\"\n");
    for args in [&["init"][..], &["secret", "list"]] {
        let out = team.cmd(args);
        assert!(out.err().contains("unknown key `colour`"), "{out}");
    }
    assert!(!team.state_dir().exists(), "init ran on a bad config");
}

#[test]
fn a_missing_config_says_how_to_give_one() {
    let team = Team::uninitialised("");
    let out = team
        .command_with("absent.toml", &["config", "check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("no config file at"), "{stderr}");
    assert!(stderr.contains("--config"), "{stderr}");
}
