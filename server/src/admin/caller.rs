//! Who is calling the admin API: a person's access token issued by Pramaan (RFC 6750
//! `Authorization: Bearer`), active by the same rules as introspection, carrying the admin
//! scope the route needs. The caller's roles and unit are read afresh for every request, so a
//! role taken away stops working at once, whatever the token says.

use actix_web::HttpRequest;
use actix_web::http::header;

use super::error::ApiError;
use crate::domain::{ClientCategory, ClientId, User, UserId};
use crate::oidc::Issuer;
use crate::oidc::introspect::active_claims;
use crate::policy::{LoginFacts, Person};
use crate::state::AppState;
use crate::store::users;

/// An authenticated administrator.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub person: Person,
    pub login: LoginFacts,
    /// The client the token was issued through.
    pub client: ClientId,
}

impl Caller {
    /// `user:<username>`, the audit trail's actor.
    pub fn actor(&self) -> String {
        format!("user:{}", self.user.username)
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let Some(v) = req.headers().get(header::AUTHORIZATION) else { return Err(ApiError::NoToken) };
    let v = v.to_str().map_err(|_| ApiError::BadAuthorization)?;
    match v.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            Ok(t.trim().to_owned())
        }
        _ => Err(ApiError::BadAuthorization),
    }
}

/// The caller, if the request carries an active person's token with `scope`.
pub async fn authenticate(
    state: &AppState,
    issuer: &Issuer,
    req: &HttpRequest,
    scope: &'static str,
) -> Result<Caller, ApiError> {
    let token = bearer(req)?;
    let claims = match active_claims(state, issuer, &token).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(ApiError::InvalidToken),
        Err(e) => return Err(ApiError::unexpected(&e)),
    };
    // A client's own token (client credentials) has no person behind it: no administrator.
    let (Some(_sid), Some(auth_time)) = (&claims.sid, claims.auth_time) else {
        return Err(ApiError::InvalidToken);
    };
    // Issued through one of Pramaan's own (internal) clients: a partner's app never carries an
    // administrator's power, even if it was re-categorised after the token was issued.
    let client = ClientId::from_string(claims.client_id.clone());
    let internal = state
        .clients
        .get(&client)
        .await
        .map_err(|e| ApiError::unexpected(&e))?
        .is_some_and(|e| e.0.registration.category == ClientCategory::Internal);
    if !internal {
        return Err(ApiError::InvalidToken);
    }
    if !claims.scope.as_deref().unwrap_or("").split(' ').any(|s| s == scope) {
        // Audited like a policy refusal: an administrator reaching beyond what their roles
        // gave their token is worth knowing about.
        let uid = UserId::from_string(claims.sub.clone());
        let name = match state.core.db.run(move |c| users::find(c, &uid)).await {
            Ok(Some(u)) => format!("user:{}", u.username),
            _ => format!("user-id:{}", claims.sub),
        };
        let event = crate::domain::AuditEvent::new(name, "admin.denied", crate::domain::Outcome::Denied)
            .target(req.path().to_owned())
            .details(serde_json::json!({
                "reason": "the access token lacks the scope", "scope": scope, "method": req.method().as_str(),
            }));
        if let Err(e) = state.core.audit.append(event).await {
            tracing::error!(error = ?e, "could not audit a refused admin request");
        }
        return Err(ApiError::InsufficientScope(scope));
    }
    let uid = UserId::from_string(claims.sub.clone());
    let (user, person) = state
        .core
        .db
        .run(move |c| {
            let Some(user) = users::find(c, &uid)? else { return Ok(None) };
            let person = crate::policy::load_person(c, &user)?;
            Ok::<_, crate::store::DbError>(Some((user, person)))
        })
        .await
        .map_err(|e| ApiError::unexpected(&e))?
        .ok_or(ApiError::InvalidToken)?;
    let now = state.core.clock.now().timestamp();
    let login =
        LoginFacts { auth_age_secs: (now - auth_time).max(0), amr: claims.amr.clone().unwrap_or_default() };
    Ok(Caller { user, person, login, client })
}
