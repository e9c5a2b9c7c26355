//! The SQLite database: files, pragmas, schema migrations, and the [`Store`]
//! handle that the other modules extend.
//!
//! Durability: commits do not wait for the disk by default
//! (`synchronous=NORMAL`); the writes that are evidence ([`Sync::Full`]: a
//! run's injection record, secret changes) are synced before they return,
//! and secret changes then empty the write-ahead log of older pages.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::crypto::{Cipher, KeyCheck};
use crate::evidence::AuditKey;
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

/// How long a checkpoint that must empty the log keeps trying.
const CHECKPOINT_PATIENCE: Duration = Duration::from_secs(30);

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
    // 2: a keyed, sealed audit chain. `subject` names the secret an entry
    // is about (for the newest entry about a secret); the seal (one row)
    // names the last entry and the sum of the secret rows' fingerprints.
    // Existing chains are sealed the first time the key opens the store.
    r#"
    ALTER TABLE audit ADD COLUMN subject TEXT;
    CREATE INDEX audit_by_subject ON audit (subject, seq) WHERE subject IS NOT NULL;
    CREATE TABLE audit_seal (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        anchor  INTEGER NOT NULL,   -- the first entry authenticated with the audit key
        seq     INTEGER NOT NULL,   -- the last entry
        hash    TEXT NOT NULL,      -- its MAC
        secrets TEXT NOT NULL,      -- sum of the secret rows' fingerprints
        mac     TEXT NOT NULL       -- HMAC of the above under the audit key
    ) STRICT;
    "#,
    // 3: a secret whose value a run's output showed (redacted): the last such run, when,
    // and how many runs since the value was last set.
    r#"
    ALTER TABLE secrets ADD COLUMN leaked_run TEXT;
    ALTER TABLE secrets ADD COLUMN leaked_at TEXT;
    ALTER TABLE secrets ADD COLUMN leaked_runs INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// Whether a write must be on disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    /// On disk at the next synced commit or checkpoint.
    Normal,
    /// The write-ahead log is synced as the transaction commits.
    Full,
}

/// An open store. Metadata operations work without the master key; sealing
/// and opening values need it.
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) cipher: Option<Cipher>,
    pub(crate) audit_key: Option<AuditKey>,
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
        ensure_private_dir(state_dir)?;
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
        let audit = AuditKey::derive(key);
        write_tx(&mut store.conn, Sync::Full, |tx| {
            let existing: Option<Vec<u8>> = tx
                .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            match existing {
                Some(check) if cipher.read_key_check(&check).is_none() => Err(StoreError::WrongKey),
                Some(_) => Ok(()),
                None => {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES ('key_check', ?1)",
                        [cipher.key_check()?],
                    )?;
                    crate::seal::seal_new(tx, &audit)
                }
            }
        })?;
        store.unlock(key)?;
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

    /// Adds the master key to an open store after checking it. A store
    /// whose audit chain predates keyed entries is sealed now, once (see
    /// `seal::anchor_existing`).
    pub fn unlock(&mut self, key: &MasterKey) -> Result<()> {
        let cipher = Cipher::new(key);
        let audit = AuditKey::derive(key);
        match self.key_check(&cipher)? {
            None => return Err(StoreError::WrongKey),
            Some(KeyCheck::Sealed) => {}
            Some(KeyCheck::Unsealed) => {
                write_tx(&mut self.conn, Sync::Full, |tx| {
                    // Another process may have sealed it while we waited.
                    let check: Vec<u8> =
                        tx.query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                            r.get(0)
                        })?;
                    if cipher.read_key_check(&check) == Some(KeyCheck::Unsealed) {
                        crate::seal::anchor_existing(tx, &audit)?;
                        tx.execute(
                            "UPDATE meta SET value = ?1 WHERE key = 'key_check'",
                            [cipher.key_check()?],
                        )?;
                    }
                    Ok(())
                })?;
            }
        }
        self.cipher = Some(cipher);
        self.audit_key = Some(audit);
        Ok(())
    }

    fn key_check(&self, cipher: &Cipher) -> Result<Option<KeyCheck>> {
        let check: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(check.and_then(|c| cipher.read_key_check(&c)))
    }

    /// Copies the write-ahead log into the database, syncs both, and empties
    /// the log. Afterwards every committed change is on disk, and no earlier
    /// version of a page (a deleted or replaced ciphertext) is left in the
    /// log. Waits for readers of older snapshots; if one outlasts the busy
    /// timeout, what it still reads stays in the log until the next call.
    ///
    /// A checkpoint that other processes keep from finishing (a reader of an
    /// older snapshot, or writers that keep the log busy) is tried again
    /// until [`CHECKPOINT_PATIENCE`] has passed, then reported as
    /// [`StoreError::CheckpointBusy`]: never ignored.
    pub fn checkpoint(&self) -> Result<()> {
        let deadline = std::time::Instant::now() + CHECKPOINT_PATIENCE;
        let mut pause = Duration::from_millis(2);
        loop {
            // (busy, frames in the log, frames copied into the database).
            let (busy, log, copied): (i64, i64, i64) =
                self.conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?;
            if busy == 0 {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::CheckpointBusy {
                    path: self.path.clone(),
                    left: (log - copied).max(0),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn cipher(&self) -> Result<&Cipher> {
        self.cipher.as_ref().ok_or(StoreError::KeyRequired)
    }

    pub(crate) fn audit_key(&self) -> Result<&AuditKey> {
        self.audit_key.as_ref().ok_or(StoreError::KeyRequired)
    }

    /// Runs `f` in one write transaction that may append audit entries
    /// (see [`write_tx`]): it needs the master key.
    pub(crate) fn write<T>(
        &mut self,
        sync: Sync,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &AuditKey) -> Result<T>,
    ) -> Result<T> {
        let key = self.audit_key.as_ref().ok_or(StoreError::KeyRequired)?;
        write_tx(&mut self.conn, sync, |tx| f(tx, key))
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
            audit_key: None,
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
/// halfway, and the audit chain sees a stable tail. With [`Sync::Full`] the
/// commit returns once the write-ahead log is on disk (one fsync).
pub(crate) fn write_tx<T>(
    conn: &mut Connection,
    sync: Sync,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
) -> Result<T> {
    if sync == Sync::Full {
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    let out = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    })();
    if sync == Sync::Full {
        let restored = conn.pragma_update(None, "synchronous", "NORMAL");
        if out.is_ok() {
            restored?;
        }
    }
    out
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
