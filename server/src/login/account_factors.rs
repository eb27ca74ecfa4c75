//! The account page's factor actions: setting up a new authenticator app (after proving the
//! current one, or a recovery code) and making new recovery codes (after proving the app).
//! A wrong proof counts against the account's lock, as a wrong code at login does.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use zeroize::Zeroizing;

use super::account::{Banner, Visitor, event, posted, render};
use super::factor_state::{AppCode, check_app_code, spend_recovery_code};
use super::pages::{self, RecoveryCodesPage};
use super::session::AccountEnrollment;
use super::{audit, with_cookie};
use crate::domain::{Acr, Outcome};
use crate::mfa::{recovery, totp};
use crate::oidc::Issuer;
use crate::state::AppState;
use crate::store::factors;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/account/app", web::post().to(new_app))
        .route("/account/app/confirm", web::post().to(confirm_app))
        .route("/account/recovery-codes", web::post().to(new_codes));
}

/// How long a login may be old to set up a first app from the account page.
const FRESH_SECS: i64 = 600;

/// Proves the person before a factor change: with an app, its code (or, if `recovery_ok`, a
/// recovery code), charged against the account's lock before it is checked; without one, a
/// login of the last ten minutes that itself proved a second factor (an SMS code) — never a
/// password alone, which would let whoever holds the password claim the account's second
/// factor. `Ok(false)` for a wrong code; `Err` is the page to show (locked, not proven).
async fn prove(state: &AppState, v: &Visitor, typed: &str, recovery_ok: bool) -> Result<bool, HttpResponse> {
    let t = pages::text(None);
    let now = state.core.clock.now();
    if v.factors.totp.is_none() {
        let strong = Acr::parse(&v.auth.acr) == Some(Acr::Mfa);
        let fresh = now.timestamp() - v.auth.auth_time_secs() <= FRESH_SECS;
        if strong && fresh {
            return Ok(true);
        }
        let banner = Banner { notice: None, error: Some(t.account_needs_factor.to_owned()) };
        return Err(render(state, v, banner, StatusCode::FORBIDDEN).await);
    }
    let unavailable = |e: &dyn std::fmt::Debug| {
        tracing::error!(error = ?e, "the proof could not be checked");
        pages::unavailable_plain()
    };
    // Charged before it is checked, so parallel guesses cannot outrun the lock.
    if !super::password::charge_attempt(&state.core, &v.user, now).await.map_err(|e| unavailable(&e))? {
        let banner = Banner { notice: None, error: Some(t.locked.to_owned()) };
        return Err(render(state, v, banner, StatusCode::FORBIDDEN).await);
    }
    let code = check_app_code(state, &v.user, typed).await.map_err(|e| unavailable(&e))?;
    let right = code == AppCode::Right
        || (recovery_ok
            && code == AppCode::Wrong
            && spend_recovery_code(state, &v.user, typed).await.map_err(|e| unavailable(&e))?.is_some());
    if right {
        let id = v.user.id.clone();
        state
            .core
            .db
            .run(move |c| crate::store::users::admit_charged(c, &id))
            .await
            .map_err(|e| unavailable(&e))?;
    }
    Ok(right)
}

/// The associated data of a new app's secret: bound to the account, this login, and the app
/// that was proven (or none), so the setup fails if the app changed meanwhile.
fn pending_aad(v: &Visitor) -> String {
    let proven = v
        .factors
        .totp
        .as_ref()
        .map_or_else(|| "none".to_owned(), |f| f.enrolled_at.timestamp_micros().to_string());
    format!("totp-account:{}:{}:{proven}", v.user.id, v.auth.sid)
}

async fn wrong_proof(state: &AppState, req: &HttpRequest, v: &Visitor, action: &str) -> HttpResponse {
    let details = serde_json::json!({ "reason": "wrong_code", "during": "account" });
    audit(state, req, event(&v.user, action, Outcome::Failure, details)).await;
    let t = pages::text(None);
    let banner = Banner { notice: None, error: Some(t.account_wrong_code.to_owned()) };
    render(state, v, banner, StatusCode::OK).await
}

async fn new_app(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, mut v) = match posted(&req, &body, &state, &issuer).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    match prove(&state, &v, form.get("code").unwrap_or(""), true).await {
        Ok(true) => {}
        Ok(false) => return wrong_proof(&state, &req, &v, "mfa.totp.enroll").await,
        Err(resp) => return resp,
    }
    let secret = totp::new_secret();
    v.loaded.session.account_enrolling = Some(AccountEnrollment {
        sealed: state.core.keys.secrets.seal(&secret, pending_aad(&v).as_bytes()),
        started_at_us: state.core.clock.now().timestamp_micros(),
    });
    let Ok(cookie) = super::session::save(&state, &mut v.loaded, v.secure).await else {
        return pages::unavailable(&req);
    };
    let page = show_enrollment(&state, &v, &secret, None);
    with_cookie(&req, page, &cookie)
}

fn show_enrollment(state: &AppState, v: &Visitor, secret: &[u8], error: Option<&str>) -> HttpResponse {
    match totp::enrollment(secret, v.user.username.as_str(), &state.core.settings.mfa.issuer_name) {
        Ok(e) => super::enroll::enroll_page(
            &v.loaded.session.csrf,
            "",
            "/account/app/confirm",
            &e,
            error,
            StatusCode::OK,
        ),
        Err(_) => pages::unavailable_plain(),
    }
}

async fn confirm_app(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, mut v) = match posted(&req, &body, &state, &issuer).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let now = state.core.clock.now();
    let ttl_us = i64::try_from(state.core.settings.login.pending_ttl_secs).unwrap_or(900) * 1_000_000;
    // Started long ago, or the app changed since it was proven: start again from the page.
    let opened = v
        .loaded
        .session
        .account_enrolling
        .clone()
        .filter(|e| now.timestamp_micros() - e.started_at_us <= ttl_us)
        .and_then(|e| state.core.keys.secrets.open(&e.sealed, pending_aad(&v).as_bytes()).ok());
    let Some(secret) = opened else {
        return crate::oidc::authorize::see_other("/account");
    };
    let secret = Zeroizing::new(secret);
    let t = pages::text(None);
    let Some(step) = totp::verify(&secret, form.get("code").unwrap_or(""), now.timestamp(), -1) else {
        return show_enrollment(&state, &v, &secret, Some(t.enroll_wrong));
    };
    let codes = recovery::generate();
    let digests = digests(&state, &v, &codes);
    let stored = state.core.keys.secrets.seal(&secret, format!("totp:{}", v.user.id).as_bytes());
    let id = v.user.id.clone();
    if state.core.db.run(move |c| factors::enroll_totp(c, &id, &stored, step, &digests, now)).await.is_err() {
        return pages::unavailable(&req);
    }
    v.loaded.session.account_enrolling = None;
    let Ok(cookie) = super::session::save(&state, &mut v.loaded, v.secure).await else {
        return pages::unavailable(&req);
    };
    let details = serde_json::json!({
        "recovery_codes": codes.len(),
        "during": "account",
        "replaced": v.factors.totp.is_some()
    });
    audit(&state, &req, event(&v.user, "mfa.totp.enroll", Outcome::Success, details)).await;
    let notice = Some(t.account_app_replaced.to_owned());
    let page = RecoveryCodesPage { t, next: "/account", codes: &codes, notice };
    with_cookie(&req, pages::html(StatusCode::OK, page.render()), &cookie)
}

fn digests(state: &AppState, v: &Visitor, codes: &[String]) -> Vec<String> {
    codes
        .iter()
        .filter_map(|c| recovery::normalize(c))
        .map(|n| recovery::digest(&state.core.keys.digester, &v.user.id, &n))
        .collect()
}

async fn new_codes(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, v) = match posted(&req, &body, &state, &issuer).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if v.factors.totp.is_none() {
        return crate::oidc::authorize::see_other("/account");
    }
    // Only the app itself proves the person here: a recovery code must not mint new ones.
    match prove(&state, &v, form.get("code").unwrap_or(""), false).await {
        Ok(true) => {}
        Ok(false) => return wrong_proof(&state, &req, &v, "mfa.recovery_codes.replace").await,
        Err(resp) => return resp,
    }
    let codes = recovery::generate();
    let digests = digests(&state, &v, &codes);
    let (id, now) = (v.user.id.clone(), state.core.clock.now());
    if state.core.db.run(move |c| factors::replace_recovery_codes(c, &id, &digests, now)).await.is_err() {
        return pages::unavailable(&req);
    }
    let details = serde_json::json!({ "recovery_codes": codes.len() });
    audit(&state, &req, event(&v.user, "mfa.recovery_codes.replace", Outcome::Success, details)).await;
    let t = pages::text(None);
    let page = RecoveryCodesPage {
        t,
        next: "/account",
        codes: &codes,
        notice: Some(t.account_codes_replaced.to_owned()),
    };
    pages::html(StatusCode::OK, page.render())
}
