//! How the `supervisor` command starts and ends, in place of the standard
//! library's runtime set-up (`main.rs` is `#![no_main]`).
//!
//! That set-up reads `/proc/self/maps` (through `pthread_getattr_np`) to
//! find the main thread's stack guard and installs SIGSEGV and SIGBUS
//! handlers, all to print a message when the stack overflows; an overflow
//! still ends the process (the kernel's guard gap), only without the
//! message. The work is a large share of a short command such as
//! `supervisor --version`, which people and agents start many times a day.
//! What else the set-up does is kept here, in the same order:
//!
//! - descriptors 0, 1 and 2 are open (on `/dev/null` when they were not),
//!   so that a file the command opens never becomes its standard output;
//! - SIGPIPE is ignored (commands that only print set it back to the
//!   default, see `spawn::end_on_closed_stdout`);
//! - a panic ends the process with status 101 after its message;
//! - standard output is flushed at the end.

/// Status of a process that panicked, as the standard runtime reports it.
const PANICKED: i32 = 101;

/// Runs `body` as the process's `main` and exits with its status.
pub fn run(body: fn() -> u8) -> ! {
    if !standard_descriptors_open() {
        // Nothing can be reported: stderr may be the one missing.
        std::process::abort();
    }
    // SAFETY: SIG_IGN installs no handler; this runs once, before any
    // other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let status = std::panic::catch_unwind(body).map_or(PANICKED, i32::from);
    // `exit` flushes standard output, as returning from `main` would.
    std::process::exit(status)
}

/// Opens `/dev/null` on each of descriptors 0, 1 and 2 that is closed;
/// false when one stays closed.
fn standard_descriptors_open() -> bool {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three `pollfd`s for the call.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    fds.iter().all(|p| {
        let closed = if polled >= 0 {
            p.revents & libc::POLLNVAL != 0
        } else {
            // poll can fail for want of memory; ask the descriptor instead.
            // SAFETY: F_GETFD reads a descriptor's flags and touches no memory.
            (unsafe { libc::fcntl(p.fd, libc::F_GETFD) }) == -1
        };
        // SAFETY: a NUL-terminated path. The lowest free descriptor is
        // `p.fd`, since the lower ones are open by now.
        !closed || unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } == p.fd
    })
}
