//! A hostile agent, in every mode, tries to reach the master key, the store
//! and its WAL, the credentials directory, the supervisor's /proc files, the
//! filesystem of another process of its own user, and to run `supervisor`
//! itself with a config of its own. Every attempt fails, and no value it was
//! not given appears anywhere.
//!
//! Modes: the daemon as root with agents under another account (the service);
//! `supervisor run` as root with an agent without `user`; `supervisor run` as
//! an unprivileged user whose agent shares its uid.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use supervisor_tests::signing::{now_secs, webhook_headers};
use supervisor_tests::users::{TempUser, skip_unless_root};
use supervisor_tests::{Team, binary, contains, run_with_input, server_section, wait_for};

/// Each attempt prints `REACHED <label>` when it works, then whatever it got.
const HOSTILE: &str = r#"
cd "$HOME" || exit 3
r() { label=$1; shift; if "$@" > "$HOME/out" 2>&1; then echo "REACHED $label"; else echo "denied $label"; fi; cat "$HOME/out"; echo; }
r key cat "$KEY"
r store cat "$STATE/store.db"
r wal cat "$STATE/store.db-wal"
r state-list ls -la "$STATE"
r creds cat "$CREDS/master.key"
r creds-list ls -la "$CREDS"
r sup-environ cat "/proc/$PPID/environ"
r sup-mem head -c 64 "/proc/$PPID/mem"
r sup-root cat "/proc/$PPID/root$KEY"
r sup-fd sh -c "cat /proc/$PPID/fd/*"
r other-root cat "/proc/$OTHER/root$KEY"
r other-environ cat "/proc/$OTHER/environ"
printf '[team]\nname = "evil"\n[[members]]\nname = "bob"\nunix_user = "%s"\nadmin = true\n[[agents]]\nname = "dump"\ncommand = ["/usr/bin/env"]\n' "$(id -un)" > evil.toml
printf 'key_file = "%s"\n' "$KEY" | cat - evil.toml > evil-key.toml
r self-run "$SUP" --config evil.toml --state-dir "$STATE" run dump
r self-run-key "$SUP" --config evil-key.toml --state-dir "$STATE" run dump
r self-run-creds env CREDENTIALS_DIRECTORY="$CREDS" "$SUP" --config evil.toml --state-dir "$STATE" run dump
r self-list "$SUP" --config evil.toml --state-dir "$STATE" secret list --all
echo hostile-done
"#;

/// Listings may succeed (an empty cover), as long as they show nothing.
const LISTINGS: [&str; 2] = ["state-list", "creds-list"];

const TEAM_TOKEN: &str = "team-token-hostile-51c2e9";
const BOB_TOKEN: &str = "bob-token-hostile-a8d403";

/// A copy of the binary that any user may run, in a directory of its own.
fn public_binary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("supervisor");
    std::fs::copy(binary(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, copy)
}

/// A process outside any run (the "user's shell"), killed when dropped, so
/// that a failing test still lets its user be removed.
struct Bystander(Child);

impl Bystander {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sleep` as `user` (or as us), outside any run.
fn bystander(user: Option<&TempUser>) -> Bystander {
    let mut cmd = Command::new("/bin/sleep");
    cmd.arg("120");
    let mut cmd = match user {
        Some(u) => u.command(&cmd),
        None => cmd,
    };
    Bystander(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The hostile agent, with what it aims at in its environment. `other` is the
/// pid of a process of the agent's own user outside the run (a user's
/// command runs under wrappers that exec into it, so the pid is the sleep's).
fn agent_config(
    extra_agent: &str,
    key: &Path,
    state: &Path,
    creds: &Path,
    sup: &Path,
    other: u32,
) -> String {
    let q = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap();
    format!(
        "[[agents]]\nname = \"hostile\"\ncommand = [\"/bin/sh\", \"-c\", {}]\ntriggers = [\"cli\", \"webhook\"]\ntimeout = \"60s\"\n{extra_agent}env = {{ PATH = \"/usr/bin:/bin\", KEY = {}, STATE = {}, CREDS = {}, SUP = {}, OTHER = \"{other}\" }}\n",
        serde_json::to_string(HOSTILE).unwrap(),
        q(key),
        q(state),
        q(creds),
        q(sup),
    )
}

/// Checks what the hostile agent printed and everything around it.
#[track_caller]
fn assert_nothing_reached(output: &str, key: &[u8], team: &Team) {
    if std::env::var_os("HOSTILE_SHOW").is_some() {
        eprintln!("{output}");
    }
    assert!(
        output.contains("hostile-done"),
        "the agent did not run to its end:\n{output}"
    );
    for line in output.lines() {
        if let Some(label) = line.strip_prefix("REACHED ") {
            assert!(
                LISTINGS.contains(&label),
                "the agent reached {label}:\n{output}"
            );
        }
    }
    for name in ["store.db", "master.key", "runs"] {
        assert!(
            !output.contains(&format!(" {name}\n")),
            "a listing shows {name}:\n{output}"
        );
    }
    assert!(!output.contains(BOB_TOKEN), "bob's token leaked:\n{output}");
    assert!(!contains(output.as_bytes(), key), "the master key leaked");
    let hexed: String = key.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!output.contains(&hexed));
    team.assert_not_in_state(BOB_TOKEN);
    team.assert_not_in_state(TEAM_TOKEN);
}

/// Service mode: the daemon runs as root holding the key (a file and a
/// credentials directory); agents run as another account by default.
#[test]
fn a_hostile_agent_of_the_service_reaches_nothing() {
    if skip_unless_root("a_hostile_agent_of_the_service_reaches_nothing") {
        return;
    }
    let agent_user = TempUser::create("agent");
    let (_bin, sup) = public_binary();
    let team = Team::uninitialised("");
    // The team's directory stands for /var/lib: searchable by all.
    std::fs::set_permissions(team.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let creds = team.path().join("credentials");
    let other = bystander(Some(&agent_user));
    let key = team.state_dir().join("master.key");
    let config = format!(
        "{}[sandbox]\nagent_user = \"{}\"\n{}[[webhooks]]\nname = \"go\"\nagent = \"hostile\"\nsecret = {{ file = \"hook-secret\" }}\n",
        server_section(""),
        agent_user.name,
        agent_config("", &key, &team.state_dir(), &creds, &sup, other.id()),
    );
    team.write_config("supervisor.toml", "alice", &config);
    std::fs::write(team.path().join("hook-secret"), "hook-secret-hostile").unwrap();
    team.cmd(&["init"]).ok();
    std::fs::create_dir(&creds).unwrap();
    std::fs::copy(&key, creds.join("master.key")).unwrap();
    team.secret(&["--team"], "TEAM_TOKEN", TEAM_TOKEN);
    team.cmd_as(
        "bob",
        BOB_TOKEN,
        &["secret", "create", "--personal", "--name", "BOB_TOKEN"],
        &config,
    )
    .ok();
    let mut serve = team.serve_command();
    serve.env("CREDENTIALS_DIRECTORY", &creds);
    let mut daemon = supervisor_tests::Daemon::start(serve);
    let body = b"{}";
    let r = daemon.post(
        "/hooks/go",
        &webhook_headers("hook-secret-hostile", now_secs(), body),
        body,
    );
    assert_eq!(r.status, 202, "{r:?}");
    let runs = team.finished_runs(1, Duration::from_secs(60));
    let id = runs[0]["id"].as_str().unwrap();
    let shown = team.cmd(&["runs", "show", id, "--json"]).json();
    assert_eq!(
        shown["detail"]["containment"]["user"],
        agent_user.name.as_str(),
        "{shown}"
    );
    let log = team.cmd(&["runs", "logs", id]).ok().to_owned();
    daemon.stop(Duration::from_secs(10));
    drop(other);
    assert_nothing_reached(
        &format!("{log}{}", daemon.log()),
        &std::fs::read(&key).unwrap(),
        &team,
    );
}

/// Local mode as root: the agent has no `user`, so it runs as root too, in a
/// mount namespace that covers the state, inside a Landlock domain, without
/// capabilities.
#[test]
fn a_hostile_agent_of_a_root_cli_run_reaches_nothing() {
    if skip_unless_root("a_hostile_agent_of_a_root_cli_run_reaches_nothing") {
        return;
    }
    let (_bin, sup) = public_binary();
    let team = Team::uninitialised("");
    let creds = team.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let other = bystander(None);
    let key = team.state_dir().join("master.key");
    let config = agent_config("", &key, &team.state_dir(), &creds, &sup, other.id());
    team.write_config("supervisor.toml", "alice", &config);
    team.cmd(&["init"]).ok();
    std::fs::copy(&key, creds.join("master.key")).unwrap();
    team.secret(&["--team"], "TEAM_TOKEN", TEAM_TOKEN);
    team.cmd_as(
        "bob",
        BOB_TOKEN,
        &["secret", "create", "--personal", "--name", "BOB_TOKEN"],
        &config,
    )
    .ok();
    let mut cmd = team.command(&["run", "hostile"]);
    cmd.env("CREDENTIALS_DIRECTORY", &creds);
    let run = run_with_input(cmd, b"");
    drop(other);
    assert_eq!(run.code, Some(0), "{run}");
    let layers = team
        .cmd(&[
            "runs",
            "show",
            team.last_run()["id"].as_str().unwrap(),
            "--json",
        ])
        .json();
    let layers = layers["detail"]["containment"]["layers"].to_string();
    for layer in ["mount namespace", "landlock domain", "no capabilities"] {
        assert!(layers.contains(layer), "{layer}: {layers}");
    }
    assert_nothing_reached(&run.all(), &std::fs::read(&key).unwrap(), &team);
}

/// Local mode as an unprivileged user: the agent shares the user's uid; a
/// user namespace gives it the mount cover, Landlock keeps it from the user's
/// other processes (whose /proc/<pid>/root would walk past the cover).
#[test]
fn a_hostile_agent_of_an_unprivileged_cli_run_reaches_nothing() {
    if skip_unless_root("a_hostile_agent_of_an_unprivileged_cli_run_reaches_nothing") {
        return;
    }
    let user = TempUser::create("cli");
    let (_bin, sup) = public_binary();
    let team = Team::uninitialised("");
    std::fs::set_permissions(team.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let creds = team.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let other = bystander(Some(&user));
    let key = team.state_dir().join("master.key");
    let agent = agent_config("", &key, &team.state_dir(), &creds, &sup, other.id());
    // The user at the keyboard is alice; bob is someone else.
    let members = format!(
        "state_dir = \"state\"\n[team]\nname = \"acme\"\n[[members]]\nname = \"alice\"\nunix_user = \"{}\"\nadmin = true\n[[members]]\nname = \"bob\"\nunix_user = \"bob-elsewhere\"\n{agent}",
        user.name
    );
    std::fs::write(team.path().join("supervisor.toml"), &members).unwrap();
    let as_user = |args: &[&str], input: &str, extra_env: Option<&Path>| {
        let mut cmd = Command::new(&sup);
        cmd.arg("--config")
            .arg(team.path().join("supervisor.toml"))
            .args(args)
            .current_dir(team.path())
            .env_remove("SUPERVISOR_CONFIG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("STATE_DIRECTORY");
        if let Some(c) = extra_env {
            cmd.env("CREDENTIALS_DIRECTORY", c);
        }
        run_with_input(user.command(&cmd), input.as_bytes())
    };
    // Everything belongs to the user: the team directory is theirs.
    let chown = Command::new("chown")
        .args(["-R", &format!("{}:{}", user.uid, user.gid)])
        .arg(team.path())
        .status()
        .unwrap();
    assert!(chown.success());
    as_user(&["init"], "", None).ok();
    std::fs::copy(&key, creds.join("master.key")).unwrap();
    Command::new("chown")
        .args(["-R", &format!("{}:{}", user.uid, user.gid)])
        .arg(&creds)
        .status()
        .unwrap();
    as_user(
        &["secret", "create", "--team", "--name", "TEAM_TOKEN"],
        TEAM_TOKEN,
        None,
    )
    .ok();
    as_user(
        &[
            "secret",
            "create",
            "--personal",
            "--member",
            "bob",
            "--name",
            "BOB_TOKEN",
        ],
        BOB_TOKEN,
        None,
    )
    .ok();
    let run = as_user(&["run", "hostile"], "", Some(&creds));
    drop(other);
    assert_eq!(run.code, Some(0), "{run}");
    let listed = wait_for("the run record", Duration::from_secs(5), || {
        let r = as_user(&["runs", "list", "--json"], "", None);
        (r.code == Some(0)).then(|| r.json())
    });
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let shown = as_user(&["runs", "show", &id, "--json"], "", None).json();
    let layers = shown["detail"]["containment"]["layers"].to_string();
    assert!(
        layers.contains("mount namespace") && layers.contains("landlock domain"),
        "{layers}"
    );
    assert_nothing_reached(&run.all(), &std::fs::read(&key).unwrap(), &team);
}
