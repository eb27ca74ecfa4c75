//! `GET/POST /login`: the username + password page of a pending authorization request.
//! One answer for every refusal (unknown user, wrong password, disabled, locked), so the page
//! reveals nothing about which accounts exist; the audit trail records the real reason.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::SecretString;

use super::pages::{self, LoginPage};
use super::session::{self, Authenticated};
use super::{
    LoginAttempt, PageContext, RequestQuery, attempt_login, audit, page_context, posted, resume, with_cookie,
};
use crate::domain::{AuditEvent, Outcome};
use crate::oidc::Issuer;
use crate::oidc::authorize::Pending;
use crate::state::AppState;

/// RFC 8176 method reference and our authentication context class for a password login.
pub const AMR_PASSWORD: &str = "pwd";
pub const ACR_PASSWORD: &str = "urn:pramaan:acr:password";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(show)).route("/login", web::post().to(submit));
}

async fn client_name(state: &AppState, p: &Pending) -> String {
    match state.clients.get(&p.request.client_id).await {
        Ok(Some(e)) => e.0.registration.name.clone(),
        _ => p.request.client_id.to_string(),
    }
}

fn render(
    csrf: &str,
    p: &Pending,
    client: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let page = LoginPage { t: pages::text(None), csrf, request: &p.id, client_name: client, username, error };
    pages::html(status, page.render())
}

async fn show(
    req: HttpRequest,
    q: web::Query<RequestQuery>,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let ctx = match page_context(&req, &state, &issuer, Some(&q.request)).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let p = &ctx.pending;
    let name = client_name(&state, p).await;
    let hint = p.request.login_hint.clone().unwrap_or_default();
    render(&ctx.loaded.session.csrf, p, &name, &hint, None, StatusCode::OK)
}

async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, ctx) = match posted(&req, &body, &state, &issuer).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let PageContext { mut loaded, pending: p, secure } = ctx;
    let name = client_name(&state, &p).await;
    let username = form.get("username").unwrap_or("").trim().to_owned();
    let t = pages::text(None);
    if !loaded.session.csrf_ok(form.get("csrf")) {
        return render(
            &loaded.session.csrf,
            &p,
            &name,
            &username,
            Some(t.form_expired),
            StatusCode::FORBIDDEN,
        );
    }
    let password = SecretString::from(form.get("password").unwrap_or("").to_owned());
    let attempt = match attempt_login(&state.core, &username, password).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = ?e, "the password step failed");
            return pages::unavailable(&req);
        }
    };
    let user = match attempt {
        LoginAttempt::Refused { user, why } => {
            // The typed name is recorded only when it names an account: people type their
            // password into the username field, and the trail must never hold a password.
            let actor =
                user.as_ref().map_or_else(|| "anonymous".to_owned(), |u| format!("user:{}", u.username));
            let mut event = AuditEvent::new(actor, "login.password", Outcome::Failure)
                .details(serde_json::json!({ "reason": why.as_str(), "client_id": p.request.client_id }));
            if let Some(u) = &user {
                event = event.target(format!("user:{}", u.id));
            }
            audit(&state, &req, event).await;
            return render(
                &loaded.session.csrf,
                &p,
                &name,
                &username,
                Some(t.wrong_credentials),
                StatusCode::OK,
            );
        }
        LoginAttempt::Success(user) => user,
    };
    let now_us = state.core.clock.now().timestamp_micros();
    // The same person signing in again keeps their login (`sid`) while it still stands, so
    // other applications' tokens of that login live on; its record is never rewritten, so an
    // ended or cut-off login cannot come back. Otherwise a new login starts, and someone
    // else's login in this browser ends.
    let sid = match loaded.session.auth.take() {
        Some(prev) if prev.user_id == user.id => match session::sid_record(&state, &prev.sid).await {
            Ok(Some(r))
                if r.user_id == user.id && r.auth_time_us >= user.tokens_valid_after.timestamp_micros() =>
            {
                Some(prev.sid)
            }
            Ok(_) => None,
            Err(_) => return pages::unavailable(&req),
        },
        Some(prev) => {
            if let Err(e) = crate::oidc::revocation::end_login(&state, &prev.sid).await {
                tracing::error!(error = ?e, "could not end the previous login");
                return pages::unavailable(&req);
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
        auth_time_us: now_us,
        amr: vec![AMR_PASSWORD.to_owned()],
        acr: ACR_PASSWORD.to_owned(),
    };
    if new_login && let Err(e) = session::start_sid(&state, &auth).await {
        tracing::error!(error = ?e, "could not record the login");
        return pages::unavailable(&req);
    }
    loaded.session.auth = Some(auth.clone());
    let Ok(cookie) = session::renew(&state, &mut loaded, secure).await else {
        return pages::unavailable(&req);
    };
    let event = AuditEvent::new(format!("user:{}", user.username), "login.password", Outcome::Success)
        .target(format!("user:{}", user.id))
        .details(serde_json::json!({ "client_id": p.request.client_id, "sid": auth.sid }));
    audit(&state, &req, event).await;
    with_cookie(&req, resume(&p.id), &cookie)
}
