//! Secrets: sealed values with their metadata. Writing takes a value;
//! reading gives metadata only, except [`Store::open_secrets`].

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;
use supervisor_config::SecretName;

use crate::audit::{RowChange, append, current_head};
use crate::backend::{Appends, MetaRow, NewSecret, SecretId, Sync, Tx};
use crate::crypto::Binding;
use crate::evidence::{AuditKey, secret_subject};
use crate::leaks::Leak;
use crate::seal::{LastWrite, check_rows, fingerprint, last_write};
use crate::time::{format_time, now, parse_time};
use crate::{Result, Store, StoreError};

/// The largest value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Who a secret belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Shared: every run receives it.
    Team,
    /// Owned by one member: only runs that member triggered receive it.
    Personal(String),
}

impl Scope {
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Team => "team",
            Scope::Personal(_) => "personal",
        }
    }

    pub fn owner(&self) -> Option<&str> {
        match self {
            Scope::Team => None,
            Scope::Personal(m) => Some(m),
        }
    }

    pub(crate) fn owner_column(&self) -> &str {
        self.owner().unwrap_or("")
    }

    fn describe(&self) -> String {
        match self {
            Scope::Team => "team".to_owned(),
            Scope::Personal(m) => format!("personal (owner {m})"),
        }
    }

    fn from_columns(kind: &str, owner: String) -> Result<Scope> {
        match kind {
            "team" => Ok(Scope::Team),
            "personal" => Ok(Scope::Personal(owner)),
            other => Err(StoreError::Corrupt(format!("unknown scope `{other}`"))),
        }
    }
}

/// Everything known about a secret except its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretMeta {
    pub name: SecretName,
    #[serde(rename = "scope", serialize_with = "scope_kind")]
    pub scope: Scope,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub version: i64,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    /// Set when a run's output showed the value (redacted); cleared when it is updated.
    pub leak: Option<Leak>,
}

fn scope_kind<S: serde::Serializer>(scope: &Scope, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(scope.kind())
}

/// A value opened for a run. No `Debug` of the value, no `Clone`.
pub struct OpenedSecret {
    pub name: SecretName,
    pub scope: Scope,
    pub version: i64,
    pub value: SecretString,
}

impl std::fmt::Debug for OpenedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OpenedSecret({} {} v{}, <redacted>)",
            self.scope.describe(),
            self.name,
            self.version
        )
    }
}

/// Checks a value: 1 byte to 64 KiB, UTF-8 (guaranteed by the type), no
/// NUL byte (it cannot pass through an environment variable). Messages
/// describe the value's shape, never its content.
pub fn validate_value(value: &SecretString) -> Result<()> {
    let v = value.expose_secret();
    if v.is_empty() {
        return Err(StoreError::InvalidValue("the value is empty".into()));
    }
    if v.len() > MAX_VALUE_LEN {
        return Err(StoreError::InvalidValue(format!(
            "the value is {} bytes; the limit is {MAX_VALUE_LEN} bytes (64 KiB)",
            v.len()
        )));
    }
    if let Some(at) = v.bytes().position(|b| b == 0) {
        return Err(StoreError::InvalidValue(format!(
            "the value holds a NUL byte (at byte {at}), which an environment variable cannot carry"
        )));
    }
    Ok(())
}

fn meta_from_tuple(t: MetaRow) -> Result<SecretMeta> {
    let (
        kind,
        owner,
        name,
        description,
        version,
        created_at,
        created_by,
        updated_at,
        updated_by,
        leaked_run,
        leaked_at,
        leaked_runs,
    ) = t;
    let scope = Scope::from_columns(&kind, owner)?;
    let leak = match (leaked_run, leaked_at) {
        (Some(run), Some(at)) => Some(Leak {
            run,
            at: parse_time(&at)?,
            runs: leaked_runs,
        }),
        _ => None,
    };
    Ok(SecretMeta {
        name: SecretName::new(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        owner: scope.owner().map(str::to_owned),
        scope,
        description,
        version,
        created_at: parse_time(&created_at)?,
        created_by,
        updated_at: parse_time(&updated_at)?,
        updated_by,
        leak,
    })
}

fn id<'a>(scope: &'a Scope, name: &'a SecretName) -> SecretId<'a> {
    SecretId {
        scope: scope.kind(),
        owner: scope.owner_column(),
        name: name.as_str(),
    }
}

fn find(tx: &mut dyn Tx, scope: &Scope, name: &SecretName) -> Result<Option<SecretMeta>> {
    tx.secret(id(scope, name))?.map(meta_from_tuple).transpose()
}

fn audit_detail(meta: &SecretMeta, row: Option<&[u8; 32]>) -> serde_json::Value {
    let mut detail = json!({
        "scope": meta.scope.kind(),
        "owner": meta.owner,
        "name": meta.name,
        "version": meta.version,
    });
    if let Some(fp) = row {
        detail["row"] = json!(hex::encode(fp));
    }
    detail
}

fn subject(scope: &Scope, name: &SecretName) -> String {
    secret_subject(scope.kind(), scope.owner_column(), name.as_str())
}

/// The newest keyed record of this secret's row (what the seal's sum holds
/// for it), whatever the row itself says now.
fn recorded(
    tx: &mut dyn Tx,
    key: &AuditKey,
    scope: &Scope,
    name: &SecretName,
) -> Result<Option<LastWrite>> {
    let anchor = current_head(tx, key)?.anchor;
    last_write(
        tx,
        key,
        anchor,
        scope.kind(),
        scope.owner_column(),
        name.as_str(),
    )
}

impl Store {
    /// Stores a new secret at version 1. An existing name in the same scope
    /// is an error: rotating is [`Store::update_secret`].
    pub fn create_secret(
        &mut self,
        scope: &Scope,
        name: &SecretName,
        description: Option<&str>,
        value: &SecretString,
        actor: &str,
    ) -> Result<SecretMeta> {
        validate_value(value)?;
        let binding = Binding {
            scope: scope.kind(),
            owner: scope.owner_column(),
            name: name.as_str(),
            version: 1,
        };
        let (nonce, ct) = self
            .cipher()?
            .seal(value.expose_secret().as_bytes(), &binding)?;
        let meta = self.write(Sync::Full, |tx, key| {
            if find(tx, scope, name)?.is_some() {
                return Err(StoreError::SecretExists {
                    scope: scope.describe(),
                    name: name.to_string(),
                });
            }
            // A row the log still holds (deleted outside the supervisor)
            // leaves the seal's sum as this one replaces it.
            let removed = recorded(tx, key, scope, name)?.and_then(|w| w.row.map(|(fp, _)| fp));
            let t = format_time(now());
            tx.insert_secret(
                id(scope, name),
                &NewSecret {
                    description,
                    version: 1,
                    nonce: &nonce,
                    ciphertext: &ct,
                    at: &t,
                    actor,
                },
            )?;
            let meta =
                find(tx, scope, name)?.ok_or_else(|| StoreError::Corrupt("row vanished".into()))?;
            let fp = fingerprint(
                key,
                scope.kind(),
                scope.owner_column(),
                name.as_str(),
                1,
                &nonce,
            );
            append(
                tx,
                key,
                Some(actor),
                "secret.create",
                &audit_detail(&meta, Some(&fp)),
                Some(&subject(scope, name)),
                RowChange {
                    removed,
                    added: Some(fp),
                },
            )?;
            Ok(meta)
        })?;
        // On disk before the caller says so, and no replaced or deleted
        // ciphertext left behind in the write-ahead log.
        self.checkpoint()?;
        Ok(meta)
    }

    /// Replaces a secret's value: version + 1 (past any version the audit
    /// log recorded, should an older row have been restored), description
    /// kept unless one is given. The way to rotate.
    pub fn update_secret(
        &mut self,
        scope: &Scope,
        name: &SecretName,
        description: Option<&str>,
        value: &SecretString,
        actor: &str,
    ) -> Result<SecretMeta> {
        validate_value(value)?;
        let cipher = self.cipher.as_ref().ok_or(StoreError::KeyRequired)?;
        let key = self.audit_key.as_ref().ok_or(StoreError::KeyRequired)?;
        let meta = self.db.write(Sync::Full, Appends::Yes, |tx| {
            let Some(meta) = find(tx, scope, name)? else {
                return Err(StoreError::SecretNotFound {
                    scope: scope.describe(),
                    name: name.to_string(),
                });
            };
            let last = recorded(tx, key, scope, name)?.and_then(|w| w.row);
            let version = meta.version.max(last.map_or(0, |(_, v)| v)) + 1;
            let (nonce, ct) = cipher.seal(
                value.expose_secret().as_bytes(),
                &Binding {
                    scope: scope.kind(),
                    owner: scope.owner_column(),
                    name: name.as_str(),
                    version,
                },
            )?;
            tx.update_secret(
                id(scope, name),
                &NewSecret {
                    description,
                    version,
                    nonce: &nonce,
                    ciphertext: &ct,
                    at: &format_time(now()),
                    actor,
                },
            )?;
            let meta =
                find(tx, scope, name)?.ok_or_else(|| StoreError::Corrupt("row vanished".into()))?;
            let fp = fingerprint(
                key,
                scope.kind(),
                scope.owner_column(),
                name.as_str(),
                version,
                &nonce,
            );
            append(
                tx,
                key,
                Some(actor),
                "secret.update",
                &audit_detail(&meta, Some(&fp)),
                Some(&subject(scope, name)),
                RowChange {
                    removed: last.map(|(fp, _)| fp),
                    added: Some(fp),
                },
            )?;
            Ok(meta)
        })?;
        // On disk before the caller says so, and no replaced or deleted
        // ciphertext left behind in the write-ahead log.
        self.checkpoint()?;
        Ok(meta)
    }

    /// Fails with the error a write would give when the secret's presence is
    /// not as `exists` says: lets a command check before asking for a value.
    pub fn expect_secret(&mut self, scope: &Scope, name: &SecretName, exists: bool) -> Result<()> {
        let found = self
            .db
            .read(|tx| Ok(tx.secret(id(scope, name))?.is_some()))?;
        match (found, exists) {
            (true, false) => Err(StoreError::SecretExists {
                scope: scope.describe(),
                name: name.to_string(),
            }),
            (false, true) => Err(StoreError::SecretNotFound {
                scope: scope.describe(),
                name: name.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Deletes a secret; its ciphertext is overwritten in the file
    /// (secure_delete) and emptied from the write-ahead log. Needs the
    /// master key, as every change that the audit log records does.
    pub fn delete_secret(
        &mut self,
        scope: &Scope,
        name: &SecretName,
        actor: &str,
    ) -> Result<SecretMeta> {
        let meta = self.write(Sync::Full, |tx, key| {
            let Some(meta) = find(tx, scope, name)? else {
                return Err(StoreError::SecretNotFound {
                    scope: scope.describe(),
                    name: name.to_string(),
                });
            };
            let removed = recorded(tx, key, scope, name)?.and_then(|w| w.row.map(|(fp, _)| fp));
            tx.delete_secret(id(scope, name))?;
            append(
                tx,
                key,
                Some(actor),
                "secret.delete",
                &audit_detail(&meta, None),
                Some(&subject(scope, name)),
                RowChange {
                    removed,
                    added: None,
                },
            )?;
            Ok(meta)
        })?;
        // On disk before the caller says so, and no replaced or deleted
        // ciphertext left behind in the write-ahead log.
        self.checkpoint()?;
        Ok(meta)
    }

    /// Metadata of every secret, team first, then personal by owner, by name.
    pub fn list_secrets(&mut self) -> Result<Vec<SecretMeta>> {
        let rows = self.db.read(|tx| tx.list_secrets())?;
        rows.into_iter().map(meta_from_tuple).collect()
    }

    /// Opens the values of exactly these secrets, for a run. The caller
    /// passes what the scope rule decided; this is the store's only
    /// plaintext exit.
    ///
    /// First, the secret rows are held to the audit seal: a wanted secret
    /// whose row is not the one last written (restored from an older copy,
    /// even of the same version), and any secret put back, added or removed
    /// outside the supervisor (which changes what the scope rule decided),
    /// fails the call with [`StoreError::Tampered`] naming that secret.
    pub fn open_secrets(&mut self, wanted: &[(Scope, SecretName)]) -> Result<Vec<OpenedSecret>> {
        let cipher = self.cipher.as_ref().ok_or(StoreError::KeyRequired)?;
        let key = self.audit_key.as_ref().ok_or(StoreError::KeyRequired)?;
        let sealed = self.db.read(|tx| {
            let ids: Vec<(&str, &str, &str)> = wanted
                .iter()
                .map(|(scope, name)| (scope.kind(), scope.owner_column(), name.as_str()))
                .collect();
            check_rows(tx, key, Some(&ids))?;
            let ids: Vec<SecretId<'_>> = wanted.iter().map(|(s, n)| id(s, n)).collect();
            wanted
                .iter()
                .zip(tx.sealed_values(&ids)?)
                .map(|((scope, name), row)| {
                    row.ok_or_else(|| StoreError::SecretNotFound {
                        scope: scope.describe(),
                        name: name.to_string(),
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?;
        wanted
            .iter()
            .zip(sealed)
            .map(|((scope, name), (version, nonce, ct))| {
                let binding = Binding {
                    scope: scope.kind(),
                    owner: scope.owner_column(),
                    name: name.as_str(),
                    version,
                };
                let tampered = || StoreError::Tampered {
                    scope: scope.describe(),
                    name: name.to_string(),
                    reason: "its row was altered or moved (the ciphertext does not open for its scope, owner, name and version)".into(),
                };
                let plain = cipher.open(&nonce, &ct, &binding).ok_or_else(tampered)?;
                let text = std::str::from_utf8(&plain).map_err(|_| tampered())?;
                Ok(OpenedSecret {
                    name: name.clone(),
                    scope: scope.clone(),
                    version,
                    value: SecretString::from(text.to_owned()),
                })
            })
            .collect()
    }
}
