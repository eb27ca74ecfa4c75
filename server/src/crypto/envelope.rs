//! Secrets at rest (TOTP secrets, signing keys): AES-256-GCM under the key-encryption key,
//! one random 96-bit nonce per record stored beside the ciphertext, and the record's identity
//! as associated data so a ciphertext cannot be moved to another row.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};

type Nonce = aes_gcm::aead::Nonce<Aes256Gcm>;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

const VERSION: &str = "v1";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("sealed value is malformed")]
    Malformed,
    /// Sealed under another key (named by its id): a rotation is incomplete.
    #[error("sealed value belongs to key {0}")]
    OtherKey(String),
    /// Wrong key, wrong associated data, or tampered ciphertext.
    #[error("sealed value does not open with this key")]
    Unauthentic,
}

/// Seals and opens secrets under the key-encryption key. Sealed values name the key id, so a
/// rotation can tell which key opens which value.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    key_id: String,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// `key_id` is a short public name of the key (no dots).
    pub fn new(key: &[u8; 32], key_id: &str) -> Self {
        let cipher = match Aes256Gcm::new_from_slice(key) {
            Ok(c) => c,
            // A 32-byte slice is exactly an AES-256 key.
            Err(_) => unreachable_key(),
        };
        Self { cipher, key_id: key_id.replace('.', "") }
    }

    /// Encrypts `plaintext`, bound to `aad` (e.g. `"totp:<user id>"`), as
    /// `v1.<key id>.<nonce>.<ciphertext+tag>`, the last two in base64url.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let nonce_bytes = super::random_bytes(12);
        let Ok(nonce) = Nonce::try_from(&nonce_bytes[..]) else { unreachable_key() };
        let sealed = match self.cipher.encrypt(&nonce, Payload { msg: plaintext, aad }) {
            Ok(ct) => ct,
            // Only fails for messages beyond GCM's 64 GiB limit.
            Err(_) => unreachable_key(),
        };
        format!("{VERSION}.{}.{}.{}", self.key_id, B64.encode(&nonce_bytes), B64.encode(sealed))
    }

    /// Decrypts a value made by [`seal`](Self::seal) with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let mut parts = sealed.split('.');
        let (Some(VERSION), Some(kid), Some(n), Some(c), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(EnvelopeError::Malformed);
        };
        if kid != self.key_id {
            return Err(EnvelopeError::OtherKey(kid.to_owned()));
        }
        let nonce_bytes = B64.decode(n).map_err(|_| EnvelopeError::Malformed)?;
        let nonce = Nonce::try_from(&nonce_bytes[..]).map_err(|_| EnvelopeError::Malformed)?;
        let ct = B64.decode(c).map_err(|_| EnvelopeError::Malformed)?;
        self.cipher.decrypt(&nonce, Payload { msg: &ct, aad }).map_err(|_| EnvelopeError::Unauthentic)
    }
}

#[cold]
fn unreachable_key() -> ! {
    #[allow(clippy::panic)]
    {
        panic!("AES-256-GCM rejected a 32-byte key or a small message")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_context() {
        let b = SecretBox::new(&[1; 32], "k1");
        let sealed = b.seal(b"JBSWY3DPEHPK3PXP", b"totp:u1");
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(b.open(&sealed, b"totp:u1").unwrap(), b"JBSWY3DPEHPK3PXP");
        assert_eq!(b.open(&sealed, b"totp:u2"), Err(EnvelopeError::Unauthentic));
        assert_eq!(SecretBox::new(&[2; 32], "k1").open(&sealed, b"totp:u1"), Err(EnvelopeError::Unauthentic));
        assert_eq!(
            SecretBox::new(&[1; 32], "k2").open(&sealed, b"totp:u1"),
            Err(EnvelopeError::OtherKey("k1".into()))
        );
        assert!(sealed.starts_with("v1.k1."));
        assert_ne!(b.seal(b"x", b""), b.seal(b"x", b""), "nonces must differ");
    }

    #[test]
    fn tampered_or_malformed_values_are_rejected() {
        let b = SecretBox::new(&[1; 32], "k1");
        let sealed = b.seal(b"secret", b"");
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(b.open(&flipped, b""), Err(EnvelopeError::Unauthentic));
        for bad in ["", "v1", "v2.k1.a.b", "v1.k1.!!.b", "v1.k1.AAAA.b", "v1.k1.a.b.c", "v1.a.b"] {
            assert!(b.open(bad, b"").is_err(), "{bad}");
        }
    }
}
