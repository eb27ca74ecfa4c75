//! Revoking what was issued: one access token (its jti goes on the shared revocation list
//! until the token would have expired), a refresh-token family with the access tokens issued
//! alongside it, or a whole login (`sid`).

use std::time::Duration;

use super::error::{OAuthError, OAuthErrorCode};
use super::introspect::revoked_key;
use super::revocation_feed::{REVOKED_GEN, REVOKED_GEN_TTL, REVOKED_INDEX};
use crate::state::AppState;
use crate::store::refresh_tokens::{self, AccessRef};
use crate::store::status_lists::{self, Place};

fn unavailable<E: std::fmt::Debug>(e: E) -> OAuthError {
    tracing::error!(error = ?e, "could not store a revocation");
    OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "Try again shortly.")
}

/// Puts the access token `jti` (expiring at `exp`, seconds) on the shared revocation list.
/// This instance sees it at once; others at their next feed poll (see `revocation_feed`).
/// Its bit in its status list is set too: at `place` when the caller read it from the token,
/// else wherever the token was recorded (a person's token).
pub async fn revoke_jti(
    state: &AppState,
    jti: &str,
    exp: i64,
    place: Option<Place>,
) -> Result<(), OAuthError> {
    let now = state.core.clock.now().timestamp();
    if exp <= now {
        return Ok(());
    }
    // This instance first, whatever happens to the shared list below.
    state.verified.mark_revoked(jti, exp);
    let ttl = Duration::from_secs(u64::try_from(exp - now).unwrap_or(0) + 60);
    state.sessions.put_indexed(REVOKED_INDEX, &revoked_key(jti), b"1", ttl).await.map_err(unavailable)?;
    // After the entry: an instance that sees the new count finds the entry in the index. Should
    // this fail, the caller's retry writes both again.
    state.sessions.increment(REVOKED_GEN, REVOKED_GEN_TTL).await.map_err(unavailable)?;
    let (j, expires_at) = (jti.to_owned(), chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default());
    let changed = state
        .core
        .db
        .run(move |c| match &place {
            Some(at) => status_lists::revoke_at(c, at, &j, expires_at).map(|()| vec![at.client_id.clone()]),
            None => status_lists::revoke_jti(c, &j),
        })
        .await
        .map_err(unavailable)?;
    state.status_lists.changed(&changed);
    Ok(())
}

async fn revoke_all(state: &AppState, access: Vec<AccessRef>) -> Result<usize, OAuthError> {
    let n = access.len();
    for (jti, exp) in access {
        revoke_jti(state, &jti, exp.timestamp(), None).await?;
    }
    Ok(n)
}

/// Revokes every refresh token of `family_id` and the unexpired access tokens issued with
/// them. Returns how many access tokens were revoked.
pub async fn revoke_family(state: &AppState, family_id: &str) -> Result<usize, OAuthError> {
    // The mark first, then the rows: a token being issued into this family right now either
    // is among the rows or sees the mark (see `user_tokens::issue`). Refresh tokens die with
    // their login, so the mark need not outlive one.
    let ttl = Duration::from_secs(state.core.settings.login.session_ttl_secs.max(FAMILY_MARK_MIN_SECS) + 60);
    state.sessions.put(&family_key(family_id), b"1", ttl).await.map_err(unavailable)?;
    let now = state.core.clock.now();
    let family = family_id.to_owned();
    let access = state
        .core
        .db
        .run(move |c| refresh_tokens::revoke_family(c, &family, now))
        .await
        .map_err(unavailable)?;
    revoke_all(state, access).await
}

/// A revoked family's mark outlives any refresh token made under a longer session setting
/// than the current one.
const FAMILY_MARK_MIN_SECS: u64 = 30 * 86_400;

fn family_key(family_id: &str) -> String {
    format!("family-revoked:{family_id}")
}

/// Whether `family_id` was revoked.
pub async fn family_revoked(state: &AppState, family_id: &str) -> Result<bool, OAuthError> {
    Ok(state.sessions.get(&family_key(family_id)).await.map_err(unavailable)?.is_some())
}

/// Ends the login `sid`: its liveness record goes (so every token carrying it is inactive at
/// once), its refresh tokens are revoked and their access tokens listed.
pub async fn end_login(state: &AppState, sid: &str) -> Result<(), OAuthError> {
    crate::login::session::end_sid(state, sid).await.map_err(unavailable)?;
    // Every token of the login in the status lists, whether or not a refresh token came with it.
    let s = sid.to_owned();
    let changed = state.core.db.run(move |c| status_lists::revoke_sid(c, &s)).await.map_err(unavailable)?;
    state.status_lists.changed(&changed);
    let now = state.core.clock.now();
    let s = sid.to_owned();
    let access =
        state.core.db.run(move |c| refresh_tokens::revoke_session(c, &s, now)).await.map_err(unavailable)?;
    revoke_all(state, access).await.map(|_| ())
}
