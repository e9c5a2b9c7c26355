//! `supervisor serve` as a child process: schedules, the run queue's limits,
//! systemd notifications, signals, the HTTP endpoints, crash recovery and
//! signed automation webhooks. Everything listens on 127.0.0.1 only.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use nix::sys::signal::Signal;
use serde_json::Value;
use supervisor_tests::signing::webhook_signature;
use supervisor_tests::{Daemon, NO_HEADERS, Team, server_section, wait_until};

const TEAM_VALUE: &str = "team-sentinel-4d1f7a";
const TEAM_SHARED: &str = "team-shared-sentinel-92b0";
const ALICE_VALUE: &str = "alice-personal-sentinel-3c8e";
const ALICE_SHARED: &str = "alice-overrides-shared-51aa";
const BOB_VALUE: &str = "bob-personal-sentinel-77d2";
const PERSONAL_VALUES: [&str; 3] = [ALICE_VALUE, ALICE_SHARED, BOB_VALUE];

const HOOK_SECRET: &str = "hook-signing-secret-0123456789";

/// Stores team secrets and personal ones of both members (alice's own
/// `SHARED_NAME` overrides the team's in her runs).
fn store_secrets(team: &Team) {
    team.secret(&["--team"], "TEAM_TOKEN", TEAM_VALUE);
    team.secret(&["--team"], "SHARED_NAME", TEAM_SHARED);
    team.secret(&["--personal"], "ALICE_TOKEN", ALICE_VALUE);
    team.secret(&["--personal"], "SHARED_NAME", ALICE_SHARED);
    team.secret(&["--personal", "--member", "bob"], "BOB_TOKEN", BOB_VALUE);
}

/// An agent `envdump` that writes its whole environment (`env -0`) to
/// `<out>/<run id>.env`; the run log would only show redacted values.
fn envdump_agent(out: &Path, triggers: &str) -> String {
    format!(
        r#"
[[agents]]
name = "envdump"
command = ["/bin/sh", "-c", 'env -0 > {}/"$SUPERVISOR_RUN_ID".env']
env = {{ PATH = "/usr/bin:/bin" }}
triggers = [{triggers}]
"#,
        out.display()
    )
}

fn out_dir(team: &Team) -> PathBuf {
    let out = team.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    out
}

fn read_env(path: &Path) -> BTreeMap<String, String> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| {
            let v = String::from_utf8(v.to_vec()).unwrap();
            let (k, v) = v.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The environment of a run without a user: exactly the base variables,
/// the run's own and the team's secrets (the team's `SHARED_NAME`, not
/// alice's), and no personal value anywhere.
#[track_caller]
fn assert_team_secrets_only(mut env: BTreeMap<String, String>, run: &Value, trigger: &str) {
    for value in PERSONAL_VALUES {
        assert!(
            !env.values().any(|v| v.contains(value)),
            "a personal secret reached a {trigger} run"
        );
    }
    let mut take = |k: &str| env.remove(k).unwrap_or_else(|| panic!("{k} missing"));
    assert_eq!(take("TEAM_TOKEN"), TEAM_VALUE);
    assert_eq!(take("SHARED_NAME"), TEAM_SHARED);
    assert_eq!(take("PATH"), "/usr/bin:/bin");
    assert_eq!(take("SUPERVISOR_RUN_ID"), run["id"].as_str().unwrap());
    assert_eq!(take("SUPERVISOR_AGENT"), "envdump");
    assert_eq!(take("SUPERVISOR_TRIGGER"), trigger);
    let home = take("HOME");
    assert_eq!(take("TMPDIR"), home);
    env.remove("SUPERVISOR_PROMPT");
    // dash exports the working directory it starts in.
    env.remove("PWD");
    assert!(env.is_empty(), "unexpected variables: {:?}", env.keys());
}

fn runs_where(team: &Team, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    team.runs().into_iter().filter(|r| pred(r)).collect()
}

#[test]
fn an_every_second_schedule_runs_with_team_secrets_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let team = Team::new(&format!(
        "{}{}
[[schedules]]
name = \"each-second\"
cron = \"* * * * * *\"
agent = \"envdump\"
prompt = \"scheduled\"
",
        server_section(""),
        envdump_agent(out, "\"cron\", \"cli\"")
    ));
    store_secrets(&team);
    // Alice's own runs do get her secrets: the sentinels are live.
    assert!(
        team.cmd(&[
            "scope",
            "envdump",
            "--trigger",
            "cli",
            "--member",
            "alice",
            "--json"
        ])
        .ok()
        .contains("ALICE_TOKEN")
    );

    let mut daemon = team.serve();
    let done = |r: &Value| r["trigger"] == "cron" && r["status"] == "succeeded";
    assert!(
        wait_until(Duration::from_secs(20), || runs_where(&team, done).len()
            >= 2),
        "no two scheduled runs:\n{}",
        daemon.log()
    );
    assert!(daemon.stop(Duration::from_secs(30)).success());

    let runs = runs_where(&team, done);
    for run in &runs {
        assert_eq!(run["agent"], "envdump");
        assert_eq!(run["member"], Value::Null);
        let file = out.join(format!("{}.env", run["id"].as_str().unwrap()));
        assert_team_secrets_only(read_env(&file), run, "cron");
    }
    // Firings are a second apart or more: never two of one second.
    let mut started: Vec<&str> = runs
        .iter()
        .map(|r| r["started_at"].as_str().unwrap())
        .collect();
    started.sort();
    started.dedup();
    assert_eq!(started.len(), runs.len());
}

/// `supervisor schedules --json` against firings computed here, by walking
/// time minute by minute and testing each against the crontab meaning
/// written out by hand.
#[test]
fn crontab_expressions_mean_what_crontab_says() {
    type Matcher = fn(&DateTime<chrono_tz::Tz>) -> bool;
    use chrono::Weekday::*;
    let cases: Vec<(&str, &str, &str, Matcher)> = vec![
        // Weekday numbers: 1 = Monday ... 5 = Friday.
        ("numbers", "30 9 * * 1,3,5", "America/New_York", |t| {
            matches!(t.weekday(), Mon | Wed | Fri) && (t.hour(), t.minute()) == (9, 30)
        }),
        // 0 and 7 are both Sunday.
        ("sunday-0", "0 12 * * 0", "UTC", |t| {
            t.weekday() == Sun && (t.hour(), t.minute()) == (12, 0)
        }),
        ("sunday-7", "0 12 * * 7", "UTC", |t| {
            t.weekday() == Sun && (t.hour(), t.minute()) == (12, 0)
        }),
        // Names and a range of names, in any case.
        ("names", "15 8 * * Mon-Fri", "Asia/Tokyo", |t| {
            !matches!(t.weekday(), Sat | Sun) && (t.hour(), t.minute()) == (8, 15)
        }),
        (
            "weekend-names",
            "45 23 * * sat,SUN",
            "Australia/Sydney",
            |t| matches!(t.weekday(), Sat | Sun) && (t.hour(), t.minute()) == (23, 45),
        ),
        // Steps over ranges and over `*`.
        ("steps", "*/20 9-17/4 * * *", "Europe/Berlin", |t| {
            t.minute() % 20 == 0 && [9, 13, 17].contains(&t.hour())
        }),
        ("weekday-steps", "0 10 * * 1-5/2", "UTC", |t| {
            matches!(t.weekday(), Mon | Wed | Fri) && (t.hour(), t.minute()) == (10, 0)
        }),
        // Both day fields restricted: either one matches.
        ("dom-or-dow", "0 0 1,15 * 5", "Europe/Berlin", |t| {
            (t.day() == 1 || t.day() == 15 || t.weekday() == Fri)
                && (t.hour(), t.minute()) == (0, 0)
        }),
        // A day field starting with `*`: both must match.
        ("dom-and-dow", "0 0 */2 * 1", "UTC", |t| {
            t.day() % 2 == 1 && t.weekday() == Mon && (t.hour(), t.minute()) == (0, 0)
        }),
        // A shorthand.
        ("weekly", "@weekly", "America/Los_Angeles", |t| {
            t.weekday() == Sun && (t.hour(), t.minute()) == (0, 0)
        }),
    ];
    let mut config = String::from(
        "[[agents]]\nname = \"a\"\ncommand = [\"/bin/true\"]\ntriggers = [\"cron\"]\n",
    );
    for (name, cron, tz, _) in &cases {
        config.push_str(&format!(
            "[[schedules]]\nname = \"{name}\"\ncron = \"{cron}\"\ntimezone = \"{tz}\"\nagent = \"a\"\n"
        ));
    }
    config.push_str(
        "[[schedules]]\nname = \"seconds\"\ncron = \"*/10 * * * * *\"\nagent = \"a\"\noverlap = \"allow\"\n",
    );
    let team = Team::new(&config);

    let before = Utc::now();
    let listed = team.cmd(&["schedules", "--json"]).json();
    let after = Utc::now();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), cases.len() + 1);

    for ((name, cron, tz, matcher), got) in cases.iter().zip(listed) {
        assert_eq!(got["name"], *name);
        assert_eq!(got["cron"], *cron);
        assert_eq!(got["timezone"], *tz);
        assert_eq!(got["agent"], "a");
        assert_eq!(got["overlap"], "skip");
        let zone: chrono_tz::Tz = tz.parse().unwrap();
        let got: Vec<&str> = got["next"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        // The command read the clock between `before` and `after`.
        let expected = [before, after].map(|now| next_three(now, zone, *matcher));
        assert!(
            expected.iter().any(|e| *e == got),
            "{name} `{cron}` in {tz}: got {got:?}, expected {:?}",
            expected[0]
        );
    }

    let seconds = &listed[cases.len()];
    assert_eq!(seconds["timezone"], "UTC");
    assert_eq!(seconds["overlap"], "allow");
    let times: Vec<DateTime<chrono::FixedOffset>> = seconds["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| DateTime::parse_from_rfc3339(t.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(times.len(), 3);
    assert!(times[0] > before && times[0].timestamp() <= after.timestamp() + 10);
    for pair in times.windows(2) {
        assert_eq!((pair[1] - pair[0]).num_seconds(), 10);
    }
    assert!(
        times
            .iter()
            .all(|t| t.second() % 10 == 0 && t.offset().local_minus_utc() == 0)
    );
}

/// The first three whole minutes after `now` that `matches` accepts, as
/// RFC 3339 in `zone`.
fn next_three(
    now: DateTime<Utc>,
    zone: chrono_tz::Tz,
    matches: fn(&DateTime<chrono_tz::Tz>) -> bool,
) -> Vec<String> {
    let mut t = Utc
        .timestamp_opt(now.timestamp() - now.timestamp().rem_euclid(60) + 60, 0)
        .unwrap();
    let mut found = Vec::new();
    // A year of minutes at most.
    for _ in 0..(366 * 24 * 60) {
        let local = t.with_timezone(&zone);
        if matches(&local) {
            found.push(local.to_rfc3339());
            if found.len() == 3 {
                break;
            }
        }
        t += chrono::TimeDelta::minutes(1);
    }
    found
}

#[test]
fn no_more_than_max_concurrent_runs_are_alive_at_once() {
    let team = Team::new("");
    let record = team.path().join("spans.txt");
    team.write_config(
        "supervisor.toml",
        "alice",
        &format!(
            r#"{}
[[agents]]
name = "slow"
command = ["/bin/sh", "-c", 'echo "start $(date +%s.%N) $$" >> {rec}; sleep 2; echo "end $(date +%s.%N) $$" >> {rec}']
triggers = ["cron"]

[[schedules]]
name = "one"
cron = "* * * * * *"
agent = "slow"
overlap = "allow"

[[schedules]]
name = "two"
cron = "* * * * * *"
agent = "slow"
overlap = "allow"
"#,
            server_section("max_concurrent_runs = 2\nshutdown_grace = \"10s\""),
            rec = record.display()
        ),
    );
    let mut daemon = team.serve();
    // Two runs are due each second and two finish every two seconds: the
    // queue grows while the limit holds.
    let mut most_running = 0;
    let mut most_queued = 0;
    let enough = wait_until(Duration::from_secs(30), || {
        if let Ok(h) = daemon.try_get("/healthz") {
            let h = h.json();
            most_running = most_running.max(h["runs_running"].as_u64().unwrap());
            most_queued = most_queued.max(h["runs_queued"].as_u64().unwrap());
        }
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .matches("end ")
            .count()
            >= 4
    });
    assert!(enough, "runs did not finish:\n{}", daemon.log());
    assert!(daemon.stop(Duration::from_secs(30)).success());
    assert!(most_running <= 2, "{most_running} runs at once");
    assert!(most_queued >= 1, "no run ever waited");

    // Starts and ends of each agent process, from its own record.
    let text = std::fs::read_to_string(&record).unwrap();
    let mut events: Vec<(f64, i32)> = Vec::new();
    let mut spans: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (kind, at, pid) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let at: f64 = at.parse().unwrap();
        *spans.entry(pid.to_owned()).or_default() += 1;
        events.push((at, if kind == "start" { 1 } else { -1 }));
    }
    // Every run that started was allowed to finish within the grace.
    assert!(spans.values().all(|n| *n == 2), "{text}");
    events.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut alive, mut peak) = (0, 0);
    for (_, delta) in events {
        alive += delta;
        peak = peak.max(alive);
    }
    assert_eq!(
        peak, 2,
        "agents alive at once, by their own records:\n{text}"
    );

    // Runs still waiting at shutdown were refused, with the reason recorded.
    let refused = runs_where(&team, |r| r["status"] == "rejected");
    assert!(!refused.is_empty(), "the queue was empty at shutdown");
    assert!(
        refused
            .iter()
            .all(|r| r["reason"].as_str().unwrap().contains("shutting down"))
    );
    let succeeded = runs_where(&team, |r| r["status"] == "succeeded");
    assert_eq!(succeeded.len(), spans.len());
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    let team = Team::new(&server_section(""));
    let socket_path = team.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut cmd = team.serve_command();
    cmd.env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000");
    let mut daemon = Daemon::start(cmd);

    let mut heard = Vec::new();
    let mut wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let n = socket.recv(&mut buf).expect("a notification");
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            heard.push(message.clone());
            if message.lines().any(|l| l == what) {
                return message;
            }
        }
        panic!("never heard {what}; heard {heard:?}");
    };
    let ready = wait_for("READY=1");
    assert!(ready.contains("STATUS=listening on 127.0.0.1:"), "{ready}");
    wait_for("WATCHDOG=1");
    daemon.signal(Signal::SIGTERM);
    wait_for("STOPPING=1");
    assert!(daemon.wait_exit(Duration::from_secs(30)).unwrap().success());
}

/// Processes whose process group is `pgid` and that have not exited.
fn live_members_of_group(pgid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid, pgrp.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        if fields[0] != "Z" && fields[2] == pgid.to_string() {
            found.push(pid);
        }
    }
    found
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn sigterm_interrupts_running_agents_and_exits_zero() {
    let team = Team::new("");
    let dir = team.path();
    // The agent traps nothing; its grandchild ignores SIGTERM, so only the
    // SIGKILL to the whole group after the agent ends can stop it.
    let script = "echo $$ > @DIR@/leader.tmp && mv @DIR@/leader.tmp @DIR@/leader; \
                  sh -c 'trap \"\" TERM; sleep 30' & \
                  echo $! > @DIR@/grandchild.tmp && mv @DIR@/grandchild.tmp @DIR@/grandchild; \
                  sleep 30"
        .replace("@DIR@", &dir.display().to_string());
    team.write_config(
        "supervisor.toml",
        "alice",
        &format!(
            "{}
[[agents]]
name = \"sleeper\"
command = [\"/bin/sh\", \"-c\", {}]
triggers = [\"cron\"]

[[schedules]]
name = \"once-a-second\"
cron = \"* * * * * *\"
agent = \"sleeper\"
",
            server_section("shutdown_grace = \"1s\""),
            serde_json::to_string(&script).unwrap()
        ),
    );
    let mut daemon = team.serve();
    assert!(
        wait_until(Duration::from_secs(20), || dir.join("grandchild").exists()),
        "the agent did not start:\n{}",
        daemon.log()
    );
    let leader = read_pid(&dir.join("leader")).unwrap();
    let grandchild = read_pid(&dir.join("grandchild")).unwrap();
    assert!(live_members_of_group(leader).contains(&grandchild));

    let started = Instant::now();
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the grace is 1s and the agent obeys SIGTERM"
    );

    let runs = team.runs();
    let run = runs
        .iter()
        .find(|r| r["status"] != "rejected")
        .expect("the run");
    assert_eq!(run["status"], "interrupted", "{run}");
    let show = team
        .cmd(&["runs", "show", run["id"].as_str().unwrap(), "--json"])
        .json();
    let exit = &show["detail"]["exit"];
    assert_eq!(
        *exit,
        serde_json::json!({"code": null, "signal": 15}),
        "the agent died of SIGTERM: {show}"
    );
    assert_eq!(
        runs.iter().filter(|r| r["status"] == "running").count(),
        0,
        "no run is left marked running"
    );
    assert!(
        wait_until(Duration::from_secs(5), || live_members_of_group(leader)
            .is_empty()),
        "processes of the run remain: {:?}",
        live_members_of_group(leader)
    );
}

/// A config with an agent `marker` that creates `<dir>/<prompt>-<run id>`,
/// and one every-second schedule per name, each with its name as prompt.
fn marker_config(dir: &Path, schedules: &[&str]) -> String {
    let mut text = format!(
        r#"{}
[[agents]]
name = "marker"
command = ["/bin/sh", "-c", 'touch {}/"$SUPERVISOR_PROMPT-$SUPERVISOR_RUN_ID"']
triggers = ["cron"]
"#,
        server_section(""),
        dir.display()
    );
    for name in schedules {
        text.push_str(&format!(
            "[[schedules]]\nname = \"{name}\"\ncron = \"* * * * * *\"\nagent = \"marker\"\nprompt = \"{name}\"\n"
        ));
    }
    text
}

fn markers(dir: &Path, schedule: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{schedule}-"))
        })
        .count()
}

#[test]
fn sighup_applies_a_good_config_and_keeps_the_old_one_on_a_bad_one() {
    let marks = tempfile::tempdir().unwrap();
    let dir = marks.path();
    let team = Team::new(&marker_config(dir, &["a"]));
    let write = |text: &str| {
        std::fs::write(team.path().join("supervisor.toml"), text).unwrap();
    };
    let mut daemon = team.serve();
    let fires = |name: &str| {
        let before = markers(dir, name);
        wait_until(Duration::from_secs(10), || markers(dir, name) >= before + 2)
    };
    assert!(fires("a"), "{}", daemon.log());

    // A new schedule starts.
    team.write_config("supervisor.toml", "alice", &marker_config(dir, &["a", "b"]));
    daemon.signal(Signal::SIGHUP);
    assert!(daemon.wait_for_log("config reloaded", Duration::from_secs(10)));
    assert!(
        fires("b"),
        "the new schedule never fired:\n{}",
        daemon.log()
    );

    // Broken configs are refused and both schedules go on: TOML that does
    // not parse, then a schedule the daemon could not fire.
    let good = std::fs::read_to_string(team.path().join("supervisor.toml")).unwrap();
    for (i, broken) in [
        format!("{good}\n[[schedules]\nname = "),
        good.replace("cron = \"* * * * * *\"", "cron = \"* * * *\""),
    ]
    .iter()
    .enumerate()
    {
        write(broken);
        daemon.signal(Signal::SIGHUP);
        assert!(
            wait_until(Duration::from_secs(10), || daemon
                .log()
                .matches("config reload failed")
                .count()
                > i),
            "{}",
            daemon.log()
        );
        assert!(fires("a") && fires("b"), "{}", daemon.log());
    }

    // A removed schedule stops.
    team.write_config("supervisor.toml", "alice", &marker_config(dir, &["b"]));
    daemon.signal(Signal::SIGHUP);
    assert!(wait_until(Duration::from_secs(10), || daemon
        .log()
        .matches("config reloaded")
        .count()
        == 2));
    // A run submitted just before the reload may still be finishing.
    std::thread::sleep(Duration::from_millis(1500));
    let a = markers(dir, "a");
    assert!(fires("b"));
    assert_eq!(markers(dir, "a"), a, "the removed schedule still fires");
    assert!(daemon.stop(Duration::from_secs(30)).success());
}

/// One Prometheus sample line: `name{labels} value`.
fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let valid_name = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !valid_name {
        return None;
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let close = loop {
            let (i, c) = chars.next()?;
            match c {
                '}' if key.is_empty() => break i,
                ',' if key.is_empty() => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '\\' => value.push(chars.next()?.1),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c if c.is_ascii_alphanumeric() || c == '_' => key.push(c),
                _ => return None,
            }
        };
        rest = &body[close + 1..];
    }
    let value = rest.strip_prefix(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name.to_owned(), labels, value))
}

fn hook_config(agent_triggers: &str, out: &Path, secret_file: &Path) -> String {
    format!(
        "{}{}
[[webhooks]]
name = \"alerts\"
agent = \"envdump\"
secret = {{ file = \"{}\" }}
",
        server_section(""),
        envdump_agent(out, agent_triggers),
        secret_file.display()
    )
}

fn hook_secret_file(team: &Team) -> PathBuf {
    let path = team.path().join("hook.secret");
    std::fs::write(&path, format!("{HOOK_SECRET}\n")).unwrap();
    path
}

#[test]
fn healthz_metrics_body_limit_and_slow_clients() {
    let team = Team::new("");
    let out = out_dir(&team);
    let secret = hook_secret_file(&team);
    team.write_config(
        "supervisor.toml",
        "alice",
        &format!(
            "{}\n[[schedules]]\nname = \"yearly\"\ncron = \"@yearly\"\ntimezone = \"Europe/Berlin\"\nagent = \"envdump\"\n",
            hook_config("\"webhook\", \"cron\"", &out, &secret)
        ),
    );
    let mut daemon = team.serve();

    // A client that never finishes its headers is cut off (after 10 s);
    // everyone else is served meanwhile.
    let slow = {
        let addr = daemon.addr;
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
                .unwrap();
            let started = Instant::now();
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return started.elapsed(),
                    Ok(_) => {}
                }
            }
        })
    };

    let health = daemon.get("/healthz");
    assert_eq!(health.status, 200);
    assert!(health.header("content-type").unwrap().contains("json"));
    let h = health.json();
    assert_eq!(h["status"], "ok");
    assert!(!h["version"].as_str().unwrap().is_empty());
    assert!(h["uptime_seconds"].is_u64());
    assert_eq!(h["runs_running"], 0);
    assert_eq!(h["runs_queued"], 0);
    let schedule = &h["schedules"][0];
    assert_eq!(schedule["name"], "yearly");
    assert_eq!(schedule["agent"], "envdump");
    let next = DateTime::parse_from_rfc3339(schedule["next"].as_str().unwrap()).unwrap();
    assert_eq!((next.month(), next.day(), next.hour()), (1, 1, 0));

    // A body over the webhook limit (256 KiB) is refused unread: 413, no run.
    let big = vec![b'x'; 256 * 1024 + 1];
    let ts = Utc::now().timestamp().to_string();
    let sig = sign(&ts, &big);
    let refused = daemon.post(
        "/hooks/alerts",
        &[
            ("X-Supervisor-Timestamp", &ts),
            ("X-Supervisor-Signature", &sig),
        ],
        &big,
    );
    assert_eq!(refused.status, 413, "{}", refused.text());
    assert_eq!(daemon.get("/nowhere").status, 404);

    let metrics = daemon.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    let text = metrics.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line == "# EOF",
                "{line}"
            );
            continue;
        }
        samples.push(parse_sample(line).unwrap_or_else(|| panic!("not a sample: {line:?}")));
    }
    let value = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
            })
            .map(|s| s.2)
    };
    assert_eq!(value("supervisor_runs_running", &[]), Some(0.0));
    assert_eq!(value("supervisor_runs_queued", &[]), Some(0.0));
    assert_eq!(
        value(
            "supervisor_webhook_requests_total",
            &[("source", "webhook"), ("result", "too_large")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "supervisor_schedule_lateness_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(0.0)
    );
    assert!(value("supervisor_redactions_total", &[]).is_some());
    assert!(team.runs().is_empty());

    let cut_after = slow.join().unwrap();
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(20)).contains(&cut_after),
        "the slow client was cut after {cut_after:?}"
    );
    assert_eq!(daemon.get("/healthz").status, 200);
    assert!(daemon.stop(Duration::from_secs(30)).success());
}

#[test]
fn a_run_left_running_by_a_killed_daemon_is_lost_after_restart() {
    let team = Team::new("");
    let dir = team.path();
    let script = "echo $$ > @DIR@/pid.tmp && mv @DIR@/pid.tmp @DIR@/pid; exec sleep 30"
        .replace("@DIR@", &dir.display().to_string());
    let config = |schedules: &str| {
        format!(
            "{}
[[agents]]
name = \"sleeper\"
command = [\"/bin/sh\", \"-c\", {}]
triggers = [\"cron\"]
{schedules}",
            server_section("shutdown_grace = \"1s\""),
            serde_json::to_string(&script).unwrap()
        )
    };
    team.write_config(
        "supervisor.toml",
        "alice",
        &config("[[schedules]]\nname = \"now\"\ncron = \"* * * * * *\"\nagent = \"sleeper\"\n"),
    );
    let mut daemon = team.serve();
    assert!(
        wait_until(Duration::from_secs(20), || dir.join("pid").exists()),
        "{}",
        daemon.log()
    );
    let agent = read_pid(&dir.join("pid")).unwrap();
    let running = runs_where(&team, |r| r["status"] == "running");
    assert_eq!(running.len(), 1);
    let id = running[0]["id"].as_str().unwrap().to_owned();

    daemon.kill();
    // The parent-death signal takes the agent with the daemon.
    assert!(
        wait_until(Duration::from_secs(5), || live_members_of_group(agent)
            .is_empty()),
        "the agent outlived its daemon"
    );
    assert_eq!(team.runs()[0]["status"], "running");

    team.write_config("supervisor.toml", "alice", &config(""));
    let mut daemon = team.serve();
    let run = team.cmd(&["runs", "show", &id, "--json"]).json();
    assert_eq!(run["status"], "lost", "{run}");
    assert!(run["ended_at"].is_string());
    assert!(daemon.log().contains("marked lost"), "{}", daemon.log());
    assert!(daemon.stop(Duration::from_secs(30)).success());
}

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` under the hook's secret.
fn sign(timestamp: &str, body: &[u8]) -> String {
    webhook_signature(HOOK_SECRET, timestamp, body)
}

#[test]
fn signed_webhooks_run_with_team_secrets_and_nothing_else_gets_in() {
    let team = Team::new("");
    let out = out_dir(&team);
    let secret = hook_secret_file(&team);
    team.write_config(
        "supervisor.toml",
        "alice",
        &hook_config("\"webhook\", \"cli\"", &out, &secret),
    );
    store_secrets(&team);
    let mut daemon = team.serve();
    let post = |ts: &str, sig: &str, body: &[u8]| {
        daemon.post(
            "/hooks/alerts",
            &[
                ("X-Supervisor-Timestamp", ts),
                ("X-Supervisor-Signature", sig),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    let body = br#"{"alert":"disk full on db-1"}"#;
    let now = Utc::now().timestamp().to_string();

    let ok = post(&now, &sign(&now, body), body);
    assert_eq!(ok.status, 202, "{}", ok.text());
    let finished = |r: &Value| r["status"] == "succeeded";
    assert!(
        wait_until(Duration::from_secs(20), || runs_where(&team, finished)
            .len()
            == 1),
        "{}",
        daemon.log()
    );

    // The same request again, a wrong signature, a timestamp six minutes
    // old (signed correctly), a body over the limit, an unknown hook.
    let replay = post(&now, &sign(&now, body), body);
    assert_eq!(replay.status, 200, "{}", replay.text());
    assert!(replay.text().contains("duplicate"));
    let other = br#"{"alert":"another"}"#;
    let forged = post(&now, &sign(&now, body), other);
    assert_eq!(forged.status, 401);
    let old = (Utc::now().timestamp() - 360).to_string();
    assert_eq!(post(&old, &sign(&old, other), other).status, 401);
    let big = vec![b'{'; 256 * 1024 + 10];
    assert_eq!(post(&now, &sign(&now, &big), &big).status, 413);
    let unknown = daemon.post("/hooks/nope", NO_HEADERS, b"{}");
    assert_eq!(unknown.status, 404);

    // Give a wrongly accepted request time to show up as a run.
    std::thread::sleep(Duration::from_millis(1500));
    let runs = team.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run["trigger"], "webhook");
    assert_eq!(run["member"], Value::Null);
    let file = out.join(format!("{}.env", run["id"].as_str().unwrap()));
    let env = read_env(&file);
    assert_eq!(
        env.get("SUPERVISOR_PROMPT").map(String::as_bytes),
        Some(&body[..])
    );
    assert_team_secrets_only(env, run, "webhook");

    let metrics = daemon.get("/metrics").text();
    for (result, n) in [
        ("accepted", 1),
        ("duplicate", 1),
        ("bad_signature", 1),
        ("stale", 1),
        ("too_large", 1),
        ("unknown_hook", 1),
    ] {
        let line = format!(
            "supervisor_webhook_requests_total{{source=\"webhook\",result=\"{result}\"}} {n}"
        );
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    assert!(daemon.stop(Duration::from_secs(30)).success());
}

#[test]
fn the_sample_parser_reads_prometheus_lines() {
    let (name, labels, value) = parse_sample(r#"a_total{x="1",y="q\"uote"} 3"#).unwrap();
    assert_eq!(name, "a_total");
    assert_eq!(labels["y"], "q\"uote");
    assert_eq!(value, 3.0);
    assert_eq!(parse_sample("up 1").unwrap().2, 1.0);
    assert!(parse_sample("1bad 1").is_none());
    assert!(parse_sample("a{x=1} 1").is_none());
    assert!(parse_sample("a 1 2 3").is_none());
}

#[test]
fn serve_refuses_to_start_with_a_schedule_that_cannot_fire() {
    let team = Team::new(&format!(
        "{}
[[agents]]
name = \"a\"
command = [\"/bin/true\"]
triggers = [\"cron\"]

[[schedules]]
name = \"typo\"
cron = \"0 6 * * mon\"
timezone = \"Europe/Berln\"
agent = \"a\"
",
        server_section("")
    ));
    let mut serve = team.serve_command();
    serve
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(team.path().join("serve.err")).unwrap());
    let mut child = serve.spawn().unwrap();
    let mut status = None;
    wait_until(Duration::from_secs(20), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if status.is_none() {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("the daemon started with a schedule that cannot fire");
    }
    let err = std::fs::read_to_string(team.path().join("serve.err")).unwrap();
    assert_eq!(status.unwrap().code(), Some(1), "{err}");
    // Located in the file, as `config check` locates it.
    let config = team.path().join("supervisor.toml");
    let line = err
        .lines()
        .find(|l| l.contains("unknown time zone `Europe/Berln`"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.starts_with(&format!("{}:", config.display())),
        "{line}"
    );
    let check = team.cmd(&["config", "check"]);
    assert!(check.err().contains("Europe/Berln"), "{check}");
}

/// As root, an agent with `user = "nobody"` (what a service configured to
/// switch users does) can write to its private HOME under the state directory.
#[test]
fn an_agent_running_as_another_user_can_use_its_home() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let team = Team::new(
        r#"
[[agents]]
name = "as-nobody"
user = "nobody"
command = ["/bin/sh", "-c", 'test "$(id -u)" != 0 && echo note > "$HOME/note" && cat "$HOME/note" && test -d "$TMPDIR"']
triggers = ["cli"]
"#,
    );
    // The team's temporary directory stands for /var/lib: searchable by all.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(team.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let run = team.cmd(&["run", "as-nobody"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("note"), "{run}");
    // Only search permission was added; the store and key stay private.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&team.state_dir()), 0o711);
    assert_eq!(mode(&team.state_dir().join("master.key")), 0o600);
}
