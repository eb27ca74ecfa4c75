//! `GET/POST /login/password`: a person whose account must change its password (a reset
//! campaign, the first administrator, an import) chooses a new one before any code is issued.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::SecretString;

use super::pages::{self, PasswordPage};
use super::password::is_current_password;
use super::rules::{PasswordRule, check_new_password};
use super::{
    PageContext, RequestQuery, audit, page_context, posted, resume, session, signed_in_user, with_cookie,
};
use crate::domain::{AuditEvent, Outcome, User};
use crate::oidc::Issuer;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login/password", web::get().to(show)).route("/login/password", web::post().to(submit));
}

fn render(
    state: &AppState,
    csrf: &str,
    request: &str,
    user: &User,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let t = pages::text(None);
    let min_length = state.core.settings.password.min_length;
    let page = PasswordPage {
        t,
        csrf,
        request,
        username: user.username.as_str(),
        min_length,
        rule_length: t.rule_length.replace("{n}", &min_length.to_string()),
        error,
    };
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
    match signed_in_user(&state, &ctx.loaded.session).await {
        Err(resp) => resp,
        Ok(Some(user)) if user.must_change_password => {
            render(&state, &ctx.loaded.session.csrf, &q.request, &user, None, StatusCode::OK)
        }
        // Nothing to change (or not signed in): the flow decides where to go.
        Ok(_) => resume(&q.request),
    }
}

async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, PageContext { mut loaded, pending, secure }) = match posted(&req, &body, &state, &issuer).await
    {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let request = pending.id;
    let user = match signed_in_user(&state, &loaded.session).await {
        Err(resp) => return resp,
        Ok(Some(u)) if u.must_change_password => u,
        Ok(_) => return resume(&request),
    };
    let t = pages::text(None);
    let csrf = loaded.session.csrf.clone();
    if !loaded.session.csrf_ok(form.get("csrf")) {
        return render(&state, &csrf, &request, &user, Some(t.form_expired), StatusCode::FORBIDDEN);
    }
    let new = form.get("new_password").unwrap_or("");
    let verdict = if new != form.get("confirm_password").unwrap_or("") {
        Err(PasswordRule::Mismatch)
    } else {
        check_new_password(user.username.as_str(), new, state.core.settings.password.min_length)
    };
    let verdict = match verdict {
        Ok(()) => match is_current_password(&state.core, &user, new).await {
            Ok(true) => Err(PasswordRule::Unchanged),
            Ok(false) => Ok(()),
            Err(e) => {
                tracing::error!(error = ?e, "checking the current password failed");
                return pages::unavailable(&req);
            }
        },
        Err(rule) => Err(rule),
    };
    if let Err(rule) = verdict {
        let msg = rule.to_string();
        return render(&state, &csrf, &request, &user, Some(&msg), StatusCode::OK);
    }
    let hash = match state.core.passwords.hash(SecretString::from(new.to_owned())).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = ?e, "hashing the new password failed");
            return pages::unavailable(&req);
        }
    };
    let (account, now, log) = (user.clone(), state.core.clock.now(), state.core.audit.clone());
    let stored = state
        .core
        .db
        .run(move |c| {
            crate::store::write_transaction(c, |c| {
                crate::campaigns::store_new_password(c, &log, &account, &hash, now)
            })
        })
        .await;
    if let Err(e) = stored {
        tracing::error!(error = ?e, "storing the new password failed");
        return pages::unavailable(&req);
    }
    // Whoever else holds a login of this account (from before the change was required, such as
    // after a breach) loses it now, with its refresh and access tokens.
    let this = loaded.session.auth.as_ref().map(|a| a.sid.clone());
    let others = match session::logins_of(&state, &user.id).await {
        Ok(l) => {
            l.into_iter().map(|(sid, _)| sid).filter(|sid| Some(sid) != this.as_ref()).collect::<Vec<_>>()
        }
        Err(e) => {
            tracing::error!(error = ?e, "listing the account's logins failed");
            return pages::unavailable(&req);
        }
    };
    for sid in &others {
        if crate::oidc::revocation::end_login(&state, sid).await.is_err() {
            return pages::unavailable(&req);
        }
    }
    let event = AuditEvent::new(format!("user:{}", user.username), "password.change", Outcome::Success)
        .target(format!("user:{}", user.id))
        .details(serde_json::json!({ "reason": "required", "other_logins_ended": others.len() }));
    audit(&state, &req, event).await;
    let Ok(cookie) = session::renew(&state, &mut loaded, secure).await else {
        return pages::unavailable(&req);
    };
    with_cookie(&req, resume(&request), &cookie)
}
