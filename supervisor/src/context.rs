//! What local commands need: the config, the state directory, the store and
//! the master key. In daemon mode the CLI has none of this (see `backend`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use supervisor_config::Config;
use supervisor_store::{Location, MasterKey, PgLocation, Store};

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
        let config = Config::load(&config_path(global)?)?;
        Ok(Context::with_config(global, config))
    }

    /// [`Context::load`], with every schedule's cron expression and time
    /// zone checked too (`config check` and the daemon, which would run them).
    pub fn load_checked(global: &Global) -> Result<Context> {
        let config = Config::load_with(&config_path(global)?, &supervisor_triggers::CronCheck)?;
        Ok(Context::with_config(global, config))
    }

    /// The paths derived from an already loaded config.
    pub fn with_config(global: &Global, config: Config) -> Context {
        let path = config.path.clone();
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
        Context {
            config,
            state_dir,
            key_file,
        }
    }

    /// The master key, from systemd's credentials or the key file.
    pub fn key(&self) -> Result<MasterKey> {
        let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Ok(MasterKey::load(&self.key_file, creds.as_deref())?)
    }

    /// Where the store lives: SQLite in the state directory, or the
    /// PostgreSQL database that `[store] url` points to.
    pub fn location(&self) -> Result<Location> {
        match &self.config.store.url {
            None => Ok(Location::Sqlite(self.state_dir.clone())),
            Some(reference) => {
                let url = crate::credentials::resolve(reference, "[store] url")?;
                let pg = PgLocation::parse(&url, self.config.store.lease())?;
                Ok(Location::Postgres(Box::new(pg)))
            }
        }
    }

    /// The store, with the master key when `unlocked`.
    pub fn store(&self, unlocked: bool) -> Result<Store> {
        let key = if unlocked { Some(self.key()?) } else { None };
        Ok(Store::open_at(&self.location()?, key.as_ref())?)
    }
}

/// The config file --config or $SUPERVISOR_CONFIG names (else
/// `./supervisor.toml`), which must exist.
pub fn config_path(global: &Global) -> Result<PathBuf> {
    let path = global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    if !path.exists() {
        return Err(Failure::new(format!("no config file at {}", path.display()))
            .hint("pass --config FILE or set SUPERVISOR_CONFIG; examples/supervisor.toml is a starting point")
            .into());
    }
    Ok(path)
}
