//! A cgroup v2 per run, under a subtree the supervisor owns: the one systemd
//! delegated to the service (`Delegate=yes`), or a configured directory.
//!
//! The child joins its run's cgroup before it execs (through a descriptor of
//! `cgroup.procs` opened here), so nothing it starts can leave: at the end of
//! the run `cgroup.kill` stops every process in it, double forks and `setsid`
//! included, and the cgroup is removed. Limits (memory, pids, CPU) are written
//! to the run's cgroup where the controllers are available.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use supervisor_config::{CgroupSetting, Limits};

/// The controllers limits need, as cgroup v2 names them.
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// Run cgroups are named `run-<run id>`.
const RUN_PREFIX: &str = "run-";
/// The leaf the supervisor moves itself into in a delegated subtree, so that
/// controllers can be enabled for the runs beside it.
const SELF_LEAF: &str = "supervisor";

/// Where runs' cgroups are made, and what they can be limited by.
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    pub path: PathBuf,
    /// `true`: systemd's delegated subtree; `false`: the configured directory.
    pub delegated: bool,
    /// Controllers enabled for the runs (a subset of memory, pids, cpu).
    pub controllers: Vec<String>,
    /// Controllers the kernel offers here, enabled or not.
    pub offered: Vec<String>,
}

/// The outcome of looking for a cgroup subtree at start.
#[derive(Debug, Clone)]
pub enum Cgroups {
    Ready(CgroupRoot),
    /// Why there is none, as a sentence.
    Unavailable(String),
}

impl Cgroups {
    /// Finds (and prepares) the subtree the config asks for. `auto` looks for a
    /// delegated cgroup only when `may_delegate` (the daemon): a CLI moving itself
    /// around its user's session cgroup would disturb it.
    ///
    /// In a delegated cgroup controllers are enabled only when `limits` (some
    /// agent has limits): under systemd before v254 a cgroup that hands
    /// controllers to its children cannot take the unit's reload command.
    pub fn detect(setting: &CgroupSetting, may_delegate: bool, limits: bool) -> Cgroups {
        let result = match setting {
            CgroupSetting::Off => Err("turned off in the config ([sandbox] cgroup = \"off\")".into()),
            CgroupSetting::Root(path) => configured(path),
            CgroupSetting::Auto if may_delegate => delegated(limits),
            CgroupSetting::Auto => Err("`supervisor run` makes cgroups only below a configured root ([sandbox] cgroup = \"<a directory below the cgroup v2 mount>\")".into()),
        };
        match result {
            Ok(root) => Cgroups::Ready(root),
            Err(why) => Cgroups::Unavailable(why),
        }
    }

    pub fn root(&self) -> Option<&CgroupRoot> {
        match self {
            Cgroups::Ready(r) => Some(r),
            Cgroups::Unavailable(_) => None,
        }
    }
}

/// The cgroup2 mount point, from the text of /proc/self/mountinfo.
pub fn v2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        let point = left.split(' ').nth(4)?;
        Some(PathBuf::from(unescape_mount(point)))
    })
}

/// mountinfo escapes spaces, tabs, newlines and backslashes as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroup v2 path (`0::/path` in /proc/self/cgroup).
pub fn own_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn writable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::W_OK).is_ok()
}

fn mount_point() -> Result<PathBuf, String> {
    v2_mount(&read(Path::new("/proc/self/mountinfo"))?)
        .ok_or_else(|| "no cgroup v2 file system is mounted".to_owned())
}

/// `[sandbox] cgroup = PATH`: a directory of the cgroup v2 file system, made if
/// missing.
fn configured(path: &Path) -> Result<CgroupRoot, String> {
    let mount = mount_point()?;
    if !path.starts_with(&mount) || path == mount {
        return Err(format!(
            "{} is not a directory below the cgroup v2 file system at {}",
            path.display(),
            mount.display()
        ));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    if !path.join("cgroup.procs").exists() || !writable(&path.join("cgroup.procs")) {
        return Err(format!(
            "{} is not a cgroup this process may write to",
            path.display()
        ));
    }
    Ok(prepare(path, false, true))
}

/// `auto`: the cgroup systemd delegated to this service, if it did.
fn delegated(limits: bool) -> Result<CgroupRoot, String> {
    const HINT: &str = "under systemd set Delegate=yes in the unit; elsewhere set [sandbox] cgroup = \"<a directory below the cgroup v2 mount>\"";
    let mount = mount_point()?;
    let own = own_cgroup(&read(Path::new("/proc/self/cgroup"))?)
        .ok_or_else(|| format!("this process is in no cgroup v2 group; {HINT}"))?;
    let rel = own.trim_start_matches('/');
    // The leaf made by an earlier start of this very process image is fine too.
    let rel = rel.strip_suffix(&format!("/{SELF_LEAF}")).unwrap_or(rel);
    if rel.is_empty() {
        return Err(format!(
            "this process runs in the root cgroup, which is nobody's to delegate; {HINT}"
        ));
    }
    let dir = mount.join(rel);
    if !is_delegated(&dir) || !writable(&dir) || !writable(&dir.join("cgroup.procs")) {
        return Err(format!(
            "{} was not delegated to this process; {HINT}",
            dir.display()
        ));
    }
    // A cgroup with processes in it cannot enable controllers for its children:
    // move this process into a leaf of its own first.
    let leaf = dir.join(SELF_LEAF);
    let moved = fs::DirBuilder::new()
        .mode(0o755)
        .create(&leaf)
        .or_else(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .and_then(|()| write_str(&leaf.join("cgroup.procs"), "0"));
    if let Err(e) = moved {
        return Err(format!(
            "cannot move the supervisor into {}: {e}",
            leaf.display()
        ));
    }
    Ok(prepare(&dir, true, limits))
}

/// systemd marks a delegated cgroup with the `user.delegate` (v254 and later) or
/// `trusted.delegate` (v251 and later, readable with privilege) attribute, and
/// hands its directory to the service's user.
fn is_delegated(dir: &Path) -> bool {
    let marked = ["user.delegate", "trusted.delegate"]
        .iter()
        .any(|name| xattr_is_one(dir, name));
    let euid = nix::unistd::geteuid().as_raw();
    let owned = fs::metadata(dir).is_ok_and(|m| m.uid() == euid && euid != 0);
    marked || owned
}

fn xattr_is_one(dir: &Path, name: &str) -> bool {
    let (Ok(path), Ok(name)) = (
        std::ffi::CString::new(dir.as_os_str().as_bytes()),
        std::ffi::CString::new(name),
    ) else {
        return false;
    };
    let mut buf = [0u8; 8];
    // SAFETY: getxattr(2) reads two NUL-terminated strings and writes at most
    // `buf.len()` bytes into the live local buffer.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n > 0 && &buf[..n as usize] == b"1"
}

/// Enables (when `enable`), for the runs below `path`, each of the controllers
/// `path` offers.
fn prepare(path: &Path, delegated: bool, enable: bool) -> CgroupRoot {
    let text = fs::read_to_string(path.join("cgroup.controllers")).unwrap_or_default();
    let offered: Vec<String> = CONTROLLERS
        .iter()
        .filter(|c| text.split_whitespace().any(|o| o == **c))
        .map(|c| (*c).to_owned())
        .collect();
    let controllers = offered
        .iter()
        .filter(|_| enable)
        .filter(|c| write_str(&path.join("cgroup.subtree_control"), &format!("+{c}")).is_ok())
        .cloned()
        .collect();
    CgroupRoot {
        path: path.to_owned(),
        delegated,
        controllers,
        offered,
    }
}

fn write_str(path: &Path, text: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write_all(text.as_bytes())
}

/// One limit as applied to a run: its config name, value, and whether it holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LimitState {
    pub name: &'static str,
    pub value: String,
    /// `None`: in force; `Some(why)`: not applied.
    pub not_applied: Option<String>,
}

/// The limits of an agent, each with the controller and file it needs.
fn limit_files(limits: &Limits) -> Vec<(&'static str, &'static str, &'static str, String, String)> {
    let mut out = Vec::new();
    if let Some(m) = limits.memory_max {
        out.push((
            "memory_max",
            "memory",
            "memory.max",
            m.to_string(),
            format!("{m} bytes"),
        ));
    }
    if let Some(p) = limits.pids_max {
        out.push(("pids_max", "pids", "pids.max", p.to_string(), p.to_string()));
    }
    if let Some(c) = limits.cpu_max {
        let period = 100_000u64;
        let quota = u64::from(c) * period / 100;
        out.push((
            "cpu_max",
            "cpu",
            "cpu.max",
            format!("{quota} {period}"),
            format!("{c}%"),
        ));
    }
    out
}

/// What a host without a cgroup subtree (or without the controller) says about
/// each limit, for `config check` and the run record.
pub fn limits_without(limits: &Limits, why: &str) -> Vec<LimitState> {
    limit_files(limits)
        .into_iter()
        .map(|(name, _, _, _, shown)| LimitState {
            name,
            value: shown,
            not_applied: Some(why.to_owned()),
        })
        .collect()
}

impl CgroupRoot {
    /// What each limit would meet here, without making anything.
    pub fn check_limits(&self, limits: &Limits) -> Vec<LimitState> {
        limit_files(limits)
            .into_iter()
            .map(|(name, controller, _, _, shown)| LimitState {
                name,
                value: shown,
                not_applied: (!self.controllers.iter().any(|c| c == controller)).then(|| {
                    if self.offered.iter().any(|c| c == controller) {
                        format!(
                            "the {controller} controller was not enabled in {} (the daemon enables controllers at start when an agent has limits: restart it)",
                            self.path.display()
                        )
                    } else {
                        format!(
                            "the {controller} controller is not available in {} (cgroup v2 offers it only where the kernel and the parent cgroups do; under a hybrid layout it may be bound to cgroup v1)",
                            self.path.display()
                        )
                    }
                }),
            })
            .collect()
    }

    /// Makes the cgroup of run `id` and opens its `cgroup.procs` for the child.
    pub fn create_run(&self, id: &str) -> io::Result<RunCgroup> {
        let path = self.path.join(format!("{RUN_PREFIX}{id}"));
        fs::DirBuilder::new().mode(0o755).create(&path)?;
        let procs = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path.join("cgroup.procs"));
        match procs {
            Ok(f) => Ok(RunCgroup {
                path,
                procs: Some(f.into()),
            }),
            Err(e) => {
                let _ = fs::remove_dir(&path);
                Err(e)
            }
        }
    }

    /// The cgroup of run `id`, made earlier (perhaps by a process that died).
    pub fn existing_run(&self, id: &str) -> RunCgroup {
        RunCgroup {
            path: self.path.join(format!("{RUN_PREFIX}{id}")),
            procs: None,
        }
    }

    /// The run ids of the run cgroups present.
    pub fn run_ids(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                Some(name.strip_prefix(RUN_PREFIX)?.to_owned())
            })
            .collect()
    }
}

/// One run's cgroup.
#[derive(Debug)]
pub struct RunCgroup {
    pub path: PathBuf,
    procs: Option<OwnedFd>,
}

impl RunCgroup {
    /// The `cgroup.procs` descriptor the child writes itself into.
    pub fn procs_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.procs.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Writes the limits; each one reports whether it holds.
    pub fn apply(&self, root: &CgroupRoot, limits: &Limits) -> Vec<LimitState> {
        let mut states = root.check_limits(limits);
        for ((_, _, file, raw, _), state) in limit_files(limits).into_iter().zip(&mut states) {
            if state.not_applied.is_none()
                && let Err(e) = write_str(&self.path.join(file), &raw)
            {
                state.not_applied = Some(format!("writing {file}: {e}"));
            }
        }
        states
    }

    /// Pids of the processes in it.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Whether no process is left in it (or it is gone).
    pub fn is_empty(&self) -> bool {
        match fs::read_to_string(self.path.join("cgroup.events")) {
            Ok(events) => events.lines().any(|l| l == "populated 0"),
            Err(_) => self.pids().is_empty(),
        }
    }

    /// Kills every process in it: `cgroup.kill` (Linux 5.14), else SIGKILL to each
    /// process until none is left.
    pub fn kill(&self) {
        if write_str(&self.path.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits up to `limit` for it to be empty; true once it is.
    pub fn wait_empty(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills what is left, waits for it to go, and removes the cgroup. A cgroup
    /// already gone is not an error.
    pub fn remove(&self) -> io::Result<()> {
        if !self.path.exists() {
            return Ok(());
        }
        self.kill();
        self.wait_empty(Duration::from_secs(5));
        let mut last = Ok(());
        for _ in 0..50 {
            last = match fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => Err(e),
            };
            std::thread::sleep(Duration::from_millis(10));
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_mount_and_own_group_are_read_from_proc() {
        let mountinfo = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                         35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                         41 31 0:38 / /sys/fs/cgroup/uni\\040fied rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            v2_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/uni fied"))
        );
        assert_eq!(v2_mount("31 23 0:28 / /x rw - tmpfs tmpfs rw\n"), None);
        assert_eq!(
            own_cgroup("4:memory:/x\n0::/system.slice/supervisor.service\n"),
            Some("/system.slice/supervisor.service".into())
        );
        assert_eq!(own_cgroup("4:memory:/x\n"), None);
    }

    /// A directory laid out as cgroupfs lays out a cgroup, for the limit logic.
    fn fake_root(offered: &str) -> (tempfile::TempDir, CgroupRoot) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cgroup.controllers"), offered).unwrap();
        fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        let root = prepare(dir.path(), false, true);
        (dir, root)
    }

    #[test]
    fn limits_are_written_where_the_controller_is_offered_and_reported_where_not() {
        let (_dir, root) = fake_root("cpuset cpu io memory hugetlb");
        assert_eq!(root.controllers, ["memory", "cpu"]);
        let lazy = prepare(&root.path, true, false);
        assert!(lazy.controllers.is_empty());
        let why = lazy.check_limits(&Limits {
            memory_max: Some(1 << 30),
            ..Limits::default()
        });
        assert!(
            why[0].not_applied.as_ref().unwrap().contains("restart it"),
            "{why:?}"
        );
        let run = root.create_run("r1").unwrap_err();
        // A plain directory has no cgroup.procs: making a run fails cleanly.
        assert_eq!(run.kind(), io::ErrorKind::NotFound);
        assert!(!root.path.join("run-r1").exists());

        let run_dir = root.path.join("run-r2");
        fs::create_dir(&run_dir).unwrap();
        for f in ["memory.max", "pids.max", "cpu.max"] {
            fs::write(run_dir.join(f), "max").unwrap();
        }
        let limits = Limits {
            memory_max: Some(64 << 20),
            pids_max: Some(32),
            cpu_max: Some(150),
        };
        let states = root.existing_run("r2").apply(&root, &limits);
        let read = |f: &str| fs::read_to_string(run_dir.join(f)).unwrap();
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("cpu.max"), "150000 100000");
        assert_eq!(
            read("pids.max"),
            "max",
            "no pids controller: nothing written"
        );
        let names: Vec<(&str, bool)> = states
            .iter()
            .map(|s| (s.name, s.not_applied.is_none()))
            .collect();
        assert_eq!(
            names,
            [("memory_max", true), ("pids_max", false), ("cpu_max", true)]
        );
        assert!(
            states[1]
                .not_applied
                .as_ref()
                .unwrap()
                .contains("pids controller")
        );
    }

    #[test]
    fn without_a_subtree_every_limit_says_why() {
        let limits = Limits {
            memory_max: Some(1 << 30),
            ..Limits::default()
        };
        let states = limits_without(&limits, "no cgroup v2");
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].value, format!("{} bytes", 1u64 << 30));
        assert_eq!(states[0].not_applied.as_deref(), Some("no cgroup v2"));
        assert!(limits_without(&Limits::default(), "x").is_empty());
    }
}
