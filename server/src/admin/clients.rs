//! `/admin/api/v1/clients`: the registered OAuth clients — list, read, suspend, resume, and a
//! new secret. Each asks the role policies (`client.read`, `client.manage`) about the client.
//! Suspending every client of a category at once is the kill switch's own route.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::caller::{Caller, authenticate};
use super::error::ApiError;
use super::{SCOPE_CLIENTS, allow};
use crate::domain::{Client, ClientCategory, ClientId, ClientStatus};
use crate::oidc::client_changes::ClientSelector;
use crate::oidc::{Issuer, client_changes};
use crate::policy::actions::{ManageClient, ReadClient, SuspendClients};
use crate::policy::{AdminAction, Capability, ClientFacts, Target};
use crate::state::AppState;
use crate::store::{DbError, clients};

/// A client as the admin API shows it (never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    /// `government`, `private` or `internal`.
    pub category: String,
    /// `active` or `suspended`.
    pub status: String,
    /// `confidential` or `public`.
    pub client_type: String,
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub first_party: bool,
    pub can_introspect: bool,
    pub access_token_ttl_secs: i32,
    pub has_secret: bool,
    pub secret_rotated_at: Option<DateTime<Utc>>,
    /// Tokens issued before this instant are dead (set by each suspension and resumption).
    pub tokens_valid_after: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl ClientView {
    fn of(c: &Client) -> Self {
        let r = &c.registration;
        Self {
            client_id: c.id.to_string(),
            name: r.name.clone(),
            category: r.category.as_str().to_owned(),
            status: c.status.as_str().to_owned(),
            client_type: r.client_type.as_str().to_owned(),
            token_endpoint_auth_method: r.token_endpoint_auth_method.as_str().to_owned(),
            grant_types: r.grant_types.iter().map(|g| g.as_str().to_owned()).collect(),
            scopes: r.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            redirect_uris: r.redirect_uris.iter().map(|u| u.as_str().to_owned()).collect(),
            first_party: r.first_party,
            can_introspect: r.can_introspect,
            access_token_ttl_secs: r.access_token_ttl_secs,
            has_secret: c.has_secret,
            secret_rotated_at: c.secret_rotated_at,
            tokens_valid_after: c.tokens_valid_after,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientList {
    pub items: Vec<ClientView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClientQuery {
    /// Only clients of this category: `government`, `private` or `internal`.
    pub category: Option<String>,
    /// Only `active` or `suspended` clients.
    pub status: Option<String>,
}

async fn find(state: &AppState, id: &str) -> Result<Client, ApiError> {
    let not_found = || ApiError::NotFound("No such client.".into());
    let ok = (3..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(not_found());
    }
    let cid = ClientId::from_string(id.to_owned());
    state
        .core
        .db
        .run(move |c| clients::find(c, &cid))
        .await
        .map_err(|e| ApiError::unexpected(&e))?
        .ok_or_else(not_found)
}

/// The caller, the client `id` and the capability to do `A` to it.
async fn on_client<A: AdminAction>(
    state: &AppState,
    issuer: &Issuer,
    req: &HttpRequest,
    id: &str,
) -> Result<(Caller, Client, Capability<A>), ApiError> {
    let caller = authenticate(state, issuer, req, SCOPE_CLIENTS).await?;
    let client = find(state, id).await?;
    let cap = allow(state, &caller, Target::Client(ClientFacts::of(&client))).await?;
    Ok((caller, client, cap))
}

/// The clients the caller may read, by id.
#[utoipa::path(get, path = "/clients", tag = "clients", params(ClientQuery),
    responses((status = 200, description = "The clients.", body = ClientList)),
    security(("bearer" = ["admin.clients"])))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    query: web::Query<ClientQuery>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_CLIENTS).await?;
    let q = query.into_inner();
    let category = q
        .category
        .as_deref()
        .map(ClientCategory::parse)
        .transpose()
        .map_err(|_| ApiError::Invalid("category must be government, private or internal.".into()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            ClientStatus::parse(s)
                .map_err(|_| ApiError::Invalid("status must be active or suspended.".into()))?,
        ),
    };
    let all =
        state.core.db.run(move |c| clients::list(c, category)).await.map_err(|e| ApiError::unexpected(&e))?;
    let mut items = Vec::new();
    let mut refused = None;
    for c in all.iter().filter(|c| status.is_none_or(|s| c.status == s)) {
        match state.core.policy.authorize::<ReadClient>(
            &caller.person,
            &caller.login,
            Target::Client(ClientFacts::of(c)),
        ) {
            Ok(_) => items.push(ClientView::of(c)),
            Err(d) => refused = refused.or(Some(d)),
        }
    }
    // Nothing readable while something exists: the caller may read no client at all.
    if items.is_empty()
        && let Some(denied) = refused
    {
        super::audit_denial(&state, &caller, &denied).await;
        return Err(denied.into());
    }
    Ok(HttpResponse::Ok().json(ClientList { items }))
}

/// One client.
#[utoipa::path(get, path = "/clients/{id}", tag = "clients", params(("id" = String, Path, description = "The client_id.")),
    responses((status = 200, description = "The client.", body = ClientView)),
    security(("bearer" = ["admin.clients"])))]
pub async fn read(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, client, _cap) = on_client::<ReadClient>(&state, &issuer, &req, &id).await?;
    Ok(HttpResponse::Ok().json(ClientView::of(&client)))
}

/// Why a client is suspended or resumed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientReason {
    pub reason: String,
}

fn reason(body: web::Json<ClientReason>) -> Result<String, ApiError> {
    let r = body.into_inner().reason.trim().to_owned();
    if r.is_empty() || r.chars().count() > 500 || r.chars().any(char::is_control) {
        return Err(ApiError::Invalid("Say why in reason (at most 500 characters, on one line).".into()));
    }
    Ok(r)
}

/// This instance takes the change at once (others within a second, through the epoch).
async fn refresh(state: &AppState) {
    if let Err(e) = state.clients.poll().await {
        tracing::warn!(error = ?e, "could not refresh the client cache after a change");
    }
}

fn changed(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::NotFound("No such client.".into()),
        DbError::Conflict(m) => ApiError::Conflict(m),
        other => ApiError::unexpected(&other),
    }
}

async fn set_status(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
    body: web::Json<ClientReason>,
    status: ClientStatus,
) -> Result<HttpResponse, ApiError> {
    let (caller, client, cap) = on_client::<ManageClient>(&state, &issuer, &req, &id).await?;
    let why = reason(body)?;
    if status == ClientStatus::Suspended && client.id == caller.client {
        return Err(ApiError::Conflict(
            "This is the client your own token comes from: suspending it would cut you off. Use another \
             internal client, or the CLI."
                .into(),
        ));
    }
    let decided = json!({ "decision": cap.verdict().reason(), "policy_version": cap.verdict().version });
    let client = client_changes::set_status(&state.core, &caller.actor(), &client.id, status, &why, decided)
        .await
        .map_err(changed)?;
    refresh(&state).await;
    Ok(HttpResponse::Ok().json(ClientView::of(&client)))
}

/// Suspends the client: its tokens, issued before now, die on every instance within a second.
#[utoipa::path(post, path = "/clients/{id}/suspend", tag = "clients", params(("id" = String, Path, description = "The client_id.")),
    request_body = ClientReason,
    responses((status = 200, description = "The client, suspended.", body = ClientView)),
    security(("bearer" = ["admin.clients"])))]
pub async fn suspend(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
    body: web::Json<ClientReason>,
) -> Result<HttpResponse, ApiError> {
    set_status(req, state, issuer, id, body, ClientStatus::Suspended).await
}

/// Resumes the client (tokens from before stay dead).
#[utoipa::path(post, path = "/clients/{id}/resume", tag = "clients", params(("id" = String, Path, description = "The client_id.")),
    request_body = ClientReason,
    responses((status = 200, description = "The client, active.", body = ClientView)),
    security(("bearer" = ["admin.clients"])))]
pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
    body: web::Json<ClientReason>,
) -> Result<HttpResponse, ApiError> {
    set_status(req, state, issuer, id, body, ClientStatus::Active).await
}

/// A new secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewSecret {
    pub client: ClientView,
    pub client_secret: String,
}

/// Issues a new secret; the old one stops working at once.
#[utoipa::path(post, path = "/clients/{id}/secret", tag = "clients", params(("id" = String, Path, description = "The client_id.")),
    responses((status = 200, description = "The new secret, shown only now.", body = NewSecret)),
    security(("bearer" = ["admin.clients"])))]
pub async fn rotate_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (caller, client, cap) = on_client::<ManageClient>(&state, &issuer, &req, &id).await?;
    let decided = json!({ "decision": cap.verdict().reason(), "policy_version": cap.verdict().version });
    let (client, secret) = client_changes::rotate_secret(&state.core, &caller.actor(), &client.id, decided)
        .await
        .map_err(changed)?;
    refresh(&state).await;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(NewSecret { client: ClientView::of(&client), client_secret: secret }))
}

/// Which clients, and why: exactly one of `all`, `category`, `ids`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// Every client but the `internal` ones (the console, the registry's introspection client).
    #[serde(default)]
    pub all: bool,
    /// `government`, `private` or `internal`.
    pub category: Option<String>,
    /// These clients, whatever their category.
    pub ids: Option<Vec<String>>,
    /// Why (1 to 500 characters); kept in the audit trail.
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    /// How many clients changed.
    pub count: usize,
    /// The selector, as understood.
    #[schema(value_type = Object)]
    pub selector: serde_json::Value,
    /// Their ids.
    pub clients: Vec<String>,
}

fn selector(b: &BulkBody) -> Result<ClientSelector, ApiError> {
    let given = usize::from(b.all) + usize::from(b.category.is_some()) + usize::from(b.ids.is_some());
    if given != 1 {
        return Err(ApiError::Invalid("Name the clients with exactly one of all, category, ids.".into()));
    }
    if let Some(c) = &b.category {
        let cat = ClientCategory::parse(c).map_err(|e| ApiError::Invalid(format!("category: {e}.")))?;
        return Ok(ClientSelector::Category(cat));
    }
    if let Some(ids) = &b.ids {
        if ids.is_empty() || ids.len() > 10_000 || ids.iter().any(|i| i.is_empty() || i.len() > 128) {
            return Err(ApiError::Invalid("ids: 1 to 10,000 client ids.".into()));
        }
        return Ok(ClientSelector::Ids(ids.iter().map(|i| ClientId::from_string(i.clone())).collect()));
    }
    Ok(ClientSelector::All)
}

async fn set_status_many(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    body: web::Json<BulkBody>,
    status: ClientStatus,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_CLIENTS).await?;
    let b = body.into_inner();
    let why = b.reason.trim().to_owned();
    if why.is_empty() || why.chars().count() > 500 || why.chars().any(char::is_control) {
        return Err(ApiError::Invalid("Say why in reason (at most 500 characters, on one line).".into()));
    }
    let sel = selector(&b)?;
    // Asked first for the kill switch itself (a client standing for the selection, of its
    // category or, for all or a list, the widest: government), before anything is looked up;
    // then for each client it takes: one refusal refuses all.
    let category = match &sel {
        ClientSelector::Category(c) => *c,
        _ => ClientCategory::Government,
    };
    let whole = ClientFacts { id: "*", category, first_party: false };
    let cap: Capability<SuspendClients> = allow(&state, &caller, Target::Client(whole)).await?;
    let chosen = client_changes::select(&state.core, &sel, status).await.map_err(|e| match e {
        DbError::NotFound => ApiError::NotFound("ids names a client that does not exist.".into()),
        other => changed(other),
    })?;
    for c in &chosen {
        let _each: Capability<SuspendClients> =
            allow(&state, &caller, Target::Client(ClientFacts::of(c))).await?;
    }
    if status == ClientStatus::Suspended && chosen.iter().any(|c| c.id == caller.client) {
        return Err(ApiError::Conflict(
            "The selection takes the client your own token comes from: suspending it would cut you off. \
             Leave it out, or use the CLI."
                .into(),
        ));
    }
    let decided = json!({ "decision": cap.verdict().reason(), "policy_version": cap.verdict().version });
    client_changes::set_status_many(&state.core, &caller.actor(), &sel, &chosen, status, &why, decided)
        .await
        .map_err(changed)?;
    refresh(&state).await;
    Ok(HttpResponse::Ok().json(BulkResult {
        count: chosen.len(),
        selector: sel.describe(),
        clients: chosen.iter().map(|c| c.id.to_string()).collect(),
    }))
}

/// The kill switch: suspends every client (but the internal ones), a category, or a list, at
/// once. Their tokens die on every instance within a second; new requests get
/// `invalid_client`. National administrators with a recent sign-in only (`client.suspend_bulk`).
#[utoipa::path(post, path = "/clients/suspensions", tag = "clients", request_body = BulkBody,
    responses((status = 200, description = "The clients suspended.", body = BulkResult)),
    security(("bearer" = ["admin.clients"])))]
pub async fn suspend_many(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    body: web::Json<BulkBody>,
) -> Result<HttpResponse, ApiError> {
    set_status_many(req, state, issuer, body, ClientStatus::Suspended).await
}

/// Resumes clients the same way (tokens from before the suspension stay dead).
#[utoipa::path(post, path = "/clients/resumptions", tag = "clients", request_body = BulkBody,
    responses((status = 200, description = "The clients resumed.", body = BulkResult)),
    security(("bearer" = ["admin.clients"])))]
pub async fn resume_many(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    body: web::Json<BulkBody>,
) -> Result<HttpResponse, ApiError> {
    set_status_many(req, state, issuer, body, ClientStatus::Active).await
}
