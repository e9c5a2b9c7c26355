//! The encrypted secrets store, run records and the audit log.
//!
//! Invariant (the one this crate exists to keep): **no function of this
//! crate's public API returns a plaintext secret value, except
//! [`Store::open_secrets`]**, which the run path calls with the exact list of
//! secrets that the scope rule decided a run receives, and which returns them
//! as [`secrecy::SecretString`]. Listing, auditing and run records carry
//! names, scopes, owners and versions only.
//!
//! Values are sealed with AES-256-GCM-SIV under a fresh random nonce, with
//! associated data binding each ciphertext to its scope, owner, name and
//! version, so a ciphertext copied to another row fails to open. The master
//! key never sits in the store; it comes from a 0600 key file or a systemd
//! credential ([`MasterKey`]).
//!
//! Evidence: every change and every run is appended to an audit chain
//! authenticated with a key derived from the master key, whose head (and
//! the sum of the secret rows' fingerprints) is sealed with it; so only a
//! holder of the key writes, and a cut, edited or restored record is found
//! (`evidence`, `audit`, `seal`). Webhook deliveries are claimed in a
//! database of their own ([`Deliveries`]).

#![forbid(unsafe_code)]

mod audit;
mod backend;
mod cluster;
mod crypto;
mod db;
mod dedupe;
mod error;
mod evidence;
mod key;
mod leaks;
mod postgres;
mod runs;
mod seal;
mod secrets;
mod sqlite;
#[cfg(test)]
mod suite;
mod time;

pub use audit::AuditEntry;
pub use cluster::{Firing, Queued, Reaped};
pub use db::{DB_FILE, Location, Store, ensure_private_dir, node_id};
pub use dedupe::{Deliveries, Pending};
pub use error::StoreError;
pub use evidence::AuditVerdict;
pub use key::{KEY_LEN, MasterKey};
pub use leaks::{Leak, LeakReport};
pub use postgres::PgLocation;
pub use runs::{RunFilter, RunRecord, RunStatus};
pub use secrets::{MAX_VALUE_LEN, OpenedSecret, Scope, SecretMeta, validate_value};
pub use time::{format_time, now};

/// The result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
