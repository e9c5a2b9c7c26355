//! Starts agent processes in isolation and stops them as a whole process group.
//!
//! Invariants: the child's environment is built from nothing (cleared, then the
//! caller's plain variables, then secrets); it runs in its own session with no
//! inherited descriptors beyond 0, 1 and 2, no core dumps, `no_new_privs` and a
//! parent-death signal. This is the only module of the crate with `unsafe`, and
//! the only place where a secret value is exposed: to the child's environment.
//! Errors name programs, paths and variable names, never a variable's value.

use std::ffi::CString;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Gid, Group, Pid, User, getgrouplist, getpgrp, pipe2};
use secrecy::{ExposeSecret, SecretString};
use tokio::process::{Child, Command};

/// Who the child runs as, when the supervisor runs as root and the agent sets `user`/`group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user id the child gets (real, effective and saved).
    pub uid: u32,
    /// The primary group id the child gets.
    pub gid: u32,
    /// The complete list of supplementary groups; it replaces the supervisor's.
    pub groups: Vec<u32>,
}

impl RunAs {
    /// Looks up `user` in the system's user database. The primary group is `group` when
    /// given, else the user's own; the supplementary groups are the user's memberships
    /// plus that primary group, as a login would set them.
    pub fn lookup(user: &str, group: Option<&str>) -> Result<RunAs, SpawnError> {
        let lookup_err = |name: &str, e: Errno| SpawnError::Lookup {
            name: name.to_owned(),
            source: e.into(),
        };
        let found = User::from_name(user)
            .map_err(|e| lookup_err(user, e))?
            .ok_or_else(|| SpawnError::UnknownUser {
                name: user.to_owned(),
            })?;
        let gid = match group {
            None => found.gid,
            Some(name) => {
                Group::from_name(name)
                    .map_err(|e| lookup_err(name, e))?
                    .ok_or_else(|| SpawnError::UnknownGroup {
                        name: name.to_owned(),
                    })?
                    .gid
            }
        };
        let c_user = CString::new(user).map_err(|_| SpawnError::UnknownUser {
            name: user.to_owned(),
        })?;
        let groups = getgrouplist(&c_user, gid).map_err(|e| lookup_err(user, e))?;
        Ok(RunAs {
            uid: found.uid.as_raw(),
            gid: gid.as_raw(),
            groups: groups.into_iter().map(Gid::as_raw).collect(),
        })
    }
}

/// Everything needed to start one child. Its `Debug` shows variable names only.
pub struct ChildSpec<'a> {
    /// The command line; `argv[0]` is the program. With a `/` it is used as given
    /// (a relative one from the working directory). Without, it is looked up in the
    /// `PATH` given in `env` (the child's, never the supervisor's); only absolute
    /// entries of that `PATH` are searched, and without one nothing is found.
    pub argv: &'a [String],
    /// Plain variables: the agent's base environment and the run's `SUPERVISOR_*`.
    pub env: &'a [(String, String)],
    /// Secret variables, set after `env`, so a secret wins over a plain variable of
    /// the same name. Callers refuse names such as `PATH` before they get here.
    pub secrets: &'a [(String, &'a SecretString)],
    /// The child's working directory, entered after switching user; `None` keeps ours.
    pub working_dir: Option<&'a Path>,
    /// Another user to run as; needs the supervisor to run as root.
    pub run_as: Option<&'a RunAs>,
}

impl fmt::Debug for ChildSpec<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        let secret_names: Vec<&str> = self.secrets.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ChildSpec")
            .field("argv", &self.argv)
            .field("env", &env_names)
            .field("secrets", &secret_names)
            .field("working_dir", &self.working_dir)
            .field("run_as", &self.run_as)
            .finish()
    }
}

/// Why a child could not be started. No variant carries a variable's value.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program does not exist (or its `#!` interpreter does not).
    #[error("{program}: command not found")]
    NotFound { program: String },
    /// The program exists but may not be executed.
    #[error("{program}: permission denied")]
    PermissionDenied { program: String },
    /// The kernel does not recognise the program's format.
    #[error("{program}: cannot execute: exec format error")]
    NotExecutable { program: String },
    /// The command line is empty.
    #[error("empty command line: nothing to start")]
    EmptyArgv,
    /// An argument contains a NUL byte, which no command line can carry.
    #[error("{program}: argument {index} contains a NUL byte")]
    InvalidArg { program: String, index: usize },
    /// A variable cannot be put in an environment. `name` is cut at the first `=`
    /// or NUL so that a value pasted into a name is not echoed.
    #[error("environment variable {name}: {problem}")]
    InvalidEnv { name: String, problem: &'static str },
    /// The working directory is missing, not a directory, or not accessible.
    #[error("working directory {}: {source}", path.display())]
    WorkingDir { path: PathBuf, source: io::Error },
    /// `RunAs::lookup` found no such user.
    #[error("no such user: {name}")]
    UnknownUser { name: String },
    /// `RunAs::lookup` found no such group.
    #[error("no such group: {name}")]
    UnknownGroup { name: String },
    /// The user or group database could not be read.
    #[error("looking up {name}: {source}")]
    Lookup { name: String, source: io::Error },
    /// A step of the child's isolation failed between fork and exec.
    #[error("{program}: {step} failed before exec: {source}")]
    Setup {
        program: String,
        step: &'static str,
        source: io::Error,
    },
    /// Any other failure to start the child.
    #[error("cannot start {program}: {source}")]
    Io { program: String, source: io::Error },
}

impl SpawnError {
    /// True when the program itself could not be found or executed (a shell's 127 or
    /// 126), as opposed to a failure of the supervisor or of the child's setup.
    pub fn program_unavailable(&self) -> bool {
        matches!(
            self,
            SpawnError::NotFound { .. }
                | SpawnError::PermissionDenied { .. }
                | SpawnError::NotExecutable { .. }
        )
    }
}

/// Starts the child: cleared environment, then `spec.env`, then `spec.secrets`;
/// stdin, stdout and stderr piped; a new session (so its pid is also its process
/// group id, the `pgid` the other functions take); `PR_SET_PDEATHSIG(SIGKILL)`;
/// `RLIMIT_CORE` 0; `no_new_privs`; an empty signal mask; no ambient capabilities;
/// every descriptor above 2 closed on exec; `setgroups`/`setgid`/`setuid` when
/// `run_as` is set.
///
/// Must be called inside a Tokio runtime, from a long-lived thread (a runtime worker
/// or the main thread, never `spawn_blocking`): the kernel sends the parent-death
/// signal when the *thread* that forked exits, not when the process does.
///
/// The returned `Child` is not killed on drop; stop it with [`terminate`].
pub fn spawn(spec: &ChildSpec<'_>) -> Result<Child, SpawnError> {
    let argv0 = spec.argv.first().ok_or(SpawnError::EmptyArgv)?;
    if let Some(index) = spec.argv.iter().position(|a| a.contains('\0')) {
        return Err(SpawnError::InvalidArg {
            program: argv0.clone(),
            index,
        });
    }
    for (name, value) in spec.env {
        check_env(name, value.as_bytes())?;
    }
    for (name, value) in spec.secrets {
        check_env(name, value.expose_secret().as_bytes())?;
    }
    let program = resolve_program(argv0, spec.env)?;
    let cwd = match spec.working_dir {
        Some(dir) => Some(check_working_dir(dir)?),
        None => None,
    };

    let (report_read, report_write) =
        pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|e| SpawnError::Io {
            program: argv0.clone(),
            source: e.into(),
        })?;
    let setup = ChildSetup {
        parent: std::process::id() as libc::pid_t,
        ids: spec.run_as.map(|r| (r.uid, r.gid)),
        groups: spec.run_as.map(|r| r.groups.clone()).unwrap_or_default(),
        cwd,
        report: report_write,
    };

    let mut cmd = Command::new(&program);
    cmd.arg0(argv0)
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    for (name, value) in spec.secrets {
        cmd.env(name, value.expose_secret());
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    // SAFETY: the closure runs in the forked child before exec and only calls
    // `child_setup`, which makes async-signal-safe system calls on data prepared
    // above: no allocation, no lock, no logging.
    unsafe {
        cmd.pre_exec(move || child_setup(&setup));
    }
    let result = cmd.spawn();
    // The command holds copies of the secret values; let them go at once.
    drop(cmd);
    result.map_err(|source| spawn_error(argv0, spec.working_dir, report_read, source))
}

/// The supervisor's own hardening, called once at start: not dumpable (so a process
/// of the same uid can neither ptrace it nor read its memory through /proc) and no
/// core files, soft or hard. Exec makes a process dumpable again, so this protects
/// the supervisor only; children get their core limit from [`spawn`].
pub fn harden_self() -> io::Result<()> {
    nix::sys::prctl::set_dumpable(false)?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
    Ok(())
}

/// Lets a write to a closed standard output end this process quietly, as it
/// ends `cat` or `ls` (a shell shows status 141, 128 + SIGPIPE), instead of
/// a panic in `println!` (Rust ignores SIGPIPE by default). For the commands
/// that only print; the daemon and `run`, which must outlive a closed
/// terminal or socket, keep ignoring it.
pub fn end_on_closed_stdout() -> io::Result<()> {
    use nix::sys::signal::{SigHandler, signal};
    // SAFETY: SIG_DFL installs no handler, so none of our code ever runs in
    // a signal context; it is called once at start, before other threads.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }?;
    Ok(())
}

/// Sends `sig` to every process of the group `pgid`. A group that no longer exists
/// is not an error. Refuses `pgid` values that would reach beyond one child's group:
/// 0 and 1, negative ones, and the supervisor's own group.
pub fn signal_group(pgid: i32, sig: Signal) -> io::Result<()> {
    if pgid <= 1 || pgid == getpgrp().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process group {pgid}"),
        ));
    }
    match killpg(Pid::from_raw(pgid), sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Stops a child and everything it started: SIGTERM to its group, up to `grace` for
/// the leader to exit, then SIGKILL to the group. Once the leader is reaped the group
/// gets a final SIGKILL, so no grandchild outlives the run. Returns the leader's status.
///
/// `pgid` is the child's pid as [`spawn`] returned it; keep it, since `Child::id`
/// forgets the pid once the child is reaped.
///
/// Processes that moved to a session or group of their own escape; that takes a cgroup.
pub async fn terminate(child: &mut Child, pgid: i32, grace: Duration) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        reap_group(pgid);
        return Ok(status);
    }
    signal_group(pgid, Signal::SIGTERM)?;
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status?,
        Err(_elapsed) => {
            signal_group(pgid, Signal::SIGKILL)?;
            child.wait().await?
        }
    };
    reap_group(pgid);
    Ok(status)
}

/// After a leader exited on its own: kills whatever is left in its group.
///
/// Call it right after reaping the leader. While any member is alive the kernel does
/// not reuse the group's id; once the group is empty the id could in principle go to
/// a new group leader, so a late call might hit an unrelated group.
pub fn reap_group(pgid: i32) {
    if let Err(e) = signal_group(pgid, Signal::SIGKILL) {
        tracing::warn!(pgid, error = %e, "could not kill what remains of a process group");
    }
}

/// Rejects variables that an environment cannot carry. Only the name is reported, and
/// only up to the first `=` or NUL.
fn check_env(name: &str, value: &[u8]) -> Result<(), SpawnError> {
    let problem = if name.is_empty() {
        "empty name"
    } else if name.contains('=') {
        "name contains '='"
    } else if name.contains('\0') {
        "name contains a NUL byte"
    } else if value.contains(&0) {
        "value contains a NUL byte"
    } else {
        return Ok(());
    };
    let shown = name.split(['=', '\0']).next().unwrap_or_default();
    Err(SpawnError::InvalidEnv {
        name: shown.to_owned(),
        problem,
    })
}

/// Finds the program to execute. With a `/` in `argv0` the kernel resolves it (relative
/// to the working directory); otherwise the child's `PATH` is searched here, so that
/// the supervisor's own `PATH` can never decide what runs.
fn resolve_program(argv0: &str, env: &[(String, String)]) -> Result<PathBuf, SpawnError> {
    if argv0.contains('/') {
        return Ok(PathBuf::from(argv0));
    }
    let not_found = || SpawnError::NotFound {
        program: argv0.to_owned(),
    };
    if argv0.is_empty() {
        return Err(not_found());
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .ok_or_else(not_found)?;
    let mut denied = false;
    for dir in path.split(':').map(Path::new).filter(|d| d.is_absolute()) {
        let candidate = dir.join(argv0);
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
                return Ok(candidate);
            }
            Ok(meta) if meta.is_file() => denied = true,
            _ => {}
        }
    }
    if denied {
        Err(SpawnError::PermissionDenied {
            program: argv0.to_owned(),
        })
    } else {
        Err(not_found())
    }
}

/// Checks the working directory before forking, for a clear error in the common case.
/// The child enters it after switching user, so access is checked again there.
fn check_working_dir(dir: &Path) -> Result<CString, SpawnError> {
    let fail = |source| SpawnError::WorkingDir {
        path: dir.to_owned(),
        source,
    };
    let meta = std::fs::metadata(dir).map_err(fail)?;
    if !meta.is_dir() {
        return Err(fail(io::ErrorKind::NotADirectory.into()));
    }
    CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| fail(io::Error::from(io::ErrorKind::InvalidInput)))
}

/// Maps a failed `Command::spawn` to a `SpawnError`. The child writes the step that
/// failed to the report pipe before returning its error; no byte means the error came
/// from exec itself (or from the standard library's own steps).
fn spawn_error(
    program: &str,
    working_dir: Option<&Path>,
    report: OwnedFd,
    source: io::Error,
) -> SpawnError {
    let mut byte = [0u8; 1];
    let step = match std::fs::File::from(report).read(&mut byte) {
        Ok(1) => Step::from_byte(byte[0]),
        _ => None,
    };
    let program = program.to_owned();
    match step {
        Some(Step::WorkingDir) => SpawnError::WorkingDir {
            path: working_dir.map(Path::to_owned).unwrap_or_default(),
            source,
        },
        Some(step) => SpawnError::Setup {
            program,
            step: step.name(),
            source,
        },
        None => match source.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => SpawnError::NotFound { program },
            Some(libc::EACCES) => SpawnError::PermissionDenied { program },
            Some(libc::ENOEXEC) => SpawnError::NotExecutable { program },
            _ => SpawnError::Io { program, source },
        },
    }
}

/// The child's isolation steps, in order; the byte reported when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Step {
    Session = 1,
    Groups,
    Gid,
    Uid,
    DeathSignal,
    CoreLimit,
    WorkingDir,
    NoNewPrivs,
    SignalMask,
    AmbientCaps,
}

impl Step {
    const ALL: [Step; 10] = [
        Step::Session,
        Step::Groups,
        Step::Gid,
        Step::Uid,
        Step::DeathSignal,
        Step::CoreLimit,
        Step::WorkingDir,
        Step::NoNewPrivs,
        Step::SignalMask,
        Step::AmbientCaps,
    ];

    fn from_byte(byte: u8) -> Option<Step> {
        Step::ALL.into_iter().find(|s| *s as u8 == byte)
    }

    fn name(self) -> &'static str {
        match self {
            Step::Session => "setsid",
            Step::Groups => "setgroups",
            Step::Gid => "setgid",
            Step::Uid => "setuid",
            Step::DeathSignal => "PR_SET_PDEATHSIG",
            Step::CoreLimit => "RLIMIT_CORE",
            Step::WorkingDir => "chdir",
            Step::NoNewPrivs => "PR_SET_NO_NEW_PRIVS",
            Step::SignalMask => "sigprocmask",
            Step::AmbientCaps => "PR_CAP_AMBIENT_CLEAR_ALL",
        }
    }
}

/// What the child needs between fork and exec, prepared by the parent so that the
/// child never allocates.
struct ChildSetup {
    parent: libc::pid_t,
    ids: Option<(libc::uid_t, libc::gid_t)>,
    groups: Vec<libc::gid_t>,
    cwd: Option<CString>,
    report: OwnedFd,
}

/// Upper bound of the descriptor loop used when `close_range` is unavailable (Linux
/// before 5.11), whatever the descriptor limit says.
const FALLBACK_MAX_FD: libc::c_int = 1 << 20;

/// Runs in the forked child, before exec. Only async-signal-safe system calls: no
/// allocation, no locks, no logging. Each failure reports its step, then returns the
/// error, which the standard library hands to the parent as the spawn error.
fn child_setup(s: &ChildSetup) -> io::Result<()> {
    let report = s.report.as_raw_fd();
    // SAFETY: setsid(2) is async-signal-safe and has no memory effects.
    check(report, Step::Session, unsafe { libc::setsid() })?;
    // Capabilities given to the supervisor (systemd's AmbientCapabilities=, so
    // that it may switch users) would pass through exec to the agent, which
    // could then make itself root. Kernels before 4.3 have no ambient set.
    // SAFETY: prctl(2) with integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if ret == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        check(report, Step::AmbientCaps, ret)?;
    }
    if let Some((uid, gid)) = s.ids {
        // SAFETY: setgroups(2) reads `groups.len()` ids from a live slice.
        let ret = unsafe { libc::setgroups(s.groups.len(), s.groups.as_ptr()) };
        check(report, Step::Groups, ret)?;
        // SAFETY: setgid(2) and setuid(2) are async-signal-safe, no memory effects.
        check(report, Step::Gid, unsafe { libc::setgid(gid) })?;
        // SAFETY: as above.
        check(report, Step::Uid, unsafe { libc::setuid(uid) })?;
    }
    // After the uid change, which clears the parent-death signal.
    // SAFETY: prctl(2) with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    check(report, Step::DeathSignal, ret)?;
    // SAFETY: getppid(2) cannot fail and has no memory effects.
    if unsafe { libc::getppid() } != s.parent {
        // The parent died before the death signal was armed: nobody will stop us.
        // SAFETY: _exit(2) ends the child without running any of the parent's handlers.
        unsafe { libc::_exit(1) };
    }
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit(2) reads the live local `no_core`.
    check(report, Step::CoreLimit, unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core)
    })?;
    if let Some(cwd) = &s.cwd {
        // SAFETY: chdir(2) reads a NUL-terminated string owned by `s`.
        check(report, Step::WorkingDir, unsafe {
            libc::chdir(cwd.as_ptr())
        })?;
    }
    // SAFETY: prctl(2) with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) };
    check(report, Step::NoNewPrivs, ret)?;
    // The spawning thread may block signals; the agent must still receive SIGTERM.
    // SAFETY: an all-zero sigset_t is a valid value to hand to sigemptyset(3).
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigemptyset(3) and sigprocmask(2) are async-signal-safe and only touch
    // the live local `empty`.
    let ret = unsafe {
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut())
    };
    check(report, Step::SignalMask, ret)?;
    // Close-on-exec rather than close: the standard library reports exec failure to
    // the parent through a descriptor of its own that must stay open until exec.
    cloexec_from_3();
    Ok(())
}

/// Marks every descriptor from 3 up close-on-exec, without allocating.
fn cloexec_from_3() {
    // SAFETY: close_range(2) with integer arguments; it only changes descriptor flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == 0 {
        return;
    }
    // ENOSYS before Linux 5.9, EINVAL for the flag before 5.11: walk the table.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes into the live local `limit`.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        libc::c_int::try_from(limit.rlim_cur).unwrap_or(FALLBACK_MAX_FD)
    } else {
        FALLBACK_MAX_FD
    };
    for fd in 3..max.clamp(1024, FALLBACK_MAX_FD) {
        // SAFETY: fcntl(2) on a number that may not be open fails with EBADF and
        // otherwise only changes that descriptor's flags.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// In the child: turns a system call's return value into a result; on failure writes
/// `step` to the report pipe first.
fn check<T: PartialEq + From<i8>>(report: RawFd, step: Step, ret: T) -> io::Result<()> {
    if ret != T::from(-1) {
        return Ok(());
    }
    // Read errno before write(2) can change it; an OS error does not allocate.
    let err = io::Error::last_os_error();
    let byte = step as u8;
    // SAFETY: write(2) is async-signal-safe and reads one byte of the live local
    // `byte`. The pipe is empty and non-blocking; a failed write loses only the detail.
    unsafe { libc::write(report, (&raw const byte).cast(), 1) };
    Err(err)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::process::ExitStatusExt;
    use std::time::Instant;

    use nix::fcntl::{FcntlArg, FdFlag, fcntl};

    use super::*;

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
        let got: BTreeMap<&str, &str> =
            entries.iter().map(|e| e.split_once('=').unwrap()).collect();
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

        let status = terminate(&mut child, pgid, Duration::from_secs(10))
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
        let status = terminate(&mut child, pgid, grace).await.unwrap();
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

        let status = terminate(&mut child, pgid, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(status.code(), Some(3));
        assert!(eventually(|| group_members(pgid).is_empty()).await);
    }

    #[tokio::test]
    async fn reap_group_kills_what_the_leader_left_behind() {
        let cmd = argv(&["/bin/sh", "-c", "sleep 100 &"]);
        let env = path_env();
        let mut child = spawn(&spec(&cmd, &env)).unwrap();
        let pgid = child.id().unwrap() as i32;
        assert!(child.wait().await.unwrap().success());
        assert_eq!(group_members(pgid).len(), 1, "the orphaned sleep");

        reap_group(pgid);
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
}
