//! The parent's side of a spawn, and its handle on the child.
//!
//! The child is made as `posix_spawn(3)` makes it: `clone(CLONE_VM |
//! CLONE_VFORK)`, sharing our memory until it execs, while the spawning
//! thread waits. A fork would copy the supervisor's page tables, in
//! proportion to the memory it has touched (a daemon holding runs: a
//! process with 64 MiB of touched heap forks in 2.5 ms on a small VM, where
//! this clone takes 0.08 ms), then fault in a copy of each page that either
//! side writes before the exec; this costs neither.
//!
//! What sharing our memory asks of the child (see `child`): it runs on a
//! stack of its own, allocates nothing and takes no lock (as after a fork),
//! writes no memory of ours but that stack (and the spawning thread's
//! `errno`, which the parent does not read across the spawn), switches users
//! with raw system calls (the C library's `setuid` would signal our other
//! threads), and puts every signal handler back to the default before it
//! unblocks signals, so that no handler of ours ever runs in it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::fcntl::OFlag;
use nix::unistd::pipe2;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use super::child::{ChildSetup, Step, check, child_setup};

/// A started child: its pid, the parent's ends of its standard streams, and
/// its exit status once it has one. Dropping it neither kills nor waits for
/// the child (the daemon's reaper takes what nobody waited for).
pub struct Child {
    pid: i32,
    exit: Exit,
    status: Option<ExitStatus>,
    /// Its standard input, until taken.
    pub stdin: Option<pipe::Sender>,
    /// Its standard output, until taken.
    pub stdout: Option<pipe::Receiver>,
    /// Its standard error, until taken.
    pub stderr: Option<pipe::Receiver>,
}

/// How the parent learns that the child has exited.
enum Exit {
    /// A pidfd, readable once the child has exited (Linux 5.3 and later).
    Pidfd(AsyncFd<OwnedFd>),
    /// Before that: a thread blocked in `waitpid`, which also reaps it.
    Waiter(oneshot::Receiver<io::Result<ExitStatus>>),
}

impl Child {
    /// The child's pid, until it has been waited for.
    pub fn id(&self) -> Option<u32> {
        match self.status {
            Some(_) => None,
            None => Some(self.pid as u32),
        }
    }

    /// Waits for the child to exit and reaps it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            match &mut self.exit {
                Exit::Pidfd(fd) => fd.readable().await?.clear_ready(),
                Exit::Waiter(rx) => {
                    let status = rx.await.map_err(|_| lost_waiter())??;
                    self.status = Some(status);
                }
            }
        }
    }

    /// The exit status, reaping the child, if it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let status = match &mut self.exit {
            Exit::Pidfd(_) => reap(self.pid, libc::WNOHANG)?,
            Exit::Waiter(rx) => match rx.try_recv() {
                Ok(status) => Some(status?),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => return Err(lost_waiter()),
            },
        };
        self.status = status;
        Ok(status)
    }

    /// Closes its stdin, reads its output to the end and waits for it.
    pub async fn wait_with_output(mut self) -> io::Result<std::process::Output> {
        use tokio::io::AsyncReadExt;
        async fn read_all(pipe: Option<pipe::Receiver>) -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut out).await?;
            }
            Ok(out)
        }
        drop(self.stdin.take());
        let (stdout, stderr) =
            tokio::try_join!(read_all(self.stdout.take()), read_all(self.stderr.take()))?;
        let status = self.wait().await?;
        Ok(std::process::Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

fn lost_waiter() -> io::Error {
    io::Error::other("the thread waiting for the child ended without its status")
}

/// `waitpid(pid, flags)` on a child of ours, again when a signal interrupts
/// it: `None` while it runs (with `WNOHANG`).
pub(super) fn reap(pid: i32, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid(2) on our own child, writing into the live local `status`.
        match unsafe { libc::waitpid(pid, &mut status, flags) } {
            0 => return Ok(None),
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            -1 => return Err(io::Error::last_os_error()),
            _ => return Ok(Some(ExitStatus::from_raw(status))),
        }
    }
}

/// What to execute, built before the clone: the program's path, the
/// command line and the environment, each NUL-terminated.
pub(super) struct Exec {
    program: CString,
    argv: Vec<CString>,
    /// `NAME=value\0`, zeroized when dropped: secrets are among them.
    envp: Vec<Zeroizing<Vec<u8>>>,
}

impl Exec {
    /// `argv[0]` as given; `vars` in order, a later one replacing an
    /// earlier of the same name. Callers have refused NUL bytes.
    pub(super) fn new<'a>(
        program: CString,
        argv: &[String],
        vars: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Exec {
        let merged: BTreeMap<&str, &[u8]> = vars.into_iter().collect();
        let envp = merged
            .into_iter()
            .map(|(name, value)| {
                let mut entry = Zeroizing::new(Vec::with_capacity(name.len() + value.len() + 2));
                entry.extend_from_slice(name.as_bytes());
                entry.push(b'=');
                entry.extend_from_slice(value);
                entry.push(0);
                entry
            })
            .collect();
        Exec {
            program,
            argv: argv
                .iter()
                .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
                .collect(),
            envp,
        }
    }
}

/// Why a child did not start.
pub(super) enum StartError {
    /// The child reported the step that failed ([`Step::Exec`] for the exec
    /// itself) and the error.
    Child {
        step: Option<Step>,
        source: io::Error,
    },
    /// The parent could not make the child.
    Parent(io::Error),
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> StartError {
        StartError::Parent(e)
    }
}

impl From<nix::Error> for StartError {
    fn from(e: nix::Error) -> StartError {
        StartError::Parent(e.into())
    }
}

/// The stack of a child that shares our memory: mapped apart from the heap,
/// with a guard page below it.
pub(super) struct Stack {
    base: *mut libc::c_void,
}

/// Enough for the deepest path of `child_setup` many times over; only the
/// pages it touches are ever allocated.
const STACK_SIZE: usize = 256 * 1024;
const GUARD: usize = 4096;

impl Stack {
    pub(super) fn new() -> io::Result<Stack> {
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base };
        // SAFETY: the lowest page of the mapping made above.
        if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// Its top, 16-byte aligned: the stack grows down.
    pub(super) fn top(&self) -> *mut libc::c_void {
        ((self.base as usize + STACK_SIZE) & !15) as *mut libc::c_void
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, which no child runs on any more.
        unsafe { libc::munmap(self.base, STACK_SIZE) };
    }
}

/// What the child reads: pointers into the parent's memory, all alive until
/// the clone returns.
struct ChildArgs<'a> {
    program: *const libc::c_char,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    /// The child's ends of stdin, stdout and stderr.
    stdio: [RawFd; 3],
    setup: &'a ChildSetup,
}

/// Starts the child with `setup` applied and `exec` executed, its standard
/// streams piped to the returned [`Child`].
/// `report` is the read end of the pipe whose write end `setup` holds.
pub(super) fn start(
    exec: &Exec,
    setup: &ChildSetup,
    report: &OwnedFd,
) -> Result<Child, StartError> {
    let (stdin_r, stdin_w) = pipe2(OFlag::O_CLOEXEC)?;
    let (stdout_r, stdout_w) = pipe2(OFlag::O_CLOEXEC)?;
    let (stderr_r, stderr_w) = pipe2(OFlag::O_CLOEXEC)?;
    let [stdin_r, stdout_w, stderr_w] = [stdin_r, stdout_w, stderr_w].map(above_stdio);
    let (stdin_r, stdout_w, stderr_w) = (stdin_r?, stdout_w?, stderr_w?);
    let argv: Vec<*const libc::c_char> = exec
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = exec
        .envp
        .iter()
        .map(|e| e.as_ptr().cast())
        .chain([std::ptr::null()])
        .collect();
    let args = ChildArgs {
        program: exec.program.as_ptr(),
        argv: &argv,
        envp: &envp,
        stdio: [
            stdin_r.as_raw_fd(),
            stdout_w.as_raw_fd(),
            stderr_w.as_raw_fd(),
        ],
        setup,
    };
    let stack = Stack::new()?;
    let pid = {
        let _blocked = BlockedSignals::all()?;
        // SAFETY: the child runs `child_main` on `stack` with `args`, both of
        // which outlive it: CLONE_VFORK suspends this thread until the child
        // has exec'd or exited. What the child may do with our memory is in
        // the module's comment and in `child`.
        unsafe {
            libc::clone(
                child_main,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&raw const args).cast_mut().cast(),
            )
        }
    };
    if pid == -1 {
        return Err(StartError::Parent(io::Error::last_os_error()));
    }
    drop(stack);
    drop((stdin_r, stdout_w, stderr_w));
    if let Some(failure) = read_report(report.as_raw_fd())? {
        // It has exited: reap it, so that no zombie is left behind.
        let _ = reap(pid, 0);
        return Err(failure);
    }
    let handle = || -> io::Result<Child> {
        #[cfg(test)]
        let pidfd = if tests::NO_PIDFD.get() {
            Err(io::ErrorKind::Unsupported.into())
        } else {
            pidfd_open(pid)
        };
        #[cfg(not(test))]
        let pidfd = pidfd_open(pid);
        let exit = match pidfd {
            Ok(fd) => {
                // SAFETY: the `AsyncFd` owns the descriptor, which stays open as long.
                let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
                Exit::Pidfd(fd)
            }
            Err(_) => {
                let (tx, rx) = oneshot::channel();
                std::thread::Builder::new()
                    .name(format!("wait-{pid}"))
                    .spawn(move || {
                        let _ = tx.send(reap(pid, 0).and_then(|s| s.ok_or_else(lost_waiter)));
                    })?;
                Exit::Waiter(rx)
            }
        };
        Ok(Child {
            pid,
            exit,
            status: None,
            stdin: Some(pipe::Sender::from_owned_fd(stdin_w)?),
            stdout: Some(pipe::Receiver::from_owned_fd(stdout_r)?),
            stderr: Some(pipe::Receiver::from_owned_fd(stderr_r)?),
        })
    };
    handle().map_err(|e| {
        // Started, but without a way to watch it: it must not run unwatched.
        // SAFETY: kill(2) of the group the child leads (it called setsid).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = reap(pid, 0);
        StartError::Parent(e)
    })
}

/// The report the child leaves in its pipe when it fails: the step, then
/// the error number. Nothing means it exec'd.
fn read_report(fd: RawFd) -> io::Result<Option<StartError>> {
    let mut buf = [0u8; 5];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: read(2) into the live local `buf`, past what was read.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        match n {
            0 => break,
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            // Nothing written and the child has exec'd: the pipe is empty.
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => break,
            -1 => return Err(io::Error::last_os_error()),
            n => got += n as usize,
        }
    }
    Ok(match got {
        0 => None,
        5 => Some(StartError::Child {
            step: Step::from_byte(buf[0]),
            source: io::Error::from_raw_os_error(i32::from_ne_bytes([
                buf[1], buf[2], buf[3], buf[4],
            ])),
        }),
        _ => Some(StartError::Child {
            step: Step::from_byte(buf[0]),
            source: io::Error::other("the child ended before exec without saying why"),
        }),
    })
}

/// `fd`, or a copy of it numbered 3 or above, for the descriptors the child
/// uses: it puts its ends of the pipes on 0, 1 and 2, and one already there
/// would be overwritten (or keep its close-on-exec flag) before its turn.
/// Only a parent started with 0-2 closed makes them there.
pub(super) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: fcntl(2) duplicating a live descriptor; the copy is ours alone.
    let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if copy == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns (close-on-exec by default).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Every signal blocked in this thread while it lives, so that none is
/// handled in the child before it has put the handlers back to default.
struct BlockedSignals(libc::sigset_t);

impl BlockedSignals {
    fn all() -> io::Result<BlockedSignals> {
        // SAFETY: all-zero sigset_t values are valid to hand to sigfillset(3)
        // and pthread_sigmask(3), which only touch these locals.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            let ret = libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            if ret != 0 {
                return Err(io::Error::from_raw_os_error(ret));
            }
            Ok(BlockedSignals(old))
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: puts back the mask saved in `all`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// The child: handlers to default, standard streams in place, isolation,
/// exec. On failure it reports the error number after the step that
/// `check` reported, and exits 127.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `ChildArgs`, alive until we exec or exit.
    let args = unsafe { &*arg.cast::<ChildArgs<'_>>() };
    let err = exec_child(args);
    let code = err.raw_os_error().unwrap_or(0).to_ne_bytes();
    // SAFETY: write(2) of a live local buffer, then _exit(2), which ends this
    // child alone and runs none of the parent's exit handlers.
    unsafe {
        libc::write(
            args.setup.report.as_raw_fd(),
            code.as_ptr().cast(),
            code.len(),
        );
        libc::_exit(127)
    }
}

/// Returns only when a step or the exec failed.
fn exec_child(args: &ChildArgs<'_>) -> io::Error {
    let report = args.setup.report.as_raw_fd();
    default_signal_handlers();
    for (target, &fd) in args.stdio.iter().enumerate() {
        // SAFETY: dup2(2) of a descriptor the parent keeps open until the clone returns.
        if let Err(e) = check(report, Step::Stdio, unsafe {
            libc::dup2(fd, target as RawFd)
        }) {
            return e;
        }
    }
    if let Err(e) = child_setup(args.setup) {
        return e;
    }
    // SAFETY: execve(2) with NUL-terminated strings and null-terminated
    // arrays of them, all owned by the parent's live `Exec`.
    unsafe { libc::execve(args.program, args.argv.as_ptr(), args.envp.as_ptr()) };
    let err = io::Error::last_os_error();
    let _ = check(report, Step::Exec, -1);
    err
}

/// Every handled signal back to its default action, and SIGPIPE too (which
/// the supervisor ignores); other ignored signals stay ignored, as exec would
/// keep them. Signals are blocked meanwhile (see [`BlockedSignals`]).
fn default_signal_handlers() {
    for sig in 1..libc::SIGRTMAX() + 1 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: sigaction(2) reading into, then writing from, live locals. It
        // fails for the C library's own signals, which nothing sends the child.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            let keep = old.sa_sigaction == libc::SIG_DFL
                || (old.sa_sigaction == libc::SIG_IGN && sig != libc::SIGPIPE);
            if !keep {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &default, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    thread_local! {
        /// Makes this thread's spawns watch their child as on a kernel
        /// without pidfds.
        pub static NO_PIDFD: Cell<bool> = const { Cell::new(false) };
    }
}
