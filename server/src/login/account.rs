//! `/account`: the person's own page — their second factors, their password and where they
//! are signed in. It needs a login as strong as the account's roles and factors require: a
//! browser without one is sent through the same login flow as a client's request (a
//! [`Purpose::Account`] pending request), which comes back here.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::SecretString;

use super::factor_state::{FactorState, factor_state};
use super::pages::{self, AccountPage, SessionRow};
use super::password::is_current_password;
use super::rules::{PasswordRule, check_new_password};
use super::session::{self, Authenticated, Loaded};
use super::{audit, page_form, with_cookie};
use crate::domain::{AuditEvent, Outcome, User};
use crate::oidc::Issuer;
use crate::oidc::authorize::{Pending, see_other};
use crate::state::AppState;
use crate::store::users;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/account", web::get().to(show))
        .route("/account/password", web::post().to(change_password))
        .route("/account/sessions/end", web::post().to(end_session));
    super::account_factors::configure(cfg);
}

/// A signed-in person on the account page.
pub(super) struct Visitor {
    pub loaded: Loaded,
    pub secure: bool,
    pub user: User,
    pub auth: Authenticated,
    pub factors: FactorState,
}

/// The browser's login if it is strong enough for the account page; otherwise the response
/// that starts one (a GET) or sends the browser to the page (a POST without a login).
pub(super) async fn visitor(
    req: &HttpRequest,
    state: &AppState,
    issuer: &Issuer,
    start_login: bool,
) -> Result<Visitor, HttpResponse> {
    let secure = session::secure_issuer(&issuer.issuer);
    let mut loaded = session::load(state, req, secure).await.map_err(|e| {
        tracing::error!(error = ?e, "session store unavailable");
        pages::unavailable(req)
    })?;
    // As strong as the account needs now, or it starts again (see `signed_in_user`).
    let user = super::signed_in_user(state, &loaded.session).await?;
    if let (Some(user), Some(auth)) = (user, loaded.session.auth.clone()) {
        let factors = factor_state(state, &user).await.map_err(|e| {
            tracing::error!(error = ?e, "the account's factors could not be read");
            pages::unavailable(req)
        })?;
        return Ok(Visitor { loaded, secure, user, auth, factors });
    }
    if !start_login {
        return Err(see_other("/account"));
    }
    let pending = Pending::for_account(state.core.clock.now().timestamp_micros());
    let id = pending.id.clone();
    loaded.session.add_pending(pending);
    let cookie = session::save(state, &mut loaded, secure).await.map_err(|_| pages::unavailable(req))?;
    Err(with_cookie(req, see_other(&format!("/authorize/resume?request={id}")), &cookie))
}

/// What the page says besides its contents.
#[derive(Default)]
pub(super) struct Banner {
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub(super) async fn render(
    state: &AppState,
    v: &Visitor,
    banner: Banner,
    status: StatusCode,
) -> HttpResponse {
    let t = pages::text(None);
    let logins = match session::logins_of(state, &v.user.id).await {
        Ok(l) => l,
        Err(_) => return pages::unavailable_plain(),
    };
    let sessions = logins
        .into_iter()
        .map(|(sid, rec)| SessionRow {
            current: sid == v.auth.sid,
            since: t.account_session_since.replace(
                "{time}",
                &chrono::DateTime::from_timestamp_micros(rec.auth_time_us)
                    .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default(),
            ),
            sid,
        })
        .collect();
    let app_status = match &v.factors.totp {
        Some(f) => t.account_app_since.replace("{date}", &f.enrolled_at.format("%Y-%m-%d").to_string()),
        None => t.account_app_none.to_owned(),
    };
    let phone_status = match &v.user.phone {
        Some(p) => t.account_phone.replace("{phone}", &crate::mfa::sms::mask(p)),
        None => t.account_phone_none.to_owned(),
    };
    let page = AccountPage {
        t,
        csrf: &v.loaded.session.csrf,
        username: v.user.username.as_str(),
        display_name: &v.user.display_name,
        has_app: v.factors.totp.is_some(),
        app_status,
        recovery_status: t.account_recovery.replace("{n}", &v.factors.recovery_left.to_string()),
        phone_status,
        min_length: state.core.settings.password.min_length,
        sessions,
        notice: banner.notice,
        error: banner.error,
    };
    pages::html(status, page.render())
}

async fn show(req: HttpRequest, state: web::Data<AppState>, issuer: web::Data<Issuer>) -> HttpResponse {
    match visitor(&req, &state, &issuer, true).await {
        Ok(v) => render(&state, &v, Banner::default(), StatusCode::OK).await,
        Err(resp) => resp,
    }
}

/// A posted account form and its visitor, CSRF checked; the error is the response.
// The error is the page to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
pub(super) async fn posted(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
    issuer: &Issuer,
) -> Result<(crate::oidc::form::Form, Visitor), HttpResponse> {
    let form = page_form(body)?;
    let v = visitor(req, state, issuer, false).await?;
    if !v.loaded.session.csrf_ok(form.get("csrf")) {
        let t = pages::text(None);
        let banner = Banner { notice: None, error: Some(t.form_expired.to_owned()) };
        return Err(render(state, &v, banner, StatusCode::FORBIDDEN).await);
    }
    Ok((form, v))
}

pub(super) fn event(user: &User, action: &str, outcome: Outcome, details: serde_json::Value) -> AuditEvent {
    AuditEvent::new(format!("user:{}", user.username), action, outcome)
        .target(format!("user:{}", user.id))
        .details(details)
}

async fn change_password(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, v) = match posted(&req, &body, &state, &issuer).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let t = pages::text(None);
    let fail = |msg: String| Banner { notice: None, error: Some(msg) };
    let current = form.get("current_password").unwrap_or("");
    // Charged before it is checked, as a login's password is counted: a stolen session
    // cookie does not make the password guessable.
    let now = state.core.clock.now();
    match super::password::charge_attempt(&state.core, &v.user, now).await {
        Ok(true) => {}
        Ok(false) => return render(&state, &v, fail(t.locked.to_owned()), StatusCode::FORBIDDEN).await,
        Err(_) => return pages::unavailable(&req),
    }
    match is_current_password(&state.core, &v.user, current).await {
        Ok(true) => {
            let id = v.user.id.clone();
            if state.core.db.run(move |c| users::admit_charged(c, &id)).await.is_err() {
                return pages::unavailable(&req);
            }
        }
        Ok(false) => {
            let details = serde_json::json!({ "reason": "wrong_current_password" });
            audit(&state, &req, event(&v.user, "password.change", Outcome::Failure, details)).await;
            return render(&state, &v, fail(t.account_wrong_password.to_owned()), StatusCode::OK).await;
        }
        Err(_) => return pages::unavailable(&req),
    }
    let new = form.get("new_password").unwrap_or("");
    let verdict = if new != form.get("confirm_password").unwrap_or("") {
        Err(PasswordRule::Mismatch)
    } else if new == current {
        Err(PasswordRule::Unchanged)
    } else {
        check_new_password(v.user.username.as_str(), new, state.core.settings.password.min_length)
    };
    if let Err(rule) = verdict {
        return render(&state, &v, fail(rule.to_string()), StatusCode::OK).await;
    }
    let Ok(hash) = state.core.passwords.hash(SecretString::from(new.to_owned())).await else {
        return pages::unavailable(&req);
    };
    let (user, now, log) = (v.user.clone(), state.core.clock.now(), state.core.audit.clone());
    let stored = state
        .core
        .db
        .run(move |c| {
            crate::store::write_transaction(c, |c| {
                crate::campaigns::store_new_password(c, &log, &user, &hash, now)
            })
        })
        .await;
    if stored.is_err() {
        return pages::unavailable(&req);
    }
    // Whoever else knew the old password is signed out everywhere; this browser stays.
    let ended = match end_other_logins(&state, &v).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let details = serde_json::json!({ "reason": "self_service", "other_sessions_ended": ended });
    audit(&state, &req, event(&v.user, "password.change", Outcome::Success, details)).await;
    let banner = Banner { notice: Some(t.account_password_changed.to_owned()), error: None };
    render(&state, &v, banner, StatusCode::OK).await
}

/// Ends every login of the visitor but this browser's; how many.
async fn end_other_logins(state: &AppState, v: &Visitor) -> Result<usize, HttpResponse> {
    let logins = session::logins_of(state, &v.user.id).await.map_err(|_| pages::unavailable_plain())?;
    let mut n = 0;
    for (sid, _) in logins.into_iter().filter(|(sid, _)| *sid != v.auth.sid) {
        crate::oidc::revocation::end_login(state, &sid).await.map_err(|_| pages::unavailable_plain())?;
        n += 1;
    }
    Ok(n)
}

async fn end_session(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, v) = match posted(&req, &body, &state, &issuer).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let t = pages::text(None);
    let which = form.get("sid").unwrap_or("");
    let ended = if which == "others" {
        match end_other_logins(&state, &v).await {
            Ok(n) => n,
            Err(resp) => return resp,
        }
    } else {
        // Only one of the visitor's own logins, and not this browser's (that is /logout).
        let own = match session::logins_of(&state, &v.user.id).await {
            Ok(l) => l.into_iter().any(|(sid, _)| sid == which && sid != v.auth.sid),
            Err(_) => return pages::unavailable(&req),
        };
        if !own {
            return see_other("/account");
        }
        if crate::oidc::revocation::end_login(&state, which).await.is_err() {
            return pages::unavailable(&req);
        }
        1
    };
    let details = serde_json::json!({ "ended": ended, "from": "account_page" });
    audit(&state, &req, event(&v.user, "session.end", Outcome::Success, details)).await;
    let banner = Banner { notice: Some(t.account_ended.to_owned()), error: None };
    render(&state, &v, banner, StatusCode::OK).await
}
