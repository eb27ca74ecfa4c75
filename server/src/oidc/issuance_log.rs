//! Client-credentials issuance is audited as per-client, per-minute aggregates (count and
//! scopes), not one event per token: a partner issuing thousands of tokens a minute must not
//! make the serialised audit chain its bottleneck. Each instance aggregates its own tokens
//! and appends `token.client_credentials` events for every minute that has ended.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::domain::{AuditEvent, Outcome};

#[derive(Debug, Default)]
struct Tally {
    count: u64,
    scopes: BTreeSet<String>,
}

/// Counts issued tokens per (client, minute). Cheap to clone.
#[derive(Clone, Default)]
pub struct IssuanceLog {
    tallies: Arc<Mutex<HashMap<(String, i64), Tally>>>,
}

impl IssuanceLog {
    /// Records one token; a mutex-guarded map update, no I/O.
    pub fn record(&self, client_id: &str, scope: Option<&str>, at: DateTime<Utc>) {
        let minute = at.timestamp().div_euclid(60);
        let mut map = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        let tally = map.entry((client_id.to_owned(), minute)).or_default();
        tally.count += 1;
        if let Some(s) = scope {
            tally.scopes.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned));
        }
    }

    /// Appends one event per (client, minute) for minutes that ended before `now` — or for all
    /// of them when `everything` (shutdown). Tallies are removed only once their events are
    /// stored; a failed append keeps them for the next flush.
    pub async fn flush(&self, audit: &AuditLog, now: DateTime<Utc>, everything: bool) -> usize {
        let current = now.timestamp().div_euclid(60);
        let taken: Vec<((String, i64), Tally)> = {
            let mut map = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
            let done: Vec<(String, i64)> =
                map.keys().filter(|(_, m)| everything || *m < current).cloned().collect();
            done.into_iter().filter_map(|k| map.remove(&k).map(|t| (k, t))).collect()
        };
        if taken.is_empty() {
            return 0;
        }
        let events: Vec<AuditEvent> = taken
            .iter()
            .map(|((client, minute), t)| {
                let start = Utc.timestamp_opt(minute * 60, 0).single().map(|t| t.to_rfc3339());
                AuditEvent::new(format!("client:{client}"), "token.client_credentials", Outcome::Success)
                    .target(format!("client:{client}"))
                    .details(serde_json::json!({
                        "minute": start,
                        "count": t.count,
                        "scopes": t.scopes.iter().collect::<Vec<_>>(),
                    }))
            })
            .collect();
        let n = events.len();
        if let Err(e) = audit.append_many(events).await {
            tracing::error!(error = ?e, "could not audit token issuance; keeping the tallies");
            let mut map = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
            for (k, t) in taken {
                let entry = map.entry(k).or_default();
                entry.count += t.count;
                entry.scopes.extend(t.scopes);
            }
            return 0;
        }
        n
    }

    /// Flushes ended minutes every `every`, until the task is aborted.
    pub fn spawn_flusher(
        &self,
        audit: AuditLog,
        clock: Arc<dyn Clock>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                log.flush(&audit, clock.now(), false).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_group_by_client_and_minute() {
        let log = IssuanceLog::default();
        let t = Utc.timestamp_opt(1_800_000_000, 0).single().unwrap();
        log.record("a", Some("x y"), t);
        log.record("a", Some("y z"), t + chrono::TimeDelta::seconds(10));
        log.record("b", None, t);
        let map = log.tallies.lock().unwrap();
        let a = &map[&("a".to_owned(), t.timestamp().div_euclid(60))];
        assert_eq!(a.count, 2);
        assert_eq!(a.scopes.iter().map(String::as_str).collect::<Vec<_>>(), ["x", "y", "z"]);
        assert_eq!(map.len(), 2);
    }
}
