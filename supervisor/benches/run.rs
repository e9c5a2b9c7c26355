//! Wall time of `supervisor run` of an agent `/bin/true` with 20 team secrets, in local mode
//! (this process opens the store and spawns the agent) and through the daemon's control socket
//! (the daemon runs it and streams it back), against the physical baseline of the same work
//! without a supervisor: `env -i A1=... A20=... /bin/true`. All three are spawned the same way
//! from here, interleaved, so that drift hits them alike.
//!
//! Reported: median and p95 of wall time and of CPU time (user + system of the whole process
//! tree). Other load on the machine shows in the wall times more than in the CPU times.
//!
//! Run with `cargo bench -p supervisor --bench run` (or `scripts/bench run`); `RUN_BENCH_N` sets
//! the number of iterations (default 200), `SUPERVISOR_BIN` another binary to time.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use supervisor_tests::{Team, binary, server_section};

const SECRETS: usize = 20;
const WARMUP: usize = 10;

fn main() {
    let n: usize = std::env::var("RUN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let bin = binary();
    let team = Team::new(&format!(
        "{AGENT}\n{}",
        server_section("control_socket = \"control.sock\"")
    ));
    let values: Vec<String> = (1..=SECRETS).map(value).collect();
    for (i, v) in values.iter().enumerate() {
        team.secret(&["--team", "--local"], &format!("A{}", i + 1), v);
    }
    let daemon = team.serve();

    let mut baseline = Command::new("/usr/bin/env");
    baseline.arg("-i");
    for (i, v) in values.iter().enumerate() {
        baseline.arg(format!("A{}={v}", i + 1));
    }
    baseline.arg("/bin/true");
    let mut local = team.command(&["--local", "run", "truth"]);
    let mut socket = team.command(&["run", "truth"]);

    for _ in 0..WARMUP {
        time(&mut baseline);
        time(&mut local);
        time(&mut socket);
    }
    let mut base = Samples::default();
    let mut sup = Samples::default();
    let mut via = Samples::default();
    let daemon_before = process_cpu(daemon.pid());
    for _ in 0..n {
        base.push(time(&mut baseline));
        sup.push(time(&mut local));
        via.push(time(&mut socket));
    }

    let daemon_cpu = (process_cpu(daemon.pid()) - daemon_before) / n as u32;
    println!("{n} iterations each, interleaved, {SECRETS} team secrets");
    println!("cpu: of the processes started here; the daemon's share of a socket run is not in it");
    println!("binary: {}", bin.display());
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}",
        "", "wall med", "wall p95", "cpu med", "cpu p95"
    );
    for (name, s) in [
        ("env -i A1..A20 /bin/true", &mut base),
        ("supervisor run --local", &mut sup),
        ("supervisor run (socket)", &mut via),
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
    let ((vw, _), _) = via.stats();
    println!(
        "local / baseline, medians: wall {:.2}x, cpu {:.2}x (aim: within 3x)",
        sw.as_secs_f64() / bw.as_secs_f64(),
        sc.as_secs_f64() / bc.as_secs_f64()
    );
    println!(
        "socket / local, medians: wall {:.2}x ({:+.3} ms)",
        vw.as_secs_f64() / sw.as_secs_f64(),
        (vw.as_secs_f64() - sw.as_secs_f64()) * 1e3
    );
    println!(
        "daemon cpu per socket run (mean over the loop, agents included): {}",
        ms(daemon_cpu)
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

/// The agent timed: it does nothing.
const AGENT: &str = r#"
[[agents]]
name = "truth"
command = ["/bin/true"]
timeout = "10s"
triggers = ["cli"]
"#;

/// A value shaped like an API token, distinct per secret.
fn value(i: usize) -> String {
    format!("tok_{i:02}_Q7vX2mR9tL4wK8zN3cH6dF1sJ5bY0eU2aP8o")
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

/// User + system CPU time of a running process and its reaped children, from
/// /proc (in clock ticks of 10 ms: only a mean over many runs means much).
fn process_cpu(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the daemon's stat");
    let fields: Vec<u64> = stat[stat.rfind(')').expect("comm") + 2..]
        .split(' ')
        .skip(11) // utime is field 14: the 12th after the state
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks: u64 = fields.iter().sum();
    Duration::from_millis(ticks * 10)
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
