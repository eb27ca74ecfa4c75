//! Repository for `server_meta`: named facts about the deployment (key fingerprints, the
//! bootstrap marker).

use diesel::prelude::*;

use super::schema::server_meta;
use super::{AnyConnection, DbError};

/// The value stored under `name`, if any.
pub fn get(conn: &mut AnyConnection, name: &str) -> Result<Option<String>, DbError> {
    Ok(server_meta::table.find(name).select(server_meta::value).first(conn).optional()?)
}

/// Stores `value` under `name` unless something is stored there already, and returns what is
/// stored afterwards (the existing value when there was one). Call inside a write transaction.
pub fn get_or_insert(conn: &mut AnyConnection, name: &str, value: &str) -> Result<String, DbError> {
    if let Some(existing) = get(conn, name)? {
        return Ok(existing);
    }
    diesel::insert_into(server_meta::table)
        .values((server_meta::name.eq(name), server_meta::value.eq(value)))
        .execute(conn)?;
    Ok(value.to_owned())
}

/// `server_meta` entry holding the revocation epoch.
pub const REVOCATION_EPOCH: &str = "revocation_epoch";

/// Moves the revocation epoch on. Call in the same transaction as any change that must reach
/// every instance's caches (a client suspended, a secret rotated, a user disabled): instances
/// poll the epoch and drop cached state when it moves.
pub fn bump_revocation_epoch(conn: &mut AnyConnection) -> Result<i64, DbError> {
    let next = revocation_epoch(conn)? + 1;
    let n = diesel::update(server_meta::table.find(REVOCATION_EPOCH))
        .set(server_meta::value.eq(next.to_string()))
        .execute(conn)?;
    if n == 0 {
        diesel::insert_into(server_meta::table)
            .values((server_meta::name.eq(REVOCATION_EPOCH), server_meta::value.eq(next.to_string())))
            .execute(conn)?;
    }
    Ok(next)
}

/// The current revocation epoch (0 before the first change).
pub fn revocation_epoch(conn: &mut AnyConnection) -> Result<i64, DbError> {
    match get(conn, REVOCATION_EPOCH)? {
        Some(v) => v.parse().map_err(|_| DbError::Corrupt(format!("server_meta {REVOCATION_EPOCH} = '{v}'"))),
        None => Ok(0),
    }
}
