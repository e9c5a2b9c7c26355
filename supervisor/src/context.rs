//! What every command needs: the config, the state directory, the store,
//! the master key, and who is at the keyboard.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use supervisor_config::{Config, Member};
use supervisor_store::{MasterKey, Store};

use crate::cli::Global;
use crate::fail::Failure;

/// The config file used when neither --config nor $SUPERVISOR_CONFIG names one.
pub const DEFAULT_CONFIG: &str = "supervisor.toml";

/// A loaded config and the paths derived from it.
pub struct Context {
    pub config: Config,
    pub state_dir: PathBuf,
    pub key_file: PathBuf,
}

impl Context {
    /// Loads and validates the config, and works out the state directory:
    /// --state-dir, else the config's `state_dir`, else systemd's
    /// `$STATE_DIRECTORY`, else `state` beside the config file.
    pub fn load(global: &Global) -> Result<Context> {
        let path = global
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        if !path.exists() {
            return Err(Failure::new(format!("no config file at {}", path.display()))
                .hint("pass --config FILE or set SUPERVISOR_CONFIG; examples/supervisor.toml is a starting point")
                .into());
        }
        let config = Config::load(&path)?;
        let state_dir = global
            .state_dir
            .clone()
            .or_else(|| config.state_dir.clone())
            .or_else(|| std::env::var_os("STATE_DIRECTORY").map(PathBuf::from))
            .unwrap_or_else(|| {
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .join("state")
            });
        let key_file = config
            .key_file
            .clone()
            .unwrap_or_else(|| state_dir.join("master.key"));
        Ok(Context {
            config,
            state_dir,
            key_file,
        })
    }

    /// The master key, from systemd's credentials or the key file.
    pub fn key(&self) -> Result<MasterKey> {
        let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Ok(MasterKey::load(&self.key_file, creds.as_deref())?)
    }

    /// The store, with the master key when `unlocked`.
    pub fn store(&self, unlocked: bool) -> Result<Store> {
        let key = if unlocked { Some(self.key()?) } else { None };
        Ok(Store::open(&self.state_dir, key.as_ref())?)
    }

    /// The member whose `unix_user` is the user running this command.
    pub fn me(&self) -> Result<Option<&Member>> {
        let user = os_user()?;
        Ok(self.config.member_by_unix_user(&user))
    }

    /// Like [`Context::me`], but a user that is no member is an error that
    /// says which `[[members]]` entry to add.
    pub fn require_me(&self) -> Result<&Member> {
        let user = os_user()?;
        self.config.member_by_unix_user(&user).ok_or_else(|| {
            Failure::new(format!(
                "the user `{user}` is not a member of team `{}`",
                self.config.team.name
            ))
            .hint(format!(
                "add to {}:\n\n  [[members]]\n  name = \"{user}\"\n  unix_user = \"{user}\"\n",
                self.config.path.display()
            ))
            .into()
        })
    }
}

/// The name of the user running this process.
pub fn os_user() -> Result<String> {
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid)
        .context("looking up the current user")?
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    Ok(user)
}
