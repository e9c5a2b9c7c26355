//! `supervisor-daemon`: the daemon, which `supervisor serve` runs.

fn main() -> std::process::ExitCode {
    supervisor::daemon_main()
}
