//! Cryptography: password hashing, secrets at rest, random tokens and keyed digests.
//! Every key lives in [`Keys`], loaded once at start; nothing here logs key material.

mod digest;
mod envelope;
mod keys;
mod password;
mod random;

pub use digest::Digester;
pub use envelope::{EnvelopeError, SecretBox};
pub use keys::{DevKeys, KeyError, KeyMaterial, KeySource, Keys, load_keys};
pub use password::{PasswordError, PasswordHasher, PasswordParams, Verification};
pub use random::{random_bytes, random_token};

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
