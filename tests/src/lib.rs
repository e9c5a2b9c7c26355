//! Helpers shared by the end-to-end tests: a temporary team (config, state
//! directory, key) and a way to run the real `supervisor` binary in it.
//!
//! The binary is the one cargo built for this workspace
//! (`target/<profile>/supervisor`); the README's test command builds it
//! before the tests run.

pub mod cgroup;
pub mod daemon;
/// A fake HTTP API that records what the daemon sends it (Slack, Linear).
pub mod fake_api;
pub mod host;
pub mod http;
/// A real PostgreSQL server of the tests' own.
pub mod postgres;
pub mod signing;
pub mod users;

pub use daemon::{Daemon, STOP_TIMEOUT, free_addr, server_section, wait_for, wait_until};
pub use http::{NO_HEADERS, Response};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `supervisor` binary next to this test executable's folder.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SUPERVISOR_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/supervisor
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("supervisor");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p supervisor` (the README's test command does)",
        bin.display()
    );
    bin
}

/// The name of the user running the tests (members map to it).
pub fn os_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .expect("current user has a name")
}

/// A team in a temporary directory: `supervisor.toml` and `state/`.
pub struct Team {
    pub dir: tempfile::TempDir,
}

/// What a finished command printed, with helpers for assertions.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "command failed:\n{self}");
        &self.stdout
    }

    /// Asserts failure and returns stderr.
    #[track_caller]
    pub fn err(&self) -> &str {
        assert_ne!(self.code, Some(0), "command should have failed:\n{self}");
        &self.stderr
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{self}"))
    }

    /// Everything the command printed.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The members every test team has: `alice` (admin, mapped to the OS user
/// running the tests) and `bob`. [`Team::config_as`] writes a second config
/// that maps the OS user to another member, to act as them.
pub const MEMBERS: &str = r#"
[[members]]
name = "alice"
unix_user = "@ALICE@"
slack_user = "U061F7AUR"
linear_user = "u-ada"
email = "alice@acme.example"
admin = true

[[members]]
name = "bob"
unix_user = "@BOB@"
slack_user = "U0BOB0001"
linear_user = "u-bob"
email = "bob@acme.example"
"#;

impl Team {
    /// A team whose config holds the members and `extra` (agents and so on),
    /// initialised (key and store created).
    pub fn new(extra: &str) -> Team {
        let team = Team::uninitialised(extra);
        team.cmd(&["init"]).ok();
        team
    }

    /// Like [`Team::new`] without running `init`.
    pub fn uninitialised(extra: &str) -> Team {
        let dir = tempfile::Builder::new()
            .prefix("supervisor-e2e-")
            .tempdir()
            .expect("temp dir");
        let team = Team { dir };
        team.write_config("supervisor.toml", "alice", extra);
        team
    }

    /// Writes a config named `file` in which the OS user is member `me`.
    pub fn write_config(&self, file: &str, me: &str, extra: &str) -> PathBuf {
        let user = os_user();
        let (alice, bob) = match me {
            "alice" => (user.as_str(), "bob-nobody"),
            "bob" => ("alice-nobody", user.as_str()),
            _ => ("alice-nobody", "bob-nobody"),
        };
        let text = format!(
            "state_dir = \"state\"\n\n[team]\nname = \"acme\"\n{}\n{extra}\n",
            MEMBERS.replace("@ALICE@", alice).replace("@BOB@", bob)
        );
        let path = self.path().join(file);
        std::fs::write(&path, text).expect("write config");
        path
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    /// A `supervisor` command with this team's config, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with("supervisor.toml", args)
    }

    /// A `supervisor` command with another config file of this team.
    pub fn command_with(&self, config: &str, args: &[&str]) -> Command {
        let mut c = Command::new(binary());
        c.arg("--config")
            .arg(self.path().join(config))
            .args(args)
            .current_dir(self.path())
            .env_remove("SUPERVISOR_CONFIG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("STATE_DIRECTORY")
            .env("RUST_BACKTRACE", "0");
        c
    }

    /// Runs a command with empty stdin and waits for it.
    pub fn cmd(&self, args: &[&str]) -> Run {
        self.cmd_in("", args)
    }

    /// Runs a command with `input` on stdin and waits for it.
    pub fn cmd_in(&self, input: &str, args: &[&str]) -> Run {
        run_with_input(self.command(args), input.as_bytes())
    }

    /// Runs a command as member `me` (through a config mapping the OS user to them).
    pub fn cmd_as(&self, me: &str, input: &str, args: &[&str], extra: &str) -> Run {
        let file = format!("as-{me}.toml");
        self.write_config(&file, me, extra);
        run_with_input(self.command_with(&file, args), input.as_bytes())
    }

    /// Stores a secret with `value` read from stdin; panics on failure.
    pub fn secret(&self, scope: &[&str], name: &str, value: &str) {
        let mut args = vec!["secret", "create", "--name", name];
        args.extend_from_slice(scope);
        self.cmd_in(value, &args).ok();
    }

    /// Every file under the state directory, recursively.
    pub fn state_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.state_dir(), &mut out);
        out
    }

    /// A connection to the team's database, as someone with file access has.
    /// While it is open, SQLite does not fold the WAL back into the database
    /// when a `supervisor` process exits, so the WAL and SHM files stay.
    pub fn db(&self) -> rusqlite::Connection {
        let conn =
            rusqlite::Connection::open(self.state_dir().join("store.db")).expect("open store.db");
        // SQLite opens the WAL at the first read.
        conn.query_row("SELECT count(*) FROM secrets", [], |r| r.get::<_, i64>(0))
            .expect("read the store");
        conn
    }

    /// Panics if `needle` occurs in any file under the state directory.
    #[track_caller]
    pub fn assert_not_in_state(&self, needle: &str) {
        for f in self.state_files() {
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "plaintext found in {}",
                f.display()
            );
        }
    }
}

/// Runs `cmd` with `input` on stdin and collects its output.
pub fn run_with_input(mut cmd: Command, input: &[u8]) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start supervisor");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for supervisor");
    let _ = writer.join();
    Run::from(out)
}

/// A NUL-separated environment dump (`env -0 > file`), as a map.
pub fn read_env0(path: &Path) -> std::collections::HashMap<String, String> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    raw.split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let e = String::from_utf8_lossy(e);
            let (k, v) = e.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// `(name, owner)` of every entry of a `secret list --json`, sorted.
pub fn listed(list: &serde_json::Value) -> Vec<(String, Option<String>)> {
    let mut out: Vec<_> = list
        .as_array()
        .expect("an array")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["owner"].as_str().map(str::to_owned),
            )
        })
        .collect();
    out.sort();
    out
}

/// One entry as [`listed`] gives it.
pub fn item(name: &str, owner: Option<&str>) -> (String, Option<String>) {
    (name.to_owned(), owner.map(str::to_owned))
}

/// A JSON file, parsed; panics when it is missing or not JSON.
pub fn read_json(path: &Path) -> serde_json::Value {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The permission bits of a file or directory.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A value no program would print by chance: `label-` and 16 random hex
/// digits. Tests store it and then look for it where it must not be.
pub fn sentinel(label: &str) -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{label}-{hex}")
}

/// Whether process `pid` exists and is not a zombie (a zombie runs nothing).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // After the command name in parentheses comes the state letter.
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// Polls `done` every 20 ms for up to 10 s; true as soon as it holds.
pub fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done()
}

impl Team {
    /// The newest run, as `runs list --json` shows it.
    #[track_caller]
    pub fn last_run(&self) -> serde_json::Value {
        let list = self.cmd(&["runs", "list", "--json", "--limit", "1"]).json();
        list[0].clone()
    }
}
