//! `GET/POST /login`: the username + password page of a pending authorization request. A right
//! password either completes the login or, when a second factor is due, starts a
//! half-finished one that only the second-factor page can complete.
//! One answer for every refusal (unknown user, wrong password, disabled, locked), so the page
//! reveals nothing about which accounts exist; the audit trail records the real reason.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::SecretString;

use super::complete::{Admission, Completion, Proof, complete_login};
use super::pages::{self, LoginPage};
use super::session::{self, PartialLogin};
use super::{
    LoginAttempt, PageContext, RequestQuery, attempt_login, audit, page_context, posted, resume, with_cookie,
};
use crate::domain::{Acr, AuditEvent, Factor, Outcome, amr};
use crate::limits::Limit;
use crate::mfa::SecondStep;
use crate::oidc::Issuer;
use crate::oidc::authorize::Pending;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(show)).route("/login", web::post().to(submit));
}

async fn client_name(state: &AppState, p: &Pending) -> String {
    let Some(id) = p.client_id() else { return pages::text(None).your_account.to_owned() };
    match state.clients.get(id).await {
        Ok(Some(e)) => e.0.registration.name.clone(),
        _ => id.to_string(),
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
    let hint = p.login_hint().unwrap_or_default();
    render(&ctx.loaded.session.csrf, p, &name, hint, None, StatusCode::OK)
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
    // Every guess costs a hash: one address gets a bounded number a minute, whichever
    // accounts they name, and is told when to come back.
    if let Err(resp) = super::within_limit(&state, &req, Limit::PasswordAttempt).await {
        return resp;
    }
    let password = SecretString::from(form.get("password").unwrap_or("").to_owned());
    let password_at_us = state.core.clock.now().timestamp_micros();
    let attempt = match attempt_login(&state.core, &state.sessions, &username, password).await {
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
                .details(serde_json::json!({ "reason": why.as_str(), "client_id": p.client_id() }));
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
    let factors = match super::factor_state(&state, &user).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = ?e, "the account's factors could not be read");
            return pages::unavailable(&req);
        }
    };
    let step = crate::mfa::plan(&factors.requirement, factors.enrolled(), p.wanted_acr());
    let details = |next: &str| serde_json::json!({ "client_id": p.client_id(), "next": next });
    let actor = format!("user:{}", user.username);
    let (factors_offered, enrolling) = match step {
        SecondStep::NotNeeded => {
            let proof = Proof {
                amr: vec![amr::PWD.to_owned()],
                acr: Acr::Password,
                admission: Admission::Claim,
                password_at_us,
            };
            let (auth, cookie) = match complete_login(&state, &mut loaded, &user, proof, secure).await {
                Ok(Completion::Done { auth, cookie }) => (auth, cookie),
                Ok(why @ (Completion::Locked | Completion::Stale)) => {
                    let reason = if matches!(why, Completion::Locked) { "locked" } else { "stale_password" };
                    let event = AuditEvent::new(actor, "login.password", Outcome::Failure)
                        .target(format!("user:{}", user.id))
                        .details(serde_json::json!({ "reason": reason, "client_id": p.client_id() }));
                    audit(&state, &req, event).await;
                    let msg = Some(t.wrong_credentials);
                    return render(&loaded.session.csrf, &p, &name, &username, msg, StatusCode::OK);
                }
                Err(resp) => return resp,
            };
            let event = AuditEvent::new(actor, "login.password", Outcome::Success)
                .target(format!("user:{}", user.id))
                .details(serde_json::json!({ "client_id": p.client_id(), "sid": auth.sid }));
            audit(&state, &req, event).await;
            return with_cookie(&req, resume(&p.id), &cookie);
        }
        SecondStep::NoUsableFactor => {
            let event = AuditEvent::new(actor, "login.password", Outcome::Failure)
                .target(format!("user:{}", user.id))
                .details(serde_json::json!({ "reason": "no_usable_factor", "client_id": p.client_id() }));
            audit(&state, &req, event).await;
            // Only the client asked for a second factor (the roles do not need one): the
            // client hears that its request cannot be met (OIDC Core §3.1.2.6 via the
            // Unmet Authentication Requirements extension).
            if factors.requirement == crate::mfa::Requirement::None
                && let Some(r) = p.client_request()
            {
                loaded.session.remove_pending(&p.id);
                let Ok(cookie) = session::save(&state, &mut loaded, secure).await else {
                    return pages::unavailable(&req);
                };
                let e = crate::oidc::authorize::RedirectError {
                    error: "unmet_authentication_requirements",
                    description: "This account has no second factor it can use here.",
                };
                let to =
                    crate::oidc::authorize::error_redirect(&issuer, &r.redirect_uri, r.state.as_deref(), &e);
                return with_cookie(&req, to, &cookie);
            }
            return pages::message(StatusCode::FORBIDDEN, t.problem, t.no_factor);
        }
        SecondStep::Verify(f) => (f, false),
        SecondStep::EnrollTotp => (Vec::new(), true),
    };
    // The password is right; the login is not done. What the browser holds now grants nothing
    // but the second-factor page — and someone else's login in this browser ends now, not
    // when this one completes.
    if let Some(prev) = loaded.session.auth.take_if(|a| a.user_id != user.id)
        && let Err(e) = crate::oidc::revocation::end_login(&state, &prev.sid).await
    {
        tracing::error!(error = ?e, "could not end the previous login");
        return pages::unavailable(&req);
    }
    let mut half = PartialLogin {
        tx: crate::crypto::random_token(16),
        user_id: user.id.clone(),
        password_at_us,
        recovery: factors.totp.is_some()
            && factors.recovery_left > 0
            && factors_offered.contains(&Factor::Totp),
        factors: factors_offered,
        enrolling: None,
    };
    if enrolling {
        half.enrolling = Some(super::enroll::new_enrollment(&state, &half));
    }
    loaded.session.partial = Some(half);
    let Ok(cookie) = session::renew(&state, &mut loaded, secure).await else {
        return pages::unavailable(&req);
    };
    let event = AuditEvent::new(actor, "login.password", Outcome::Success)
        .target(format!("user:{}", user.id))
        .details(details(if enrolling { "enroll_totp" } else { "second_factor" }));
    audit(&state, &req, event).await;
    with_cookie(&req, resume(&p.id), &cookie)
}
