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
use serde::Serialize;

use crate::backend::Tx;
use crate::evidence::{AuditKey, AuditVerdict, Head, RowSum, Stored, walk};
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

/// Entries read at a time while the whole chain is walked.
const PAGE: i64 = 1000;

/// Writes the seal over `head`, MACed under `key`.
pub(crate) fn write_seal(tx: &mut dyn Tx, key: &AuditKey, head: &Head) -> Result<()> {
    tx.write_seal(head, &key.seal(head))
}

/// The current head: the seal, checked under `key` and against the log's
/// tail. Any difference means someone without the key wrote to the store.
pub(crate) fn current_head(tx: &mut dyn Tx, key: &AuditKey) -> Result<Head> {
    let broken = |why: String| StoreError::Evidence(why);
    let (head, mac) = tx.read_seal()?.ok_or_else(|| {
        broken(
            "the seal over the audit log is missing: it was removed outside the supervisor".into(),
        )
    })?;
    if !key.seal_ok(&head, &mac) {
        return Err(broken(
            "the seal over the audit log does not verify under this store's key: it was forged or altered".into(),
        ));
    }
    let (seq, hash) = tx.tail()?;
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
    tx: &mut dyn Tx,
    key: &AuditKey,
    actor: Option<&str>,
    action: &str,
    detail: &serde_json::Value,
    subject: Option<&str>,
    rows: RowChange,
) -> Result<i64> {
    let mut head = current_head(tx, key)?;
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
    tx.insert_entry(&entry, &hash)?;
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
    write_seal(tx, key, &head)?;
    Ok(seq)
}

/// The newest entry about `subject`, checked under `key`.
pub(crate) fn latest_about(
    tx: &mut dyn Tx,
    key: &AuditKey,
    anchor: i64,
    subject: &str,
) -> Result<Option<Stored>> {
    match tx.latest_about(subject)? {
        Some(e) if !e.authentic(key, anchor) => Err(StoreError::Evidence(format!(
            "audit entry {} does not verify under this store's key: it was edited",
            e.seq
        ))),
        other => Ok(other),
    }
}

/// Every entry in order, read a page at a time.
pub(crate) fn all_entries(tx: &mut dyn Tx) -> impl Iterator<Item = Result<Stored>> + '_ {
    let mut page = std::collections::VecDeque::new();
    let (mut after, mut done) = (0i64, false);
    std::iter::from_fn(move || {
        if page.is_empty() && !done {
            match tx.entries_after(after, PAGE) {
                Ok(rows) => {
                    done = (rows.len() as i64) < PAGE;
                    page.extend(rows);
                }
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            }
        }
        let e = page.pop_front()?;
        after = e.seq;
        Some(Ok(e))
    })
}

impl Store {
    /// Appends an audit entry on its own (needs the master key).
    pub fn audit(
        &mut self,
        actor: Option<&str>,
        action: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.write(crate::backend::Sync::Normal, |tx, key| {
            append(tx, key, actor, action, detail, None, RowChange::default()).map(|_| ())
        })
    }

    /// The newest `limit` entries (all when `None`), oldest first.
    pub fn audit_list(&mut self, limit: Option<usize>) -> Result<Vec<AuditEntry>> {
        let rows = self.db.read(|tx| tx.newest_entries(limit))?;
        rows.into_iter()
            .map(|e| {
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
    /// holds the secret rows to it, all on one snapshot. Needs the master
    /// key: entries are authenticated with a key derived from it.
    pub fn audit_verify(&mut self) -> Result<AuditVerdict> {
        let key = self.audit_key.as_ref().ok_or(StoreError::KeyRequired)?;
        self.db.read(|tx| {
            let seal = tx.read_seal()?;
            let verdict = walk(
                key,
                seal.as_ref().map(|(h, m)| (h, m.as_str())),
                all_entries(tx),
            )?;
            if !matches!(verdict, AuditVerdict::Intact { .. }) {
                return Ok(verdict);
            }
            // The secret rows, held to the seal's sum.
            match crate::seal::check_rows(tx, key, None) {
                Ok(()) => Ok(verdict),
                Err(e @ (StoreError::Tampered { .. } | StoreError::Evidence(_))) => {
                    Ok(AuditVerdict::SecretRow {
                        reason: e.to_string(),
                    })
                }
                Err(e) => Err(e),
            }
        })
    }
}
