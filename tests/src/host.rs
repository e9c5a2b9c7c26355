//! A shared host for end-to-end tests of the control socket: the daemon
//! running as root (the only process holding the key), and real Unix users
//! made for the test (`alice`, an admin, and `bob`) who reach it through
//! the socket from their own uids. Everything is removed when dropped.
//!
//! The team's directory is traversable and its config readable by all, as
//! on a real host (the config names no secret); the state directory stays
//! the daemon's (0700).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use crate::users::TempUser;
use crate::{Daemon, Run, Team, run_with_input};

/// The socket's file name in the team's directory.
pub const SOCKET: &str = "control.sock";

pub struct Host {
    // Dropped in this order: the daemon first, then the users, then the files.
    pub daemon: Daemon,
    pub alice: TempUser,
    pub bob: TempUser,
    pub team: Team,
}

impl Host {
    /// A team of alice (admin) and bob, plus `extra` config (agents), its
    /// store initialised, and its daemon serving. Needs root.
    pub fn start(extra: &str) -> Host {
        Host::start_with("", extra)
    }

    /// Like [`Host::start`], with `server` keys added to `[server]`. In
    /// both, `@ALICE@` and `@BOB@` stand for the users' names.
    pub fn start_with(server: &str, extra: &str) -> Host {
        let alice = TempUser::create("alice");
        let bob = TempUser::create("bob");
        let team = Team::with_config(&host_config(&alice, &bob, server, extra));
        team.cmd(&["init"]).ok();
        let daemon = team.serve();
        Host {
            daemon,
            alice,
            bob,
            team,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.team.path().join(SOCKET)
    }

    /// `supervisor ARGS` as `user`, with this team's config, not started.
    pub fn command(&self, user: &TempUser, args: &[&str]) -> Command {
        user.command(&self.team.command(args))
    }

    /// Runs `supervisor ARGS` as `user` with `input` on stdin.
    pub fn cmd(&self, user: &TempUser, input: &str, args: &[&str]) -> Run {
        run_with_input(self.command(user, args), input.as_bytes())
    }

    /// Stores a secret as `user` (value on stdin); panics on failure.
    pub fn secret(&self, user: &TempUser, scope: &[&str], name: &str, value: &str) {
        let mut args = vec!["secret", "create", "--name", name];
        args.extend_from_slice(scope);
        self.cmd(user, value, &args).ok();
    }
}

/// The config of a host: alice and bob by their real uids, the control
/// socket in the team's directory, the HTTP listener on a free port.
pub fn host_config(alice: &TempUser, bob: &TempUser, server: &str, extra: &str) -> String {
    let text = format!(
        r#"state_dir = "state"

[team]
name = "acme"

[[members]]
name = "alice"
unix_user = "{}"
slack_user = "U061F7AUR"
admin = true

[[members]]
name = "bob"
unix_user = "{}"

[server]
listen = "127.0.0.1:0"
control_socket = "{SOCKET}"
{server}

{extra}
"#,
        alice.name, bob.name
    );
    text.replace("@ALICE@", &alice.name)
        .replace("@BOB@", &bob.name)
}

impl Team {
    /// A team whose config is `text`, not initialised. The directory is
    /// open to every user (0755) and the config readable (0644), as a
    /// shared host's `/etc/supervisor` is.
    pub fn with_config(text: &str) -> Team {
        let dir = tempfile::Builder::new()
            .prefix("supervisor-host-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("open the team directory");
        let team = Team { dir };
        let path = team.path().join("supervisor.toml");
        std::fs::write(&path, text).expect("write config");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .expect("config mode");
        team
    }
}
