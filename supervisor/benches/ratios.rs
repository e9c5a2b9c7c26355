//! The supervisor against the physical baseline of the same work, in one run on one machine,
//! each pair interleaved so that other load hits both alike:
//!
//! - `supervisor --version` against `/bin/true`: the cost of starting the binary;
//! - `supervisor run` of `/bin/true` with 20 team secrets (the run record, the audit entries,
//!   the private HOME, the synced injection record and the agent's containment all made)
//!   against `env -i` with the same 20 variables, in local mode and through a daemon
//!   (`[server] control_socket`, as on a host where `supervisor serve` holds the store);
//! - the same run against `secretspec run` with an age file holding the same 20 values, when
//!   `secretspec` (built with `--features cli,age`) and `age-keygen` are installed (say so when
//!   not);
//! - an agent printing 200 MiB of log lines with 100 secrets in scope, read through a pipe,
//!   against `cat FILE | cat`.
//!
//! Under each start-up ratio, the CPU time and page faults of each side (with the processes
//! it waited for): where the time goes beyond the code's own work.
//!
//! Run with `scripts/ratios` (or `cargo bench -p supervisor --bench ratios` after a release
//! build). `RATIOS_PAIRS` sets the pairs per start-up ratio (default 100), `RATIOS_MB` the
//! output size in MiB (default 200), `RATIOS_ROUNDS` the throughput rounds (default 5),
//! `SECRETSPEC_BIN` the `secretspec` to compare with (default: the one on PATH).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::resource::{Usage, UsageWho, getrusage};
use supervisor_tests::{Team, binary};

use common::{Rng, Sink, env_number, log_output, median, ms, time, values};

/// Secrets a run receives in the start-up ratios.
const SECRETS: usize = 20;

fn main() {
    let pairs = env_number("RATIOS_PAIRS", 100);
    let mib = env_number("RATIOS_MB", 200);
    let rounds = env_number("RATIOS_ROUNDS", 5);
    println!("binary: {}", binary().display());
    println!("{pairs} interleaved pairs per start-up ratio; medians\n");
    println!(
        "{:<44} {:>12} {:>12} {:>8} {:>6}",
        "", "supervisor", "baseline", "ratio", "aim"
    );

    let mut version = Command::new(binary());
    version.arg("--version");
    let (s, b) = pair(pairs, version, Command::new("/bin/true"));
    cost_row("--version  vs  /bin/true", &s, &b, 1.5);

    let team = Team::new(AGENTS);
    let values: Vec<String> = (1..=SECRETS).map(token).collect();
    for (i, v) in values.iter().enumerate() {
        team.secret(&["--team"], &format!("A{}", i + 1), v);
    }
    let mut env = Command::new("/usr/bin/env");
    env.arg("-i");
    for (i, v) in values.iter().enumerate() {
        env.arg(format!("A{}={v}", i + 1));
    }
    env.arg("/bin/true");
    let (s, b) = pair(pairs, team.command(&["run", "truth"]), copy(&env));
    cost_row("run (20 secrets)  vs  env -i", &s, &b, 2.0);

    let secretspec = secretspec(&team, &values);
    let versus_secretspec = |what: &str, ours: Command| match &secretspec {
        Ok(cmd) => {
            let (s, b) = pair(pairs, ours, copy(cmd));
            cost_row(what, &s, &b, 1.0);
        }
        Err(why) => println!("{what:<44} not measured: {why}"),
    };
    versus_secretspec(
        "run (20 secrets)  vs  secretspec run (age)",
        team.command(&["run", "truth"]),
    );

    // The same run as a member's `supervisor run` on a host with a daemon.
    let served = Team::new(&format!("{AGENTS}{SERVED}"));
    let daemon = served.serve();
    for (i, v) in values.iter().enumerate() {
        served.secret(&["--team"], &format!("A{}", i + 1), v);
    }
    let (s, b) = pair(pairs, served.command(&["run", "truth"]), env);
    cost_row("run through the daemon  vs  env -i", &s, &b, 2.0);
    println!("{DAEMON_NOT_COUNTED}");
    versus_secretspec(
        "run through the daemon  vs  secretspec run",
        served.command(&["run", "truth"]),
    );
    if secretspec.is_ok() {
        println!("{DAEMON_NOT_COUNTED}");
    }
    drop(daemon);

    throughput(mib, rounds);
}

/// Under the CPU and faults of a run through the daemon.
const DAEMON_NOT_COUNTED: &str =
    "    (not counted: the daemon's share, as it is not this process's child)";

/// The agent of the start-up ratios.
const AGENTS: &str = r#"
[[agents]]
name = "truth"
command = ["/bin/true"]
timeout = "10s"
triggers = ["cli"]
"#;

/// The daemon of the served team: its control socket in the team's directory.
const SERVED: &str = r#"
[server]
listen = "127.0.0.1:0"
control_socket = "control.sock"
"#;

/// A value shaped like an API token, distinct per secret.
fn token(i: usize) -> String {
    format!("tok_{i:02}_Q7vX2mR9tL4wK8zN3cH6dF1sJ5bY0eU2aP8o")
}

/// What runs of a command cost, as medians: wall time, and from the
/// kernel's account of the command and the processes it waited for, CPU
/// time and page faults (each a page of the binary or of memory mapped in,
/// paid for again when the process exits).
struct Cost {
    wall: Duration,
    cpu: Duration,
    faults: i64,
}

/// The costs of `n` interleaved runs of each command (after a few to warm up).
fn pair(n: usize, mut a: Command, mut b: Command) -> (Cost, Cost) {
    for _ in 0..5 {
        cost_of(&mut a);
        cost_of(&mut b);
    }
    let (mut ca, mut cb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        ca.push(cost_of(&mut a));
        cb.push(cost_of(&mut b));
    }
    (medians(ca), medians(cb))
}

fn medians(costs: Vec<Cost>) -> Cost {
    let mut wall: Vec<Duration> = costs.iter().map(|c| c.wall).collect();
    let mut cpu: Vec<Duration> = costs.iter().map(|c| c.cpu).collect();
    let mut faults: Vec<i64> = costs.iter().map(|c| c.faults).collect();
    faults.sort_unstable();
    Cost {
        wall: median(&mut wall),
        cpu: median(&mut cpu),
        faults: faults[faults.len() / 2],
    }
}

/// One run: its wall time, and the growth of this process's account of
/// its waited-for children over it.
fn cost_of(cmd: &mut Command) -> Cost {
    let before = children();
    let wall = time(copy(cmd), Sink::Null, false).0;
    let after = children();
    let cpu = |u: &Usage| {
        let t = u.user_time() + u.system_time();
        Duration::from_micros((t.tv_sec() * 1_000_000 + t.tv_usec()) as u64)
    };
    Cost {
        wall,
        cpu: cpu(&after).saturating_sub(cpu(&before)),
        faults: after.minor_page_faults() - before.minor_page_faults(),
    }
}

fn children() -> Usage {
    getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage")
}

/// Another command like `cmd` (program, arguments, environment, working directory).
fn copy(cmd: &Command) -> Command {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        c.current_dir(dir);
    }
    c
}

fn row(what: &str, ours: Duration, base: Duration, aim: f64) {
    let ratio = ours.as_secs_f64() / base.as_secs_f64();
    println!(
        "{what:<44} {:>12} {:>12} {ratio:>7.2}x {aim:>5.1}x{}",
        ms(ours),
        ms(base),
        if ratio <= aim { "" } else { "  (over the aim)" }
    );
}

/// A start-up ratio's row, then what each side cost the machine.
fn cost_row(what: &str, ours: &Cost, base: &Cost, aim: f64) {
    row(what, ours.wall, base.wall, aim);
    println!(
        "{:<44} {:>12} {:>12}\n{:<44} {:>12} {:>12}",
        "    CPU, with what it waited for",
        ms(ours.cpu),
        ms(base.cpu),
        "    page faults",
        ours.faults,
        base.faults
    );
}

/// `secretspec run -- /bin/true` with the same values in an age file, ready to time.
fn secretspec(team: &Team, values: &[String]) -> Result<Command, String> {
    let bin = std::env::var_os("SECRETSPEC_BIN")
        .map(PathBuf::from)
        .or_else(|| on_path("secretspec"))
        .ok_or("no `secretspec` on PATH (cargo install --locked secretspec --no-default-features --features cli,age)")?;
    let keygen = on_path("age-keygen").ok_or("no `age-keygen` on PATH (the `age` package)")?;
    let dir = team.path().join("secretspec");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let identity = dir.join("identity.txt");
    run_ok(Command::new(keygen).arg("-o").arg(&identity))?;
    let mut manifest =
        String::from("[project]\nname = \"bench\"\nrevision = \"1.0\"\n\n[profiles.default]\n");
    for i in 1..=values.len() {
        manifest.push_str(&format!(
            "A{i} = {{ description = \"secret {i}\", required = true }}\n"
        ));
    }
    std::fs::write(dir.join("secretspec.toml"), manifest).map_err(|e| e.to_string())?;
    let provider = format!(
        "age://{}?identity={}",
        dir.join("secrets.age").display(),
        identity.display()
    );
    let secretspec = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.current_dir(&dir).args(args).env("HOME", &dir);
        c
    };
    for (i, v) in values.iter().enumerate() {
        let name = format!("A{}", i + 1);
        run_ok(&mut secretspec(&["set", &name, v, "--provider", &provider]))?;
    }
    let cmd = secretspec(&["run", "--provider", &provider, "--", "/bin/true"]);
    run_ok(&mut copy(&cmd))?;
    Ok(cmd)
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// An agent printing `mib` MiB of log lines with 100 secrets in scope, through a pipe,
/// against `cat FILE | cat`.
fn throughput(mib: usize, rounds: usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let values = values(&mut rng);
    let (output, _) = log_output(&mut rng, mib << 20, &values);
    let team = Team::new(
        "[[agents]]\nname = \"printer\"\ncommand = [\"/bin/cat\", \"output.txt\"]\n\
         working_dir = \".\"\ntimeout = \"10m\"\ntriggers = [\"cli\"]\n",
    );
    let file = team.path().join("output.txt");
    std::fs::write(&file, &output).expect("write the output file");
    let size = output.len() as f64;
    drop(output);
    for (i, v) in values.iter().enumerate() {
        team.secret(&["--team"], &format!("SECRET_{i:03}"), v);
    }
    let cat = || {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "cat \"$1\" | cat", "sh"]).arg(&file);
        c
    };
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    time(team.command(&["run", "printer"]), Sink::Pipe, false);
    for _ in 0..rounds {
        base.push(time(cat(), Sink::Pipe, false).0);
        ours.push(time(team.command(&["run", "printer"]), Sink::Pipe, false).0);
    }
    let (ours, base) = (median(&mut ours), median(&mut base));
    println!(
        "\n{mib} MiB of output, {} secrets in scope, {rounds} rounds, read through a pipe; medians",
        values.len()
    );
    row("run (redacting)  vs  cat FILE | cat", ours, base, 1.2);
    println!(
        "{:<44} {:>9.0} MB/s (aim: at least 1000)",
        "redacted end to end",
        size / ours.as_secs_f64() / 1e6
    );
}
