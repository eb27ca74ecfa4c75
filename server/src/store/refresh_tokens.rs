//! Repository for refresh tokens (`refresh_tokens`). Only keyed digests are stored; a family
//! is every token descended from one authorization code.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::refresh_tokens as rt;
use super::{AnyConnection, DbError, from_db_time, to_db_time};
use crate::domain::{ClientId, UserId};

/// One refresh token as stored (without its digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub family_id: String,
    pub client_id: ClientId,
    pub user_id: UserId,
    /// The browser session the login made; the token dies with it.
    pub sid: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    pub acr: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The access token issued together with this refresh token.
    pub access_jti: String,
    pub access_exp: DateTime<Utc>,
}

#[derive(Queryable)]
struct Row {
    _digest: String,
    family_id: String,
    client_id: String,
    user_id: String,
    sid: String,
    scope: String,
    nonce: Option<String>,
    auth_time: NaiveDateTime,
    amr: String,
    acr: String,
    issued_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
    access_jti: String,
    access_exp: NaiveDateTime,
}

impl From<Row> for RefreshRecord {
    fn from(r: Row) -> Self {
        Self {
            family_id: r.family_id,
            client_id: ClientId::from_string(r.client_id),
            user_id: UserId::from_string(r.user_id),
            sid: r.sid,
            scope: r.scope,
            nonce: r.nonce,
            auth_time: from_db_time(r.auth_time),
            amr: r.amr.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            acr: r.acr,
            issued_at: from_db_time(r.issued_at),
            expires_at: from_db_time(r.expires_at),
            used_at: r.used_at.map(from_db_time),
            revoked_at: r.revoked_at.map(from_db_time),
            access_jti: r.access_jti,
            access_exp: from_db_time(r.access_exp),
        }
    }
}

/// Stores a new refresh token under `digest`.
pub fn insert(conn: &mut AnyConnection, digest: &str, r: &RefreshRecord) -> Result<(), DbError> {
    diesel::insert_into(rt::table)
        .values((
            rt::digest.eq(digest),
            rt::family_id.eq(&r.family_id),
            rt::client_id.eq(r.client_id.as_str()),
            rt::user_id.eq(r.user_id.as_str()),
            rt::sid.eq(&r.sid),
            rt::scope.eq(&r.scope),
            rt::nonce.eq(r.nonce.as_deref()),
            rt::auth_time.eq(to_db_time(r.auth_time)),
            rt::amr.eq(r.amr.join(" ")),
            rt::acr.eq(&r.acr),
            rt::issued_at.eq(to_db_time(r.issued_at)),
            rt::expires_at.eq(to_db_time(r.expires_at)),
            rt::used_at.eq(r.used_at.map(to_db_time)),
            rt::revoked_at.eq(r.revoked_at.map(to_db_time)),
            rt::access_jti.eq(&r.access_jti),
            rt::access_exp.eq(to_db_time(r.access_exp)),
        ))
        .execute(conn)?;
    Ok(())
}

/// The token stored under `digest`, used, revoked or expired alike.
pub fn find(conn: &mut AnyConnection, digest: &str) -> Result<Option<RefreshRecord>, DbError> {
    let row: Option<Row> = rt::table.find(digest).get_result(conn).optional()?;
    Ok(row.map(Into::into))
}

/// Marks the token used, if it is neither used nor revoked. Returns `true` when this call
/// marked it: of two concurrent presentations of one token exactly one wins, and the loser
/// is a reuse.
pub fn mark_used(conn: &mut AnyConnection, digest: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
    let n =
        diesel::update(rt::table.find(digest).filter(rt::used_at.is_null()).filter(rt::revoked_at.is_null()))
            .set(rt::used_at.eq(to_db_time(now)))
            .execute(conn)?;
    Ok(n == 1)
}

/// An access token to revoke: its jti and expiry.
pub type AccessRef = (String, DateTime<Utc>);

/// Revokes every token of `family_id` not revoked yet, in one statement, and returns the
/// still-unexpired access tokens issued with any of them (revoked before or not), so the
/// caller revokes those too — and a retry after a partial failure lists them again.
pub fn revoke_family(
    conn: &mut AnyConnection,
    family_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<AccessRef>, DbError> {
    let t = to_db_time(now);
    super::write_transaction(conn, |c| {
        let live: Vec<(String, NaiveDateTime)> = rt::table
            .filter(rt::family_id.eq(family_id))
            .filter(rt::access_exp.gt(t))
            .select((rt::access_jti, rt::access_exp))
            .load(c)?;
        diesel::update(rt::table.filter(rt::family_id.eq(family_id)).filter(rt::revoked_at.is_null()))
            .set(rt::revoked_at.eq(t))
            .execute(c)?;
        Ok(live.into_iter().map(|(j, e)| (j, from_db_time(e))).collect())
    })
}

/// Revokes every family with a token of the browser session `sid` (logout), as
/// [`revoke_family`].
pub fn revoke_session(
    conn: &mut AnyConnection,
    sid: &str,
    now: DateTime<Utc>,
) -> Result<Vec<AccessRef>, DbError> {
    super::write_transaction(conn, |c| {
        let families: Vec<String> =
            rt::table.filter(rt::sid.eq(sid)).select(rt::family_id).distinct().load(c)?;
        let mut access = Vec::new();
        for f in families {
            access.extend(revoke_family(c, &f, now)?);
        }
        Ok(access)
    })
}

/// Undoes a rotation whose tokens could not be handed out: the presented token is usable
/// again (if this rotation used it at `used_at`) and the successor is gone.
pub fn undo_rotation(
    conn: &mut AnyConnection,
    presented: &str,
    successor: &str,
    used_at: DateTime<Utc>,
) -> Result<(), DbError> {
    super::write_transaction(conn, |c| {
        diesel::update(rt::table.find(presented).filter(rt::used_at.eq(to_db_time(used_at))))
            .set(rt::used_at.eq(None::<NaiveDateTime>))
            .execute(c)?;
        diesel::delete(rt::table.find(successor)).execute(c)?;
        Ok(())
    })
}
