//! Short-lived shared state: browser sessions, one-time codes, rate-limit counters.
//!
//! One trait, two implementations: [`memory::MemoryStore`] (the embedded default, one process)
//! and [`redis::RedisStore`] (production, shared by every instance). Keys given to a store are
//! logical names such as `session:abc`; a store adds its own namespace (the Redis key prefix).
//! Values are opaque bytes: callers serialise, and store only digests of anything a client
//! presents.

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

/// Why a session-store call failed. Callers treat every variant as "store unavailable"
/// (fail closed); the variants exist for logs and `/readyz`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The in-process store holds its maximum number of live entries.
    #[error("session store is full")]
    Full,
    /// The backing service could not be reached or answered with an error.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// The operations later features need, each atomic on its own.
///
/// Contract shared by both implementations (checked by one behaviour suite that runs against
/// each): a TTL of zero is treated as one millisecond; an expired entry behaves exactly like a
/// missing one; no operation ever extends a TTL unless it writes the value again.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores `value` under `key` for `ttl`, replacing any previous value and TTL.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;

    /// Stores `value` only if `key` holds no live value. Returns `true` when this call stored it
    /// (used for single-use markers such as a `jti`): of concurrent callers exactly one wins.
    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError>;

    /// The live value under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes `key`. Returns `true` if a live value was deleted.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;

    /// Reads and deletes `key` in one atomic step (one-time codes): of concurrent callers
    /// exactly one receives the value, the others `None`.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Atomically adds one to the counter under `key` and returns the new count. A missing or
    /// expired counter starts at 1 with `ttl`; later increments keep the original expiry, so a
    /// rate-limit window is fixed from its first hit. Parallel increments never lose a count.
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;

    /// Takes back one [`increment`](Self::increment) of the live counter under `key` (a charge
    /// that turned out not to count), keeping its expiry. Never goes below zero; a missing or
    /// expired counter stays missing.
    async fn decrement(&self, key: &str) -> Result<(), StoreError>;

    /// Stores `value` under `key` (as [`put`](Self::put)) and records `key` as a member of
    /// `index` (for example, a user's sessions). The index lives at least as long as its
    /// longest-lived member.
    async fn put_indexed(
        &self,
        index: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// The members of `index` whose values are still live, in no particular order.
    async fn index_members(&self, index: &str) -> Result<Vec<String>, StoreError>;

    /// Deletes every member of `index` and the index itself ("sign out everywhere").
    /// Returns how many live members were deleted.
    async fn delete_index(&self, index: &str) -> Result<u64, StoreError>;

    /// Succeeds when the store can serve requests (`/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// How full the store is, when it has a limit: what it holds and what it may hold, in its
    /// own unit (entries in memory, bytes in Redis under `maxmemory`). `/readyz` reports a store
    /// near its limit before writes start failing.
    async fn usage(&self) -> Result<Option<Usage>, StoreError>;
}

/// A store's fill level against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub limit: u64,
}

impl Usage {
    /// At or above nine tenths of the limit: writes may soon fail.
    pub fn near_full(&self) -> bool {
        self.limit > 0 && self.used.saturating_mul(10) >= self.limit.saturating_mul(9)
    }
}
