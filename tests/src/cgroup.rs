//! A cgroup v2 directory of its own for a test's runs (`[sandbox] cgroup`),
//! found from /proc/self/mountinfo and removed, with anything left in it,
//! when dropped. Needs root.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cgroup2 mount point, if one is mounted.
pub fn v2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(left.split(' ').nth(4)?))
    })
}

/// A fresh directory below the cgroup v2 mount.
#[derive(Debug)]
pub struct TestCgroup {
    pub path: PathBuf,
}

impl TestCgroup {
    /// `None` where no writable cgroup v2 exists (not root, or not mounted).
    pub fn create(label: &str) -> Option<TestCgroup> {
        if !crate::users::is_root() {
            return None;
        }
        let path = v2_mount()?.join(format!("supervisor-test-{label}-{}", crate::sentinel("cg")));
        std::fs::create_dir(&path).ok()?;
        Some(TestCgroup { path })
    }

    /// The `[sandbox]` section that puts runs here.
    pub fn section(&self) -> String {
        format!("[sandbox]\ncgroup = \"{}\"\n", self.path.display())
    }

    /// The run cgroups present (`run-<id>`).
    pub fn runs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.path)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("run-"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the kernel offers `controller` to this directory's children.
    pub fn offers(&self, controller: &str) -> bool {
        std::fs::read_to_string(self.path.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == controller))
    }
}

fn remove(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove(&entry.path());
        }
    }
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    for _ in 0..200 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("warning: could not remove test cgroup {}", dir.display());
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        remove(&self.path);
    }
}
