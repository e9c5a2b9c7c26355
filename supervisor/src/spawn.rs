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
/// `RLIMIT_CORE` 0; `no_new_privs`; an empty signal mask; every descriptor above 2
/// closed on exec; `setgroups`/`setgid`/`setuid` when `run_as` is set.
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
}

impl Step {
    const ALL: [Step; 9] = [
        Step::Session,
        Step::Groups,
        Step::Gid,
        Step::Uid,
        Step::DeathSignal,
        Step::CoreLimit,
        Step::WorkingDir,
        Step::NoNewPrivs,
        Step::SignalMask,
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

