//! The `[store]` section: where the store lives. Absent, it is SQLite in
//! the state directory; with `url` (a credential reference, never the URL
//! itself, which holds a password), a PostgreSQL database that several
//! supervisors may share.

use std::time::Duration;

use toml::Spanned;

use crate::load::{SecretRef, Validator};
use crate::raw::RawStore;

/// How long a node's lease lasts when the config names none.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The store's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreConfig {
    /// A PostgreSQL connection URL, read from a file, variable or systemd
    /// credential; `None`: SQLite in the state directory.
    pub url: Option<SecretRef>,
    /// How long a node may go without renewing its lease before live nodes
    /// mark its runs lost (PostgreSQL only).
    pub lease: Option<Duration>,
}

impl StoreConfig {
    /// The lease in force.
    pub fn lease(&self) -> Duration {
        self.lease.unwrap_or(DEFAULT_LEASE)
    }
}

impl Validator<'_> {
    pub(crate) fn store(&mut self, raw: Option<RawStore>) -> StoreConfig {
        let Some(raw) = raw else {
            return StoreConfig::default();
        };
        if raw.url.is_none()
            && let Some(lease) = &raw.lease
        {
            self.report(
                lease,
                "`lease` applies to a PostgreSQL store only",
                Some("add url = { file = \"...\" } naming the database, or remove `lease`"),
            );
        }
        let lease = raw.lease.map(|value: Spanned<String>| {
            let span = value.clone();
            let lease = self.duration(Some(value), DEFAULT_LEASE, "lease");
            if lease < Duration::from_secs(1) {
                self.report(
                    &span,
                    "`lease` must be at least 1s",
                    Some("a node renews its lease three times per lease; 30s is the default"),
                );
                return DEFAULT_LEASE;
            }
            lease
        });
        StoreConfig {
            url: raw.url.map(|r| self.secret_ref(r)),
            lease,
        }
    }
}
