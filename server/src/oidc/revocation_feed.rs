//! Each instance's copy of the shared revocation list, so introspecting a token asks the
//! session store nothing per request.
//!
//! A revocation stores `revoked:jti:<jti>` (with the token's remaining life) in the
//! [`REVOKED_INDEX`] and then bumps the [`REVOKED_GEN`] counter. Every instance reads the
//! counter every [`POLL`]; when it moved, it reads the index and marks every listed jti
//! revoked locally. While the last successful poll is younger than [`FRESH_FOR`], the local
//! copy is trusted; otherwise (a stalled store, a just-started instance, a local map that had
//! to start over) introspection asks the store per token as before. A revocation made
//! anywhere therefore reaches every instance within one poll plus a round trip — well inside
//! the one-second rule (DESIGN.md) — and never later than `FRESH_FOR`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sessions::StoreError;
use crate::state::AppState;

/// The index of revoked access tokens (members are `revoked:jti:<jti>` keys).
pub const REVOKED_INDEX: &str = "revoked-jtis";
/// Bumped after each addition to [`REVOKED_INDEX`].
pub const REVOKED_GEN: &str = "revoked-gen";
/// The counter outlives any token by far; should it ever expire and restart, the change of
/// value is itself seen as a change.
pub const REVOKED_GEN_TTL: Duration = Duration::from_secs(365 * 86_400);

const POLL: Duration = Duration::from_millis(200);
const FRESH_FOR: Duration = Duration::from_millis(700);

/// This instance's view of the feed. Cheap to share.
#[derive(Debug)]
pub struct RevocationFeed {
    started: Instant,
    /// Milliseconds after `started` of the last successful poll (0: none, or invalidated).
    last_ok_ms: AtomicU64,
    /// The counter's value at that poll.
    generation: Mutex<Option<Vec<u8>>>,
    /// Bumped by [`resync`](Self::resync): a poll that overlapped a reset of the local map
    /// must not call the copy fresh.
    resets: AtomicU64,
}

impl Default for RevocationFeed {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            last_ok_ms: AtomicU64::new(0),
            generation: Mutex::new(None),
            resets: AtomicU64::new(0),
        }
    }
}

impl RevocationFeed {
    /// Whether the local copy of the list may be trusted right now.
    pub fn fresh(&self) -> bool {
        let last = self.last_ok_ms.load(Ordering::Acquire);
        last > 0
            && (self.started.elapsed().as_millis() as u64).saturating_sub(last)
                <= FRESH_FOR.as_millis() as u64
    }

    /// Distrusts the local copy until the whole list has been read again (the local map of
    /// revoked jtis had to start over).
    pub fn resync(&self) {
        self.resets.fetch_add(1, Ordering::AcqRel);
        self.last_ok_ms.store(0, Ordering::Release);
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Reads the counter and, when it moved, the list.
    pub async fn poll(&self, state: &AppState) -> Result<(), StoreError> {
        let started_ms = self.started.elapsed().as_millis() as u64;
        let resets = self.resets.load(Ordering::Acquire);
        // The counter is read before the list: a revocation landing in between moves the
        // counter again, so the next poll reads the list again.
        let generation = state.sessions.get(REVOKED_GEN).await?;
        let known = self.generation.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if generation.is_none() || generation != known {
            let members = state.sessions.index_members(REVOKED_INDEX).await?;
            let whole = members.len() < super::introspect::MAX_JTIS;
            for member in &members {
                if let Some(jti) = member.strip_prefix("revoked:jti:") {
                    state.verified.mark_revoked_quietly(jti);
                }
            }
            // More revocations than the local map holds: the copy can never be complete, so
            // it is never trusted and the store answers per token.
            if !whole {
                tracing::warn!(live = members.len(), "revocation list larger than the local copy");
                self.resync();
                return Ok(());
            }
            *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = generation;
        }
        // A reset of the local map while this poll ran (it may have dropped what this poll
        // just added) leaves the copy untrusted until a poll completes without one.
        if self.resets.load(Ordering::Acquire) != resets {
            *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Ok(());
        }
        // Fresh from when the poll began, not when it ended.
        self.last_ok_ms.store(started_ms.max(1), Ordering::Release);
        Ok(())
    }

    /// Polls every [`POLL`] for as long as the returned task lives (inside a Tokio runtime).
    pub fn spawn(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
        tokio::runtime::Handle::try_current().ok()?;
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let feed = state.verified.feed.clone();
                match tokio::time::timeout(POLL, feed.poll(&state)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "revocation feed poll failed"),
                    Err(_) => tracing::warn!("revocation feed poll timed out"),
                }
            }
        }))
    }
}
