//! Who is at the other end of a control connection. The kernel recorded
//! the peer's uid and pid when it connected (`SO_PEERCRED`); nothing the
//! client says counts. The uid maps to a member through `unix_user`.
//!
//! Processes the daemon started are refused whatever their uid: an agent
//! that runs under a member's account must not act as that member. An
//! agent and everything it starts descend from the daemon (it is their
//! subreaper, see `crate::reaper`), and none of them can change its uid
//! (`no_new_privs`, no capabilities), so only peers with an agent's uid
//! need their ancestry checked; when some agent runs as root, every peer
//! does. A peer whose ancestry cannot be read is refused.

use std::collections::BTreeSet;

use supervisor_config::Config;
use supervisor_protocol::{ErrorKind, WireError};

use crate::control::Caller;

/// The uid and pid the kernel recorded for the peer.
#[derive(Debug, Clone, Copy)]
pub struct PeerCred {
    pub uid: u32,
    pub pid: Option<i32>,
}

/// The caller behind a connection, or the refusal to send. Reads the user
/// database and `/proc`: call it off the async threads.
pub fn identify(config: &Config, peer: PeerCred, daemon_pid: i32) -> Result<Caller, WireError> {
    let agents = agent_uids(config);
    if agents.contains(&0) || agents.contains(&peer.uid) {
        // 0: a process the kernel cannot name in our pid namespace.
        let Some(pid) = peer.pid.filter(|p| *p > 0) else {
            return Err(WireError::new(
                ErrorKind::Agent,
                format!(
                    "uid {} is an agent's, and the kernel did not say which process connected",
                    peer.uid
                ),
            ));
        };
        match descends_from(pid, daemon_pid, &agents) {
            Ok(false) => {}
            Ok(true) => {
                return Err(WireError::new(
                    ErrorKind::Agent,
                    format!(
                        "process {pid} was started by the supervisor (an agent, or something an agent started): agents cannot act as a member"
                    ),
                )
                .hint("a member runs `supervisor` from their own shell, not from an agent"));
            }
            Err(why) => {
                return Err(WireError::new(
                    ErrorKind::Agent,
                    format!(
                        "process {pid} runs as uid {}, as agents do, and whether the supervisor started it cannot be told: {why}",
                        peer.uid
                    ),
                )
                .hint("members' accounts should not be agents' accounts (`user =` of an agent); the daemon must be able to read /proc of agents' processes"));
            }
        }
    }
    let caller = Caller::peer(config, peer.uid).map_err(|e| {
        WireError::new(
            ErrorKind::Failed,
            format!("looking up uid {}: {e:#}", peer.uid),
        )
    })?;
    if caller.member.is_none() {
        let refusal = caller.not_a_member(config, false);
        let mut error = WireError::new(ErrorKind::NotAMember, refusal.message);
        error.hint = refusal.hint;
        return Err(error);
    }
    Ok(caller)
}

/// The uids agents run as: the daemon's own (agents without `user`) and
/// each agent's `user`.
fn agent_uids(config: &Config) -> BTreeSet<u32> {
    let mut uids = BTreeSet::from([nix::unistd::geteuid().as_raw()]);
    for agent in &config.agents {
        if let Some(user) = &agent.user
            && let Ok(Some(u)) = nix::unistd::User::from_name(user)
        {
            uids.insert(u.uid.as_raw());
        }
    }
    uids
}

/// Whether process `pid` is `daemon` or descends from it. Walks up the
/// parents in `/proc`; stops early at a process that runs as no agent's
/// uid, since nothing between the daemon and its descendants does (unless
/// an agent runs as root).
pub fn descends_from(pid: i32, daemon: i32, agents: &BTreeSet<u32>) -> Result<bool, String> {
    let root_agents = agents.contains(&0);
    let mut pid = pid;
    // Deeper than any real process tree; a loop in a bogus /proc ends here.
    for _ in 0..4096 {
        if pid == daemon {
            return Ok(true);
        }
        if pid <= 1 {
            return Ok(false);
        }
        let (ppid, uids) = status(pid)?;
        if !root_agents && !uids.iter().any(|u| agents.contains(u)) {
            return Ok(false);
        }
        pid = ppid;
    }
    Err("its ancestry is deeper than 4096 processes".into())
}

/// The parent pid and the uids (real, effective, saved, filesystem) of a process.
fn status(pid: i32) -> Result<(i32, Vec<u32>), String> {
    use std::io::Read as _;
    // Room for the whole file from the start: /proc gives no size, and a
    // buffer grown from nothing takes eight reads of it instead of two.
    let mut text = String::with_capacity(4096);
    std::fs::File::open(format!("/proc/{pid}/status"))
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .ok_or_else(|| format!("/proc/{pid}/status has no {name}"))
    };
    let ppid = field("PPid:")?
        .parse()
        .map_err(|_| format!("/proc/{pid}/status has a bad PPid"))?;
    let uids = field("Uid:")?
        .split_whitespace()
        .map(|u| {
            u.parse()
                .map_err(|_| format!("/proc/{pid}/status has a bad Uid"))
        })
        .collect::<Result<_, _>>()?;
    Ok((ppid, uids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_descends_from_its_parent_and_not_from_a_child() {
        let me = std::process::id() as i32;
        let parent = nix::unistd::getppid().as_raw();
        let any = BTreeSet::from([0, nix::unistd::geteuid().as_raw()]);
        assert_eq!(descends_from(me, parent, &any), Ok(true));
        assert_eq!(descends_from(me, me, &any), Ok(true));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let child_pid = child.id() as i32;
        assert_eq!(descends_from(child_pid, me, &any), Ok(true));
        assert_eq!(descends_from(me, child_pid, &any), Ok(false));
        child.kill().unwrap();
        child.wait().unwrap();
        // A process that is gone cannot be vouched for.
        assert!(descends_from(child_pid, me, &any).is_err());
    }

    #[test]
    fn a_process_of_no_agent_uid_ends_the_walk() {
        let me = std::process::id() as i32;
        let parent = nix::unistd::getppid().as_raw();
        // No agent runs as this process's uid: it cannot be an agent's.
        let others = BTreeSet::from([u32::MAX - 1]);
        assert_eq!(descends_from(me, parent, &others), Ok(false));
    }
}
