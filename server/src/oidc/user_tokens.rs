//! The tokens a person's login yields for a client: an access token (RFC 9068) with
//! `auth_time`, `acr`, `amr` and `sid`; an ID token (OIDC Core §2) when `openid` was granted;
//! and a refresh token when the client may use that grant. Shared by the authorization_code
//! and refresh_token grants. Each issuance is one audit event.

use chrono::{DateTime, Utc};
use openidconnect::core::{CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm};
use openidconnect::{
    AccessToken, AdditionalClaims, Audience, AuthenticationContextClass, AuthenticationMethodReference,
    IdToken, IdTokenClaims, IssuerUrl, Nonce, StandardClaims, SubjectIdentifier,
};
use serde::{Deserialize, Serialize};

use super::Issuer;
use super::access_token::{self, AccessTokenClaims};
use super::error::OAuthError;
use super::token::TokenResponse;
use crate::crypto::SigningAlg;
use crate::domain::{AuditEvent, Client, GrantType, Outcome, User};
use crate::state::AppState;
use crate::store::refresh_tokens::{self, RefreshRecord};

/// The `sid` claim (OIDC Front-/Back-Channel Logout), beside the standard ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub sid: String,
}
impl AdditionalClaims for SessionClaims {}

pub type PramaanIdToken =
    IdToken<SessionClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// Purpose label of refresh-token digests.
pub const REFRESH_PURPOSE: &str = "refresh-token";

/// What the login established, carried from the code or the refresh token.
#[derive(Debug, Clone)]
pub struct LoginFacts {
    pub sid: String,
    /// The scope of the tokens issued now.
    pub scope: String,
    /// The scope a new refresh token carries (the grant's, §6).
    pub refresh_scope: String,
    pub nonce: Option<String>,
    pub auth_time_us: i64,
    pub amr: Vec<String>,
    pub acr: String,
}

/// Identifiers chosen before issuing, so a code's "used" record can name them in advance.
#[derive(Debug, Clone)]
pub struct Planned {
    pub access_jti: String,
    pub access_exp: i64,
    pub family_id: String,
}

impl Planned {
    pub fn new(state: &AppState, client: &Client) -> Self {
        Self {
            access_jti: crate::crypto::random_token(16),
            access_exp: state.core.clock.now().timestamp() + access_ttl(state, client),
            family_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

fn access_ttl(state: &AppState, client: &Client) -> i64 {
    let max = i64::try_from(state.core.settings.tokens.max_token_lifetime_secs).unwrap_or(i64::MAX);
    i64::from(client.registration.access_token_ttl_secs).min(max)
}

fn oidc_alg(alg: SigningAlg) -> CoreJwsSigningAlgorithm {
    match alg {
        SigningAlg::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        SigningAlg::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        SigningAlg::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
    }
}

fn internal<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> OAuthError {
    move |e| {
        tracing::error!(error = ?e, "{what}");
        OAuthError::server_error()
    }
}

/// Issues the token set; `grant` names the grant for the audit trail. With `rotate_from`
/// (the digest of a presented refresh token), that token is used up in the same transaction
/// that stores its successor; `Ok(None)` means it had been used already (a reuse).
#[allow(clippy::too_many_arguments)]
pub async fn issue(
    state: &AppState,
    issuer: &Issuer,
    client: &Client,
    user: &User,
    facts: &LoginFacts,
    planned: &Planned,
    grant: &'static str,
    rotate_from: Option<&str>,
) -> Result<Option<TokenResponse>, OAuthError> {
    // Issued at the instant its status index was given at (see `StatusLists::assign`).
    let (status, place, now) =
        state.status_lists.assign(&state.core, &issuer.issuer, client).await.map_err(|e| {
            tracing::error!(error = ?e, "no status-list index");
            OAuthError::new(super::error::OAuthErrorCode::TemporarilyUnavailable, "Try again shortly.")
        })?;
    let ttl = access_ttl(state, client);
    let scope = (!facts.scope.is_empty()).then(|| facts.scope.clone());
    let auth_time = facts.auth_time_us.div_euclid(1_000_000);
    let claims = AccessTokenClaims {
        iss: issuer.issuer.clone(),
        sub: user.id.to_string(),
        aud: issuer.audience.clone(),
        exp: planned.access_exp,
        iat: now.timestamp(),
        jti: planned.access_jti.clone(),
        client_id: client.id.to_string(),
        scope: scope.clone(),
        auth_time: Some(auth_time),
        acr: Some(facts.acr.clone()),
        amr: Some(facts.amr.clone()),
        sid: Some(facts.sid.clone()),
        status: Some(status),
    };
    let access = access_token::sign(&state.core.keyring, &claims)?;
    let id_token = if facts.scope.split(' ').any(|s| s == "openid") {
        Some(id_token(state, issuer, client, user, facts, &access, now, ttl)?)
    } else {
        None
    };
    // Everything that can fail without side effects is done; now, in one transaction, the
    // presented refresh token is used up, its successor stored and the issuance audited —
    // all or nothing, so a failure never burns a token the client must then "reuse".
    let refresh = client.registration.grant_types.contains(&GrantType::RefreshToken).then(|| {
        let token = crate::crypto::random_token(32);
        let digest = state.core.keys.digester.digest(REFRESH_PURPOSE, token.as_bytes());
        let rttl = i64::from(client.registration.refresh_token_ttl_secs);
        let record = RefreshRecord {
            family_id: planned.family_id.clone(),
            client_id: client.id.clone(),
            user_id: user.id.clone(),
            sid: facts.sid.clone(),
            // RFC 6749 §6: the new refresh token keeps the presented one's scope, even when
            // this request narrowed the access token's.
            scope: facts.refresh_scope.clone(),
            nonce: facts.nonce.clone(),
            auth_time: DateTime::<Utc>::from_timestamp_micros(facts.auth_time_us).unwrap_or(now),
            amr: facts.amr.clone(),
            acr: facts.acr.clone(),
            issued_at: now,
            expires_at: now + chrono::Duration::seconds(rttl),
            used_at: None,
            revoked_at: None,
            access_jti: planned.access_jti.clone(),
            access_exp: DateTime::<Utc>::from_timestamp(planned.access_exp, 0).unwrap_or(now),
        };
        (token, digest, record)
    });
    let event = AuditEvent::new(format!("user:{}", user.username), "token.issue", Outcome::Success)
        .target(format!("client:{}", client.id))
        .details(serde_json::json!({
            "grant": grant,
            "scope": facts.scope,
            "sid": facts.sid,
            "jti": planned.access_jti,
            "refresh_family": refresh.as_ref().map(|_| planned.family_id.as_str()),
        }));
    let audit = state.core.audit.clone();
    let row = refresh.as_ref().map(|(_, d, r)| (d.clone(), r.clone()));
    let rotate = rotate_from.map(str::to_owned);
    // The list follows the account: recorded with the login time its cut-off is compared to.
    let login_at = DateTime::<Utc>::from_timestamp_micros(facts.auth_time_us).unwrap_or(now);
    let access_exp = DateTime::<Utc>::from_timestamp(planned.access_exp, 0).unwrap_or(now);
    let session_ends = login_at
        + chrono::Duration::seconds(
            i64::try_from(state.core.settings.login.session_ttl_secs)
                .unwrap_or(i64::MAX / 4)
                .min(10 * 365 * 86_400),
        );
    let (jti, uid, sid) = (planned.access_jti.clone(), user.id.to_string(), facts.sid.clone());
    let stored = state
        .core
        .db
        .run(move |c| {
            crate::store::write_transaction(c, |c| {
                if let Some(d) = &rotate
                    && !refresh_tokens::mark_used(c, d, now)?
                {
                    return Ok(false);
                }
                if let Some((digest, record)) = &row {
                    refresh_tokens::insert(c, digest, record)?;
                }
                crate::store::status_lists::record_user_token(
                    c,
                    &crate::store::status_lists::UserToken {
                        at: &place,
                        jti: &jti,
                        user_id: &uid,
                        auth_time: login_at,
                        sid: &sid,
                        session_ends,
                        expires_at: access_exp,
                    },
                )?;
                audit.append_with(c, vec![event])?;
                Ok(true)
            })
        })
        .await
        .map_err(internal("storing an issuance failed"))?;
    if !stored {
        return Ok(None);
    }
    // A login ended while this was being issued: its logout marked the login's tokens before
    // this one was recorded, so this one is marked here, and not handed out.
    match crate::login::session::sid_record(state, &facts.sid).await {
        Ok(Some(r)) if r.user_id == user.id => {}
        Ok(_) => {
            let s = facts.sid.clone();
            let changed = state
                .core
                .db
                .run(move |c| crate::store::status_lists::revoke_sid(c, &s))
                .await
                .map_err(internal("marking an ended login's tokens failed"))?;
            state.status_lists.changed(&changed);
            return Err(OAuthError::new(
                super::error::OAuthErrorCode::InvalidGrant,
                "The sign-in behind this grant has ended.",
            ));
        }
        Err(e) => {
            tracing::error!(error = ?e, "session store unavailable");
            return Err(OAuthError::new(
                super::error::OAuthErrorCode::TemporarilyUnavailable,
                "Try again shortly.",
            ));
        }
    }
    // A family revoked while this was being issued (a replayed code, a reused refresh token):
    // the revoker marks the family before revoking its rows, so either it saw our row or we
    // see its mark.
    if let Some((_, successor, _)) = &refresh {
        match super::revocation::family_revoked(state, &planned.family_id).await {
            Ok(false) => {}
            Ok(true) => {
                super::revocation::revoke_family(state, &planned.family_id).await?;
                return Err(OAuthError::new(
                    super::error::OAuthErrorCode::InvalidGrant,
                    "The authorization grant was revoked.",
                ));
            }
            Err(e) => {
                // Unable to tell: hand nothing out, and put things back so the client's retry
                // is not taken for a reuse.
                if let Some(presented) = rotate_from {
                    let (p, n) = (presented.to_owned(), successor.clone());
                    let undone =
                        state.core.db.run(move |c| refresh_tokens::undo_rotation(c, &p, &n, now)).await;
                    if let Err(u) = undone {
                        tracing::error!(error = ?u, "could not undo a rotation");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(Some(TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: planned.access_exp - now.timestamp(),
        scope,
        refresh_token: refresh.map(|(t, _, _)| t),
        id_token,
    }))
}

#[allow(clippy::too_many_arguments)]
fn id_token(
    state: &AppState,
    issuer: &Issuer,
    client: &Client,
    user: &User,
    facts: &LoginFacts,
    access: &str,
    now: DateTime<Utc>,
    ttl: i64,
) -> Result<String, OAuthError> {
    let key = state.core.keyring.id_token_key().ok_or_else(|| {
        tracing::error!("no active ID-token signing key");
        OAuthError::server_error()
    })?;
    let iss = IssuerUrl::new(issuer.issuer.clone()).map_err(internal("issuer is not a URL"))?;
    let mut claims = IdTokenClaims::new(
        iss,
        vec![Audience::new(client.id.to_string())],
        now + chrono::Duration::seconds(ttl),
        now,
        StandardClaims::<CoreGenderClaim>::new(SubjectIdentifier::new(user.id.to_string())),
        SessionClaims { sid: facts.sid.clone() },
    )
    .set_auth_time(DateTime::<Utc>::from_timestamp(facts.auth_time_us.div_euclid(1_000_000), 0))
    .set_auth_context_ref(Some(AuthenticationContextClass::new(facts.acr.clone())))
    .set_auth_method_refs(Some(facts.amr.iter().cloned().map(AuthenticationMethodReference::new).collect()))
    .set_authorized_party(Some(openidconnect::ClientId::new(client.id.to_string())));
    if let Some(n) = &facts.nonce {
        claims = claims.set_nonce(Some(Nonce::new(n.clone())));
    }
    let token = PramaanIdToken::new(
        claims,
        key.as_ref(),
        oidc_alg(key.alg()),
        Some(&AccessToken::new(access.to_owned())),
        None,
    )
    .map_err(internal("signing an ID token failed"))?;
    Ok(token.to_string())
}

/// The account behind a code or refresh token, if its login still stands: the account
/// exists, is active, needs no password change, was not cut off after the login (disable,
/// campaign), and the login session (`sid`) has not ended.
pub async fn standing_user(
    state: &AppState,
    user_id: &crate::domain::UserId,
    sid: &str,
    auth_time_us: i64,
) -> Result<User, OAuthError> {
    let ended = || {
        OAuthError::new(
            super::error::OAuthErrorCode::InvalidGrant,
            "The sign-in behind this grant has ended.",
        )
    };
    let uid = user_id.clone();
    let user = state
        .core
        .db
        .run(move |c| crate::store::users::find(c, &uid))
        .await
        .map_err(internal("user lookup failed"))?
        .ok_or_else(ended)?;
    if user.status != crate::domain::UserStatus::Active
        || user.must_change_password
        || auth_time_us < user.tokens_valid_after.timestamp_micros()
    {
        return Err(ended());
    }
    let live = crate::login::session::sid_record(state, sid).await.map_err(|e| {
        tracing::error!(error = ?e, "session store unavailable");
        OAuthError::new(super::error::OAuthErrorCode::TemporarilyUnavailable, "Try again shortly.")
    })?;
    match live {
        Some(r) if r.user_id == user.id => Ok(user),
        _ => Err(ended()),
    }
}
