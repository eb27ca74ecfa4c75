//! Repository for `outbox`: outgoing mail as rows. [`enqueue`] runs in the caller's
//! transaction; a worker [`claim`]s due rows (committing `sending` before it sends), then marks
//! each [`sent`](mark_sent), [`retry`](mark_retry) or [`failed`](mark_failed).
//! [`settle_abandoned`] turns rows left in `sending` past their lease into `unconfirmed`: they
//! may have been delivered, so they are never sent again.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

use super::schema::outbox;
use super::{AnyConnection, DbError, from_db_time, to_db_time};

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
             ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind::<diesel::sql_types::Timestamp, _>(at)
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .load::<IdRow>(c)?
        .into_iter()
        .map(|r| r.id)
        .collect(),
        AnyConnection::Sqlite(_) => outbox::table
            .filter(outbox::state.eq("pending").and(outbox::next_attempt_at.le(at)))
            .order((outbox::created_at.asc(), outbox::id.asc()))
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
        .order((outbox::created_at.asc(), outbox::id.asc()))
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
    let n = diesel::update(
        outbox::table
            .filter(outbox::id.eq(id))
            .filter(outbox::claimed_by.eq(worker))
            .filter(outbox::state.eq("sending")),
    )
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
    let n = diesel::update(
        outbox::table
            .filter(outbox::id.eq(id))
            .filter(outbox::claimed_by.eq(worker))
            .filter(outbox::state.eq("sending")),
    )
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

/// Gives a message up (refused for good, or out of attempts).
pub fn mark_failed(conn: &mut AnyConnection, id: &str, worker: &str, error: &str) -> Result<bool, DbError> {
    let n = diesel::update(
        outbox::table
            .filter(outbox::id.eq(id))
            .filter(outbox::claimed_by.eq(worker))
            .filter(outbox::state.eq("sending")),
    )
    .set((
        outbox::state.eq("failed"),
        outbox::claimed_until.eq(None::<chrono::NaiveDateTime>),
        outbox::last_error.eq(error),
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
