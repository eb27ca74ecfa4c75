//! Keyed digests (HMAC-SHA256) of anything a client presents and we must recognise later:
//! tokens, codes, reset links. Only the digest is stored, so a database leak yields nothing
//! usable, and without the key the digests cannot even be brute-forced offline.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Computes domain-separated HMAC-SHA256 digests under one key.
#[derive(Clone)]
pub struct Digester {
    key: [u8; 32],
}

impl std::fmt::Debug for Digester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digester(..)")
    }
}

impl Digester {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; 32 bytes never fails.
        match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        }
    }

    /// Raw digest of `parts`, each length-prefixed so that ("ab","c") ≠ ("a","bc").
    pub fn digest_parts(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac();
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// Hex digest of `value` for `purpose` (e.g. `"refresh_token"`): the purpose separates
    /// domains so a digest of one kind never matches another kind.
    pub fn digest(&self, purpose: &str, value: &[u8]) -> String {
        hex::encode(self.digest_parts(&[purpose.as_bytes(), value]))
    }

    /// Checks `value` against a stored hex digest in constant time.
    pub fn verify(&self, purpose: &str, value: &[u8], stored_hex: &str) -> bool {
        let fresh = self.digest(purpose, value);
        super::constant_time_eq(fresh.as_bytes(), stored_hex.as_bytes())
    }
}

#[cold]
fn unreachable_hmac() -> HmacSha256 {
    // new_from_slice only fails for fixed-size-key MACs; HMAC accepts any length.
    #[allow(clippy::panic)]
    {
        panic!("HMAC rejected a 32-byte key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_keyed_and_domain_separated() {
        let d = Digester::new([7; 32]);
        let other = Digester::new([8; 32]);
        let x = d.digest("code", b"123456");
        assert_eq!(x.len(), 64);
        assert!(d.verify("code", b"123456", &x));
        assert!(!d.verify("code", b"123457", &x));
        assert!(!d.verify("token", b"123456", &x));
        assert!(!other.verify("code", b"123456", &x));
        assert_ne!(d.digest_parts(&[b"ab", b"c"]), d.digest_parts(&[b"a", b"bc"]));
    }
}
