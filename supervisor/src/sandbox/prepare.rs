//! One run's containment, made in the parent before the spawn: its cgroup (with
//! limits), the namespace plan, the Landlock ruleset, and what the run record
//! says about them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::json;
use supervisor_config::{Agent, Config};

use super::{AgentPlan, Host};
use crate::spawn::Confinement;
use crate::spawn::cgroup::{LimitState, RunCgroup};
use crate::spawn::landlock::{self, Domain};
use crate::spawn::namespace::{NamespacePlan, NamespaceRequest};

/// A run's containment, ready for the spawn.
pub struct Prepared {
    pub confinement: Confinement,
    /// The run's cgroup; whoever holds it removes it at the end.
    pub cgroup: Option<RunCgroup>,
    /// What `detail.containment` of the run record says.
    pub record: serde_json::Value,
}

/// Prepares run `id` of `agent`, whose plan allowed it. On error nothing is left
/// (the cgroup, if made, is removed).
pub fn prepare(
    host: &Host,
    plan: &AgentPlan,
    config: &Config,
    agent: &Agent,
    home: &Path,
    id: &str,
) -> Result<Prepared> {
    let mut limits: Vec<LimitState> = plan.limits.clone();
    let cgroup = match host.cgroups.root() {
        Some(root) => {
            let cg = root
                .create_run(id)
                .with_context(|| format!("creating the run's cgroup in {}", root.path.display()))?;
            limits = cg.apply(root, &agent.policy.limits);
            Some(cg)
        }
        None => None,
    };
    match build(host, plan, config, agent, home, cgroup.as_ref(), &limits) {
        Ok(p) => Ok(Prepared { cgroup, ..p }),
        Err(e) => {
            if let Some(cg) = &cgroup {
                let _ = cg.remove();
            }
            Err(e)
        }
    }
}

fn build(
    host: &Host,
    plan: &AgentPlan,
    config: &Config,
    agent: &Agent,
    home: &Path,
    cgroup: Option<&RunCgroup>,
    limits: &[LimitState],
) -> Result<Prepared> {
    let namespace = match plan.cover {
        true => {
            let user_namespace = host.namespaces.through_user_namespace.then(|| {
                plan.run_as
                    .as_ref()
                    .map_or((host.euid, nix::unistd::getegid().as_raw()), |r| {
                        (r.uid, r.gid)
                    })
            });
            Some(
                NamespacePlan::new(&NamespaceRequest {
                    hidden: &host.hidden,
                    keep: Some(home),
                    isolate_network: plan.network_ns,
                    user_namespace,
                })
                .context("preparing the run's mount namespace")?,
            )
        }
        false => None,
    };
    let ruleset = match plan.landlock {
        None => None,
        Some(false) => Some(landlock::ruleset(&Domain::Base)?),
        Some(true) => {
            let sandbox = &config.sandbox;
            let policy = &agent.policy;
            let mut read: Vec<PathBuf> = sandbox
                .read
                .iter()
                .chain(&policy.read)
                .flatten()
                .cloned()
                .collect();
            // The agent's own program, wherever it lives.
            if let Some(program) = agent.command.first().filter(|p| p.starts_with('/')) {
                read.push(PathBuf::from(program));
            }
            let mut write: Vec<PathBuf> = sandbox
                .write
                .iter()
                .chain(&policy.write)
                .flatten()
                .cloned()
                .collect();
            if let Some(dir) = &agent.working_dir {
                write.push(dir.clone());
            }
            Some(landlock::ruleset(&Domain::Policy {
                home,
                read: &read,
                write: &write,
                hidden: &host.hidden,
            })?)
        }
    };
    let record = json!({
        "user": plan.user,
        "layers": plan.layers(),
        "cgroup": cgroup.map(|c| c.path.display().to_string()),
        "covered_paths": namespace.as_ref().map_or(0, NamespacePlan::covered),
        "limits": limits,
        "unconfined": !plan.contained(),
    });
    Ok(Prepared {
        confinement: Confinement {
            cgroup_procs: cgroup.and_then(RunCgroup::procs_fd),
            namespace,
            landlock: ruleset,
            drop_caps: plan.drop_caps,
        },
        cgroup: None,
        record,
    })
}
