//! Deliveries already handled, so that a webhook retried by its sender (or
//! replayed by someone else) starts at most one run, across restarts.

use rusqlite::params;

use crate::{Result, Store};

impl Store {
    /// Records `key` from `source` as seen. Returns `true` the first time,
    /// `false` for a duplicate within `ttl_secs`. Older entries are pruned.
    pub fn claim_delivery(
        &mut self,
        source: &str,
        key: &str,
        now_unix: i64,
        ttl_secs: i64,
    ) -> Result<bool> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM deliveries WHERE seen_at < ?1",
                [now_unix - ttl_secs],
            )?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO deliveries (source, key, seen_at) VALUES (?1, ?2, ?3)",
                params![source, key, now_unix],
            )?;
            Ok(inserted == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{MasterKey, Store};

    #[test]
    fn a_delivery_is_claimed_once_within_its_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(dir.path(), &MasterKey::from_bytes([8; 32])).unwrap();
        assert!(s.claim_delivery("slack", "Ev1", 1000, 3600).unwrap());
        assert!(!s.claim_delivery("slack", "Ev1", 1001, 3600).unwrap());
        assert!(s.claim_delivery("linear", "Ev1", 1001, 3600).unwrap());
        drop(s);
        let mut s = Store::open(dir.path(), None).unwrap();
        assert!(!s.claim_delivery("slack", "Ev1", 2000, 3600).unwrap());
        // After the window the entry is pruned.
        assert!(s.claim_delivery("slack", "Ev1", 1000 + 3601, 3600).unwrap());
    }
}
