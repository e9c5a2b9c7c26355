//! Stopping a run: signals to everything it started, and the certainty that
//! nothing of it is left at the end.
//!
//! With a cgroup, "everything" is the cgroup's members, wherever they moved
//! (their own session, a double fork); `cgroup.kill` ends them all. Without
//! one, the agent's process group, and in the CLI the orphans this process
//! adopted as a child subreaper; a process that left the group and was
//! adopted by someone else escapes that fallback.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgrp};

use super::cgroup::RunCgroup;
use super::{Child, RunAs};

/// How long the end of a run waits for its cgroup to empty after `cgroup.kill`.
const EMPTY_WAIT: Duration = Duration::from_secs(5);

/// What identifies the processes of one run.
#[derive(Debug)]
pub struct Tracked {
    /// The agent's pid, which is also its process group (and session) id.
    pub pgid: i32,
    pub cgroup: Option<RunCgroup>,
    /// The agent's user, for signals a supervisor without `CAP_KILL` must send as it.
    pub run_as: Option<RunAs>,
    /// This process adopts the run's orphans (`PR_SET_CHILD_SUBREAPER`, one run per
    /// process): they are found among its children and killed at the end.
    pub adopts_orphans: bool,
}

impl Tracked {
    /// Sends `sig` to the agent's group and to every member of its cgroup.
    pub fn signal(&self, sig: Signal) {
        let mut denied = Vec::new();
        // 0: the spawn failed, there is no group (its cgroup may still hold something).
        let group = if self.pgid > 0 {
            signal_group(self.pgid, sig)
        } else {
            Ok(())
        };
        match group {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => denied.push(-self.pgid),
            Err(e) => {
                tracing::warn!(pgid = self.pgid, error = %e, "could not signal a run's process group")
            }
            Ok(()) => {}
        }
        if let Some(cg) = &self.cgroup {
            for pid in cg.pids() {
                if let Err(Errno::EPERM) = kill(Pid::from_raw(pid), sig) {
                    denied.push(pid);
                }
            }
        }
        if !denied.is_empty()
            && let Some(user) = &self.run_as
            && let Err(e) = super::signal_as(user, &denied, sig)
        {
            tracing::warn!(error = %e, "could not signal a run's processes as its user");
        }
    }

    /// SIGKILL to all of the run at once, reaping nothing.
    fn kill_now(&self) {
        match &self.cgroup {
            Some(cg) => cg.kill(),
            None => self.signal(Signal::SIGKILL),
        }
    }

    /// Kills everything left of the run and waits for it to be gone. Call it once
    /// the leader is reaped.
    pub async fn end(&self) {
        self.kill_now();
        match &self.cgroup {
            Some(cg) => {
                let deadline = tokio::time::Instant::now() + EMPTY_WAIT;
                while !cg.is_empty() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            None => {
                if self.adopts_orphans {
                    kill_adopted();
                }
            }
        }
    }

    /// [`Tracked::end`], then the cgroup removed. Errors are logged: the run is
    /// over either way, and the next start removes a leftover cgroup.
    pub async fn finish(&self) {
        self.end().await;
        if let Some(cg) = &self.cgroup
            && let Err(e) = cg.remove()
        {
            tracing::warn!(cgroup = %cg.path.display(), error = %e, "could not remove a run's cgroup");
        }
    }
}

/// Sends `sig` to every process of the group `pgid`. A group that no longer exists
/// is not an error. Refuses `pgid` values that would reach beyond one child's group:
/// 0 and 1, negative ones, and the supervisor's own group.
pub fn signal_group(pgid: i32, sig: Signal) -> io::Result<()> {
    if pgid <= 1 || pgid == getpgrp().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process group {pgid}"),
        ));
    }
    match killpg(Pid::from_raw(pgid), sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Stops a run: SIGTERM to all of it, up to `grace` for the leader to exit, then
/// everything killed ([`Tracked::end`]). Returns the leader's status.
pub async fn terminate(
    child: &mut Child,
    tracked: &Tracked,
    grace: Duration,
) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        tracked.end().await;
        return Ok(status);
    }
    tracked.signal(Signal::SIGTERM);
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status?,
        Err(_elapsed) => {
            tracked.kill_now();
            child.wait().await?
        }
    };
    tracked.end().await;
    Ok(status)
}

/// After a leader exited on its own: kills whatever is left in its group.
///
/// Call it right after reaping the leader. While any member is alive the kernel does
/// not reuse the group's id; once the group is empty the id could in principle go to
/// a new group leader, so a late call might hit an unrelated group.
pub fn kill_group_remains(pgid: i32) {
    if let Err(e) = signal_group(pgid, Signal::SIGKILL) {
        tracing::warn!(pgid, error = %e, "could not kill what remains of a process group");
    }
}

/// Makes this process the adopter of its descendants' orphans, so that a
/// double-forked grandchild becomes its child instead of init's.
pub fn adopt_orphans() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// The live children of this process, from every thread's `children` list.
fn own_children() -> Vec<i32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// Kills and reaps every child of this process, again and again while killing
/// one makes its own children ours. For a subreaper with one run only.
fn kill_adopted() {
    for _ in 0..1000 {
        let children = own_children();
        if children.is_empty() {
            return;
        }
        for pid in children {
            let pid = Pid::from_raw(pid);
            let _ = kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
    tracing::warn!("processes of the run kept forking faster than they could be killed");
}
