//! Wall time of `supervisor run` of an agent `/bin/true` with 20 team secrets, against the
//! physical baseline of the same work without a supervisor: `env -i A1=... A20=... /bin/true`.
//! Both are spawned the same way from here, interleaved, so that drift hits both alike.
//!
//! Reported: median and p95 of wall time and of CPU time (user + system of the whole process
//! tree). Other load on the machine shows in the wall times more than in the CPU times.
//!
//! Run with `cargo bench -p supervisor --bench run` (or `scripts/bench run`); `RUN_BENCH_N` sets
//! the number of iterations (default 200), `SUPERVISOR_BIN` another binary to time.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

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
    let mut base = Samples::default();
    let mut sup = Samples::default();
    for _ in 0..n {
        base.push(time(&mut baseline));
        sup.push(time(&mut run));
    }

    println!("{n} iterations each, interleaved, {SECRETS} team secrets");
    println!("binary: {}", bin.display());
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}",
        "", "wall med", "wall p95", "cpu med", "cpu p95"
    );
    for (name, s) in [
        ("env -i A1..A20 /bin/true", &mut base),
        ("supervisor run (/bin/true)", &mut sup),
    ] {
        let (wall, cpu) = s.stats();
        println!(
            "{name:<28} {:>10} {:>10} {:>10} {:>10}",
            ms(wall.0),
            ms(wall.1),
            ms(cpu.0),
            ms(cpu.1)
        );
    }
    let ((bw, _), (bc, _)) = base.stats();
    let ((sw, _), (sc, _)) = sup.stats();
    println!(
        "supervisor / baseline, medians: wall {:.2}x, cpu {:.2}x (aim: within 3x)",
        sw.as_secs_f64() / bw.as_secs_f64(),
        sc.as_secs_f64() / bc.as_secs_f64()
    );
}

/// Wall and CPU (user + system, the process and what it waited for) times.
#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Samples {
    fn push(&mut self, (wall, cpu): (Duration, Duration)) {
        self.wall.push(wall);
        self.cpu.push(cpu);
    }

    /// (median, p95) of wall, then of CPU time.
    fn stats(&mut self) -> ((Duration, Duration), (Duration, Duration)) {
        (quantiles(&mut self.wall), quantiles(&mut self.cpu))
    }
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

/// The `supervisor` binary cargo built for this bench (the release one), or `SUPERVISOR_BIN`.
fn binary() -> PathBuf {
    std::env::var_os("SUPERVISOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_supervisor")))
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

/// Wall and CPU time of one run of `cmd`, start to reaped, output discarded.
fn time(cmd: &mut Command) -> (Duration, Duration) {
    let cpu_before = children_cpu();
    let start = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    let wall = start.elapsed();
    assert!(status.success(), "{status}");
    (wall, children_cpu() - cpu_before)
}

/// User + system CPU time of every child waited for so far, theirs included.
fn children_cpu() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

/// Median and 95th percentile.
fn quantiles(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}
