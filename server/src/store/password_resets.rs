//! Repository for `password_resets`: reset links and codes, kept only as keyed digests,
//! single use, with an expiry and a count of wrong second-factor codes typed with them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::password_resets;
use super::{AnyConnection, DbError, from_db_time, to_db_time};

/// A reset link (`email`) or code (`sms`) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    pub id: String,
    pub user_id: String,
    pub campaign_id: Option<String>,
    pub channel: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub failed_tries: i32,
}

impl Reset {
    /// Usable at `now`: not used (nor burnt), not expired.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }
}

#[derive(Queryable)]
struct Row {
    id: String,
    _digest: String,
    user_id: String,
    campaign_id: Option<String>,
    channel: String,
    created_at: chrono::NaiveDateTime,
    expires_at: chrono::NaiveDateTime,
    used_at: Option<chrono::NaiveDateTime>,
    failed_tries: i32,
}

impl From<Row> for Reset {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            user_id: r.user_id,
            campaign_id: r.campaign_id,
            channel: r.channel,
            created_at: from_db_time(r.created_at),
            expires_at: from_db_time(r.expires_at),
            used_at: r.used_at.map(from_db_time),
            failed_tries: r.failed_tries,
        }
    }
}

/// What [`create`] stores.
pub struct NewReset<'a> {
    pub digest: &'a str,
    pub user_id: &'a str,
    pub campaign_id: Option<&'a str>,
    pub channel: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// Stores a reset; returns its id.
pub fn create(conn: &mut AnyConnection, new: &NewReset<'_>, now: DateTime<Utc>) -> Result<String, DbError> {
    let id = crate::crypto::random_token(16);
    diesel::insert_into(password_resets::table)
        .values((
            password_resets::id.eq(&id),
            password_resets::digest.eq(new.digest),
            password_resets::user_id.eq(new.user_id),
            password_resets::campaign_id.eq(new.campaign_id),
            password_resets::channel.eq(new.channel),
            password_resets::created_at.eq(to_db_time(now)),
            password_resets::expires_at.eq(to_db_time(new.expires_at)),
            password_resets::failed_tries.eq(0),
        ))
        .execute(conn)?;
    Ok(id)
}

/// The reset whose secret has `digest`, used or not.
pub fn find_by_digest(conn: &mut AnyConnection, digest: &str) -> Result<Option<Reset>, DbError> {
    let row: Option<Row> =
        password_resets::table.filter(password_resets::digest.eq(digest)).get_result(conn).optional()?;
    Ok(row.map(Reset::from))
}

pub fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<Reset>, DbError> {
    let row: Option<Row> = password_resets::table.find(id).get_result(conn).optional()?;
    Ok(row.map(Reset::from))
}

/// Counts a wrong code typed with reset `id`; at `max` wrong codes the reset is burnt (marked
/// used). Returns the wrong codes so far.
pub fn count_failure(
    conn: &mut AnyConnection,
    id: &str,
    max: i32,
    now: DateTime<Utc>,
) -> Result<i32, DbError> {
    diesel::update(password_resets::table.find(id))
        .set(password_resets::failed_tries.eq(password_resets::failed_tries + 1))
        .execute(conn)?;
    let tries: i32 =
        password_resets::table.find(id).select(password_resets::failed_tries).get_result(conn)?;
    if tries >= max {
        diesel::update(password_resets::table.find(id).filter(password_resets::used_at.is_null()))
            .set(password_resets::used_at.eq(to_db_time(now)))
            .execute(conn)?;
    }
    Ok(tries)
}

/// Uses reset `id` up, if it is still live at `now`: of two parallel uses exactly one gets
/// true. Every other open reset of the same account is used up with it (one new password ends
/// every link that was out).
pub fn consume(conn: &mut AnyConnection, id: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
    let at = to_db_time(now);
    let Some(r) = find(conn, id)? else { return Ok(false) };
    let n = diesel::update(
        password_resets::table
            .find(id)
            .filter(password_resets::used_at.is_null())
            .filter(password_resets::expires_at.gt(at)),
    )
    .set(password_resets::used_at.eq(at))
    .execute(conn)?;
    if n == 0 {
        return Ok(false);
    }
    end_all_of(conn, &r.user_id, now)?;
    Ok(true)
}

/// Uses up every open reset of account `user_id` (its password changed another way).
pub fn end_all_of(conn: &mut AnyConnection, user_id: &str, now: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(diesel::update(
        password_resets::table
            .filter(password_resets::user_id.eq(user_id))
            .filter(password_resets::used_at.is_null()),
    )
    .set(password_resets::used_at.eq(to_db_time(now)))
    .execute(conn)?)
}

/// Forgets the account's text-message codes (a new one replaces them; a code's digest is
/// unique only per account).
pub fn drop_codes_of(conn: &mut AnyConnection, user_id: &str) -> Result<usize, DbError> {
    Ok(diesel::delete(
        password_resets::table
            .filter(password_resets::user_id.eq(user_id))
            .filter(password_resets::channel.eq("sms")),
    )
    .execute(conn)?)
}
