//! The README's "Install for a team", with the example config of
//! `packaging/` as shipped (only its paths, user names, port and schedule
//! made to fit a test): the daemon runs under a service account of its own
//! with the key as a credential, alice stores a personal token from her
//! shell, bob can neither see nor touch it, alice's runs get it and a cron
//! run does not.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use supervisor_tests::users::{TempUser, skip_unless_root};
use supervisor_tests::{Daemon, Run, STOP_TIMEOUT, binary, run_with_input, sentinel, wait_for};

const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/supervisor.toml"
));

/// `text` with `from` replaced by `to`; panics when `from` is not there, so
/// that a change to the example shows here.
fn swap(text: String, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the example config no longer has {from}"
    );
    text.replacen(from, to, 1)
}

fn dir(path: &Path, mode: u32, owner: Option<&TempUser>) {
    std::fs::create_dir(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some(u) = owner {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid)).unwrap();
    }
}

#[test]
fn the_example_config_serves_a_team_as_the_readme_says() {
    if skip_unless_root("the_example_config_serves_a_team_as_the_readme_says") {
        return;
    }
    let service = TempUser::create("svc");
    let alice = TempUser::create("alice");
    let bob = TempUser::create("bob");
    let root = tempfile::Builder::new()
        .prefix("supervisor-install-")
        .tempdir()
        .unwrap();
    let root = root.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    // /etc/supervisor, /var/lib/supervisor (StateDirectory=, 0700),
    // /run/supervisor (RuntimeDirectory=, 0755), the credentials directory.
    dir(&root.join("etc"), 0o755, None);
    dir(&root.join("state"), 0o700, Some(&service));
    dir(&root.join("run"), 0o755, Some(&service));
    dir(&root.join("creds"), 0o700, Some(&service));

    let mut text = EXAMPLE.to_owned();
    for (from, to) in [
        (
            "\"/var/lib/supervisor\"",
            format!("{:?}", root.join("state")),
        ),
        (
            "\"/run/supervisor/control.sock\"",
            format!("{:?}", root.join("run/control.sock")),
        ),
        (
            "unix_user = \"alice\"",
            format!("unix_user = \"{}\"", alice.name),
        ),
        (
            "unix_user = \"bob\"",
            format!("unix_user = \"{}\"", bob.name),
        ),
        ("\"127.0.0.1:8780\"", "\"127.0.0.1:0\"".to_owned()),
        ("cron = \"0 * * * *\"", "cron = \"* * * * * *\"".to_owned()),
    ] {
        text = swap(text, from, &to);
    }
    let config = root.join("etc/supervisor.toml");
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let supervisor = |args: &[&str]| {
        let mut c = Command::new(binary());
        c.arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(root)
            .env_remove("SUPERVISOR_CONFIG")
            .env_remove("SUPERVISOR_SOCKET")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("RUST_LOG");
        c
    };
    let as_user = |user: &TempUser, input: &str, args: &[&str]| -> Run {
        run_with_input(user.command(&supervisor(args)), input.as_bytes())
    };

    // The service account makes the key and the store; the key then lives
    // only as the service's credential.
    as_user(&service, "", &["config", "check"]).ok();
    as_user(&service, "", &["init"]).ok();
    std::fs::rename(root.join("state/master.key"), root.join("creds/master.key")).unwrap();
    let mut serve = service.command(&supervisor(&["serve"]));
    serve.env("CREDENTIALS_DIRECTORY", root.join("creds"));
    let mut daemon = Daemon::start(serve);

    // alice stores a personal token from her own shell.
    let token = sentinel("ghp");
    let out = as_user(
        &alice,
        &token,
        &["secret", "create", "--personal", "--name", "GITHUB_TOKEN"],
    );
    assert!(
        out.ok()
            .contains("created personal secret GITHUB_TOKEN of alice (version 1)"),
        "{out}"
    );

    // bob cannot see it or touch it.
    let list = as_user(&bob, "", &["secret", "list"]);
    assert!(!list.ok().contains("GITHUB_TOKEN"), "{list}");
    let out = as_user(
        &bob,
        "x-value-from-bob",
        &[
            "secret",
            "update",
            "--personal",
            "--member",
            "alice",
            "--name",
            "GITHUB_TOKEN",
        ],
    );
    assert!(
        out.err()
            .contains("only admins manage other members' personal secrets"),
        "{out}"
    );
    let out = as_user(
        &bob,
        "",
        &["secret", "delete", "--personal", "--name", "GITHUB_TOKEN"],
    );
    assert!(
        out.err()
            .contains("no personal (owner bob) secret named `GITHUB_TOKEN`"),
        "{out}"
    );
    // Nor can anyone but the daemon open the store.
    let out = as_user(&bob, "", &["--local", "secret", "list"]);
    assert!(
        out.err().contains("you may not open the state directory"),
        "{out}"
    );

    // alice's run gets it (redacted in what she sees); bob's does not.
    let out = as_user(&alice, "", &["run", "env-check"]);
    assert!(
        out.ok().contains("GITHUB_TOKEN=[REDACTED:GITHUB_TOKEN]"),
        "{out}"
    );
    let out = as_user(&bob, "", &["run", "env-check"]);
    assert!(!out.ok().contains("GITHUB_TOKEN"), "{out}");

    // The hourly schedule (here: every second) runs with team secrets only.
    let cron_run: Value = wait_for("a finished cron run", Duration::from_secs(30), || {
        let runs = as_user(&alice, "", &["runs", "list", "--json", "--limit", "50"]).json();
        runs.as_array()?
            .iter()
            .find(|r| r["trigger"] == "cron" && r["status"] == "succeeded")
            .cloned()
    });
    let id = cron_run["id"].as_str().unwrap();
    let log = as_user(&alice, "", &["runs", "logs", id]);
    assert!(log.ok().contains("SUPERVISOR_TRIGGER=cron"), "{log}");
    assert!(!log.stdout.contains("GITHUB_TOKEN"), "{log}");

    for out in [&list, &log] {
        assert!(!out.all().contains(&token));
    }
    assert!(!daemon.log().contains(&token));
    assert!(daemon.stop(STOP_TIMEOUT).success(), "{}", daemon.log());
    assert!(!root.join("run/control.sock").exists());
}
