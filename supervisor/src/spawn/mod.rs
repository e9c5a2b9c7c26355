//! Starts agent processes in isolation and stops them as a whole.
//!
//! Invariants: the child's environment is built from nothing (cleared, then the
//! caller's plain variables, then secrets); it runs in its own session with no
//! inherited descriptors beyond 0, 1 and 2, no core dumps, `no_new_privs` and a
//! parent-death signal, and, as the caller prepared it ([`Confinement`]), in its
//! run's cgroup, its own namespaces and a Landlock domain. This is the only
//! module of the crate with `unsafe`, and the only place where a secret value is
//! exposed: to the child's environment. Errors name programs, paths and
//! variable names, never a variable's value.
//!
//! One file per concern: [`process`] (the parent's side, and its handle on
//! the child), [`child`] (between clone and exec), [`cgroup`], [`landlock`],
//! [`namespace`], [`terminate`].

pub mod cgroup;
mod child;
pub mod landlock;
pub mod namespace;
mod process;
mod terminate;

pub use process::Child;
pub use terminate::{Tracked, adopt_orphans, kill_group_remains, signal_group, terminate};

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Group, User, getgrouplist, pipe2};
use secrecy::{ExposeSecret, SecretString};

use child::{ChildSetup, Step};
use namespace::NamespacePlan;
use process::{Exec, StartError};

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
    /// Cgroup, namespaces, Landlock, capabilities: what the caller prepared.
    pub confine: Option<&'a Confinement>,
}

/// What the parent prepared to contain one child, applied between clone and exec.
/// Descriptors stay owned by the caller (or by this value) until the spawn returns.
#[derive(Default)]
pub struct Confinement {
    /// `cgroup.procs` of the run's cgroup, open for writing ([`cgroup::RunCgroup`]).
    pub cgroup_procs: Option<RawFd>,
    /// Mount (and network) namespace with the supervisor's files covered.
    pub namespace: Option<NamespacePlan>,
    /// A Landlock ruleset ([`landlock::ruleset`]).
    pub landlock: Option<OwnedFd>,
    /// Empty every capability set and the bounding set (an agent left as root).
    pub drop_caps: bool,
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
            .field("confined", &self.confine.is_some())
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
    /// A step of the child's isolation failed between clone and exec.
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
/// `RLIMIT_CORE` 0; `no_new_privs`; an empty signal mask and every handler at its
/// default (SIGPIPE's too); no ambient capabilities; every descriptor above 2 closed
/// on exec; `setgroups`/`setresgid`/`setresuid` when `run_as` is set.
///
/// Must be called inside a Tokio runtime, from a long-lived thread (a runtime worker
/// or the main thread, never `spawn_blocking`): the kernel sends the parent-death
/// signal when the *thread* that made the child exits, not when the process does.
///
/// The returned `Child` is not killed on drop; stop it with [`terminate`] or
/// [`Tracked::finish`].
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
    let confine = spec.confine;
    let namespace = confine.and_then(|c| c.namespace.clone());
    let cwd = match spec.working_dir {
        Some(dir) => Some(check_working_dir(dir)?),
        // Under covering mounts, the directory we are in is entered again by its
        // path: the old handle would still show what the mounts cover.
        None if namespace.is_some() => {
            let here = std::env::current_dir().map_err(|source| SpawnError::Io {
                program: argv0.clone(),
                source,
            })?;
            Some(check_working_dir(&here)?)
        }
        None => None,
    };

    let io_error = |source: io::Error| SpawnError::Io {
        program: argv0.clone(),
        source,
    };
    let (report_read, report_write) =
        pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|e| io_error(e.into()))?;
    // The child's copy must outlive its own stdio set-up.
    let report_write = process::above_stdio(report_write).map_err(io_error)?;
    let setup = ChildSetup {
        parent: std::process::id() as libc::pid_t,
        ids: spec.run_as.map(|r| (r.uid, r.gid)),
        groups: spec.run_as.map(|r| r.groups.clone()).unwrap_or_default(),
        cwd,
        report: report_write,
        cgroup_procs: confine.and_then(|c| c.cgroup_procs),
        namespace,
        landlock: confine.and_then(|c| c.landlock.as_ref().map(AsRawFd::as_raw_fd)),
        drop_caps: confine.is_some_and(|c| c.drop_caps),
    };

    let program =
        CString::new(program.as_os_str().as_bytes()).map_err(|_| SpawnError::InvalidArg {
            program: argv0.clone(),
            index: 0,
        })?;
    let exec = Exec::new(
        program,
        spec.argv,
        spec.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .chain(
                spec.secrets
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.expose_secret().as_bytes())),
            ),
    );
    let started = process::start(&exec, &setup, &report_read);
    // The copies of the secret values go at once (zeroized).
    drop(exec);
    started.map_err(|e| spawn_error(argv0, spec.working_dir, e))
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

/// Pids of the children this process waits for by pid itself: agents' leaders
/// (each [`Child`] waits for its own) and this module's short-lived helpers. A reaper of
/// orphans (the daemon's, see `crate::reaper`) takes this lock and leaves them
/// alone; a helper holds it from its fork to its `waitpid`.
static WAITED_FOR: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// The lock of [`WAITED_FOR`]; a panic while holding it leaves a valid set.
pub fn waited_for() -> MutexGuard<'static, BTreeSet<i32>> {
    WAITED_FOR.lock().unwrap_or_else(|p| p.into_inner())
}

/// [`waited_for`] when it is free; `None` when a spawn or helper holds it.
pub fn try_waited_for() -> Option<MutexGuard<'static, BTreeSet<i32>>> {
    match WAITED_FOR.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Sends `sig` to each of `targets` (a pid, or a negative process group id) as
/// `user`: from a forked child that switches to that user first. This is how a
/// supervisor without `CAP_KILL` stops agents that run as another user (it
/// holds `CAP_SETUID` and `CAP_SETGID` to start them).
pub fn signal_as(user: &RunAs, targets: &[i32], sig: Signal) -> io::Result<()> {
    let groups = user.groups.clone();
    // Nobody else reaps the helper before our waitpid below.
    let _waited = waited_for();
    // SAFETY: the child only makes async-signal-safe system calls on data prepared
    // above (setgroups, setgid, setuid, kill) and leaves with _exit.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // SAFETY: as above; `groups` and `targets` are live slices.
            unsafe {
                let ok = libc::setgroups(groups.len(), groups.as_ptr()) == 0
                    && libc::setgid(user.gid) == 0
                    && libc::setuid(user.uid) == 0;
                if ok {
                    for &t in targets {
                        libc::kill(t, sig as libc::c_int);
                    }
                }
                libc::_exit(if ok { 0 } else { 1 })
            }
        }
        pid => {
            let mut status = 0;
            // SAFETY: waitpid(2) on our own child, writing into the live local `status`.
            let got = unsafe { libc::waitpid(pid, &mut status, 0) };
            if got == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                Ok(())
            } else {
                Err(io::Error::from(io::ErrorKind::PermissionDenied))
            }
        }
    }
}
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

/// Maps a child that did not start to a `SpawnError`: by the step that
/// failed, and for the exec itself by its error, as a shell reports it.
fn spawn_error(program: &str, working_dir: Option<&Path>, error: StartError) -> SpawnError {
    let program = program.to_owned();
    let (step, source) = match error {
        StartError::Parent(source) => return SpawnError::Io { program, source },
        StartError::Child { step, source } => (step, source),
    };
    match step {
        Some(Step::WorkingDir) => SpawnError::WorkingDir {
            path: working_dir.map(Path::to_owned).unwrap_or_default(),
            source,
        },
        Some(Step::Exec) => match source.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => SpawnError::NotFound { program },
            Some(libc::EACCES) => SpawnError::PermissionDenied { program },
            Some(libc::ENOEXEC) => SpawnError::NotExecutable { program },
            _ => SpawnError::Io { program, source },
        },
        Some(step) => SpawnError::Setup {
            program,
            step: step.name(),
            source,
        },
        None => SpawnError::Io { program, source },
    }
}
#[cfg(test)]
mod tests;
