//! Authorization codes (RFC 6749 §4.1.2): random, single use, short-lived, kept in the session
//! store under a keyed digest only, bound to the client, the exact redirect URI and a PKCE
//! challenge.
//!
//! Redemption takes the code atomically (of two concurrent redemptions one wins) and leaves a
//! "used" record naming the tokens it is about to issue, so a replay can revoke them
//! (§4.1.2: "SHOULD revoke all tokens previously issued based on that authorization code").

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{ClientId, UserId};
use crate::sessions::StoreError;
use crate::state::AppState;

/// What a code stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub user_id: UserId,
    pub sid: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time_us: i64,
    pub amr: Vec<String>,
    pub acr: String,
}

/// The tokens issued from a redeemed code, for revocation on replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedCode {
    /// The client that redeemed it: only its own replay revokes what it got.
    pub client_id: ClientId,
    pub access_jti: String,
    pub access_exp: i64,
    pub family_id: Option<String>,
}

fn digest(state: &AppState, code: &str) -> String {
    state.core.keys.digester.digest("authorization-code", code.as_bytes())
}

/// Stores `grant` under a new code and returns the code.
pub async fn issue(state: &AppState, grant: &CodeGrant) -> Result<String, StoreError> {
    let code = crate::crypto::random_token(32);
    let bytes = serde_json::to_vec(grant).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let ttl = Duration::from_secs(state.core.settings.login.code_ttl_secs);
    state.sessions.put(&format!("code:{}", digest(state, &code)), &bytes, ttl).await?;
    Ok(code)
}

/// The outcome of presenting a code.
#[derive(Debug)]
pub enum Redeemed {
    /// First use: the grant, and the record to keep once the tokens are known.
    Fresh(Box<CodeGrant>),
    /// Used before; what it issued, when still known.
    Replayed(Option<UsedCode>),
    /// Never issued, or expired.
    Unknown,
}

/// The grant behind `code` without using it up (to check who presents it first).
pub async fn peek(state: &AppState, code: &str) -> Result<Option<CodeGrant>, StoreError> {
    if code.len() > 128 {
        return Ok(None);
    }
    let bytes = state.sessions.get(&format!("code:{}", digest(state, code))).await?;
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Redeems `code`, leaving `used` behind for `remember` so a replay can find the tokens.
pub async fn redeem(
    state: &AppState,
    code: &str,
    used: &UsedCode,
    remember: Duration,
) -> Result<Redeemed, StoreError> {
    if code.len() > 128 {
        return Ok(Redeemed::Unknown);
    }
    let d = digest(state, code);
    let used_key = format!("code-used:{d}");
    match state.sessions.take(&format!("code:{d}")).await? {
        Some(bytes) => {
            let grant: CodeGrant =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let record = serde_json::to_vec(used).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            state.sessions.put(&used_key, &record, remember).await?;
            Ok(Redeemed::Fresh(Box::new(grant)))
        }
        None => match state.sessions.get(&used_key).await? {
            Some(bytes) => Ok(Redeemed::Replayed(serde_json::from_slice(&bytes).ok())),
            None => Ok(Redeemed::Unknown),
        },
    }
}
