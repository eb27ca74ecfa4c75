//! Rate limits per client address, shared by every instance: one GCRA counter per (limit,
//! network) in the session store (Redis in production), charged against the injected clock.
//!
//! Two ways to charge. [`Limiter::charge`] counts every attempt before it is worked on (a
//! password costs an argon2 hash whatever its verdict). [`Limiter::charge_failure`] counts only
//! failures (a wrong client secret, an unknown client), so a partner's good traffic never
//! touches the store; once an address is over such a limit, this instance remembers it
//! ([`Limiter::refusing`], one map lookup) and refuses everything from there without a check
//! until the wait is over — a guesser gains nothing by also sending good requests.
//!
//! Refusals are told (429 with `Retry-After`, by each front door in its own shape), logged at
//! most once per limit, network and minute, and audited as one `rate_limit.refused` event per
//! limit, network and minute with its count, so a flood cannot fill the disk or the trail.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::config::LimitSettings;
use crate::domain::{AuditEvent, Outcome, network_of};
use crate::sessions::{SessionStore, StoreError, Throttle};

/// The limits there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    PasswordAttempt,
    ClientAuthFailure,
    ResetRequest,
    UnknownLookup,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordAttempt => "password_attempts",
            Self::ClientAuthFailure => "client_auth_failures",
            Self::ResetRequest => "reset_requests",
            Self::UnknownLookup => "unknown_lookups",
        }
    }

    /// (requests, period) from the settings.
    fn rate(self, s: &LimitSettings) -> (u32, Duration) {
        match self {
            Self::PasswordAttempt => (s.password_attempts_per_minute, Duration::from_secs(60)),
            Self::ClientAuthFailure => (s.client_auth_failures_per_minute, Duration::from_secs(60)),
            Self::ResetRequest => (s.reset_requests_per_hour, Duration::from_secs(3600)),
            Self::UnknownLookup => (s.unknown_lookups_per_minute, Duration::from_secs(60)),
        }
    }
}

/// A refusal: how long until the address may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

impl Refused {
    /// Whole seconds for `Retry-After` (RFC 9110 §10.2.3), at least one.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

/// Refusals per (limit, network, minute since the epoch).
type Tallies = HashMap<(Limit, IpAddr, i64), u64>;

/// (limit, network, subject or "") → refused until (µs since the epoch).
type Refusing = HashMap<(Limit, IpAddr, String), i64>;

/// Addresses this instance saw refused, kept at most this many (the oldest waits go first).
const MAX_REMEMBERED: usize = 100_000;

/// The limiter. Cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    store: Arc<dyn SessionStore>,
    settings: LimitSettings,
    clock: Arc<dyn Clock>,
    /// Who is refused, for the failure-charged limits.
    refusing: Arc<Mutex<Refusing>>,
    /// Entries in `refusing`, read without the lock on every request.
    refusing_len: Arc<AtomicUsize>,
    /// (limit, network, minute) → refusals, for the audit trail.
    tally: Arc<Mutex<Tallies>>,
}

impl Limiter {
    pub fn new(store: Arc<dyn SessionStore>, settings: LimitSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            settings,
            clock,
            refusing: Arc::default(),
            refusing_len: Arc::default(),
            tally: Arc::default(),
        }
    }

    fn key(limit: Limit, network: IpAddr, subject: &str) -> String {
        if subject.is_empty() {
            format!("limit:{}:{network}", limit.as_str())
        } else {
            format!("limit:{}:{network}:{subject}", limit.as_str())
        }
    }

    /// Counts one attempt from `ip` against `limit`; `Err` when the address is over it (then
    /// nothing was counted). Without an address (a test client, a Unix socket), nothing is.
    pub async fn charge(&self, limit: Limit, ip: Option<IpAddr>) -> Result<Result<(), Refused>, StoreError> {
        Ok(self.throttle(limit, ip, "").await?.map(|_| ()))
    }

    /// One request against `limit`: `Ok(wait until the next would pass, if it would not)`, or
    /// the refusal (then nothing was counted, and the refusal is remembered and tallied).
    async fn throttle(
        &self,
        limit: Limit,
        ip: Option<IpAddr>,
        subject: &str,
    ) -> Result<Result<Option<Duration>, Refused>, StoreError> {
        let Some(ip) = ip.filter(|_| self.settings.enabled) else { return Ok(Ok(None)) };
        let network = network_of(ip);
        let (n, period) = limit.rate(&self.settings);
        let burst = i64::try_from(period.as_micros()).unwrap_or(i64::MAX);
        let interval = burst / i64::from(n.max(1));
        let now = self.clock.now().timestamp_micros();
        match self.store.throttle(&Self::key(limit, network, subject), now, interval, burst).await? {
            Throttle::Passed { ahead } => {
                // Full when one more interval would run past the burst.
                let ahead = i64::try_from(ahead.as_micros()).unwrap_or(i64::MAX);
                let full_for = ahead.saturating_add(interval).saturating_sub(burst);
                Ok(Ok((full_for > 0).then(|| Duration::from_micros(u64::try_from(full_for).unwrap_or(0)))))
            }
            Throttle::Refused { wait } => {
                self.remember(limit, network, subject, now, wait);
                self.count(limit, network, now);
                Ok(Err(Refused { retry_after: wait }))
            }
        }
    }

    /// Counts a failure from `ip` (about `subject`, if any) against `limit`. Once the address
    /// has used the limit up, this instance refuses it ([`refusing`](Self::refusing)) until the
    /// next failure would pass again — another instance learns at its own next failure from
    /// there. A store failure is logged and otherwise ignored: the request failed already.
    pub async fn charge_failure(&self, limit: Limit, ip: Option<IpAddr>, subject: Option<&str>) {
        let subject = subject.unwrap_or("");
        match self.throttle(limit, ip, subject).await {
            Ok(Ok(Some(full_for))) => {
                if let Some(ip) = ip {
                    let now = self.clock.now().timestamp_micros();
                    self.remember(limit, network_of(ip), subject, now, full_for);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, limit = limit.as_str(), "could not count a failure"),
        }
    }

    /// Whether this instance is refusing `ip` under a failure-charged `limit`: one atomic load
    /// when nothing is refused, one map lookup otherwise. No I/O.
    pub fn refusing(&self, limit: Limit, ip: Option<IpAddr>, subject: Option<&str>) -> Option<Refused> {
        if self.refusing_len.load(Ordering::Relaxed) == 0 || !self.settings.enabled {
            return None;
        }
        let network = network_of(ip?);
        let now = self.clock.now().timestamp_micros();
        let map = self.refusing.lock().unwrap_or_else(|p| p.into_inner());
        let until = *map.get(&(limit, network, subject.unwrap_or("").to_owned()))?;
        (until > now).then(|| {
            self.count(limit, network, now);
            Refused { retry_after: Duration::from_micros(u64::try_from(until - now).unwrap_or(0)) }
        })
    }

    /// Refuses `network` (for `subject`) under `limit` on this instance for `wait` from `now`.
    fn remember(&self, limit: Limit, network: IpAddr, subject: &str, now: i64, wait: Duration) {
        let until = now.saturating_add(i64::try_from(wait.as_micros()).unwrap_or(i64::MAX));
        let mut map = self.refusing.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_REMEMBERED {
            map.retain(|_, t| *t > now);
        }
        if map.len() < MAX_REMEMBERED {
            map.insert((limit, network, subject.to_owned()), until);
        }
        self.refusing_len.store(map.len(), Ordering::Relaxed);
    }

    /// Tallies a refusal; the first of a (limit, network, minute) is logged.
    fn count(&self, limit: Limit, network: IpAddr, now: i64) {
        let minute = now.div_euclid(60_000_000);
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let n = tally.entry((limit, network, minute)).or_insert(0);
        *n += 1;
        if *n == 1 {
            tracing::warn!(limit = limit.as_str(), network = %network, "rate limit reached; refusing");
        }
    }

    /// Appends one `rate_limit.refused` event per (limit, network) for each minute that ended
    /// before `now` (all of them when `everything`); a failed append keeps the tallies.
    pub async fn flush(&self, audit: &AuditLog, now: DateTime<Utc>, everything: bool) -> usize {
        let current = now.timestamp().div_euclid(60);
        let taken: Vec<((Limit, IpAddr, i64), u64)> = {
            let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            let done: Vec<_> = tally.keys().filter(|(_, _, m)| everything || *m < current).copied().collect();
            done.into_iter().filter_map(|k| tally.remove(&k).map(|n| (k, n))).collect()
        };
        if taken.is_empty() {
            return 0;
        }
        let events: Vec<AuditEvent> = taken
            .iter()
            .map(|((limit, network, minute), n)| {
                let start = Utc.timestamp_opt(minute * 60, 0).single().map(|t| t.to_rfc3339());
                let mut e = AuditEvent::new("anonymous", "rate_limit.refused", Outcome::Denied)
                    .details(serde_json::json!({ "limit": limit.as_str(), "minute": start, "count": n }));
                e.client_ip = Some(network.to_string());
                e
            })
            .collect();
        let n = events.len();
        if let Err(e) = audit.append_many(events).await {
            tracing::error!(error = ?e, "could not audit rate-limit refusals; keeping the tallies");
            let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            for (k, c) in taken {
                *tally.entry(k).or_insert(0) += c;
            }
            return 0;
        }
        n
    }

    /// Flushes ended minutes every `every`, until the task is aborted.
    pub fn spawn_flusher(&self, audit: AuditLog, every: Duration) -> tokio::task::JoinHandle<()> {
        let limiter = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                limiter.flush(&audit, limiter.clock.now(), false).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::sessions::memory::MemoryStore;

    fn limiter(clock: &FixedClock, s: LimitSettings) -> Limiter {
        Limiter::new(Arc::new(MemoryStore::new(1000)), s, Arc::new(clock.clone()))
    }

    #[tokio::test]
    async fn an_address_over_its_limit_is_refused_until_its_wait_is_over_and_others_are_not() {
        let clock = FixedClock::new(Utc.timestamp_opt(1_900_000_000, 0).single().unwrap());
        let l =
            limiter(&clock, LimitSettings { password_attempts_per_minute: 3, ..LimitSettings::default() });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.charge(Limit::PasswordAttempt, Some(a)).await.unwrap(), Ok(()));
        }
        let refused = l.charge(Limit::PasswordAttempt, Some(a)).await.unwrap().unwrap_err();
        assert_eq!(refused.retry_after_secs(), 20);
        assert!(l.charge(Limit::PasswordAttempt, Some("192.0.2.2".parse().unwrap())).await.unwrap().is_ok());
        assert!(l.charge(Limit::ResetRequest, Some(a)).await.unwrap().is_ok(), "each limit counts alone");
        assert!(l.charge(Limit::PasswordAttempt, None).await.unwrap().is_ok(), "no address, no limit");
        clock.advance(chrono::TimeDelta::seconds(20));
        assert!(l.charge(Limit::PasswordAttempt, Some(a)).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn failures_only_count_and_then_every_request_is_refused_without_io() {
        let clock = FixedClock::new(Utc.timestamp_opt(1_900_000_000, 0).single().unwrap());
        let l =
            limiter(&clock, LimitSettings { client_auth_failures_per_minute: 2, ..LimitSettings::default() });
        let v6: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let partner = Some("partner");
        assert!(l.refusing(Limit::ClientAuthFailure, Some(v6), partner).is_none());
        l.charge_failure(Limit::ClientAuthFailure, Some(v6), partner).await;
        assert!(l.refusing(Limit::ClientAuthFailure, Some(v6), partner).is_none(), "one failure of two");
        l.charge_failure(Limit::ClientAuthFailure, Some(v6), partner).await;
        let other_in_64: IpAddr = "2001:db8:1:2:ffff::2".parse().unwrap();
        let r = l.refusing(Limit::ClientAuthFailure, Some(other_in_64), partner).expect("the whole /64");
        assert_eq!(r.retry_after_secs(), 30, "until the next failure would pass");
        assert!(
            l.refusing(Limit::ClientAuthFailure, Some(v6), Some("another")).is_none(),
            "that client only"
        );
        assert!(l.refusing(Limit::UnknownLookup, Some(v6), None).is_none());
        clock.advance(chrono::TimeDelta::seconds(30));
        assert!(l.refusing(Limit::ClientAuthFailure, Some(v6), partner).is_none(), "the wait is over");
    }

    #[tokio::test]
    async fn refusals_are_audited_once_per_limit_network_and_minute_with_their_count() {
        let clock = FixedClock::new(Utc.timestamp_opt(1_900_000_000, 0).single().unwrap());
        let l = limiter(&clock, LimitSettings { reset_requests_per_hour: 1, ..LimitSettings::default() });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1001 {
            let _ = l.charge(Limit::ResetRequest, Some(a)).await.unwrap();
        }
        let tally = l.tally.lock().unwrap().clone();
        assert_eq!(tally.len(), 1);
        assert_eq!(tally.values().copied().collect::<Vec<_>>(), [1000]);
    }

    #[tokio::test]
    async fn disabled_limits_refuse_nothing() {
        let clock = FixedClock::new(Utc.timestamp_opt(1_900_000_000, 0).single().unwrap());
        let l = limiter(
            &clock,
            LimitSettings { enabled: false, password_attempts_per_minute: 1, ..LimitSettings::default() },
        );
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert!(l.charge(Limit::PasswordAttempt, Some(a)).await.unwrap().is_ok());
        }
    }
}
