//! The audit chain's cryptography, apart from where its rows live: the audit
//! key, each entry's MAC, the fingerprint of a secret's row, the sum of the
//! rows, and the seal over the chain's head. The SQLite store calls these
//! with plain values; another backend would call the same.
//!
//! Invariants: the audit key is derived from the master key with HKDF-SHA256
//! under a label of its own, so it is never the key that encrypts values;
//! every MAC and fingerprint starts with a label naming what it covers, so
//! one kind can never pass for another; MACs are compared in constant time.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::key::MasterKey;

/// The `prev_hash` of the first entry, and the head of an empty chain.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The HKDF label of the audit key.
const AUDIT_KEY_INFO: &[u8] = b"supervisor/v1 audit chain key";
const ENTRY_LABEL: &[u8] = b"supervisor/v1\0audit-entry\0";
const ROW_LABEL: &[u8] = b"supervisor/v1\0secret-row\0";
const SEAL_LABEL: &[u8] = b"supervisor/v1\0audit-seal\0";

/// The key that authenticates the audit chain, its seal and the secret rows'
/// fingerprints. Zeroized on drop; never printed.
pub(crate) struct AuditKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl AuditKey {
    /// HKDF-SHA256 of the master key (no salt) with the audit label.
    pub(crate) fn derive(master: &MasterKey) -> AuditKey {
        let hk = Hkdf::<Sha256>::new(None, master.bytes());
        let mut bytes = Zeroizing::new([0u8; 32]);
        hk.expand(AUDIT_KEY_INFO, bytes.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        AuditKey { bytes }
    }

    fn hmac(&self, label: &[u8], message: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.bytes.as_ref())
            .expect("HMAC accepts keys of any length");
        mac.update(label);
        mac.update(message);
        mac
    }

    fn tag(&self, label: &[u8], message: &[u8]) -> String {
        hex::encode(self.hmac(label, message).finalize().into_bytes())
    }

    /// Whether `given` (hex) is the MAC of `message` under `label`.
    fn verify(&self, label: &[u8], message: &[u8], given: &str) -> bool {
        match hex::decode(given) {
            Ok(bytes) => self.hmac(label, message).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    /// The MAC of a keyed entry (its `hash` column).
    pub(crate) fn entry_mac(&self, entry: &Entry<'_>) -> String {
        self.tag(ENTRY_LABEL, &entry.keyed_bytes())
    }

    pub(crate) fn entry_ok(&self, entry: &Entry<'_>, hash: &str) -> bool {
        self.verify(ENTRY_LABEL, &entry.keyed_bytes(), hash)
    }

    /// The fingerprint of a secret's stored row: it changes with any of
    /// scope, owner, name, version or nonce (a fresh one per encryption),
    /// and says nothing about the value.
    pub(crate) fn row_fingerprint(&self, row: &Row<'_>) -> [u8; 32] {
        let bytes = serde_json::to_vec(row).expect("plain struct serialises");
        self.hmac(ROW_LABEL, &bytes).finalize().into_bytes().into()
    }

    /// The seal's MAC.
    pub(crate) fn seal(&self, head: &Head) -> String {
        self.tag(SEAL_LABEL, &head.bytes())
    }

    pub(crate) fn seal_ok(&self, head: &Head, mac: &str) -> bool {
        self.verify(SEAL_LABEL, &head.bytes(), mac)
    }
}

/// An audit entry's fields as they are authenticated: fixed order, the
/// detail as stored text.
#[derive(Serialize)]
pub(crate) struct Entry<'a> {
    pub seq: i64,
    pub at: &'a str,
    pub actor: Option<&'a str>,
    pub action: &'a str,
    pub detail: &'a str,
    pub prev_hash: &'a str,
    /// What the entry is about, for lookups: `secret:<scope>:<owner>:<name>`.
    /// Covered by keyed MACs only (unkeyed entries predate it).
    #[serde(skip)]
    pub subject: Option<&'a str>,
}

impl Entry<'_> {
    /// The SHA-256 of an entry written before the chain was keyed.
    pub(crate) fn legacy_hash(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("plain struct serialises");
        hex::encode(Sha256::digest(&bytes))
    }

    fn keyed_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).expect("plain struct serialises");
        bytes.push(0);
        if let Some(s) = self.subject {
            bytes.extend_from_slice(s.as_bytes());
        }
        bytes
    }
}

/// A secret's row as its fingerprint covers it (the nonce in hex).
#[derive(Serialize)]
pub(crate) struct Row<'a> {
    pub scope: &'a str,
    pub owner: &'a str,
    pub name: &'a str,
    pub version: i64,
    pub nonce: &'a str,
}

/// The chain's head as sealed: where the keyed part starts, the last entry
/// and its MAC, and the sum of every secret row's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Head {
    /// The first entry authenticated with the audit key (earlier ones are
    /// SHA-256 links from before the chain was keyed).
    pub anchor: i64,
    /// The last entry (0 for an empty chain).
    pub seq: i64,
    /// The last entry's `hash` ([`GENESIS`] for an empty chain).
    pub hash: String,
    /// [`RowSum`] of the secret rows, in hex.
    pub secrets: String,
}

impl Head {
    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain struct serialises")
    }
}

/// The sum (mod 2^256) of row fingerprints: a keyed hash of the set of rows
/// that a writer updates by adding the new row's fingerprint and taking away
/// the old one's, without reading every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RowSum([u8; 32]);

impl RowSum {
    pub(crate) fn add(&mut self, fp: &[u8; 32]) {
        let mut carry = 0u16;
        for i in (0..32).rev() {
            let s = u16::from(self.0[i]) + u16::from(fp[i]) + carry;
            self.0[i] = s as u8;
            carry = s >> 8;
        }
    }

    pub(crate) fn sub(&mut self, fp: &[u8; 32]) {
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let d = i16::from(self.0[i]) - i16::from(fp[i]) - borrow;
            self.0[i] = d.rem_euclid(256) as u8;
            borrow = i16::from(d < 0);
        }
    }

    pub(crate) fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn from_hex(s: &str) -> Option<RowSum> {
        let bytes: [u8; 32] = hex::decode(s).ok()?.try_into().ok()?;
        Some(RowSum(bytes))
    }
}

/// The outcome of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Every entry links to the one before and carries a valid hash or MAC,
    /// and the seal names the last one.
    Intact {
        entries: u64,
        /// The last entry, as the seal names it.
        sealed: i64,
        /// The first entry authenticated with the audit key (the ones
        /// before it were written before the chain was keyed).
        keyed_from: i64,
    },
    /// The first entry that does not hold (or is missing), and why.
    Broken { seq: i64, reason: String },
    /// The entries hold, but the seal over them does not.
    SealBroken { reason: String },
    /// The log and its seal hold, but a secret's row is not the one last
    /// written (the error names the secret).
    SecretRow { reason: String },
}

/// An entry as stored.
pub(crate) struct Stored {
    pub seq: i64,
    pub at: String,
    pub actor: Option<String>,
    pub action: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
    pub subject: Option<String>,
}

impl Stored {
    pub(crate) fn fields(&self) -> Entry<'_> {
        Entry {
            seq: self.seq,
            at: &self.at,
            actor: self.actor.as_deref(),
            action: &self.action,
            detail: &self.detail,
            prev_hash: &self.prev_hash,
            subject: self.subject.as_deref(),
        }
    }

    /// Whether the entry's own hash or MAC holds (not its link).
    pub(crate) fn authentic(&self, key: &AuditKey, anchor: i64) -> bool {
        if self.seq < anchor {
            self.fields().legacy_hash() == self.hash
        } else {
            key.entry_ok(&self.fields(), &self.hash)
        }
    }
}

/// Walks a chain in order of `seq` and checks it against its seal (`None`
/// when the seal is missing). Entries before the seal's anchor are checked
/// as SHA-256 links, the rest as MACs under `key`. The first problem found
/// is the verdict; an entry problem is named before a seal problem.
pub(crate) fn walk(
    key: &AuditKey,
    seal: Option<(&Head, &str)>,
    entries: impl Iterator<Item = crate::Result<Stored>>,
) -> crate::Result<AuditVerdict> {
    let anchor = seal.map_or(1, |(h, _)| h.anchor);
    let mut expected = 1;
    let mut prev = GENESIS.to_owned();
    let mut count = 0u64;
    for e in entries {
        let e = e?;
        let broken = |seq: i64, reason: String| Ok(AuditVerdict::Broken { seq, reason });
        if e.seq != expected {
            return broken(
                expected,
                format!("it is missing (the next entry is {})", e.seq),
            );
        }
        if e.prev_hash != prev {
            return broken(e.seq, "it does not link to the entry before it".into());
        }
        if !e.authentic(key, anchor) {
            return broken(
                e.seq,
                if e.seq < anchor {
                    "its content does not match its hash: it was edited".into()
                } else {
                    "its MAC does not verify under this store's key: it was edited, or written by someone without the key".into()
                },
            );
        }
        prev = e.hash;
        expected += 1;
        count += 1;
    }
    let last = expected - 1;
    let Some((head, mac)) = seal else {
        return Ok(AuditVerdict::SealBroken {
            reason:
                "the seal over its last entry is missing: it was removed outside the supervisor"
                    .into(),
        });
    };
    if !key.seal_ok(head, mac) {
        return Ok(AuditVerdict::SealBroken {
            reason: "its seal does not verify under this store's key: it was forged or altered"
                .into(),
        });
    }
    let verdict = if last < head.seq {
        AuditVerdict::Broken {
            seq: last + 1,
            reason: format!(
                "it is missing: the log ends at entry {last}, but its seal names entry {} as the last (the tail was cut)",
                head.seq
            ),
        }
    } else if last > head.seq {
        AuditVerdict::Broken {
            seq: head.seq + 1,
            reason: format!(
                "it comes after entry {}, which the seal names as the last: it was added without the key",
                head.seq
            ),
        }
    } else if prev != head.hash {
        AuditVerdict::Broken {
            seq: last,
            reason: "it is not the entry that the seal names as the last".into(),
        }
    } else {
        AuditVerdict::Intact {
            entries: count,
            sealed: head.seq,
            keyed_from: anchor,
        }
    };
    Ok(verdict)
}

/// The subject of the entries about one secret.
pub(crate) fn secret_subject(scope: &str, owner: &str, name: &str) -> String {
    format!("secret:{scope}:{owner}:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> AuditKey {
        AuditKey::derive(&MasterKey::from_bytes([b; 32]))
    }

    fn entry(detail: &str) -> Entry<'_> {
        Entry {
            seq: 3,
            at: "2026-01-01T00:00:00.000Z",
            actor: Some("alice"),
            action: "secret.update",
            detail,
            prev_hash: GENESIS,
            subject: Some("secret:team::API"),
        }
    }

    #[test]
    fn the_audit_key_is_not_the_master_key_and_depends_on_it() {
        let master = MasterKey::from_bytes([7; 32]);
        let k = AuditKey::derive(&master);
        assert_ne!(k.bytes.as_ref(), master.bytes());
        assert_ne!(key(7).bytes.as_ref(), key(8).bytes.as_ref());
        // RFC 5869 test case 3 (no salt, no info) pins the construction.
        let ikm = [0x0b; 22];
        let mut okm = [0u8; 42];
        Hkdf::<Sha256>::new(None, &ikm)
            .expand(&[], &mut okm)
            .unwrap();
        assert_eq!(
            hex::encode(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
    }

    #[test]
    fn an_entry_mac_covers_every_field_and_needs_the_key() {
        let k = key(1);
        let mac = k.entry_mac(&entry("{}"));
        assert!(k.entry_ok(&entry("{}"), &mac));
        assert!(!k.entry_ok(&entry("{\"x\":1}"), &mac));
        assert!(!key(2).entry_ok(&entry("{}"), &mac));
        let other_subject = Entry {
            subject: Some("secret:team::OTHER"),
            ..entry("{}")
        };
        assert!(!k.entry_ok(&other_subject, &mac));
        assert!(!k.entry_ok(&entry("{}"), "not hex"));
        // The unkeyed hash of the same entry is something else.
        assert_ne!(entry("{}").legacy_hash(), mac);
    }

    #[test]
    fn seals_and_fingerprints_are_labelled_apart() {
        let k = key(1);
        let head = Head {
            anchor: 1,
            seq: 2,
            hash: GENESIS.into(),
            secrets: RowSum::default().to_hex(),
        };
        let mac = k.seal(&head);
        assert!(k.seal_ok(&head, &mac));
        assert!(!k.seal_ok(
            &Head {
                seq: 1,
                ..head.clone()
            },
            &mac
        ));
        assert!(!key(2).seal_ok(&head, &mac));
        let row = Row {
            scope: "team",
            owner: "",
            name: "A",
            version: 1,
            nonce: "00",
        };
        let fp = k.row_fingerprint(&row);
        assert_ne!(fp, k.row_fingerprint(&Row { version: 2, ..row }));
        assert_ne!(fp, k.row_fingerprint(&Row { nonce: "01", ..row }));
    }

    proptest! {
        #[test]
        fn row_sums_add_and_take_away_in_any_order(
            fps in proptest::collection::vec(any::<[u8; 32]>(), 1..20),
            drop in any::<prop::sample::Index>(),
        ) {
            let mut all = RowSum::default();
            for fp in &fps {
                all.add(fp);
            }
            let gone = drop.index(fps.len());
            let mut rest = RowSum::default();
            for (i, fp) in fps.iter().enumerate().rev() {
                if i != gone {
                    rest.add(fp);
                }
            }
            let mut taken = all;
            taken.sub(&fps[gone]);
            prop_assert_eq!(taken, rest);
            prop_assert_eq!(RowSum::from_hex(&all.to_hex()), Some(all));
        }
    }
}
