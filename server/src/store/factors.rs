//! Repository for second factors: authenticator apps (`totp_factors`) and recovery codes
//! (`recovery_codes`). Secrets arrive already sealed and codes already digested; this module
//! never sees a usable secret.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{recovery_codes, totp_factors};
use super::{AnyConnection, DbError, from_db_time, to_db_time};
use crate::domain::UserId;

/// A stored authenticator app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpFactor {
    /// Sealed under the key-encryption key, bound to the user id.
    pub sealed_secret: String,
    /// The newest time step accepted (replay guard).
    pub last_step: i64,
    pub enrolled_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The account's authenticator app, if one is enrolled.
pub fn totp(conn: &mut AnyConnection, user: &UserId) -> Result<Option<TotpFactor>, DbError> {
    let row: Option<(String, i64, chrono::NaiveDateTime, Option<chrono::NaiveDateTime>)> =
        totp_factors::table
            .find(user.as_str())
            .select((
                totp_factors::secret,
                totp_factors::last_step,
                totp_factors::enrolled_at,
                totp_factors::last_used_at,
            ))
            .get_result(conn)
            .optional()?;
    Ok(row.map(|(sealed_secret, last_step, enrolled_at, last_used_at)| TotpFactor {
        sealed_secret,
        last_step,
        enrolled_at: from_db_time(enrolled_at),
        last_used_at: last_used_at.map(from_db_time),
    }))
}

/// Enrolls an authenticator app for `user`, replacing any earlier one, and replaces the
/// recovery codes with `code_digests` — one transaction, so an enrollment never leaves the
/// old codes valid beside the new app. `first_step` is the step of the code that proved the
/// enrollment (it cannot be used again).
pub fn enroll_totp(
    conn: &mut AnyConnection,
    user: &UserId,
    sealed_secret: &str,
    first_step: i64,
    code_digests: &[String],
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let t = to_db_time(now);
    super::write_transaction(conn, |c| {
        diesel::delete(totp_factors::table.find(user.as_str())).execute(c)?;
        insert_totp(c, user, sealed_secret, first_step, t)?;
        replace_recovery_codes(c, user, code_digests, now)
    })
}

fn insert_totp(
    c: &mut AnyConnection,
    user: &UserId,
    sealed_secret: &str,
    first_step: i64,
    t: chrono::NaiveDateTime,
) -> Result<(), DbError> {
    diesel::insert_into(totp_factors::table)
        .values((
            totp_factors::user_id.eq(user.as_str()),
            totp_factors::secret.eq(sealed_secret),
            totp_factors::last_step.eq(first_step),
            totp_factors::enrolled_at.eq(t),
            totp_factors::last_used_at.eq(t),
        ))
        .execute(c)?;
    Ok(())
}

/// [`enroll_totp`] for an account that has no app: `false`, changing nothing, when it has one
/// (set up meanwhile). The first statement inserts or fails on the primary key, so of two
/// parallel enrollments exactly one wins.
pub fn enroll_first_totp(
    conn: &mut AnyConnection,
    user: &UserId,
    sealed_secret: &str,
    first_step: i64,
    code_digests: &[String],
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let t = to_db_time(now);
    let inserted = super::write_transaction(conn, |c| {
        if totp(c, user)?.is_some() {
            return Ok(false);
        }
        insert_totp(c, user, sealed_secret, first_step, t)?;
        replace_recovery_codes(c, user, code_digests, now)?;
        Ok(true)
    });
    match inserted {
        // A parallel enrollment inserted first.
        Err(DbError::Conflict(_)) => Ok(false),
        other => other,
    }
}

/// Accepts time step `step` for `user` if it is newer than the last one accepted, and
/// returns whether it was. One conditional statement: of two parallel uses of one code,
/// exactly one is accepted.
pub fn accept_totp_step(
    conn: &mut AnyConnection,
    user: &UserId,
    step: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = diesel::update(totp_factors::table.find(user.as_str()).filter(totp_factors::last_step.lt(step)))
        .set((totp_factors::last_step.eq(step), totp_factors::last_used_at.eq(to_db_time(now))))
        .execute(conn)?;
    Ok(n == 1)
}

/// Replaces every recovery code of `user` with `digests` (within the caller's transaction,
/// or on its own).
pub fn replace_recovery_codes(
    conn: &mut AnyConnection,
    user: &UserId,
    digests: &[String],
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let t = to_db_time(now);
    super::write_transaction(conn, |c| {
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user.as_str()))).execute(c)?;
        // Row by row: diesel's batch insert does not compile through the backend enum, and
        // there are ten.
        for d in digests {
            diesel::insert_into(recovery_codes::table)
                .values((
                    recovery_codes::user_id.eq(user.as_str()),
                    recovery_codes::digest.eq(d.as_str()),
                    recovery_codes::created_at.eq(t),
                ))
                .execute(c)?;
        }
        Ok(())
    })
}

/// Spends the recovery code with `digest` if it is `user`'s and unused: `Some(remaining)`
/// unused codes after it, or `None` when it was no such code. One conditional statement, so a
/// code is spent once however many try it at the same moment.
pub fn spend_recovery_code(
    conn: &mut AnyConnection,
    user: &UserId,
    digest: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, DbError> {
    let n = diesel::update(
        recovery_codes::table.find((user.as_str(), digest)).filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(to_db_time(now)))
    .execute(conn)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(unused_recovery_codes(conn, user)?))
}

/// How many recovery codes `user` has left.
pub fn unused_recovery_codes(conn: &mut AnyConnection, user: &UserId) -> Result<i64, DbError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user.as_str()))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)?)
}

/// Removes every second factor of `user` (helpdesk reset): the app and the recovery codes.
/// Returns whether there was anything to remove.
pub fn reset(conn: &mut AnyConnection, user: &UserId) -> Result<bool, DbError> {
    super::write_transaction(conn, |c| {
        let apps = diesel::delete(totp_factors::table.find(user.as_str())).execute(c)?;
        let codes = diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user.as_str())))
            .execute(c)?;
        Ok(apps + codes > 0)
    })
}
