//! The [`Store`] handle over either backend: where it lives ([`Location`]),
//! first initialisation, the key check, and the transactions that the other
//! modules' logic runs in.

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::backend::{Appends, Sync, Tx};
use crate::crypto::{Cipher, KeyCheck};
use crate::evidence::AuditKey;
use crate::key::MasterKey;
use crate::postgres::{PgLocation, Postgres};
use crate::sqlite::Sqlite;
use crate::{Result, StoreError};

pub use crate::sqlite::DB_FILE;

/// Where a store lives.
#[derive(Debug, Clone)]
pub enum Location {
    /// `store.db` in this state directory (the default).
    Sqlite(PathBuf),
    /// A PostgreSQL database that several supervisors share.
    Postgres(Box<PgLocation>),
}

impl Location {
    /// Whether several supervisors may share this store (and so must
    /// agree on cron firings, run slots and leases through it).
    pub fn is_shared(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }

    /// The store as it may be shown (never a password).
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(dir) => dir.join(DB_FILE).display().to_string(),
            Location::Postgres(pg) => pg.place().to_owned(),
        }
    }
}

/// This process's id among the nodes that share a store: fresh at each
/// start, the same for every handle the process opens.
pub fn node_id() -> &'static str {
    static NODE: OnceLock<String> = OnceLock::new();
    NODE.get_or_init(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap_or_else(|_| {
            // Without randomness, time and pid still tell processes apart.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            bytes = (t ^ u64::from(std::process::id())).to_be_bytes();
        });
        hex::encode(bytes)
    })
}

/// The database behind a store.
pub(crate) enum Backend {
    Sqlite(Sqlite),
    Postgres(Box<Postgres>),
}

impl Backend {
    pub(crate) fn read<T: Send>(
        &mut self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T> + Send,
    ) -> Result<T> {
        match self {
            Backend::Sqlite(db) => db.read(f),
            Backend::Postgres(db) => db.read(f),
        }
    }

    pub(crate) fn write<T: Send>(
        &mut self,
        sync: Sync,
        appends: Appends,
        f: impl FnOnce(&mut dyn Tx) -> Result<T> + Send,
    ) -> Result<T> {
        match self {
            Backend::Sqlite(db) => db.write(sync, f),
            Backend::Postgres(db) => db.write(sync, appends, f),
        }
    }
}

/// An open store. Metadata operations work without the master key; sealing
/// and opening values need it.
pub struct Store {
    pub(crate) db: Backend,
    pub(crate) cipher: Option<Cipher>,
    pub(crate) audit_key: Option<AuditKey>,
    location: Location,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location.describe())
            .field("unlocked", &self.cipher.is_some())
            .finish()
    }
}

impl Store {
    /// [`Store::init_at`] for SQLite in `state_dir`.
    pub fn init(state_dir: &Path, key: &MasterKey) -> Result<Store> {
        Store::init_at(&Location::Sqlite(state_dir.to_owned()), key)
    }

    /// [`Store::open_at`] for SQLite in `state_dir`.
    pub fn open(state_dir: &Path, key: Option<&MasterKey>) -> Result<Store> {
        Store::open_at(&Location::Sqlite(state_dir.to_owned()), key)
    }

    /// Creates the store if it is missing (SQLite: the state directory,
    /// 0700, and the database, 0600; PostgreSQL: the schema in the given,
    /// possibly empty, database), migrates it, and records the key check on
    /// first use. Idempotent: a second call with the same key changes nothing.
    pub fn init_at(location: &Location, key: &MasterKey) -> Result<Store> {
        if let Location::Sqlite(dir) = location {
            ensure_private_dir(dir)?;
            Sqlite::create(dir)?;
        }
        let mut store = Store::connect(location)?;
        let cipher = Cipher::new(key);
        let audit = AuditKey::derive(key);
        let first = |tx: &mut dyn Tx| match tx.meta("key_check")? {
            Some(check) if cipher.read_key_check(&check).is_none() => Err(StoreError::WrongKey),
            Some(_) => Ok(()),
            None => {
                tx.set_meta("key_check", &cipher.key_check()?)?;
                crate::seal::seal_new(tx, &audit)
            }
        };
        match &mut store.db {
            Backend::Sqlite(db) => db.write(Sync::Full, first)?,
            // Nodes initialising an empty database at once: one of them does.
            Backend::Postgres(db) => db.exclusive(first)?,
        }
        store.unlock(key)?;
        // A store that lost its key check to a power cut would refuse its key.
        store.checkpoint()?;
        Ok(store)
    }

    /// Opens an existing store. With a key, checks that it is this store's
    /// key ([`StoreError::WrongKey`] otherwise).
    pub fn open_at(location: &Location, key: Option<&MasterKey>) -> Result<Store> {
        let mut store = Store::connect(location)?;
        if let Backend::Postgres(_) = store.db {
            // An empty database is no store yet.
            let initialised = store.db.read(|tx| Ok(tx.meta("key_check")?.is_some()))?;
            if !initialised {
                return Err(StoreError::NotInitialised {
                    place: location.describe(),
                });
            }
        }
        if let Some(key) = key {
            store.unlock(key)?;
        }
        Ok(store)
    }

    /// [`Store::open_at`] as another node than this process (tests that
    /// play several nodes in one process).
    #[cfg(test)]
    pub(crate) fn open_as(location: &Location, key: &MasterKey, node: &str) -> Result<Store> {
        let mut store = Store::connect_as(location, node)?;
        store.unlock(key)?;
        Ok(store)
    }

    fn connect(location: &Location) -> Result<Store> {
        Store::connect_as(location, node_id())
    }

    fn connect_as(location: &Location, node: &str) -> Result<Store> {
        let db = match location {
            Location::Sqlite(dir) => Backend::Sqlite(Sqlite::open(dir)?),
            Location::Postgres(pg) => Backend::Postgres(Box::new(Postgres::open(pg, node)?)),
        };
        Ok(Store {
            db,
            cipher: None,
            audit_key: None,
            location: location.clone(),
        })
    }

    /// Adds the master key to an open store after checking it. A store
    /// whose audit chain predates keyed entries is sealed now, once (see
    /// `seal::anchor_existing`).
    pub fn unlock(&mut self, key: &MasterKey) -> Result<()> {
        let cipher = Cipher::new(key);
        let audit = AuditKey::derive(key);
        let check = self.db.read(|tx| tx.meta("key_check"))?;
        match check.and_then(|c| cipher.read_key_check(&c)) {
            None => return Err(StoreError::WrongKey),
            Some(KeyCheck::Sealed) => {}
            Some(KeyCheck::Unsealed) => {
                self.db.write(Sync::Full, Appends::Yes, |tx| {
                    // Another process may have sealed it while we waited.
                    let check = tx.meta("key_check")?.unwrap_or_default();
                    if cipher.read_key_check(&check) == Some(KeyCheck::Unsealed) {
                        crate::seal::anchor_existing(tx, &audit)?;
                        tx.set_meta("key_check", &cipher.key_check()?)?;
                    }
                    Ok(())
                })?;
            }
        }
        self.cipher = Some(cipher);
        self.audit_key = Some(audit);
        Ok(())
    }

    /// Makes every committed change durable and, on SQLite, empties the
    /// write-ahead log, so that no earlier version of a changed row (a
    /// deleted or replaced ciphertext) is left in it. PostgreSQL's commits
    /// of such changes are durable already ([`Sync::Full`]); what it keeps
    /// of older row versions is described in the README.
    pub fn checkpoint(&self) -> Result<()> {
        match &self.db {
            Backend::Sqlite(db) => db.checkpoint(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Where the store lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The store as it may be shown: the database file, or the PostgreSQL
    /// database without its password.
    pub fn describe(&self) -> String {
        match &self.db {
            Backend::Sqlite(db) => db.path.display().to_string(),
            Backend::Postgres(db) => db.place().to_owned(),
        }
    }

    /// Whether several supervisors may share this store.
    pub fn is_shared(&self) -> bool {
        self.location.is_shared()
    }

    pub(crate) fn cipher(&self) -> Result<&Cipher> {
        self.cipher.as_ref().ok_or(StoreError::KeyRequired)
    }

    /// Runs `f` in one write transaction that appends audit entries: it
    /// needs the master key, and holds the seal from its start.
    pub(crate) fn write<T: Send>(
        &mut self,
        sync: Sync,
        f: impl FnOnce(&mut dyn Tx, &AuditKey) -> Result<T> + Send,
    ) -> Result<T> {
        let key = self.audit_key.as_ref().ok_or(StoreError::KeyRequired)?;
        self.db.write(sync, Appends::Yes, |tx| f(tx, key))
    }

    /// The SQLite connection, for tests that play an attacker with write
    /// access to the file.
    #[cfg(test)]
    pub(crate) fn conn(&self) -> &rusqlite::Connection {
        match &self.db {
            Backend::Sqlite(db) => &db.conn,
            Backend::Postgres(_) => panic!("not a SQLite store"),
        }
    }
}

/// Makes sure `dir` exists and is private: creates it (and parents) with
/// mode 0700, or tightens an existing one to 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StoreError::io("create directory", dir, e))?;
    let meta = std::fs::metadata(dir).map_err(|e| StoreError::io("inspect", dir, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::io("restrict permissions of", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_idempotent_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let key = MasterKey::from_bytes([9; 32]);
        Store::init(&state, &key).unwrap();
        Store::init(&state, &key).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        for entry in std::fs::read_dir(&state).unwrap() {
            let p = entry.unwrap().path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }

    #[test]
    fn closing_keeps_the_log_and_a_checkpoint_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(dir.path(), &MasterKey::from_bytes([3; 32])).unwrap();
        let wal = dir.path().join("store.db-wal");
        let len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
        assert_eq!(len(), 0, "init ends with a checkpoint");
        s.write(Sync::Normal, |tx, _| {
            tx.set_meta("probe", &[0])?;
            Ok(())
        })
        .unwrap();
        drop(s);
        assert!(len() > 0, "closing left the commit in the log");
        let s = Store::open(dir.path(), None).unwrap();
        s.checkpoint().unwrap();
        assert_eq!(len(), 0);
        let probe: Vec<u8> = s
            .conn()
            .query_row("SELECT value FROM meta WHERE key = 'probe'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(probe, [0]);
    }

    #[test]
    fn wrong_key_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        Store::init(dir.path(), &MasterKey::from_bytes([1; 32])).unwrap();
        let other = MasterKey::from_bytes([2; 32]);
        let err = Store::open(dir.path(), Some(&other)).unwrap_err();
        assert_eq!(err.to_string(), "this master key does not open this store");
        assert!(matches!(
            Store::init(dir.path(), &other),
            Err(StoreError::WrongKey)
        ));
    }

    #[test]
    fn missing_store_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Store::open(dir.path(), None),
            Err(StoreError::StoreMissing { .. })
        ));
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::init(dir.path(), &MasterKey::from_bytes([1; 32])).unwrap();
        s.conn().pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(
            Store::open(dir.path(), None),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }
}
