//! The session store the tests run against: memory by default, Redis (under a fresh key prefix
//! that is deleted afterwards) when `PRAMAAN_TEST_REDIS_URL` is set.

use std::sync::Arc;
use std::time::Duration;

use pramaan_server::sessions::SessionStore;
use pramaan_server::sessions::memory::MemoryStore;
use pramaan_server::sessions::redis::RedisStore;

/// Set to a Redis URL (e.g. `redis://127.0.0.1:6379`) to run the suites against Redis.
pub const REDIS_URL_VAR: &str = "PRAMAAN_TEST_REDIS_URL";

/// Plenty for any one test; the capacity rules have their own unit tests.
const MEMORY_MAX_ENTRIES: usize = 100_000;

/// A store for one test. Dropping it removes everything it wrote to Redis.
pub struct TestSessionStore {
    pub store: Arc<dyn SessionStore>,
    /// `"memory"` or `"redis"`.
    pub backend: &'static str,
    /// The Redis URL and key prefix to clean up, if the store is Redis.
    redis_cleanup: Option<(String, String)>,
}

impl std::fmt::Debug for TestSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSessionStore")
            .field("backend", &self.backend)
            .field("prefix", &self.redis_cleanup.as_ref().map(|(_, prefix)| prefix))
            .finish_non_exhaustive()
    }
}

fn redis_url() -> Option<String> {
    std::env::var(REDIS_URL_VAR).ok().filter(|url| !url.trim().is_empty())
}

/// The backend [`session_store_under_test`] returns in this run.
pub fn backend_name() -> &'static str {
    if redis_url().is_some() { "redis" } else { "memory" }
}

/// A fresh, empty store: its own `MemoryStore`, or a `RedisStore` with a unique key prefix.
pub async fn session_store_under_test() -> TestSessionStore {
    match redis_url() {
        None => TestSessionStore {
            store: Arc::new(MemoryStore::new(MEMORY_MAX_ENTRIES)),
            backend: "memory",
            redis_cleanup: None,
        },
        Some(url) => {
            let prefix = format!("pramaan-test:{}:", uuid::Uuid::new_v4());
            let store = RedisStore::connect(&url, &prefix, Duration::from_secs(5))
                .await
                .expect("PRAMAAN_TEST_REDIS_URL is set but Redis cannot be used");
            TestSessionStore { store: Arc::new(store), backend: "redis", redis_cleanup: Some((url, prefix)) }
        }
    }
}

impl TestSessionStore {
    /// How many live entries this test's store holds (the Redis keys under its prefix).
    pub async fn entry_count(&self) -> u64 {
        match &self.redis_cleanup {
            None => self.store.usage().await.unwrap().expect("the memory store has a limit").used,
            Some((url, prefix)) => {
                let (url, prefix) = (url.clone(), prefix.clone());
                tokio::task::spawn_blocking(move || count_prefixed_keys(&url, &prefix))
                    .await
                    .unwrap()
                    .unwrap()
            }
        }
    }
}

fn count_prefixed_keys(url: &str, prefix: &str) -> redis::RedisResult<u64> {
    let mut connection = redis::Client::open(url)?.get_connection()?;
    let mut count = 0u64;
    for_prefixed_keys(&mut connection, prefix, |_, keys| {
        count += keys.len() as u64;
        Ok(())
    })?;
    Ok(count)
}

/// Calls `each` with every batch of keys under `prefix` (a SCAN, so never one huge reply).
fn for_prefixed_keys(
    connection: &mut redis::Connection,
    prefix: &str,
    mut each: impl FnMut(&mut redis::Connection, Vec<String>) -> redis::RedisResult<()>,
) -> redis::RedisResult<()> {
    // The prefix is `pramaan-test:<uuid>:`, which holds no glob metacharacters.
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query(connection)?;
        if !keys.is_empty() {
            each(connection, keys)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

impl Drop for TestSessionStore {
    fn drop(&mut self) {
        if let Some((url, prefix)) = &self.redis_cleanup {
            // Best effort: a leftover key only costs memory until its TTL ends.
            let _ = delete_prefixed_keys(url, prefix);
        }
    }
}

/// Blocking on purpose: `Drop` cannot await, and this runs once per test.
fn delete_prefixed_keys(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let mut connection = redis::Client::open(url)?.get_connection()?;
    for_prefixed_keys(&mut connection, prefix, |c, keys| redis::cmd("DEL").arg(&keys).query::<()>(c))
}
