//! In-process cache of client state (registration, status, token cut-off, secret digest), so
//! the token and introspection endpoints do not read the database per request.
//!
//! Freshness: every change that must reach the cache bumps the revocation epoch in the same
//! transaction; each instance polls the epoch every [`POLL`] and empties the cache when it
//! moved. A change made anywhere — another instance, the CLI — is therefore seen everywhere
//! within one poll interval plus a query.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::{Client, ClientId};
use crate::store::{Database, DbError, clients, meta};

/// How often each instance reads the epoch.
pub const POLL: Duration = Duration::from_millis(500);

/// A poll that has not finished within this is abandoned (and counts as failed).
const POLL_TIMEOUT: Duration = Duration::from_millis(400);

/// Cached state is used only while the last successful poll is this recent: a poll that
/// stalls (a starved pool, a partition) must not stretch the one-second promise.
const FRESH_FOR: Duration = Duration::from_millis(900);

/// Bounds on cached clients and on remembered unknown ids; at a bound, that set starts over.
const MAX_ENTRIES: usize = 100_000;
const MAX_UNKNOWN: usize = 10_000;

type Entry = Arc<(Client, Option<String>)>;

#[derive(Default)]
struct Maps {
    known: HashMap<ClientId, Entry>,
    /// Ids that did not exist, so a flood of random ids costs no query each. Client creation
    /// bumps the epoch, which empties this too.
    unknown: HashSet<ClientId>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct ClientCache {
    db: Database,
    maps: Arc<Mutex<Maps>>,
    epoch: Arc<AtomicI64>,
    started: Instant,
    /// Milliseconds after `started` of the last successful poll (0: none yet).
    last_ok_poll: Arc<AtomicU64>,
}

impl ClientCache {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            maps: Arc::default(),
            epoch: Arc::new(AtomicI64::new(i64::MIN)),
            started: Instant::now(),
            last_ok_poll: Arc::new(AtomicU64::new(0)),
        }
    }

    fn fresh(&self) -> bool {
        let last = self.last_ok_poll.load(Ordering::Acquire);
        last > 0
            && (self.started.elapsed().as_millis() as u64).saturating_sub(last)
                <= FRESH_FOR.as_millis() as u64
    }

    /// Whether `id` is a client this instance knows from a fresh cache: no I/O. A rate limit on
    /// lookups of unknown clients lets these through unchecked.
    pub fn cached_known(&self, id: &ClientId) -> bool {
        self.fresh() && self.maps.lock().unwrap_or_else(|p| p.into_inner()).known.contains_key(id)
    }

    /// The client with its secret digest, from the cache or the database.
    pub async fn get(&self, id: &ClientId) -> Result<Option<Entry>, DbError> {
        let fresh = self.fresh();
        if fresh {
            let maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = maps.known.get(id) {
                return Ok(Some(hit.clone()));
            }
            if maps.unknown.contains(id) {
                return Ok(None);
            }
        }
        let epoch_before = self.epoch.load(Ordering::Acquire);
        let lookup = id.clone();
        let found = self.db.run(move |c| clients::find_with_secret(c, &lookup)).await?;
        let entry = found.map(Arc::new);
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        // If the epoch moved while we read, what we read may predate the change: use it for
        // this request but do not keep it. Nor keep anything while polls are failing.
        if fresh && self.epoch.load(Ordering::Acquire) == epoch_before {
            match &entry {
                Some(e) => {
                    if maps.known.len() >= MAX_ENTRIES {
                        maps.known.clear();
                    }
                    maps.known.insert(id.clone(), e.clone());
                }
                None => {
                    if maps.unknown.len() >= MAX_UNKNOWN {
                        maps.unknown.clear();
                    }
                    maps.unknown.insert(id.clone());
                }
            }
        }
        Ok(entry)
    }

    /// The epoch as last read (`i64::MIN` before the first poll). Whatever is derived from
    /// client state (a status list) is stale once this moves.
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn clear(&self) {
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        maps.known.clear();
        maps.unknown.clear();
    }

    /// Reads the epoch once (abandoned after a short timeout); empties the cache if it moved.
    /// Returns whether it did.
    pub async fn poll(&self) -> Result<bool, DbError> {
        let read = tokio::time::timeout(POLL_TIMEOUT, self.db.run(meta::revocation_epoch))
            .await
            .map_err(|_| DbError::Pool("revocation epoch poll timed out".into()))??;
        let previous = self.epoch.swap(read, Ordering::AcqRel);
        if previous != read {
            self.clear();
        }
        self.last_ok_poll.store((self.started.elapsed().as_millis() as u64).max(1), Ordering::Release);
        Ok(previous != read && previous != i64::MIN)
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
                    // Fail safe: without a fresh epoch, cached state may be stale; drop it
                    // (and `get` stops using the cache until a poll succeeds again).
                    cache.clear();
                    tracing::warn!(error = ?e, "revocation epoch poll failed; client cache cleared");
                }
            }
        }))
    }
}
