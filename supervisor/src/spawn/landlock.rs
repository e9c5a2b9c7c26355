//! Landlock domains for agents, built in the parent; the child only enforces
//! the finished ruleset (`landlock_restrict_self`).
//!
//! Every agent gets a domain, which alone keeps it from ptrace-like access to
//! any process outside it (`/proc/<pid>/root`, `mem`, `environ`, `fd`): other
//! runs, the supervisor, the user's shell. An agent with a policy gets a domain
//! that allows reading the system's usual read-only paths and its `read` list,
//! and writing its HOME, working directory and `write` list; hidden paths (the
//! key, the state directory) are carved out of every allowed tree.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr,
};

/// The rights handled by a policy domain: everything this crate knows, as far as
/// the kernel supports it.
const POLICY_ABI: ABI = ABI::V9;

/// Paths every agent with a policy may read and execute, where they exist.
pub const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/proc",
    "/sys",
    "/run/systemd/resolve",
];

/// The Landlock ABI version this kernel offers, `None` without Landlock.
pub fn abi() -> Option<i32> {
    // SAFETY: landlock_create_ruleset(2) with a null attribute, size 0 and the
    // VERSION flag only returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    (v > 0).then_some(v as i32)
}

/// What an agent's domain allows.
pub enum Domain<'a> {
    /// Everything, as without Landlock, but a domain all the same: processes
    /// outside it are out of the agent's reach.
    Base,
    /// Only what is listed.
    Policy {
        /// The run's private HOME: read and write, although it lies in a hidden path.
        home: &'a Path,
        /// Read and execute.
        read: &'a [PathBuf],
        /// Read, write, create and remove.
        write: &'a [PathBuf],
        /// Never reachable, even beneath an allowed path.
        hidden: &'a [PathBuf],
    },
}

/// Why a domain could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the Landlock domain: {0}")]
pub struct LandlockError(String);

fn fail(e: impl std::fmt::Display) -> LandlockError {
    LandlockError(e.to_string())
}

/// Builds the ruleset for one agent; the child enforces it with
/// `landlock_restrict_self`. Needs a kernel with Landlock ([`abi`]).
pub fn ruleset(domain: &Domain<'_>) -> Result<OwnedFd, LandlockError> {
    let fd: Option<OwnedFd> = match domain {
        Domain::Base => {
            // Creating block devices is handled, and never granted: no agent needs
            // to, and a domain needs at least one handled right.
            Ruleset::default()
                .set_compatibility(CompatLevel::HardRequirement)
                .handle_access(AccessFs::MakeBlock)
                .map_err(fail)?
                .create()
                .map_err(fail)?
                .into()
        }
        Domain::Policy {
            home,
            read,
            write,
            hidden,
        } => {
            let all = AccessFs::from_all(POLICY_ABI);
            let read_only = AccessFs::from_read(POLICY_ABI);
            // Terminals and /dev/null are written and ioctl'd, never created.
            let dev = read_only | AccessFs::WriteFile | AccessFs::IoctlDev;
            let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> = Vec::new();
            for p in SYSTEM_READ {
                allow_except(Path::new(p), read_only, hidden, &mut rules);
            }
            allow_except(Path::new("/dev"), dev, hidden, &mut rules);
            for p in read.iter() {
                allow_except(p, read_only, hidden, &mut rules);
            }
            for p in write.iter() {
                allow_except(p, all, hidden, &mut rules);
            }
            rules.push((home.to_path_buf(), all));
            let mut created = Ruleset::default()
                .handle_access(all)
                .map_err(fail)?
                .create()
                .map_err(fail)?;
            for (path, access) in rules {
                let Ok(fd) = PathFd::new(&path) else {
                    continue;
                };
                created = created
                    .add_rule(PathBeneath::new(fd, access))
                    .map_err(fail)?;
            }
            created.into()
        }
    };
    fd.ok_or_else(|| fail(io::Error::from(io::ErrorKind::Unsupported)))
}

/// Adds a rule for `path`, unless a hidden path lies beneath it: then rules for
/// each of its entries, recursively, leaving the hidden path and the directories
/// on the way to it without a rule of their own. Missing paths are skipped.
fn allow_except(
    path: &Path,
    access: BitFlags<AccessFs>,
    hidden: &[PathBuf],
    rules: &mut Vec<(PathBuf, BitFlags<AccessFs>)>,
) {
    let Ok(path) = path.canonicalize() else {
        return;
    };
    if hidden.iter().any(|h| path.starts_with(h)) {
        return;
    }
    if !hidden.iter().any(|h| h.starts_with(&path)) {
        rules.push((path, access));
        return;
    }
    let Ok(entries) = std::fs::read_dir(&path) else {
        return;
    };
    for entry in entries.flatten() {
        allow_except(&entry.path(), access, hidden, rules);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_paths_are_carved_out_of_allowed_trees() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for d in ["a/state", "a/work", "b"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("a/notes"), "").unwrap();
        let hidden = vec![root.join("a/state")];
        let mut rules = Vec::new();
        allow_except(&root, AccessFs::ReadFile.into(), &hidden, &mut rules);
        let mut paths: Vec<PathBuf> = rules.into_iter().map(|(p, _)| p).collect();
        paths.sort();
        assert_eq!(
            paths,
            [root.join("a/notes"), root.join("a/work"), root.join("b")]
        );

        // Inside a hidden path nothing is allowed; beside it, the path itself.
        let mut rules = Vec::new();
        allow_except(
            &root.join("a/state"),
            AccessFs::ReadFile.into(),
            &hidden,
            &mut rules,
        );
        assert!(rules.is_empty());
        allow_except(
            &root.join("b"),
            AccessFs::ReadFile.into(),
            &hidden,
            &mut rules,
        );
        assert_eq!(rules.len(), 1);
    }
}
