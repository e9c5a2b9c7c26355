//! After a crash: at the start of `serve` and of `supervisor run`, runs whose
//! owner process is gone become `lost`, and what they left (their home, their
//! cgroup and anything still alive in it) is removed.
//!
//! Invariant: nothing of a run whose owner is alive is touched, whoever the
//! owner is (another CLI run, a daemon). Leftovers are listed before the
//! store is read, so a run that starts meanwhile, which is recorded before its
//! home and cgroup exist, is never mistaken for a dead one.

use std::path::Path;

use anyhow::Result;
use supervisor_store::{RunStatus, Store};

use super::home::{homes_dir, wipe};
use crate::spawn::cgroup::Cgroups;

/// Marks dead runs lost and removes their leftovers; returns the lost ids.
pub fn recover(store: &mut Store, state_dir: &Path, cgroups: &Cgroups) -> Result<Vec<String>> {
    let mut lost = Vec::new();
    sweep(store, state_dir, cgroups, |store| {
        lost = store.mark_lost_runs(&owner_alive)?;
        Ok(())
    })?;
    Ok(lost)
}

/// Removes the homes and cgroups in this state directory whose runs are
/// not running (any more), after `mark` has had its say on which runs are
/// dead. On a shared store, runs of this node's earlier life become lost
/// only when their lease has run out, so a node sweeps again as it renews
/// its own.
pub fn sweep(
    store: &mut Store,
    state_dir: &Path,
    cgroups: &Cgroups,
    mark: impl FnOnce(&mut Store) -> Result<()>,
) -> Result<()> {
    let homes: Vec<String> = std::fs::read_dir(homes_dir(state_dir)?)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let groups: Vec<String> = cgroups.root().map(|r| r.run_ids()).unwrap_or_default();
    mark(store)?;
    let mut running =
        |id: &str| matches!(store.get_run(id).map(|r| r.status), Ok(RunStatus::Running));
    if let Some(root) = cgroups.root() {
        for id in groups.iter().filter(|id| !running(id)) {
            if let Err(e) = root.existing_run(id).remove() {
                tracing::warn!(run = %id, error = %e, "could not remove the cgroup of a run that is over");
            }
        }
    }
    let dir = homes_dir(state_dir)?;
    for id in homes.iter().filter(|id| !running(id)) {
        if let Err(e) = wipe(&dir.join(id)) {
            tracing::warn!(run = %id, error = %e, "could not remove the home of a run that is over");
        }
    }
    Ok(())
}

/// Whether the supervisor process `pid` that recorded a run still runs it: it
/// exists and is not a zombie (a process killed but not yet reaped runs nothing).
pub fn owner_alive(pid: i64) -> bool {
    if pid <= 0 || pid == i64::from(std::process::id()) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            !matches!(state, Some("Z" | "X") | None)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_owner_counts_as_dead() {
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = i64::from(child.id());
        // Not reaped yet: a zombie once it has exited.
        let zombie = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
        });
        assert!(zombie, "the child never became a zombie");
        assert!(!owner_alive(pid));
        child.wait().unwrap();
        assert!(!owner_alive(pid));
        assert!(
            !owner_alive(i64::from(std::process::id())),
            "our own pid is no earlier owner"
        );
        assert!(owner_alive(1));
    }
}
