//! Processes an agent leaves behind. The daemon makes itself a "child
//! subreaper": a process whose parent exits is re-parented to the daemon
//! instead of init, so whatever an agent starts stays the daemon's
//! descendant for as long as it lives, also after `setsid` and a double
//! fork. That is what lets the control socket refuse every process an
//! agent started (see `daemon::peer`).
//!
//! Re-parented processes are the daemon's to reap when they exit. The
//! agents' own leaders are reaped by their [`Child`], which waits for each by pid;
//! this module knows their pids ([`spawn`] registers each in
//! [`spawn::waited_for`], the lock the reaper takes) and never reaps one of
//! them, nor a helper the spawn module waits for while it holds that lock.

use nix::errno::Errno;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use crate::spawn::{self, Child, ChildSpec, SpawnError};

/// Makes this process the reaper of its descendants' orphans. Not
/// inherited by children.
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)?;
    Ok(())
}

/// An agent's leader, registered until this is dropped (after its
/// [`Child`] reaped it).
#[derive(Debug)]
pub struct Leader(Option<i32>);

impl Drop for Leader {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            spawn::waited_for().remove(&pid);
        }
    }
}

/// [`spawn::spawn`], registering the child as a leader before the reaper
/// can see it.
pub fn spawn(spec: &ChildSpec<'_>) -> Result<(Child, Leader), SpawnError> {
    let mut leaders = spawn::waited_for();
    let child = spawn::spawn(spec)?;
    let pid = child.id().map(|p| p as i32);
    if let Some(pid) = pid {
        leaders.insert(pid);
    }
    Ok((child, Leader(pid)))
}

/// Reaps every exited child that is not a leader; returns how many. Never
/// blocks: when a spawn holds the lock, the next call does the work.
pub fn reap_orphans() -> usize {
    let Some(leaders) = spawn::try_waited_for() else {
        return 0;
    };
    let mut reaped = 0;
    loop {
        // Look without reaping: the next exited child, whoever it is.
        let peeked = waitid(
            Id::All,
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        );
        let pid = match peeked {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) | Err(_) => break,
            Ok(status) => match status.pid() {
                Some(pid) => pid,
                None => break,
            },
        };
        // A leader is its `Child`'s to reap (which it does as soon as it
        // learns of the exit); the others wait for the next call.
        if leaders.contains(&pid.as_raw()) {
            break;
        }
        if waitpid(Pid::from_raw(pid.as_raw()), Some(WaitPidFlag::WNOHANG)).is_ok() {
            reaped += 1;
        } else {
            break;
        }
    }
    reaped
}
