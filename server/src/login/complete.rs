//! The end of every successful login, whatever its steps were: the account is admitted (not
//! locked at this moment; its failure count starts again), the login gets its `sid`, and the
//! browser session moves to a new id that carries it.

use actix_web::HttpResponse;
use actix_web::cookie::Cookie;

use super::pages;
use super::session::{self, Authenticated, Loaded};
use crate::domain::{Acr, User};
use crate::state::AppState;

/// How the account is admitted at the end of the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// Only if not locked at this moment (one atomic statement); clears the failure count.
    Claim,
    /// Already admitted: the last step was charged as a failure before it was checked,
    /// while the account was not locked (`charge_attempt`), or claimed before something was
    /// stored; clear that charge and any lock it set.
    Charged,
}

// Made once per login and matched at once; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Completion {
    Done {
        auth: Authenticated,
        cookie: Cookie<'static>,
    },
    /// Locked meanwhile by wrong guesses (the atomic admission saw it); nothing changed.
    Locked,
    /// The password changed, or the account was cut off, after the password was proven.
    Stale,
}

/// What a login proved, and how.
pub(super) struct Proof {
    pub amr: Vec<String>,
    pub acr: Acr,
    pub admission: Admission,
    /// When the password was checked, in microseconds.
    pub password_at_us: i64,
}

/// Finishes the login of `user` proven by `amr`. The same person signing in again keeps
/// their login (`sid`) while it still stands, so other applications' tokens of that login
/// live on; its record is never rewritten, so an ended or cut-off login cannot come back.
/// Otherwise a new login starts, and someone else's login in this browser ends.
// The error is the page to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
pub(super) async fn complete_login(
    state: &AppState,
    loaded: &mut Loaded,
    user: &User,
    proof: Proof,
    secure: bool,
) -> Result<Completion, HttpResponse> {
    let Proof { amr, acr, admission, password_at_us } = proof;
    let now = state.core.clock.now();
    let id = user.id.clone();
    let admitted = state
        .core
        .db
        .run(move |c| match admission {
            Admission::Claim => crate::store::users::claim_login(c, &id, now),
            Admission::Charged => crate::store::users::admit_charged(c, &id).map(|()| true),
        })
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, "could not admit the login");
            pages::unavailable_plain()
        })?;
    if !admitted {
        return Ok(Completion::Locked);
    }
    // The password proven must still be the account's, and the account not cut off since:
    // a login racing a password change or a reset must not outlive it.
    let id = user.id.clone();
    let fresh = state.core.db.run(move |c| crate::store::users::find(c, &id)).await.map_err(|e| {
        tracing::error!(error = ?e, "could not read the account");
        pages::unavailable_plain()
    })?;
    let still = fresh.as_ref().is_some_and(|u| {
        u.tokens_valid_after.timestamp_micros() <= password_at_us
            && u.password_changed_at.is_none_or(|t| t.timestamp_micros() <= password_at_us)
    });
    if !still {
        return Ok(Completion::Stale);
    }
    let sid = match loaded.session.auth.take() {
        Some(prev) if prev.user_id == user.id => match session::sid_record(state, &prev.sid).await {
            Ok(Some(r))
                if r.user_id == user.id && r.auth_time_us >= user.tokens_valid_after.timestamp_micros() =>
            {
                Some(prev.sid)
            }
            Ok(_) => None,
            Err(_) => return Err(pages::unavailable_plain()),
        },
        Some(prev) => {
            if let Err(e) = crate::oidc::revocation::end_login(state, &prev.sid).await {
                tracing::error!(error = ?e, "could not end the previous login");
                return Err(pages::unavailable_plain());
            }
            None
        }
        None => None,
    };
    let new_login = sid.is_none();
    let sid = sid.unwrap_or_else(|| crate::crypto::random_token(16));
    let auth = Authenticated {
        user_id: user.id.clone(),
        sid,
        auth_time_us: now.timestamp_micros(),
        amr,
        acr: acr.as_str().to_owned(),
    };
    if new_login && let Err(e) = session::start_sid(state, &auth).await {
        tracing::error!(error = ?e, "could not record the login");
        return Err(pages::unavailable_plain());
    }
    loaded.session.auth = Some(auth.clone());
    loaded.session.partial = None;
    let cookie = session::renew(state, loaded, secure).await.map_err(|e| {
        tracing::error!(error = ?e, "could not store the session");
        pages::unavailable_plain()
    })?;
    Ok(Completion::Done { auth, cookie })
}
