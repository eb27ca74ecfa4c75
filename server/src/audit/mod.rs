//! The audit trail: an append-only, hash-chained log in the database.
//!
//! Each record's digest is HMAC-SHA256 under the audit key over a canonical encoding of the
//! record and the previous record's digest. Changing, inserting or deleting a record in the
//! middle breaks the chain at that record, and without the audit key nobody can re-forge the
//! rest. (Cutting records off the end is only visible against a head digest kept elsewhere:
//! `audit verify` prints the head so operators can anchor it.)

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::crypto::Digester;
use crate::domain::{AuditEvent, AuditRecord, Outcome};
use crate::store::audit_events::{self, AuditFilter, GENESIS_DIGEST};
use crate::store::{Database, DbError};

/// Appends to and checks the chain. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    db: Database,
    key: Digester,
    clock: Arc<dyn Clock>,
    batch: Arc<Batch>,
}

/// Group commit: appends that arrive while one is being written wait, and the next writer
/// writes all of them in one transaction. Every caller still returns only once its own
/// events are committed, so nothing is acknowledged that could be lost; under load the chain's
/// lock and the commit are paid once per batch instead of once per event.
#[derive(Default)]
struct Batch {
    queue: std::sync::Mutex<Vec<Queued>>,
    writer: tokio::sync::Mutex<()>,
}

struct Queued {
    events: Vec<AuditEvent>,
    done: tokio::sync::oneshot::Sender<Result<Vec<AuditRecord>, String>>,
}

/// The first record that does not verify, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records that verified before the first broken one (all of them when intact).
    pub verified: u64,
    /// Digest of the last verified record: anchor it elsewhere to detect truncation.
    pub head_digest: String,
    pub broken: Option<BrokenLink>,
}

/// The exact bytes the digest covers. Field order is fixed by this struct; every field is the
/// text as stored.
#[derive(Serialize)]
struct Canonical<'a> {
    v: u8,
    seq: i64,
    occurred_at: String,
    actor: &'a str,
    action: &'a str,
    target: Option<&'a str>,
    outcome: &'a str,
    client_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    details: &'a str,
}

fn canonical_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The digest a record must carry, given its content and `prev_digest`.
fn digest_of(key: &Digester, r: &AuditRecord) -> String {
    let canonical = Canonical {
        v: 1,
        seq: r.seq,
        occurred_at: canonical_time(r.occurred_at),
        actor: &r.actor,
        action: &r.action,
        target: r.target.as_deref(),
        outcome: &r.outcome,
        client_ip: r.client_ip.as_deref(),
        user_agent: r.user_agent.as_deref(),
        details: &r.details,
    };
    // Serialising a struct of strings and a Value cannot fail.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(key.digest_parts(&[b"pramaan/audit/v1", &bytes, r.prev_digest.as_bytes()]))
}

impl AuditLog {
    pub fn new(db: Database, key: Digester, clock: Arc<dyn Clock>) -> Self {
        Self { db, key, clock, batch: Arc::default() }
    }

    /// Appends one event and returns it as stored.
    pub async fn append(&self, event: AuditEvent) -> Result<AuditRecord, DbError> {
        let mut v = self.append_many(vec![event]).await?;
        v.pop().ok_or(DbError::NotFound)
    }

    /// Appends events in order, contiguously, and returns once they are committed (in one
    /// transaction with whatever other appends were waiting: see [`Batch`]).
    pub async fn append_many(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>, DbError> {
        let (done, committed) = tokio::sync::oneshot::channel();
        lock(&self.batch.queue).push(Queued { events, done });
        {
            let _writing = self.batch.writer.lock().await;
            let queued = std::mem::take(&mut *lock(&self.batch.queue));
            if !queued.is_empty() {
                // In its own task: a caller that goes away mid-write must not strand the
                // others' answers.
                let this = self.clone();
                let written = tokio::spawn(async move { this.write_batch(queued).await });
                if written.await.is_err() {
                    tracing::error!("an audit batch write panicked");
                }
            }
        }
        match committed.await {
            Ok(Ok(records)) => Ok(records),
            Ok(Err(e)) => Err(DbError::Pool(format!("audit append failed: {e}"))),
            Err(_) => Err(DbError::Pool("audit append abandoned".into())),
        }
    }

    /// Writes the queued appends in one transaction and answers each with its own records.
    async fn write_batch(&self, queued: Vec<Queued>) {
        let mut events = Vec::new();
        let mut waiting = Vec::with_capacity(queued.len());
        for q in queued {
            waiting.push((q.events.len(), q.done));
            events.extend(q.events);
        }
        let this = self.clone();
        match self.db.run(move |c| this.append_with(c, events)).await {
            Ok(records) => {
                let mut records = records.into_iter();
                for (n, done) in waiting {
                    let _ = done.send(Ok(records.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                tracing::error!(error = ?e, "an audit batch could not be written");
                let msg = e.to_string();
                for (_, done) in waiting {
                    let _ = done.send(Err(msg.clone()));
                }
            }
        }
    }

    /// Appends inside the caller's transaction (so the event commits or rolls back with the
    /// change it records).
    pub fn append_with(
        &self,
        conn: &mut crate::store::AnyConnection,
        events: Vec<AuditEvent>,
    ) -> Result<Vec<AuditRecord>, DbError> {
        append_blocking(conn, &self.key, &*self.clock, events)
    }

    /// Walks the whole chain from the first record and stops at the first that does not
    /// verify: a gap in `seq`, a `prev_digest` that is not the previous digest, or a digest
    /// that does not match the content.
    pub async fn verify(&self) -> Result<VerifyReport, DbError> {
        let key = self.key.clone();
        self.db
            .run(move |c| {
                let mut expected_seq = 1;
                let mut prev = GENESIS_DIGEST.to_owned();
                let mut verified = 0u64;
                loop {
                    let filter = AuditFilter { after_seq: Some(expected_seq - 1), ..Default::default() };
                    let page = audit_events::page(c, &filter, 2000)?;
                    if page.is_empty() {
                        return Ok(VerifyReport { verified, head_digest: prev, broken: None });
                    }
                    for r in page {
                        let reason = if r.seq != expected_seq {
                            Some(format!(
                                "expected event {expected_seq} next, found {}: events are missing",
                                r.seq
                            ))
                        } else if r.prev_digest != prev {
                            Some("its link to the previous event does not match".to_owned())
                        } else if !crate::crypto::constant_time_eq(
                            digest_of(&key, &r).as_bytes(),
                            r.digest.as_bytes(),
                        ) {
                            Some("its content does not match its digest (altered)".to_owned())
                        } else {
                            None
                        };
                        if let Some(reason) = reason {
                            let seq = if r.seq != expected_seq { expected_seq } else { r.seq };
                            return Ok(VerifyReport {
                                verified,
                                head_digest: prev,
                                broken: Some(BrokenLink { seq, reason }),
                            });
                        }
                        verified += 1;
                        expected_seq += 1;
                        prev = r.digest;
                    }
                }
            })
            .await
    }

    /// Records in chain order matching `filter`, at most `limit`.
    pub async fn page(&self, filter: AuditFilter, limit: i64) -> Result<Vec<AuditRecord>, DbError> {
        self.db.run(move |c| audit_events::page(c, &filter, limit)).await
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn append_blocking(
    conn: &mut crate::store::AnyConnection,
    key: &Digester,
    clock: &dyn Clock,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditRecord>, DbError> {
    let mut events = events.into_iter();
    let count = events.len();
    let mut now = None;
    audit_events::append(conn, count, |seq, prev| {
        // Read under the lock: times then rise with seq, whatever the wait for the lock.
        let at = *now.get_or_insert_with(|| clock.now());
        let e =
            events.next().unwrap_or_else(|| AuditEvent::new("system", "audit.internal", Outcome::Failure));
        let mut r = AuditRecord {
            seq,
            occurred_at: at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome.as_str().to_owned(),
            client_ip: e.client_ip,
            user_agent: e.user_agent,
            details: e.details.to_string(),
            prev_digest: prev.to_owned(),
            digest: String::new(),
        };
        r.digest = digest_of(key, &r);
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64, prev: &str) -> AuditRecord {
        AuditRecord {
            seq,
            occurred_at: DateTime::from_timestamp(1_800_000_000, 123_456_000).unwrap(),
            actor: "cli".into(),
            action: "user.create".into(),
            target: Some("user:asha".into()),
            outcome: "success".into(),
            client_ip: None,
            user_agent: None,
            details: r#"{"a":[1,2],"b":1}"#.into(),
            prev_digest: prev.into(),
            digest: String::new(),
        }
    }

    #[test]
    fn the_digest_covers_every_field_and_the_link() {
        let key = Digester::new([9; 32]);
        let base = digest_of(&key, &record(1, GENESIS_DIGEST));
        let mut changed = Vec::new();
        let mut r = record(1, GENESIS_DIGEST);
        r.actor = "cli2".into();
        changed.push(r);
        let mut r = record(1, GENESIS_DIGEST);
        r.outcome = "denied".into();
        changed.push(r);
        let mut r = record(1, GENESIS_DIGEST);
        r.outcome = "garbage".into();
        changed.push(r);
        let mut r = record(1, GENESIS_DIGEST);
        r.details = r#"{"a":[1,2],"b":2}"#.into();
        changed.push(r);
        let mut r = record(1, GENESIS_DIGEST);
        r.details = r#"{"a": [1,2],"b":1}"#.into();
        changed.push(r);
        let mut r = record(1, GENESIS_DIGEST);
        r.target = None;
        changed.push(r);
        let mut r = record(1, GENESIS_DIGEST);
        r.client_ip = Some("10.0.0.1".into());
        changed.push(r);
        let mut r = record(1, GENESIS_DIGEST);
        r.user_agent = Some("curl".into());
        changed.push(r);
        let mut r = record(1, GENESIS_DIGEST);
        r.action = "user.delete".into();
        changed.push(r);
        let mut r = record(1, GENESIS_DIGEST);
        r.occurred_at += chrono::TimeDelta::microseconds(1);
        changed.push(r);
        changed.push(record(2, GENESIS_DIGEST));
        changed.push(record(1, "ff"));
        for r in &changed {
            assert_ne!(digest_of(&key, r), base, "{r:?}");
        }
        assert_ne!(digest_of(&Digester::new([8; 32]), &record(1, GENESIS_DIGEST)), base);
        assert_eq!(digest_of(&key, &record(1, GENESIS_DIGEST)), base);
    }
}
