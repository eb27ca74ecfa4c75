//! Token revocation (RFC 7009). An access token's jti goes on the shared revocation list until
//! the token would have expired; a refresh token revokes its whole family with the access
//! tokens issued alongside it.

use actix_web::{HttpRequest, HttpResponse, web};

use super::Issuer;
use super::error::OAuthError;
use super::introspect::verified_claims;
use super::user_tokens::REFRESH_PURPOSE;
use super::{revocation, token};
use crate::state::AppState;
use crate::store::refresh_tokens;

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
    if token.contains('.') {
        if let Some(claims) = verified_claims(&state, &issuer, token)
            && claims.client_id == client.id.as_str()
        {
            let place = claims
                .status
                .as_ref()
                .and_then(|s| super::status_lists::place_of(&issuer.issuer, client.id.as_str(), s));
            revocation::revoke_jti(&state, &claims.jti, claims.exp, place).await?;
            tracing::info!(jti = %claims.jti, "access token revoked");
        }
    } else {
        // §2.1: revoking a refresh token also revokes the access tokens of the same grant.
        let digest = state.core.keys.digester.digest(REFRESH_PURPOSE, token.as_bytes());
        let found = state.core.db.run(move |c| refresh_tokens::find(c, &digest)).await.map_err(|e| {
            tracing::error!(error = ?e, "refresh token lookup failed");
            OAuthError::server_error()
        })?;
        if let Some(r) = found
            && r.client_id == client.id
        {
            let n = revocation::revoke_family(&state, &r.family_id).await?;
            tracing::info!(family = %r.family_id, access_tokens = n, "refresh token family revoked");
        }
    }
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).finish())
}
