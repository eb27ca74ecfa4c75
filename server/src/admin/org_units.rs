//! `/admin/api/v1/org-units` and `/admin/api/v1/roles`: the organisation tree (list a subtree,
//! create a unit under one the caller administers) and the roles with what each includes.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::caller::authenticate;
use super::error::ApiError;
use super::{SCOPE_USERS, allow};
use crate::domain::{AuditEvent, OrgPath, OrgUnit, Outcome};
use crate::oidc::Issuer;
use crate::policy::actions::{ListUsers, ManageOrg};
use crate::policy::{Capability, Target};
use crate::state::AppState;
use crate::store::{DbError, org_units, roles, write_transaction};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgUnitView {
    pub id: String,
    pub path: String,
    pub name: String,
    /// `national`, `state`, `district`, `facility`, …
    pub kind: String,
    pub parent_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl OrgUnitView {
    fn of(u: &OrgUnit) -> Self {
        Self {
            id: u.id.to_string(),
            path: u.path.to_string(),
            name: u.name.clone(),
            kind: u.kind.clone(),
            parent_id: u.parent_id.as_ref().map(ToString::to_string),
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgUnitList {
    pub items: Vec<OrgUnitView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// The subtree to list (a path); default: the caller's unit.
    pub under: Option<String>,
}

/// The unit at `path` and its chain to the root; 404 when there is none.
async fn chain_of(state: &AppState, path: &OrgPath) -> Result<Vec<OrgUnit>, ApiError> {
    let chain = super::unit_chain(state, path).await?;
    if chain.is_empty() {
        return Err(ApiError::NotFound(format!("No organisation unit '{path}'.")));
    }
    Ok(chain)
}

/// The units of a subtree, by path.
#[utoipa::path(get, path = "/org-units", tag = "org-units", params(OrgQuery),
    responses((status = 200, description = "The units.", body = OrgUnitList)),
    security(("bearer" = ["admin.users"])))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    query: web::Query<OrgQuery>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_USERS).await?;
    let chain = match query.into_inner().under {
        Some(p) => {
            chain_of(&state, &OrgPath::parse(&p).map_err(|e| ApiError::Invalid(format!("under: {e}.")))?)
                .await?
        }
        None => caller.person.org.clone(),
    };
    if chain.is_empty() {
        return Err(ApiError::Invalid("Name the subtree with under=<path>.".into()));
    }
    let _cap: Capability<ListUsers> = allow(&state, &caller, Target::Org(&chain)).await?;
    let under = chain.first().map(|u| u.path.clone());
    let units = state
        .core
        .db
        .run(move |c| org_units::list(c, under.as_ref()))
        .await
        .map_err(|e| ApiError::unexpected(&e))?;
    Ok(HttpResponse::Ok().json(OrgUnitList { items: units.iter().map(OrgUnitView::of).collect() }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrgUnit {
    /// The new unit's path; its parent must exist, such as `in/ka/blr/phc-9`.
    pub path: String,
    pub name: String,
    /// `state`, `district`, `facility`, …
    pub kind: String,
}

/// Creates a unit under one the caller administers.
#[utoipa::path(post, path = "/org-units", tag = "org-units", request_body = NewOrgUnit,
    responses((status = 201, description = "The unit.", body = OrgUnitView)),
    security(("bearer" = ["admin.users"])))]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    body: web::Json<NewOrgUnit>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_USERS).await?;
    let n = body.into_inner();
    let path = OrgPath::parse(&n.path).map_err(|e| ApiError::Invalid(format!("path: {e}.")))?;
    let name = n.name.trim().to_owned();
    let kind = n.kind.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::Invalid("name: 1 to 200 characters on one line.".into()));
    }
    if kind.is_empty() || kind.len() > 32 || !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(ApiError::Invalid("kind: 1 to 32 lowercase letters or '_'.".into()));
    }
    let Some(parent) = path.parent() else {
        return Err(ApiError::Invalid("path: a root unit is created with `pramaan org create`.".into()));
    };
    let chain = chain_of(&state, &parent).await?;
    let cap: Capability<ManageOrg> = allow(&state, &caller, Target::Org(&chain)).await?;
    let now = state.core.clock.now();
    let audit = state.core.audit.clone();
    let event = AuditEvent::new(caller.actor(), "org.create", Outcome::Success)
        .target(format!("org:{path}"))
        .details(json!({ "kind": kind, "decision": cap.verdict().reason(), "policy_version": cap.verdict().version }));
    let unit = state
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                let unit = org_units::create(c, &path, &name, &kind, now)?;
                audit.append_with(c, vec![event])?;
                Ok(unit)
            })
        })
        .await
        .map_err(|e| match e {
            DbError::Conflict(m) => ApiError::Conflict(m),
            other => ApiError::unexpected(&other),
        })?;
    Ok(HttpResponse::Created().json(OrgUnitView::of(&unit)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleView {
    pub name: String,
    pub description: String,
    /// The roles it includes, directly or not (`policies/roles.json`).
    pub includes: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleList {
    pub items: Vec<RoleView>,
}

/// Every role, with what it includes.
#[utoipa::path(get, path = "/roles", tag = "org-units",
    responses((status = 200, description = "The roles.", body = RoleList)),
    security(("bearer" = ["admin.users"])))]
pub async fn list_roles(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_USERS).await?;
    // Anyone who may list the accounts of their own unit may read the roles.
    let own = caller.person.org.clone();
    let _cap: Capability<ListUsers> = allow(&state, &caller, Target::Org(&own)).await?;
    let all = state.core.db.run(roles::list).await.map_err(|e| ApiError::unexpected(&e))?;
    let set = state.core.policy.current();
    let items = all
        .into_iter()
        .map(|(name, description)| RoleView {
            includes: set
                .policies
                .role_hierarchy()
                .get(name.as_str())
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            name: name.as_str().to_owned(),
            description,
        })
        .collect();
    Ok(HttpResponse::Ok().json(RoleList { items }))
}
