//! Wall time of `supervisor run` of an agent `/bin/true` with 20 team secrets, against the
//! physical baseline of the same work without a supervisor: `env -i A1=... A20=... /bin/true`.
//! Both are spawned the same way from here, interleaved, so that drift hits both alike.
//!
//! Needs the release binary (`cargo build --release -p supervisor`, as `scripts/bench` does),
//! or `SUPERVISOR_BIN`. Run with `cargo bench -p supervisor --bench run`; `RUN_BENCH_N` sets
//! the number of iterations (default 200).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRETS: usize = 20;
const WARMUP: usize = 10;

fn main() {
    let n: usize = std::env::var("RUN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let bin = binary();
    let dir = tempfile::Builder::new()
        .prefix("supervisor-bench-")
        .tempdir()
        .expect("temp dir");
    let config = dir.path().join("supervisor.toml");
    std::fs::write(&config, config_text()).expect("write config");

    let supervisor = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(dir.path())
            .env_remove("SUPERVISOR_CONFIG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("STATE_DIRECTORY");
        c
    };
    check(supervisor(&["init"]).stdout(Stdio::null()), b"");
    let values: Vec<String> = (1..=SECRETS).map(value).collect();
    for (i, v) in values.iter().enumerate() {
        let name = format!("A{}", i + 1);
        let mut cmd = supervisor(&["secret", "create", "--team", "--name", &name]);
        check(cmd.stdout(Stdio::null()), v.as_bytes());
    }

    let mut baseline = Command::new("/usr/bin/env");
    baseline.arg("-i");
    for (i, v) in values.iter().enumerate() {
        baseline.arg(format!("A{}={v}", i + 1));
    }
    baseline.arg("/bin/true");
    let mut run = supervisor(&["run", "truth"]);

    for _ in 0..WARMUP {
        time(&mut baseline);
        time(&mut run);
    }
    let mut base_times = Vec::with_capacity(n);
    let mut run_times = Vec::with_capacity(n);
    for _ in 0..n {
        base_times.push(time(&mut baseline));
        run_times.push(time(&mut run));
    }

    let (base_med, base_p95) = stats(&mut base_times);
    let (run_med, run_p95) = stats(&mut run_times);
    println!("{n} iterations each, interleaved, {SECRETS} team secrets");
    println!(
        "env -i ... /bin/true:         median {:7.3} ms   p95 {:7.3} ms",
        ms(base_med),
        ms(base_p95)
    );
    println!(
        "supervisor run (/bin/true):   median {:7.3} ms   p95 {:7.3} ms",
        ms(run_med),
        ms(run_p95)
    );
    println!(
        "ratio of medians: {:.2}   ratio of p95s: {:.2}",
        run_med.as_secs_f64() / base_med.as_secs_f64(),
        run_p95.as_secs_f64() / base_p95.as_secs_f64()
    );
}

fn config_text() -> String {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .expect("current user has a name");
    format!(
        r#"state_dir = "state"

[team]
name = "bench"

[[members]]
name = "bencher"
unix_user = "{user}"
admin = true

[[agents]]
name = "truth"
command = ["/bin/true"]
timeout = "10s"
triggers = ["cli"]
"#
    )
}

/// A value shaped like an API token, distinct per secret.
fn value(i: usize) -> String {
    format!("tok_{i:02}_Q7vX2mR9tL4wK8zN3cH6dF1sJ5bY0eU2aP8o")
}

/// The release `supervisor` next to this bench's folder, or `SUPERVISOR_BIN`.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SUPERVISOR_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("bench executable path");
    // target/release/deps/<bench> -> target/release/supervisor
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("bench executable lives in target/<profile>/deps")
        .join("supervisor");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --release -p supervisor` (scripts/bench does)",
        bin.display()
    );
    bin
}

/// Runs `cmd` with `input` on stdin; panics unless it succeeds.
fn check(cmd: &mut Command, input: &[u8]) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start supervisor");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Wall time of one run of `cmd`, start to reaped, output discarded.
fn time(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    let elapsed = start.elapsed();
    assert!(status.success(), "{status}");
    elapsed
}

/// Median and 95th percentile.
fn stats(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
