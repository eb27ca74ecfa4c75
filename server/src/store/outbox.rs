//! Repository for `outbox`: outgoing mail as rows. [`enqueue`] runs in the caller's
//! transaction; a worker [`claim`]s due rows (committing `sending` before it sends), then marks
//! each [`sent`](mark_sent), [`retry`](mark_retry) or [`failed`](mark_failed).
//! [`settle_abandoned`] turns rows left in `sending` past their lease into `unconfirmed`: they
//! may have been delivered, so they are never sent again.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

use super::schema::outbox;
use super::{AnyConnection, DbError, from_db_time, to_db_time};

/// The row `id` while `worker` holds its claim (still `sending`, claimed by it).
macro_rules! claimed {
    ($id:expr, $worker:expr) => {
        outbox::table
            .filter(outbox::id.eq($id))
            .filter(outbox::claimed_by.eq($worker))
            .filter(outbox::state.eq("sending"))
    };
}

/// A message waiting or being sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Also its Message-ID.
    pub id: String,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// Mail about an account whose body the worker renders when it sends (a reset link).
    pub user_id: Option<String>,
    /// The campaign it belongs to.
    pub campaign_id: Option<String>,
}

#[derive(Queryable)]
struct Row {
    id: String,
    kind: String,
    recipient: String,
    subject: String,
    text_body: String,
    html_body: String,
    _state: String,
    attempts: i32,
    _next_attempt_at: chrono::NaiveDateTime,
    _claimed_by: Option<String>,
    _claimed_until: Option<chrono::NaiveDateTime>,
    _last_error: Option<String>,
    created_at: chrono::NaiveDateTime,
    _sent_at: Option<chrono::NaiveDateTime>,
    campaign_id: Option<String>,
    user_id: Option<String>,
    _priority: i32,
}

impl Row {
    fn into_message(self) -> OutboxMessage {
        OutboxMessage {
            id: self.id,
            kind: self.kind,
            recipient: self.recipient,
            subject: self.subject,
            text: self.text_body,
            html: self.html_body,
            attempts: self.attempts,
            created_at: from_db_time(self.created_at),
            user_id: self.user_id,
            campaign_id: self.campaign_id,
        }
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub kind: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

/// Adds a message, due now; returns its id. Call inside the transaction of the change that
/// causes it, so the message exists exactly when the change does.
pub fn enqueue(conn: &mut AnyConnection, m: &NewMessage<'_>, now: DateTime<Utc>) -> Result<String, DbError> {
    let id = crate::crypto::random_token(16);
    let now = to_db_time(now);
    diesel::insert_into(outbox::table)
        .values((
            outbox::id.eq(&id),
            outbox::kind.eq(m.kind),
            outbox::recipient.eq(m.recipient),
            outbox::subject.eq(m.subject),
            outbox::text_body.eq(m.text),
            outbox::html_body.eq(m.html),
            outbox::state.eq("pending"),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(now),
            outbox::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Queues a password-reset mail for account `user_id` at `recipient`, due now, ahead of any
/// campaign's. It has no body yet: the worker makes the link and renders the message when it
/// sends, so no usable link is ever stored. Call inside the transaction that asks for it.
pub fn enqueue_reset(
    conn: &mut AnyConnection,
    user_id: &str,
    recipient: &str,
    now: DateTime<Utc>,
) -> Result<String, DbError> {
    let id = crate::crypto::random_token(16);
    let now = to_db_time(now);
    diesel::insert_into(outbox::table)
        .values((
            outbox::id.eq(&id),
            outbox::kind.eq(KIND_RESET),
            outbox::recipient.eq(recipient),
            outbox::subject.eq(""),
            outbox::text_body.eq(""),
            outbox::html_body.eq(""),
            outbox::state.eq("pending"),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(now),
            outbox::created_at.eq(now),
            outbox::user_id.eq(user_id),
            outbox::priority.eq(0),
        ))
        .execute(conn)?;
    Ok(id)
}

/// The kind of a self-service reset mail.
pub const KIND_RESET: &str = "reset";
/// The kind of a campaign's mail.
pub const KIND_CAMPAIGN: &str = "campaign";

/// Stops the campaign's mail that has not gone out: its pending rows become `cancelled`.
pub fn cancel_campaign(conn: &mut AnyConnection, campaign_id: &str) -> Result<usize, DbError> {
    Ok(diesel::update(
        outbox::table.filter(outbox::campaign_id.eq(campaign_id)).filter(outbox::state.eq("pending")),
    )
    .set(outbox::state.eq("cancelled"))
    .execute(conn)?)
}

/// How many of a campaign's messages are in each state.
pub fn campaign_counts(
    conn: &mut AnyConnection,
    campaign_id: &str,
) -> Result<std::collections::BTreeMap<String, i64>, DbError> {
    let rows: Vec<(String, i64)> = outbox::table
        .filter(outbox::campaign_id.eq(campaign_id))
        .group_by(outbox::state)
        .select((outbox::state, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Drops a claimed message that no longer needs sending (its campaign was cancelled, or its
/// person already set a new password): `skipped`, with why.
pub fn mark_skipped(conn: &mut AnyConnection, id: &str, worker: &str, why: &str) -> Result<bool, DbError> {
    settle(conn, id, worker, "skipped", why)
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

/// Claims up to `limit` due pending messages for `worker` until `now + lease`, committing
/// `sending` (and one more attempt) before anything is sent. Call inside a write transaction.
/// Two workers never claim the same row: PostgreSQL skips rows another transaction holds,
/// SQLite has one writer at a time.
pub fn claim(
    conn: &mut AnyConnection,
    worker: &str,
    now: DateTime<Utc>,
    lease: Duration,
    limit: i64,
) -> Result<Vec<OutboxMessage>, DbError> {
    let at = to_db_time(now);
    let ids: Vec<String> = match conn {
        AnyConnection::Postgresql(c) => diesel::sql_query(
            "SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
             ORDER BY priority, next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind::<diesel::sql_types::Timestamp, _>(at)
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .load::<IdRow>(c)?
        .into_iter()
        .map(|r| r.id)
        .collect(),
        AnyConnection::Sqlite(_) => outbox::table
            .filter(outbox::state.eq("pending").and(outbox::next_attempt_at.le(at)))
            .order((outbox::priority.asc(), outbox::next_attempt_at.asc(), outbox::id.asc()))
            .limit(limit)
            .select(outbox::id)
            .load(conn)?,
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)).filter(outbox::state.eq("pending")))
        .set((
            outbox::state.eq("sending"),
            outbox::claimed_by.eq(worker),
            outbox::claimed_until.eq(to_db_time(now + lease)),
            outbox::attempts.eq(outbox::attempts + 1),
        ))
        .execute(conn)?;
    let rows: Vec<Row> = outbox::table
        .filter(outbox::id.eq_any(&ids))
        .filter(outbox::claimed_by.eq(worker))
        .filter(outbox::state.eq("sending"))
        .order((outbox::priority.asc(), outbox::next_attempt_at.asc(), outbox::id.asc()))
        .load(conn)?;
    Ok(rows.into_iter().map(Row::into_message).collect())
}

/// Marks a message `worker` claimed as sent. False when the claim was lost meanwhile (the
/// lease ran out and the row was settled): it stays as it is.
pub fn mark_sent(
    conn: &mut AnyConnection,
    id: &str,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = diesel::update(claimed!(id, worker))
        .set((
            outbox::state.eq("sent"),
            outbox::sent_at.eq(to_db_time(now)),
            outbox::claimed_until.eq(None::<chrono::NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(n > 0)
}

/// Puts a message back for another attempt at `next` (a temporary failure).
pub fn mark_retry(
    conn: &mut AnyConnection,
    id: &str,
    worker: &str,
    next: DateTime<Utc>,
    error: &str,
) -> Result<bool, DbError> {
    let n = diesel::update(claimed!(id, worker))
        .set((
            outbox::state.eq("pending"),
            outbox::next_attempt_at.eq(to_db_time(next)),
            outbox::claimed_by.eq(None::<String>),
            outbox::claimed_until.eq(None::<chrono::NaiveDateTime>),
            outbox::last_error.eq(error),
        ))
        .execute(conn)?;
    Ok(n > 0)
}

/// Extends `worker`'s claim on a message to `until` just before it is sent. False when the
/// claim was lost (its lease ran out while the batch waited and the row was settled): the
/// message must not be sent.
pub fn renew_claim(
    conn: &mut AnyConnection,
    id: &str,
    worker: &str,
    until: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = diesel::update(claimed!(id, worker))
        .set(outbox::claimed_until.eq(to_db_time(until)))
        .execute(conn)?;
    Ok(n > 0)
}

/// Gives a message up (refused for good, or out of attempts).
pub fn mark_failed(conn: &mut AnyConnection, id: &str, worker: &str, error: &str) -> Result<bool, DbError> {
    settle(conn, id, worker, "failed", error)
}

/// Ends a claimed message in `state`, with why; false when the claim was lost meanwhile.
fn settle(conn: &mut AnyConnection, id: &str, worker: &str, state: &str, why: &str) -> Result<bool, DbError> {
    let n = diesel::update(claimed!(id, worker))
        .set((
            outbox::state.eq(state),
            outbox::claimed_until.eq(None::<chrono::NaiveDateTime>),
            outbox::last_error.eq(why),
        ))
        .execute(conn)?;
    Ok(n > 0)
}

/// Rows left in `sending` past their lease: their worker stopped between claiming and
/// marking, perhaps after the mail server accepted the message. They become `unconfirmed`
/// and are never sent again (at most once). Returns how many.
pub fn settle_abandoned(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(diesel::update(
        outbox::table.filter(outbox::state.eq("sending")).filter(outbox::claimed_until.lt(to_db_time(now))),
    )
    .set((
        outbox::state.eq("unconfirmed"),
        outbox::last_error.eq("the worker stopped while sending; it may have been delivered"),
    ))
    .execute(conn)?)
}

/// How many messages are in each state.
pub fn counts(conn: &mut AnyConnection) -> Result<std::collections::BTreeMap<String, i64>, DbError> {
    let rows: Vec<(String, i64)> = outbox::table
        .group_by(outbox::state)
        .select((outbox::state, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}
