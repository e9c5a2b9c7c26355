//! The embedded backend: one SQLite file in the state directory, its
//! pragmas, its schema migrations and its transactions.
//!
//! Durability: commits do not wait for the disk by default
//! (`synchronous=NORMAL`); the writes that are evidence ([`Sync::Full`]: a
//! run's injection record, secret changes) are synced before they return,
//! and secret changes then empty the write-ahead log of older pages.

mod tx;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::backend::{Sync, Tx};
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

/// Each entry migrates the schema from version `index` to `index + 1`
/// (`PRAGMA user_version`).
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

/// The SQLite database of a store.
pub(crate) struct Sqlite {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl Sqlite {
    /// Creates the database file (0600) when it is missing.
    pub(crate) fn create(state_dir: &Path) -> Result<()> {
        let path = state_dir.join(DB_FILE);
        if !path.exists() {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| StoreError::io("create", &path, e))?;
        }
        Ok(())
    }

    /// Opens the database in `state_dir` and migrates its schema.
    pub(crate) fn open(state_dir: &Path) -> Result<Sqlite> {
        let path = state_dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::StoreMissing { path });
        }
        let mut db = Sqlite::connect(&path)?;
        db.migrate()?;
        Ok(db)
    }

    fn connect(path: &Path) -> Result<Sqlite> {
        let conn = open_wal(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        // Every statement the store runs fits: each is parsed once.
        conn.set_prepared_statement_cache_capacity(64);
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
        Ok(Sqlite {
            conn,
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
                place: self.path.display().to_string(),
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

    /// Runs `f` in a read transaction: one snapshot for all it reads.
    pub(crate) fn read<T>(&mut self, f: impl FnOnce(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let out = f(&mut tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` in an IMMEDIATE transaction: the write lock is taken at the
    /// start, so concurrent writers queue (busy timeout) instead of failing
    /// halfway, and the audit chain sees a stable tail. With [`Sync::Full`]
    /// the commit returns once the write-ahead log is on disk (one fsync).
    pub(crate) fn write<T>(
        &mut self,
        sync: Sync,
        f: impl FnOnce(&mut dyn Tx) -> Result<T>,
    ) -> Result<T> {
        if sync == Sync::Full {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        let out = (|| {
            let mut tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })();
        if sync == Sync::Full {
            let restored = self.conn.pragma_update(None, "synchronous", "NORMAL");
            if out.is_ok() {
                restored?;
            }
        }
        out
    }

    /// Copies the write-ahead log into the database, syncs both, and empties
    /// the log. Afterwards every committed change is on disk, and no earlier
    /// version of a page (a deleted or replaced ciphertext) is left in the
    /// log. A checkpoint that other processes keep from finishing (a reader
    /// of an older snapshot, or writers that keep the log busy) is tried
    /// again until [`CHECKPOINT_PATIENCE`] has passed, then reported as
    /// [`StoreError::CheckpointBusy`]: never ignored.
    pub(crate) fn checkpoint(&self) -> Result<()> {
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
}

/// Opens a database in WAL mode with the busy timeout, and makes sure the
/// directory entries of its files are on disk.
///
/// SQLite is built without its own directory syncs (`SQLITE_DISABLE_DIRSYNC`,
/// see `.cargo/config.toml`): it would sync the directory at the first commit
/// of every connection, because it cannot tell a write-ahead log it created
/// from one that was there. Here the directory is synced only when the
/// database or its log did not exist before, which is when a power cut could
/// lose the file itself along with the commits in it.
pub(crate) fn open_wal(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let existed = path.exists() && wal.exists();
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    switch_to_wal(&conn, path)?;
    if !existed {
        // The log is created by the first read of a connection.
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io("sync the directory of", path, e))?;
    }
    Ok(conn)
}

/// Puts the database in WAL mode (a no-op when it is already). The switch
/// needs the file to itself, and SQLite reports a connection that finds it
/// taken busy at once, without its busy handler: two processes opening a
/// fresh file together would see one of them fail. So it is retried for as
/// long as the busy handler would wait.
fn switch_to_wal(conn: &Connection, path: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(StoreError::Corrupt(format!(
                    "could not switch {} to WAL mode (got {mode})",
                    path.display()
                )));
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
