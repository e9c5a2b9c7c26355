//! Sealing and opening values: AES-256-GCM-SIV, a fresh 96-bit nonce per
//! encryption, associated data binding the value to its row.

use aes_gcm_siv::aead::{Aead, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Key, KeyInit, Nonce};
use zeroize::Zeroizing;

use crate::key::MasterKey;
use crate::{Result, StoreError};

pub(crate) const NONCE_LEN: usize = 12;

/// Plaintext sealed at `init` so that a wrong key is recognised at once.
const KEY_CHECK_PLAINTEXT: &[u8] = b"supervisor master key check v1";
const KEY_CHECK_AAD: &[u8] = b"supervisor/v1\0key-check";
/// The key check of a store whose audit chain is keyed and sealed: a store
/// that carries it never goes back to an unsealed chain, so removing the
/// seal cannot pass for a store that was never sealed.
const KEY_CHECK_V2_PLAINTEXT: &[u8] = b"supervisor master key check v2: sealed audit chain";
const KEY_CHECK_V2_AAD: &[u8] = b"supervisor/v2\0key-check";

/// What a stored key check says, once it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyCheck {
    /// Written before the audit chain was keyed: the store is to be sealed.
    Unsealed,
    /// The audit chain is keyed and sealed.
    Sealed,
}

pub(crate) struct Cipher {
    aead: Aes256GcmSiv,
}

/// What a ciphertext is bound to. Any change makes it fail to open.
pub(crate) struct Binding<'a> {
    pub scope: &'a str,
    pub owner: &'a str,
    pub name: &'a str,
    pub version: i64,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        // NUL cannot occur in a scope, member or secret name, so the
        // encoding is unambiguous.
        format!(
            "supervisor/v1\0secret\0{}\0{}\0{}\0{}",
            self.scope, self.owner, self.name, self.version
        )
        .into_bytes()
    }
}

impl Cipher {
    pub(crate) fn new(key: &MasterKey) -> Cipher {
        let key = Key::<Aes256GcmSiv>::from(*key.bytes());
        Cipher {
            aead: Aes256GcmSiv::new(&key),
        }
    }

    fn seal_with(&self, plaintext: &[u8], aad: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Random(e.to_string()))?;
        let ct = self
            .aead
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| StoreError::Corrupt("encryption failed".into()))?;
        Ok((nonce, ct))
    }

    fn open_with(&self, nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let nonce = Nonce::try_from(nonce).ok()?;
        self.aead
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    pub(crate) fn seal(
        &self,
        plaintext: &[u8],
        at: &Binding<'_>,
    ) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
        self.seal_with(plaintext, &at.aad())
    }

    pub(crate) fn open(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        at: &Binding<'_>,
    ) -> Option<Zeroizing<Vec<u8>>> {
        self.open_with(nonce, ciphertext, &at.aad())
    }

    /// The key check of a sealed store: nonce followed by ciphertext.
    pub(crate) fn key_check(&self) -> Result<Vec<u8>> {
        let (nonce, ct) = self.seal_with(KEY_CHECK_V2_PLAINTEXT, KEY_CHECK_V2_AAD)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// The key check as stores wrote it before the chain was keyed.
    #[cfg(test)]
    pub(crate) fn unsealed_key_check(&self) -> Result<Vec<u8>> {
        let (nonce, ct) = self.seal_with(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// What `stored` says, or `None` when this key does not open it.
    pub(crate) fn read_key_check(&self, stored: &[u8]) -> Option<KeyCheck> {
        if stored.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ct) = stored.split_at(NONCE_LEN);
        let is = |plain: &[u8], aad: &[u8]| {
            self.open_with(nonce, ct, aad)
                .is_some_and(|p| p.as_slice() == plain)
        };
        if is(KEY_CHECK_V2_PLAINTEXT, KEY_CHECK_V2_AAD) {
            Some(KeyCheck::Sealed)
        } else if is(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD) {
            Some(KeyCheck::Unsealed)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cipher(byte: u8) -> Cipher {
        Cipher::new(&MasterKey::from_bytes([byte; 32]))
    }

    const AT: Binding<'static> = Binding {
        scope: "team",
        owner: "",
        name: "API_KEY",
        version: 1,
    };

    #[test]
    fn nonces_are_fresh() {
        let c = cipher(1);
        let (n1, c1) = c.seal(b"same value", &AT).unwrap();
        let (n2, c2) = c.seal(b"same value", &AT).unwrap();
        assert_ne!(n1, n2);
        assert_ne!(c1, c2);
    }

    #[test]
    fn binding_is_enforced() {
        let c = cipher(1);
        let (n, ct) = c.seal(b"value", &AT).unwrap();
        assert!(c.open(&n, &ct, &AT).is_some());
        for other in [
            Binding {
                scope: "personal",
                ..AT
            },
            Binding {
                owner: "alice",
                ..AT
            },
            Binding {
                name: "OTHER",
                ..AT
            },
            Binding { version: 2, ..AT },
        ] {
            assert!(c.open(&n, &ct, &other).is_none());
        }
        assert!(cipher(2).open(&n, &ct, &AT).is_none());
    }

    #[test]
    fn key_check_tells_keys_and_versions_apart() {
        let stored = cipher(7).key_check().unwrap();
        assert_eq!(cipher(7).read_key_check(&stored), Some(KeyCheck::Sealed));
        assert_eq!(cipher(8).read_key_check(&stored), None);
        assert_eq!(cipher(7).read_key_check(&stored[..5]), None);
        let old = cipher(7).unsealed_key_check().unwrap();
        assert_eq!(cipher(7).read_key_check(&old), Some(KeyCheck::Unsealed));
    }

    proptest! {
        #[test]
        fn round_trip(value in proptest::collection::vec(any::<u8>(), 1..512), version in 1i64..1000) {
            let c = cipher(3);
            let at = Binding { version, ..AT };
            let (n, ct) = c.seal(&value, &at).unwrap();
            prop_assert!(!ct.windows(value.len().min(8)).any(|w| value.len() >= 8 && w == &value[..8]));
            let opened = c.open(&n, &ct, &at).unwrap();
            prop_assert_eq!(opened.as_slice(), value.as_slice());
        }
    }
}
