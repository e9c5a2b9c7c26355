//! Leak marks: a secret whose value appeared in a run's output (where it was redacted) is
//! marked with that run and when, until its value is next set. Each such run is also an
//! audit entry (`secret.leak`). Names, versions and counts only, never a value.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use supervisor_config::SecretName;

use crate::audit::{RowChange, append};
use crate::backend::{SecretId, Sync};
use crate::secrets::Scope;
use crate::time::{format_time, now};
use crate::{Result, Store};

/// The mark on a secret: the last run whose output showed its value, when that run ended,
/// and how many runs did since the value was last set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leak {
    pub run: String,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub at: DateTime<Utc>,
    pub runs: i64,
}

/// A secret a run received, whose value its output showed `hits` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakReport {
    pub scope: Scope,
    pub name: SecretName,
    /// The version the run received: a mark is only set while that is still the value.
    pub version: i64,
    pub hits: u64,
}

impl Store {
    /// Marks the secrets whose values run `run` showed and writes one `secret.leak` audit
    /// entry each, in one transaction. A secret updated (or deleted) since the run received
    /// it keeps its mark as it is: the value that leaked is no longer the one stored; the audit
    /// entry says so (`"current": false`).
    pub fn record_leaks(
        &mut self,
        run: &str,
        actor: Option<&str>,
        leaks: &[LeakReport],
    ) -> Result<()> {
        if leaks.is_empty() {
            return Ok(());
        }
        let at = format_time(now());
        self.write(Sync::Normal, |tx, key| {
            for l in leaks {
                let id = SecretId {
                    scope: l.scope.kind(),
                    owner: l.scope.owner_column(),
                    name: l.name.as_str(),
                };
                let marked = tx.mark_leak(id, l.version, run, &at)?;
                // No subject: the newest entry about a secret stays its last
                // row change, and the leak columns are not part of a row's
                // fingerprint.
                append(
                    tx,
                    key,
                    actor,
                    "secret.leak",
                    &json!({
                        "run": run,
                        "scope": l.scope.kind(),
                        "owner": l.scope.owner(),
                        "name": l.name,
                        "version": l.version,
                        "hits": l.hits,
                        "current": marked == 1,
                    }),
                    None,
                    RowChange::default(),
                )?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::{AuditVerdict, MasterKey};

    fn name(n: &str) -> SecretName {
        SecretName::new(n).unwrap()
    }

    fn report(scope: &Scope, n: &str, version: i64) -> LeakReport {
        LeakReport {
            scope: scope.clone(),
            name: name(n),
            version,
            hits: 2,
        }
    }

    #[test]
    fn a_leak_marks_the_secret_until_its_value_is_set_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(dir.path(), &MasterKey::from_bytes([5; 32])).unwrap();
        let bob = Scope::Personal("bob".into());
        let v = |t: &str| SecretString::from(t.to_owned());
        s.create_secret(
            &Scope::Team,
            &name("API"),
            None,
            &v("team-value-1"),
            "alice",
        )
        .unwrap();
        s.create_secret(&bob, &name("API"), None, &v("bob-value-1"), "bob")
            .unwrap();
        assert!(s.list_secrets().unwrap().iter().all(|m| m.leak.is_none()));

        s.record_leaks("run-1", Some("bob"), &[report(&bob, "API", 1)])
            .unwrap();
        s.record_leaks("run-2", Some("bob"), &[report(&bob, "API", 1)])
            .unwrap();
        let list = s.list_secrets().unwrap();
        let team = list.iter().find(|m| m.owner.is_none()).unwrap();
        let mine = list.iter().find(|m| m.owner.is_some()).unwrap();
        assert_eq!(team.leak, None, "only the secret that leaked is marked");
        let leak = mine.leak.as_ref().unwrap();
        assert_eq!((leak.run.as_str(), leak.runs), ("run-2", 2));
        let json = serde_json::to_value(mine).unwrap();
        assert_eq!(json["leak"]["run"], "run-2");
        assert_eq!(json["leak"]["runs"], 2);
        assert!(json["leak"]["at"].as_str().unwrap().ends_with('Z'));

        // Rotating clears it; a late report about the old version marks nothing.
        s.update_secret(&bob, &name("API"), None, &v("bob-value-2"), "bob")
            .unwrap();
        s.record_leaks("run-3", Some("bob"), &[report(&bob, "API", 1)])
            .unwrap();
        let list = s.list_secrets().unwrap();
        assert!(list.iter().all(|m| m.leak.is_none()));

        let leaks: Vec<_> = s
            .audit_list(None)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "secret.leak")
            .collect();
        assert_eq!(leaks.len(), 3);
        assert_eq!(leaks[0].detail["run"], "run-1");
        assert_eq!(leaks[0].detail["owner"], "bob");
        assert_eq!(leaks[0].detail["hits"], 2);
        assert_eq!(leaks[0].detail["current"], true);
        assert_eq!(leaks[2].detail["current"], false);
        assert!(matches!(
            s.audit_verify().unwrap(),
            AuditVerdict::Intact { .. }
        ));
    }

    #[test]
    fn a_store_from_before_leak_marks_gains_the_columns() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::init(dir.path(), &MasterKey::from_bytes([5; 32])).unwrap();
        // Back to schema 2, as a store made before leak marks existed.
        s.conn()
            .execute_batch(
                "ALTER TABLE secrets DROP COLUMN leaked_run;
                 ALTER TABLE secrets DROP COLUMN leaked_at;
                 ALTER TABLE secrets DROP COLUMN leaked_runs;
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        drop(s);
        let mut s = Store::open(dir.path(), Some(&MasterKey::from_bytes([5; 32]))).unwrap();
        s.create_secret(
            &Scope::Team,
            &name("A"),
            None,
            &SecretString::from("value-a".to_owned()),
            "x",
        )
        .unwrap();
        s.record_leaks("r", None, &[report(&Scope::Team, "A", 1)])
            .unwrap();
        assert_eq!(s.list_secrets().unwrap()[0].leak.as_ref().unwrap().run, "r");
    }
}
