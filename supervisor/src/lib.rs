//! The `supervisor` binary's library: the command line, the requests it
//! makes (answered in this process or by the daemon over the control
//! socket), the run path (scope rule, isolated spawn, redaction) and the
//! daemon.
//!
//! `main.rs` only calls [`main_with_args`] (through [`start::run`]), and
//! `bin/supervisor-daemon.rs` only [`daemon_main`]; everything else lives
//! here so that it can be tested.
//!
//! Two binaries, so that the command people and agents start many times a
//! day does not carry the daemon (HTTP, Slack, Linear, metrics): that code
//! is half the program, and a binary pays for all of its code at every
//! start (the loader relocates it, and its pages are faulted in).
//! `supervisor serve` executes `supervisor-daemon`, installed beside it.

mod backend;
pub mod cli;
mod commands;
mod context;
pub mod control;
mod credentials;
pub mod daemon;
mod fail;
mod logging;
pub mod reaper;
pub mod redact;
pub mod run;
pub mod sandbox;
pub mod scope;
mod socket;
pub mod spawn;
pub mod start;
mod when;
mod wording;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser};

use crate::backend::Backend;
use crate::cli::{AuditCommand, Cli, Command, ConfigCommand, RunsCommand, SecretCommand, Shell};
use crate::context::Context;

/// Parses the command line, runs the command, reports any failure on
/// stderr, and returns the process exit status.
pub fn main_with_args() -> u8 {
    // Before anything holds a value: no core dumps, no ptrace or /proc/<pid>/mem
    // reads by other processes of the same user.
    if let Err(e) = spawn::harden_self() {
        eprintln!("error: could not protect this process's memory: {e}");
        return 1;
    }
    let cli = Cli::parse();
    // One place for a closed stdout (`supervisor audit list | head`): the
    // commands that only print end as `cat` would, quietly.
    let outlives_stdout = match &cli.command {
        Command::Run(a) => !a.dry_run,
        Command::Serve => true,
        _ => false,
    };
    if !outlives_stdout {
        if let Err(e) = spawn::end_on_closed_stdout() {
            eprintln!("error: could not set up standard output: {e}");
            return 1;
        }
    }
    // `run` keeps its own exit statuses for the agent's; any failure of the
    // supervisor around it (config, key, a tampered store) is 125, as
    // env(1) and timeout(1) report their own failures.
    let running = matches!(cli.command, Command::Run(_));
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            let code = fail::report(&err);
            if running {
                run::EXIT_REFUSED as u8
            } else {
                code
            }
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    // Commands that read only the config, or set up this machine, are local.
    match cli.command {
        Command::Completions { shell } => {
            completions(shell);
            return Ok(0);
        }
        Command::Serve => return Err(exec_daemon()),
        Command::Init => {
            commands::init::run(&Context::load(&cli.global)?)?;
            return Ok(0);
        }
        Command::Config(ConfigCommand::Check { json }) => {
            return commands::config::check(&cli.global, json);
        }
        Command::Schedules { json } => {
            commands::schedules::list(&Context::load(&cli.global)?, json)?;
            return Ok(0);
        }
        _ => {}
    }
    // The rest are requests, to the daemon or to this process (local mode).
    let mut backend = Backend::choose(&cli.global)?;
    requests(&mut backend, cli.command).map_err(|error| {
        fail::Routed {
            mode: backend.mode(),
            error,
        }
        .into()
    })
}

/// The daemon's binary, beside this one.
pub const DAEMON_BINARY: &str = "supervisor-daemon";

/// Replaces this process with the daemon's binary, same arguments and
/// environment (and so the same pid, which systemd's notify protocol wants).
/// Returns only on failure.
fn exec_daemon() -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let daemon = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name(DAEMON_BINARY),
        Err(e) => return anyhow::anyhow!("finding this program's own path: {e}"),
    };
    let error = std::process::Command::new(&daemon)
        .args(std::env::args_os().skip(1))
        .exec();
    fail::Failure::new(format!("cannot start {}: {error}", daemon.display()))
        .hint(format!(
            "`supervisor serve` runs `{DAEMON_BINARY}`, installed in the same directory as `supervisor`"
        ))
        .into()
}

/// `supervisor-daemon`: `supervisor serve`, which is all this binary does.
pub fn daemon_main() -> ExitCode {
    if let Err(e) = spawn::harden_self() {
        eprintln!("error: could not protect this process's memory: {e}");
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    let served = match cli.command {
        Command::Serve => daemon::serve(&cli.global),
        _ => Err(fail::Failure::new(format!(
            "{DAEMON_BINARY} only serves; the other commands are `supervisor`'s"
        ))
        .hint("run `supervisor serve`, or `supervisor --help` for the rest")
        .into()),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => ExitCode::from(fail::report(&err)),
    }
}

fn requests(backend: &mut Backend, command: Command) -> Result<u8> {
    match command {
        Command::Secret(SecretCommand::Create(a)) => commands::secret::create(backend, &a)?,
        Command::Secret(SecretCommand::Update(a)) => commands::secret::update(backend, &a)?,
        Command::Secret(SecretCommand::Delete(a)) => commands::secret::delete(backend, &a)?,
        Command::Secret(SecretCommand::List { json, all }) => {
            commands::secret::list(backend, json, all)?
        }
        Command::Audit(AuditCommand::List { json, limit }) => {
            commands::audit::list(backend, json, limit)?
        }
        Command::Audit(AuditCommand::Verify { json }) => {
            return commands::audit::verify(backend, json);
        }
        Command::Run(a) => return commands::run::run(backend, &a),
        Command::Scope(a) => return commands::run::scope(backend, &a),
        Command::Runs(RunsCommand::List { json, agent, limit }) => {
            commands::runs::list(backend, json, agent.as_deref(), limit)?
        }
        Command::Runs(RunsCommand::Show { id, json }) => commands::runs::show(backend, &id, json)?,
        Command::Runs(RunsCommand::Logs { id, json }) => commands::runs::logs(backend, &id, json)?,
        Command::Completions { .. }
        | Command::Serve
        | Command::Init
        | Command::Config(_)
        | Command::Schedules { .. } => unreachable!("local commands are handled above"),
    }
    Ok(0)
}

fn completions(shell: Shell) {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "supervisor",
        &mut std::io::stdout(),
    );
}
