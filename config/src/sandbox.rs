//! Containment settings: the `[sandbox]` section (where runs' cgroups live,
//! the account agents run as, a policy common to every agent) and each
//! agent's own policy and limits. Which of them a host can honour is decided
//! by the binary at start; this module only checks what is written.

use std::path::PathBuf;

use toml::Spanned;

use crate::load::Validator;
use crate::raw::{RawAgent, RawSandbox};
use crate::units::parse_size;

/// Where each run's cgroup is created.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CgroupSetting {
    /// The cgroup systemd delegated to the service (`Delegate=yes`), when there
    /// is one; otherwise none, with a warning.
    #[default]
    Auto,
    /// No cgroups: runs are tracked by process group only.
    Off,
    /// A directory of the cgroup v2 file system that the supervisor owns.
    Root(PathBuf),
}

/// `[sandbox]`: containment settings shared by every agent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sandbox {
    pub cgroup: CgroupSetting,
    /// The account agents without `user` run as, when the supervisor may
    /// switch users (it runs as root or holds `CAP_SETUID`).
    pub agent_user: Option<String>,
    /// Paths every agent may read; present (even empty) means every agent
    /// runs under a filesystem policy.
    pub read: Option<Vec<PathBuf>>,
    /// Paths every agent may write; as `read`.
    pub write: Option<Vec<PathBuf>>,
}

/// Resource limits of one agent's runs (cgroup v2 controllers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `memory.max`, in bytes.
    pub memory_max: Option<u64>,
    /// `pids.max`: processes and threads alive at once.
    pub pids_max: Option<u64>,
    /// `cpu.max`, in percent of one CPU (150 = one and a half CPUs).
    pub cpu_max: Option<u32>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// What one agent may touch, beyond what every agent gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentPolicy {
    /// Extra paths it may read (and execute); `Some` means it declares a policy.
    pub read: Option<Vec<PathBuf>>,
    /// Extra paths it may write; `Some` means it declares a policy.
    pub write: Option<Vec<PathBuf>>,
    /// `false`: a network namespace of its own with only a loopback interface.
    pub network: bool,
    pub limits: Limits,
    /// Runs it even where nothing keeps it from the key and the store.
    pub allow_unconfined: bool,
}

impl Validator<'_> {
    pub(crate) fn sandbox(&mut self, raw: Option<RawSandbox>) -> Sandbox {
        let Some(raw) = raw else {
            return Sandbox::default();
        };
        let cgroup = match raw.cgroup {
            None => CgroupSetting::Auto,
            Some(value) => match value.get_ref().as_str() {
                "auto" => CgroupSetting::Auto,
                "off" => CgroupSetting::Off,
                path if path.starts_with('/') => CgroupSetting::Root(PathBuf::from(path)),
                _ => {
                    self.report(
                        &value,
                        format!("`cgroup` = `{}` is not auto, off or an absolute path", value.get_ref()),
                        Some("write \"auto\", \"off\" or a directory of the cgroup v2 file system, e.g. \"/sys/fs/cgroup/supervisor\""),
                    );
                    CgroupSetting::Auto
                }
            },
        };
        if let Some(user) = &raw.agent_user
            && user.get_ref().trim().is_empty()
        {
            self.report(
                user,
                "`agent_user` is empty",
                Some("name an account, or remove the key"),
            );
        }
        Sandbox {
            cgroup,
            agent_user: raw.agent_user.map(Spanned::into_inner),
            read: raw.read.map(|l| self.paths(l, "read")),
            write: raw.write.map(|l| self.paths(l, "write")),
        }
    }

    /// The policy and limits keys of one `[[agents]]` entry.
    pub(crate) fn agent_policy(&mut self, a: &mut RawAgent) -> AgentPolicy {
        let memory_max = a
            .memory_max
            .take()
            .and_then(|v| match parse_size(v.get_ref()) {
                Ok(n) if n >= 1024 * 1024 => Some(n),
                Ok(_) => {
                    self.report(&v, "`memory_max` must be at least 1 MiB", None);
                    None
                }
                Err(e) => {
                    self.report(
                        &v,
                        format!("bad `memory_max`: {e}"),
                        Some("write a size such as \"512 MiB\""),
                    );
                    None
                }
            });
        let pids_max = a.pids_max.take().and_then(|v| {
            if *v.get_ref() == 0 {
                self.report(
                    &v,
                    "`pids_max` must be at least 1",
                    Some("the agent itself is one process"),
                );
                None
            } else {
                Some(v.into_inner())
            }
        });
        let cpu_max = a
            .cpu_max
            .take()
            .and_then(|v| match parse_percent(v.get_ref()) {
                Some(p) if p > 0 => Some(p),
                _ => {
                    self.report(
                        &v,
                        format!(
                            "`cpu_max` = `{}` is not a percentage of one CPU",
                            v.get_ref()
                        ),
                        Some("write e.g. \"50%\" (half a CPU) or \"200%\" (two CPUs)"),
                    );
                    None
                }
            });
        AgentPolicy {
            read: a.read.take().map(|l| self.paths(l, "read")),
            write: a.write.take().map(|l| self.paths(l, "write")),
            network: a.network.unwrap_or(true),
            limits: Limits {
                memory_max,
                pids_max,
                cpu_max,
            },
            allow_unconfined: a.allow_unconfined.unwrap_or(false),
        }
    }

    /// A list of paths, each made absolute against the config file's folder.
    fn paths(&mut self, list: Vec<Spanned<String>>, key: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for item in list {
            if item.get_ref().trim().is_empty() {
                self.report(&item, format!("an empty path in `{key}`"), None);
                continue;
            }
            out.push(self.path(item.get_ref()));
        }
        out
    }
}

/// `"50%"` -> 50.
fn parse_percent(text: &str) -> Option<u32> {
    text.trim().strip_suffix('%')?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_percent;

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("50%"), Some(50));
        assert_eq!(parse_percent(" 250 % "), Some(250));
        assert_eq!(parse_percent("50"), None);
        assert_eq!(parse_percent("x%"), None);
    }
}
