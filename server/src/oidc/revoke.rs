//! Token revocation (RFC 7009) for access tokens: the token's jti goes into the session store
//! until the token would have expired, and introspection reads it on every call.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};

use super::Issuer;
use super::error::{OAuthError, OAuthErrorCode};
use super::introspect::{revoked_key, verified_claims};
use super::token;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/revoke", web::post().to(revoke));
}

#[tracing::instrument(skip_all, fields(client_id = tracing::field::Empty))]
async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, OAuthError> {
    let (form, client) = token::authenticated_form(&req, payload, &state, &issuer).await?;
    let token = form.require("token", "token is required.")?;
    // §2.2: an invalid or unknown token is not an error; nor, so as to reveal nothing, is a
    // token issued to another client — it is simply left alone.
    if let Some(claims) = verified_claims(&state, &issuer, token)
        && claims.client_id == client.id.as_str()
    {
        let now = state.core.clock.now().timestamp();
        if claims.exp > now {
            let ttl = Duration::from_secs(u64::try_from(claims.exp - now).unwrap_or(0) + 60);
            state.sessions.put(&revoked_key(&claims.jti), b"1", ttl).await.map_err(|e| {
                tracing::error!(error = ?e, "could not store a revocation");
                OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "Try again shortly.")
            })?;
            // This instance sees it at once; others within their "not revoked" reuse window.
            state.verified.mark_revoked(&claims.jti, claims.exp);
            tracing::info!(jti = %claims.jti, "access token revoked");
        }
    }
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).finish())
}
