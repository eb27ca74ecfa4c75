//! In-process cache of client state (registration, status, token cut-off, secret digest), so
//! the token and introspection endpoints do not read the database per request.
//!
//! Freshness: every change that must reach the cache bumps the revocation epoch in the same
//! transaction; each instance polls the epoch every [`POLL`] and empties the cache when it
//! moved. A change made anywhere — another instance, the CLI — is therefore seen everywhere
//! within one poll interval plus a query.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::{Client, ClientId};
use crate::store::{Database, DbError, clients, meta};

/// How often each instance reads the epoch.
pub const POLL: Duration = Duration::from_millis(500);

/// Bound on cached clients; when reached, the cache starts over (clients are few).
const MAX_ENTRIES: usize = 100_000;

type Entry = Arc<(Client, Option<String>)>;

/// Cheap to clone.
#[derive(Clone)]
pub struct ClientCache {
    db: Database,
    entries: Arc<Mutex<HashMap<ClientId, Entry>>>,
    epoch: Arc<AtomicI64>,
}

impl ClientCache {
    pub fn new(db: Database) -> Self {
        Self { db, entries: Arc::default(), epoch: Arc::new(AtomicI64::new(i64::MIN)) }
    }

    /// The client with its secret digest, from the cache or the database. Unknown ids are not
    /// cached (random ids must not grow the cache).
    pub async fn get(&self, id: &ClientId) -> Result<Option<Entry>, DbError> {
        if let Some(hit) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(Some(hit.clone()));
        }
        let epoch_before = self.epoch.load(Ordering::Acquire);
        let lookup = id.clone();
        let Some(found) = self.db.run(move |c| clients::find_with_secret(c, &lookup)).await? else {
            return Ok(None);
        };
        let entry = Arc::new(found);
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // If the epoch moved while we read, what we read may predate the change: use it for
        // this request but do not keep it.
        if self.epoch.load(Ordering::Acquire) == epoch_before {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(id.clone(), entry.clone());
        }
        Ok(Some(entry))
    }

    /// Reads the epoch once; empties the cache if it moved. Returns whether it did.
    pub async fn poll(&self) -> Result<bool, DbError> {
        let current = self.db.run(meta::revocation_epoch).await?;
        let previous = self.epoch.swap(current, Ordering::AcqRel);
        if previous != current {
            self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
            return Ok(previous != i64::MIN);
        }
        Ok(false)
    }

    /// Polls every [`POLL`] until aborted.
    pub fn spawn_poller(&self) -> Option<tokio::task::JoinHandle<()>> {
        tokio::runtime::Handle::try_current().ok()?;
        let cache = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = cache.poll().await {
                    // Fail safe: without a fresh epoch, cached state may be stale; drop it.
                    cache.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    tracing::warn!(error = ?e, "revocation epoch poll failed; client cache cleared");
                }
            }
        }))
    }
}
