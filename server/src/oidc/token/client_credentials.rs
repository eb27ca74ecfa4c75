//! The client credentials grant (RFC 6749 §4.4): a confidential client gets a token on its own
//! behalf. No refresh token (§4.4.3). Nothing is written to the database per token (its
//! status-list index comes from a block taken once per thousand tokens), so issuance scales
//! with signing alone.

use super::TokenResponse;
use crate::domain::{Client, GrantType, Scope};
use crate::oidc::Issuer;
use crate::oidc::access_token::{self, AccessTokenClaims};
use crate::oidc::error::{OAuthError, OAuthErrorCode};
use crate::oidc::status_list::StatusClaim;
use crate::policy::ClientFacts;
use crate::state::Core;

/// The scope granted: what was requested and is allowed (all allowed scopes when none was
/// requested, §3.3). A request of which nothing is allowed is `invalid_scope`; what is allowed
/// of a wider request is granted, and the response's `scope` says so (§5.1).
pub fn granted_scope(allowed: &[Scope], requested: Option<&str>) -> Result<Vec<Scope>, OAuthError> {
    let Some(requested) = requested else { return Ok(allowed.to_vec()) };
    let requested = Scope::parse_list(requested)
        .map_err(|_| OAuthError::new(OAuthErrorCode::InvalidScope, "The scope is malformed."))?;
    let granted: Vec<Scope> = requested.into_iter().filter(|s| allowed.contains(s)).collect();
    if granted.is_empty() {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            "None of the requested scopes is allowed for this client.",
        ));
    }
    Ok(granted)
}

/// Whether `client` may have a token of the `requested` scope now, and which scope it gets
/// (`None`: none at all). Checked before anything is spent on the token (its index).
pub fn check(core: &Core, client: &Client, requested: Option<&str>) -> Result<Option<String>, OAuthError> {
    if !client.registration.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "This client may not use client_credentials.",
        ));
    }
    // What the client is registered for and the role policies allow it now (`scope.client`).
    let facts = ClientFacts::of(client);
    let allowed: Vec<Scope> =
        client.registration.scopes.iter().filter(|s| core.policy.client_scope(facts, s)).cloned().collect();
    let granted = granted_scope(&allowed, requested)?;
    Ok((!granted.is_empty()).then(|| Scope::join(&granted)))
}

/// Issues the token of the `scope` that [`check`] granted, at `now` (the instant its status
/// index was given at).
pub fn grant(
    core: &Core,
    issuer: &Issuer,
    client: &Client,
    scope: Option<String>,
    status: Option<StatusClaim>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<TokenResponse, OAuthError> {
    // Never past the horizon that retired signing keys stay published for.
    let max = i64::try_from(core.settings.tokens.max_token_lifetime_secs).unwrap_or(i64::MAX);
    let ttl = i64::from(client.registration.access_token_ttl_secs).min(max);
    let claims = AccessTokenClaims::for_client(
        &issuer.issuer,
        &issuer.audience,
        client.id.as_str(),
        scope.clone(),
        now,
        ttl,
        status,
    );
    let access_token = access_token::sign(&core.keyring, &claims)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope,
        refresh_token: None,
        id_token: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &str) -> Vec<Scope> {
        Scope::parse_list(s).unwrap()
    }

    #[test]
    fn the_granted_scope_is_what_was_asked_and_allowed() {
        let allowed = scopes("registry.read registry.write");
        assert_eq!(granted_scope(&allowed, None).unwrap(), allowed);
        assert_eq!(granted_scope(&allowed, Some("registry.read")).unwrap(), scopes("registry.read"));
        assert_eq!(granted_scope(&allowed, Some("registry.read admin")).unwrap(), scopes("registry.read"));
        assert_eq!(granted_scope(&allowed, Some("admin")).unwrap_err().error, OAuthErrorCode::InvalidScope);
        assert_eq!(
            granted_scope(&allowed, Some("bad\"scope")).unwrap_err().error,
            OAuthErrorCode::InvalidScope
        );
    }
}
