//! `supervisor run` through the control socket, from real users' shells:
//! the daemon runs it as the caller (trigger `cli`, their personal
//! secrets), streams the redacted output back live with stdout and stderr
//! apart, exits as a local run would, stops the run on Ctrl-C or when the
//! client vanishes, applies its concurrency limits, and refuses processes
//! it started itself, whatever their uid.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use supervisor_tests::host::Host;
use supervisor_tests::users::skip_unless_root;
use supervisor_tests::{alive, binary, eventually, sentinel, wait_for};

const AGENTS: &str = r#"
[[agents]]
name = "stream"
command = ["/bin/sh", "-c", "echo first; echo to-stderr >&2; while [ ! -e go ]; do sleep 0.05; done; echo second; echo \"token: $TOKEN\""]
timeout = "60s"

[[agents]]
name = "exit"
command = ["/bin/sh", "-c", "exit $SUPERVISOR_PROMPT"]

[[agents]]
name = "self-kill"
command = ["/bin/sh", "-c", "kill -TERM $$"]

[[agents]]
name = "missing"
command = ["/nonexistent/agent"]

[[agents]]
name = "not-executable"
command = ["/etc/passwd"]

[[agents]]
name = "slow"
command = ["/bin/sleep", "30"]
timeout = "1s"
kill_grace = "1s"

[[agents]]
name = "needs"
command = ["/bin/true"]
required_secrets = ["DEPLOY_KEY"]

[[agents]]
name = "digest"
command = ["/bin/sh", "-c", "printf %s \"$BIG\" | sha256sum; printf %s \"$ODD\" | sha256sum"]

[[agents]]
name = "sleeper"
command = ["/bin/sh", "-c", "echo $$ > sleeper.pid; echo started; exec sleep 60"]
timeout = "2m"
"#;

/// A `supervisor run` started as a user, its stdout read line by line.
struct Following {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Following {
    fn start(host: &Host, user: &supervisor_tests::users::TempUser, args: &[&str]) -> Following {
        let mut child = host
            .command(user, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the client");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Following { child, lines }
    }

    #[track_caller]
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a line of output")
    }

    /// Waits for the exit; the rest of stdout and all of stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.lines.iter().collect();
        (status.code(), rest.join("\n"), err)
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }
}

fn runs(host: &Host) -> Vec<Value> {
    let out = host.cmd(&host.alice, "", &["runs", "list", "--json"]);
    out.json().as_array().unwrap().clone()
}

#[test]
fn a_run_streams_back_live_as_its_caller() {
    if skip_unless_root("a_run_streams_back_live_as_its_caller") {
        return;
    }
    let host = Host::start(AGENTS);
    let (alice_value, bob_value) = (sentinel("alice-token"), sentinel("bob-token"));
    host.secret(&host.alice, &["--personal"], "TOKEN", &alice_value);
    host.secret(&host.bob, &["--personal"], "TOKEN", &bob_value);

    let dry = host.cmd(&host.alice, "", &["run", "stream", "--dry-run", "--json"]);
    let planned = dry.json();
    assert_eq!(planned["secrets"][0]["owner"], "alice", "{dry}");

    let run = Following::start(&host, &host.alice, &["run", "stream", "--json"]);
    assert_eq!(run.next_line(), "first");
    // The first line is here and the run is still going: it streams.
    let going = runs(&host);
    assert_eq!(going[0]["status"], "running", "{going:?}");
    assert_eq!(
        (&going[0]["trigger"], &going[0]["member"]),
        (&"cli".into(), &"alice".into())
    );
    std::fs::write(host.team.path().join("go"), "").unwrap();
    assert_eq!(run.next_line(), "second");
    assert_eq!(run.next_line(), "token: [REDACTED:TOKEN]");
    let (code, rest, err) = run.finish();
    assert_eq!(code, Some(0), "{rest}\n{err}");
    assert_eq!(err.trim(), "to-stderr", "stderr stays apart");
    let record: Value = serde_json::from_str(rest.trim()).expect("the record with --json");
    assert_eq!(record["status"], "succeeded");
    let injected = &record["detail"]["injected"];
    assert_eq!(injected.as_array().unwrap().len(), 1, "{injected}");
    assert_eq!(injected[0]["owner"], "alice");
    for out in [&rest, &err, &dry.all()] {
        assert!(!out.contains(&alice_value) && !out.contains(&bob_value));
    }

    // The run is alice's: bob sees neither it nor its log.
    let id = record["id"].as_str().unwrap();
    let log = host.cmd(&host.alice, "", &["runs", "logs", id]);
    assert!(log.ok().contains("token: [REDACTED:TOKEN]"), "{log}");
    host.cmd(&host.alice, "", &["runs", "show", id]).ok();
    for args in [["runs", "show", id], ["runs", "logs", id]] {
        let out = host.cmd(&host.bob, "", &args);
        assert!(
            out.err().contains(&format!("no run with id `{id}`")),
            "{out}"
        );
    }
    let bobs = host.cmd(&host.bob, "", &["runs", "list", "--json"]).json();
    assert_eq!(bobs, serde_json::json!([]));
}

#[test]
fn values_arrive_intact_through_the_socket() {
    if skip_unless_root("values_arrive_intact_through_the_socket") {
        return;
    }
    use sha2::{Digest, Sha256};
    let host = Host::start(AGENTS);
    // The largest value there may be, from a file, and one with every kind
    // of character JSON escapes, from stdin.
    let big: String = (0..64 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let file = host.team.path().join("big.value");
    std::fs::write(&file, &big).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let path = file.to_str().unwrap();
    host.cmd(
        &host.alice,
        "",
        &[
            "secret",
            "create",
            "--personal",
            "--name",
            "BIG",
            "--value-file",
            path,
        ],
    )
    .ok();
    let odd = "line one\n\"quoted\" \\ back\tslash ünïcödé \u{1F512} \u{7}";
    host.secret(&host.alice, &["--personal"], "ODD", odd);
    let out = host.cmd(&host.alice, "", &["run", "digest"]);
    let hex = |v: &str| hex::encode(Sha256::digest(v.as_bytes()));
    let text = out.ok();
    assert!(text.contains(&hex(&big)), "{out}");
    assert!(text.contains(&hex(odd)), "{out}");
    // One byte more: a file is refused before it is sent, stdin by the daemon.
    std::fs::write(&file, format!("{big}x")).unwrap();
    let out = host.cmd(
        &host.alice,
        "",
        &[
            "secret",
            "update",
            "--personal",
            "--name",
            "BIG",
            "--value-file",
            path,
        ],
    );
    assert!(
        out.err().contains("a value is at most 65536 bytes"),
        "{out}"
    );
    let out = host.cmd(
        &host.alice,
        &format!("{big}x"),
        &["secret", "update", "--personal", "--name", "BIG"],
    );
    assert!(
        out.err()
            .contains("the value is 65537 bytes; the limit is 65536 bytes"),
        "{out}"
    );
    assert!(out.stderr.contains("note: sent to the daemon"), "{out}");
    let listed = host
        .cmd(&host.alice, "", &["secret", "list", "--json"])
        .json();
    assert!(
        listed.as_array().unwrap().iter().all(|s| s["version"] == 1),
        "{listed}"
    );
}

#[test]
fn exit_codes_are_those_of_a_local_run() {
    if skip_unless_root("exit_codes_are_those_of_a_local_run") {
        return;
    }
    let host = Host::start(AGENTS);
    let cases: [(&[&str], i32); 7] = [
        (&["run", "exit", "--prompt", "0"], 0),
        (&["run", "exit", "--prompt", "3"], 3),
        (&["run", "self-kill"], 143),
        (&["run", "missing"], 127),
        (&["run", "not-executable"], 126),
        (&["run", "slow"], 124),
        (&["run", "needs"], 125),
    ];
    for (args, expected) in cases {
        let out = host.cmd(&host.alice, "", args);
        assert_eq!(out.code, Some(expected), "{args:?}: {out}");
        // And the same from this process, in local mode, as root holding the key.
        let mut local = host.team.command(args);
        local.arg("--local");
        let root = supervisor_tests::run_with_input(local, b"");
        if expected == 125 {
            // root is no member: refused, with the same status.
            assert_eq!(root.code, Some(125), "{root}");
        }
        if expected == 127 {
            assert!(
                out.stderr.contains("error: the agent could not be started"),
                "{out}"
            );
        }
    }
    let out = host.cmd(&host.alice, "", &["run", "needs"]);
    assert!(out.stderr.contains("DEPLOY_KEY"), "{out}");
    let out = host.cmd(&host.alice, "", &["run", "no-such-agent"]);
    assert_eq!(out.code, Some(125), "{out}");
    assert!(
        out.stderr.contains("no agent named `no-such-agent`"),
        "{out}"
    );
}

#[test]
fn ctrl_c_interrupts_the_run_and_a_vanished_client_stops_it() {
    if skip_unless_root("ctrl_c_interrupts_the_run_and_a_vanished_client_stops_it") {
        return;
    }
    let host = Host::start(AGENTS);
    let pid_file = host.team.path().join("sleeper.pid");

    let run = Following::start(&host, &host.alice, &["run", "sleeper"]);
    assert_eq!(run.next_line(), "started");
    let agent: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(agent));
    run.signal(Signal::SIGINT);
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(130), "{err}");
    assert_eq!(runs(&host)[0]["status"], "interrupted");
    assert!(eventually(|| !alive(agent)), "the agent was stopped");

    // SIGTERM: 143.
    std::fs::remove_file(&pid_file).unwrap();
    let run = Following::start(&host, &host.alice, &["run", "sleeper"]);
    assert_eq!(run.next_line(), "started");
    run.signal(Signal::SIGTERM);
    assert_eq!(run.finish().0, Some(143));

    // A client killed outright: the daemon notices and stops the run.
    std::fs::remove_file(&pid_file).unwrap();
    let run = Following::start(&host, &host.alice, &["run", "sleeper"]);
    assert_eq!(run.next_line(), "started");
    let agent: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    run.signal(Signal::SIGKILL);
    let _ = run.finish();
    wait_for("the run to be interrupted", Duration::from_secs(30), || {
        (runs(&host)[0]["status"] == "interrupted").then_some(())
    });
    assert!(eventually(|| !alive(agent)), "the agent was stopped");
}

#[test]
fn a_daemon_that_stops_interrupts_the_runs_its_clients_follow() {
    if skip_unless_root("a_daemon_that_stops_interrupts_the_runs_its_clients_follow") {
        return;
    }
    let mut host = Host::start_with("shutdown_grace = \"1s\"", AGENTS);
    let run = Following::start(&host, &host.alice, &["run", "sleeper"]);
    assert_eq!(run.next_line(), "started");
    host.daemon.signal(Signal::SIGTERM);
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(143), "as the daemon's SIGTERM stopped it: {err}");
    assert!(
        host.daemon
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    // The daemon is gone; the record is in the store.
    let status: String = host
        .team
        .db()
        .query_row("SELECT status FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "interrupted");
}

#[test]
fn the_daemons_limits_apply_to_socket_runs() {
    if skip_unless_root("the_daemons_limits_apply_to_socket_runs") {
        return;
    }
    let host = Host::start_with("max_concurrent_runs = 1\nqueue_limit = 1", AGENTS);
    let first = Following::start(&host, &host.alice, &["run", "stream"]);
    assert_eq!(first.next_line(), "first");
    // One may wait for the slot; a third is refused at once.
    let waiting = Following::start(&host, &host.bob, &["run", "exit", "--prompt", "0"]);
    wait_for("the second run to wait", Duration::from_secs(30), || {
        let m = host.daemon.metric("supervisor_runs_queued");
        (m == 1).then_some(())
    });
    let third = host.cmd(&host.bob, "", &["run", "exit", "--prompt", "0"]);
    assert_eq!(third.code, Some(125), "{third}");
    assert!(third.stderr.contains("the run queue is full"), "{third}");
    assert!(!third.stderr.contains("hint: `supervisor scope"), "{third}");
    // Ctrl-C while waiting: it never starts, and the client exits 130.
    waiting.signal(Signal::SIGINT);
    let (code, _, err) = waiting.finish();
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("its client stopped it before it started"),
        "{err}"
    );
    assert!(!err.contains("hint: `supervisor scope"), "{err}");
    std::fs::write(host.team.path().join("go"), "").unwrap();
    assert_eq!(first.finish().0, Some(0));
    host.cmd(&host.bob, "", &["run", "exit", "--prompt", "0"])
        .ok();
}

#[test]
fn an_agent_cannot_act_as_the_member_whose_account_it_runs_under() {
    if skip_unless_root("an_agent_cannot_act_as_the_member_whose_account_it_runs_under") {
        return;
    }
    let bin = binary();
    let bin = bin.display();
    // Both run as alice's account: one asks at once, one escapes the run
    // (its own session, stdio closed; the run waits until it has) and asks
    // after the run has ended. The configured socket is covered in agents'
    // mount namespaces; `alt.sock`, a second name of the same socket, is
    // not, so the daemon itself must refuse them.
    let agents = format!(
        r#"
[[agents]]
name = "impostor"
user = "@ALICE@"
command = ["/bin/sh", "-c", "{bin} --config supervisor.toml secret list --all; echo covered=$?; {bin} --config supervisor.toml --socket alt.sock secret list --all; echo exit=$?"]

[[agents]]
name = "escapee"
user = "@ALICE@"
command = ["/bin/sh", "-c", "setsid /bin/sh -c 'touch drop/escaped; sleep 1; {bin} --config supervisor.toml --socket alt.sock secret list --all > drop/escapee.out 2>&1; echo exit=$? >> drop/escapee.out' </dev/null >/dev/null 2>&1 & while [ ! -e drop/escaped ]; do sleep 0.05; done; echo escaped"]
"#
    );
    let host = Host::start(&agents);
    std::fs::hard_link(
        host.team.path().join("control.sock"),
        host.team.path().join("alt.sock"),
    )
    .unwrap();
    let drop = host.team.path().join("drop");
    std::fs::create_dir(&drop).unwrap();
    std::fs::set_permissions(&drop, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    host.secret(&host.alice, &["--personal"], "TOKEN", &sentinel("alice"));

    let out = host.cmd(&host.alice, "", &["run", "impostor"]);
    let text = out.ok();
    assert!(text.contains("covered=1"), "{out}");
    assert!(
        out.stderr.contains("does not answer on ./control.sock"),
        "the configured socket is covered: {out}"
    );
    assert!(text.contains("exit=1"), "{out}");
    assert!(
        out.stderr.contains("was started by the supervisor (an agent, or something an agent started): agents cannot act as a member"),
        "the agent's own error comes back as its stderr: {out}"
    );
    // alice herself, from her shell, is still alice.
    host.cmd(&host.alice, "", &["secret", "list", "--all"]).ok();

    let out = host.cmd(&host.alice, "", &["run", "escapee"]);
    assert!(out.ok().contains("escaped"), "{out}");
    let report = drop.join("escapee.out");
    let text = wait_for(
        "the escaped process to ask",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&report)
                .ok()
                .filter(|t| t.contains("exit="))
        },
    );
    assert!(text.contains("exit=1"), "{text}");
    assert!(text.contains("was started by the supervisor"), "{text}");
    assert!(
        host.daemon.log().contains("caller refused"),
        "{}",
        host.daemon.log()
    );
    // The daemon reaped what was re-parented to it.
    let daemon = host.daemon.pid();
    assert!(
        eventually(|| zombies_of(daemon).is_empty()),
        "zombies left: {:?}",
        zombies_of(daemon)
    );
}

/// Exited but unreaped children of `parent`.
fn zombies_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        if fields[0] == "Z" && fields[1] == parent.to_string() {
            out.push(pid);
        }
    }
    out
}
