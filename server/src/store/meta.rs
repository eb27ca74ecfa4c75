//! Repository for `server_meta`: named facts about the deployment (key fingerprints, the
//! bootstrap marker).

use diesel::prelude::*;

use super::schema::server_meta;
use super::{AnyConnection, DbError};

/// The value stored under `name`, if any.
pub fn get(conn: &mut AnyConnection, name: &str) -> Result<Option<String>, DbError> {
    Ok(server_meta::table.find(name).select(server_meta::value).get_result(conn).optional()?)
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
///
/// One atomic `UPDATE … SET value = value + 1`: a read-then-write would let two concurrent
/// changes both write the same number, and an instance that polled between them would keep
/// the second change's stale state forever. (Both dialects accept the upsert and the casts.)
pub fn bump_revocation_epoch(conn: &mut AnyConnection) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO server_meta (name, value) VALUES ('revocation_epoch', '0') ON CONFLICT (name) DO NOTHING",
    )
    .execute(conn)?;
    diesel::sql_query(
        "UPDATE server_meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE name = 'revocation_epoch'",
    )
    .execute(conn)?;
    Ok(())
}

/// The current revocation epoch (0 before the first change).
pub fn revocation_epoch(conn: &mut AnyConnection) -> Result<i64, DbError> {
    match get(conn, REVOCATION_EPOCH)? {
        Some(v) => v.parse().map_err(|_| DbError::Corrupt(format!("server_meta {REVOCATION_EPOCH} = '{v}'"))),
        None => Ok(0),
    }
}
