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
