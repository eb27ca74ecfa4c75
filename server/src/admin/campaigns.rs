//! `/admin/api/v1/password-reset-campaigns`: launch a forced password reset over an audience
//! (or try one with `dry_run`), watch its progress, cancel it.
//!
//! Launching and cancelling are `campaign.launch` on the audience's unit (on every root when
//! the audience is not one subtree), which the shipped policies give national admins and, for
//! their state, state admins, with a recent sign-in (step-up). Reading a campaign's progress is
//! `user.list` on the same units: whoever may list those accounts may watch.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::caller::{Caller, authenticate};
use super::error::ApiError;
use super::{SCOPE_CAMPAIGNS, allow};
use crate::campaigns::{self, AudienceError, AudienceSpec, CancelError, LaunchRequest, Launched, Progress};
use crate::domain::OrgUnit;
use crate::oidc::Issuer;
use crate::policy::actions::{LaunchCampaign, ListUsers};
use crate::policy::{AdminAction, Capability, Target, Verdict};
use crate::state::AppState;
use crate::store::campaigns::CampaignKind;
use crate::store::org_units;

/// Who to target: every active account matching all the parts given.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceBody {
    /// Every active account (nothing else may be given with it).
    #[serde(default)]
    pub all: bool,
    /// An org-unit subtree, such as `in/ka`.
    pub org: Option<String>,
    /// Holders of any of these roles (granted directly).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Accounts whose password is older than this many days.
    pub older_than_days: Option<u32>,
    /// These usernames.
    #[serde(default)]
    pub usernames: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchBody {
    pub audience: AudienceBody,
    /// Why; kept with the campaign and in the audit trail (1 to 500 characters).
    pub reason: String,
    /// `breach` (the default) or `onboarding` (accounts without a password only).
    pub kind: Option<CampaignKind>,
    /// Count and show a sample; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DryRunView {
    pub dry_run: bool,
    pub targeted: i64,
    /// Some of the usernames it would target.
    pub sample: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why (1 to 500 characters).
    pub reason: String,
}

fn reason(text: &str) -> Result<String, ApiError> {
    let r = text.trim();
    if r.is_empty() || r.chars().count() > 500 || r.chars().any(char::is_control) {
        return Err(ApiError::Invalid("reason: 1 to 500 characters, on one line.".into()));
    }
    Ok(r.to_owned())
}

/// Asks for `A` on the audience's unit, or on every root when it is not one subtree; the
/// verdicts for the audit trail.
async fn allow_on<A: AdminAction>(
    state: &AppState,
    caller: &Caller,
    chain: Option<&[OrgUnit]>,
) -> Result<Vec<Verdict>, ApiError> {
    let mut verdicts = Vec::new();
    match chain {
        Some(c) => {
            let cap: Capability<A> = allow(state, caller, Target::Org(c)).await?;
            verdicts.push(cap.verdict().clone());
        }
        None => {
            let roots = state.core.db.run(org_units::roots).await.map_err(|e| ApiError::unexpected(&e))?;
            if roots.is_empty() {
                return Err(ApiError::Conflict("There is no organisation unit yet.".into()));
            }
            for root in roots {
                let cap: Capability<A> =
                    allow(state, caller, Target::Org(std::slice::from_ref(&root))).await?;
                verdicts.push(cap.verdict().clone());
            }
        }
    }
    Ok(verdicts)
}

/// Launches a campaign, or counts one (`dry_run`).
#[utoipa::path(post, path = "/password-reset-campaigns", tag = "campaigns", request_body = LaunchBody,
    responses(
        (status = 201, description = "Launched: every targeted account is flagged and cut off.", body = Progress),
        (status = 200, description = "A dry run: what it would target.", body = DryRunView)),
    security(("bearer" = ["admin.campaigns"])))]
pub async fn launch(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    body: web::Json<LaunchBody>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_CAMPAIGNS).await?;
    let b = body.into_inner();
    let why = reason(&b.reason)?;
    let spec = AudienceSpec {
        all: b.audience.all,
        org: b.audience.org,
        roles: b.audience.roles,
        older_than_days: b.audience.older_than_days,
        usernames: b.audience.usernames,
    };
    let (mut filter, chain) = campaigns::audience(&state.core, spec).await.map_err(|e| match e {
        AudienceError::Invalid(m) => ApiError::Invalid(m),
        AudienceError::NotFound(m) => ApiError::NotFound(m),
        AudienceError::Db(e) => ApiError::unexpected(&e),
    })?;
    let verdicts = allow_on::<LaunchCampaign>(&state, &caller, chain.as_deref()).await?;
    let decision = json!({
        "decisions": verdicts.iter().map(Verdict::reason).collect::<Vec<_>>(),
        "policy_version": verdicts.first().map(|v| v.version.clone()),
    });
    // The administrator launching it keeps their session (they change their own password on
    // the account page): cutting them off mid-incident would stop the response.
    filter.except = Some(caller.user.id.to_string());
    let request = LaunchRequest {
        kind: b.kind.unwrap_or(CampaignKind::Breach),
        audience: filter,
        reason: why,
        dry_run: b.dry_run,
        launched_by: caller.actor(),
        org_unit_id: chain.as_ref().and_then(|c| c.first()).map(|u| u.id.to_string()),
        decision,
    };
    match campaigns::launch(&state.core, request).await.map_err(|e| ApiError::unexpected(&e))? {
        Launched::DryRun { targeted, sample } => {
            Ok(HttpResponse::Ok().json(DryRunView { dry_run: true, targeted, sample }))
        }
        Launched::Launched(c) => {
            let id = c.id.clone();
            let p = state
                .core
                .db
                .run(move |conn| campaigns::progress(conn, &id))
                .await
                .map_err(|e| ApiError::unexpected(&e))?
                .ok_or_else(|| ApiError::NotFound("The campaign vanished.".into()))?;
            Ok(HttpResponse::Created()
                .insert_header(("location", format!("{}/password-reset-campaigns/{}", super::BASE, p.id)))
                .json(p))
        }
    }
}

/// The campaign and the unit chain its audience names (`None`: every root).
async fn campaign_and_chain(
    state: &AppState,
    id: &str,
) -> Result<(Progress, Option<Vec<OrgUnit>>), ApiError> {
    let cid = id.to_owned();
    let found = state
        .core
        .db
        .run(move |c| {
            let Some(p) = campaigns::progress(c, &cid)? else { return Ok(None) };
            let chain = match crate::store::campaigns::find(c, &cid)?.and_then(|x| x.org_unit_id) {
                Some(u) => Some(org_units::chain(c, &crate::domain::OrgUnitId::from_string(u))?),
                None => None,
            };
            Ok::<_, crate::store::DbError>(Some((p, chain)))
        })
        .await
        .map_err(|e| ApiError::unexpected(&e))?;
    found.ok_or_else(|| ApiError::NotFound(format!("No campaign '{id}'.")))
}

/// A campaign's progress.
#[utoipa::path(get, path = "/password-reset-campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id.")),
    responses((status = 200, description = "The campaign and its progress.", body = Progress)),
    security(("bearer" = ["admin.campaigns"])))]
pub async fn read(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_CAMPAIGNS).await?;
    let (p, chain) = campaign_and_chain(&state, &id).await?;
    allow_on::<ListUsers>(&state, &caller, chain.as_deref()).await?;
    Ok(HttpResponse::Ok().json(p))
}

/// Cancels a campaign: no further mail; what it revoked stays revoked.
#[utoipa::path(post, path = "/password-reset-campaigns/{id}/cancel", tag = "campaigns",
    params(("id" = String, Path, description = "The campaign's id.")), request_body = CancelBody,
    responses((status = 200, description = "The campaign, cancelled.", body = Progress)),
    security(("bearer" = ["admin.campaigns"])))]
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
    body: web::Json<CancelBody>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_CAMPAIGNS).await?;
    let why = reason(&body.reason)?;
    let (_, chain) = campaign_and_chain(&state, &id).await?;
    allow_on::<LaunchCampaign>(&state, &caller, chain.as_deref()).await?;
    match campaigns::cancel(&state.core, &id, &caller.actor(), &why).await {
        Ok(p) => Ok(HttpResponse::Ok().json(p)),
        Err(CancelError::NotFound) => Err(ApiError::NotFound(format!("No campaign '{id}'."))),
        Err(e @ CancelError::Ended(_)) => Err(ApiError::Conflict(format!("{e}."))),
        Err(CancelError::Db(e)) => Err(ApiError::unexpected(&e)),
    }
}
