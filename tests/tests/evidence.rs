//! What the store holds as evidence, through the binary: a restored older
//! secret row refuses the run, inputs that could mislead the supervisor are
//! refused (a key file that is not the user's own, values without end),
//! printing commands end quietly on a closed stdout, a command started with
//! its standard descriptors closed has them on `/dev/null`, and writers and
//! runs killed at random points lose nothing that was acknowledged.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use supervisor_tests::users::{TempUser, skip_unless_root};
use supervisor_tests::{Team, run_with_input};

const AGENT: &str = r#"
[[agents]]
name = "show"
command = ["/bin/sh", "-c", "echo token=$API_TOKEN"]
triggers = ["cli"]
timeout = "10s"
"#;

#[test]
fn a_restored_older_secret_row_refuses_the_run() {
    let team = Team::new(AGENT);
    team.secret(&["--team"], "API_TOKEN", "first-value-123");
    let db = team.db();
    let v1: (i64, Vec<u8>, Vec<u8>) = db
        .query_row(
            "SELECT version, nonce, ciphertext FROM secrets WHERE name = 'API_TOKEN'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    team.cmd_in(
        "second-value-456",
        &["secret", "update", "--team", "--name", "API_TOKEN"],
    )
    .ok();
    // Whoever can write the file puts the old row back.
    db.execute(
        "UPDATE secrets SET version = ?1, nonce = ?2, ciphertext = ?3 WHERE name = 'API_TOKEN'",
        rusqlite::params![v1.0, v1.1, v1.2],
    )
    .unwrap();
    drop(db);
    let out = team.cmd(&["audit", "verify"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("a secret row does not") && out.stderr.contains("`API_TOKEN`"),
        "{out}"
    );
    let out = team.cmd(&["run", "show"]);
    assert_eq!(out.code, Some(125), "{out}");
    assert!(
        out.stderr.contains("team secret `API_TOKEN`")
            && out
                .stderr
                .contains("its row is version 1, but audit entry 2 wrote version 2"),
        "{out}"
    );
    assert!(!out.all().contains("first-value-123"), "{out}");
    let run = team.last_run();
    assert_eq!(run["status"], "rejected", "{run:#}");
    // Rotating the value heals it.
    team.cmd_in(
        "third-value-789",
        &["secret", "update", "--team", "--name", "API_TOKEN"],
    )
    .ok();
    let out = team.cmd(&["run", "show"]);
    assert!(out.ok().contains("[REDACTED:API_TOKEN]"), "{out}");
    team.cmd(&["audit", "verify"]).ok();
}

#[test]
fn a_key_file_linked_to_another_users_file_is_refused() {
    if skip_unless_root("a_key_file_linked_to_another_users_file_is_refused") {
        return;
    }
    let team = Team::new("");
    let key = team.state_dir().join("master.key");
    let other = TempUser::create("key");
    let theirs = team.path().join("theirs.key");
    std::fs::copy(&key, &theirs).unwrap();
    nix::unistd::chown(&theirs, Some(other.uid.into()), Some(other.gid.into())).unwrap();
    std::fs::remove_file(&key).unwrap();
    std::os::unix::fs::symlink(&theirs, &key).unwrap();
    let out = team.cmd_in(
        "value-value",
        &["secret", "create", "--team", "--name", "X"],
    );
    let err = out.err();
    assert!(
        err.contains(&format!("belongs to uid {}", other.uid))
            && err.contains("which resolves to")
            && err.contains("hint: "),
        "{out}"
    );
    // Its own file through a symlink is fine.
    nix::unistd::chown(&theirs, Some(0.into()), Some(0.into())).unwrap();
    team.secret(&["--team"], "X", "value-value");
}

#[test]
fn a_value_from_a_device_or_a_fifo_stops_at_the_limit() {
    let team = Team::new("");
    let started = Instant::now();
    let out = team.cmd(&[
        "secret",
        "create",
        "--team",
        "--name",
        "ZEROS",
        "--value-file",
        "/dev/zero",
    ]);
    assert!(
        out.err().contains("/dev/zero gave more than 65536 bytes"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let fifo = team.path().join("value.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            // Endless, as a pipe from a program that never stops would be;
            // it ends when the reader closes.
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) {
                let chunk = [b'a'; 4096];
                while f.write_all(&chunk).is_ok() {}
            }
        })
    };
    let out = team.cmd(&[
        "secret",
        "create",
        "--team",
        "--name",
        "PIPED",
        "--value-file",
        fifo.to_str().unwrap(),
    ]);
    assert!(out.err().contains("gave more than 65536 bytes"), "{out}");
    writer.join().unwrap();
    assert_eq!(
        team.cmd(&["secret", "list", "--json"]).json(),
        serde_json::json!([])
    );
}

#[test]
fn printing_commands_end_quietly_on_a_closed_stdout() {
    let team = Team::new(AGENT);
    team.secret(&["--team"], "API_TOKEN", "some-value-123");
    team.cmd(&["run", "show"]).ok();
    let id = team.last_run()["id"].as_str().unwrap().to_owned();
    for args in [
        &["audit", "list"][..],
        &["audit", "list", "--json"],
        &["runs", "list"],
        &["runs", "show", &id, "--json"],
        &["secret", "list", "--json"],
    ] {
        let mut child = team
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before anything is printed, as `| head -c 0` would.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        use std::os::unix::process::ExitStatusExt;
        let quiet = out.status.code() == Some(0) || out.status.signal() == Some(libc_sigpipe());
        assert!(quiet, "{args:?}: {:?}\n{stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// A command started with descriptors 0, 1 and 2 closed (as `sudo -C` or a
/// careless service manager can leave them) gets `/dev/null` on them, open
/// for reading and writing, before it opens anything: no file it opens
/// becomes its standard output. (SQLite guards its own files by putting
/// `/dev/null` on a low descriptor it is given, but read-only, and only for
/// itself.)
#[test]
fn a_command_started_without_standard_descriptors_has_them_on_dev_null() {
    use std::os::unix::process::CommandExt;
    let team = Team::new(
        r#"
[[agents]]
name = "nap"
command = ["/bin/sleep", "2"]
triggers = ["cli"]
timeout = "10s"
"#,
    );
    team.secret(&["--team"], "API_TOKEN", "some-value-123");
    let mut command = team.command(&["run", "nap"]);
    // SAFETY: close(2) is async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            for fd in 0..3 {
                let _ = nix::unistd::close(fd);
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let pid = child.id();
    // Look while the agent sleeps: the store, the key and the agent's pipes are open.
    let children = format!("/proc/{pid}/task/{pid}/children");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&children)
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the agent never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"));
        assert_eq!(
            target.ok().as_deref(),
            Some(std::path::Path::new("/dev/null")),
            "descriptor {fd}"
        );
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| i32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        assert_eq!(
            flags & libc_accmode(),
            libc_rdwr(),
            "descriptor {fd}: {info}"
        );
    }
    assert!(child.wait().unwrap().success());
    team.cmd(&["audit", "verify"]).ok();
}

fn libc_accmode() -> i32 {
    nix::fcntl::OFlag::O_ACCMODE.bits()
}

fn libc_rdwr() -> i32 {
    nix::fcntl::OFlag::O_RDWR.bits()
}

fn libc_sigpipe() -> i32 {
    nix::sys::signal::Signal::SIGPIPE as i32
}

#[test]
fn names_that_steer_programs_are_refused_in_any_case() {
    let team = Team::new("");
    for name in [
        "glibc_tunables",
        "SSLKEYLOGFILE",
        "Npm_Config_Registry",
        "PIP_INDEX_URL",
        "GoFlags",
    ] {
        let out = team.cmd_in(
            "value-value",
            &["secret", "create", "--team", "--name", name],
        );
        assert!(out.err().contains("is reserved"), "{name}: {out}");
    }
    team.secret(&["--team"], "CARGO_REGISTRY_TOKEN", "value-value");
}

/// Writers (`secret create`) and runs killed with SIGKILL at random points,
/// round after round: what a command acknowledged (exit 0) is there after,
/// every run recorded has its `run.start` entry, and the chain verifies.
#[test]
fn writers_and_runs_killed_at_random_points_lose_nothing_acknowledged() {
    const ROUNDS: usize = 100;
    let team = Team::new(AGENT);
    team.secret(&["--team"], "API_TOKEN", "some-value-123");
    let started = Instant::now();
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut acknowledged = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("R{round:03}");
        let mut writer = team
            .command(&["secret", "create", "--team", "--name", &name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        writer
            .stdin
            .take()
            .unwrap()
            .write_all(b"crash-test-value")
            .unwrap();
        let mut run = team
            .command(&["run", "show"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(random(60)));
        for child in [&mut writer, &mut run] {
            let _ = child.kill();
        }
        if writer.wait().unwrap().success() {
            acknowledged.push(name);
        }
        let _ = run.wait();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{ROUNDS} rounds in {elapsed:?}; {} writes acknowledged",
        acknowledged.len()
    );
    assert!(elapsed < Duration::from_secs(240), "{elapsed:?}");
    let listed = team.cmd(&["secret", "list", "--json"]).json();
    for name in &acknowledged {
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == *name),
            "{name} was acknowledged and is gone"
        );
    }
    let audit = team.cmd(&["audit", "list", "--json"]).json();
    let started_runs: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "run.start")
        .filter_map(|e| e["detail"]["run"].as_str())
        .collect();
    for r in team.runs() {
        if r["status"] != "rejected" {
            let id = r["id"].as_str().unwrap();
            assert!(
                started_runs.contains(&id),
                "run {id} has no run.start entry"
            );
        }
    }
    let out = run_with_input(team.command(&["audit", "verify"]), b"");
    assert!(out.ok().contains("audit log intact"), "{out}");
}

/// The daemon killed with SIGKILL at random points while it answers signed
/// webhook requests, round after round: every request it acknowledged (202)
/// runs exactly once, taken up by the next daemon if need be, and no
/// request runs twice.
#[test]
fn a_daemon_killed_at_random_points_runs_every_acknowledged_delivery_once() {
    use supervisor_tests::signing::{now_secs, webhook_headers};
    const ROUNDS: usize = 100;
    const PER_ROUND: usize = 3;
    const SECRET: &str = "crash-test-hook-secret";
    let config = r#"
[server]
listen = "127.0.0.1:0"
queue_limit = 1000
max_concurrent_runs = 1

[[agents]]
name = "note"
command = ["/bin/sleep", "0.1"]
triggers = ["webhook"]
timeout = "10s"

[[webhooks]]
name = "crash"
agent = "note"
secret = { file = "crash-secret" }
"#;
    let team = Team::uninitialised(config);
    std::fs::write(team.path().join("crash-secret"), SECRET).unwrap();
    team.cmd(&["init"]).ok();
    let started = Instant::now();
    let mut seed = (std::process::id() as u64).wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut acknowledged = Vec::new();
    let mut n = 0;
    // One slot and a slow agent: requests wait in the queue, where a kill
    // leaves them answered but not run.
    let mut taken_up = 0;
    for _ in 0..ROUNDS {
        let mut daemon = team.serve();
        taken_up += daemon.log().matches("taking up a delivery").count();
        let addr = daemon.addr;
        let bodies: Vec<String> = (0..PER_ROUND)
            .map(|_| {
                n += 1;
                format!("request-{n:04}")
            })
            .collect();
        let sender = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for body in bodies {
                let headers = webhook_headers(SECRET, now_secs(), body.as_bytes());
                match supervisor_tests::http::request(
                    addr,
                    "POST",
                    "/hooks/crash",
                    &headers,
                    body.as_bytes(),
                ) {
                    Ok(r) if r.status == 202 => acked.push(body),
                    _ => {}
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(random(15)));
        daemon.kill();
        acknowledged.extend(sender.join().unwrap());
    }
    // The last daemon takes up what its predecessors left.
    let daemon = team.serve();
    taken_up += daemon.log().matches("taking up a delivery").count();
    let prompts = || -> Vec<String> {
        team.runs()
            .iter()
            .filter(|r| r["status"] != "rejected")
            .filter_map(|r| r["detail"]["prompt"].as_str().map(str::to_owned))
            .collect()
    };
    let all_ran = supervisor_tests::wait_until(Duration::from_secs(60), || {
        let ran = prompts();
        acknowledged.iter().all(|a| ran.contains(a))
    });
    let ran = prompts();
    let elapsed = started.elapsed();
    eprintln!(
        "{ROUNDS} daemon rounds in {elapsed:?}; {} of {n} requests acknowledged, {} runs, {taken_up} taken up by a later daemon",
        acknowledged.len(),
        ran.len(),
    );
    assert!(
        taken_up > 0,
        "no round left a delivery to take up: the test tested nothing"
    );
    for a in &acknowledged {
        let times = ran.iter().filter(|p| *p == a).count();
        assert_eq!(times, 1, "{a} was acknowledged and ran {times} times");
    }
    assert!(all_ran);
    for p in &ran {
        assert_eq!(ran.iter().filter(|q| *q == p).count(), 1, "{p} ran twice");
    }
    assert!(elapsed < Duration::from_secs(300), "{elapsed:?}");
    drop(daemon);
    let out = run_with_input(team.command(&["audit", "verify"]), b"");
    assert!(out.ok().contains("audit log intact"), "{out}");
}
