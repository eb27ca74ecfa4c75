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
/// missing one; no operation ever extends a TTL unless it writes the value again (or, for
/// [`hold`](SessionStore::hold), says it renews it).
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

    /// Counts one more holder of `key` (something in progress, such as a password being
    /// checked) and returns how many hold it now, this one included. Every call renews the
    /// expiry to `ttl`, so a count stays while holders keep coming and a holder that never
    /// [`release`](Self::release)s (a crashed instance) is forgotten `ttl` after the last
    /// one. Atomic: of parallel callers each sees a different count.
    async fn hold(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;

    /// One holder of `key` fewer; the key is gone when none is left.
    async fn release(&self, key: &str) -> Result<(), StoreError>;

    /// Succeeds when the store can serve requests (`/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// One request against a rate limit kept under `key` by GCRA (the generic cell rate
    /// algorithm, [`gcra`]): `interval_us` apart at the sustained rate, up to `burst_us` ahead
    /// of `now_us`: counted when it passes, nothing counted when refused. `now_us` is the
    /// caller's clock, so every instance and the tests agree on it. Atomic: of parallel
    /// requests, no more pass than the limit allows.
    async fn throttle(
        &self,
        key: &str,
        now_us: i64,
        interval_us: i64,
        burst_us: i64,
    ) -> Result<Throttle, StoreError>;

    /// How full the store is, when it has a limit: what it holds and what it may hold, in its
    /// own unit (entries in memory, bytes in Redis under `maxmemory`). `/readyz` reports a store
    /// near its limit before writes start failing.
    async fn usage(&self) -> Result<Option<Usage>, StoreError>;
}

/// A [`SessionStore::throttle`] answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// Counted; the limit's theoretical arrival time now runs `ahead` of the caller's clock
    /// (at `burst` it is full until one interval has passed).
    Passed { ahead: Duration },
    /// Not counted: the request may be made again after `wait`.
    Refused { wait: Duration },
}

/// GCRA on plain values: the stored theoretical arrival time `tat` (none yet: `now`), and the
/// request at `now`. `Ok(new tat)` when it passes, `Err(microseconds to wait)` when not. A burst
/// of `burst / interval` requests passes at once; after that one per `interval`.
pub fn gcra(tat: Option<i64>, now: i64, interval: i64, burst: i64) -> Result<i64, i64> {
    let tat = tat.map_or(now, |t| t.max(now));
    let next = tat.saturating_add(interval);
    let ahead = next - now;
    if ahead > burst { Err(ahead - burst) } else { Ok(next) }
}

/// A store's fill level against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub limit: u64,
    /// The store belongs to this instance alone (memory), so when it is near full this
    /// instance should take no new visitors; a shared store (Redis) near full is every
    /// instance's condition, and draining them all would make it worse.
    pub per_instance: bool,
}

impl Usage {
    /// At or above nine tenths of the limit: writes may soon fail.
    pub fn near_full(&self) -> bool {
        self.limit > 0 && self.used.saturating_mul(10) >= self.limit.saturating_mul(9)
    }
}

#[cfg(test)]
mod tests {
    use super::gcra;

    #[test]
    fn gcra_passes_a_burst_then_one_per_interval() {
        // Five a minute: 12 s apart, the whole minute as burst.
        let (i, b) = (12_000_000, 60_000_000);
        let mut tat = None;
        for _ in 0..5 {
            tat = Some(gcra(tat, 0, i, b).unwrap());
        }
        assert_eq!(gcra(tat, 0, i, b), Err(12_000_000), "the sixth waits one interval");
        assert_eq!(gcra(tat, 11_999_999, i, b), Err(1));
        let t = gcra(tat, 12_000_000, i, b).unwrap();
        assert_eq!(gcra(Some(t), 12_000_000, i, b), Err(12_000_000), "one more, then wait again");
        // Long idle: the full burst again, never more.
        let mut tat = Some(t);
        for _ in 0..5 {
            tat = Some(gcra(tat, 10_000_000_000, i, b).unwrap());
        }
        assert!(gcra(tat, 10_000_000_000, i, b).is_err());
    }
}
