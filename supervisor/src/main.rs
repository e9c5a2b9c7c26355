//! The `supervisor` command. It starts without the standard library's
//! runtime set-up, which costs a short command more than its own work;
//! `supervisor::start` says what it keeps of it, and why.
#![no_main]

/// The C entry point, called by the C library's start-up code.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    supervisor::start::run(supervisor::main_with_args)
}
