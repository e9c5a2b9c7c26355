//! End-to-end throughput of `supervisor run` of an agent that prints a large file (`/bin/cat`
//! of about 200 MB of log lines, a secret on one line in 2,000) with 100 team secrets in scope,
//! against `cat FILE | cat`, the same bytes through one more pipe and no supervisor. The two
//! are run interleaved, so that other load on the machine hits both alike.
//!
//! Each is measured with its standard output read by this process through a pipe, as a
//! terminal or a log collector reads it ("pipe"), and with it sent to `/dev/null` ("null",
//! where the `cat | cat` pipeline does the least work it can). The supervisor runs the agent
//! twice: as configured by default (the run log keeps the first 10 MiB), and with `log_limit`
//! raised above the output's size, so that it also writes all 200 MB to the log, which
//! `cat | cat` does not. The first run's output and log are checked against the in-process
//! redactor's output of the same bytes.
//!
//! Run with `cargo bench -p supervisor --bench throughput` (or `scripts/bench throughput`);
//! `THROUGHPUT_BENCH_MB` sets the size in MiB (default 200), `THROUGHPUT_BENCH_N` the number
//! of interleaved rounds (default 5), `SUPERVISOR_BIN` another binary to time.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use supervisor::redact::Redactor;
use supervisor_tests::{Team, binary};

use common::{Rng, Sink, env_number, log_output, time, values};

fn main() {
    let mib = env_number("THROUGHPUT_BENCH_MB", 200);
    let rounds = env_number("THROUGHPUT_BENCH_N", 5);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let values = values(&mut rng);
    let (output, planted) = log_output(&mut rng, mib << 20, &values);

    let agent = |name: &str, extra: &str| {
        format!(
            "[[agents]]\nname = \"{name}\"\ncommand = [\"/bin/cat\", \"output.txt\"]\n\
             working_dir = \".\"\ntimeout = \"10m\"\ntriggers = [\"cli\"]\n{extra}\n"
        )
    };
    let team = Team::new(&format!(
        "{}{}",
        agent("printer", ""),
        agent("logged", "log_limit = \"4 GiB\"")
    ));
    let file = team.path().join("output.txt");
    std::fs::write(&file, &output).expect("write the output file");
    for (i, v) in values.iter().enumerate() {
        team.secret(&["--team"], &format!("SECRET_{i:03}"), v);
    }
    let secrets: Vec<(String, SecretString)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("SECRET_{i:03}"), SecretString::from(v.as_str())))
        .collect();
    let redactor = Arc::new(Redactor::new(secrets.iter().map(|(n, v)| (n.as_str(), v))));
    let (expected, replaced) = redactor.redact_all(&output);
    assert_eq!(replaced, planted, "every planted secret is found");
    drop(output);

    let cat = || {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", "cat \"$1\" | cat", "sh"]).arg(&file);
        c
    };
    let sup = || team.command(&["run", "printer"]);
    let logged = || team.command(&["run", "logged"]);

    // The first supervisor run is checked whole: terminal output and log.
    let (_, shown) = time(logged(), Sink::Pipe, true);
    assert!(
        shown == expected,
        "the run printed what the redactor makes of the file"
    );
    let record = team.last_run();
    let log = team
        .state_dir()
        .join("runs")
        .join(format!("{}.log", record["id"].as_str().expect("run id")));
    assert!(
        std::fs::read(&log).expect("read the run log") == expected,
        "the run log holds the redacted output"
    );
    drop(shown);

    let mut times: [Vec<Duration>; 6] = Default::default();
    for _ in 0..rounds {
        times[0].push(time(cat(), Sink::Pipe, false).0);
        times[1].push(time(sup(), Sink::Pipe, false).0);
        times[2].push(time(logged(), Sink::Pipe, false).0);
        clear_logs(&team.state_dir().join("runs"));
        times[3].push(time(cat(), Sink::Null, false).0);
        times[4].push(time(sup(), Sink::Null, false).0);
        times[5].push(time(logged(), Sink::Null, false).0);
        clear_logs(&team.state_dir().join("runs"));
    }

    println!(
        "{mib} MiB of log output ({} bytes), {} secrets in scope, {replaced} printed; {rounds} rounds, interleaved",
        file.metadata().map(|m| m.len()).unwrap_or(0),
        values.len(),
    );
    println!("binary: {}", binary().display());
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "", "best", "median", "MB/s best"
    );
    let names = [
        "cat FILE | cat                > pipe",
        "supervisor run                > pipe",
        "supervisor run, whole log     > pipe",
        "cat FILE | cat                > null",
        "supervisor run                > null",
        "supervisor run, whole log     > null",
    ];
    let size = expected.len() as f64;
    let mut stats = Vec::new();
    for (name, t) in names.iter().zip(&mut times) {
        t.sort();
        let (best, median) = (t[0], t[t.len() / 2]);
        stats.push((best, median));
        println!(
            "{name:<40} {:>10} {:>10} {:>10.0}",
            ms1(best),
            ms1(median),
            size / best.as_secs_f64() / 1e6
        );
    }
    for (what, (c, s)) in [
        ("pipe", (0, 1)),
        ("pipe, whole log", (0, 2)),
        ("null", (3, 4)),
        ("null, whole log", (3, 5)),
    ] {
        println!(
            "supervisor / cat | cat, {what}: best {:.2}x, median {:.2}x",
            stats[s].0.as_secs_f64() / stats[c].0.as_secs_f64(),
            stats[s].1.as_secs_f64() / stats[c].1.as_secs_f64(),
        );
    }
}

/// Removes the run logs, so that the page cache holds the same as before each round.
fn clear_logs(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
}

fn ms1(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
