//! `GET/POST /consent`: a person agrees (or not) that a third-party client may receive the
//! scopes it asked for. First-party clients never show it. An approval is remembered, so the
//! page returns only for new scopes or `prompt=consent`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::pages::{self, ConsentPage};
use super::{
    PageContext, RequestQuery, audit, page_context, posted, resume, session, signed_in_user, with_cookie,
};
use crate::domain::{AuditEvent, Outcome, Scope};
use crate::oidc::Issuer;
use crate::oidc::authorize::{self, RedirectError, see_other};
use crate::state::AppState;
use crate::store::consents;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/consent", web::get().to(show)).route("/consent", web::post().to(submit));
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
    let user = match signed_in_user(&state, &ctx.loaded.session).await {
        Err(resp) => return resp,
        Ok(Some(u)) => u,
        Ok(None) => return resume(&q.request),
    };
    let p = &ctx.pending;
    let Some(r) = p.client_request() else { return resume(&q.request) };
    let client = match state.clients.get(&r.client_id).await {
        Ok(Some(e)) => e.0.registration.name.clone(),
        _ => return pages::expired(&req),
    };
    let page = ConsentPage {
        t: pages::text(None),
        csrf: &ctx.loaded.session.csrf,
        request: &p.id,
        client_name: &client,
        username: user.username.as_str(),
        scopes: r.scope.iter().map(Scope::as_str).collect(),
    };
    pages::html(StatusCode::OK, page.render())
}

async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, PageContext { mut loaded, pending: p, secure }) =
        match posted(&req, &body, &state, &issuer).await {
            Ok(v) => v,
            Err(resp) => return resp,
        };
    let again = || see_other(&format!("/consent?request={}", p.id));
    // A missing or forged CSRF token, or no decision: show the page again with a valid form.
    if !loaded.session.csrf_ok(form.get("csrf")) {
        return again();
    }
    let allow = match form.get("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => return again(),
    };
    let user = match signed_in_user(&state, &loaded.session).await {
        Err(resp) => return resp,
        Ok(Some(u)) => u,
        Ok(None) => return resume(&p.id),
    };
    let Some(r) = p.client_request() else { return resume(&p.id) };
    let outcome = if allow { Outcome::Success } else { Outcome::Denied };
    let event = AuditEvent::new(format!("user:{}", user.username), "consent", outcome)
        .target(format!("client:{}", r.client_id))
        .details(serde_json::json!({ "scope": Scope::join(&r.scope) }));
    let resp = if allow {
        let (uid, cid, scopes, now) =
            (user.id.clone(), r.client_id.clone(), r.scope.clone(), state.core.clock.now());
        if let Err(e) = state.core.db.run(move |c| consents::grant(c, &uid, &cid, &scopes, now)).await {
            tracing::error!(error = ?e, "storing a consent failed");
            return pages::unavailable(&req);
        }
        authorize::mark_consented(&mut loaded.session, &p.id);
        resume(&p.id)
    } else {
        loaded.session.remove_pending(&p.id);
        let e = RedirectError { error: "access_denied", description: "The person did not allow access." };
        authorize::error_redirect(&issuer, &r.redirect_uri, r.state.as_deref(), &e)
    };
    audit(&state, &req, event).await;
    let Ok(cookie) = session::save(&state, &mut loaded, secure).await else {
        return pages::unavailable(&req);
    };
    with_cookie(&req, resp, &cookie)
}
