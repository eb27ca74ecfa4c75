//! Access tokens as JWTs per RFC 9068: `typ: at+jwt`, signed with the configured access-token
//! algorithm (ES256 by default: cheap to sign at partner-API rates).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::OAuthError;
use super::keyring::KeyRing;
use super::status_list::StatusClaim;

/// RFC 9068 §2.1: the media type in `typ`.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of an access token (RFC 9068 §2.2). User tokens add `auth_time`, `acr`, `amr`
/// and `sid`; client-credentials tokens carry the client as `sub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-separated (RFC 9068 §2.2.3.1); absent when no scope was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Where the token's status is published (draft-ietf-oauth-status-list): resource servers
    /// that validate locally check the bit there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusClaim>,
}

impl AccessTokenClaims {
    /// Claims for a token issued to a client on its own behalf (RFC 9068 §2.2: `sub` is the
    /// client when no resource owner is involved).
    pub fn for_client(
        issuer: &str,
        audience: &str,
        client_id: &str,
        scope: Option<String>,
        now: DateTime<Utc>,
        ttl_secs: i64,
        status: Option<StatusClaim>,
    ) -> Self {
        Self {
            iss: issuer.to_owned(),
            sub: client_id.to_owned(),
            aud: audience.to_owned(),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl_secs,
            jti: crate::crypto::random_token(16),
            client_id: client_id.to_owned(),
            scope,
            auth_time: None,
            acr: None,
            amr: None,
            sid: None,
            status,
        }
    }
}

/// Signs `claims` with the current access-token key.
pub fn sign(keyring: &KeyRing, claims: &AccessTokenClaims) -> Result<String, OAuthError> {
    let key = keyring.access_token_key().ok_or_else(|| {
        tracing::error!("no active access-token signing key");
        OAuthError::server_error()
    })?;
    key.sign_jwt(ACCESS_TOKEN_TYP, claims).map_err(|e| {
        tracing::error!(error = ?e, "signing an access token failed");
        OAuthError::server_error()
    })
}
