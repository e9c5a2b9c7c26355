//! A run's private HOME and TMPDIR: `<state_dir>/tmp/<run id>`, 0700, owned
//! by whoever the agent runs as, wiped when the run ends (and at the next
//! start after a crash, see `recover`).
//!
//! Invariant: making or removing one run's home never changes what another
//! run can reach: `tmp/` is made 0711 once and its mode is only ever
//! tightened by removing write bits for others, never reset to 0700.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::spawn::RunAs;

/// Mode of `tmp/`: others may pass through to their own home, never list.
const TMP_MODE: u32 = 0o711;

/// Where the homes of runs live.
pub fn homes_dir(state_dir: &Path) -> Result<PathBuf> {
    // Absolute, because the agent may start in another working directory and a
    // relative HOME would point it somewhere else.
    std::path::absolute(state_dir.join("tmp")).context("resolving the state directory")
}

/// One run's home.
pub struct RunHome {
    pub path: PathBuf,
}

impl RunHome {
    pub fn create(state_dir: &Path, id: &str, run_as: Option<&RunAs>) -> Result<RunHome> {
        let parent = homes_dir(state_dir)?;
        ensure_tmp(&parent)?;
        let path = parent.join(id);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating the run's home {}", path.display()))?;
        let home = RunHome { path };
        if let Some(r) = run_as {
            nix::unistd::chown(&home.path, Some(r.uid.into()), Some(r.gid.into()))
                .with_context(|| format!("giving {} to the agent's user", home.path.display()))?;
            // Without a mount namespace the agent reaches its home through the
            // state directory itself: search permission on it, never listing.
            // Everything else in it stays 0600 or 0700.
            let meta = std::fs::metadata(state_dir)?;
            if meta.mode() & 0o011 != 0o011 {
                let mode = (meta.mode() & 0o7777) | 0o011;
                std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(mode))
                    .with_context(|| {
                        format!("opening {} to the agent's user", state_dir.display())
                    })?;
            }
        }
        Ok(home)
    }

    /// Removes the home and everything the agent left in it.
    pub fn remove(self) {
        if let Err(e) = wipe(&self.path) {
            tracing::warn!(home = %self.path.display(), error = %e, "could not remove a run's home");
        }
    }
}

/// Makes `tmp/` (0711) if missing; an existing one keeps its mode unless others
/// may write to it.
fn ensure_tmp(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(TMP_MODE).create(dir) {
        Ok(()) => {
            // The umask may have taken bits away.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(TMP_MODE))?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(dir)?.mode() & 0o7777;
            if mode & 0o022 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(TMP_MODE))?;
            }
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    Ok(())
}

/// Removes `path` and all beneath it. What an agent of another user left
/// unreadable (a 0700 directory of its own) is taken over first: its owner
/// changed to ours (`CAP_CHOWN`, which switching users needs anyway), its mode
/// opened to us. Symbolic links are removed, never followed. Call it when no
/// process of the run is left.
pub fn wipe(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    take_over(path)?;
    std::fs::remove_dir_all(path)
}

fn take_over(dir: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Ok(());
    }
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    if meta.uid() != uid {
        std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            take_over(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_is_made_passable_and_never_reset_to_private() {
        let state = tempfile::tempdir().unwrap();
        let first = RunHome::create(state.path(), "r1", None).unwrap();
        let tmp = state.path().join("tmp");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&tmp), 0o711);
        assert_eq!(mode(&first.path), 0o700);
        // A second run leaves the first one's way in as it was.
        let second = RunHome::create(state.path(), "r2", None).unwrap();
        assert_eq!(mode(&tmp), 0o711);
        // Others may never write to it.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o777)).unwrap();
        let third = RunHome::create(state.path(), "r3", None).unwrap();
        assert_eq!(mode(&tmp), 0o711);
        for h in [first, second, third] {
            let p = h.path.clone();
            h.remove();
            assert!(!p.exists());
        }
    }

    #[test]
    fn wipe_removes_what_the_owner_locked_and_follows_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("a/b")).unwrap();
        std::fs::write(home.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, home.join("a/link")).unwrap();
        std::fs::set_permissions(home.join("a/b"), std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::set_permissions(home.join("a"), std::fs::Permissions::from_mode(0o000)).unwrap();
        wipe(&home).unwrap();
        assert!(!home.exists());
        assert!(outside.join("keep").exists());
        wipe(&home).unwrap();
    }
}
