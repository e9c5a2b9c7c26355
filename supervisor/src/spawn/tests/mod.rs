//! Tests of the spawn module against real child processes.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::Instant;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

use super::*;
use nix::unistd::getpgrp;
use std::path::PathBuf;
use std::time::Duration;

fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn path_env() -> Vec<(String, String)> {
    vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())]
}

fn spec<'a>(argv: &'a [String], env: &'a [(String, String)]) -> ChildSpec<'a> {
    ChildSpec {
        argv,
        env,
        secrets: &[],
        working_dir: None,
        run_as: None,
        confine: None,
    }
}

/// Runs a child to completion and returns its stdout; fails the test unless it exits 0.
async fn stdout_of(spec: &ChildSpec<'_>) -> String {
    let out = spawn(spec).unwrap().wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

/// Pids of the live (not zombie) processes whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid, pgrp, session, ...
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .collect();
        if fields[2].parse() == Ok(pgid) && !matches!(fields[0], "Z" | "X") {
            members.push(pid);
        }
    }
    members
}

/// A run tracked by its process group alone.
fn group_only(pgid: i32) -> Tracked {
    Tracked {
        pgid,
        cgroup: None,
        run_as: None,
        adopts_orphans: false,
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .next();
        !matches!(state, Some("Z" | "X"))
    })
}

async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[tokio::test]
async fn environment_is_exactly_env_then_secrets() {
    let env = vec![
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ("SUPERVISOR_RUN_ID".to_owned(), "run-1".to_owned()),
        ("EMPTY".to_owned(), String::new()),
        ("SHADOWED".to_owned(), "plain".to_owned()),
    ];
    let token = SecretString::from("sentinel-token-4f1e");
    let multi = SecretString::from("line one\nline two=with equals");
    let shadow = SecretString::from("sentinel-shadow-9c2a");
    let secrets = vec![
        ("API_TOKEN".to_owned(), &token),
        ("MULTI_LINE".to_owned(), &multi),
        ("SHADOWED".to_owned(), &shadow),
    ];
    let cmd = argv(&["/usr/bin/env", "-0"]);
    let out = stdout_of(&ChildSpec {
        secrets: &secrets,
        ..spec(&cmd, &env)
    })
    .await;

    let entries: Vec<&str> = out.split_terminator('\0').collect();
    let got: BTreeMap<&str, &str> = entries.iter().map(|e| e.split_once('=').unwrap()).collect();
    assert_eq!(got.len(), entries.len(), "a variable appears twice");
    let expected = BTreeMap::from([
        ("LANG", "C.UTF-8"),
        ("SUPERVISOR_RUN_ID", "run-1"),
        ("EMPTY", ""),
        ("SHADOWED", "sentinel-shadow-9c2a"),
        ("API_TOKEN", "sentinel-token-4f1e"),
        ("MULTI_LINE", "line one\nline two=with equals"),
    ]);
    assert_eq!(got, expected);
    // Said differently: nothing of this test process's own environment got in.
    assert!(std::env::var_os("PATH").is_some());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if !expected.contains_key(name.as_ref()) {
            assert!(!got.contains_key(name.as_ref()), "{name} leaked");
        }
    }
}

#[tokio::test]
async fn only_stdio_descriptors_reach_the_child() {
    let leaky = std::fs::File::open("/dev/null").unwrap();
    fcntl(&leaky, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
    let cmd = argv(&["/bin/sh", "-c", "ls /proc/$$/fd"]);
    let env = path_env();
    assert_eq!(stdout_of(&spec(&cmd, &env)).await, "0\n1\n2\n");
    drop(leaky);
}

/// Descriptors 0, 1 and 2 closed while this lives (put back when dropped):
/// the pipes a spawn makes then land on them.
struct StdioClosed(Vec<i32>);

impl StdioClosed {
    fn new() -> StdioClosed {
        // SAFETY: this test's own process (nextest runs one per test); nothing
        // is read or written on 0-2 while they are closed, and they are put back.
        let saved: Vec<i32> = (0..3).map(|fd| unsafe { libc::dup(fd) }).collect();
        assert!(saved.iter().all(|&fd| fd > 2));
        for fd in 0..3 {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
        StdioClosed(saved)
    }
}

impl Drop for StdioClosed {
    fn drop(&mut self) {
        for (fd, &copy) in self.0.iter().enumerate() {
            // SAFETY: as in `new`.
            unsafe {
                libc::dup2(copy, fd as i32);
                libc::close(copy);
            }
        }
    }
}

#[tokio::test]
async fn a_parent_without_standard_descriptors_still_gets_pipes_and_errors_right() {
    use tokio::io::AsyncWriteExt;
    let (err, out) = {
        let _closed = StdioClosed::new();
        let err = spawn(&spec(&argv(&["/nonexistent/agent"]), &[])).unwrap_err();
        // Everything of the child is done before 0-2 are put back over its pipes.
        let mut child = spawn(&spec(&argv(&["/bin/cat"]), &[])).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"through the pipe\n").await.unwrap();
        drop(stdin);
        (err, child.wait_with_output().await.unwrap())
    };
    assert!(matches!(err, SpawnError::NotFound { .. }), "{err:?}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"through the pipe\n");
}

#[tokio::test]
async fn child_leads_its_own_session_without_core_dumps_or_new_privileges() {
    // `cat` reads its own files: no shell whose state could blur the picture.
    let cmd = argv(&[
        "/bin/cat",
        "/proc/self/stat",
        "/proc/self/limits",
        "/proc/self/status",
    ]);
    // A signal blocked in the spawning thread must not stay blocked in the child.
    let usr2 = nix::sys::signal::SigSet::from(Signal::SIGUSR2);
    usr2.thread_block().unwrap();
    let child = spawn(&spec(&cmd, &[]));
    usr2.thread_unblock().unwrap();
    let child = child.unwrap();
    let pid = child.id().unwrap().to_string();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let out = String::from_utf8(out.stdout).unwrap();

    let stat = out.lines().next().unwrap();
    assert_eq!(stat.split(' ').next(), Some(pid.as_str()));
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    assert_eq!(
        (fields[2], fields[3]),
        (pid.as_str(), pid.as_str()),
        "pgrp, sid"
    );
    let core = out
        .lines()
        .find_map(|l| l.strip_prefix("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "bytes"],
        "soft and hard core limits"
    );
    let status: BTreeMap<&str, &str> = out
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim()))
        .collect();
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(status["SigBlk"], "0000000000000000");
}

/// The signal bits of `/proc/<child>/status` for `line` ("SigIgn", "SigCgt").
fn signal_bits(status: &str, line: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(':'))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[tokio::test]
async fn the_child_gets_default_handlers_and_sigpipe_but_keeps_ignored_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    extern "C" fn handler(_: libc::c_int) {}
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    let handle = SigAction::new(
        SigHandler::Handler(handler),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: this test's own process (nextest runs one per test); the handler does nothing.
    unsafe {
        sigaction(Signal::SIGHUP, &ignore).unwrap();
        sigaction(Signal::SIGPIPE, &ignore).unwrap();
        sigaction(Signal::SIGUSR1, &handle).unwrap();
    }
    let cmd = argv(&["/bin/cat", "/proc/self/status"]);
    let out = stdout_of(&spec(&cmd, &[])).await;
    let bit = |sig: Signal| 1u64 << (sig as i32 - 1);
    let ignored = signal_bits(&out, "SigIgn");
    // As `nohup` leaves it: an ignored signal stays ignored through exec.
    assert_ne!(ignored & bit(Signal::SIGHUP), 0, "{out}");
    // The supervisor's own SIGPIPE setting is not the agent's.
    assert_eq!(ignored & bit(Signal::SIGPIPE), 0, "{out}");
    assert_eq!(signal_bits(&out, "SigCgt"), 0, "{out}");
}

#[tokio::test]
async fn without_pidfds_a_thread_waits_for_the_child() {
    super::process::tests::NO_PIDFD.set(true);
    let cmd = argv(&["/bin/sh", "-c", "read line; exit 7"]);
    let mut child = spawn(&spec(&cmd, &[])).unwrap();
    assert!(child.id().is_some());
    // It waits for its input: still running.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(child.try_wait().unwrap().is_none());
    drop(child.stdin.take());
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(7));
    assert_eq!(child.try_wait().unwrap().map(|s| s.code()), Some(Some(7)));
    assert_eq!(child.id(), None, "waited for");
}

/// capset(2)'s header and one of its two data words (version 3).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_CHOWN: u32 = 0;

fn clear_ambient() -> libc::c_int {
    // SAFETY: prctl(2) with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    }
}

/// A supervisor given a capability (as systemd's AmbientCapabilities= does, to
/// switch users) must not hand it to its agents.
#[tokio::test(flavor = "current_thread")]
async fn ambient_capabilities_do_not_reach_the_child() {
    if !is_root() {
        eprintln!("skipped: raising an ambient capability needs root");
        return;
    }
    // Capabilities belong to threads: this one, which also spawns the child.
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) reads the live header and fills the two live data words
    // that version 3 uses.
    let got = unsafe { libc::syscall(libc::SYS_capget, &raw const header, data.as_mut_ptr()) };
    assert_eq!(got, 0);
    data[0].inheritable |= 1 << CAP_CHOWN;
    // SAFETY: capset(2) only reads the live header and data.
    let set = unsafe { libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) };
    // SAFETY: prctl(2) with integer arguments only.
    let raised = set == 0
        && unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                CAP_CHOWN as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        } == 0;
    if !raised {
        eprintln!("skipped: this system does not let root raise CAP_CHOWN");
        return;
    }
    let own = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    assert!(own.contains("CapAmb:\t0000000000000001"), "{own}");

    let cmd = argv(&["/bin/cat", "/proc/self/status"]);
    let out = stdout_of(&spec(&cmd, &[])).await;
    assert_eq!(clear_ambient(), 0);
    let ambient = out.lines().find_map(|l| l.strip_prefix("CapAmb:"));
    assert_eq!(ambient.map(str::trim), Some("0000000000000000"));
}

/// Spawns `sleep` from a thread of its own, lets that thread end, returns the pid.
fn sleep_from_short_lived_thread(run_as: Option<RunAs>) -> i32 {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let cmd = argv(&["/bin/sleep", "100"]);
            let child = spawn(&ChildSpec {
                run_as: run_as.as_ref(),
                ..spec(&cmd, &[])
            })
            .unwrap();
            child.id().unwrap() as i32
        })
    })
    .join()
    .unwrap()
}

#[tokio::test]
async fn child_dies_with_the_thread_that_spawned_it() {
    let pid = sleep_from_short_lived_thread(None);
    assert!(
        eventually(|| !alive(pid)).await,
        "{pid} outlived its spawner"
    );
    if is_root() {
        // The uid change clears the death signal; it must be set after it.
        let nobody = RunAs::lookup("nobody", None).unwrap();
        let pid = sleep_from_short_lived_thread(Some(nobody));
        assert!(
            eventually(|| !alive(pid)).await,
            "{pid} outlived its spawner"
        );
    }
}

#[tokio::test]
async fn terminate_stops_the_leader_and_its_children() {
    let cmd = argv(&["/bin/sh", "-c", "sleep 100 & sleep 100; wait"]);
    let env = path_env();
    let mut child = spawn(&spec(&cmd, &env)).unwrap();
    let pgid = child.id().unwrap() as i32;
    assert!(eventually(|| group_members(pgid).len() == 3).await);

    let status = terminate(&mut child, &group_only(pgid), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(
        eventually(|| group_members(pgid).is_empty()).await,
        "left: {:?}",
        group_members(pgid)
    );
}

#[tokio::test]
async fn terminate_kills_what_ignores_sigterm_after_the_grace() {
    let cmd = argv(&["/bin/sh", "-c", "trap '' TERM; sleep 100 & wait"]);
    let env = path_env();
    let mut child = spawn(&spec(&cmd, &env)).unwrap();
    let pgid = child.id().unwrap() as i32;
    // Once the sleep exists, the trap is in place.
    assert!(eventually(|| group_members(pgid).len() == 2).await);

    let grace = Duration::from_millis(300);
    let started = Instant::now();
    let status = terminate(&mut child, &group_only(pgid), grace)
        .await
        .unwrap();
    assert!(started.elapsed() >= grace);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(eventually(|| group_members(pgid).is_empty()).await);
}

#[tokio::test]
async fn terminate_after_the_leader_exited_still_clears_the_group() {
    let cmd = argv(&["/bin/sh", "-c", "sleep 100 & exit 3"]);
    let env = path_env();
    let mut child = spawn(&spec(&cmd, &env)).unwrap();
    let pgid = child.id().unwrap() as i32;
    assert!(eventually(|| child.try_wait().unwrap().is_some()).await);
    assert_eq!(group_members(pgid).len(), 1, "the orphaned sleep");

    let status = terminate(&mut child, &group_only(pgid), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(eventually(|| group_members(pgid).is_empty()).await);
}

#[tokio::test]
async fn kill_group_remains_kills_what_the_leader_left_behind() {
    let cmd = argv(&["/bin/sh", "-c", "sleep 100 &"]);
    let env = path_env();
    let mut child = spawn(&spec(&cmd, &env)).unwrap();
    let pgid = child.id().unwrap() as i32;
    assert!(child.wait().await.unwrap().success());
    assert_eq!(group_members(pgid).len(), 1, "the orphaned sleep");

    kill_group_remains(pgid);
    assert!(eventually(|| group_members(pgid).is_empty()).await);
    // The group is gone now: signalling it again is not an error.
    signal_group(pgid, Signal::SIGKILL).unwrap();
}

#[test]
fn signal_group_refuses_groups_beyond_one_child() {
    let own = getpgrp().as_raw();
    for pgid in [0, 1, -1, -own, own] {
        let err = signal_group(pgid, Signal::SIGTERM).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{pgid}");
    }
}

#[tokio::test]
async fn missing_programs_are_not_found() {
    let env = path_env();
    for program in ["no-such-program-7d1b", "/nonexistent-dir/program"] {
        let cmd = argv(&[program]);
        let err = spawn(&spec(&cmd, &env)).unwrap_err();
        assert!(matches!(err, SpawnError::NotFound { .. }), "{err:?}");
        assert!(err.program_unavailable());
        assert_eq!(err.to_string(), format!("{program}: command not found"));
    }
    // No PATH in the child's environment means no search at all, even for `sh`.
    let cmd = argv(&["sh", "-c", "true"]);
    let err = spawn(&spec(&cmd, &[])).unwrap_err();
    assert!(matches!(err, SpawnError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn non_executable_programs_are_denied() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-executable");
    std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
    let env = vec![("PATH".to_owned(), dir.path().display().to_string())];
    let by_path = file.display().to_string();
    for program in ["not-executable", by_path.as_str()] {
        let cmd = argv(&[program]);
        let err = spawn(&spec(&cmd, &env)).unwrap_err();
        assert!(
            matches!(err, SpawnError::PermissionDenied { .. }),
            "{err:?}"
        );
        assert!(err.program_unavailable());
    }
}

#[tokio::test]
async fn program_is_found_in_the_childs_path_and_keeps_its_argv0() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("probe-7d1b");
    std::fs::write(&script, "#!/bin/sh\necho found in the PATH of the child\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = vec![(
        "PATH".to_owned(),
        format!("relative/dir::{}", dir.path().display()),
    )];
    let cmd = argv(&["probe-7d1b"]);
    let out = stdout_of(&spec(&cmd, &env)).await;
    assert_eq!(out, "found in the PATH of the child\n");

    let cmd = argv(&["cat", "/proc/self/cmdline"]);
    let env = path_env();
    assert_eq!(
        stdout_of(&spec(&cmd, &env)).await,
        "cat\0/proc/self/cmdline\0"
    );
}

#[tokio::test]
async fn working_dir_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = argv(&["/bin/sh", "-c", "pwd -P"]);
    let out = stdout_of(&ChildSpec {
        working_dir: Some(dir.path()),
        ..spec(&cmd, &[])
    })
    .await;
    let expected = dir.path().canonicalize().unwrap();
    assert_eq!(out.trim_end(), expected.to_str().unwrap());
}

#[tokio::test]
async fn unusable_working_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let cmd = argv(&["/bin/true"]);
    for (path, cause) in [
        (&missing, io::ErrorKind::NotFound),
        (&file, io::ErrorKind::NotADirectory),
    ] {
        let err = spawn(&ChildSpec {
            working_dir: Some(path),
            ..spec(&cmd, &[])
        })
        .unwrap_err();
        let SpawnError::WorkingDir { source, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(source.kind(), cause);
        assert!(!err.program_unavailable());
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    }
}

#[tokio::test]
async fn invalid_variables_are_refused_without_echoing_values() {
    let cmd = argv(&["/bin/true"]);
    let pasted = vec![("API_TOKEN=sentinel-pasted-5e0c".to_owned(), "x".to_owned())];
    let err = spawn(&spec(&cmd, &pasted)).unwrap_err();
    assert!(matches!(err, SpawnError::InvalidEnv { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "environment variable API_TOKEN: name contains '='"
    );

    let nul = SecretString::from("sentinel-nul-5e0c\0tail");
    let secrets = vec![("API_TOKEN".to_owned(), &nul)];
    let err = spawn(&ChildSpec {
        secrets: &secrets,
        ..spec(&cmd, &[])
    })
    .unwrap_err();
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("sentinel"), "{shown}");
    }
    assert!(matches!(spawn(&spec(&[], &[])), Err(SpawnError::EmptyArgv)));
}

#[test]
fn child_spec_debug_shows_names_only() {
    let cmd = argv(&["/bin/true"]);
    let env = vec![("BASE".to_owned(), "sentinel-plain-61aa".to_owned())];
    let token = SecretString::from("sentinel-secret-61aa");
    let secrets = vec![("API_TOKEN".to_owned(), &token)];
    let shown = format!(
        "{:?}",
        ChildSpec {
            secrets: &secrets,
            ..spec(&cmd, &env)
        }
    );
    assert!(
        shown.contains("BASE") && shown.contains("API_TOKEN"),
        "{shown}"
    );
    assert!(!shown.contains("sentinel"), "{shown}");
}

/// Run by `harden_self_in_a_fresh_process` in a process of its own; ignored otherwise.
#[test]
#[ignore = "changes the test process; run through harden_self_in_a_fresh_process"]
fn harden_self_probe() {
    harden_self().unwrap();
    assert!(!nix::sys::prctl::get_dumpable().unwrap());
    let limits = nix::sys::resource::getrlimit(Resource::RLIMIT_CORE).unwrap();
    assert_eq!(limits, (0, 0));
}

#[tokio::test]
async fn harden_self_in_a_fresh_process() {
    let exe = std::env::current_exe().unwrap();
    let cmd = argv(&[
        exe.to_str().unwrap(),
        "--exact",
        "spawn::tests::harden_self_probe",
        "--ignored",
        "--test-threads=1",
    ]);
    let out = stdout_of(&spec(&cmd, &[])).await;
    assert!(out.contains("1 passed"), "{out}");
}

#[tokio::test]
async fn run_as_switches_user_and_groups() {
    if !is_root() {
        eprintln!("note: not root, so the user switch is not tested here");
        let someone_else = RunAs {
            uid: 0,
            gid: 0,
            groups: vec![0],
        };
        let cmd = argv(&["/bin/true"]);
        let err = spawn(&ChildSpec {
            run_as: Some(&someone_else),
            ..spec(&cmd, &[])
        })
        .unwrap_err();
        assert!(matches!(err, SpawnError::Setup { .. }), "{err:?}");
        return;
    }
    let nobody = RunAs::lookup("nobody", None).unwrap();
    let cmd = argv(&[
        "/bin/sh",
        "-c",
        "id -u; id -g; id -G; grep NoNewPrivs /proc/$$/status",
    ]);
    let env = path_env();
    let out = stdout_of(&ChildSpec {
        run_as: Some(&nobody),
        ..spec(&cmd, &env)
    })
    .await;
    let groups: Vec<String> = nobody.groups.iter().map(u32::to_string).collect();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], nobody.uid.to_string());
    assert_eq!(lines[1], nobody.gid.to_string());
    assert_eq!(lines[2], groups.join(" "));
    assert!(lines[3].ends_with('1'), "{}", lines[3]);

    // A directory only root may enter fails in the child, after the switch,
    // and is reported as a working-directory error.
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let cmd = argv(&["/bin/true"]);
    let err = spawn(&ChildSpec {
        working_dir: Some(private.path()),
        run_as: Some(&nobody),
        ..spec(&cmd, &[])
    })
    .unwrap_err();
    let SpawnError::WorkingDir { source, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(source.raw_os_error(), Some(libc::EACCES));
}

#[test]
fn unknown_users_and_groups_are_named() {
    let err = RunAs::lookup("no-such-user-7d1b", None).unwrap_err();
    assert_eq!(err.to_string(), "no such user: no-such-user-7d1b");
    let err = RunAs::lookup("root", Some("no-such-group-7d1b")).unwrap_err();
    assert_eq!(err.to_string(), "no such group: no-such-group-7d1b");
    let root = RunAs::lookup("root", None).unwrap();
    assert_eq!((root.uid, root.gid), (0, 0));
    assert!(root.groups.contains(&0));
}

mod confine;
