//! Leak flags through the real binary: a run whose output showed a secret's value (redacted)
//! marks that secret in `secret list` (and `--json`) with the run and time, writes a
//! `secret.leak` audit entry, is counted in the daemon's `/metrics`; the mark clears when the
//! secret is updated; an agent with `on_leak = "fail"` is stopped at the first one.

use std::time::{Duration, Instant};

use serde_json::Value;
use supervisor_tests::signing::webhook_headers;
use supervisor_tests::{Team, server_section, wait_until};

const TOKEN: &str = "tok_leak_Q7vX2mR9tL4wK8zN3cH6";
const OTHER: &str = "other_value_P5sJ1bY0eU2aW8";

fn agents(pid_file: &str) -> String {
    format!(
        r#"
[[agents]]
name = "leaky"
command = ["/bin/sh", "-c", "echo starting; echo token=$LEAK_TOKEN; echo done"]
triggers = ["cli", "webhook"]

[[agents]]
name = "careful"
command = ["/bin/sh", "-c", "echo nothing to see"]

[[agents]]
name = "stopped"
command = ["/bin/sh", "-c", "echo $$ > {pid_file}; printf 'token=%s\n' \"$LEAK_TOKEN\"; sleep 30; echo never"]
on_leak = "fail"
"#
    )
}

fn secret<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {list}"))
}

#[test]
fn a_leaked_value_marks_the_secret_until_it_is_rotated() {
    let team = Team::new(&agents("/dev/null"));
    team.secret(&["--team"], "LEAK_TOKEN", TOKEN);
    team.secret(&["--team"], "OTHER_TOKEN", OTHER);

    team.cmd(&["run", "careful"]).ok();
    let list = team.cmd(&["secret", "list", "--json"]).json();
    assert_eq!(secret(&list, "LEAK_TOKEN")["leak"], Value::Null);

    let run = team.cmd(&["run", "leaky"]);
    assert_eq!(run.ok(), "starting\ntoken=[REDACTED:LEAK_TOKEN]\ndone\n");
    let record = team.last_run();
    let id = record["id"].as_str().unwrap().to_owned();
    assert_eq!(record["status"], "succeeded", "flag only: the run goes on");
    assert_eq!(record["detail"]["leaks"][0]["name"], "LEAK_TOKEN");
    assert_eq!(record["detail"]["leaks"][0]["hits"], 1);
    assert_eq!(record["detail"]["leaks"][0]["version"], 1);

    let list = team.cmd(&["secret", "list", "--json"]).json();
    let leak = &secret(&list, "LEAK_TOKEN")["leak"];
    assert_eq!(leak["run"], id.as_str());
    assert_eq!(leak["runs"], 1);
    assert!(leak["at"].as_str().unwrap().ends_with('Z'), "{leak}");
    assert_eq!(secret(&list, "OTHER_TOKEN")["leak"], Value::Null);

    let table = team.cmd(&["secret", "list"]);
    let row = table
        .ok()
        .lines()
        .find(|l| l.starts_with("LEAK_TOKEN"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains(&format!("in run {id}")), "{table}");
    assert!(table.stdout.lines().next().unwrap().contains("LEAKED"));
    let shown = team.cmd(&["runs", "show", &id]);
    assert!(shown.ok().contains("leaked     LEAK_TOKEN (1x)"), "{shown}");

    let audit = team.cmd(&["audit", "list", "--json"]).json();
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "secret.leak")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(entry["detail"]["run"], id.as_str());
    assert_eq!(entry["detail"]["name"], "LEAK_TOKEN");
    assert_eq!(entry["detail"]["current"], true);
    assert!(team.cmd(&["audit", "verify"]).ok().contains("intact"));

    // A second leak counts; rotating the value clears the mark.
    team.cmd(&["run", "leaky"]).ok();
    let list = team.cmd(&["secret", "list", "--json"]).json();
    assert_eq!(secret(&list, "LEAK_TOKEN")["leak"]["runs"], 2);
    team.cmd_in(
        "tok_rotated_R1sJ4bY7eU0aW3",
        &["secret", "update", "--team", "--name", "LEAK_TOKEN"],
    )
    .ok();
    let list = team.cmd(&["secret", "list", "--json"]).json();
    assert_eq!(secret(&list, "LEAK_TOKEN")["leak"], Value::Null);
    let table = team.cmd(&["secret", "list"]);
    assert!(!table.ok().contains("LEAKED"), "{table}");
    for needle in [TOKEN, OTHER] {
        team.assert_not_in_state(needle);
    }
}

#[test]
fn on_leak_fail_stops_the_run_at_the_first_one() {
    let team = Team::new("");
    let pid_file = team.path().join("agent.pid");
    team.write_config(
        "supervisor.toml",
        "alice",
        &agents(&pid_file.display().to_string()),
    );
    team.secret(&["--team"], "LEAK_TOKEN", TOKEN);

    let started = Instant::now();
    let run = team.cmd(&["run", "stopped"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped long before its sleep ends"
    );
    assert_eq!(run.code, Some(123), "{run}");
    assert_eq!(run.stdout, "token=[REDACTED:LEAK_TOKEN]\n");
    assert!(
        run.stderr
            .contains("error: the agent printed the value of LEAK_TOKEN (redacted)"),
        "{run}"
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!supervisor_tests::alive(pid), "the agent was stopped");

    let record = team.last_run();
    assert_eq!(record["status"], "leaked");
    assert_eq!(record["secret"], "LEAK_TOKEN");
    let shown = team.cmd(&["runs", "show", record["id"].as_str().unwrap()]);
    assert!(
        shown
            .ok()
            .contains("reason     its output showed the value of LEAK_TOKEN"),
        "{shown}"
    );
    let list = team.cmd(&["secret", "list", "--json"]).json();
    assert_eq!(
        secret(&list, "LEAK_TOKEN")["leak"]["run"],
        record["id"].clone()
    );
    team.assert_not_in_state(TOKEN);
}

#[test]
fn the_daemon_counts_leaks_in_its_metrics() {
    const HOOK_SECRET: &str = "leak-hook-secret-3c9a";
    let team = Team::new("");
    let hook = team.path().join("hook.secret");
    std::fs::write(&hook, HOOK_SECRET).unwrap();
    team.write_config(
        "supervisor.toml",
        "alice",
        &format!(
            "{}{}\n[[webhooks]]\nname = \"alerts\"\nagent = \"leaky\"\nsecret = {{ file = \"{}\" }}\n",
            server_section(""),
            agents("/dev/null"),
            hook.display()
        ),
    );
    team.secret(&["--team"], "LEAK_TOKEN", TOKEN);
    let mut daemon = team.serve();
    let body = br#"{"alert":"print it"}"#;
    let headers = webhook_headers(HOOK_SECRET, supervisor_tests::signing::now_secs(), body);
    let answer = daemon.post("/hooks/alerts", &headers, body);
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert!(
        wait_until(Duration::from_secs(20), || {
            daemon.metric("supervisor_secret_leaks_total{agent=\"leaky\",secret=\"LEAK_TOKEN\"}")
                == 1
        }),
        "{}\n{}",
        daemon.get("/metrics").text(),
        daemon.log()
    );
    let list = team.cmd(&["secret", "list", "--json"]).json();
    assert_eq!(secret(&list, "LEAK_TOKEN")["leak"]["runs"], 1);
    assert!(daemon.stop(Duration::from_secs(30)).success());
    team.assert_not_in_state(TOKEN);
}
