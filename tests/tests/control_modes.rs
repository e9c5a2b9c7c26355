//! Which mode a command uses, and the socket itself: `--local`, `--socket`,
//! `$SUPERVISOR_SOCKET` and `[server] control_socket` are explicit choices,
//! a daemon that does not answer is an error that says what to do (never a
//! fallback), a client and daemon of different versions say so, and the
//! daemon binds its socket only where nobody else could replace it.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;

use supervisor_tests::{Team, binary, mode, run_with_input, server_section};

/// A team whose config names a control socket in the team's directory.
fn socket_team() -> Team {
    Team::new(&server_section("control_socket = \"control.sock\""))
}

#[test]
fn a_configured_socket_that_does_not_answer_is_an_error_not_a_fallback() {
    let team = socket_team();
    let socket = team.path().join("control.sock");
    let out = team.cmd(&["secret", "list"]);
    let err = out.err();
    assert_eq!(out.code, Some(1));
    assert!(
        err.contains(&format!(
            "error: no supervisor daemon is listening on {}: the socket does not exist",
            socket.display()
        )),
        "{out}"
    );
    assert!(err.contains("hint: start the daemon (`systemctl start supervisor`), or, where you hold the master key, add --local"), "{out}");
    assert!(err.contains("note: sent to the daemon on"), "{out}");
    assert!(err.contains("([server] control_socket)"), "{out}");

    // A socket file nobody listens on (a daemon that died).
    drop(UnixListener::bind(&socket).unwrap());
    let out = team.cmd(&["run", "anything"]);
    assert_eq!(
        out.code,
        Some(125),
        "run keeps its own status for failures: {out}"
    );
    assert!(out.stderr.contains("does not answer on"), "{out}");
    assert!(out.stderr.contains("(connection refused)"), "{out}");

    // --local is the explicit way around it, for whoever holds the key.
    team.cmd_in(
        "a-local-value",
        &["--local", "secret", "create", "--team", "--name", "LOCAL"],
    )
    .ok();
    let listed = team.cmd(&["secret", "list", "--local"]);
    assert!(listed.ok().contains("LOCAL"), "{listed}");
    let out = team.cmd(&["--local", "runs", "show", "nope"]);
    assert!(
        out.err()
            .contains("note: local mode (--local): this process opens the store in"),
        "{out}"
    );
    // Without a socket in the config, local mode is the default, and says so.
    let plain = Team::new("");
    let out = plain.cmd(&["runs", "show", "nope"]);
    assert!(
        out.err()
            .contains("note: local mode (no control socket is configured)"),
        "{out}"
    );
}

#[test]
fn socket_flag_and_environment_choose_the_daemon() {
    let team = socket_team();
    team.secret(&["--team", "--local"], "SHARED", "shared-value-1");
    let _daemon = team.serve();
    let socket = team.path().join("control.sock");
    // A config without a socket, plus --socket: the daemon answers.
    team.write_config("plain.toml", "alice", "");
    let mut cmd = team.command_with("plain.toml", &["secret", "list", "--socket"]);
    cmd.arg(&socket);
    let out = run_with_input(cmd, b"");
    assert!(out.ok().contains("SHARED"), "{out}");
    let mut cmd = team.command_with("plain.toml", &["runs", "show", "nope"]);
    cmd.env("SUPERVISOR_SOCKET", &socket);
    let out = run_with_input(cmd, b"");
    assert!(
        out.err().contains(&format!(
            "note: sent to the daemon on {} (--socket or $SUPERVISOR_SOCKET)",
            socket.display()
        )),
        "{out}"
    );
    // With --socket no config is needed at all: the daemon has its own.
    let mut cmd = std::process::Command::new(binary());
    cmd.args(["secret", "list", "--socket"])
        .arg(&socket)
        .current_dir(std::env::temp_dir())
        .env_remove("SUPERVISOR_CONFIG");
    let out = run_with_input(cmd, b"");
    assert!(out.ok().contains("SHARED"), "{out}");
    // --local wins over both.
    let mut cmd = team.command(&["runs", "show", "nope", "--local", "--socket"]);
    cmd.arg(&socket);
    let out = run_with_input(cmd, b"");
    assert!(out.err().contains("note: local mode (--local)"), "{out}");
}

#[test]
fn config_check_and_help_say_which_mode() {
    let team = socket_team();
    let out = team.cmd(&["config", "check"]);
    assert!(
        out.ok().contains(&format!(
            "  socket   {} (commands go to the daemon there)",
            team.path().join("control.sock").display()
        )),
        "{out}"
    );
    let out = Team::new("").cmd(&["config", "check"]);
    assert!(
        out.ok()
            .contains("  socket   none (commands open the store themselves: local mode)")
    );

    let help = team.cmd(&["--help"]);
    let text = help.ok();
    assert!(text.contains("Two modes."), "{text}");
    assert!(text.contains("--local"), "{text}");
    assert!(text.contains("--socket <PATH>"), "{text}");
    let run = team.cmd(&["run", "--help"]);
    assert!(run.ok().contains("If this process goes away"), "{run}");
}

/// A fake daemon: answers the first request with `answer` (a frame body).
fn fake_daemon(path: &std::path::Path, answer: &'static [u8]) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut header = [0u8; 4];
        s.read_exact(&mut header).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
        s.read_exact(&mut body).unwrap();
        let mut frame = (answer.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(answer);
        s.write_all(&frame).unwrap();
    })
}

#[test]
fn a_daemon_of_another_version_is_named_not_misread() {
    let team = socket_team();
    let socket = team.path().join("control.sock");
    let fake = fake_daemon(
        &socket,
        br#"{"v":3,"supervisor":"0.9.0","msg":{"done":{"something_new":{}}}}"#,
    );
    let out = team.cmd(&["secret", "list"]);
    fake.join().unwrap();
    let err = out.err();
    assert!(
        err.contains("the other side speaks protocol 3 (supervisor 0.9.0); this one speaks protocol 2 (supervisor 0.1.0)"),
        "{out}"
    );
    assert!(
        err.contains("hint: use the supervisor binary of the daemon's version"),
        "{out}"
    );

    // A newer daemon's refusal is still read: errors keep their shape.
    std::fs::remove_file(&socket).unwrap();
    let fake = fake_daemon(
        &socket,
        br#"{"v":3,"supervisor":"0.9.0","error":{"kind":"version","message":"the daemon speaks protocol 3 (supervisor 0.9.0), this client protocol 2 (supervisor 0.1.0)"}}"#,
    );
    let out = team.cmd(&["secret", "list"]);
    fake.join().unwrap();
    assert!(
        out.err().contains("error: the daemon speaks protocol 3"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("hint: use the supervisor binary of the daemon's version"),
        "{out}"
    );
}

#[test]
fn the_socket_is_bound_only_where_nobody_else_can_replace_it() {
    let team = socket_team();
    let socket = team.path().join("control.sock");

    // A directory others may write to: refused before anything listens.
    let open = team.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    team.write_config(
        "open.toml",
        "alice",
        &server_section("control_socket = \"open/control.sock\""),
    );
    let out = run_with_input(team.command_with("open.toml", &["serve"]), b"");
    assert!(
        out.err().contains("is writable by others (mode 0777)"),
        "{out}"
    );
    assert!(!open.join("control.sock").exists());

    // Something that is no socket is left alone.
    std::fs::write(&socket, "not a socket").unwrap();
    let out = team.cmd(&["serve"]);
    assert!(out.err().contains("exists and is not a socket"), "{out}");
    std::fs::remove_file(&socket).unwrap();

    // A stale socket is replaced; a live one is not.
    drop(UnixListener::bind(&socket).unwrap());
    let mut daemon = team.serve();
    assert_eq!(mode(&socket), 0o666);
    let out = team.cmd(&["serve"]);
    assert!(
        out.err()
            .contains("another daemon is listening on the control socket"),
        "{out}"
    );
    team.cmd(&["secret", "list"]).ok();
    // No staging directory is left beside it; at the end, no socket either.
    let left: Vec<_> = std::fs::read_dir(team.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".control-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(daemon.stop(supervisor_tests::STOP_TIMEOUT).success());
    assert!(!socket.exists(), "the socket is removed at stop");
}
