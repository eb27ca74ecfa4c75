//! Cryptography: password hashing, secrets at rest, random tokens, keyed digests and token
//! signatures.
//! The root keys live in [`Keys`], loaded once at start; token signing keys are generated
//! here and kept by the key ring (`oidc::keyring`). Nothing here logs key material.

mod digest;
mod envelope;
mod keys;
mod password;
mod random;
pub mod signing;

pub use digest::Digester;
pub use envelope::{EnvelopeError, SecretBox};
pub use keys::{DevKeys, KeyError, KeyMaterial, KeySource, Keys, load_keys};
pub use password::{PasswordError, PasswordHasher, PasswordParams, Verification};
pub use random::{random_bytes, random_token};
pub use signing::{PublicJwk, SigningAlg, SigningKey, VerifyError, VerifyingKey, verify_jwt};

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
