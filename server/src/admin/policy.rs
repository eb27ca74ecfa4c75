//! `/admin/api/v1/policy`: the role policy set in force, checking a candidate set, and loading
//! one (for every instance; see `policy::reload`). Loading needs a step-up and may not leave
//! the caller unable to load the next set (lockout through policy).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::caller::{Caller, authenticate};
use super::error::ApiError;
use super::{SCOPE_POLICY, allow};
use crate::oidc::Issuer;
use crate::policy::actions::{ManagePolicy, ReadPolicy};
use crate::policy::reload::{check_candidate, store};
use crate::policy::{Act, Capability, Origin, Policies, PolicyEngine, PolicyError, Target};
use crate::state::AppState;

/// The set in force.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicySetView {
    pub version: String,
    pub policies: usize,
    pub origin: Origin,
    /// File name → text (the schema and the `.cedar` files).
    pub files: BTreeMap<String, String>,
}

/// The role policy set in force.
#[utoipa::path(get, path = "/policy", tag = "policy",
    responses((status = 200, description = "The set in force.", body = PolicySetView)),
    security(("bearer" = ["admin.policy"])))]
pub async fn current(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_POLICY).await?;
    let _cap: Capability<ReadPolicy> = allow(&state, &caller, Target::Policies).await?;
    let set = state.core.policy.current();
    Ok(HttpResponse::Ok().json(PolicySetView {
        version: set.version.clone(),
        policies: set.policies.len(),
        origin: set.origin.clone(),
        files: set.policies.sources().clone(),
    }))
}

/// A candidate set.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// File name → text: `schema.cedarschema` and `*.cedar` files.
    pub files: BTreeMap<String, String>,
    /// Why it is loaded (required to load; ignored by validate).
    pub reason: Option<String>,
}

/// A candidate that checks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checked {
    pub valid: bool,
    pub version: String,
    pub policies: usize,
}

/// Checks `files`, and that under them `caller` could still load the next set.
fn checked(caller: &Caller, files: BTreeMap<String, String>) -> Result<Policies, ApiError> {
    let p = check_candidate(files).map_err(ApiError::InvalidPolicy)?;
    let trial = PolicyEngine::new(p.clone(), Origin::BuiltIn);
    if !trial.admin(Act::PolicyManage, &caller.person, &caller.login, Target::Policies).allowed {
        return Err(ApiError::InvalidPolicy(vec![PolicyError {
            file: "policies".into(),
            line: 0,
            reason: "under this set you could no longer load policy sets (policy.manage): refused so that \
                     the set can still be changed through the API (the CLI's `policy reload` always can)"
                .into(),
        }]));
    }
    Ok(p)
}

/// Checks a candidate set without loading it.
#[utoipa::path(post, path = "/policy/validate", tag = "policy", request_body = Candidate,
    responses((status = 200, description = "The set checks.", body = Checked)),
    security(("bearer" = ["admin.policy"])))]
pub async fn validate(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    body: web::Json<Candidate>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_POLICY).await?;
    let _cap: Capability<ReadPolicy> = allow(&state, &caller, Target::Policies).await?;
    let p = checked(&caller, body.into_inner().files)?;
    Ok(HttpResponse::Ok().json(Checked { valid: true, version: p.version(), policies: p.len() }))
}

/// A loaded set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Loaded {
    pub seq: i64,
    pub version: String,
    pub policies: usize,
}

/// Loads a set for every instance.
#[utoipa::path(post, path = "/policy/reload", tag = "policy", request_body = Candidate,
    responses((status = 200, description = "The set, loaded.", body = Loaded)),
    security(("bearer" = ["admin.policy"])))]
pub async fn reload(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    body: web::Json<Candidate>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_POLICY).await?;
    let cap: Capability<ManagePolicy> = allow(&state, &caller, Target::Policies).await?;
    let Candidate { files, reason } = body.into_inner();
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty() && r.chars().count() <= 500 && !r.chars().any(char::is_control));
    let Some(reason) = reason else {
        return Err(ApiError::Invalid("Say why in reason (at most 500 characters, on one line).".into()));
    };
    let p = checked(&caller, files)?;
    let (version, policies) = (p.version(), p.len());
    let reason = format!("{reason} ({})", cap.verdict().reason());
    let seq = store(&state.core, p, &caller.actor(), &reason).await.map_err(|e| match e {
        crate::store::DbError::Conflict(_) => ApiError::Conflict(
            "Another policy set was loaded at the same moment; check it and try again.".into(),
        ),
        other => ApiError::unexpected(&other),
    })?;
    Ok(HttpResponse::Ok().json(Loaded { seq, version, policies }))
}
