//! The `supervisor` command. It starts without the standard library's
//! runtime set-up, which costs a short command more than its own work;
//! `supervisor::start` says what it keeps of it, and why. (A test build
//! keeps the test harness's `main`.)
#![cfg_attr(not(test), no_main)]

/// The C entry point, called by the C library's start-up code.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    supervisor::start::run(supervisor::main_with_args)
}

/// `pow` from a Rust port of musl's libm, in place of the C library's, so
/// that this binary needs no `libm.so.6`: loading one more shared library
/// costs every start about a sixth of `/bin/true`'s whole run. Its one
/// caller is the statistics of tokio's multi-threaded scheduler, which is
/// linked in (the daemon's binary shares the library) but never started
/// by this command. `tests/tests/cli.rs` checks the libraries the binary
/// needs.
#[unsafe(no_mangle)]
extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}
