//! Token introspection (RFC 7662) for resource servers such as the registry.
//!
//! A repeated token is the registry's usual pattern, so the claims of a token whose signature
//! verified are cached until it expires ([`VerifiedTokens`]): an ES256 verification costs tens
//! of microseconds, a hash lookup almost nothing. What can change during a token's life — its
//! jti revoked, its client suspended, its login ended, its user disabled — is never cached
//! with it: the jti is looked up in this instance's copy of the shared revocation list
//! ([`revocation_feed`](super::revocation_feed), at most a poll behind) or, when that copy is
//! not fresh, in the session store; the login (`sid`) is read from the session store, the
//! user from the database, the client from the epoch-refreshed [`ClientCache`].
//!
//! [`ClientCache`]: super::state_cache::ClientCache

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Issuer;
use super::access_token::{ACCESS_TOKEN_TYP, AccessTokenClaims};
use super::error::{OAuthError, OAuthErrorCode};
use super::token;
use crate::domain::{ClientId, ClientStatus};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/introspect", web::post().to(introspect));
}

/// Bound on cached verified tokens (each ~0.5 KB): at the bound the cache starts over.
const MAX_VERIFIED: usize = 100_000;

/// Session-store key marking a revoked access token.
pub fn revoked_key(jti: &str) -> String {
    format!("revoked:jti:{jti}")
}

/// How long a "not revoked" answer from the shared revocation list is reused. Well inside the
/// one-second rule for revocation state (DESIGN.md); a revocation made on this instance is
/// marked here at once.
const UNREVOKED_FOR: std::time::Duration = std::time::Duration::from_millis(250);

/// Bound on each of the jti maps below; at the bound a map starts over.
pub const MAX_JTIS: usize = 100_000;

/// Claims of tokens whose signature, `typ` and issuer were checked, by SHA-256 of the token;
/// and, per jti, what the shared revocation list said lately.
#[derive(Clone, Default)]
pub struct VerifiedTokens {
    map: Arc<Mutex<HashMap<[u8; 32], Arc<AccessTokenClaims>>>>,
    /// jti → when the revocation list last said "not revoked".
    unrevoked: Arc<Mutex<HashMap<String, std::time::Instant>>>,
    /// jti → the token's `exp`: known revoked, no need to ask again.
    revoked: Arc<Mutex<HashMap<String, i64>>>,
    /// This instance's copy of the shared revocation list.
    pub feed: Arc<super::revocation_feed::RevocationFeed>,
}

/// Frees a full map on a thread of its own: dropping 100k entries (about a million
/// allocations) took ~100 ms, which a request's worker must not pay (measured: the p99 of
/// distinct-token introspection).
fn free_elsewhere<T: Send + 'static>(full: Option<T>) {
    if let Some(map) = full {
        // Should no thread be had, the closure and the map in it are dropped right here.
        let _ = std::thread::Builder::new().name("free-cache".into()).spawn(move || drop(map));
    }
}

impl VerifiedTokens {
    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn recently_unrevoked(&self, jti: &str) -> bool {
        let map = self.unrevoked.lock().unwrap_or_else(|p| p.into_inner());
        map.get(jti).is_some_and(|at| at.elapsed() < UNREVOKED_FOR)
    }

    fn mark_unrevoked(&self, jti: &str) {
        let mut map = self.unrevoked.lock().unwrap_or_else(|p| p.into_inner());
        let full = (map.len() >= MAX_JTIS).then(|| std::mem::take(&mut *map));
        map.insert(jti.to_owned(), std::time::Instant::now());
        drop(map);
        free_elsewhere(full);
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner()).contains_key(jti)
    }

    /// Records a revocation seen or made here; it also cancels any cached "not revoked".
    pub fn mark_revoked(&self, jti: &str, exp: i64) {
        self.unrevoked.lock().unwrap_or_else(|p| p.into_inner()).remove(jti);
        let mut map = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        let full = (map.len() >= MAX_JTIS).then(|| std::mem::take(&mut *map));
        map.insert(jti.to_owned(), exp);
        drop(map);
        if full.is_some() {
            // What was forgotten must be read from the shared list again before the local
            // copy is trusted.
            self.feed.resync();
        }
        free_elsewhere(full);
    }

    /// [`mark_revoked`](Self::mark_revoked) for the feed, which knows no expiry: kept until
    /// the map starts over, by which time the feed has read the list again.
    pub fn mark_revoked_quietly(&self, jti: &str) {
        if !self.is_revoked(jti) {
            self.mark_revoked(jti, i64::MAX);
        }
    }

    fn get(&self, token: &str) -> Option<Arc<AccessTokenClaims>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).get(&Self::key(token)).cloned()
    }

    fn insert(&self, token: &str, claims: Arc<AccessTokenClaims>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Scanning or freeing 100k entries under the lock stalled every worker for ~190 ms
        // (measured): swap the full map out and free it elsewhere after the lock is released.
        let full = (map.len() >= MAX_VERIFIED).then(|| std::mem::take(&mut *map));
        map.insert(Self::key(token), claims);
        drop(map);
        free_elsewhere(full);
    }
}

/// Verifies a token's signature, `typ` and issuer (cached), without any revocation check.
pub fn verified_claims(state: &AppState, issuer: &Issuer, token: &str) -> Option<Arc<AccessTokenClaims>> {
    if let Some(hit) = state.verified.get(token) {
        return Some(hit);
    }
    let keyring = &state.core.keyring;
    let value =
        crate::crypto::verify_jwt(token, Some(ACCESS_TOKEN_TYP), |kid| keyring.verifying_key(kid)).ok()?;
    let claims: AccessTokenClaims = serde_json::from_value(value).ok()?;
    if claims.iss != issuer.issuer {
        return None;
    }
    let claims = Arc::new(claims);
    state.verified.insert(token, claims.clone());
    Some(claims)
}

/// The token's claims if it is active now: signed by us, unexpired, its jti not revoked, its
/// client existing, active, and not cut off after the token was issued.
pub async fn active_claims(
    state: &AppState,
    issuer: &Issuer,
    token: &str,
) -> Result<Option<Arc<AccessTokenClaims>>, OAuthError> {
    let now = state.core.clock.now();
    let Some(claims) = verified_claims(state, issuer, token) else { return Ok(None) };
    if claims.exp <= now.timestamp() {
        return Ok(None);
    }
    if state.verified.is_revoked(&claims.jti) {
        return Ok(None);
    }
    // The local copy of the shared list answers while it is fresh; otherwise the store does.
    if store_must_answer(state.verified.feed.fresh(), || state.verified.recently_unrevoked(&claims.jti)) {
        let revoked = state.sessions.get(&revoked_key(&claims.jti)).await.map_err(|e| {
            // Fail closed: without the revocation list we cannot say a token is active.
            tracing::error!(error = ?e, "revocation list unavailable");
            OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "Try again shortly.")
        })?;
        if revoked.is_some() {
            state.verified.mark_revoked(&claims.jti, claims.exp);
            return Ok(None);
        }
        state.verified.mark_unrevoked(&claims.jti);
    }
    let client_id = ClientId::from_string(claims.client_id.clone());
    let client = state.clients.get(&client_id).await.map_err(|e| {
        tracing::error!(error = ?e, "client lookup failed");
        OAuthError::server_error()
    })?;
    let Some(client) = client else { return Ok(None) };
    let (client, _) = &*client;
    // Compared in microseconds: a token from the second of a suspension counts as before it.
    let cut_off = client.tokens_valid_after.timestamp_micros();
    if client.status != ClientStatus::Active || claims.iat.saturating_mul(1_000_000) < cut_off {
        return Ok(None);
    }
    // A person's token lives only as long as their login: the session, and the account as it
    // is now (disabled, or cut off after the login by a campaign).
    if let Some(sid) = &claims.sid
        && !login_stands(state, &claims.sub, sid).await?
    {
        return Ok(None);
    }
    Ok(Some(claims))
}

/// Whether the session store must say if a jti is revoked: only while this instance's copy of
/// the shared list is stale, and the store did not say "not revoked" for it moments ago (asked
/// lazily: a fresh copy costs no lock).
fn store_must_answer(copy_fresh: bool, recently_unrevoked: impl FnOnce() -> bool) -> bool {
    !copy_fresh && !recently_unrevoked()
}

async fn login_stands(state: &AppState, sub: &str, sid: &str) -> Result<bool, OAuthError> {
    let unavailable = |e: &dyn std::fmt::Debug| {
        tracing::error!(error = ?e, "login state unavailable");
        OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "Try again shortly.")
    };
    let Some(rec) = crate::login::session::sid_record(state, sid).await.map_err(|e| unavailable(&e))? else {
        return Ok(false);
    };
    if rec.user_id.as_str() != sub {
        return Ok(false);
    }
    let uid = rec.user_id.clone();
    let user =
        state.core.db.run(move |c| crate::store::users::find(c, &uid)).await.map_err(|e| unavailable(&e))?;
    Ok(user.is_some_and(|u| {
        u.status == crate::domain::UserStatus::Active
            && rec.auth_time_us >= u.tokens_valid_after.timestamp_micros()
    }))
}

/// RFC 7662 §2.2: an active token's metadata, or only `active: false`.
#[derive(Serialize)]
struct Introspection<'a> {
    active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    claims: Option<&'a AccessTokenClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
}

#[tracing::instrument(skip_all, fields(client_id = tracing::field::Empty))]
async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, OAuthError> {
    let (form, client) = token::authenticated_form(&req, payload, &state, &issuer).await?;
    let credential_bound = client.registration.token_endpoint_auth_method != crate::domain::AuthMethod::None;
    if !(client.registration.can_introspect && credential_bound) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "This client may not introspect tokens.",
        )
        .with_status(StatusCode::FORBIDDEN));
    }
    let token = form.require("token", "token is required.")?;
    let claims = active_claims(&state, &issuer, token).await?;
    let body = Introspection {
        active: claims.is_some(),
        claims: claims.as_deref(),
        token_type: claims.as_ref().map(|_| "Bearer"),
    };
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(client: &str) -> Arc<AccessTokenClaims> {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Arc::new(AccessTokenClaims::for_client(
            "https://id.example",
            "registry",
            client,
            None,
            now,
            300,
            None,
        ))
    }

    #[test]
    fn verified_claims_are_found_by_the_whole_token_and_kept_beside_each_other() {
        let v = VerifiedTokens::default();
        assert!(v.get("token-a").is_none());
        v.insert("token-a", claims("a"));
        v.insert("token-b", claims("b"));
        assert_eq!(v.get("token-a").unwrap().sub, "a");
        assert_eq!(v.get("token-b").unwrap().sub, "b");
        assert!(v.get("token-c").is_none());
    }

    #[test]
    fn a_not_revoked_answer_is_reused_only_for_its_jti_and_never_after_a_revocation() {
        let v = VerifiedTokens::default();
        assert!(!v.recently_unrevoked("j1"), "never asked: the list must be asked");
        v.mark_unrevoked("j1");
        v.mark_unrevoked("j2");
        assert!(v.recently_unrevoked("j1") && v.recently_unrevoked("j2"));
        assert!(!v.recently_unrevoked("j3"));
        assert!(!v.is_revoked("j1"));
        v.mark_revoked("j1", 1_800_000_300);
        v.mark_revoked("j4", 1_800_000_300);
        assert!(v.is_revoked("j1") && v.is_revoked("j4"));
        assert!(!v.recently_unrevoked("j1"), "a revocation cancels the cached answer");
        assert!(v.recently_unrevoked("j2"));
        // From the shared list's feed: marked once, whatever it says again.
        v.mark_revoked_quietly("j5");
        assert!(v.is_revoked("j5"));
    }

    #[test]
    fn the_store_is_asked_only_while_the_local_copy_is_stale_and_nothing_recent_is_known() {
        assert!(!store_must_answer(true, || panic!("a fresh copy needs no other answer")));
        assert!(!store_must_answer(false, || true), "the store said 'not revoked' moments ago");
        assert!(store_must_answer(false, || false));
    }

    #[test]
    fn the_revocation_list_key_names_the_jti() {
        assert_eq!(revoked_key("abc"), "revoked:jti:abc");
    }
}
