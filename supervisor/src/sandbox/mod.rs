//! Containment decisions: what this host offers ([`Host`], probed once at
//! start), what an agent must never reach ([`hidden_paths`]), and for each
//! agent which layers keep it there ([`plan`]) or why it is refused.
//!
//! Invariant: an agent runs only when something keeps it from the key and the
//! store: another uid than the key holder's, or a Landlock domain together with
//! a mount namespace that covers them (or a Landlock policy that leaves them
//! out); otherwise it is refused, unless its config says `allow_unconfined`.

mod prepare;

use std::path::{Path, PathBuf};

use serde_json::json;
use supervisor_config::{Agent, Config, SecretRef};

use crate::spawn::RunAs;
use crate::spawn::cgroup::{Cgroups, LimitState, limits_without};
use crate::spawn::namespace::{self, NamespaceSupport};

pub use prepare::{Prepared, prepare};

/// Who probes the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `serve`: the only one that takes a cgroup systemd delegated to it (it
    /// moves itself into a leaf of it).
    Daemon,
    /// `supervisor run`: a configured cgroup root only.
    Run,
    /// `config check`: looks, moves nothing.
    Check,
}

/// What this host and this process offer for containing agents.
#[derive(Debug, Clone)]
pub struct Host {
    pub cgroups: Cgroups,
    /// Landlock ABI version, `None` without Landlock.
    pub landlock: Option<i32>,
    pub namespaces: NamespaceSupport,
    /// The key holder: this process's effective uid.
    pub euid: u32,
    /// Whether this process may start agents as other users.
    pub can_switch_users: bool,
    /// Canonical paths no agent may reach ([`hidden_paths`]).
    pub hidden: Vec<PathBuf>,
    /// This process adopts its runs' orphans (the CLI without cgroups).
    pub adopts_orphans: bool,
}

impl Host {
    /// Probes the host. Called once per process, before any run.
    pub fn probe(config: &Config, state_dir: &Path, key_file: &Path, role: Role) -> Host {
        let daemon = role == Role::Daemon;
        // `supervisor run` tries a network namespace only when an agent needs one.
        let network = role != Role::Run || config.agents.iter().any(|a| !a.policy.network);
        let euid = nix::unistd::geteuid().as_raw();
        Host {
            cgroups: Cgroups::detect(
                &config.sandbox.cgroup,
                daemon,
                config.agents.iter().any(|a| !a.policy.limits.is_empty()),
            ),
            landlock: crate::spawn::landlock::abi(),
            namespaces: namespace::probe(network),
            euid,
            can_switch_users: euid == 0 || has_cap_setuid(),
            hidden: hidden_paths(config, state_dir, key_file),
            adopts_orphans: false,
        }
    }

    /// A host nothing was asked of, for commands that plan runs without starting
    /// any (`scope`, `run --dry-run`).
    pub fn inert() -> Host {
        Host {
            cgroups: Cgroups::Unavailable("not probed".into()),
            landlock: None,
            namespaces: NamespaceSupport::default(),
            euid: nix::unistd::geteuid().as_raw(),
            can_switch_users: false,
            hidden: Vec::new(),
            adopts_orphans: false,
        }
    }

    /// The same host with the hidden paths of a reloaded config.
    pub fn reloaded(&self, config: &Config, state_dir: &Path, key_file: &Path) -> Host {
        Host {
            hidden: hidden_paths(config, state_dir, key_file),
            ..self.clone()
        }
    }

    /// One line per fact, for `config check` and the daemon's log.
    pub fn lines(&self) -> Vec<String> {
        let cgroup = match &self.cgroups {
            Cgroups::Ready(r) => format!(
                "cgroup    {} ({}); controllers: {}",
                r.path.display(),
                if r.delegated {
                    "delegated by systemd"
                } else {
                    "configured"
                },
                if r.controllers.is_empty() {
                    "none".to_owned()
                } else {
                    r.controllers.join(", ")
                }
            ),
            Cgroups::Unavailable(why) => format!(
                "cgroup    none: {why}. Runs are tracked by process group{}; a process that leaves it can outlive its run, and no limit applies",
                if self.adopts_orphans {
                    " and orphans adopted by this process"
                } else {
                    ""
                }
            ),
        };
        let landlock = match self.landlock {
            Some(v) => format!("landlock  ABI {v}"),
            None => "landlock  none: agents are not kept from other processes of their user, and policies cannot be enforced".to_owned(),
        };
        let ns = &self.namespaces;
        let namespaces = format!(
            "namespaces mount: {}, network: {}{}",
            yes_no(ns.mount),
            yes_no(ns.network),
            if ns.through_user_namespace {
                " (through a user namespace)"
            } else {
                ""
            }
        );
        vec![cgroup, landlock, namespaces]
    }

    /// The same facts as JSON, for `/healthz`.
    pub fn json(&self) -> serde_json::Value {
        let cgroup = match &self.cgroups {
            Cgroups::Ready(r) => json!({
                "mode": if r.delegated { "delegated" } else { "configured" },
                "path": r.path,
                "controllers": r.controllers,
            }),
            Cgroups::Unavailable(why) => json!({ "mode": "none", "reason": why }),
        };
        json!({
            "cgroup": cgroup,
            "landlock_abi": self.landlock,
            "namespaces": { "mount": self.namespaces.mount, "network": self.namespaces.network },
        })
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Whether this thread holds `CAP_SETUID` in its effective set (systemd's
/// `AmbientCapabilities=` gives it to a service that runs as its own user).
fn has_cap_setuid() -> bool {
    const CAP_SETUID: u32 = 7;
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SETUID) != 0)
}

/// Everything an agent must never reach, in either mode and whatever uid it runs
/// as: the state directory (store, WAL, run logs, other runs' homes), the key
/// file, systemd's credentials directory, the supervisor's own credential
/// files and the control socket (once bound). Canonical, existing paths only.
/// One more path is one more line here.
pub fn hidden_paths(config: &Config, state_dir: &Path, key_file: &Path) -> Vec<PathBuf> {
    let mut paths = vec![state_dir.to_path_buf(), key_file.to_path_buf()];
    paths.extend(crate::daemon::control::socket_path(
        config.server.control_socket.as_deref(),
    ));
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        paths.push(PathBuf::from(dir));
    }
    let mut refs: Vec<&SecretRef> = config.webhooks.iter().map(|w| &w.secret).collect();
    if let Some(s) = &config.slack {
        refs.extend([&s.signing_secret, &s.bot_token]);
    }
    if let Some(l) = &config.linear {
        refs.extend([&l.webhook_secret, &l.api_key]);
    }
    paths.extend(refs.into_iter().filter_map(|r| match r {
        SecretRef::File(p) => Some(p.clone()),
        _ => None,
    }));
    let mut out: Vec<PathBuf> = paths
        .into_iter()
        .filter_map(|p| std::path::absolute(&p).ok()?.canonicalize().ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// How an agent's runs are contained on this host.
#[derive(Debug, Clone)]
pub struct AgentPlan {
    /// The account it runs as, when not the supervisor's own.
    pub run_as: Option<RunAs>,
    pub user: Option<String>,
    /// Its uid differs from the key holder's.
    pub other_uid: bool,
    /// A mount namespace covers the hidden paths.
    pub cover: bool,
    /// A network namespace with only loopback.
    pub network_ns: bool,
    /// `None`: no Landlock; `Some(false)`: a domain without a policy;
    /// `Some(true)`: its policy.
    pub landlock: Option<bool>,
    /// It runs as root: every capability and the bounding set are emptied.
    pub drop_caps: bool,
    pub limits: Vec<LimitState>,
    /// Why its runs are refused on this host (also by `config check` and `serve`).
    pub refusal: Option<String>,
    /// Why its runs are refused for now: its account does not exist (yet).
    /// `config check` and `serve` only warn, since accounts come and go.
    pub unavailable: Option<String>,
    pub warnings: Vec<String>,
}

impl AgentPlan {
    /// Whether something keeps it from the key and the store (see the module's
    /// invariant).
    pub fn contained(&self) -> bool {
        self.other_uid || (self.landlock.is_some() && (self.cover || self.landlock == Some(true)))
    }

    /// The layers in force, for the run record and `config check`.
    pub fn layers(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.other_uid {
            out.push("another user");
        }
        if self.cover {
            out.push("mount namespace");
        }
        if self.network_ns {
            out.push("network namespace");
        }
        match self.landlock {
            Some(true) => out.push("landlock policy"),
            Some(false) => out.push("landlock domain"),
            None => {}
        }
        if self.drop_caps {
            out.push("no capabilities");
        }
        out
    }
}

/// Decides how `agent` is contained here, or why it is refused.
pub fn plan(agent: &Agent, config: &Config, host: &Host) -> AgentPlan {
    let sandbox = &config.sandbox;
    let name = &agent.name;
    let mut warnings = Vec::new();
    let mut refusals = Vec::new();
    let user = match (&agent.user, &sandbox.agent_user) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(u)) if host.can_switch_users => Some(u.clone()),
        (None, Some(u)) => {
            warnings.push(format!(
                "[sandbox] agent_user = \"{u}\" does not apply: this process (uid {}) may not switch users",
                host.euid
            ));
            None
        }
        (None, None) => None,
    };
    let mut unavailable = None;
    let run_as = match &user {
        Some(u) if !host.can_switch_users => {
            refusals.push(format!(
                "agent `{name}` runs as `{u}`, which needs the supervisor to run as root or hold CAP_SETUID and CAP_SETGID"
            ));
            None
        }
        Some(u) => match RunAs::lookup(u, agent.group.as_deref()) {
            Ok(r) => Some(r),
            Err(e) => {
                let why = format!("agent `{name}` runs as `{u}`: {e}");
                warnings.push(format!("{why}; its runs are refused until it exists"));
                unavailable = Some(why);
                None
            }
        },
        None => None,
    };
    let uid = run_as.as_ref().map_or(host.euid, |r| r.uid);
    let other_uid = uid != host.euid;
    let policy = &agent.policy;
    let declares_policy = policy.read.is_some()
        || policy.write.is_some()
        || sandbox.read.is_some()
        || sandbox.write.is_some();
    let landlock = host.landlock.map(|_| declares_policy);
    if declares_policy && host.landlock.is_none() {
        refusals.push(format!(
            "agent `{name}` declares a filesystem policy (`read`/`write`), but this kernel has no Landlock to enforce it"
        ));
    } else if host.landlock.is_none() {
        warnings.push(format!(
            "agent `{name}`: no Landlock here, so nothing keeps it from other processes of its user (their /proc/<pid>/ files)"
        ));
    }
    let cover = host.namespaces.mount;
    let network_ns = !policy.network;
    if network_ns && !host.namespaces.network {
        refusals.push(format!(
            "agent `{name}` sets network = false, but this host does not let the supervisor make a network namespace (under systemd: RestrictNamespaces= must allow user and net)"
        ));
    }
    for (key, list) in [("read", &policy.read), ("write", &policy.write)] {
        for p in list.iter().flatten() {
            if let Some(h) = inside_hidden(p, &host.hidden) {
                refusals.push(format!(
                    "agent `{name}`: `{key}` entry {} lies in {}, which no agent may reach",
                    p.display(),
                    h.display()
                ));
            }
        }
    }
    if let Some(dir) = &agent.working_dir
        && let Some(h) = inside_hidden(dir, &host.hidden)
    {
        refusals.push(format!(
            "agent `{name}`: its working_dir {} lies in {}, which no agent may reach",
            dir.display(),
            h.display()
        ));
    }
    let contained = other_uid || (landlock.is_some() && (cover || declares_policy));
    if !contained && unavailable.is_none() {
        if policy.allow_unconfined {
            warnings.push(format!(
                "agent `{name}` runs unconfined (allow_unconfined = true): it could read the master key and the store"
            ));
        } else {
            refusals.push(format!(
                "agent `{name}` could read the master key and the store: it runs as the supervisor's own user (uid {uid}) and this host offers {}; run it as another user (`user = \"...\"` in its [[agents]] entry, or [sandbox] agent_user), or accept the risk with `allow_unconfined = true` in its [[agents]] entry",
                missing_layers(host)
            ));
        }
    }
    let limits = match host.cgroups.root() {
        Some(root) => root.check_limits(&policy.limits),
        None => {
            let why = match &host.cgroups {
                Cgroups::Unavailable(why) => why.clone(),
                Cgroups::Ready(_) => String::new(),
            };
            limits_without(&policy.limits, &format!("no cgroup for runs: {why}"))
        }
    };
    for l in &limits {
        if let Some(why) = &l.not_applied {
            warnings.push(format!(
                "agent `{name}`: {} = {} is not applied: {why}",
                l.name, l.value
            ));
        }
    }
    AgentPlan {
        run_as,
        user,
        other_uid,
        cover,
        network_ns,
        landlock,
        drop_caps: uid == 0 && host.euid == 0,
        limits,
        refusal: (!refusals.is_empty()).then(|| refusals.join("; ")),
        unavailable,
        warnings,
    }
}

/// What a host lacks for containing a same-uid agent, as words.
fn missing_layers(host: &Host) -> String {
    match (host.namespaces.mount, host.landlock.is_some()) {
        (false, false) => "neither a mount namespace nor Landlock".into(),
        (false, true) => "no mount namespace (user namespaces are not available to it) and the agent has no Landlock policy".into(),
        (true, false) => "no Landlock, without which it could read the key through another process of its user (/proc/<pid>/root)".into(),
        (true, true) => "everything needed".into(),
    }
}

/// The hidden path `p` lies in (or is), if any.
fn inside_hidden<'a>(p: &Path, hidden: &'a [PathBuf]) -> Option<&'a PathBuf> {
    let p = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    hidden.iter().find(|h| p.starts_with(h))
}

#[cfg(test)]
mod tests;
