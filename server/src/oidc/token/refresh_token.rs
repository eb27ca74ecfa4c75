//! The refresh_token grant (RFC 6749 §6): the token is bound to its client, rotated on every
//! use, and a rotated token presented again revokes its whole family (RFC 9700 §4.14.2),
//! since either the client or an attacker holds a copy. The scope may only narrow.

use super::TokenResponse;
use crate::domain::{AuditEvent, Client, GrantType, Outcome, Scope};
use crate::oidc::Issuer;
use crate::oidc::error::{OAuthError, OAuthErrorCode};
use crate::oidc::revocation;
use crate::oidc::user_tokens::{self, LoginFacts, Planned, REFRESH_PURPOSE};
use crate::state::AppState;
use crate::store::refresh_tokens;

fn invalid_grant() -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidGrant, "The refresh token is invalid, expired or revoked.")
}

fn internal<E: std::fmt::Debug>(e: E) -> OAuthError {
    tracing::error!(error = ?e, "refresh token store failed");
    OAuthError::server_error()
}

/// §6: the new scope must be within the original; none requested means the original.
pub fn narrowed_scope(original: &str, requested: Option<&str>) -> Result<String, OAuthError> {
    let Some(requested) = requested else { return Ok(original.to_owned()) };
    let bad =
        || OAuthError::new(OAuthErrorCode::InvalidScope, "The scope exceeds what was originally granted.");
    let original = Scope::parse_list(original).map_err(|_| bad())?;
    let requested = Scope::parse_list(requested).map_err(|_| bad())?;
    if requested.is_empty() || !requested.iter().all(|s| original.contains(s)) {
        return Err(bad());
    }
    Ok(Scope::join(&requested))
}

pub async fn grant(
    state: &AppState,
    issuer: &Issuer,
    client: &Client,
    token: &str,
    scope: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    if !client.registration.grant_types.contains(&GrantType::RefreshToken) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "This client may not use refresh_token.",
        ));
    }
    if token.len() > 128 {
        return Err(invalid_grant());
    }
    let digest = state.core.keys.digester.digest(REFRESH_PURPOSE, token.as_bytes());
    let d = digest.clone();
    let Some(record) = state.core.db.run(move |c| refresh_tokens::find(c, &d)).await.map_err(internal)?
    else {
        return Err(invalid_grant());
    };
    // Bound to its client (§6): another client's token is refused and left alone.
    if record.client_id != client.id || record.revoked_at.is_some() {
        return Err(invalid_grant());
    }
    let now = state.core.clock.now();
    if record.used_at.is_some() {
        return Err(reuse(state, client, &record.family_id).await);
    }
    if record.expires_at <= now {
        return Err(invalid_grant());
    }
    // Issued before the client's cut-off (a suspension, even one since resumed): dead for good.
    if record.issued_at < client.tokens_valid_after {
        return Err(invalid_grant());
    }
    let scope = narrowed_scope(&record.scope, scope)?;
    let auth_time_us = record.auth_time.timestamp_micros();
    let user = user_tokens::standing_user(state, &record.user_id, &record.sid, auth_time_us).await?;
    // A login weaker than the account needs now (a role gained a factor requirement, an app was
    // set up) keeps no token coming: the person signs in again, with the factor.
    let have = crate::domain::Acr::parse(&record.acr);
    let needed = match have {
        // A multi-factor login meets any requirement: only a weaker one needs the account read.
        Some(crate::domain::Acr::Mfa) => crate::domain::Acr::Mfa,
        _ => crate::login::factor_state(state, &user).await.map_err(internal)?.level(),
    };
    if have.is_none_or(|have| have < needed) {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidGrant,
            "A sign-in with a second factor is now required for this account.",
        ));
    }
    // The policies as they are now: a role taken away since the login takes its scopes out of
    // the new access token (the refresh token keeps the grant's scope, §6).
    let account = user.clone();
    let person =
        state.core.db.run(move |c| crate::policy::load_person(c, &account)).await.map_err(internal)?;
    let wanted = crate::domain::Scope::parse_list(&scope).map_err(|_| invalid_grant())?;
    let client_facts = crate::policy::ClientFacts::of(client);
    let allowed = state.core.policy.user_scopes(&person, client_facts, &wanted);
    if allowed.is_empty() {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            "None of the granted scopes is allowed for this account any more.",
        ));
    }
    let scope = crate::domain::Scope::join(&allowed);
    let mut planned = Planned::new(state, client);
    planned.family_id = record.family_id.clone();
    let facts = LoginFacts {
        sid: record.sid.clone(),
        scope,
        refresh_scope: record.scope.clone(),
        nonce: record.nonce.clone(),
        auth_time_us,
        amr: record.amr.clone(),
        acr: record.acr.clone(),
    };
    match user_tokens::issue(state, issuer, client, &user, &facts, &planned, "refresh_token", Some(&digest))
        .await?
    {
        Some(tokens) => Ok(tokens),
        None => {
            // Between our read and our write it was revoked (no reuse: just refused) or
            // rotated by another request (a concurrent reuse).
            let d = digest.clone();
            let now_record =
                state.core.db.run(move |c| refresh_tokens::find(c, &d)).await.map_err(internal)?;
            if now_record.is_some_and(|r| r.revoked_at.is_some()) {
                return Err(invalid_grant());
            }
            Err(reuse(state, client, &record.family_id).await)
        }
    }
}

async fn reuse(state: &AppState, client: &Client, family: &str) -> OAuthError {
    if let Err(e) = revocation::revoke_family(state, family).await {
        return e;
    }
    let event = AuditEvent::new(format!("client:{}", client.id), "token.refresh_reused", Outcome::Denied)
        .target(format!("client:{}", client.id))
        .details(serde_json::json!({ "refresh_family": family }));
    if let Err(e) = state.core.audit.append(event).await {
        tracing::error!(error = ?e, "auditing a refresh token reuse failed");
    }
    tracing::warn!(client_id = %client.id, family, "a rotated refresh token was reused; its family is revoked");
    invalid_grant()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
        assert_eq!(narrowed_scope("openid registry.read", None).unwrap(), "openid registry.read");
        assert_eq!(narrowed_scope("openid registry.read", Some("registry.read")).unwrap(), "registry.read");
        assert_eq!(
            narrowed_scope("openid", Some("openid registry.write")).unwrap_err().error,
            OAuthErrorCode::InvalidScope
        );
    }
}
