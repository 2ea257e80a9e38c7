//! Protecting customer data in events and dead letters: keyed hashing
//! (HMAC-SHA256, so a hash cannot be reversed by hashing a dictionary of
//! likely values without the key) and masking.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::path::FieldPath;

/// A secret hashing key, prepared once: the keyed HMAC state has already
/// absorbed the inner and outer pads, so each hash clones it and costs only
/// the message's blocks and one more.
#[derive(Clone)]
pub(super) struct HashKey(Hmac<Sha256>);

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(<secret>)")
    }
}

impl HashKey {
    pub(super) fn new(secret: &[u8]) -> Self {
        // HMAC takes keys of any length (RFC 2104 hashes long ones first).
        Self(Hmac::new_from_slice(secret).expect("HMAC accepts keys of any length"))
    }

    /// HMAC-SHA256 of `message`, as 64 lower-case hex digits.
    pub(super) fn hash_hex(&self, message: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(message);
        // Into a buffer, not `hex::encode`, which builds the string a
        // character at a time: as costly as the MAC with the CPU's SHA
        // extensions.
        let mut text = [0u8; 64];
        hex::encode_to_slice(mac.finalize().into_bytes(), &mut text)
            .expect("64 hex digits for 32 bytes");
        std::str::from_utf8(&text)
            .expect("hex digits are ASCII")
            .to_owned()
    }
}

/// Fields replaced by their keyed hash wherever a record leaves the record
/// path in clear: `dead_letter.protect`. The hash is the one a `hash` step
/// writes with the same key, so a protected dead letter still matches the
/// events of the same customer.
#[derive(Debug, Clone)]
pub(crate) struct Protection {
    key: HashKey,
    paths: Vec<(String, FieldPath)>,
}

impl Protection {
    /// Protects `paths` (dotted field paths) with `secret`.
    pub(crate) fn new(secret: &[u8], paths: &[String]) -> Result<Self, String> {
        let paths = paths
            .iter()
            .map(|p| Ok((p.clone(), FieldPath::parse(p)?)))
            .collect::<Result<_, String>>()?;
        Ok(Self {
            key: HashKey::new(secret),
            paths,
        })
    }

    /// Replaces each protected field `object` has; returns their paths.
    pub(crate) fn apply(&self, object: &mut Map<String, Value>) -> Vec<&str> {
        let mut protected = Vec::new();
        for (name, path) in &self.paths {
            if path.get_present(object).is_some()
                && path
                    .replace_text(object, |text| self.key.hash_hex(text.as_bytes()))
                    .is_ok()
            {
                protected.push(name.as_str());
            }
        }
        protected
    }
}

/// `text` with every character but the last `keep_last` replaced by `*`.
pub(super) fn mask(text: &str, keep_last: usize) -> String {
    let count = text.chars().count();
    let hidden = count.saturating_sub(keep_last);
    text.chars()
        .enumerate()
        .map(|(i, c)| if i < hidden { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1 and 6 (a key longer than a block).
        let key = HashKey::new(&[0x0b; 20]);
        assert_eq!(
            key.hash_hex(b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let long = HashKey::new(&[0xaa; 131]);
        assert_eq!(
            long.hash_hex(b"Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn different_keys_give_different_hashes() {
        let a = HashKey::new(b"one").hash_hex(b"user@example.com");
        let b = HashKey::new(b"two").hash_hex(b"user@example.com");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn masks_keep_the_last_characters() {
        assert_eq!(mask("4111111111111111", 4), "************1111");
        assert_eq!(mask("abc", 4), "abc");
        assert_eq!(mask("ünï", 1), "**ï");
        assert_eq!(mask("secret", 0), "******");
    }
}
