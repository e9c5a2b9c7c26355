//! The seal's two duties beyond the log: sealing a store whose chain
//! predates keyed entries (once, with entries saying so), and checking that
//! the secret rows are the ones last written, so that a restored older row
//! (nonce, ciphertext, version) refuses to open instead of handing a run the
//! previous value.
//!
//! Invariants: the seal's sum covers every secret row's fingerprint, so any
//! row restored, inserted or removed outside the supervisor changes the sum;
//! the culprit is named from the newest keyed audit entry about it.

use serde_json::json;

use crate::audit::{RowChange, all_entries, append, current_head, latest_about, write_seal};
use crate::backend::{SecretRow, Tx};
use crate::evidence::{AuditKey, GENESIS, Head, Row, RowSum, secret_subject};
use crate::{Result, StoreError};

/// The fingerprint of a secret row.
pub(crate) fn fingerprint(
    key: &AuditKey,
    scope: &str,
    owner: &str,
    name: &str,
    version: i64,
    nonce: &[u8],
) -> [u8; 32] {
    key.row_fingerprint(&Row {
        scope,
        owner,
        name,
        version,
        nonce: &hex::encode(nonce),
    })
}

/// What the newest audit entry about a secret says about its row.
pub(crate) struct LastWrite {
    pub seq: i64,
    /// `None` when the entry deleted the secret.
    pub row: Option<([u8; 32], i64)>,
}

/// The newest keyed record of a secret's row, if the log has one.
pub(crate) fn last_write(
    tx: &mut dyn Tx,
    key: &AuditKey,
    anchor: i64,
    scope: &str,
    owner: &str,
    name: &str,
) -> Result<Option<LastWrite>> {
    let subject = secret_subject(scope, owner, name);
    let Some(entry) = latest_about(tx, key, anchor, &subject)? else {
        return Ok(None);
    };
    Ok(Some(read_last_write(&entry)?))
}

fn read_last_write(entry: &crate::evidence::Stored) -> Result<LastWrite> {
    if entry.action == "secret.delete" {
        return Ok(LastWrite {
            seq: entry.seq,
            row: None,
        });
    }
    let detail: serde_json::Value = serde_json::from_str(&entry.detail)
        .map_err(|_| StoreError::Corrupt(format!("audit entry {} is malformed", entry.seq)))?;
    let fp = detail["row"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("audit entry {} has no row", entry.seq)))?;
    let version = detail["version"].as_i64().unwrap_or(0);
    Ok(LastWrite {
        seq: entry.seq,
        row: Some((fp, version)),
    })
}

/// Seals a new, empty store: nothing before the anchor.
pub(crate) fn seal_new(tx: &mut dyn Tx, key: &AuditKey) -> Result<()> {
    let (seq, hash) = tx.tail()?;
    write_seal(
        tx,
        key,
        &Head {
            anchor: seq + 1,
            seq,
            hash,
            secrets: RowSum::default().to_hex(),
        },
    )
}

/// Seals a store written before the chain was keyed, inside the caller's
/// transaction: the keyed part starts after its last entry with an
/// `audit.anchor` entry that says how the old part checked, then one
/// `secret.seal` entry per secret row, which the rows are held to from now on.
pub(crate) fn anchor_existing(tx: &mut dyn Tx, key: &AuditKey) -> Result<()> {
    let legacy = legacy_verdict(tx)?;
    seal_new(tx, key)?;
    let (last, _) = tx.tail()?;
    let rows = tx.secret_rows()?;
    if last == 0 && rows.is_empty() {
        return Ok(());
    }
    append(
        tx,
        key,
        None,
        "audit.anchor",
        &json!({
            "unkeyed_entries": last,
            "unkeyed_chain": legacy,
            "secrets": rows.len(),
            "note": "from here on every entry is authenticated with a key derived from the master key",
        }),
        None,
        RowChange::default(),
    )?;
    for SecretRow {
        scope,
        owner,
        name,
        version,
        nonce,
    } in rows
    {
        let fp = fingerprint(key, &scope, &owner, &name, version, &nonce);
        append(
            tx,
            key,
            None,
            "secret.seal",
            &json!({
                "scope": scope,
                "owner": (!owner.is_empty()).then_some(&owner),
                "name": name,
                "version": version,
                "row": hex::encode(fp),
            }),
            Some(&secret_subject(&scope, &owner, &name)),
            RowChange {
                removed: None,
                added: Some(fp),
            },
        )?;
    }
    Ok(())
}

/// How the unkeyed chain checks, in words, before it is sealed over.
fn legacy_verdict(tx: &mut dyn Tx) -> Result<String> {
    let (mut expected, mut prev) = (1i64, GENESIS.to_owned());
    for e in all_entries(tx) {
        let mut e = e?;
        // Entries of an unkeyed chain were hashed without a subject.
        e.subject = None;
        if e.seq != expected || e.prev_hash != prev || e.fields().legacy_hash() != e.hash {
            return Ok(format!("broken at entry {expected}"));
        }
        prev = e.hash;
        expected += 1;
    }
    Ok("intact".into())
}

/// A secret whose row is not what its newest audit entry recorded.
struct Culprit {
    error: StoreError,
    /// `(scope, owner, name)`.
    id: (String, String, String),
    /// Whether the set of secrets itself changed (a row added, put back or
    /// removed), which changes what the scope rule decides for every run.
    membership: bool,
}

/// Checks that the secret rows are the ones last written: the sum of their
/// fingerprints must be the sealed sum. On a difference, the secrets to
/// blame are found from their newest audit entries, and the first that
/// matters to this call is the error: any secret added, put back or removed
/// outside the supervisor (it changes what every run receives), or one of
/// `wanted` (`(scope, owner, name)`; `None` for every secret) whose row is
/// not the one last written.
pub(crate) fn check_rows(
    tx: &mut dyn Tx,
    key: &AuditKey,
    wanted: Option<&[(&str, &str, &str)]>,
) -> Result<()> {
    let head = current_head(tx, key)?;
    let rows = tx.secret_rows()?;
    let mut sum = RowSum::default();
    for r in &rows {
        sum.add(&fingerprint(
            key, &r.scope, &r.owner, &r.name, r.version, &r.nonce,
        ));
    }
    if sum.to_hex() == head.secrets {
        return Ok(());
    }
    let culprits = culprits(tx, key, head.anchor, &rows)?;
    if culprits.is_empty() {
        return Err(StoreError::Evidence(
            "the secret rows do not match the sum that the audit seal records".into(),
        ));
    }
    for c in culprits {
        let (scope, owner, name) = &c.id;
        let is_wanted =
            wanted.is_none_or(|w| w.contains(&(scope.as_str(), owner.as_str(), name.as_str())));
        if c.membership || is_wanted {
            return Err(c.error);
        }
    }
    Ok(())
}

fn describe(scope: &str, owner: &str) -> String {
    if owner.is_empty() {
        scope.to_owned()
    } else {
        format!("{scope} (owner {owner})")
    }
}

/// Every secret whose row differs from its newest audit entry.
fn culprits(
    tx: &mut dyn Tx,
    key: &AuditKey,
    anchor: i64,
    rows: &[SecretRow],
) -> Result<Vec<Culprit>> {
    let culprit =
        |scope: &str, owner: &str, name: &str, reason: String, membership: bool| Culprit {
            error: StoreError::Tampered {
                scope: describe(scope, owner),
                name: name.to_owned(),
                reason,
            },
            id: (scope.to_owned(), owner.to_owned(), name.to_owned()),
            membership,
        };
    let mut found = Vec::new();
    for SecretRow {
        scope,
        owner,
        name,
        version,
        nonce,
    } in rows
    {
        let fp = fingerprint(key, scope, owner, name, *version, nonce);
        let (reason, membership) = match last_write(tx, key, anchor, scope, owner, name)? {
            None => (
                "its row is in no audit entry: it was added outside the supervisor".to_owned(),
                true,
            ),
            Some(LastWrite { seq, row: None }) => (
                format!("audit entry {seq} deleted it, and an older row was put back"),
                true,
            ),
            Some(LastWrite {
                row: Some((sealed, _)),
                ..
            }) if sealed == fp => continue,
            Some(LastWrite {
                seq,
                row: Some((_, sealed_version)),
            }) if sealed_version != *version => (
                format!(
                    "its row is version {version}, but audit entry {seq} wrote version {sealed_version}: an older row was restored"
                ),
                false,
            ),
            Some(LastWrite { seq, .. }) => (
                format!(
                    "its row was altered or moved, or an older one restored: it is not the one audit entry {seq} wrote (same version, another ciphertext)"
                ),
                false,
            ),
        };
        found.push(culprit(scope, owner, name, reason, membership));
    }
    // Secrets the log says exist whose rows are gone.
    for subject in tx.subjects()? {
        let mut parts = subject.splitn(4, ':').skip(1);
        let (Some(scope), Some(owner), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let present = rows
            .iter()
            .any(|r| r.scope == scope && r.owner == owner && r.name == name);
        if present {
            continue;
        }
        if let Some(LastWrite {
            seq,
            row: Some((_, version)),
        }) = last_write(tx, key, anchor, scope, owner, name)?
        {
            found.push(culprit(
                scope,
                owner,
                name,
                format!(
                    "audit entry {seq} wrote version {version}, but its row is gone: it was deleted outside the supervisor"
                ),
                true,
            ));
        }
    }
    Ok(found)
}
