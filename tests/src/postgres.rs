//! A real PostgreSQL server for tests and benchmarks, from the system's
//! packages: `initdb` and `pg_ctl` (found with `pg_config --bindir`, else
//! under `/usr/lib/postgresql/*/bin`) in a temporary directory, listening
//! on a free port of 127.0.0.1 only, stopped and removed when dropped.
//!
//! PostgreSQL refuses to run as root, and tests run as root: then the
//! server runs as a [`TempUser`] of its own (in the private mount namespace
//! with a fresh `/dev` that `TempUser::command` gives, which `initdb`
//! needs where `/dev` is closed to others). The test server trades
//! durability for speed (`fsync = off`, unless [`PgServer::start_durable`]):
//! a crash of the test machine loses it, which no test needs to survive.
//!
//! Where no server can be found, [`PgServer::start`] returns `None` after a
//! note, so that a developer without PostgreSQL still runs the rest; with
//! `SUPERVISOR_REQUIRE_POSTGRES=1` or `CI` set (as CI runs), it panics
//! instead: a test that needs PostgreSQL never passes silently there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::users::{TempUser, is_root};

/// A running test server.
pub struct PgServer {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    pub port: u16,
    settings: String,
    user: Option<TempUser>,
    databases: std::sync::atomic::AtomicUsize,
}

/// Whether tests that need PostgreSQL must fail rather than skip.
fn required() -> bool {
    std::env::var_os("SUPERVISOR_REQUIRE_POSTGRES").is_some_and(|v| v != "0")
        || std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// The directory of the server's programs, if the system has them.
pub fn bindir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has(&dir) {
            return Some(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| has(d))
        .collect();
    // The newest major version.
    found.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

impl PgServer {
    /// Starts a server (`fsync = off`); `None` (after a note) where the
    /// system has none and the environment does not require one.
    pub fn start(test: &str) -> Option<PgServer> {
        PgServer::start_with(test, false)
    }

    /// Starts a server that syncs its writes as a production one does (for
    /// benchmarks that compare durability costs).
    pub fn start_durable(test: &str) -> Option<PgServer> {
        PgServer::start_with(test, true)
    }

    fn start_with(test: &str, durable: bool) -> Option<PgServer> {
        let Some(bindir) = bindir() else {
            assert!(
                !required(),
                "{test} needs a PostgreSQL server (initdb, pg_ctl) and none was found: install the `postgresql` package (.ci/run does)"
            );
            eprintln!(
                "skipped {test}: no PostgreSQL server on this machine (install `postgresql`)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("supervisor-pg")
            .tempdir()
            .expect("temporary directory");
        let user = is_root().then(|| TempUser::create("pg"));
        if let Some(u) = &user {
            nix::unistd::chown(dir.path(), Some(u.uid.into()), Some(u.gid.into()))
                .expect("give the server's directory to its user");
        }
        let data = dir.path().join("data");
        let port = crate::free_addr().port();
        let mut settings = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=200 -c shared_buffers=32MB"
        );
        if !durable {
            settings.push_str(" -c fsync=off -c full_page_writes=off");
        }
        let server = PgServer {
            dir,
            bindir,
            port,
            settings,
            user,
            databases: Default::default(),
        };
        let init = server.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(init.status.success(), "initdb failed: {}", text(&init));
        let log = server.dir.path().join("server.log");
        let started = server.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-o",
                &server.settings,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            started.status.success(),
            "pg_ctl start failed: {}\n{}",
            text(&started),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Some(server)
    }

    /// Runs one of the server's programs as the server's user.
    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(self.bindir.join(program));
        cmd.args(args).current_dir(self.dir.path());
        let mut cmd = match &self.user {
            Some(u) => u.command(&cmd),
            None => cmd,
        };
        cmd.output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"))
    }

    /// A connection URL for `database` (no password: the test server
    /// trusts connections from 127.0.0.1).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database of a fresh name and returns its URL.
    pub fn fresh_database(&self) -> String {
        let n = self
            .databases
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("t{n}_{}", std::process::id());
        let mut client = self.client("postgres");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        self.url(&name)
    }

    /// A plain client of `database` (for tests that tamper with rows).
    pub fn client(&self, database: &str) -> postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match postgres::Client::connect(&self.url(database), postgres::NoTls) {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("connecting to the test server: {e}"),
            }
        }
    }

    /// Stops the server at once (as a crash would); it stays stopped.
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        let _ = self.run(
            "pg_ctl",
            &["-D", path(&data), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts a stopped server again on the same port.
    pub fn restart(&self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-o",
                &self.settings,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(out.status.success(), "pg_ctl start failed: {}", text(&out));
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        // The directory (TempDir) and the user (TempUser) go after this.
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_answers_and_is_removed() {
        let Some(server) = PgServer::start("a_server_starts_answers_and_is_removed") else {
            return;
        };
        let url = server.fresh_database();
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
        assert_eq!(one, 1);
        let fsync: String = c.query_one("SHOW fsync", &[]).unwrap().get(0);
        assert_eq!(fsync, "off");
        drop(c);
        let dir = server.dir.path().to_owned();
        let port = server.port;
        drop(server);
        assert!(!dir.exists());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
