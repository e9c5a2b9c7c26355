//! The audit log: append-only and hash-chained. Each entry holds the
//! SHA-256 of the one before, so an edited, inserted or removed entry breaks
//! the chain at that point. Entries carry names, versions, who and when:
//! never a value.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::time::{format_time, now, parse_time};
use crate::{Result, Store, StoreError};

/// The `prev_hash` of the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    pub action: String,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

/// The outcome of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Every entry links to the one before and hashes to what it claims.
    Intact { entries: u64 },
    /// The first entry that does not hold, and why.
    Broken { seq: i64, reason: String },
}

/// The hashed form of an entry: fixed field order, the detail as stored text.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: i64,
    at: &'a str,
    actor: Option<&'a str>,
    action: &'a str,
    detail: &'a str,
    prev_hash: &'a str,
}

fn entry_hash(h: &Hashed<'_>) -> String {
    let bytes = serde_json::to_vec(h).expect("plain struct serialises");
    hex::encode(Sha256::digest(&bytes))
}

/// Appends an entry inside the caller's write transaction.
pub(crate) fn append(
    tx: &Transaction<'_>,
    actor: Option<&str>,
    action: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    let at = format_time(now());
    let detail = detail.to_string();
    let hash = entry_hash(&Hashed {
        seq,
        at: &at,
        actor,
        action,
        detail: &detail,
        prev_hash: &prev_hash,
    });
    tx.execute(
        "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![seq, at, actor, action, detail, prev_hash, hash],
    )?;
    Ok(())
}

type Raw = (i64, String, Option<String>, String, String, String, String);

impl Store {
    /// Appends an audit entry on its own.
    pub fn audit(
        &mut self,
        actor: Option<&str>,
        action: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.write(|tx| append(tx, actor, action, detail))
    }

    /// The newest `limit` entries (all when `None`), oldest first.
    pub fn audit_list(&self, limit: Option<usize>) -> Result<Vec<AuditEntry>> {
        let limit = limit.map_or(-1, |l| l as i64);
        let mut stmt = self.conn.prepare(
            "SELECT * FROM (SELECT seq, at, actor, action, detail, prev_hash, hash FROM audit ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
        )?;
        let rows = stmt.query_map([limit], raw_row)?;
        rows.map(|r| {
            let (seq, at, actor, action, detail, prev_hash, hash) = r?;
            Ok(AuditEntry {
                seq,
                at: parse_time(&at)?,
                actor,
                action,
                detail: serde_json::from_str(&detail).map_err(|_| {
                    StoreError::Corrupt(format!("audit entry {seq} has a malformed detail"))
                })?,
                prev_hash,
                hash,
            })
        })
        .collect()
    }

    /// Walks the whole chain from the first entry.
    pub fn audit_verify(&self) -> Result<AuditVerdict> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, at, actor, action, detail, prev_hash, hash FROM audit ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut expected_prev = GENESIS.to_owned();
        let mut expected_seq = 1;
        let mut entries = 0;
        while let Some(row) = rows.next()? {
            let (seq, at, actor, action, detail, prev_hash, hash) = raw_row(row)?;
            let broken = |reason: &str| {
                Ok(AuditVerdict::Broken {
                    seq,
                    reason: reason.to_owned(),
                })
            };
            if seq != expected_seq {
                return broken(&format!(
                    "expected entry {expected_seq} here: entries are missing"
                ));
            }
            if prev_hash != expected_prev {
                return broken("it does not link to the entry before it");
            }
            let computed = entry_hash(&Hashed {
                seq,
                at: &at,
                actor: actor.as_deref(),
                action: &action,
                detail: &detail,
                prev_hash: &prev_hash,
            });
            if computed != hash {
                return broken("its content does not match its hash: it was edited");
            }
            expected_prev = hash;
            expected_seq += 1;
            entries += 1;
        }
        Ok(AuditVerdict::Intact { entries })
    }
}

/// The columns of an audit row, in `SELECT` order.
fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Raw> {
    Raw::try_from(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;
    use serde_json::json;

    fn store_with_entries(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(dir.path(), &MasterKey::from_bytes([5; 32])).unwrap();
        for i in 0..n {
            s.audit(Some("alice"), "test.event", &json!({ "i": i }))
                .unwrap();
        }
        (dir, s)
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let (_d, s) = store_with_entries(5);
        assert_eq!(
            s.audit_verify().unwrap(),
            AuditVerdict::Intact { entries: 5 }
        );
        let list = s.audit_list(Some(2)).unwrap();
        assert_eq!(list.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(list[1].prev_hash, list[0].hash);
    }

    #[test]
    fn the_log_refuses_updates_and_deletes() {
        let (_d, s) = store_with_entries(2);
        assert!(
            s.conn
                .execute("UPDATE audit SET actor = 'mallory'", [])
                .is_err()
        );
        assert!(s.conn.execute("DELETE FROM audit", []).is_err());
    }

    #[test]
    fn edits_and_gaps_are_found_at_their_entry() {
        let (_d, s) = store_with_entries(5);
        s.conn
            .execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
            .unwrap();
        s.conn
            .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3", [])
            .unwrap();
        assert!(matches!(
            s.audit_verify().unwrap(),
            AuditVerdict::Broken { seq: 3, .. }
        ));
        s.conn
            .execute("UPDATE audit SET actor = 'alice' WHERE seq = 3", [])
            .unwrap();
        assert!(matches!(
            s.audit_verify().unwrap(),
            AuditVerdict::Intact { .. }
        ));
        s.conn
            .execute("DELETE FROM audit WHERE seq = 2", [])
            .unwrap();
        assert!(matches!(
            s.audit_verify().unwrap(),
            AuditVerdict::Broken { seq: 3, .. }
        ));
    }
}
