//! Containment through the real binary: nothing of a run outlives it (double
//! forks, setsid, a crash of the supervisor), its timeout holds even when an
//! escaped process holds its output pipe, limits apply or are reported,
//! a Landlock policy and `network = false` hold.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use supervisor_tests::cgroup::TestCgroup;
use supervisor_tests::signing::{now_secs, webhook_headers};
use supervisor_tests::{Team, alive, eventually, server_section, wait_for};

const TOKEN: &str = "team-token-escape-77a1c0";

/// An agent that leaves a double-forked, setsid'd process behind which writes
/// the secret to disk two seconds later, then exits at once.
fn escape_agent(out: &Path) -> String {
    let script = r#"( setsid sh -c 'echo $$ > "$OUT/escaped.tmp"; mv "$OUT/escaped.tmp" "$OUT/escaped.pid"; sleep 2; echo "$TEAM_TOKEN" > "$OUT/late"' </dev/null >/dev/null 2>&1 & ); while [ ! -e "$OUT/escaped.pid" ]; do sleep 0.05; done"#;
    format!(
        "[[agents]]\nname = \"escape\"\ncommand = [\"/bin/sh\", \"-c\", {}]\ntriggers = [\"cli\", \"webhook\"]\nenv = {{ PATH = \"/usr/bin:/bin\", OUT = {} }}\n",
        serde_json::to_string(script).unwrap(),
        serde_json::to_string(&out.to_string_lossy()).unwrap()
    )
}

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

fn homes(team: &Team) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(team.state_dir().join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Runs the escape agent with `extra` config and checks that nothing of it
/// is alive or writes anything after the run.
fn escape_leaves_nothing(extra: &str, cgroup: Option<&TestCgroup>) {
    let out = tempfile::tempdir().unwrap();
    let team = Team::new(&format!("{extra}\n{}", escape_agent(out.path())));
    team.secret(&["--team"], "TEAM_TOKEN", TOKEN);
    let run = team.cmd(&["run", "escape"]);
    assert_eq!(run.code, Some(0), "{run}");
    let escaped = pid_in(&out.path().join("escaped.pid"));
    assert!(
        eventually(|| !alive(escaped)),
        "the escaped process {escaped} outlived its run"
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !out.path().join("late").exists(),
        "the secret was written after the run"
    );
    assert!(homes(&team).is_empty());
    if let Some(cg) = cgroup {
        assert!(cg.runs().is_empty(), "left: {:?}", cg.runs());
        let record = team.last_run();
        let detail = team
            .cmd(&["runs", "show", record["id"].as_str().unwrap(), "--json"])
            .json();
        assert!(
            detail.to_string().contains(&cg.path.display().to_string()),
            "{detail}"
        );
    }
}

#[test]
fn a_double_forked_setsid_process_dies_with_its_run_in_a_cgroup() {
    let Some(cg) = TestCgroup::create("escape") else {
        eprintln!("skipped: needs root and cgroup v2");
        return;
    };
    escape_leaves_nothing(&cg.section(), Some(&cg));
}

#[test]
fn without_cgroups_the_cli_adopts_and_kills_the_escaped_process() {
    escape_leaves_nothing("[sandbox]\ncgroup = \"off\"\n", None);
}

fn holder_agent(out: &Path) -> String {
    let script = r#"setsid sh -c 'echo $$ > "$OUT/holder.pid"; exec sleep 30' & exec sleep 30"#;
    format!(
        "[[agents]]\nname = \"holder\"\ncommand = [\"/bin/sh\", \"-c\", {}]\ntimeout = \"1s\"\nkill_grace = \"1s\"\ntriggers = [\"cli\", \"webhook\"]\nenv = {{ PATH = \"/usr/bin:/bin\", OUT = {} }}\n",
        serde_json::to_string(script).unwrap(),
        serde_json::to_string(&out.to_string_lossy()).unwrap()
    )
}

/// The timeout holds within kill_grace plus a margin although an escaped
/// process keeps the output pipe open.
fn timeout_holds(extra: &str) {
    let out = tempfile::tempdir().unwrap();
    let team = Team::new(&format!("{extra}\n{}", holder_agent(out.path())));
    let started = Instant::now();
    let run = team.cmd(&["run", "holder"]);
    let took = started.elapsed();
    assert_eq!(run.code, Some(124), "{run}");
    assert!(took < Duration::from_secs(4), "the run took {took:?}");
    let holder = pid_in(&out.path().join("holder.pid"));
    assert!(
        eventually(|| !alive(holder)),
        "the pipe holder {holder} outlived the run"
    );
}

#[test]
fn a_timeout_holds_with_an_escaped_process_holding_the_pipe() {
    match TestCgroup::create("holder") {
        Some(cg) => timeout_holds(&cg.section()),
        None => eprintln!("skipped the cgroup case: needs root and cgroup v2"),
    }
    timeout_holds("[sandbox]\ncgroup = \"off\"\n");
}

/// The daemon without cgroups cannot kill a process that left the group,
/// but its run, slot and shutdown do not wait for it.
#[test]
fn the_daemon_does_not_wait_for_an_escaped_pipe_holder() {
    let out = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[sandbox]\ncgroup = \"off\"\n{}[[webhooks]]\nname = \"go\"\nagent = \"holder\"\nsecret = {{ file = \"hook-secret\" }}\n",
        server_section(""),
        holder_agent(out.path())
    );
    let team = Team::uninitialised(&config);
    std::fs::write(team.path().join("hook-secret"), "hook-secret-value-1").unwrap();
    team.cmd(&["init"]).ok();
    let mut daemon = team.serve();
    // Where no cgroup is used, the daemon says so and why.
    let health = daemon.get("/healthz").json();
    assert_eq!(health["containment"]["cgroup"]["mode"], "none", "{health}");
    assert!(
        health["containment"]["cgroup"]["reason"]
            .as_str()
            .unwrap()
            .contains("turned off"),
        "{health}"
    );
    assert!(
        daemon
            .log()
            .contains("containment: cgroup    none: turned off"),
        "{}",
        daemon.log()
    );
    let body = b"{}";
    let started = Instant::now();
    let r = daemon.post(
        "/hooks/go",
        &webhook_headers("hook-secret-value-1", now_secs(), body),
        body,
    );
    assert_eq!(r.status, 202, "{r:?}");
    let runs = team.finished_runs(1, Duration::from_secs(20));
    assert_eq!(runs[0]["status"], "timed_out");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    daemon.stop(Duration::from_secs(10));
    let holder = pid_in(&out.path().join("holder.pid"));
    let _ = kill(Pid::from_raw(holder), Signal::SIGKILL);
}

#[test]
fn a_pids_limit_stops_a_runaway_agent_or_is_reported_as_not_applied() {
    let Some(cg) = TestCgroup::create("limits") else {
        eprintln!("skipped: needs root and cgroup v2");
        return;
    };
    let script = r#"i=0; while [ $i -lt 40 ]; do sleep 1 & i=$((i+1)); done 2>/dev/null; wait; echo forked-all"#;
    let team = Team::new(&format!(
        "{}[[agents]]\nname = \"bomb\"\ncommand = [\"/bin/sh\", \"-c\", {}]\npids_max = 8\nmemory_max = \"64 MiB\"\nenv = {{ PATH = \"/usr/bin:/bin\" }}\n",
        cg.section(),
        serde_json::to_string(script).unwrap()
    ));
    let check = team.cmd(&["config", "check"]);
    let run = team.cmd(&["run", "bomb", "--json"]);
    let record: serde_json::Value =
        serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    let id = record["id"].as_str().unwrap();
    let shown = team.cmd(&["runs", "show", id, "--json"]).json();
    let limits = shown["detail"]["containment"]["limits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(limits.len(), 2, "{shown}");
    if cg.offers("pids") {
        assert!(!run.stdout.contains("forked-all"), "{run}");
        assert!(
            limits
                .iter()
                .any(|l| l["name"] == "pids_max" && l["not_applied"].is_null()),
            "{shown}"
        );
    } else {
        // This host binds the controllers to cgroup v1: each limit is named,
        // with why, at `config check`, at the run, and in its record.
        for text in [&check.stderr, &run.stderr] {
            assert!(
                text.contains("warning: agent `bomb`: pids_max = 8 is not applied"),
                "{text}"
            );
            assert!(
                text.contains("memory_max = 67108864 bytes is not applied"),
                "{text}"
            );
        }
        assert_eq!(check.code, Some(0), "{check}");
        assert!(
            limits.iter().all(|l| l["not_applied"]
                .as_str()
                .is_some_and(|w| w.contains("controller is not available"))),
            "{shown}"
        );
        assert!(run.stdout.contains("forked-all"), "{run}");
    }
}

#[test]
fn a_landlock_policy_allows_its_lists_only_and_never_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let (allowed, other, out) = (
        dir.path().join("allowed"),
        dir.path().join("other"),
        dir.path().join("out"),
    );
    for d in [&allowed, &other, &out] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(allowed.join("data"), "allowed-data").unwrap();
    std::fs::write(other.join("data"), "sentinel-outside-9a3f").unwrap();
    let script = r#"cat "$A/data"; echo; cat "$B/data" 2>/dev/null || echo outside-denied; cat "$S/store.db" 2>/dev/null | head -c 16 | grep -q SQLite && echo STATE-READ || echo state-denied; ls "$S" 2>/dev/null | grep -q store && echo STATE-LISTED; echo w > "$O/written" && echo out-ok; echo w > "$A/w" 2>/dev/null || echo read-only"#;
    let team = Team::new("");
    let q = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap();
    team.write_config(
        "supervisor.toml",
        "alice",
        &format!(
            "[[agents]]\nname = \"ll\"\ncommand = [\"/bin/sh\", \"-c\", {}]\nread = [{}]\nwrite = [{}]\nenv = {{ PATH = \"/usr/bin:/bin\", A = {}, B = {}, O = {}, S = {} }}\n",
            serde_json::to_string(script).unwrap(),
            q(&allowed),
            q(&out),
            q(&allowed),
            q(&other),
            q(&out),
            q(&team.state_dir()),
        ),
    );
    // config check names the layers this host gives the agent.
    let check = team.cmd(&["config", "check"]);
    assert!(
        check
            .ok()
            .contains("contained by: mount namespace, landlock policy"),
        "{check}"
    );
    assert!(check.stdout.contains("landlock  ABI"), "{check}");
    let run = team.cmd(&["run", "ll"]);
    assert_eq!(run.code, Some(0), "{run}");
    for expected in [
        "allowed-data",
        "outside-denied",
        "state-denied",
        "out-ok",
        "read-only",
    ] {
        assert!(run.stdout.contains(expected), "{expected}: {run}");
    }
    for leak in ["sentinel-outside", "STATE-READ", "STATE-LISTED"] {
        assert!(!run.all().contains(leak), "{leak}: {run}");
    }
    let layers = team
        .cmd(&[
            "runs",
            "show",
            team.last_run()["id"].as_str().unwrap(),
            "--json",
        ])
        .json();
    assert!(
        layers["detail"]["containment"]["layers"]
            .to_string()
            .contains("landlock policy"),
        "{layers}"
    );
}

#[test]
fn a_no_network_agent_cannot_reach_a_listener_on_the_hosts_loopback() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "bash -c 'echo hello > /dev/tcp/127.0.0.1/{port}' 2>/dev/null && echo CONNECTED || echo refused"
    );
    let agent = |name: &str, network: bool| {
        format!(
            "[[agents]]\nname = \"{name}\"\ncommand = [\"/bin/sh\", \"-c\", {}]\nnetwork = {network}\nenv = {{ PATH = \"/usr/bin:/bin\" }}\n",
            serde_json::to_string(&script).unwrap()
        )
    };
    let team = Team::new(&format!(
        "{}{}",
        agent("offline", false),
        agent("online", true)
    ));
    let run = team.cmd(&["run", "offline"]);
    assert!(
        run.stdout.contains("refused") && !run.stdout.contains("CONNECTED"),
        "{run}"
    );
    assert!(
        listener.accept().is_err(),
        "the offline agent reached the listener"
    );
    // The same script with the network: the test can tell the difference.
    let run = team.cmd(&["run", "online"]);
    assert!(run.stdout.contains("CONNECTED"), "{run}");
}

/// `supervisor run` killed with SIGKILL mid-run, left a zombie: the next run
/// marks it lost and removes its home (and its cgroup, with what is in it).
#[test]
fn a_killed_cli_run_leaves_nothing_after_the_next_start() {
    let cg = TestCgroup::create("crashcli");
    let out = tempfile::tempdir().unwrap();
    let script = r#"echo secret-ish > "$HOME/.netrc"; ( setsid sleep 60 & echo $! > "$OUT/escaped.pid" ); echo started > "$OUT/started"; sleep 60"#;
    let team = Team::new(&format!(
        "{}[[agents]]\nname = \"slow\"\ncommand = [\"/bin/sh\", \"-c\", {}]\nenv = {{ PATH = \"/usr/bin:/bin\", OUT = {} }}\n[[agents]]\nname = \"quick\"\ncommand = [\"/bin/true\"]\n",
        cg.as_ref().map(TestCgroup::section).unwrap_or_default(),
        serde_json::to_string(script).unwrap(),
        serde_json::to_string(&out.path().to_string_lossy()).unwrap()
    ));
    let mut sup = team
        .command(&["run", "slow"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(|| out.path().join("started").exists()));
    assert_eq!(homes(&team).len(), 1);
    kill(Pid::from_raw(sup.id() as i32), Signal::SIGKILL).unwrap();
    // Not reaped: the dead owner is a zombie while the next run starts.
    assert!(eventually(|| std::fs::read_to_string(format!(
        "/proc/{}/stat",
        sup.id()
    ))
    .is_ok_and(|s| s.contains(") Z "))));
    let next = team.cmd(&["run", "quick"]);
    assert_eq!(next.code, Some(0), "{next}");
    assert!(homes(&team).is_empty(), "{:?}", homes(&team));
    let runs = team.cmd(&["runs", "list", "--json"]).json();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "lost"]);
    if let Some(cg) = &cg {
        let escaped = pid_in(&out.path().join("escaped.pid"));
        assert!(
            eventually(|| !alive(escaped)),
            "{escaped} survived the crash cleanup"
        );
        assert!(cg.runs().is_empty(), "{:?}", cg.runs());
    }
    sup.wait().unwrap();
}

/// The daemon killed with SIGKILL mid-run: its next start marks the run lost
/// and removes the home, the cgroup and what was left alive in it.
#[test]
fn a_killed_daemon_leaves_nothing_after_the_next_start() {
    let cg = TestCgroup::create("crashd");
    let out = tempfile::tempdir().unwrap();
    let script = r#"echo secret-ish > "$HOME/.netrc"; ( setsid sleep 60 & echo $! > "$OUT/escaped.pid" ); echo started > "$OUT/started"; sleep 60"#;
    let config = format!(
        "{}{}[[agents]]\nname = \"slow\"\ncommand = [\"/bin/sh\", \"-c\", {}]\ntriggers = [\"webhook\"]\nenv = {{ PATH = \"/usr/bin:/bin\", OUT = {} }}\n[[webhooks]]\nname = \"go\"\nagent = \"slow\"\nsecret = {{ file = \"hook-secret\" }}\n",
        server_section(""),
        cg.as_ref().map(TestCgroup::section).unwrap_or_default(),
        serde_json::to_string(script).unwrap(),
        serde_json::to_string(&out.path().to_string_lossy()).unwrap()
    );
    let team = Team::uninitialised(&config);
    std::fs::write(team.path().join("hook-secret"), "hook-secret-value-2").unwrap();
    team.cmd(&["init"]).ok();
    let mut daemon = team.serve();
    let body = b"{}";
    let r = daemon.post(
        "/hooks/go",
        &webhook_headers("hook-secret-value-2", now_secs(), body),
        body,
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert!(eventually(|| out.path().join("started").exists()));
    assert_eq!(homes(&team).len(), 1);
    daemon.kill();
    let mut daemon = team.serve();
    let runs = wait_for("the run marked lost", Duration::from_secs(10), || {
        let runs = team.runs();
        (runs.len() == 1 && runs[0]["status"] == "lost").then_some(runs)
    });
    assert_eq!(runs.len(), 1);
    assert!(homes(&team).is_empty(), "{:?}", homes(&team));
    if let Some(cg) = &cg {
        let escaped = pid_in(&out.path().join("escaped.pid"));
        assert!(
            eventually(|| !alive(escaped)),
            "{escaped} survived the crash cleanup"
        );
        assert!(cg.runs().is_empty(), "{:?}", cg.runs());
    }
    daemon.stop(Duration::from_secs(10));
}

/// An agent whose policy would reach the state directory is refused by
/// `config check`, by `serve` at start, and by its runs, each naming it.
#[test]
fn serve_run_and_config_check_refuse_an_agent_that_could_reach_the_state() {
    let team = Team::new("");
    let config = format!(
        "{}[[agents]]\nname = \"greedy\"\ncommand = [\"/bin/true\"]\nwrite = [{}]\n",
        server_section(""),
        serde_json::to_string(&team.state_dir().join("runs").to_string_lossy()).unwrap()
    );
    std::fs::create_dir_all(team.state_dir().join("runs")).unwrap();
    team.write_config("supervisor.toml", "alice", &config);
    let check = team.cmd(&["config", "check"]);
    assert_eq!(check.code, Some(1), "{check}");
    assert!(
        check.stderr.contains("agent `greedy`: `write` entry"),
        "{check}"
    );
    let run = team.cmd(&["run", "greedy"]);
    assert_eq!(run.code, Some(125), "{run}");
    assert!(run.stderr.contains("agent `greedy`"), "{run}");
    assert_eq!(team.last_run()["status"], "rejected");
    let serve = team.serve_command().stdin(Stdio::null()).output().unwrap();
    assert_eq!(serve.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&serve.stderr).contains("agent `greedy`"),
        "{serve:?}"
    );
}

/// A failure after the agent started (here: its run log cannot be created)
/// kills the agent before the run is recorded as failed.
#[test]
fn a_setup_failure_after_the_spawn_kills_the_agent_first() {
    let out = tempfile::tempdir().unwrap();
    let script = r#"echo $$ > "$OUT/agent.tmp"; mv "$OUT/agent.tmp" "$OUT/agent.pid"; ( setsid sleep 30 & echo $! > "$OUT/child.pid" ); sleep 30"#;
    let team = Team::new(&format!(
        "[[agents]]\nname = \"orphan\"\ncommand = [\"/bin/sh\", \"-c\", {}]\nenv = {{ PATH = \"/usr/bin:/bin\", OUT = {} }}\n",
        serde_json::to_string(script).unwrap(),
        serde_json::to_string(&out.path().to_string_lossy()).unwrap()
    ));
    // Where the run logs go, a file: the log cannot be opened.
    std::fs::write(team.state_dir().join("runs"), "not a directory").unwrap();
    let started = Instant::now();
    let run = team.cmd(&["run", "orphan"]);
    assert_eq!(run.code, Some(125), "{run}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(team.last_run()["status"], "failed");
    // An agent left running would have written its pid files by now.
    std::thread::sleep(Duration::from_secs(1));
    for f in ["agent.pid", "child.pid"] {
        let path = out.path().join(f);
        if path.exists() {
            let pid = pid_in(&path);
            assert!(
                eventually(|| !alive(pid)),
                "{f}: {pid} outlived the failed run"
            );
        }
    }
    assert!(homes(&team).is_empty());
}

/// Two runs as another user at once: starting the second leaves the first
/// one's way to its HOME as it was.
#[test]
fn concurrent_runs_of_another_user_keep_their_homes() {
    if !supervisor_tests::users::is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let script = r#"echo one > "$HOME/a" && touch "$OUT/$SUPERVISOR_RUN_ID.started"; sleep 1.5; echo two >> "$HOME/a" && cat "$HOME/a" > "$OUT/$SUPERVISOR_RUN_ID.done""#;
    let team = Team::new(&format!(
        "[[agents]]\nname = \"nob\"\nuser = \"nobody\"\ncommand = [\"/bin/sh\", \"-c\", {}]\nenv = {{ PATH = \"/usr/bin:/bin\", OUT = {} }}\n",
        serde_json::to_string(script).unwrap(),
        serde_json::to_string(&out.path().to_string_lossy()).unwrap()
    ));
    std::fs::set_permissions(
        team.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let start = || {
        team.command(&["run", "nob"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = start();
    // The second starts while the first is in its sleep.
    let started = |n: usize| {
        std::fs::read_dir(out.path())
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".started"))
                    .count()
                    >= n
            })
            .unwrap_or(false)
    };
    assert!(eventually(|| started(1)));
    let second = start();
    assert!(eventually(|| started(2)));
    let (a, b) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert!(a.status.success() && b.status.success(), "{a:?} {b:?}");
    let done: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".done"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(done, ["one\ntwo\n", "one\ntwo\n"]);
}
