//! The `supervisor` binary's library: the command line, the run path
//! (scope rule, isolated spawn, redaction) and the daemon.
//!
//! `main.rs` only calls [`main_with_args`]; everything else lives here so
//! that it can be tested.

pub mod cli;
mod commands;
mod context;
mod credentials;
pub mod daemon;
mod fail;
mod logging;
pub mod redact;
pub mod run;
pub mod sandbox;
pub mod scope;
pub mod spawn;
mod when;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser};

use crate::cli::{AuditCommand, Cli, Command, ConfigCommand, RunsCommand, SecretCommand, Shell};
use crate::context::Context;

/// Parses the command line, runs the command, reports any failure on
/// stderr, and returns the process exit code.
pub fn main_with_args() -> ExitCode {
    // Before anything holds a value: no core dumps, no ptrace or /proc/<pid>/mem
    // reads by other processes of the same user.
    if let Err(e) = spawn::harden_self() {
        eprintln!("error: could not protect this process's memory: {e}");
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    // `run` keeps its own exit statuses for the agent's; any failure of the
    // supervisor around it (config, key, a tampered store) is 125, as
    // env(1) and timeout(1) report their own failures.
    let running = matches!(cli.command, Command::Run(_));
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = fail::report(&err);
            ExitCode::from(if running {
                run::EXIT_REFUSED as u8
            } else {
                code
            })
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    if let Command::Completions { shell } = cli.command {
        completions(shell);
        return Ok(0);
    }
    if let Command::Serve = cli.command {
        daemon::serve(&cli.global)?;
        return Ok(0);
    }
    let ctx = Context::load(&cli.global)?;
    match cli.command {
        Command::Init => commands::init::run(&ctx)?,
        Command::Secret(SecretCommand::Create(a)) => commands::secret::create(&ctx, &a)?,
        Command::Secret(SecretCommand::Update(a)) => commands::secret::update(&ctx, &a)?,
        Command::Secret(SecretCommand::Delete(a)) => commands::secret::delete(&ctx, &a)?,
        Command::Secret(SecretCommand::List { json, all }) => {
            commands::secret::list(&ctx, json, all)?
        }
        Command::Audit(AuditCommand::List { json, limit }) => {
            commands::audit::list(&ctx, json, limit)?
        }
        Command::Audit(AuditCommand::Verify) => commands::audit::verify(&ctx)?,
        Command::Config(ConfigCommand::Check) => commands::config::check(&ctx)?,
        Command::Run(a) => return commands::run::run(&ctx, &a),
        Command::Scope(a) => return commands::run::scope(&ctx, &a),
        Command::Runs(RunsCommand::List { json, agent, limit }) => {
            commands::runs::list(&ctx, json, agent.as_deref(), limit)?
        }
        Command::Runs(RunsCommand::Show { id, json }) => commands::runs::show(&ctx, &id, json)?,
        Command::Runs(RunsCommand::Logs { id }) => commands::runs::logs(&ctx, &id)?,
        Command::Schedules { json } => commands::schedules::list(&ctx, json)?,
        Command::Completions { .. } | Command::Serve => unreachable!("handled above"),
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
