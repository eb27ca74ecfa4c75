//! Logging people in: the sign-in, password-change and consent pages of the authorization
//! flow, the rules they apply (functions over plain values, unit-tested without a server),
//! and the browser session they share.

mod account;
mod account_factors;
mod complete;
mod consent;
mod enroll;
mod factor_state;
mod lockout;
pub mod pages;
mod password;
mod password_change;
mod reset;
pub mod rules;
mod second_factor;
pub mod session;
mod sign_in;

pub use factor_state::{FactorState, factor_state};
pub use lockout::lock_for;
pub use password::{LoginAttempt, LoginError, PasswordCheck, Refusal, attempt_login, check_password};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::domain::AuditEvent;
use crate::oidc::form::Form;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    sign_in::configure(cfg);
    password_change::configure(cfg);
    consent::configure(cfg);
    second_factor::configure(cfg);
    account::configure(cfg);
    enroll::configure(cfg);
    reset::configure(cfg);
    cfg.route("/static/login.css", web::get().to(stylesheet));
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=86400"))
        .body(pages::STYLESHEET)
}

/// A page form's fields, strictly parsed (a repeated field is refused).
// The error is the page to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
fn page_form(body: &[u8]) -> Result<Form, HttpResponse> {
    Form::parse(body).map_err(|_| {
        let t = pages::text(None);
        pages::message(StatusCode::BAD_REQUEST, t.problem, t.form_expired)
    })
}

/// `?request=` of a page.
#[derive(serde::Deserialize)]
struct RequestQuery {
    request: String,
}

/// What every page of a pending request starts from: the browser's session and the request.
struct PageContext {
    loaded: session::Loaded,
    pending: crate::oidc::authorize::Pending,
    secure: bool,
}

/// Loads the session and the pending request `id` of a page; an unknown id (finished,
/// expired, another browser's) is the "start again" page.
async fn page_context(
    req: &HttpRequest,
    state: &AppState,
    issuer: &crate::oidc::Issuer,
    id: Option<&str>,
) -> Result<PageContext, HttpResponse> {
    let secure = session::secure_issuer(&issuer.issuer);
    let loaded = session::load(state, req, secure).await.map_err(|e| {
        tracing::error!(error = ?e, "session store unavailable");
        pages::unavailable(req)
    })?;
    let pending = id.and_then(|id| loaded.session.pending(id)).cloned().ok_or_else(|| pages::expired(req))?;
    Ok(PageContext { loaded, pending, secure })
}

/// A posted page form and its context.
// The error is the page to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
async fn posted(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
    issuer: &crate::oidc::Issuer,
) -> Result<(Form, PageContext), HttpResponse> {
    let form = page_form(body)?;
    let ctx = page_context(req, state, issuer, form.get("request")).await?;
    Ok((form, ctx))
}

/// Back to the flow, which decides the next step of request `id`.
fn resume(id: &str) -> HttpResponse {
    crate::oidc::authorize::see_other(&format!("/authorize/resume?request={id}"))
}

/// `resp` with the session cookie set.
fn with_cookie(
    req: &HttpRequest,
    mut resp: HttpResponse,
    cookie: &actix_web::cookie::Cookie<'_>,
) -> HttpResponse {
    match resp.add_cookie(cookie) {
        Ok(()) => resp,
        Err(_) => pages::unavailable(req),
    }
}

/// Charges one request from the client's address against `limit`: the page telling when to
/// try again if the address is over it, the "unavailable" page if the limit cannot be read.
// The error is the page to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
async fn within_limit(
    state: &AppState,
    req: &HttpRequest,
    limit: crate::limits::Limit,
) -> Result<(), HttpResponse> {
    match state.limits.charge(limit, crate::http::client_ip::of_request(req)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(refused)) => Err(pages::too_many(refused)),
        Err(e) => {
            tracing::error!(error = ?e, "the rate limit could not be checked");
            Err(pages::unavailable(req))
        }
    }
}

/// Appends an audit event with the request's address and user agent; a failure to record is
/// logged, never shown (the login itself already happened or was refused).
async fn audit(state: &AppState, req: &HttpRequest, mut event: AuditEvent) {
    event.client_ip = crate::http::client_ip::of_request(req).map(|ip| ip.to_string());
    event.user_agent =
        req.headers().get("user-agent").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
    if let Err(e) = state.core.audit.append(event).await {
        tracing::error!(error = ?e, "could not append an audit event");
    }
}

/// [`session::signed_in_user`], with a failure answered by the "unavailable" page, and only
/// if the login is as strong as the account needs now (a password-only login of an account
/// that has since gained a factor requirement signs in again).
// The error is the page to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
async fn signed_in_user(
    state: &AppState,
    s: &session::BrowserSession,
) -> Result<Option<crate::domain::User>, HttpResponse> {
    let unavailable = |e: &dyn std::fmt::Debug| {
        tracing::error!(error = ?e, "the signed-in account could not be looked up");
        pages::unavailable_plain()
    };
    let Some(user) = session::signed_in_user(state, s).await.map_err(|e| unavailable(&e))? else {
        return Ok(None);
    };
    let have = s.auth.as_ref().and_then(|a| crate::domain::Acr::parse(&a.acr));
    // A multi-factor login meets any requirement: only a weaker one needs the account read.
    if have == Some(crate::domain::Acr::Mfa) {
        return Ok(Some(user));
    }
    let needed = factor_state(state, &user).await.map_err(|e| unavailable(&e))?.level();
    Ok(have.is_some_and(|h| h >= needed).then_some(user))
}
