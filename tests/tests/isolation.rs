//! The agent's process through the real binary: what it inherits, where it
//! runs, and that nothing of a run outlives it (timeout, Ctrl-C, the
//! supervisor's death).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use supervisor_tests::{Team, alive, eventually};

const AGENTS: &str = r#"
[[agents]]
name = "sleeper"
command = ["/bin/sleep", "30"]
timeout = "60s"
triggers = ["cli"]

[[agents]]
name = "family"
command = ["/bin/sh", "-c", "sleep 300 & echo $! > grandchild.pid; echo $$ > agent.pid; echo started > started; wait"]
timeout = "60s"
kill_grace = "5s"
triggers = ["cli"]
env = { PATH = "/usr/bin:/bin" }

[[agents]]
name = "overtime"
command = ["/bin/sh", "-c", "sleep 300 & echo $! > grandchild.pid; echo $$ > agent.pid; wait"]
timeout = "500ms"
kill_grace = "5s"
triggers = ["cli"]
env = { PATH = "/usr/bin:/bin" }

[[agents]]
name = "stubborn"
command = ["/bin/sh", "-c", "trap '' TERM; sleep 300 & echo $! > grandchild.pid; echo $$ > agent.pid; wait"]
timeout = "500ms"
kill_grace = "500ms"
triggers = ["cli"]
env = { PATH = "/usr/bin:/bin" }
"#;

/// `supervisor run AGENT` started in the background, output discarded.
fn start(team: &Team, agent: &str) -> Child {
    team.command(&["run", agent])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start supervisor")
}

/// The fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ...
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The live child processes of `parent`.
fn children_of(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|f| f[1] == parent.to_string() && alive(pid)))
        .collect()
}

/// The `sleep` agent `supervisor run` started, once it runs: other children
/// of the supervisor (the short-lived probes of what the host offers) are
/// not it.
#[track_caller]
fn sleeper_of(sup_pid: i32) -> i32 {
    let mut found = None;
    let started = eventually(|| {
        found = children_of(sup_pid).into_iter().find(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        });
        found.is_some()
    });
    assert!(started, "the agent never started");
    found.unwrap()
}

/// Waits for a file the agent writes and returns the pid in it.
#[track_caller]
fn pid_in(path: &Path) -> i32 {
    assert!(
        eventually(|| std::fs::read_to_string(path).is_ok_and(|s| s.ends_with('\n'))),
        "{} never appeared",
        path.display()
    );
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[track_caller]
fn assert_gone(pids: &[i32]) {
    for &pid in pids {
        assert!(eventually(|| !alive(pid)), "process {pid} outlived its run");
    }
}

#[test]
fn the_agent_has_only_stdio_its_own_session_and_no_core_dumps() {
    let team = Team::new(AGENTS);
    let mut sup = start(&team, "sleeper");
    let sup_pid = sup.id() as i32;
    let agent = sleeper_of(sup_pid);

    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{agent}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "descriptors of the agent");
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{agent}/fd/{fd}")).unwrap();
        assert!(
            target.to_string_lossy().starts_with("pipe:"),
            "fd {fd} is {}",
            target.display()
        );
    }

    let f = stat_fields(agent).unwrap();
    assert_eq!(
        (f[2].as_str(), f[3].as_str()),
        (&*agent.to_string(), &*agent.to_string()),
        "pgrp and session are the agent's own"
    );
    let own = stat_fields(std::process::id() as i32).unwrap();
    assert_ne!(f[3], own[3], "the agent left the tests' session");

    let limits = std::fs::read_to_string(format!("/proc/{agent}/limits")).unwrap();
    let core = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "bytes"]
    );
    let status: BTreeMap<String, String> = std::fs::read_to_string(format!("/proc/{agent}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect();
    assert_eq!(status["NoNewPrivs"], "1");

    // The supervisor passes on how its agent ended.
    kill(Pid::from_raw(agent), Signal::SIGTERM).unwrap();
    assert_eq!(sup.wait().unwrap().code(), Some(143));
    let last = team.last_run();
    assert_eq!(
        (&last["status"], &last["signal"]),
        (&"killed".into(), &15.into())
    );
}

#[test]
fn the_agent_dies_with_the_supervisor() {
    let team = Team::new(AGENTS);
    let mut sup = start(&team, "sleeper");
    let sup_pid = sup.id() as i32;
    let agent = sleeper_of(sup_pid);
    kill(Pid::from_raw(sup_pid), Signal::SIGKILL).unwrap();
    sup.wait().unwrap();
    assert_gone(&[agent]);
}

#[test]
fn a_timeout_stops_the_whole_process_group() {
    let team = Team::new(AGENTS);
    let run = team.cmd(&["run", "overtime"]);
    assert_eq!(run.code, Some(124), "{run}");
    let agent = pid_in(&team.path().join("agent.pid"));
    let grandchild = pid_in(&team.path().join("grandchild.pid"));
    assert_gone(&[agent, grandchild]);
    let record = team.last_run();
    assert_eq!(record["status"], "timed_out");
    // Said on stderr although it is no terminal (a file, here): a script's
    // log shows why the command exited 124.
    let line = format!(
        "supervisor: run {} timed_out after ",
        record["id"].as_str().unwrap()
    );
    assert!(run.stderr.contains(&line), "{run}");
    assert!(run.stderr.contains(", exit status 124"), "{run}");
}

#[test]
fn a_timeout_kills_what_ignores_sigterm_after_the_grace() {
    let team = Team::new(AGENTS);
    let started = std::time::Instant::now();
    let run = team.cmd(&["run", "stubborn"]);
    assert_eq!(run.code, Some(124), "{run}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1000),
        "timeout + grace"
    );
    let agent = pid_in(&team.path().join("agent.pid"));
    let grandchild = pid_in(&team.path().join("grandchild.pid"));
    assert_gone(&[agent, grandchild]);
    assert_eq!(team.last_run()["status"], "timed_out");
}

/// Sends `signal` to a running `supervisor run` of an agent with a grandchild;
/// returns the supervisor's exit code once everything it started is gone.
fn interrupt_run_with(signal: Signal) -> Option<i32> {
    let team = Team::new(AGENTS);
    let mut sup = team
        .command(&["run", "family"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(team.path().join("run.stderr")).unwrap())
        .spawn()
        .expect("start supervisor");
    let started = team.path().join("started");
    assert!(eventually(|| started.exists()), "the agent never started");
    let agent = pid_in(&team.path().join("agent.pid"));
    let grandchild = pid_in(&team.path().join("grandchild.pid"));
    assert!(alive(agent) && alive(grandchild));

    kill(Pid::from_raw(sup.id() as i32), signal).unwrap();
    let status = sup.wait().unwrap();
    assert_gone(&[agent, grandchild]);
    let record = team.last_run();
    assert_eq!(record["status"], "interrupted");
    // Said on stderr, which is a file here, not a terminal.
    let stderr = std::fs::read_to_string(team.path().join("run.stderr")).unwrap();
    let line = format!(
        "supervisor: run {} interrupted after ",
        record["id"].as_str().unwrap()
    );
    assert!(stderr.contains(&line), "{stderr}");
    let code = status.code().unwrap();
    assert!(
        stderr.contains(&format!(", exit status {code}")),
        "{stderr}"
    );
    status.code()
}

#[test]
fn ctrl_c_stops_the_run_and_everything_it_started() {
    assert_eq!(interrupt_run_with(Signal::SIGINT), Some(130));
}

#[test]
fn sigterm_stops_the_run_and_exits_as_a_shell_would_report_it() {
    assert_eq!(interrupt_run_with(Signal::SIGTERM), Some(143));
}

#[test]
fn ctrl_c_at_any_moment_leaves_no_run_behind() {
    // Early signals land while the supervisor opens the store, records the
    // run or starts the agent: whenever it comes, the run must end recorded,
    // its home removed and its processes gone.
    let team = Team::new(AGENTS);
    let mut interrupted = 0;
    for delay_ms in 0..45 {
        for f in ["agent.pid", "grandchild.pid", "started"] {
            let _ = std::fs::remove_file(team.path().join(f));
        }
        let mut sup = start(&team, "family");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        kill(Pid::from_raw(sup.id() as i32), Signal::SIGINT).unwrap();
        let status = sup.wait().unwrap();
        if status.code() == Some(130) {
            interrupted += 1;
        }
        for f in ["agent.pid", "grandchild.pid"] {
            if let Ok(text) = std::fs::read_to_string(team.path().join(f)) {
                if let Ok(pid) = text.trim().parse() {
                    assert_gone(&[pid]);
                }
            }
        }
        let runs = team
            .cmd(&["runs", "list", "--json", "--limit", "100"])
            .json();
        for r in runs.as_array().unwrap() {
            assert_ne!(
                r["status"], "running",
                "after a SIGINT at {delay_ms} ms: {r}"
            );
        }
        let homes: Vec<_> = std::fs::read_dir(team.state_dir().join("tmp"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(
            homes.is_empty(),
            "after a SIGINT at {delay_ms} ms: {homes:?}"
        );
    }
    assert!(interrupted > 0, "no attempt reached the agent");
}
