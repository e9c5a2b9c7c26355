//! The SQLite database: files, pragmas, schema migrations, and the [`Store`]
//! handle that the other modules extend.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::crypto::Cipher;
use crate::key::MasterKey;
use crate::{Result, StoreError};

/// The file name of the database inside the state directory.
pub const DB_FILE: &str = "store.db";

/// Pages of write-ahead log after which a commit copies them into the
/// database. The first process to open the store reads the log whole, so it
/// is kept short: a run adds about a dozen pages.
const WAL_AUTOCHECKPOINT: i64 = 100;

/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Each entry migrates the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: secrets, audit chain, runs, webhook deliveries.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) STRICT;
    CREATE TABLE secrets (
        id          INTEGER PRIMARY KEY,
        scope       TEXT NOT NULL CHECK (scope IN ('team', 'personal')),
        owner       TEXT NOT NULL,           -- '' for team secrets
        name        TEXT NOT NULL,
        description TEXT,
        version     INTEGER NOT NULL,
        nonce       BLOB NOT NULL,
        ciphertext  BLOB NOT NULL,
        created_at  TEXT NOT NULL,
        created_by  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        updated_by  TEXT NOT NULL,
        UNIQUE (scope, owner, name)
    ) STRICT;
    CREATE TABLE audit (
        seq       INTEGER PRIMARY KEY,
        at        TEXT NOT NULL,
        actor     TEXT,
        action    TEXT NOT NULL,
        detail    TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    ) STRICT;
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        agent       TEXT NOT NULL,
        trigger     TEXT NOT NULL,
        member      TEXT,
        pid         INTEGER,                 -- the supervisor process that runs it
        status      TEXT NOT NULL,
        exit_code   INTEGER,
        signal      INTEGER,
        reason      TEXT,
        started_at  TEXT NOT NULL,
        ended_at    TEXT,
        log_bytes   INTEGER NOT NULL DEFAULT 0,
        redactions  INTEGER NOT NULL DEFAULT 0,
        detail      TEXT NOT NULL DEFAULT '{}'
    ) STRICT;
    CREATE INDEX runs_by_agent ON runs (agent, id);
    CREATE INDEX runs_by_status ON runs (status);
    CREATE TABLE deliveries (
        source  TEXT NOT NULL,
        key     TEXT NOT NULL,
        seen_at INTEGER NOT NULL,
        PRIMARY KEY (source, key)
    ) STRICT;
    CREATE INDEX deliveries_by_age ON deliveries (seen_at);
    "#,
    // 2: a secret whose value a run's output showed (redacted): the last such run, when,
    // and how many runs since the value was last set.
    r#"
    ALTER TABLE secrets ADD COLUMN leaked_run TEXT;
    ALTER TABLE secrets ADD COLUMN leaked_at TEXT;
    ALTER TABLE secrets ADD COLUMN leaked_runs INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// An open store. Metadata operations work without the master key; sealing
/// and opening values need it.
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) cipher: Option<Cipher>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("unlocked", &self.cipher.is_some())
            .finish()
    }
}

impl Store {
    /// Creates the state directory (0700) and the database (0600) if they
    /// are missing, migrates the schema, and records the key check on first
    /// use. Idempotent: a second call with the same key changes nothing.
    pub fn init(state_dir: &Path, key: &MasterKey) -> Result<Store> {
        create_private_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        if !path.exists() {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| StoreError::io("create", &path, e))?;
        }
        let mut store = Store::connect(&path)?;
        store.migrate()?;
        let cipher = Cipher::new(key);
        let existing: Option<Vec<u8>> = store
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match existing {
            Some(check) if !cipher.verify_key_check(&check) => return Err(StoreError::WrongKey),
            Some(_) => {}
            None => {
                store.conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('key_check', ?1)",
                    [cipher.key_check()?],
                )?;
            }
        }
        store.cipher = Some(cipher);
        // A store that lost its key check to a power cut would refuse its key.
        store.checkpoint()?;
        Ok(store)
    }

    /// Opens an existing store. With a key, checks that it is this store's
    /// key ([`StoreError::WrongKey`] otherwise).
    pub fn open(state_dir: &Path, key: Option<&MasterKey>) -> Result<Store> {
        let path = state_dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::StoreMissing { path });
        }
        let mut store = Store::connect(&path)?;
        store.migrate()?;
        if let Some(key) = key {
            store.unlock(key)?;
        }
        Ok(store)
    }

    /// Adds the master key to an open store after checking it.
    pub fn unlock(&mut self, key: &MasterKey) -> Result<()> {
        let cipher = Cipher::new(key);
        let check: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match check {
            Some(check) if cipher.verify_key_check(&check) => {
                self.cipher = Some(cipher);
                Ok(())
            }
            _ => Err(StoreError::WrongKey),
        }
    }

    /// Copies the write-ahead log into the database, syncs both, and empties
    /// the log. Afterwards every committed change is on disk, and no earlier
    /// version of a page (a deleted or replaced ciphertext) is left in the
    /// log. Waits for readers of older snapshots; if one outlasts the busy
    /// timeout, what it still reads stays in the log until the next call.
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn cipher(&self) -> Result<&Cipher> {
        self.cipher.as_ref().ok_or(StoreError::KeyRequired)
    }

    /// Runs `f` in one write transaction (see [`write_tx`]).
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        write_tx(&mut self.conn, f)
    }

    fn connect(path: &Path) -> Result<Store> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "could not switch the database to WAL mode (got {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Freed pages are overwritten, so nothing deleted lingers in the file.
        conn.pragma_update(None, "secure_delete", "ON")?;
        // Commits do not wait for the disk (synchronous=NORMAL), and closing
        // does not copy the log into the database either: that checkpoint
        // cost a short-lived command (every `supervisor run`) four fsyncs,
        // most of its time. The log stays short instead (a commit copies it
        // back once it grows past WAL_AUTOCHECKPOINT pages), and the writes
        // that must be on disk at once call `checkpoint`.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
        Ok(Store {
            conn,
            cipher: None,
            path: path.to_owned(),
        })
    }

    fn migrate(&mut self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        let current: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current > known {
            return Err(StoreError::SchemaTooNew {
                path: self.path.clone(),
                found: current,
                known,
            });
        }
        if current == known {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (version, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version as i64 + 1)?;
        }
        tx.commit()?;
        self.checkpoint()
    }
}

/// Runs `f` in an IMMEDIATE transaction: the write lock is taken at the
/// start, so concurrent writers queue (busy timeout) instead of failing
/// halfway, and the audit chain sees a stable tail.
pub(crate) fn write_tx<T>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

/// Creates `dir` (and parents) with mode 0700, and tightens an existing one.
pub fn create_private_dir(dir: &Path) -> Result<()> {
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
        s.write(|tx| {
            tx.execute("INSERT INTO meta (key, value) VALUES ('probe', x'00')", [])?;
            Ok(())
        })
        .unwrap();
        drop(s);
        assert!(len() > 0, "closing left the commit in the log");
        let s = Store::open(dir.path(), None).unwrap();
        s.checkpoint().unwrap();
        assert_eq!(len(), 0);
        let probe: Vec<u8> = s
            .conn
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
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(
            Store::open(dir.path(), None),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }
}
