//! The child's side of a spawn: everything that happens between clone and exec.
//!
//! Invariant: only async-signal-safe system calls on data the parent prepared
//! ([`ChildSetup`]): no allocation, no lock, no logging, and (the child shares
//! the parent's memory, see `process`) no C library call that acts on the
//! process's other threads: ids change through raw system calls. Each failure
//! writes the [`Step`] that failed to the report pipe and returns the error,
//! whose number the child then writes after it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::namespace::{self, NamespacePlan};

/// The child's isolation steps, in order; the byte reported when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Step {
    Stdio = 1,
    Cgroup,
    Session,
    AmbientCaps,
    Namespaces,
    IdMap,
    Mounts,
    Loopback,
    Groups,
    Gid,
    Uid,
    DeathSignal,
    CoreLimit,
    WorkingDir,
    NoNewPrivs,
    Landlock,
    Capabilities,
    SignalMask,
    Exec,
}

impl Step {
    const ALL: [Step; 19] = [
        Step::Stdio,
        Step::Cgroup,
        Step::Session,
        Step::AmbientCaps,
        Step::Namespaces,
        Step::IdMap,
        Step::Mounts,
        Step::Loopback,
        Step::Groups,
        Step::Gid,
        Step::Uid,
        Step::DeathSignal,
        Step::CoreLimit,
        Step::WorkingDir,
        Step::NoNewPrivs,
        Step::Landlock,
        Step::Capabilities,
        Step::SignalMask,
        Step::Exec,
    ];

    pub(super) fn from_byte(byte: u8) -> Option<Step> {
        Step::ALL.into_iter().find(|s| *s as u8 == byte)
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Step::Stdio => "dup2 of a standard stream",
            Step::Cgroup => "joining the run's cgroup",
            Step::Session => "setsid",
            Step::AmbientCaps => "PR_CAP_AMBIENT_CLEAR_ALL",
            Step::Namespaces => "unshare",
            Step::IdMap => "writing the user namespace's id maps",
            Step::Mounts => "covering the supervisor's files",
            Step::Loopback => "bringing up the loopback interface",
            Step::Groups => "setgroups",
            Step::Gid => "setgid",
            Step::Uid => "setuid",
            Step::DeathSignal => "PR_SET_PDEATHSIG",
            Step::CoreLimit => "RLIMIT_CORE",
            Step::WorkingDir => "chdir",
            Step::NoNewPrivs => "PR_SET_NO_NEW_PRIVS",
            Step::Landlock => "landlock_restrict_self",
            Step::Capabilities => "dropping capabilities",
            Step::SignalMask => "sigprocmask",
            Step::Exec => "execve",
        }
    }
}

/// What the child needs between clone and exec, prepared by the parent so that the
/// child never allocates. Raw descriptors belong to the parent, which keeps them
/// open until the spawn returns.
pub(super) struct ChildSetup {
    pub parent: libc::pid_t,
    pub ids: Option<(libc::uid_t, libc::gid_t)>,
    pub groups: Vec<libc::gid_t>,
    pub cwd: Option<CString>,
    pub report: OwnedFd,
    /// `cgroup.procs` of the run's cgroup, open for writing.
    pub cgroup_procs: Option<RawFd>,
    /// Namespaces and mounts, when the agent gets them.
    pub namespace: Option<NamespacePlan>,
    /// A Landlock ruleset to enforce.
    pub landlock: Option<RawFd>,
    /// Empty the bounding set and every capability set: for agents left as root.
    pub drop_caps: bool,
}

/// Upper bound of the descriptor loop used when `close_range` is unavailable (Linux
/// before 5.11), whatever the descriptor limit says.
const FALLBACK_MAX_FD: libc::c_int = 1 << 20;

/// Runs in the child, before exec.
pub(super) fn child_setup(s: &ChildSetup) -> io::Result<()> {
    let report = s.report.as_raw_fd();
    if let Some(fd) = s.cgroup_procs {
        // First, so that whatever follows, failures included, happens inside the
        // run's cgroup. "0" moves the writing process.
        // SAFETY: write(2) reads one byte of a static string.
        let ret = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
        check(report, Step::Cgroup, ret)?;
    }
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
    // With privilege, the namespaces are made before the user switch; without,
    // through a user namespace owned by the agent's own uid, after it.
    if let Some(plan) = s.namespace.as_ref().filter(|p| !p.in_user_namespace) {
        namespace::enter(report, plan)?;
    }
    if let Some((uid, gid)) = s.ids {
        // Raw system calls, which change this process alone: the C library's
        // wrappers would also signal every other thread it knows of, which
        // in a child sharing our memory are the parent's.
        // SAFETY: setgroups(2) reads `groups.len()` ids from a live slice.
        let ret = unsafe { libc::syscall(libc::SYS_setgroups, s.groups.len(), s.groups.as_ptr()) };
        check(report, Step::Groups, ret)?;
        // SAFETY: setresgid(2) and setresuid(2) with integer arguments only.
        let ret = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
        check(report, Step::Gid, ret)?;
        // SAFETY: as above.
        let ret = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
        check(report, Step::Uid, ret)?;
    }
    if let Some(plan) = s.namespace.as_ref().filter(|p| p.in_user_namespace) {
        namespace::enter(report, plan)?;
    }
    // After the uid change and the namespaces, which clear the parent-death signal.
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
    // After the mounts: a directory entered before them would still show what
    // they cover.
    if let Some(cwd) = &s.cwd {
        // SAFETY: chdir(2) reads a NUL-terminated string owned by `s`.
        check(report, Step::WorkingDir, unsafe {
            libc::chdir(cwd.as_ptr())
        })?;
    }
    // SAFETY: prctl(2) with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) };
    check(report, Step::NoNewPrivs, ret)?;
    if let Some(fd) = s.landlock {
        // SAFETY: landlock_restrict_self(2) with a ruleset descriptor and no flags.
        let ret = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0 as libc::c_uint) };
        check(report, Step::Landlock, ret)?;
    }
    if s.drop_caps {
        drop_capabilities(report)?;
    }
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
    // Close-on-exec rather than close: an exec that fails is reported through
    // the report pipe, which must stay open until then.
    cloexec_from_3();
    Ok(())
}

/// capset(2)'s header and its two data words (version 3).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Empties the bounding set, then every capability set, so that an agent left as
/// root holds no capability after exec (nor can it regain one through exec): it
/// cannot unmount what covers the supervisor's files, nor read past permissions.
fn drop_capabilities(report: RawFd) -> io::Result<()> {
    for cap in 0..64 {
        // SAFETY: prctl(2) with integer arguments only.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if ret == -1 {
            // EINVAL: past the last capability this kernel knows, and so
            // are all after it (they are numbered without gaps).
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            check(report, Step::Capabilities, ret)?;
        }
    }
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let none = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset(2) reads the live local header and the two data words.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &raw const header, none.as_ptr()) };
    check(report, Step::Capabilities, ret)
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
pub(super) fn check<T: PartialEq + From<i8>>(report: RawFd, step: Step, ret: T) -> io::Result<()> {
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
