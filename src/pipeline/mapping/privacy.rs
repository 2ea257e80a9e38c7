//! Protecting customer data in events: keyed hashing (HMAC-SHA256, so a
//! hash cannot be reversed by hashing a dictionary of likely values without
//! the key) and masking.

use sha2::{Digest, Sha256};

const BLOCK: usize = 64;
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// A secret hashing key, prepared once: SHA-256 states that have already
/// absorbed the HMAC inner and outer pads, so each hash costs only the
/// message's blocks and one more.
#[derive(Clone)]
pub(super) struct HashKey {
    inner: Sha256,
    outer: Sha256,
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(<secret>)")
    }
}

impl HashKey {
    pub(super) fn new(secret: &[u8]) -> Self {
        // RFC 2104: keys longer than a block are hashed first.
        let mut key = [0u8; BLOCK];
        if secret.len() > BLOCK {
            key[..32].copy_from_slice(&Sha256::digest(secret));
        } else {
            key[..secret.len()].copy_from_slice(secret);
        }
        Self {
            inner: Sha256::new().chain_update(key.map(|b| b ^ 0x36)),
            outer: Sha256::new().chain_update(key.map(|b| b ^ 0x5c)),
        }
    }

    /// HMAC-SHA256 of `message`, as 64 lower-case hex digits.
    pub(super) fn hash_hex(&self, message: &[u8]) -> String {
        let inner = self.inner.clone().chain_update(message).finalize();
        let outer = self.outer.clone().chain_update(inner).finalize();
        let mut hex = String::with_capacity(64);
        for byte in outer {
            hex.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(HEX_DIGITS[usize::from(byte & 0xf)]));
        }
        hex
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
