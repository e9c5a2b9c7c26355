//! Real Unix users for end-to-end tests that run as root (as CI does):
//! each one created under a unique name and removed when dropped, and a way
//! to run a command as one of them.
//!
//! A command run as another user gets a private mount namespace with a
//! fresh `/dev` (null, zero, full, random, urandom, tty, shm): on some test
//! machines `/dev` itself is closed to everyone but root, and programs
//! cannot live without `/dev/null`. A real host needs none of this.
//!
//! Tests that need root call [`skip_unless_root`] first and return when it
//! says so, so that a developer's unprivileged run still passes.

use std::process::Command;
use std::time::Duration;

/// Whether this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True (after a note on stderr) when the test cannot run here because it
/// needs root; the caller returns at once.
#[must_use]
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipped {test}: it creates Unix users and needs root (CI runs as root)");
    true
}

/// A Unix user that exists while this value lives.
#[derive(Debug)]
pub struct TempUser {
    /// The login name: `sv` + a label + random hex, unique across tests.
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TempUser {
    /// Creates a user (and a group of the same name) without a home or a
    /// login shell. `label` (a few lowercase letters) shows in the name
    /// to tell users apart in a failing test's output. Needs root.
    #[track_caller]
    pub fn create(label: &str) -> TempUser {
        assert!(is_root(), "creating users needs root");
        let name = format!("sv{label}{}", random_hex(4));
        assert!(name.len() <= 32, "user name {name} is too long");
        // useradd takes a lock on /etc/passwd; tests running at the same
        // time see "cannot lock" (exit 10) and try again.
        let mut last = String::new();
        for _ in 0..100 {
            let out = Command::new("useradd")
                .args([
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    &name,
                ])
                .output()
                .expect("run useradd");
            if out.status.success() {
                let user = nix::unistd::User::from_name(&name)
                    .expect("read the user database")
                    .expect("the user just created");
                return TempUser {
                    name,
                    uid: user.uid.as_raw(),
                    gid: user.gid.as_raw(),
                };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("useradd {name} kept failing: {last}");
    }

    /// `cmd` run as this user (its uid, its group and supplementary groups)
    /// in a private mount namespace with a fresh `/dev`. Environment,
    /// working directory and stdio set on `cmd` are kept.
    pub fn command(&self, cmd: &Command) -> Command {
        as_user(self.uid, self.gid, cmd)
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        for _ in 0..100 {
            let ok = Command::new("userdel")
                .arg(&self.name)
                .output()
                .is_ok_and(|o| o.status.success() || o.status.code() == Some(6));
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("warning: could not remove test user {}", self.name);
    }
}

/// Sets up the fresh `/dev` in the new mount namespace, then becomes the
/// user (`$1`, `$2`) with that user's groups and runs the rest.
const AS_USER: &str = r#"set -e
mount --make-rprivate /
mount -t tmpfs -o mode=0755,nosuid,noexec supervisor-test-dev /dev
mknod -m 0666 /dev/null c 1 3
mknod -m 0666 /dev/zero c 1 5
mknod -m 0666 /dev/full c 1 7
mknod -m 0666 /dev/random c 1 8
mknod -m 0666 /dev/urandom c 1 9
mknod -m 0666 /dev/tty c 5 0
mkdir -m 1777 /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
uid=$1 gid=$2
shift 2
exec setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@"
"#;

/// `cmd` run as `uid`/`gid` (with the supplementary groups of the user
/// `uid` names) in a private mount namespace with a fresh `/dev`.
pub fn as_user(uid: u32, gid: u32, cmd: &Command) -> Command {
    let mut wrapped = Command::new("unshare");
    wrapped
        .args(["--mount", "--", "/bin/sh", "-c", AS_USER, "as-user"])
        .arg(uid.to_string())
        .arg(gid.to_string())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_exists_while_it_lives_and_commands_run_as_it() {
        if skip_unless_root("a_user_exists_while_it_lives_and_commands_run_as_it") {
            return;
        }
        let user = TempUser::create("probe");
        let name = user.name.clone();
        assert!(nix::unistd::User::from_name(&name).unwrap().is_some());

        let mut id = Command::new("/bin/sh");
        id.args(["-c", "id -u; id -g; echo x > /dev/null && echo devnull-ok"]);
        let out = user.command(&id).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                user.uid.to_string(),
                user.gid.to_string(),
                "devnull-ok".into()
            ]
        );

        drop(user);
        assert!(nix::unistd::User::from_name(&name).unwrap().is_none());
    }
}
