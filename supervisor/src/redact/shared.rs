//! One redactor for every live run that received the same secrets: its needle table and
//! filter are most of what a running agent costs the daemon in memory.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::Redactor;

/// The redactor for these secrets, shared with every live run of this process that
/// received the same names and values in the same order. Runs started by the same trigger
/// usually do (a schedule's runs, a webhook's), and a redactor (its needle table and filter)
/// is most of what a running agent costs the daemon in memory. A redactor lives as long as
/// one run holds it.
pub fn shared<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a SecretString)>) -> Arc<Redactor> {
    static SHARED: std::sync::LazyLock<Shared> = std::sync::LazyLock::new(Shared::default);
    SHARED.get(secrets.into_iter().collect())
}

/// Live redactors by a keyed 128-bit fingerprint of what they were built from: the values
/// themselves are not kept, and the key (random per process) makes a collision as unlikely
/// as a guess of 128 random bits.
#[derive(Default)]
struct Shared {
    key: std::hash::RandomState,
    live: std::sync::Mutex<Vec<([u64; 2], std::sync::Weak<Redactor>)>>,
}

impl Shared {
    fn get(&self, secrets: Vec<(&str, &SecretString)>) -> Arc<Redactor> {
        let print = self.fingerprint(&secrets);
        let found = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.retain(|(_, r)| r.strong_count() > 0);
            live.iter()
                .find(|(p, _)| *p == print)
                .and_then(|(_, r)| r.upgrade())
        };
        if let Some(redactor) = found {
            return redactor;
        }
        // Built outside the lock; two runs racing may build one each, which is harmless.
        let redactor = Arc::new(Redactor::new(secrets));
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((print, Arc::downgrade(&redactor)));
        redactor
    }

    fn fingerprint(&self, secrets: &[(&str, &SecretString)]) -> [u64; 2] {
        use std::hash::{BuildHasher, Hasher};
        [0u8, 1].map(|half| {
            let mut h = self.key.build_hasher();
            h.write_u8(half);
            h.write_usize(secrets.len());
            for (name, value) in secrets {
                let value = value.expose_secret().as_bytes();
                h.write_usize(name.len());
                h.write(name.as_bytes());
                h.write_usize(value.len());
                h.write(value);
            }
            h.finish()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_with_the_same_secrets_share_a_redactor_while_one_lives() {
        let cache = Shared::default();
        let (a, b) = (
            SecretString::from("value-one-123"),
            SecretString::from("value-two-456"),
        );
        let first = cache.get(vec![("A", &a), ("B", &b)]);
        let again = cache.get(vec![("A", &a), ("B", &b)]);
        assert!(Arc::ptr_eq(&first, &again));
        // Another value, another name or another order is another redactor.
        let changed = SecretString::from("value-one-124");
        for other in [
            vec![("A", &changed), ("B", &b)],
            vec![("C", &a), ("B", &b)],
            vec![("B", &b), ("A", &a)],
            vec![("A", &a)],
        ] {
            assert!(!Arc::ptr_eq(&first, &cache.get(other)));
        }
        let (out, n) = again.redact_all(b"x value-two-456 y");
        assert_eq!((out.as_slice(), n), (&b"x [REDACTED:B] y"[..], 1));
        // Once no run holds them, redactors and their entries go.
        drop((first, again));
        cache.get(vec![("Z", &a)]);
        assert_eq!(
            cache.live.lock().unwrap().len(),
            1,
            "only the last entry is left"
        );
    }
}
