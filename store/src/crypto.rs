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

    /// The key check written at `init`: nonce followed by ciphertext.
    pub(crate) fn key_check(&self) -> Result<Vec<u8>> {
        let (nonce, ct) = self.seal_with(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub(crate) fn verify_key_check(&self, stored: &[u8]) -> bool {
        stored.len() > NONCE_LEN
            && self
                .open_with(&stored[..NONCE_LEN], &stored[NONCE_LEN..], KEY_CHECK_AAD)
                .is_some_and(|p| p.as_slice() == KEY_CHECK_PLAINTEXT)
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
    fn key_check_tells_keys_apart() {
        let stored = cipher(7).key_check().unwrap();
        assert!(cipher(7).verify_key_check(&stored));
        assert!(!cipher(8).verify_key_check(&stored));
        assert!(!cipher(7).verify_key_check(&stored[..5]));
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
