//! The audit log as rows: append-only, each entry linked to the one before
//! by its MAC under the audit key, and a seal (one row) naming the last
//! entry and the sum of the secret rows' fingerprints, MACed with the same
//! key. Entries carry names, versions, who and when: never a value.
//!
//! Invariants: only a holder of the master key appends (the seal is checked
//! against the log's tail first, so a cut or forged tail is never sealed
//! over); an entry and the seal change in one transaction; a chain written
//! before entries were keyed keeps its SHA-256 links up to the anchor, and
//! the first keyed entry links to its last hash.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::evidence::{AuditKey, AuditVerdict, GENESIS, Head, RowSum, Stored, walk};
use crate::time::{format_time, now, parse_time};
use crate::{Result, Store, StoreError};

/// One audit entry as stored. From the anchor on, `hash` is an HMAC-SHA256
/// under the audit key; before it, the SHA-256 of the entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    pub action: String,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

const ENTRY_COLUMNS: &str = "seq, at, actor, action, detail, prev_hash, hash, subject";

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        detail: r.get(4)?,
        prev_hash: r.get(5)?,
        hash: r.get(6)?,
        subject: r.get(7)?,
    })
}

/// The seal as stored: the head and its MAC (`None` when there is none).
pub(crate) fn read_seal(conn: &Connection) -> Result<Option<(Head, String)>> {
    Ok(conn
        .query_row(
            "SELECT anchor, seq, hash, secrets, mac FROM audit_seal WHERE id = 1",
            [],
            |r| {
                Ok((
                    Head {
                        anchor: r.get(0)?,
                        seq: r.get(1)?,
                        hash: r.get(2)?,
                        secrets: r.get(3)?,
                    },
                    r.get(4)?,
                ))
            },
        )
        .optional()?)
}

pub(crate) fn write_seal(conn: &Connection, key: &AuditKey, head: &Head) -> Result<()> {
    conn.execute(
        "INSERT INTO audit_seal (id, anchor, seq, hash, secrets, mac) VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET anchor = ?1, seq = ?2, hash = ?3, secrets = ?4, mac = ?5",
        params![head.anchor, head.seq, head.hash, head.secrets, key.seal(head)],
    )?;
    Ok(())
}

/// The last entry's `seq` and `hash` (0 and [`GENESIS`] when there is none).
pub(crate) fn tail(conn: &Connection) -> Result<(i64, String)> {
    Ok(conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, GENESIS.to_owned())))
}

/// The current head: the seal, checked under `key` and against the log's
/// tail. Any difference means someone without the key wrote to the store.
pub(crate) fn current_head(conn: &Connection, key: &AuditKey) -> Result<Head> {
    let broken = |why: String| StoreError::Evidence(why);
    let (head, mac) = read_seal(conn)?.ok_or_else(|| {
        broken(
            "the seal over the audit log is missing: it was removed outside the supervisor".into(),
        )
    })?;
    if !key.seal_ok(&head, &mac) {
        return Err(broken(
            "the seal over the audit log does not verify under this store's key: it was forged or altered".into(),
        ));
    }
    let (seq, hash) = tail(conn)?;
    if seq != head.seq || hash != head.hash {
        return Err(broken(format!(
            "the audit log ends at entry {seq}, but its seal names entry {} as the last: it was cut or extended outside the supervisor",
            head.seq
        )));
    }
    Ok(head)
}

/// A change to the sum of secret-row fingerprints that an entry records.
#[derive(Default)]
pub(crate) struct RowChange {
    pub removed: Option<[u8; 32]>,
    pub added: Option<[u8; 32]>,
}

/// Appends an entry inside the caller's write transaction and moves the
/// seal onto it. Returns the entry's `seq`.
pub(crate) fn append(
    conn: &Connection,
    key: &AuditKey,
    actor: Option<&str>,
    action: &str,
    detail: &serde_json::Value,
    subject: Option<&str>,
    rows: RowChange,
) -> Result<i64> {
    let mut head = current_head(conn, key)?;
    let seq = head.seq + 1;
    let at = format_time(now());
    let detail = detail.to_string();
    let entry = crate::evidence::Entry {
        seq,
        at: &at,
        actor,
        action,
        detail: &detail,
        prev_hash: &head.hash,
        subject,
    };
    let hash = key.entry_mac(&entry);
    conn.execute(
        "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash, subject) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![seq, at, actor, action, detail, head.hash, hash, subject],
    )?;
    if rows.removed.is_some() || rows.added.is_some() {
        let mut sum = RowSum::from_hex(&head.secrets)
            .ok_or_else(|| StoreError::Corrupt("the seal's secret sum is malformed".into()))?;
        if let Some(fp) = &rows.removed {
            sum.sub(fp);
        }
        if let Some(fp) = &rows.added {
            sum.add(fp);
        }
        head.secrets = sum.to_hex();
    }
    head.seq = seq;
    head.hash = hash;
    write_seal(conn, key, &head)?;
    Ok(seq)
}

/// The newest entry about `subject`, checked under `key`.
pub(crate) fn latest_about(
    conn: &Connection,
    key: &AuditKey,
    anchor: i64,
    subject: &str,
) -> Result<Option<Stored>> {
    let found = conn
        .query_row(
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM audit WHERE subject = ?1 ORDER BY seq DESC LIMIT 1"
            ),
            [subject],
            stored,
        )
        .optional()?;
    match found {
        Some(e) if !e.authentic(key, anchor) => Err(StoreError::Evidence(format!(
            "audit entry {} does not verify under this store's key: it was edited",
            e.seq
        ))),
        other => Ok(other),
    }
}

impl Store {
    /// Appends an audit entry on its own (needs the master key).
    pub fn audit(
        &mut self,
        actor: Option<&str>,
        action: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.write(crate::db::Sync::Normal, |tx, key| {
            append(tx, key, actor, action, detail, None, RowChange::default()).map(|_| ())
        })
    }

    /// The newest `limit` entries (all when `None`), oldest first.
    pub fn audit_list(&self, limit: Option<usize>) -> Result<Vec<AuditEntry>> {
        let limit = limit.map_or(-1, |l| l as i64);
        let mut stmt = self.conn.prepare(&format!(
            "SELECT * FROM (SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq DESC LIMIT ?1) ORDER BY seq"
        ))?;
        let rows = stmt.query_map([limit], stored)?;
        rows.map(|r| {
            let e = r?;
            Ok(AuditEntry {
                seq: e.seq,
                at: parse_time(&e.at)?,
                detail: serde_json::from_str(&e.detail).map_err(|_| {
                    StoreError::Corrupt(format!("audit entry {} has a malformed detail", e.seq))
                })?,
                actor: e.actor,
                action: e.action,
                prev_hash: e.prev_hash,
                hash: e.hash,
            })
        })
        .collect()
    }

    /// Walks the whole chain from the first entry, checks its seal, then
    /// holds the secret rows to it. Needs the master key: entries are
    /// authenticated with a key derived from it.
    pub fn audit_verify(&self) -> Result<AuditVerdict> {
        let key = self.audit_key()?;
        let seal = read_seal(&self.conn)?;
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq"))?;
        let rows = stmt.query_map([], stored)?;
        let verdict = walk(
            key,
            seal.as_ref().map(|(h, m)| (h, m.as_str())),
            rows.map(|r| r.map_err(StoreError::from)),
        )?;
        if !matches!(verdict, AuditVerdict::Intact { .. }) {
            return Ok(verdict);
        }
        // The secret rows, held to the seal's sum.
        match crate::seal::check_rows(&self.conn, key, None) {
            Ok(()) => Ok(verdict),
            Err(e @ (StoreError::Tampered { .. } | StoreError::Evidence(_))) => {
                Ok(AuditVerdict::SecretRow {
                    reason: e.to_string(),
                })
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
