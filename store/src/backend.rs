//! The storage interface: the rows the store's logic reads and writes, as
//! one transaction of a backend ([`Tx`]). The logic (sealing values, the
//! keyed audit chain, the seal and its sum, rollback checks, run records)
//! is written once against it; SQLite (`sqlite`) and PostgreSQL
//! (`postgres`) each implement it with their own SQL.
//!
//! Invariants every implementation keeps: a write transaction that appends
//! to the audit log holds the seal exclusively from its start (SQLite: the
//! database's write lock; PostgreSQL: the seal row, locked first), so the
//! chain never forks; a read transaction sees one snapshot, so a check of
//! the log, the seal and the secret rows never mixes two moments.

use crate::Result;
use crate::evidence::{Entry, Head, Stored};

/// Which secret: `(scope, owner, name)` as stored (`owner` is `""` for team
/// secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SecretId<'a> {
    pub scope: &'a str,
    pub owner: &'a str,
    pub name: &'a str,
}

/// A secret's row as the seal's sum covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretRow {
    pub scope: String,
    pub owner: String,
    pub name: String,
    pub version: i64,
    pub nonce: Vec<u8>,
}

/// A secret's metadata columns: scope, owner, name, description, version,
/// created at, created by, updated at, updated by, and its leak mark: the
/// last run whose output showed the value, when, and how many runs did.
pub(crate) type MetaRow = (
    String,
    String,
    String,
    Option<String>,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
);

/// A value as stored: version, nonce, ciphertext.
pub(crate) type SealedRow = (i64, Vec<u8>, Vec<u8>);

/// What a new secret row holds besides its id.
pub(crate) struct NewSecret<'a> {
    pub description: Option<&'a str>,
    pub version: i64,
    pub nonce: &'a [u8],
    pub ciphertext: &'a [u8],
    pub at: &'a str,
    pub actor: &'a str,
}

/// A run's columns as stored (times as RFC 3339 text).
#[derive(Debug, Clone)]
pub(crate) struct RunRow {
    pub id: String,
    pub agent: String,
    pub trigger: String,
    pub member: Option<String>,
    pub status: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub log_bytes: i64,
    pub redactions: i64,
    pub detail: String,
}

/// A run left `running`: id, member, agent.
pub(crate) type Orphan = (String, Option<String>, String);

/// How to tell a run's owner is gone: by process id on this host (SQLite,
/// one host) or by lease (PostgreSQL, several nodes).
pub(crate) type IsAlive<'a> = &'a (dyn Fn(i64) -> bool + std::marker::Sync);

/// One transaction of a backend.
pub(crate) trait Tx {
    fn meta(&mut self, key: &str) -> Result<Option<Vec<u8>>>;
    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<()>;

    /// The seal as stored: the head and its MAC.
    fn read_seal(&mut self) -> Result<Option<(Head, String)>>;
    fn write_seal(&mut self, head: &Head, mac: &str) -> Result<()>;
    /// The last entry's `seq` and `hash` (0 and GENESIS when there is none).
    fn tail(&mut self) -> Result<(i64, String)>;
    fn insert_entry(&mut self, entry: &Entry<'_>, hash: &str) -> Result<()>;
    /// The newest entry about `subject`.
    fn latest_about(&mut self, subject: &str) -> Result<Option<Stored>>;
    /// Every subject an entry names.
    fn subjects(&mut self) -> Result<Vec<String>>;
    /// Up to `limit` entries after `seq`, in order.
    fn entries_after(&mut self, seq: i64, limit: i64) -> Result<Vec<Stored>>;
    /// The newest `limit` entries (all when `None`), oldest first.
    fn newest_entries(&mut self, limit: Option<usize>) -> Result<Vec<Stored>>;

    fn secret(&mut self, id: SecretId<'_>) -> Result<Option<MetaRow>>;
    fn secret_rows(&mut self) -> Result<Vec<SecretRow>>;
    fn sealed_value(&mut self, id: SecretId<'_>) -> Result<Option<SealedRow>>;
    /// [`Tx::sealed_value`] of each of `ids`, in order (a backend across a
    /// network answers in one round trip).
    fn sealed_values(&mut self, ids: &[SecretId<'_>]) -> Result<Vec<Option<SealedRow>>> {
        ids.iter().map(|id| self.sealed_value(*id)).collect()
    }
    fn insert_secret(&mut self, id: SecretId<'_>, row: &NewSecret<'_>) -> Result<()>;
    /// Replaces the value (clearing its leak mark); the description only
    /// when one is given.
    fn update_secret(&mut self, id: SecretId<'_>, row: &NewSecret<'_>) -> Result<()>;
    /// Marks the secret as shown by `run` at `at`, while it still has
    /// `version`; returns the rows changed (0 once it has another value).
    fn mark_leak(&mut self, id: SecretId<'_>, version: i64, run: &str, at: &str) -> Result<usize>;
    fn delete_secret(&mut self, id: SecretId<'_>) -> Result<()>;
    /// Team first, then personal by owner, by name.
    fn list_secrets(&mut self) -> Result<Vec<MetaRow>>;

    /// Records a run owned by this process (this host's pid, or this node).
    fn insert_run(&mut self, run: &RunRow, delivery: Option<&str>) -> Result<()>;
    fn run_detail(&mut self, id: &str) -> Result<Option<String>>;
    /// Sets the outcome columns and the detail; returns the rows changed.
    fn end_run(&mut self, run: &RunRow) -> Result<usize>;
    fn set_run_detail(&mut self, id: &str, detail: &str) -> Result<()>;
    fn list_runs(
        &mut self,
        agent: Option<&str>,
        member: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<RunRow>>;
    /// At most two runs whose id starts with `prefix`.
    fn runs_by_prefix(&mut self, prefix: &str) -> Result<Vec<RunRow>>;
    /// Runs left `running` whose owner is gone.
    fn orphaned_runs(&mut self, is_alive: IsAlive<'_>) -> Result<Vec<Orphan>>;
    fn mark_lost(&mut self, id: &str, at: &str) -> Result<()>;
    fn run_for_delivery(&mut self, delivery: &str) -> Result<Option<String>>;
    fn run_exists(&mut self, id: &str) -> Result<bool>;
}

/// Whether a write must be on disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    /// On disk soon (SQLite: at the next synced commit or checkpoint;
    /// PostgreSQL: `synchronous_commit = off`, within a fraction of a second).
    Normal,
    /// On disk (and, on PostgreSQL, on any synchronous standby) when the
    /// commit returns.
    Full,
}

/// Whether a write transaction appends to the audit log, and so must hold
/// the seal from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Appends {
    Yes,
    No,
}
