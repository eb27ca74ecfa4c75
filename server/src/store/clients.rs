//! Repository for OAuth clients (`clients`).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::clients;
use super::{AnyConnection, DbError, from_db_time, initial_cut_off, to_db_time};
use crate::domain::{
    AuthMethod, Client, ClientCategory, ClientId, ClientRegistration, ClientStatus, ClientType, GrantType,
    RedirectUri, Scope,
};

#[derive(Queryable)]
struct ClientRow {
    id: String,
    name: String,
    category: String,
    status: String,
    tokens_valid_after: NaiveDateTime,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    client_type: String,
    token_endpoint_auth_method: String,
    secret_digest: Option<String>,
    secret_rotated_at: Option<NaiveDateTime>,
    grant_types: String,
    scopes: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    jwks: Option<String>,
    access_token_ttl_secs: i32,
    refresh_token_ttl_secs: i32,
    first_party: bool,
    can_introspect: bool,
}

fn corrupt(id: &str, what: &str, e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(format!("stored client {id} has an invalid {what}: {e}"))
}

fn uris(id: &str, what: &str, json: &str) -> Result<Vec<RedirectUri>, DbError> {
    serde_json::from_str(json).map_err(|e| corrupt(id, what, e))
}

impl ClientRow {
    fn into_domain(self) -> Result<(Client, Option<String>), DbError> {
        let id = self.id.as_str();
        let grant_types = self
            .grant_types
            .split(' ')
            .filter(|g| !g.is_empty())
            .map(GrantType::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(id, "grant type", e))?;
        let registration = ClientRegistration {
            category: ClientCategory::parse(&self.category).map_err(|e| corrupt(id, "category", e))?,
            client_type: ClientType::parse(&self.client_type).map_err(|e| corrupt(id, "type", e))?,
            token_endpoint_auth_method: AuthMethod::parse(&self.token_endpoint_auth_method)
                .map_err(|e| corrupt(id, "auth method", e))?,
            grant_types,
            scopes: Scope::parse_list(&self.scopes).map_err(|e| corrupt(id, "scope", e))?,
            redirect_uris: uris(id, "redirect URI", &self.redirect_uris)?,
            post_logout_redirect_uris: uris(id, "post-logout redirect URI", &self.post_logout_redirect_uris)?,
            jwks: self
                .jwks
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt(id, "JWK Set", e))?,
            name: self.name,
            access_token_ttl_secs: self.access_token_ttl_secs,
            refresh_token_ttl_secs: self.refresh_token_ttl_secs,
            first_party: self.first_party,
            can_introspect: self.can_introspect,
        };
        let client = Client {
            status: ClientStatus::parse(&self.status).map_err(|e| corrupt(id, "status", e))?,
            id: ClientId::from_string(self.id),
            registration,
            has_secret: self.secret_digest.is_some(),
            secret_rotated_at: self.secret_rotated_at.map(from_db_time),
            tokens_valid_after: from_db_time(self.tokens_valid_after),
            created_at: from_db_time(self.created_at),
            updated_at: from_db_time(self.updated_at),
        };
        Ok((client, self.secret_digest))
    }
}

fn json_list(v: &[RedirectUri]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Registers an active client. `secret_digest` is the keyed digest of the secret the caller
/// generated (never the secret). A taken id is `DbError::Conflict`.
pub fn insert(
    conn: &mut AnyConnection,
    id: &ClientId,
    reg: &ClientRegistration,
    secret_digest: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Client, DbError> {
    let creation = now;
    let now = to_db_time(now);
    let grants: Vec<&str> = reg.grant_types.iter().map(|g| g.as_str()).collect();
    diesel::insert_into(clients::table)
        .values((
            (
                clients::id.eq(id.as_str()),
                clients::name.eq(reg.name.trim()),
                clients::category.eq(reg.category.as_str()),
                clients::status.eq(ClientStatus::Active.as_str()),
                clients::tokens_valid_after.eq(initial_cut_off(creation)),
                clients::created_at.eq(now),
                clients::updated_at.eq(now),
                clients::client_type.eq(reg.client_type.as_str()),
                clients::token_endpoint_auth_method.eq(reg.token_endpoint_auth_method.as_str()),
                clients::secret_digest.eq(secret_digest),
            ),
            (
                clients::secret_rotated_at.eq(secret_digest.map(|_| now)),
                clients::grant_types.eq(grants.join(" ")),
                clients::scopes.eq(Scope::join(&reg.scopes)),
                clients::redirect_uris.eq(json_list(&reg.redirect_uris)),
                clients::post_logout_redirect_uris.eq(json_list(&reg.post_logout_redirect_uris)),
                clients::jwks.eq(reg.jwks.as_ref().map(ToString::to_string)),
                clients::access_token_ttl_secs.eq(reg.access_token_ttl_secs),
                clients::refresh_token_ttl_secs.eq(reg.refresh_token_ttl_secs),
                clients::first_party.eq(reg.first_party),
                clients::can_introspect.eq(reg.can_introspect),
            ),
        ))
        .execute(conn)?;
    find(conn, id)?.ok_or(DbError::NotFound)
}

/// The client with this id, if any.
pub fn find(conn: &mut AnyConnection, id: &ClientId) -> Result<Option<Client>, DbError> {
    Ok(find_with_secret(conn, id)?.map(|(c, _)| c))
}

/// The client and its secret digest (for client authentication): the only function that
/// lets the digest out.
pub fn find_with_secret(
    conn: &mut AnyConnection,
    id: &ClientId,
) -> Result<Option<(Client, Option<String>)>, DbError> {
    if !id.is_storable() {
        return Ok(None);
    }
    clients::table
        .find(id.as_str())
        .get_result::<ClientRow>(conn)
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
    rows.into_iter().map(|r| r.into_domain().map(|(c, _)| c)).collect()
}

/// Suspends or resumes a client. Both move `tokens_valid_after` to `now`: suspending kills
/// every token issued before; resuming also kills any minted while the suspension was still
/// spreading to other instances (or by a request in flight), so a resume revives nothing.
/// `NotFound` for an unknown id.
pub fn set_status(
    conn: &mut AnyConnection,
    id: &ClientId,
    status: ClientStatus,
    now: DateTime<Utc>,
) -> Result<Client, DbError> {
    let now = to_db_time(now);
    let n = diesel::update(clients::table.find(id.as_str()))
        .set((
            clients::status.eq(status.as_str()),
            clients::tokens_valid_after.eq(now),
            clients::updated_at.eq(now),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    find(conn, id)?.ok_or(DbError::NotFound)
}

/// Suspends or resumes the clients `ids` in set-based statements (a thousand ids each), all
/// cut off at `now` as [`set_status`] does. Returns how many rows changed.
pub fn set_status_many(
    conn: &mut AnyConnection,
    ids: &[ClientId],
    status: ClientStatus,
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    let now = to_db_time(now);
    let mut changed = 0;
    for chunk in ids.chunks(1000) {
        let keys: Vec<&str> = chunk.iter().map(ClientId::as_str).collect();
        // Only clients not already so: resuming an active client must not cut its tokens off.
        changed += diesel::update(
            clients::table.filter(clients::id.eq_any(keys)).filter(clients::status.ne(status.as_str())),
        )
        .set((
            clients::status.eq(status.as_str()),
            clients::tokens_valid_after.eq(now),
            clients::updated_at.eq(now),
        ))
        .execute(conn)?;
    }
    Ok(changed)
}

/// Replaces the secret's digest: the old secret stops working at once. `NotFound` for an
/// unknown id.
pub fn set_secret_digest(
    conn: &mut AnyConnection,
    id: &ClientId,
    digest: &str,
    now: DateTime<Utc>,
) -> Result<Client, DbError> {
    let now = to_db_time(now);
    let n = diesel::update(clients::table.find(id.as_str()))
        .set((
            clients::secret_digest.eq(digest),
            clients::secret_rotated_at.eq(now),
            clients::updated_at.eq(now),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    find(conn, id)?.ok_or(DbError::NotFound)
}

/// Deletes a client. Returns `NotFound` for an unknown id. Tokens it holds fail their next
/// check because the client no longer exists.
pub fn delete(conn: &mut AnyConnection, id: &ClientId) -> Result<(), DbError> {
    match diesel::delete(clients::table.find(id.as_str())).execute(conn)? {
        0 => Err(DbError::NotFound),
        _ => Ok(()),
    }
}
