//! The command line: every command, flag and help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use supervisor_config::TriggerKind;

/// Starts agent runs with exactly the secrets in scope for who asked.
///
/// Team secrets reach every run; a member's personal secrets reach only the
/// runs that member starts; runs with nobody behind them (cron, automation)
/// get team secrets only. Values are stored encrypted and are never shown
/// again after they are created.
///
/// Two modes. With a control socket (`[server] control_socket` in the
/// config, --socket or $SUPERVISOR_SOCKET), `secret`, `run`, `scope`, `runs`
/// and `audit` are requests to the daemon (`supervisor serve`): it alone
/// holds the key, and knows you by your Unix user. Without one, or with
/// --local, this process opens the key and the store itself (local mode: one
/// person's machine). A socket that does not answer is an error, never a
/// reason to fall back; errors say which mode answered. `init`, `config
/// check` and `schedules` always read locally.
#[derive(Debug, Parser)]
#[command(
    name = "supervisor",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags that every command takes, before or after the command's name.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The config file [default: ./supervisor.toml]
    #[arg(long, global = true, env = "SUPERVISOR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The state directory (store, key, run logs); overrides the config's `state_dir`
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Send commands to the daemon on this control socket (instead of the
    /// config's `[server] control_socket`)
    #[arg(long, global = true, env = "SUPERVISOR_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Local mode: open the key and the store from this process, even when a
    /// control socket is configured (needs read access to the key)
    #[arg(long, global = true)]
    pub local: bool,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create the state directory, the master key and the store
    ///
    /// Safe to run again: an existing key is never overwritten, and the store
    /// is only migrated.
    Init,
    /// Create, update, delete and list secrets (values are never shown)
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Start an agent as you, with your secrets, and stream its redacted output
    ///
    /// The exit status is the agent's: 128+N when a signal N killed it, 124
    /// when it timed out, 127 when its command was not found, 126 when it
    /// could not be executed, 125 when the supervisor refused the run or
    /// failed before the agent started.
    ///
    /// Through the daemon, the run is the daemon's (trigger `cli`, you as
    /// initiator): it waits for a free slot of `[server] max_concurrent_runs`
    /// and the agent's `max_concurrent`, its output streams back here, and
    /// Ctrl-C (SIGINT) or SIGTERM here stops it and exits 128+N. If this
    /// process goes away (killed, terminal closed), the daemon stops the run.
    /// In local mode the agent is a child of this process.
    Run(RunArgs),
    /// Show which secrets a run would receive, without starting anything
    ///
    /// By default: a run by you, through the trigger named (cli unless
    /// --trigger says otherwise), which is what `supervisor run` gives you.
    /// The answer says whom it assumed. Cron and webhook runs have nobody
    /// behind them.
    Scope(ScopeArgs),
    /// Run as a service: the control socket, webhooks, cron schedules, /healthz and /metrics
    ///
    /// Listens on `[server] listen` (HTTP) and on the control socket:
    /// `[server] control_socket`, else `$RUNTIME_DIRECTORY/control.sock` under
    /// systemd, else none. Members' CLI commands arrive on the socket; the
    /// daemon knows each caller by their Unix user (the kernel's peer
    /// credentials) and refuses users who are no member and processes it
    /// started itself (agents). Speaks the systemd notification protocol
    /// (READY=1, STOPPING=1, watchdog). SIGHUP reloads the config; SIGTERM
    /// drains: running runs get `[server] shutdown_grace`, then are stopped.
    Serve,
    /// List the cron schedules with their next three firings
    ///
    /// Times are in each schedule's own time zone. A schedule whose
    /// expression or time zone does not parse shows why, and the command
    /// then exits 1 (after listing every schedule).
    Schedules {
        /// Print JSON: an array of {name, agent, cron, timezone, overlap,
        /// next (RFC 3339 with offset), error (null when it can fire)}
        #[arg(long)]
        json: bool,
    },
    /// Past and current runs: your own (admins: every run)
    #[command(subcommand)]
    Runs(RunsCommand),
    /// The keyed, sealed audit log of secret changes and runs (admins)
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check the config file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script
    ///
    /// For example: `supervisor completions bash > /etc/bash_completion.d/supervisor`
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SecretCommand {
    /// Store a new secret
    ///
    /// The value is read from --value-file (its bytes exactly), else from a
    /// hidden prompt when standard input is a terminal, else from all of
    /// standard input. No flag takes the value itself: command lines are
    /// visible to every user of the machine.
    ///
    /// Example: `printf %s "$TOKEN" | supervisor secret create --team --name GITHUB_TOKEN`
    Create(WriteArgs),
    /// Replace a secret's value (its version goes up by one): the way to rotate
    ///
    /// The value is read as for `create`; the description is kept unless
    /// --description gives a new one.
    Update(WriteArgs),
    /// Delete a secret and overwrite its stored ciphertext
    ///
    /// Runs that already received it keep it until they end. In local mode
    /// this needs the master key, as every change the audit log records does.
    Delete(TargetArgs),
    /// List secrets: names, scopes, when they changed; never values
    List {
        /// Print JSON: an array of {name, scope, owner, description,
        /// version, created_at, created_by, updated_at, updated_by, leak}
        #[arg(long)]
        json: bool,
        /// Include every member's personal secrets (admins only)
        #[arg(long)]
        all: bool,
    },
}

// Which secret: its scope and name. (Not a doc comment: clap would take it as
// the `about` of every command that flattens these arguments, since their
// subcommands are built only when used, after the command's own `about`.)
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("scope").required(true).args(["team", "personal"]))]
pub struct TargetArgs {
    /// A team secret, which every run receives (admins only)
    #[arg(long)]
    pub team: bool,
    /// A personal secret, which only the owner's runs receive (yours, or
    /// --member's)
    #[arg(long)]
    pub personal: bool,
    /// The name, which is also the environment variable the agent sees
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// With --personal: another member who owns it (admins only; for members
    /// who only use Slack or Linear, or to revoke a departed member's)
    #[arg(long, value_name = "MEMBER", conflicts_with = "team")]
    pub member: Option<String>,
}

#[derive(Debug, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// What the secret is for (shown by `secret list`)
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Read the value from this file, byte for byte (a line break at its
    /// end is kept, with a warning, unless --strip-newline)
    #[arg(long, value_name = "FILE")]
    pub value_file: Option<PathBuf>,
    /// Remove the line breaks (LF, CR LF) at the end of a value read from
    /// standard input or --value-file, such as the one `echo` adds
    #[arg(long)]
    pub strip_newline: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent to start (see `supervisor config check`)
    pub agent: String,
    /// Text handed to the agent (SUPERVISOR_PROMPT and the run context)
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// Show what the run would receive and start nothing
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print what the run would receive as JSON (as
    /// `scope --json`); otherwise print the run's record as JSON when it ends
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// The agent (see `supervisor config check`)
    pub agent: String,
    /// What starts the run: cli, slack, linear, cron or webhook
    #[arg(long, value_parser = parse_trigger, default_value = "cli", value_name = "KIND")]
    pub trigger: TriggerKind,
    /// Whose run: another member's (admins; yours by default). Ignored for
    /// cron and webhook runs, which have nobody behind them
    #[arg(long, value_name = "NAME", conflicts_with = "nobody")]
    pub member: Option<String>,
    /// A run with nobody behind it (team secrets only), as Slack or Linear
    /// start for unknown users with `unknown_users = "team-only"`
    #[arg(long)]
    pub nobody: bool,
    /// Print JSON: {agent, trigger, member (null: nobody), secrets: [{name,
    /// scope, owner, version, shadows}], missing}
    #[arg(long)]
    pub json: bool,
}

fn parse_trigger(s: &str) -> Result<TriggerKind, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum RunsCommand {
    /// List runs, newest first
    List {
        /// Print JSON: an array of run records (as `runs show --json`)
        #[arg(long)]
        json: bool,
        /// Only runs of this agent
        #[arg(long, value_name = "AGENT")]
        agent: Option<String>,
        /// At most this many runs
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
    /// Show one run: who, what it received (names and versions), how it ended
    Show {
        /// The run id, or a unique prefix of it
        id: String,
        /// Print JSON: {id, agent, trigger, member, status, code, signal,
        /// reason, secret, exit_code, started_at, ended_at, log_bytes,
        /// redactions, detail}
        #[arg(long)]
        json: bool,
    },
    /// Print a run's redacted log
    Logs {
        /// The run id, or a unique prefix of it
        id: String,
        /// Print JSON: {id, log (the text, null when the run never started
        /// an agent)}
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum AuditCommand {
    /// Show audit entries, oldest first
    List {
        /// Print JSON: an array of {seq, at, actor, action, detail,
        /// prev_hash, hash}
        #[arg(long)]
        json: bool,
        /// Only the newest N entries
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Check the keyed chain and its seal; exit 1 naming what is wrong
    Verify {
        /// Print JSON: {intact, entries, sealed, keyed_from, entry, problem,
        /// hint} (exit 1 all the same when it does not hold)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ConfigCommand {
    /// Validate the config and print a summary; exit 1 on any error
    ///
    /// Every problem of the file is reported at once, each with its line,
    /// column and a hint, schedules' cron expressions and time zones
    /// included; then what this host offers for containing each agent.
    Check {
        /// Print JSON: {path, valid, problems: [{file, line, column,
        /// message, hint}], and when valid: team, state_dir, socket,
        /// members, agents, containment, warnings, schedules}
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// `--help` explains every command, flag and argument.
    #[test]
    fn every_command_flag_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let silent = arg.get_help().is_none() && arg.get_long_help().is_none();
                if silent && !arg.is_hide_set() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        let mut cli = Cli::command();
        cli.build();
        walk(&cli, "supervisor", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:?}");
    }

    #[test]
    fn global_flags_go_before_or_after() {
        let a = Cli::try_parse_from(["supervisor", "--state-dir", "s", "secret", "list"]).unwrap();
        let b = Cli::try_parse_from(["supervisor", "secret", "list", "--state-dir", "s"]).unwrap();
        assert_eq!(a.global.state_dir, b.global.state_dir);
    }

    #[test]
    fn a_scope_is_required_and_exclusive() {
        assert!(Cli::try_parse_from(["supervisor", "secret", "create", "--name", "X"]).is_err());
        assert!(
            Cli::try_parse_from([
                "supervisor",
                "secret",
                "create",
                "--team",
                "--personal",
                "--name",
                "X"
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from([
                "supervisor",
                "secret",
                "create",
                "--team",
                "--member",
                "bob",
                "--name",
                "X"
            ])
            .is_err()
        );
    }
}
