//! The cost of containment per run: starting and ending `/bin/true` through the
//! spawn module as before this work (own session, no core, no_new_privs, death
//! signal: "plain") against the same with each layer a run now gets, and with
//! all of them at once. Variants are interleaved, so drift hits all alike.
//!
//! Each sample is what a run pays: preparing the layer in the parent (cgroup
//! made and its limits written, Landlock ruleset built, namespace plan), the
//! spawn, the wait, and the end (cgroup killed and removed).
//!
//! Run with `cargo bench -p supervisor --bench contain` (or `scripts/bench
//! contain`); `CONTAIN_BENCH_N` sets the iterations (default 300). Layers the
//! host lacks are skipped and said so; the cgroup layer needs root and a
//! writable cgroup v2.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use supervisor::spawn::cgroup::{CgroupRoot, Cgroups};
use supervisor::spawn::landlock::{self, Domain};
use supervisor::spawn::namespace::{self, NamespacePlan, NamespaceRequest};
use supervisor::spawn::{ChildSpec, Confinement, spawn};
use supervisor_config::{CgroupSetting, Limits};

const WARMUP: usize = 20;

#[derive(Clone, Copy, PartialEq)]
enum Layer {
    Plain,
    Landlock,
    Policy,
    Mount,
    Cgroup,
    All,
}

impl Layer {
    fn name(self) -> &'static str {
        match self {
            Layer::Plain => "plain spawn (before)",
            Layer::Landlock => "+ landlock domain",
            Layer::Policy => "+ landlock policy",
            Layer::Mount => "+ mount namespace",
            Layer::Cgroup => "+ cgroup (made, removed)",
            Layer::All => "all layers of a run",
        }
    }
}

struct Setup {
    state: PathBuf,
    home: PathBuf,
    hidden: Vec<PathBuf>,
    cgroup: Option<CgroupRoot>,
    mount: bool,
    landlock: bool,
}

fn main() {
    let n: usize = std::env::var("CONTAIN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().canonicalize().unwrap().join("state");
    let home = state.join("tmp/run");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(state.join("master.key"), "k").unwrap();
    let cg_dir = supervisor_tests::cgroup::TestCgroup::create("bench");
    let cgroup = cg_dir.as_ref().and_then(|d| {
        Cgroups::detect(&CgroupSetting::Root(d.path.clone()), false, true)
            .root()
            .cloned()
    });
    let setup = Setup {
        hidden: vec![state.clone()],
        state,
        home,
        cgroup,
        mount: namespace::probe(false).mount,
        landlock: landlock::abi().is_some(),
    };
    let mut layers = vec![Layer::Plain];
    let mut skipped = Vec::new();
    for (layer, ok) in [
        (Layer::Landlock, setup.landlock),
        (Layer::Policy, setup.landlock),
        (Layer::Mount, setup.mount),
        (Layer::Cgroup, setup.cgroup.is_some()),
    ] {
        if ok {
            layers.push(layer);
        } else {
            skipped.push(layer.name());
        }
    }
    layers.push(Layer::All);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); layers.len()];
    runtime.block_on(async {
        for i in 0..WARMUP + n {
            for (j, layer) in layers.iter().enumerate() {
                let t = one_run(&setup, *layer, i).await;
                if i >= WARMUP {
                    samples[j].push(t);
                }
            }
        }
    });
    println!("{n} runs of /bin/true per variant, interleaved");
    if !skipped.is_empty() {
        println!("skipped (not on this host): {}", skipped.join(", "));
    }
    println!("{:<28} {:>10} {:>10}", "", "median", "p95");
    let mut medians = Vec::new();
    for (layer, s) in layers.iter().zip(&mut samples) {
        s.sort();
        let (med, p95) = (s[s.len() / 2], s[(s.len() - 1) * 95 / 100]);
        medians.push(med);
        println!("{:<28} {:>10} {:>10}", layer.name(), ms(med), ms(p95));
    }
    let all = medians[medians.len() - 1];
    println!(
        "all layers / plain, medians: {:.2}x (+{})",
        all.as_secs_f64() / medians[0].as_secs_f64(),
        ms(all.saturating_sub(medians[0]))
    );
    drop(cg_dir);
}

/// One run of `/bin/true` with `layer`, from preparation to clean-up.
async fn one_run(s: &Setup, layer: Layer, i: usize) -> Duration {
    let started = Instant::now();
    let with = |l: Layer| layer == l || layer == Layer::All;
    let run_cgroup = match (&s.cgroup, with(Layer::Cgroup)) {
        (Some(root), true) => {
            let cg = root.create_run(&format!("bench-{i}")).expect("run cgroup");
            cg.apply(root, &Limits::default());
            Some(cg)
        }
        _ => None,
    };
    let ruleset = if with(Layer::Policy) && s.landlock {
        let read: Vec<PathBuf> = Vec::new();
        Some(
            landlock::ruleset(&Domain::Policy {
                home: &s.home,
                read: &read,
                write: &read,
                hidden: &s.hidden,
            })
            .unwrap(),
        )
    } else if with(Layer::Landlock) && s.landlock {
        Some(landlock::ruleset(&Domain::Base).unwrap())
    } else {
        None
    };
    let namespace = (with(Layer::Mount) && s.mount).then(|| {
        NamespacePlan::new(&NamespaceRequest {
            hidden: &s.hidden,
            keep: Some(&s.home),
            isolate_network: false,
            user_namespace: None,
        })
        .unwrap()
    });
    let confine = Confinement {
        cgroup_procs: run_cgroup.as_ref().and_then(|c| c.procs_fd()),
        namespace,
        landlock: ruleset,
        drop_caps: layer == Layer::All && nix::unistd::geteuid().is_root(),
    };
    let argv = vec!["/bin/true".to_owned()];
    let child = spawn(&ChildSpec {
        argv: &argv,
        env: &[],
        secrets: &[],
        working_dir: Some(Path::new("/")),
        run_as: None,
        confine: Some(&confine),
    })
    .expect("spawn");
    let out = child.wait_with_output().await.expect("wait");
    assert!(
        out.status.success(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(cg) = run_cgroup {
        cg.remove().expect("remove the run cgroup");
    }
    let _ = &s.state;
    started.elapsed()
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}
