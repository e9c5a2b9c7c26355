//! The `supervisor` command.

fn main() -> std::process::ExitCode {
    supervisor::main_with_args()
}
