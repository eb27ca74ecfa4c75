//! CSPRNG output for tokens, codes, salts and keys.

use base64::Engine;
use rand::RngCore;

/// `n` bytes from the operating system's CSPRNG (through `rand`'s thread-local ChaCha,
/// reseeded from the OS).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// A URL-safe token carrying `bytes` bytes of entropy (32 bytes = 256 bits for secrets).
pub fn random_token(bytes: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_and_distinct() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
