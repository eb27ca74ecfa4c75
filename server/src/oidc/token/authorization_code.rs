//! The authorization_code grant (RFC 6749 §4.1.3): the code is single use, bound to the
//! client, the exact redirect URI and a PKCE S256 challenge (RFC 7636 §4.6). A replayed code
//! is refused and every token issued from it is revoked.

use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::TokenResponse;
use crate::domain::{AuditEvent, Client, GrantType, Outcome};
use crate::oidc::Issuer;
use crate::oidc::code::{self, Redeemed, UsedCode};
use crate::oidc::error::{OAuthError, OAuthErrorCode};
use crate::oidc::revocation;
use crate::oidc::user_tokens::{self, LoginFacts, Planned};
use crate::state::AppState;

fn invalid_grant(d: &'static str) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidGrant, d)
}

/// RFC 7636 §4.1: 43–128 characters of the unreserved set.
fn verifier_syntax_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) equals the challenge, compared in constant time.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    verifier_syntax_ok(verifier) && crate::crypto::constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

pub async fn grant(
    state: &AppState,
    issuer: &Issuer,
    client: &Client,
    code: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    if !client.registration.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "This client may not use authorization_code.",
        ));
    }
    let planned = Planned::new(state, client);
    let used = UsedCode {
        client_id: client.id.clone(),
        access_jti: planned.access_jti.clone(),
        access_exp: planned.access_exp,
        family_id: Some(planned.family_id.clone()),
    };
    let remember = Duration::from_secs(
        u64::try_from(
            client.registration.refresh_token_ttl_secs.max(client.registration.access_token_ttl_secs),
        )
        .unwrap_or(3600),
    );
    // A code presented by another client is refused without using it up, so the client it
    // was issued to can still redeem it (and no false replay is recorded).
    let peeked = code::peek(state, code).await.map_err(|e| {
        tracing::error!(error = ?e, "code store unavailable");
        OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "Try again shortly.")
    })?;
    if peeked.is_some_and(|g| g.client_id != client.id) {
        return Err(invalid_grant("The authorization code is invalid or has expired."));
    }
    let redeemed = code::redeem(state, code, &used, remember).await.map_err(|e| {
        tracing::error!(error = ?e, "code store unavailable");
        OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "Try again shortly.")
    })?;
    let g = match redeemed {
        Redeemed::Fresh(g) => g,
        Redeemed::Unknown => return Err(invalid_grant("The authorization code is invalid or has expired.")),
        Redeemed::Replayed(issued) => {
            // §4.1.2: a second use means the code leaked; what it issued is revoked.
            // Another client presenting a leaked, used code must not be able to revoke the
            // rightful client's tokens.
            if let Some(u) = issued.filter(|u| u.client_id == client.id) {
                revocation::revoke_jti(state, &u.access_jti, u.access_exp, None).await?;
                if let Some(f) = &u.family_id {
                    revocation::revoke_family(state, f).await?;
                }
            }
            let event =
                AuditEvent::new(format!("client:{}", client.id), "token.code_replayed", Outcome::Denied)
                    .target(format!("client:{}", client.id));
            if let Err(e) = state.core.audit.append(event).await {
                tracing::error!(error = ?e, "auditing a replayed code failed");
            }
            tracing::warn!(client_id = %client.id, "replayed authorization code; its tokens are revoked");
            return Err(invalid_grant("The authorization code is invalid or has expired."));
        }
    };
    // §4.1.3: issued to this client, for this exact redirect URI.
    if g.client_id != client.id {
        return Err(invalid_grant("The authorization code is invalid or has expired."));
    }
    if redirect_uri != Some(g.redirect_uri.as_str()) {
        return Err(invalid_grant("redirect_uri does not match the authorization request."));
    }
    match code_verifier {
        None => return Err(invalid_grant("code_verifier is required (PKCE).")),
        Some(v) if !pkce_s256_matches(v, &g.code_challenge) => {
            return Err(invalid_grant("code_verifier does not match the code challenge."));
        }
        Some(_) => {}
    }
    let user = user_tokens::standing_user(state, &g.user_id, &g.sid, g.auth_time_us).await?;
    let facts = LoginFacts {
        sid: g.sid.clone(),
        scope: g.scope.clone(),
        refresh_scope: g.scope.clone(),
        nonce: g.nonce.clone(),
        auth_time_us: g.auth_time_us,
        amr: g.amr.clone(),
        acr: g.acr.clone(),
    };
    user_tokens::issue(state, issuer, client, &user, &facts, &planned, "authorization_code", None)
        .await?
        .ok_or_else(|| invalid_grant("The authorization code is invalid or has expired."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_follows_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_s256_matches(verifier, challenge));
        assert!(!pkce_s256_matches(challenge, challenge), "plain is not S256");
        assert!(!pkce_s256_matches("short", challenge));
        assert!(!pkce_s256_matches(&format!("{verifier}!"), challenge), "outside the unreserved set");
    }

    /// §4.1's syntax is checked on its own: a verifier outside it is refused even when its
    /// challenge was computed from it (a client must not get away with a short verifier).
    #[test]
    fn a_verifier_outside_rfc_7636_syntax_is_refused_even_with_its_own_challenge() {
        let challenge_of =
            |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()));
        for (verifier, ok) in [
            ("a".repeat(42), false),
            ("a".repeat(43), true),
            ("a".repeat(128), true),
            ("a".repeat(129), false),
            (format!("{}-._~", "a".repeat(40)), true),
            (format!("{}+", "a".repeat(42)), false),
            (format!("{} ", "a".repeat(42)), false),
        ] {
            assert_eq!(pkce_s256_matches(&verifier, &challenge_of(&verifier)), ok, "{verifier:?}");
        }
    }
}
