//! The control socket with real users: who a caller is comes from the
//! kernel, members and admins may do what the README's table says and no
//! more, strangers are told how to join, and the protocol answers bad input
//! with errors. The daemon runs as root and alone holds the key.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use serde_json::Value;
use supervisor_tests::host::Host;
use supervisor_tests::users::{TempUser, skip_unless_root};
use supervisor_tests::{contains, item, listed, mode, sentinel};

#[test]
fn each_member_is_who_the_kernel_says_and_sees_their_own_only() {
    if skip_unless_root("each_member_is_who_the_kernel_says_and_sees_their_own_only") {
        return;
    }
    let host = Host::start("");
    let (alice_value, bob_value) = (sentinel("alice"), sentinel("bob"));
    let team_value = sentinel("team");
    host.secret(&host.alice, &["--team"], "SHARED", &team_value);
    host.secret(&host.alice, &["--personal"], "TOKEN", &alice_value);
    host.secret(&host.bob, &["--personal"], "TOKEN", &bob_value);

    let alice = host.cmd(&host.alice, "", &["secret", "list", "--json"]);
    assert_eq!(
        listed(&alice.json()),
        [item("SHARED", None), item("TOKEN", Some("alice"))]
    );
    let bob = host.cmd(&host.bob, "", &["secret", "list", "--json"]);
    assert_eq!(
        listed(&bob.json()),
        [item("SHARED", None), item("TOKEN", Some("bob"))]
    );
    let bobs = &bob.json()[1];
    assert_eq!(
        (&bobs["created_by"], &bobs["version"]),
        (&"bob".into(), &1.into())
    );

    // A client cannot claim another identity: bob's own config, which maps
    // his uid to alice, changes nothing about who the daemon sees.
    let forged = host.team.path().join("forged.toml");
    let text = std::fs::read_to_string(host.team.path().join("supervisor.toml"))
        .unwrap()
        .replace(&host.bob.name, "nobody-at-all")
        .replace(&host.alice.name, &host.bob.name);
    std::fs::write(&forged, text).unwrap();
    let forging = |args: &[&str]| {
        let mut cmd = std::process::Command::new(supervisor_tests::binary());
        cmd.arg("--config")
            .arg(&forged)
            .args(args)
            .current_dir(host.team.path());
        supervisor_tests::run_with_input(host.bob.command(&cmd), b"")
    };
    let out = forging(&["secret", "list", "--json"]);
    assert_eq!(
        listed(&out.json()),
        [item("SHARED", None), item("TOKEN", Some("bob"))],
        "still bob"
    );
    // Nor can bob go around the daemon: the key and the store are not his to open.
    let local = forging(&["--local", "secret", "list"]);
    assert!(
        local.err().contains("note: local mode (--local)"),
        "{local}"
    );
    assert!(!local.all().contains("TOKEN"), "{local}");

    // Values went in and never came out: not in any answer, not in the daemon's log.
    for out in [&alice, &bob, &out, &local] {
        for v in [&alice_value, &bob_value, &team_value] {
            assert!(!out.all().contains(v.as_str()));
        }
    }
    assert!(!host.daemon.log().contains(&alice_value));
    // The socket is open to every user; the directory it is in to no writer but root.
    assert_eq!(mode(&host.socket()), 0o666);
    assert_eq!(mode(host.team.path()) & 0o022, 0);
}

#[test]
fn members_and_admins_may_do_what_the_rules_say_and_no_more() {
    if skip_unless_root("members_and_admins_may_do_what_the_rules_say_and_no_more") {
        return;
    }
    let host = Host::start("[[agents]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n");
    host.secret(&host.alice, &["--team"], "SHARED", "shared-value-1");
    host.secret(&host.alice, &["--personal"], "ALICE_ONLY", "alice-value-1");
    let (alice, bob) = (&host.alice, &host.bob);
    let forbidden = sentinel("bob-tries");

    // bob is a member but no admin: no team secrets, nobody else's personal ones.
    for verb in ["create", "update"] {
        let out = host.cmd(
            bob,
            &forbidden,
            &["secret", verb, "--team", "--name", "SHARED"],
        );
        assert!(
            out.err()
                .contains("team secrets are managed by admins, and member `bob` is not one"),
            "{out}"
        );
        assert!(out.stderr.contains("note: sent to the daemon on"), "{out}");
        let out = host.cmd(
            bob,
            &forbidden,
            &[
                "secret",
                verb,
                "--personal",
                "--member",
                "alice",
                "--name",
                "ALICE_ONLY",
            ],
        );
        assert!(
            out.err()
                .contains("only admins manage other members' personal secrets"),
            "{out}"
        );
    }
    let out = host.cmd(bob, "", &["secret", "delete", "--team", "--name", "SHARED"]);
    assert!(out.err().contains("managed by admins"), "{out}");
    let out = host.cmd(
        bob,
        "",
        &[
            "secret",
            "delete",
            "--personal",
            "--member",
            "alice",
            "--name",
            "ALICE_ONLY",
        ],
    );
    assert!(out.err().contains("only admins"), "{out}");
    let out = host.cmd(bob, "", &["secret", "list", "--all"]);
    assert!(out.err().contains("needs an admin"), "{out}");
    let out = host.cmd(bob, "", &["scope", "a", "--member", "alice"]);
    assert!(out.err().contains("only admins may see"), "{out}");
    assert!(!out.all().contains("ALICE_ONLY"));
    for args in [&["audit", "list"][..], &["audit", "verify"]] {
        let out = host.cmd(bob, "", args);
        assert!(out.err().contains("the audit log is for admins"), "{out}");
    }
    // Nothing of the above changed anything.
    let all = host
        .cmd(alice, "", &["secret", "list", "--all", "--json"])
        .json();
    for s in all.as_array().unwrap() {
        assert_eq!(s["version"], 1, "{s}");
    }

    // bob's own: create, update, delete.
    host.secret(bob, &["--personal"], "BOB_ONLY", "bob-value-1");
    host.cmd(
        bob,
        "bob-value-2",
        &["secret", "update", "--personal", "--name", "BOB_ONLY"],
    )
    .ok();
    let out = host.cmd(
        bob,
        "",
        &[
            "secret",
            "delete",
            "--personal",
            "--member",
            "bob",
            "--name",
            "BOB_ONLY",
        ],
    );
    assert!(
        out.ok().contains("deleted personal secret BOB_ONLY of bob"),
        "{out}"
    );

    // alice, the admin: team secrets, and bob's personal ones with --member.
    let out = host.cmd(
        alice,
        "bob-by-alice-1",
        &[
            "secret",
            "create",
            "--personal",
            "--member",
            "bob",
            "--name",
            "LINEAR",
        ],
    );
    assert!(
        out.ok()
            .contains("created personal secret LINEAR of bob (version 1)"),
        "{out}"
    );
    host.cmd(
        alice,
        "bob-by-alice-2",
        &[
            "secret",
            "update",
            "--personal",
            "--member",
            "bob",
            "--name",
            "LINEAR",
        ],
    )
    .ok();
    let mine = host.cmd(bob, "", &["secret", "list", "--json"]).json();
    let linear = mine
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "LINEAR")
        .unwrap();
    assert_eq!(
        (&linear["updated_by"], &linear["version"]),
        (&"alice".into(), &2.into())
    );
    host.cmd(
        alice,
        "",
        &[
            "secret",
            "delete",
            "--personal",
            "--member",
            "bob",
            "--name",
            "LINEAR",
        ],
    )
    .ok();
    host.cmd(
        alice,
        "shared-value-2",
        &["secret", "update", "--team", "--name", "SHARED"],
    )
    .ok();
    let all = host.cmd(alice, "", &["secret", "list", "--all"]);
    assert!(all.ok().contains("OWNER"), "{all}");
    host.cmd(alice, "", &["audit", "verify"]).ok();
    let audit = host.cmd(alice, "", &["audit", "list", "--json"]).json();
    let actors: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert!(
        actors.contains(&"bob") && actors.contains(&"alice"),
        "{actors:?}"
    );
}

#[test]
fn a_user_who_is_no_member_is_refused_with_the_entry_to_add() {
    if skip_unless_root("a_user_who_is_no_member_is_refused_with_the_entry_to_add") {
        return;
    }
    let host = Host::start("");
    host.secret(&host.alice, &["--team"], "SHARED", "shared-value-1");
    let carol = TempUser::create("carol");
    for args in [
        &["secret", "list"][..],
        &["secret", "create", "--personal", "--name", "X"],
        &["runs", "list"],
        &["run", "anything"],
    ] {
        let out = host.cmd(&carol, "a-value-for-nothing", args);
        let err = out.err();
        assert!(
            err.contains(&format!(
                "error: uid {} (user `{}`) is not a member of team `acme`",
                carol.uid, carol.name
            )),
            "{args:?}: {out}"
        );
        assert!(
            err.contains(&format!(
                "[[members]]\n  name = \"{0}\"\n  unix_user = \"{0}\"\n",
                carol.name
            )),
            "{out}"
        );
        assert!(err.contains("supervisor.toml"), "names the file: {out}");
        assert!(!out.all().contains("SHARED"));
    }
    let out = host.cmd(&carol, "", &["run", "anything"]);
    assert_eq!(out.code, Some(125), "{out}");
    assert!(host.daemon.log().contains(&format!("uid={}", carol.uid)));

    // The entry the hint shows, and a reload (SIGHUP), let her in.
    let config = host.team.path().join("supervisor.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[members]]\nname = \"{0}\"\nunix_user = \"{0}\"\n",
        carol.name
    ));
    std::fs::write(&config, text).unwrap();
    host.daemon.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        host.daemon
            .wait_for_log("config reloaded", std::time::Duration::from_secs(30))
    );
    let out = host.cmd(&carol, "", &["secret", "list"]);
    assert!(out.ok().contains("SHARED"), "{out}");
}

/// A frame as a client sends it: length, then the body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// Sends raw bytes (from this process, root, which is no member) and
/// returns the body of the daemon's answer.
fn raw_exchange(host: &Host, bytes: &[u8]) -> Value {
    let mut s = UnixStream::connect(host.socket()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // The daemon may answer and close before reading everything.
    let _ = s.write_all(bytes);
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert!(answer.len() > 4, "no answer");
    let len = u32::from_be_bytes(answer[..4].try_into().unwrap()) as usize;
    assert_eq!(answer.len(), 4 + len, "one frame, then the end");
    serde_json::from_slice(&answer[4..]).unwrap()
}

#[test]
fn bad_frames_and_other_versions_get_errors_and_the_daemon_goes_on() {
    if skip_unless_root("bad_frames_and_other_versions_get_errors_and_the_daemon_goes_on") {
        return;
    }
    let host = Host::start("");
    let alice = &host.alice;
    let error = |answer: &Value| {
        (
            answer["error"]["kind"].as_str().unwrap_or("").to_owned(),
            answer["error"]["message"].as_str().unwrap_or("").to_owned(),
        )
    };

    let (kind, message) = error(&raw_exchange(&host, &frame(b"{not json, sekrit-9d1")));
    assert_eq!(kind, "malformed");
    assert!(message.contains("line 1, column"), "{message}");
    assert!(!message.contains("sekrit"), "{message}");

    let (kind, _) = error(&raw_exchange(
        &host,
        &frame(br#"{"v":2,"supervisor":"x","msg":{"request":{"no_such_request":{}}}}"#),
    ));
    assert_eq!(kind, "malformed");

    let (kind, message) = error(&raw_exchange(&host, &(1u32 << 30).to_be_bytes()));
    assert_eq!(kind, "too_large", "{message}");

    let (kind, message) = error(&raw_exchange(&host, &frame(b"")));
    assert_eq!(kind, "malformed", "{message}");

    let future = br#"{"v":99,"supervisor":"9.0.0","msg":{"request":{"secret_list":{"all":false,"newer":true}}}}"#;
    let answer = raw_exchange(&host, &frame(future));
    let (kind, message) = error(&answer);
    assert_eq!(kind, "version");
    assert!(
        message.contains("the daemon speaks protocol 2 (supervisor 0.1.0), this client protocol 99 (supervisor 9.0.0)"),
        "{message}"
    );
    let hint = answer["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("the daemon's version"), "{hint}");

    // An interrupt is no request.
    let (kind, _) = error(&raw_exchange(
        &host,
        &frame(br#"{"v":2,"supervisor":"x","msg":{"interrupt":{"signal":2}}}"#),
    ));
    assert_eq!(kind, "malformed");

    // A well-formed request from someone who is no member (this process,
    // root): refused before it is handled.
    let (kind, message) = error(&raw_exchange(
        &host,
        &frame(br#"{"v":2,"supervisor":"x","msg":{"request":{"secret_list":{"all":true}}}}"#),
    ));
    assert_eq!(kind, "not_a_member");
    assert!(message.starts_with("uid 0 (user `root`)"), "{message}");

    // After all that, the daemon still answers, and counted every refusal.
    host.cmd(alice, "", &["secret", "list"]).ok();
    let count = |request: &str, result: &str| {
        host.daemon.metric(&format!(
            "supervisor_control_requests_total{{request=\"{request}\",result=\"{result}\"}}"
        ))
    };
    assert_eq!(count("unknown", "malformed"), 4);
    assert_eq!(count("unknown", "too_large"), 1);
    assert_eq!(count("unknown", "version"), 1);
    assert_eq!(count("secret_list", "not_a_member"), 1);
    assert_eq!(count("secret_list", "ok"), 1);
    assert!(
        !host.daemon.log().contains("panicked"),
        "{}",
        host.daemon.log()
    );
}

#[test]
fn a_client_that_sends_nothing_is_dropped_after_the_request_timeout() {
    if skip_unless_root("a_client_that_sends_nothing_is_dropped_after_the_request_timeout") {
        return;
    }
    let host = Host::start("");
    let mut s = UnixStream::connect(host.socket()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_secs(9), "{waited:?}");
    assert!(
        contains(&answer, b"\"kind\":\"timeout\""),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // A half-sent frame is no better.
    let mut s = UnixStream::connect(host.socket()).unwrap();
    s.write_all(&[0, 0, 1]).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert!(contains(&answer, b"\"kind\":\"timeout\""));
}
