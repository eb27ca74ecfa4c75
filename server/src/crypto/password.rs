//! Password hashing: argon2id on a bounded slice of the blocking pool, so a burst of logins
//! queues here instead of starving token traffic; unknown users cost the same as known ones.
//!
//! Verification, the hot path of every login, reuses its argon2 working memory (19 MiB at the
//! default cost): one buffer per permit, kept for the life of the process. Allocating it afresh
//! for every hash on whichever blocking thread ran it left that much behind in each of glibc's
//! per-thread arenas, and resident memory climbed to about 1 GB under login load and stayed
//! there; with the buffers it stays at permits × 19 MiB over the baseline.

use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher as _, Version};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// argon2id cost parameters (OWASP: m=19456 KiB, t=2, p=1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed")]
    Hash,
}

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Wrong password, unknown user, or no password set: callers cannot tell which.
    Invalid,
    /// Right password; `needs_rehash` when the stored hash used other parameters than the
    /// current ones, so the caller should store a fresh hash.
    Valid { needs_rehash: bool },
}

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// argon2 working memory for the current parameters, one buffer per permit at most.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// A hash of a random password with the current parameters: verified against when the
    /// user is unknown so the response takes the same time.
    dummy: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.params).finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// `concurrency` bounds how many hashes run at once (at least 1).
    pub fn new(params: PasswordParams, concurrency: usize) -> Result<Self, PasswordError> {
        let params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        let dummy_password = super::random_token(24);
        let dummy = hasher(&params)
            .hash_password(dummy_password.as_bytes())
            .map_err(|_| PasswordError::Hash)?
            .to_string();
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            memory: Arc::default(),
            dummy: dummy.into(),
        })
    }

    /// A PHC-format argon2id hash of `password` with a fresh random salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        let params = self.params.clone();
        self.run(move || {
            hasher(&params)
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|_| PasswordError::Hash)
        })
        .await
    }

    /// Checks `password` against `stored`. With no stored hash (unknown user, or an account
    /// that has never set a password) it verifies against a dummy hash and answers `Invalid`,
    /// spending the same time as a real check.
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: SecretString,
    ) -> Result<Verification, PasswordError> {
        let params = self.params.clone();
        let dummy = self.dummy.clone();
        let pool = self.memory.clone();
        self.run(move || {
            let (hash, real) = match &stored {
                Some(h) => (h.as_str(), true),
                None => (&*dummy, false),
            };
            let pwd = password.expose_secret().as_bytes();
            let Ok(parsed) = PasswordHash::new(hash) else {
                // An unparseable stored hash still costs one verification.
                let _ = PasswordHash::new(&dummy).map(|d| matches_hash(pwd, &d, &params, &pool));
                return Ok(Verification::Invalid);
            };
            let ok = matches_hash(pwd, &parsed, &params, &pool);
            if !(ok && real) {
                return Ok(Verification::Invalid);
            }
            Ok(Verification::Valid { needs_rehash: needs_rehash(&parsed, &params) })
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        // The permit moves into the blocking task: if the caller goes away (a client hangs up),
        // the hash still counts against the bound until it really ends.
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| PasswordError::Hash)?;
        tokio::task::spawn_blocking(move || {
            let result = f();
            drop(permit);
            result
        })
        .await
        .map_err(|_| PasswordError::Hash)?
    }
}

/// Whether `pwd` hashes to `stored` (its algorithm, version, cost and salt), computed in a
/// pooled buffer when the cost is `current` and compared in constant time.
fn matches_hash(pwd: &[u8], stored: &PasswordHash, current: &Params, pool: &Mutex<Vec<Vec<Block>>>) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else { return false };
    let Ok(version) = Version::try_from(stored.version.unwrap_or(0x13)) else { return false };
    let Ok(params) = Params::try_from(stored) else { return false };
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else { return false };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let same_cost = params.block_count() == current.block_count();
    let mut memory = if same_cost { pool.lock().unwrap_or_else(|p| p.into_inner()).pop() } else { None }
        .unwrap_or_else(|| vec![Block::default(); params.block_count()]);
    let computed = argon2.hash_password_into_with_memory(pwd, salt.as_ref(), out, &mut memory[..]).is_ok();
    if same_cost {
        // Back for the next verification; never more buffers than hashes run at once.
        pool.lock().unwrap_or_else(|p| p.into_inner()).push(memory);
    }
    computed && bool::from(out.ct_eq(expected.as_ref()))
}

fn hasher(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn needs_rehash(hash: &PasswordHash, current: &Params) -> bool {
    if hash.algorithm.as_str() != "argon2id" {
        return true;
    }
    match Params::try_from(hash) {
        Ok(p) => {
            p.m_cost() != current.m_cost() || p.t_cost() != current.t_cost() || p.p_cost() != current.p_cost()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordParams {
        PasswordParams { memory_kib: 64, iterations: 1, parallelism: 1 }
    }

    fn pw(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[tokio::test]
    async fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let h = PasswordHasher::new(cheap(), 2).unwrap();
        let hash = h.hash(pw("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            h.verify(Some(hash.clone()), pw("correct horse")).await.unwrap(),
            Verification::Valid { needs_rehash: false }
        );
        assert_eq!(h.verify(Some(hash), pw("wrong")).await.unwrap(), Verification::Invalid);
    }

    #[tokio::test]
    async fn unknown_users_and_garbage_hashes_are_invalid() {
        let h = PasswordHasher::new(cheap(), 1).unwrap();
        assert_eq!(h.verify(None, pw("anything")).await.unwrap(), Verification::Invalid);
        assert_eq!(h.verify(Some("not a hash".into()), pw("x")).await.unwrap(), Verification::Invalid);
    }

    #[tokio::test]
    async fn a_hash_with_old_parameters_asks_for_a_rehash() {
        let old = PasswordHasher::new(cheap(), 1).unwrap();
        let hash = old.hash(pw("pw")).await.unwrap();
        let new = PasswordHasher::new(PasswordParams { memory_kib: 128, ..cheap() }, 1).unwrap();
        assert_eq!(
            new.verify(Some(hash), pw("pw")).await.unwrap(),
            Verification::Valid { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn verification_reuses_one_buffer_per_permit_and_agrees_with_the_argon2_crate() {
        let h = PasswordHasher::new(cheap(), 2).unwrap();
        let hash = h.hash(pw("correct horse")).await.unwrap();
        // The crate's own verifier agrees with ours on the hash we made.
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            argon2::PasswordVerifier::verify_password(&hasher(&h.params), b"correct horse", &parsed).is_ok()
        );
        for _ in 0..20 {
            assert!(matches!(
                h.verify(Some(hash.clone()), pw("correct horse")).await.unwrap(),
                Verification::Valid { .. }
            ));
            assert_eq!(
                h.verify(Some(hash.clone()), pw("correct hors")).await.unwrap(),
                Verification::Invalid
            );
            assert_eq!(h.verify(None, pw("correct horse")).await.unwrap(), Verification::Invalid);
        }
        let pooled = h.memory.lock().unwrap().len();
        assert!((1..=2).contains(&pooled), "{pooled} buffers for 2 permits");
        // A hash of another cost is checked in a buffer of its own, which is not kept.
        let other = PasswordHasher::new(PasswordParams { memory_kib: 128, ..cheap() }, 1).unwrap();
        let old = other.hash(pw("pw")).await.unwrap();
        assert!(matches!(
            h.verify(Some(old), pw("pw")).await.unwrap(),
            Verification::Valid { needs_rehash: true }
        ));
        assert!(h.memory.lock().unwrap().iter().all(|b| b.len() == h.params.block_count()));
    }

    #[test]
    fn the_defaults_are_owasp_argon2id() {
        assert_eq!(
            PasswordParams::default(),
            PasswordParams { memory_kib: 19_456, iterations: 2, parallelism: 1 }
        );
    }
}
