//! Byte payloads inside JSON frames: secret values (toward the daemon only)
//! and redacted output (toward the CLI), both as base64 text.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A secret value on its way to the daemon. No `Clone`, and `Debug`
/// prints `<redacted>`.
///
/// On the wire it is base64, which needs no JSON escapes, so the decoder
/// reads it in place from the (zeroized) frame buffer instead of copying it
/// to a scratch buffer that would be freed without being wiped.
pub struct SecretValue(SecretString);

impl SecretValue {
    pub fn new(value: SecretString) -> SecretValue {
        SecretValue(value)
    }

    pub fn into_inner(self) -> SecretString {
        self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `encode` allocates the exact length once: no copy is left behind.
        let text = Zeroizing::new(STANDARD.encode(self.0.expose_secret()));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SecretValue, D::Error> {
        d.deserialize_str(SecretVisitor)
    }
}

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = SecretValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value as base64 text")
    }

    // Only borrowed text: a string that needed unescaping went through a
    // scratch copy, and base64 never needs it.
    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<SecretValue, E> {
        let mut raw = Zeroizing::new(vec![0u8; base64::decoded_len_estimate(text.len())]);
        let len = STANDARD
            .decode_slice(text, &mut raw)
            .map_err(|_| E::custom("the value is not base64"))?;
        let text = std::str::from_utf8(&raw[..len])
            .map_err(|_| E::custom("the value is not UTF-8 text"))?;
        // Exactly `len` bytes, so turning it into a boxed str moves nothing.
        let mut owned = String::with_capacity(len);
        owned.push_str(text);
        Ok(SecretValue(SecretString::from(owned)))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretValue, E> {
        Err(E::custom("the value is not plain base64 text"))
    }
}

/// Redacted output bytes (not necessarily UTF-8), as base64 on the wire.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Bytes)
            .map_err(|_| de::Error::custom("output bytes are not base64"))
    }
}
