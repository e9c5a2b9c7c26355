//! The store with 10,000 secrets, timed as people use it: by starting the
//! real release binary, as a shell would, and waiting for it.
//!
//! Each command runs N times (default 30; `cargo bench -p supervisor --bench
//! store -- 100` for more; add `--keep` to keep the filled team for a
//! profiler). Reported per command: median and p95 wall time,
//! and median and p95 process time (user + system CPU of the child, from
//! `getrusage(RUSAGE_CHILDREN)`). Starting `/bin/true` the same way is the
//! baseline: what a process start costs on this machine.
//!
//! The aim: `secret list --json` over 10,000 secrets in under 50 ms of
//! process time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use secrecy::SecretString;
use supervisor_config::SecretName;
use supervisor_store::{MasterKey, Scope, Store};

const SECRETS: usize = 10_000;
/// Of those, this many are the acting member's personal secrets; the rest
/// are team secrets, so that a plain `secret list` shows all of them.
const PERSONAL: usize = 500;
/// The aim for `secret list --json`, in process time.
const AIM: Duration = Duration::from_millis(50);

fn main() {
    // `cargo bench` passes `--bench`; a number is the run count, and `--keep`
    // leaves the filled team in place (its path is printed) for profiling.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(30);
    let keep = args.iter().any(|a| a == "--keep");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_supervisor"));
    let dir = tempfile::Builder::new()
        .prefix("supervisor-bench-")
        .tempdir()
        .expect("temp dir");
    let config = write_config(dir.path());

    let started = Instant::now();
    fill(&bin, &config, &dir.path().join("state"));
    let fill_time = started.elapsed();

    let sv = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--config").arg(&config).args(args);
        c.env_remove("SUPERVISOR_CONFIG")
            .env_remove("CREDENTIALS_DIRECTORY");
        c
    };
    // Check the setup before timing it.
    let listed = sv(&["secret", "list", "--json"]).output().expect("list");
    assert!(listed.status.success(), "secret list failed");
    let count = serde_json::from_slice::<serde_json::Value>(&listed.stdout)
        .expect("list --json prints JSON")
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(count, SECRETS, "secret list --json shows every secret");

    let mut rows = vec![
        (
            "/bin/true",
            measure(runs, |_| (Command::new("/bin/true"), None)),
        ),
        (
            "secret list --json",
            measure(runs, |_| (sv(&["secret", "list", "--json"]), None)),
        ),
        (
            "secret list",
            measure(runs, |_| (sv(&["secret", "list"]), None)),
        ),
        (
            "secret list --all --json",
            measure(runs, |_| (sv(&["secret", "list", "--all", "--json"]), None)),
        ),
    ];
    rows.push((
        "secret create (1 more)",
        measure(runs, |i| {
            let name = format!("BENCH_NEW_{i}");
            let cmd = sv(&["secret", "create", "--team", "--name", &name]);
            (cmd, Some(format!("bench-value-{i:08}")))
        }),
    ));

    println!();
    println!(
        "store benchmark: {SECRETS} secrets ({PERSONAL} personal), {runs} runs per command, filled in {:.1} s",
        fill_time.as_secs_f64()
    );
    println!("binary: {}", bin.display());
    println!();
    println!(
        "{:<26} {:>11} {:>11} {:>11} {:>11} {:>9}",
        "command", "wall med", "wall p95", "cpu med", "cpu p95", "wall/true"
    );
    let baseline = rows[0].1.wall_median();
    for (name, m) in &rows {
        println!(
            "{:<26} {:>11} {:>11} {:>11} {:>11} {:>8.1}x",
            name,
            ms(m.wall_median()),
            ms(m.wall_p95()),
            ms(m.cpu_median()),
            ms(m.cpu_p95()),
            m.wall_median().as_secs_f64() / baseline.as_secs_f64()
        );
    }
    if keep {
        println!("kept the team at {}", dir.keep().display());
    }
    let list = &rows[1].1;
    println!();
    println!(
        "aim: `secret list --json` under {} of process time: {} (median {})",
        ms(AIM),
        if list.cpu_median() < AIM {
            "met"
        } else {
            "MISSED"
        },
        ms(list.cpu_median())
    );
}

/// A config in which the user running the benchmark is admin `alice`.
fn write_config(dir: &Path) -> PathBuf {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .expect("the current user has a name");
    let path = dir.join("supervisor.toml");
    let text = format!(
        "state_dir = \"state\"\n\n[team]\nname = \"acme\"\n\n\
         [[members]]\nname = \"alice\"\nunix_user = \"{user}\"\nadmin = true\n\n\
         [[members]]\nname = \"bob\"\nunix_user = \"bob-nobody\"\n"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Creates the store with the real `init`, then fills it through the store
/// crate: the same code path as `secret create`, without 10,000 process starts.
fn fill(bin: &Path, config: &Path, state: &Path) {
    let init = Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("init")
        .output()
        .expect("run init");
    assert!(init.status.success(), "init failed");
    let key = MasterKey::load(&state.join("master.key"), None).expect("load key");
    let mut store = Store::open(state, Some(&key)).expect("open store");
    let alice = Scope::Personal("alice".into());
    for i in 0..SECRETS {
        let (scope, name) = if i < PERSONAL {
            (&alice, format!("MY_TOKEN_{i:05}"))
        } else {
            (&Scope::Team, format!("SERVICE_{i:05}_API_KEY"))
        };
        let name = SecretName::new(&name).expect("valid name");
        let description = match i % 3 {
            0 => Some("Rotate every 2 weeks; owned by platform team"),
            1 => Some("read-only"),
            _ => None,
        };
        let value = SecretString::from(format!("value-{i:05}-0123456789abcdef"));
        store
            .create_secret(scope, &name, description, &value, "alice")
            .expect("create secret");
    }
}

/// Wall and process times of each run.
struct Measured {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Measured {
    fn wall_median(&self) -> Duration {
        quantile(&self.wall, 0.5)
    }
    fn wall_p95(&self) -> Duration {
        quantile(&self.wall, 0.95)
    }
    fn cpu_median(&self) -> Duration {
        quantile(&self.cpu, 0.5)
    }
    fn cpu_p95(&self) -> Duration {
        quantile(&self.cpu, 0.95)
    }
}

/// Runs the command `make(i)` gives `runs` times (after one unmeasured
/// warm-up), feeding it the optional stdin and reading all its output.
fn measure(runs: usize, mut make: impl FnMut(usize) -> (Command, Option<String>)) -> Measured {
    let mut m = Measured {
        wall: Vec::with_capacity(runs),
        cpu: Vec::with_capacity(runs),
    };
    for i in 0..=runs {
        let (mut cmd, input) = make(i);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let cpu_before = children_cpu();
        let start = Instant::now();
        let mut child = cmd.spawn().expect("start the command");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(input) = input {
            stdin.write_all(input.as_bytes()).expect("write stdin");
        }
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        let wall = start.elapsed();
        let cpu = children_cpu() - cpu_before;
        assert!(
            out.status.success(),
            "the command failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if i > 0 {
            m.wall.push(wall);
            m.cpu.push(cpu);
        }
    }
    m
}

/// User + system CPU time of every waited-for child so far.
fn children_cpu() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
