//! Repository for OAuth clients (`clients`). The OIDC issue grows it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::clients;
use super::{AnyConnection, DbError, from_db_time, to_db_time};
use crate::domain::{Client, ClientCategory, ClientId, ClientStatus};

#[derive(Queryable)]
struct ClientRow {
    id: String,
    name: String,
    category: String,
    status: String,
    tokens_valid_after: chrono::NaiveDateTime,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

impl ClientRow {
    fn into_domain(self) -> Result<Client, DbError> {
        Ok(Client {
            category: ClientCategory::parse(&self.category).map_err(|e| DbError::Corrupt(e.0))?,
            status: ClientStatus::parse(&self.status).map_err(|e| DbError::Corrupt(e.0))?,
            id: ClientId::from_string(self.id),
            name: self.name,
            tokens_valid_after: from_db_time(self.tokens_valid_after),
            created_at: from_db_time(self.created_at),
            updated_at: from_db_time(self.updated_at),
        })
    }
}

/// Creates an active client. A taken id is `DbError::Conflict`.
pub fn insert(
    conn: &mut AnyConnection,
    id: &ClientId,
    name: &str,
    category: ClientCategory,
    now: DateTime<Utc>,
) -> Result<Client, DbError> {
    let now = to_db_time(now);
    diesel::insert_into(clients::table)
        .values((
            clients::id.eq(id.as_str()),
            clients::name.eq(name),
            clients::category.eq(category.as_str()),
            clients::status.eq(ClientStatus::Active.as_str()),
            clients::tokens_valid_after.eq(now),
            clients::created_at.eq(now),
            clients::updated_at.eq(now),
        ))
        .execute(conn)?;
    find(conn, id)?.ok_or(DbError::NotFound)
}

/// The client with this id, if any.
pub fn find(conn: &mut AnyConnection, id: &ClientId) -> Result<Option<Client>, DbError> {
    clients::table
        .find(id.as_str())
        .first::<ClientRow>(conn)
        .optional()?
        .map(ClientRow::into_domain)
        .transpose()
}

/// Clients ordered by id, optionally of one category.
pub fn list(conn: &mut AnyConnection, category: Option<ClientCategory>) -> Result<Vec<Client>, DbError> {
    let mut q = clients::table.into_boxed();
    if let Some(c) = category {
        q = q.filter(clients::category.eq(c.as_str()));
    }
    let rows: Vec<ClientRow> = q.order(clients::id.asc()).load(conn)?;
    rows.into_iter().map(ClientRow::into_domain).collect()
}

/// Suspends or resumes a client. Suspending moves `tokens_valid_after` to `now` so every
/// token issued before dies and stays dead after a resume. `NotFound` for an unknown id.
pub fn set_status(
    conn: &mut AnyConnection,
    id: &ClientId,
    status: ClientStatus,
    now: DateTime<Utc>,
) -> Result<Client, DbError> {
    let now = to_db_time(now);
    let n = match status {
        ClientStatus::Suspended => diesel::update(clients::table.find(id.as_str()))
            .set((
                clients::status.eq(status.as_str()),
                clients::tokens_valid_after.eq(now),
                clients::updated_at.eq(now),
            ))
            .execute(conn)?,
        ClientStatus::Active => diesel::update(clients::table.find(id.as_str()))
            .set((clients::status.eq(status.as_str()), clients::updated_at.eq(now)))
            .execute(conn)?,
    };
    if n == 0 {
        return Err(DbError::NotFound);
    }
    find(conn, id)?.ok_or(DbError::NotFound)
}
