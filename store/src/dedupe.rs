//! Deliveries already handled, so that a webhook retried by its sender (or
//! replayed by someone else) starts at most one run, across restarts.
//!
//! Claims live in a database file of their own (`deliveries.db`, beside the
//! store), written only by the daemon: no command holding the store's write
//! lock can delay a claim, and a claim is on disk (synced) before the
//! request that made it is answered. Each source prunes its own claims with
//! its own window.
//!
//! A claim may carry its work (the verified request body) until the run it
//! promised is recorded: a daemon that dies in between finds it at its next
//! start and takes it up again, so an answered delivery is not lost.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

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
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("path", &self.path)
            .finish()
    }
}

impl Deliveries {
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
        let conn = crate::db::open_wal(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Every claim is a promise to the sender: synced as it commits.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Deliveries { conn, path })
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
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
        self.conn.execute(
            "DELETE FROM pending WHERE source = ?1 AND key = ?2",
            params![source, key],
        )?;
        Ok(())
    }

    /// Claimed deliveries whose runs were never recorded (their daemon died
    /// first), oldest first.
    pub fn pending(&self) -> Result<Vec<Pending>> {
        let mut stmt = self
            .conn
            .prepare("SELECT source, key, meta, body FROM pending ORDER BY at, rowid")?;
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

    /// Gives a claim back (every key of it), so that the sender's retry is
    /// accepted: the run it promised could not be queued.
    pub fn release(&mut self, source: &str, keys: &[&str]) -> Result<()> {
        let tx = self.conn.transaction()?;
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
        let mut stmt = store
            .conn
            .prepare("SELECT source, key, seen_at FROM deliveries")?;
        let rows: Vec<(String, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        if rows.is_empty() {
            return Ok(0);
        }
        let tx = self.conn.transaction()?;
        for (source, key, seen_at) in &rows {
            tx.execute(
                "INSERT OR IGNORE INTO deliveries (source, key, seen_at) VALUES (?1, ?2, ?3)",
                params![source, key, seen_at],
            )?;
        }
        tx.commit()?;
        store.conn.execute("DELETE FROM deliveries", [])?;
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;

    #[test]
    fn a_delivery_is_claimed_once_within_its_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Deliveries::open(dir.path()).unwrap();
        assert!(d.claim("slack", &["Ev1"], 1000, 3600).unwrap());
        assert!(!d.claim("slack", &["Ev1"], 1001, 3600).unwrap());
        assert!(d.claim("linear", &["Ev1"], 1001, 3600).unwrap());
        drop(d);
        let mut d = Deliveries::open(dir.path()).unwrap();
        assert!(!d.claim("slack", &["Ev1"], 2000, 3600).unwrap());
        // After the window the entry is pruned.
        assert!(d.claim("slack", &["Ev1"], 1000 + 3601, 3600).unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(DELIVERIES_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn each_source_prunes_with_its_own_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Deliveries::open(dir.path()).unwrap();
        assert!(d.claim("linear", &["L1"], 1000, 86_400).unwrap());
        // A webhook claim with a 15-minute window, much later, prunes only
        // webhook claims: Linear's day-long window holds.
        assert!(d.claim("webhook", &["W1"], 1000 + 3600, 900).unwrap());
        assert!(!d.claim("linear", &["L1"], 1000 + 3601, 86_400).unwrap());
    }

    #[test]
    fn a_delivery_known_by_two_keys_is_a_duplicate_by_either() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Deliveries::open(dir.path()).unwrap();
        assert!(
            d.claim("linear", &["sig:a", "delivery:1"], 1000, 600)
                .unwrap()
        );
        // The same signed body under a new delivery id, or under none.
        assert!(
            !d.claim("linear", &["sig:a", "delivery:2"], 1001, 600)
                .unwrap()
        );
        assert!(!d.claim("linear", &["sig:a"], 1001, 600).unwrap());
        // A refused claim claimed nothing: delivery 2 is still free.
        assert!(
            d.claim("linear", &["sig:b", "delivery:2"], 1002, 600)
                .unwrap()
        );
    }

    #[test]
    fn a_claim_keeps_its_work_until_finished_or_released() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Deliveries::open(dir.path()).unwrap();
        assert!(
            d.claim_work("webhook", &["alerts:s1"], 1000, 900, "alerts", b"{}")
                .unwrap()
        );
        assert!(
            d.claim_work("slack", &["Ev1"], 1001, 3600, "", b"body")
                .unwrap()
        );
        // A duplicate keeps nothing new.
        assert!(
            !d.claim_work("slack", &["Ev1"], 1002, 3600, "", b"other")
                .unwrap()
        );
        drop(d);
        let mut d = Deliveries::open(dir.path()).unwrap();
        let pending = d.pending().unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(
            (
                pending[0].source.as_str(),
                pending[0].meta.as_str(),
                &pending[0].body[..]
            ),
            ("webhook", "alerts", &b"{}"[..])
        );
        assert_eq!(pending[1].body, b"body");
        d.finish("slack", "Ev1").unwrap();
        d.release("webhook", &["alerts:s1"]).unwrap();
        assert!(d.pending().unwrap().is_empty());
        // Finished is still claimed; released is not.
        assert!(!d.claim("slack", &["Ev1"], 1003, 3600).unwrap());
        assert!(d.claim("webhook", &["alerts:s1"], 1003, 900).unwrap());
    }

    #[test]
    fn a_released_claim_can_be_claimed_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Deliveries::open(dir.path()).unwrap();
        assert!(d.claim("webhook", &["W1"], 1000, 900).unwrap());
        d.release("webhook", &["W1"]).unwrap();
        assert!(d.claim("webhook", &["W1"], 1001, 900).unwrap());
        assert!(!d.claim("webhook", &["W1"], 1002, 900).unwrap());
    }

    #[test]
    fn claims_kept_in_the_store_by_earlier_versions_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(dir.path(), &MasterKey::from_bytes([8; 32])).unwrap();
        s.conn
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
