//! Repository for the audit chain (`audit_events`): append under a lock, read in order.
//! The digests themselves are computed by `crate::audit`, which owns the key.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::conn::serialised_transaction;
use super::schema::audit_events;
use super::{AnyConnection, DbError, from_db_time, to_db_time};
use crate::domain::AuditRecord;

/// Advisory-lock key that serialises appends across every instance on one PostgreSQL.
const AUDIT_LOCK_KEY: i64 = 0x7072_616d_6161_6e02;

/// The digest that the first record chains to.
pub const GENESIS_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Queryable)]
struct AuditRow {
    seq: i64,
    occurred_at: chrono::NaiveDateTime,
    actor: String,
    action: String,
    target: Option<String>,
    outcome: String,
    client_ip: Option<String>,
    user_agent: Option<String>,
    details: String,
    prev_digest: String,
    digest: String,
}

impl AuditRow {
    /// Fields are passed through as stored: `audit verify` must see exactly what is there.
    fn into_domain(self) -> AuditRecord {
        AuditRecord {
            seq: self.seq,
            occurred_at: from_db_time(self.occurred_at),
            actor: self.actor,
            action: self.action,
            target: self.target,
            outcome: self.outcome,
            client_ip: self.client_ip,
            user_agent: self.user_agent,
            details: self.details,
            prev_digest: self.prev_digest,
            digest: self.digest,
        }
    }
}

/// Appends records built by `make`, which receives the next sequence number and the digest of
/// the chain's head, and is called only once the lock is held (so a time it reads is in
/// sequence order). Runs in a transaction holding the audit lock, so concurrent appenders
/// (threads or instances) queue and the chain never forks. `make` is called once per record
/// in `count` and must return the record for that position.
pub fn append(
    conn: &mut AnyConnection,
    count: usize,
    mut make: impl FnMut(i64, &str) -> AuditRecord,
) -> Result<Vec<AuditRecord>, DbError> {
    serialised_transaction(conn, AUDIT_LOCK_KEY, |c| {
        // `max` then the key, not `ORDER BY … LIMIT 1` (see the `store` module).
        let head_seq: Option<i64> =
            audit_events::table.select(diesel::dsl::max(audit_events::seq)).get_result(c)?;
        let head: Option<(i64, String)> = match head_seq {
            Some(seq) => Some(
                audit_events::table
                    .find(seq)
                    .select((audit_events::seq, audit_events::digest))
                    .get_result(c)?,
            ),
            None => None,
        };
        let (mut seq, mut prev) = head.unwrap_or((0, GENESIS_DIGEST.to_owned()));
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let rec = make(seq + 1, &prev);
            diesel::insert_into(audit_events::table)
                .values((
                    audit_events::seq.eq(rec.seq),
                    audit_events::occurred_at.eq(to_db_time(rec.occurred_at)),
                    audit_events::actor.eq(&rec.actor),
                    audit_events::action.eq(&rec.action),
                    audit_events::target.eq(rec.target.as_deref()),
                    audit_events::outcome.eq(&rec.outcome),
                    audit_events::client_ip.eq(rec.client_ip.as_deref()),
                    audit_events::user_agent.eq(rec.user_agent.as_deref()),
                    audit_events::details.eq(&rec.details),
                    audit_events::prev_digest.eq(&rec.prev_digest),
                    audit_events::digest.eq(&rec.digest),
                ))
                .execute(c)?;
            seq = rec.seq;
            prev.clone_from(&rec.digest);
            out.push(rec);
        }
        Ok(out)
    })
}

/// Filter for [`page`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub after_seq: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    /// Only events before this instant.
    pub until: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
}

/// Records in chain order, at most `limit`.
pub fn page(conn: &mut AnyConnection, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditRecord>, DbError> {
    let mut q = audit_events::table.into_boxed();
    if let Some(s) = filter.after_seq {
        q = q.filter(audit_events::seq.gt(s));
    }
    if let Some(t) = filter.since {
        q = q.filter(audit_events::occurred_at.ge(to_db_time(t)));
    }
    if let Some(t) = filter.until {
        q = q.filter(audit_events::occurred_at.lt(to_db_time(t)));
    }
    if let Some(a) = &filter.actor {
        q = q.filter(audit_events::actor.eq(a.clone()));
    }
    if let Some(a) = &filter.action {
        q = q.filter(audit_events::action.eq(a.clone()));
    }
    if let Some(t) = &filter.target {
        q = q.filter(audit_events::target.eq(t.clone()));
    }
    if let Some(o) = &filter.outcome {
        q = q.filter(audit_events::outcome.eq(o.clone()));
    }
    let rows: Vec<AuditRow> = q.order(audit_events::seq.asc()).limit(limit).load(conn)?;
    Ok(rows.into_iter().map(AuditRow::into_domain).collect())
}
