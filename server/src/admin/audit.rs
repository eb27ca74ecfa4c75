//! `/admin/api/v1/audit-events`: the hash-chained audit trail, filtered by actor, action,
//! target, outcome and time, in chain order, one page at a time. The trail is not divided by
//! organisation unit, so reading it is `audit.read` on the whole tree (the root unit).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::caller::authenticate;
use super::error::ApiError;
use super::{SCOPE_AUDIT, allow};
use crate::domain::AuditRecord;
use crate::oidc::Issuer;
use crate::policy::actions::ReadAudit;
use crate::policy::{Capability, Target};
use crate::state::AppState;
use crate::store::audit_events::{self, AuditFilter};
use crate::store::org_units;

/// One event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEventView {
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub client_ip: Option<String>,
    /// What the event recorded (identifiers and counts; never a secret).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Hex HMAC-SHA256 chaining this event to the one before (`pramaan audit verify`).
    pub digest: String,
}

impl AuditEventView {
    fn of(r: AuditRecord) -> Self {
        let details = r.details_json().unwrap_or(serde_json::Value::String(r.details.clone()));
        Self {
            seq: r.seq,
            occurred_at: r.occurred_at,
            actor: r.actor,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
            client_ip: r.client_ip,
            details,
            digest: r.digest,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Exactly this actor, such as `user:asha` or `cli:root`.
    pub actor: Option<String>,
    /// Exactly this action, such as `user.disable`.
    pub action: Option<String>,
    /// Exactly this target, such as `user:<id>` or `client:<id>`.
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    /// Events at or after this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Events before this instant (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    pub cursor: Option<String>,
    /// 1 to 500; default 100.
    pub limit: Option<i64>,
}

fn exact(name: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v {
        Some(s) if s.is_empty() || s.len() > 200 || s.chars().any(char::is_control) => {
            Err(ApiError::Invalid(format!("{name} is 1 to 200 characters, without control characters.")))
        }
        other => Ok(other),
    }
}

/// Audit events in chain order.
#[utoipa::path(get, path = "/audit-events", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "A page of events.", body = AuditPage)),
    security(("bearer" = ["admin.audit"])))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_AUDIT).await?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Invalid("limit must be between 1 and 500.".into()));
    }
    let after_seq = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::Invalid("The cursor is not one this API returned.".into()))?,
        ),
    };
    if let Some(o) = q.outcome.as_deref()
        && crate::domain::Outcome::parse(o).is_err()
    {
        return Err(ApiError::Invalid("outcome must be success, failure or denied.".into()));
    }
    // The trail covers every tree: reading it needs audit.read on each root.
    let roots = state.core.db.run(org_units::roots).await.map_err(|e| ApiError::unexpected(&e))?;
    if roots.is_empty() {
        let _cap: Capability<ReadAudit> = allow(&state, &caller, Target::Org(&[])).await?;
    }
    for root in roots {
        let _cap: Capability<ReadAudit> =
            allow(&state, &caller, Target::Org(std::slice::from_ref(&root))).await?;
    }
    let filter = AuditFilter {
        after_seq,
        since: q.since,
        until: q.until,
        actor: exact("actor", q.actor)?,
        action: exact("action", q.action)?,
        target: exact("target", q.target)?,
        outcome: q.outcome,
    };
    let rows = state
        .core
        .db
        .run(move |c| audit_events::page(c, &filter, limit + 1))
        .await
        .map_err(|e| ApiError::unexpected(&e))?;
    let more = rows.len() as i64 > limit;
    let items: Vec<AuditEventView> =
        rows.into_iter().take(usize::try_from(limit).unwrap_or(0)).map(AuditEventView::of).collect();
    let next_cursor = if more { items.last().map(|e| e.seq.to_string()) } else { None };
    Ok(HttpResponse::Ok().json(AuditPage { items, next_cursor }))
}
