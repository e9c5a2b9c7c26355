//! Namespaces for one agent: a mount namespace in which the supervisor's files
//! (key, state directory, credentials) are covered, and for `network = false`
//! a network namespace with only its own loopback interface.
//!
//! The parent prepares a [`NamespacePlan`] (every path as a C string, every id
//! map line as bytes); the child applies it with [`enter`] using system calls
//! only. A privileged supervisor makes the namespaces directly, before the
//! agent's user switch; an unprivileged one goes through a user namespace owned
//! by the agent's own uid, after it. Either way the agent ends up without the
//! capabilities to undo a mount, and mounts seen from a user namespace it might
//! create later are locked to it.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::child::{Step, check};

/// What the child does to its namespaces, prepared so that it never allocates.
#[derive(Clone)]
pub struct NamespacePlan {
    /// Made through a user namespace, after the user switch.
    pub(super) in_user_namespace: bool,
    flags: libc::c_int,
    /// `uid_map` and `gid_map` lines, in a user namespace.
    maps: Option<(Vec<u8>, Vec<u8>)>,
    covers: Vec<Cover>,
    loopback: bool,
}

/// One covered path.
#[derive(Clone)]
enum Cover {
    /// An empty read-only tmpfs over a directory; `attach` brings one
    /// directory beneath it (the run's HOME) back into view.
    Dir {
        target: CString,
        attach: Option<Attach>,
    },
    /// `/dev/null` over a file: it reads empty.
    File { target: CString },
}

#[derive(Clone)]
struct Attach {
    /// Directories to create in the tmpfs, outermost first; the last is the target.
    mkdirs: Vec<CString>,
    /// The directory itself, opened in the new namespace before the cover.
    source: CString,
}

/// What an agent's namespaces must provide.
pub struct NamespaceRequest<'a> {
    /// Existing paths to cover, absolute and canonical.
    pub hidden: &'a [PathBuf],
    /// A directory that stays visible even under a covered one (the run's HOME).
    pub keep: Option<&'a Path>,
    /// A network namespace with only loopback.
    pub isolate_network: bool,
    /// `Some((uid, gid))`: make the namespaces through a user namespace mapping
    /// only that uid and gid (the agent's), after the user switch.
    pub user_namespace: Option<(u32, u32)>,
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

impl NamespacePlan {
    /// Prepares the child's work. Paths beneath another hidden path are dropped:
    /// the outer cover hides them already.
    pub fn new(req: &NamespaceRequest<'_>) -> io::Result<NamespacePlan> {
        let mut covers = Vec::new();
        for path in req.hidden {
            if req.hidden.iter().any(|o| o != path && path.starts_with(o)) {
                continue;
            }
            let target = cstring(path)?;
            if !path.is_dir() {
                covers.push(Cover::File { target });
                continue;
            }
            let attach = match req.keep {
                Some(keep) if keep.starts_with(path) && keep != path => {
                    let mut mkdirs = Vec::new();
                    let mut at = path.to_path_buf();
                    for part in keep.strip_prefix(path).unwrap_or(keep).components() {
                        at.push(part);
                        mkdirs.push(cstring(&at)?);
                    }
                    Some(Attach {
                        mkdirs,
                        source: cstring(keep)?,
                    })
                }
                _ => None,
            };
            covers.push(Cover::Dir { target, attach });
        }
        let mut flags = libc::CLONE_NEWNS;
        if req.isolate_network {
            flags |= libc::CLONE_NEWNET;
        }
        let maps = req.user_namespace.map(|(uid, gid)| {
            flags |= libc::CLONE_NEWUSER;
            (
                format!("{uid} {uid} 1\n").into_bytes(),
                format!("{gid} {gid} 1\n").into_bytes(),
            )
        });
        Ok(NamespacePlan {
            in_user_namespace: maps.is_some(),
            flags,
            maps,
            covers,
            loopback: req.isolate_network,
        })
    }

    /// How many paths it covers (for the run record).
    pub fn covered(&self) -> usize {
        self.covers.len()
    }
}

/// In the child: makes the namespaces and applies the covers.
pub(super) fn enter(report: RawFd, plan: &NamespacePlan) -> io::Result<()> {
    // SAFETY: unshare(2) with integer flags.
    check(report, Step::Namespaces, unsafe {
        libc::unshare(plan.flags)
    })?;
    if let Some((uid_line, gid_line)) = &plan.maps {
        // The supervisor made itself undumpable, which hands /proc/self to root;
        // the maps must be written by their owner. Exec would make the agent
        // dumpable anyway, and the owner of the new user namespace (this uid)
        // may trace it from now on whatever this flag says.
        // SAFETY: prctl(2) with integer arguments only.
        let ret = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1 as libc::c_ulong, 0, 0, 0) };
        check(report, Step::IdMap, ret)?;
        write_file(report, c"/proc/self/setgroups", b"deny")?;
        write_file(report, c"/proc/self/uid_map", uid_line)?;
        write_file(report, c"/proc/self/gid_map", gid_line)?;
    }
    // Nothing mounted here may reach the host's mount table.
    mount(
        report,
        None,
        c"/",
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    let sealed = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    for cover in &plan.covers {
        match cover {
            Cover::Dir {
                target,
                attach: None,
            } => mount(
                report,
                Some(c"tmpfs"),
                target,
                Some(c"tmpfs"),
                sealed | libc::MS_RDONLY,
                Some(c"mode=0711,size=4k"),
            )?,
            Cover::Dir {
                target,
                attach: Some(attach),
            } => {
                // A descriptor of the directory to bring back, taken in this
                // namespace (a bind mount refuses a source from another one)
                // before the cover hides it.
                // SAFETY: open(2) reads a NUL-terminated path owned by the plan.
                let fd = unsafe {
                    libc::open(
                        attach.source.as_ptr(),
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    )
                };
                check(report, Step::Mounts, fd)?;
                let mut path = [0u8; 32];
                let source = fd_path(&mut path, fd);
                mount(
                    report,
                    Some(c"tmpfs"),
                    target,
                    Some(c"tmpfs"),
                    sealed,
                    Some(c"mode=0711,size=64k"),
                )?;
                for dir in &attach.mkdirs {
                    // SAFETY: mkdir(2) reads a NUL-terminated path owned by the plan.
                    check(report, Step::Mounts, unsafe {
                        libc::mkdir(dir.as_ptr(), 0o711)
                    })?;
                }
                if let Some(home) = attach.mkdirs.last() {
                    mount(report, Some(source), home, None, libc::MS_BIND, None)?;
                }
                mount(
                    report,
                    None,
                    target,
                    None,
                    libc::MS_REMOUNT | libc::MS_RDONLY | sealed,
                    None,
                )?;
            }
            Cover::File { target } => mount(
                report,
                Some(c"/dev/null"),
                target,
                None,
                libc::MS_BIND,
                None,
            )?,
        }
    }
    if plan.loopback {
        loopback_up(report)?;
    }
    Ok(())
}

/// `/proc/self/fd/<fd>` written into `buf`, NUL-terminated, without allocating.
fn fd_path(buf: &mut [u8; 32], fd: libc::c_int) -> &std::ffi::CStr {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = fd.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    // The buffer holds exactly one NUL, at the end of what was written.
    std::ffi::CStr::from_bytes_until_nul(&buf[..]).unwrap_or(c"/proc/self/fd/")
}

fn mount(
    report: RawFd,
    source: Option<&std::ffi::CStr>,
    target: &std::ffi::CStr,
    fstype: Option<&std::ffi::CStr>,
    flags: libc::c_ulong,
    data: Option<&std::ffi::CStr>,
) -> io::Result<()> {
    let ptr = |s: Option<&std::ffi::CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: mount(2) reads NUL-terminated strings that outlive the call, or nulls.
    let ret = unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    check(report, Step::Mounts, ret)
}

/// Writes `data` to a file of /proc in one write(2).
fn write_file(report: RawFd, path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: open(2) reads a NUL-terminated static path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    check(report, Step::IdMap, fd)?;
    // SAFETY: write(2) reads `data.len()` bytes of a live slice.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    // SAFETY: close(2) on the descriptor opened above.
    unsafe { libc::close(fd) };
    check(report, Step::IdMap, n)
}

/// Brings up `lo` in a fresh network namespace (it starts down).
fn loopback_up(report: RawFd) -> io::Result<()> {
    // SAFETY: socket(2) with integer arguments.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(report, Step::Loopback, sock)?;
    // SAFETY: an all-zero ifreq is a valid value (empty name, zero flags).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: ioctl(2) SIOCGIFFLAGS fills the live local `req`.
    let got = unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) };
    let ret = if got == -1 {
        got
    } else {
        // SAFETY: SIOCGIFFLAGS just set the flags member of the union.
        unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        // SAFETY: ioctl(2) SIOCSIFFLAGS reads the live local `req`.
        unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) }
    };
    let err = check(report, Step::Loopback, ret);
    // SAFETY: close(2) on the socket opened above.
    unsafe { libc::close(sock) };
    err
}

/// Which namespaces this process can make for its agents, tried for real in a
/// short-lived child: hosts and service managers forbid them in many ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamespaceSupport {
    /// A mount namespace (to cover the supervisor's files).
    pub mount: bool,
    /// A network namespace besides it (for `network = false`).
    pub network: bool,
    /// Made through a user namespace (the supervisor is not root).
    pub through_user_namespace: bool,
}

/// Tries the namespaces in a child that exits at once; the network
/// namespace only when `network` (it is the costly one to make and tear down).
pub fn probe(network: bool) -> NamespaceSupport {
    let privileged = nix::unistd::geteuid().is_root();
    let user = if privileged { 0 } else { libc::CLONE_NEWUSER };
    NamespaceSupport {
        mount: try_in_child(user | libc::CLONE_NEWNS),
        network: network && try_in_child(user | libc::CLONE_NEWNS | libc::CLONE_NEWNET),
        through_user_namespace: !privileged,
    }
}

/// Tries `unshare(flags)` and a private remount of `/` in a child that shares
/// our memory until it exits (`CLONE_VM | CLONE_VFORK`, as `vfork(2)`): no
/// page table is copied, which a `fork` of this process would cost on every
/// `supervisor run`.
fn try_in_child(flags: libc::c_int) -> bool {
    extern "C" fn probe(arg: *mut libc::c_void) -> libc::c_int {
        let flags = arg as usize as libc::c_int;
        // SAFETY: unshare(2) and mount(2) with static strings; the child
        // touches no memory of ours besides its own stack, and ends with the
        // exit system call that clone(2) makes when this returns.
        let ok = unsafe {
            libc::unshare(flags) == 0
                && libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
        };
        if ok { 0 } else { 1 }
    }
    let Ok(stack) = super::process::Stack::new() else {
        return false;
    };
    // Nobody else reaps the child before our waitpid below.
    let _waited = super::waited_for();
    // SAFETY: the child runs `probe` on `stack`, which outlives it: with
    // CLONE_VFORK this thread is suspended until the child has exited.
    let pid = unsafe {
        libc::clone(
            probe,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            flags as usize as *mut libc::c_void,
        )
    };
    if pid == -1 {
        return false;
    }
    let status = super::process::reap(pid, 0);
    drop(stack);
    matches!(status, Ok(Some(s)) if s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_paths_are_written_without_allocating() {
        let mut buf = [0u8; 32];
        assert_eq!(fd_path(&mut buf, 7), c"/proc/self/fd/7");
        assert_eq!(fd_path(&mut buf, 1234567890), c"/proc/self/fd/1234567890");
        assert_eq!(fd_path(&mut buf, 0), c"/proc/self/fd/0");
    }

    #[test]
    fn plans_skip_paths_beneath_covered_ones_and_bring_the_home_back() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().canonicalize().unwrap().join("state");
        std::fs::create_dir_all(state.join("tmp/r1")).unwrap();
        std::fs::write(state.join("master.key"), "k").unwrap();
        let hidden = vec![state.clone(), state.join("master.key")];
        let home = state.join("tmp/r1");
        let plan = NamespacePlan::new(&NamespaceRequest {
            hidden: &hidden,
            keep: Some(&home),
            isolate_network: true,
            user_namespace: Some((1000, 1000)),
        })
        .unwrap();
        assert_eq!(plan.covered(), 1);
        assert!(plan.in_user_namespace && plan.loopback);
        assert_eq!(
            plan.flags,
            libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWUSER
        );
        let Cover::Dir {
            attach: Some(a), ..
        } = &plan.covers[0]
        else {
            panic!("the state directory is a directory cover with the home attached");
        };
        let made: Vec<&str> = a.mkdirs.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(
            made,
            [state.join("tmp").to_str().unwrap(), home.to_str().unwrap()]
        );
        assert_eq!(plan.maps.as_ref().unwrap().0, b"1000 1000 1\n");
    }
}
