//! Deliveries already handled, so that a webhook retried by its sender (or
//! replayed by someone else) starts at most one run, across restarts.
//!
//! On SQLite, claims live in a database file of their own
//! (`deliveries.db`, beside the store), written only by the daemon: no
//! command holding the store's write lock can delay a claim. On PostgreSQL
//! they live in the shared database, on a connection of their own, so that
//! every node sees every claim (`postgres::claims`). Either way a claim is
//! on disk (synced) before the request that made it is answered, and each
//! source prunes its own claims with its own window.
//!
//! A claim may carry its work (the verified request body) until the run it
//! promised is recorded: a daemon that dies in between finds it at its next
//! start and takes it up again (on PostgreSQL, a live node adopts it once
//! the dead node's lease has run out), so an answered delivery is not lost.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

use crate::db::{Backend, Location, node_id};
use crate::postgres::{Postgres, claims};
use crate::{Result, Store, StoreError};

/// The file name of the claims database inside the state directory.
pub const DELIVERIES_FILE: &str = "deliveries.db";

/// How long a claim waits for another writer of the same file (only a
/// second daemon on the same state directory would be one).
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

const SCHEMA: &str = r#"
    CREATE TABLE IF NOT EXISTS deliveries (
        source  TEXT NOT NULL,
        key     TEXT NOT NULL,
        seen_at INTEGER NOT NULL,
        PRIMARY KEY (source, key)
    ) STRICT;
    CREATE INDEX IF NOT EXISTS deliveries_by_age ON deliveries (source, seen_at);
    CREATE TABLE IF NOT EXISTS pending (
        source  TEXT NOT NULL,
        key     TEXT NOT NULL,             -- the claim's first key
        meta    TEXT NOT NULL DEFAULT '',  -- what the source needs to check it again (JSON)
        body    BLOB NOT NULL,             -- the verified request body
        at      INTEGER NOT NULL,
        PRIMARY KEY (source, key)
    ) STRICT;
"#;

/// A claimed delivery whose run was not yet recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub source: String,
    pub key: String,
    /// What the caller kept with it to check and route it again (such as
    /// the signature headers and a hook's name).
    pub meta: String,
    pub body: Vec<u8>,
}

/// The daemon's record of claimed deliveries.
pub struct Deliveries {
    inner: Inner,
}

enum Inner {
    Sqlite { conn: Connection, path: PathBuf },
    Postgres(Box<Postgres>),
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = match &self.inner {
            Inner::Sqlite { path, .. } => path.display().to_string(),
            Inner::Postgres(db) => db.place().to_owned(),
        };
        f.debug_struct("Deliveries").field("place", &place).finish()
    }
}

impl Deliveries {
    /// Opens the claims of a store at `location`: `deliveries.db` in
    /// `state_dir` beside a SQLite store, the shared tables (on a
    /// connection of their own) of a PostgreSQL one.
    pub fn open_at(location: &Location, state_dir: &Path) -> Result<Deliveries> {
        match location {
            Location::Sqlite(_) => Deliveries::open(state_dir),
            Location::Postgres(pg) => Ok(Deliveries {
                inner: Inner::Postgres(Box::new(Postgres::open(pg, node_id())?)),
            }),
        }
    }

    /// The claims of a PostgreSQL store, as another node than this process.
    #[cfg(test)]
    pub(crate) fn open_as(location: &crate::PgLocation, node: &str) -> Result<Deliveries> {
        Ok(Deliveries {
            inner: Inner::Postgres(Box::new(Postgres::open(location, node)?)),
        })
    }

    /// Opens (creating, 0600) `deliveries.db` in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Deliveries> {
        let path = state_dir.join(DELIVERIES_FILE);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io("create", &path, e)),
        }
        let conn = crate::sqlite::open_wal(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Every claim is a promise to the sender: synced as it commits.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Deliveries {
            inner: Inner::Sqlite { conn, path },
        })
    }

    /// Claims a delivery of `source` known by every one of `keys` (such as
    /// its delivery id and its signature): `true` when none of them was
    /// claimed within `ttl_secs` (all are then claimed), `false` for a
    /// duplicate (nothing changes). Claims of `source` older than its window
    /// are pruned; other sources' claims are left alone. On disk when it
    /// returns.
    pub fn claim(
        &mut self,
        source: &str,
        keys: &[&str],
        now_unix: i64,
        ttl_secs: i64,
    ) -> Result<bool> {
        self.claim_inner(source, keys, now_unix, ttl_secs, None)
    }

    /// [`Deliveries::claim`], keeping the verified `body` and the caller's
    /// `meta` with the claim, in the same transaction, until
    /// [`Deliveries::finish`]: see [`Deliveries::pending`].
    pub fn claim_work(
        &mut self,
        source: &str,
        keys: &[&str],
        now_unix: i64,
        ttl_secs: i64,
        meta: &str,
        body: &[u8],
    ) -> Result<bool> {
        self.claim_inner(source, keys, now_unix, ttl_secs, Some((meta, body)))
    }

    fn claim_inner(
        &mut self,
        source: &str,
        keys: &[&str],
        now_unix: i64,
        ttl_secs: i64,
        work: Option<(&str, &[u8])>,
    ) -> Result<bool> {
        let conn = match &mut self.inner {
            Inner::Sqlite { conn, .. } => conn,
            Inner::Postgres(db) => {
                return db
                    .call(|c, ctx| claims::claim(c, ctx, source, keys, now_unix, ttl_secs, work));
            }
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM deliveries WHERE source = ?1 AND seen_at < ?2",
            params![source, now_unix - ttl_secs],
        )?;
        for key in keys {
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO deliveries (source, key, seen_at) VALUES (?1, ?2, ?3)",
                params![source, key, now_unix],
            )?;
            if inserted == 0 {
                // Dropping the transaction rolls back the keys claimed so far.
                return Ok(false);
            }
        }
        if let (Some((meta, body)), Some(first)) = (work, keys.first()) {
            tx.execute(
                "INSERT OR REPLACE INTO pending (source, key, meta, body, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![source, first, meta, body, now_unix],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// The run a claim promised is recorded (or nothing was to run): its
    /// work is dropped; the claim stays, for dedupe.
    pub fn finish(&mut self, source: &str, key: &str) -> Result<()> {
        let conn = match &mut self.inner {
            Inner::Sqlite { conn, .. } => conn,
            Inner::Postgres(db) => return db.call(|c, _| claims::finish(c, source, key)),
        };
        conn.execute(
            "DELETE FROM pending WHERE source = ?1 AND key = ?2",
            params![source, key],
        )?;
        Ok(())
    }

    /// Claimed deliveries whose runs were never recorded (their daemon died
    /// first), oldest first. On PostgreSQL, those of nodes whose lease ran
    /// out, which this node adopts (it must hold a lease itself).
    pub fn pending(&mut self) -> Result<Vec<Pending>> {
        let conn = match &mut self.inner {
            Inner::Sqlite { conn, .. } => conn,
            Inner::Postgres(db) => return db.call(claims::adopt),
        };
        let mut stmt =
            conn.prepare("SELECT source, key, meta, body FROM pending ORDER BY at, rowid")?;
        let rows = stmt.query_map([], |r| {
            Ok(Pending {
                source: r.get(0)?,
                key: r.get(1)?,
                meta: r.get(2)?,
                body: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Claims of this daemon (on PostgreSQL: of this node) that still hold
    /// their work `age_secs` after they were made: their runs were never
    /// recorded, or never queued. Oldest first.
    pub fn stale(&mut self, now_unix: i64, age_secs: i64) -> Result<Vec<Pending>> {
        let conn = match &mut self.inner {
            Inner::Sqlite { conn, .. } => conn,
            Inner::Postgres(db) => {
                return db.call(|c, ctx| claims::stale(c, ctx, now_unix - age_secs));
            }
        };
        let mut stmt = conn.prepare(
            "SELECT source, key, meta, body FROM pending WHERE at < ?1 ORDER BY at, rowid",
        )?;
        let rows = stmt.query_map([now_unix - age_secs], |r| {
            Ok(Pending {
                source: r.get(0)?,
                key: r.get(1)?,
                meta: r.get(2)?,
                body: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Gives a claim back (every key of it), so that the sender's retry is
    /// accepted: the run it promised could not be queued.
    pub fn release(&mut self, source: &str, keys: &[&str]) -> Result<()> {
        let conn = match &mut self.inner {
            Inner::Sqlite { conn, .. } => conn,
            Inner::Postgres(db) => return db.call(|c, _| claims::release(c, source, keys)),
        };
        let tx = conn.transaction()?;
        for key in keys {
            tx.execute(
                "DELETE FROM deliveries WHERE source = ?1 AND key = ?2",
                params![source, key],
            )?;
            tx.execute(
                "DELETE FROM pending WHERE source = ?1 AND key = ?2",
                params![source, key],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Takes over the claims that earlier versions kept in the store, so
    /// that an upgrade forgets no delivery within its window.
    pub fn take_over(&mut self, store: &mut Store) -> Result<usize> {
        let (Inner::Sqlite { conn: mine, .. }, Backend::Sqlite(db)) =
            (&mut self.inner, &mut store.db)
        else {
            // A PostgreSQL store never kept claims anywhere else.
            return Ok(0);
        };
        let mut stmt = db
            .conn
            .prepare("SELECT source, key, seen_at FROM deliveries")?;
        let rows: Vec<(String, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        if rows.is_empty() {
            return Ok(0);
        }
        let tx = mine.transaction()?;
        for (source, key, seen_at) in &rows {
            tx.execute(
                "INSERT OR IGNORE INTO deliveries (source, key, seen_at) VALUES (?1, ?2, ?3)",
                params![source, key, seen_at],
            )?;
        }
        tx.commit()?;
        db.conn.execute("DELETE FROM deliveries", [])?;
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    //! What only the SQLite claims file does; the rest is in the backend suite.
    use super::*;
    use crate::MasterKey;

    /// Processes that start together open a fresh claims file together:
    /// every one of them gets it (the switch to WAL mode could fail for some).
    #[test]
    fn a_fresh_file_opened_by_many_at_once_opens_for_all() {
        for _ in 0..100 {
            let dir = tempfile::tempdir().unwrap();
            std::thread::scope(|scope| {
                for _ in 0..8 {
                    scope.spawn(|| Deliveries::open(dir.path()).map(drop).unwrap());
                }
            });
        }
    }

    #[test]
    fn the_claims_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Deliveries::open(dir.path()).unwrap();
        assert!(d.claim("slack", &["Ev1"], 1000, 3600).unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(DELIVERIES_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn claims_kept_in_the_store_by_earlier_versions_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(dir.path(), &MasterKey::from_bytes([8; 32])).unwrap();
        s.conn()
            .execute(
                "INSERT INTO deliveries (source, key, seen_at) VALUES ('linear', 'delivery:x', 5000)",
                [],
            )
            .unwrap();
        let mut d = Deliveries::open(dir.path()).unwrap();
        assert_eq!(d.take_over(&mut s).unwrap(), 1);
        assert!(!d.claim("linear", &["delivery:x"], 5001, 86_400).unwrap());
        assert_eq!(d.take_over(&mut s).unwrap(), 0);
    }
}
