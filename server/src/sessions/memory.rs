//! The embedded session store: one process, entries in a mutex-guarded map with a hard cap.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{SessionStore, StoreError};

/// Expired entries are dropped by a sweep that runs at most this often (and whenever the map is
/// full), so a burst of writes does not pay for a full scan each time.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// TTLs are capped so that adding one to `Instant::now()` cannot overflow; nothing short-lived
/// needs more than a century.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// An in-process [`SessionStore`]. Cloning shares the same map.
///
/// At most `max_entries` entries are held. When the map is full of live entries, a write of a new
/// key fails with [`StoreError::Full`] rather than evicting anything: evicting a rate-limit
/// counter would silently reset the limit, and evicting a single-use marker would allow a replay.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    /// An empty store that holds at most `max_entries` entries (index bookkeeping not counted).
    pub fn new(max_entries: usize) -> Self {
        Self { inner: Arc::new(Mutex::new(Inner::new(max_entries, Instant::now()))) }
    }

    /// Every operation below leaves the map consistent before it can panic, so a poisoned lock
    /// still guards valid data.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for MemoryStore {
    // Never prints keys or values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("max_entries", &inner.max_entries)
            .field("entries", &inner.entries.len())
            .field("indexes", &inner.indexes.len())
            .finish()
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.lock().put(key, value, ttl, Instant::now())
    }

    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.lock().put_if_absent(key, value, ttl, Instant::now())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(key, Instant::now()))
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.lock().delete(key, Instant::now()))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().take(key, Instant::now()))
    }

    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.lock().increment(key, ttl, Instant::now())
    }

    async fn decrement(&self, key: &str) -> Result<(), StoreError> {
        self.lock().decrement(key, Instant::now())
    }

    async fn hold(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.lock().hold(key, ttl, Instant::now())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.lock().release(key, Instant::now());
        Ok(())
    }

    async fn put_indexed(
        &self,
        index: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.lock().put_indexed(index, key, value, ttl, Instant::now())
    }

    async fn index_members(&self, index: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.lock().index_members(index, Instant::now()))
    }

    async fn delete_index(&self, index: &str) -> Result<u64, StoreError> {
        Ok(self.lock().delete_index(index, Instant::now()))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn throttle(
        &self,
        key: &str,
        now_us: i64,
        interval_us: i64,
        burst_us: i64,
    ) -> Result<super::Throttle, StoreError> {
        self.lock().throttle(key, now_us, interval_us, burst_us, Instant::now())
    }

    async fn usage(&self) -> Result<Option<super::Usage>, StoreError> {
        let mut inner = self.lock();
        // Expired entries do not count against the limit (a write would sweep them); the
        // sweep runs at most once a second, so a probe never scans the map each time.
        inner.sweep_if_due(Instant::now());
        Ok(Some(super::Usage {
            used: u64::try_from(inner.entries.len()).unwrap_or(u64::MAX),
            limit: u64::try_from(inner.max_entries).unwrap_or(u64::MAX),
            per_instance: true,
        }))
    }
}

struct Entry {
    value: Vec<u8>,
    expires_at: Instant,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at > now
    }
}

/// The map and its bookkeeping. Every method takes `now` so the unit tests can move time.
struct Inner {
    max_entries: usize,
    entries: HashMap<String, Entry>,
    /// Index name -> member keys. Members are not removed when their entry goes; reads filter
    /// them out and a sweep prunes them.
    indexes: HashMap<String, HashSet<String>>,
    last_sweep: Instant,
}

/// The count a counter entry holds.
fn counter(value: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| StoreError::Unavailable("the value under this key is not a counter".to_owned()))
}

fn expiry(now: Instant, ttl: Duration) -> Instant {
    // The trait contract: a TTL of zero is one millisecond.
    let ttl = ttl.clamp(Duration::from_millis(1), MAX_TTL);
    now.checked_add(ttl).unwrap_or(now)
}

impl Inner {
    fn new(max_entries: usize, now: Instant) -> Self {
        Self { max_entries, entries: HashMap::new(), indexes: HashMap::new(), last_sweep: now }
    }

    fn sweep(&mut self, now: Instant) {
        self.entries.retain(|_, entry| entry.is_live(now));
        let entries = &self.entries;
        self.indexes.retain(|_, members| {
            members.retain(|member| entries.contains_key(member));
            !members.is_empty()
        });
        self.last_sweep = now;
    }

    /// Called on every write, so an idle store keeps its garbage until the next write; reads
    /// filter expired entries anyway.
    fn sweep_if_due(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) >= SWEEP_INTERVAL {
            self.sweep(now);
        }
    }

    /// Makes sure `key` can be inserted: replacing an existing key never needs room; a new key
    /// at capacity first sweeps, then fails instead of evicting.
    fn make_room_for(&mut self, key: &str, now: Instant) -> Result<(), StoreError> {
        if self.entries.contains_key(key) || self.entries.len() < self.max_entries {
            return Ok(());
        }
        self.sweep(now);
        if self.entries.len() < self.max_entries { Ok(()) } else { Err(StoreError::Full) }
    }

    fn live(&self, key: &str, now: Instant) -> Option<&Entry> {
        self.entries.get(key).filter(|entry| entry.is_live(now))
    }

    fn put(&mut self, key: &str, value: &[u8], ttl: Duration, now: Instant) -> Result<(), StoreError> {
        self.sweep_if_due(now);
        self.make_room_for(key, now)?;
        self.entries.insert(key.to_owned(), Entry { value: value.to_vec(), expires_at: expiry(now, ttl) });
        Ok(())
    }

    fn put_if_absent(
        &mut self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: Instant,
    ) -> Result<bool, StoreError> {
        if self.live(key, now).is_some() {
            return Ok(false);
        }
        self.put(key, value, ttl, now)?;
        Ok(true)
    }

    fn get(&self, key: &str, now: Instant) -> Option<Vec<u8>> {
        self.live(key, now).map(|entry| entry.value.clone())
    }

    /// The theoretical arrival time is kept as 8 little-endian bytes, until it has passed.
    fn throttle(
        &mut self,
        key: &str,
        now_us: i64,
        interval_us: i64,
        burst_us: i64,
        now: Instant,
    ) -> Result<super::Throttle, StoreError> {
        let tat = self
            .live(key, now)
            .and_then(|e| <[u8; 8]>::try_from(e.value.as_slice()).ok())
            .map(i64::from_le_bytes);
        match super::gcra(tat, now_us, interval_us, burst_us) {
            Ok(next) => {
                let ahead = Duration::from_micros(u64::try_from(next - now_us).unwrap_or(0));
                self.put(key, &next.to_le_bytes(), ahead, now)?;
                Ok(super::Throttle::Passed { ahead })
            }
            Err(wait) => {
                Ok(super::Throttle::Refused { wait: Duration::from_micros(u64::try_from(wait).unwrap_or(0)) })
            }
        }
    }

    fn delete(&mut self, key: &str, now: Instant) -> bool {
        self.entries.remove(key).is_some_and(|entry| entry.is_live(now))
    }

    fn take(&mut self, key: &str, now: Instant) -> Option<Vec<u8>> {
        self.entries.remove(key).filter(|entry| entry.is_live(now)).map(|entry| entry.value)
    }

    /// Counters are stored as decimal ASCII, as Redis stores them, so both stores agree on what
    /// `get` returns for a counter and both reject incrementing a non-counter.
    fn decrement(&mut self, key: &str, now: Instant) -> Result<(), StoreError> {
        if let Some(entry) = self.entries.get_mut(key).filter(|entry| entry.is_live(now)) {
            let count =
                std::str::from_utf8(&entry.value).ok().and_then(|text| text.parse::<u64>().ok()).ok_or_else(
                    || StoreError::Unavailable("the value under this key is not a counter".to_owned()),
                )?;
            entry.value = count.saturating_sub(1).to_string().into_bytes();
        }
        Ok(())
    }

    fn hold(&mut self, key: &str, ttl: Duration, now: Instant) -> Result<u64, StoreError> {
        self.sweep_if_due(now);
        if let Some(entry) = self.entries.get_mut(key).filter(|entry| entry.is_live(now)) {
            let count = counter(&entry.value)?.saturating_add(1);
            entry.value = count.to_string().into_bytes();
            entry.expires_at = expiry(now, ttl);
            return Ok(count);
        }
        self.make_room_for(key, now)?;
        self.entries.insert(key.to_owned(), Entry { value: b"1".to_vec(), expires_at: expiry(now, ttl) });
        Ok(1)
    }

    fn release(&mut self, key: &str, now: Instant) {
        let Some(entry) = self.entries.get_mut(key).filter(|entry| entry.is_live(now)) else { return };
        match counter(&entry.value) {
            Ok(count) if count > 1 => entry.value = (count - 1).to_string().into_bytes(),
            _ => {
                self.entries.remove(key);
            }
        }
    }

    fn increment(&mut self, key: &str, ttl: Duration, now: Instant) -> Result<u64, StoreError> {
        self.sweep_if_due(now);
        if let Some(entry) = self.entries.get_mut(key).filter(|entry| entry.is_live(now)) {
            let count = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .and_then(|count| count.checked_add(1))
                .ok_or_else(|| {
                    StoreError::Unavailable("the value under this key is not a counter".to_owned())
                })?;
            // The expiry stays as the first hit set it: a fixed window.
            entry.value = count.to_string().into_bytes();
            return Ok(count);
        }
        self.make_room_for(key, now)?;
        self.entries.insert(key.to_owned(), Entry { value: b"1".to_vec(), expires_at: expiry(now, ttl) });
        Ok(1)
    }

    fn put_indexed(
        &mut self,
        index: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: Instant,
    ) -> Result<(), StoreError> {
        self.put(key, value, ttl, now)?;
        self.indexes.entry(index.to_owned()).or_default().insert(key.to_owned());
        Ok(())
    }

    fn index_members(&self, index: &str, now: Instant) -> Vec<String> {
        self.indexes
            .get(index)
            .map(|members| {
                members.iter().filter(|member| self.live(member, now).is_some()).cloned().collect()
            })
            .unwrap_or_default()
    }

    fn delete_index(&mut self, index: &str, now: Instant) -> u64 {
        let Some(members) = self.indexes.remove(index) else {
            return 0;
        };
        let mut deleted = 0;
        for member in &members {
            if self.delete(member, now) {
                deleted += 1;
            }
        }
        deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn inner(max_entries: usize) -> (Inner, Instant) {
        let t0 = Instant::now();
        (Inner::new(max_entries, t0), t0)
    }

    #[test]
    fn a_full_store_rejects_a_new_key_instead_of_evicting() {
        let (mut store, t0) = inner(2);
        store.put("a", b"1", MINUTE, t0).unwrap();
        store.increment("limit", MINUTE, t0).unwrap();

        assert!(matches!(store.put("b", b"2", MINUTE, t0), Err(StoreError::Full)));
        assert!(matches!(store.put_if_absent("b", b"2", MINUTE, t0), Err(StoreError::Full)));
        assert!(matches!(store.increment("other", MINUTE, t0), Err(StoreError::Full)));
        assert!(matches!(store.put_indexed("idx", "b", b"2", MINUTE, t0), Err(StoreError::Full)));
        // Nothing was evicted, and a rejected indexed write leaves no index behind.
        assert_eq!(store.get("a", t0), Some(b"1".to_vec()));
        assert_eq!(store.increment("limit", MINUTE, t0).unwrap(), 2);
        assert!(store.indexes.is_empty());
    }

    #[test]
    fn a_full_store_still_replaces_and_increments_existing_keys() {
        let (mut store, t0) = inner(2);
        store.put("a", b"1", MINUTE, t0).unwrap();
        store.increment("limit", MINUTE, t0).unwrap();

        store.put("a", b"2", MINUTE, t0).unwrap();
        assert_eq!(store.get("a", t0), Some(b"2".to_vec()));
        assert_eq!(store.increment("limit", MINUTE, t0).unwrap(), 2);
        assert!(!store.put_if_absent("a", b"3", MINUTE, t0).unwrap());
    }

    #[test]
    fn a_full_store_sweeps_expired_entries_before_rejecting() {
        let (mut store, t0) = inner(2);
        store.put("short", b"1", ms(100), t0).unwrap();
        store.put("long", b"2", MINUTE, t0).unwrap();

        // Well within the sweep interval, but at capacity: the sweep runs anyway.
        let t1 = t0 + ms(200);
        store.put("new", b"3", MINUTE, t1).unwrap();
        assert_eq!(store.entries.len(), 2);
        assert_eq!(store.get("short", t1), None);
        assert_eq!(store.get("new", t1), Some(b"3".to_vec()));
        // Full of live entries now.
        assert!(matches!(store.put("more", b"4", MINUTE, t1), Err(StoreError::Full)));
        // Deleting makes room.
        assert!(store.delete("long", t1));
        store.put("more", b"4", MINUTE, t1).unwrap();
    }

    #[test]
    fn writes_sweep_expired_entries_at_most_once_per_second() {
        let (mut store, t0) = inner(100);
        for i in 0..10 {
            store.put(&format!("k{i}"), b"v", ms(100), t0).unwrap();
        }

        // Expired, but the last sweep was less than a second ago: they stay in the map yet
        // behave as missing.
        let t1 = t0 + ms(500);
        store.put("live", b"v", MINUTE, t1).unwrap();
        assert_eq!(store.entries.len(), 11);
        assert_eq!(store.get("k0", t1), None);
        assert!(!store.put_if_absent("live", b"w", MINUTE, t1).unwrap());

        // A read never sweeps.
        let t2 = t0 + ms(1_500);
        assert_eq!(store.get("k2", t2), None);
        assert_eq!(store.index_members("none", t2), Vec::<String>::new());
        assert_eq!(store.entries.len(), 11);

        // The first write a second after the last sweep does.
        store.put("live2", b"v", MINUTE, t2).unwrap();
        assert_eq!(store.entries.len(), 2);
        assert_eq!(store.last_sweep, t2);
    }

    #[test]
    fn a_sweep_prunes_dead_index_members_and_drops_empty_indexes() {
        let (mut store, t0) = inner(100);
        store.put_indexed("user:1", "s1", b"v", ms(100), t0).unwrap();
        store.put_indexed("user:1", "s2", b"v", MINUTE, t0).unwrap();
        store.put_indexed("user:2", "s3", b"v", ms(100), t0).unwrap();
        store.put_indexed("user:3", "s4", b"v", MINUTE, t0).unwrap();
        assert!(store.delete("s4", t0));

        let t1 = t0 + ms(200);
        assert_eq!(store.index_members("user:1", t1), vec!["s2".to_owned()]);
        assert!(store.index_members("user:2", t1).is_empty());

        store.put("unrelated", b"v", MINUTE, t0 + SWEEP_INTERVAL).unwrap();
        assert_eq!(store.indexes.len(), 1);
        assert_eq!(store.indexes.get("user:1").map(HashSet::len), Some(1));
    }

    #[test]
    fn delete_index_counts_only_live_members() {
        let (mut store, t0) = inner(100);
        store.put_indexed("user:1", "s1", b"v", ms(100), t0).unwrap();
        store.put_indexed("user:1", "s2", b"v", MINUTE, t0).unwrap();
        store.put_indexed("user:1", "s3", b"v", MINUTE, t0).unwrap();

        let t1 = t0 + ms(200);
        assert_eq!(store.delete_index("user:1", t1), 2);
        assert_eq!(store.get("s2", t1), None);
        assert!(store.index_members("user:1", t1).is_empty());
        assert_eq!(store.delete_index("user:1", t1), 0);
    }

    #[test]
    fn a_zero_ttl_lasts_one_millisecond() {
        let (mut store, t0) = inner(10);
        store.put("k", b"v", Duration::ZERO, t0).unwrap();
        assert_eq!(store.get("k", t0), Some(b"v".to_vec()));
        assert_eq!(store.get("k", t0 + ms(1)), None);
    }

    #[test]
    fn a_counter_keeps_the_expiry_of_its_first_hit() {
        let (mut store, t0) = inner(10);
        assert_eq!(store.increment("c", ms(100), t0).unwrap(), 1);
        assert_eq!(store.increment("c", MINUTE, t0 + ms(90)).unwrap(), 2);
        assert_eq!(store.increment("c", ms(100), t0 + ms(100)).unwrap(), 1);
    }

    #[test]
    fn incrementing_a_value_that_is_not_a_counter_fails() {
        let (mut store, t0) = inner(10);
        store.put("k", b"not a number", MINUTE, t0).unwrap();
        assert!(matches!(store.increment("k", MINUTE, t0), Err(StoreError::Unavailable(_))));
        assert_eq!(store.get("k", t0), Some(b"not a number".to_vec()));
    }

    #[tokio::test]
    async fn clones_share_one_map() {
        let store = MemoryStore::new(10);
        let clone = store.clone();
        store.put("session:k", b"secret-value", MINUTE).await.unwrap();
        let debug = format!("{store:?}");
        assert!(!debug.contains("secret") && !debug.contains("session:k"), "{debug}");
        assert_eq!(clone.take("session:k").await.unwrap(), Some(b"secret-value".to_vec()));
        assert_eq!(store.get("session:k").await.unwrap(), None);
    }
}
