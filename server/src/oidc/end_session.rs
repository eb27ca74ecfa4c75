//! RP-Initiated Logout 1.0 (`end_session_endpoint`, GET and POST at `/logout`).
//!
//! With a valid `id_token_hint` (signed by us; it may have expired) naming this browser's login,
//! that login ends at once: its `sid` record goes, so every token carrying it is inactive, and
//! its refresh tokens are revoked. Any other request — no hint, or a hint naming another
//! login — asks the person to confirm (a CSRF-protected form, §2), so a third-party page or
//! an old ID token cannot sign people out. A POST that is not that confirmation continues as
//! a GET, which carries the SameSite=Lax session cookie a cross-site POST does not. `post_logout_redirect_uri` is followed only when
//! it is registered, exactly, for the client the hint (or `client_id`) names; otherwise the
//! person sees a "signed out" page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::Issuer;
use super::authorize::{see_other, with_query};
use super::form::Form;
use crate::domain::{AuditEvent, ClientId, Outcome};
use crate::login::pages::{self, LogoutPage};
use crate::login::session;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/logout", web::get().to(logout_get)).route("/logout", web::post().to(logout_post));
}

/// What an `id_token_hint` says, once its signature and issuer are checked (here and at
/// `/authorize`).
pub(super) struct Hint {
    sid: Option<String>,
    client_id: Option<String>,
    pub(super) sub: String,
}

pub(super) fn read_hint(state: &AppState, issuer: &Issuer, token: &str) -> Option<Hint> {
    let keyring = &state.core.keyring;
    let claims = crate::crypto::verify_jwt(token, None, |kid| keyring.verifying_key(kid)).ok()?;
    if claims.get("iss")?.as_str()? != issuer.issuer {
        return None;
    }
    let aud = match claims.get("aud")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) if a.len() == 1 => a[0].as_str().map(str::to_owned),
        _ => None,
    };
    Some(Hint {
        sid: claims.get("sid").and_then(|v| v.as_str()).map(str::to_owned),
        client_id: claims.get("azp").and_then(|v| v.as_str()).map(str::to_owned).or(aud),
        sub: claims.get("sub")?.as_str()?.to_owned(),
    })
}

async fn logout_get(req: HttpRequest, state: web::Data<AppState>, issuer: web::Data<Issuer>) -> HttpResponse {
    match Form::parse(req.query_string().as_bytes()) {
        Ok(form) => logout(&req, &state, &issuer, &form, false).await,
        Err(_) => pages::error_page(&req, StatusCode::BAD_REQUEST, "This sign-out link is not valid."),
    }
}

async fn logout_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    match Form::parse(&body) {
        Ok(form) => logout(&req, &state, &issuer, &form, true).await,
        Err(_) => pages::error_page(&req, StatusCode::BAD_REQUEST, "This sign-out request is not valid."),
    }
}

async fn logout(
    req: &HttpRequest,
    state: &AppState,
    issuer: &Issuer,
    form: &Form,
    posted: bool,
) -> HttpResponse {
    let secure = session::secure_issuer(&issuer.issuer);
    let Ok(loaded) = session::load(state, req, secure).await else { return pages::unavailable(req) };
    let hint = match form.get("id_token_hint") {
        Some(t) => match read_hint(state, issuer, t) {
            Some(h) => Some(h),
            // §2: a hint we did not issue is an error, not a reason to trust the rest.
            None => {
                return pages::error_page(req, StatusCode::BAD_REQUEST, "This sign-out link is not valid.");
            }
        },
        None => None,
    };
    let client_id =
        hint.as_ref().and_then(|h| h.client_id.clone()).or_else(|| form.get("client_id").map(str::to_owned));
    if let (Some(h), Some(c)) = (&hint, form.get("client_id"))
        && h.client_id.as_deref() != Some(c)
    {
        return pages::error_page(req, StatusCode::BAD_REQUEST, "This sign-out link is not valid.");
    }
    // The redirect target is verified before anything happens, like /authorize's.
    let redirect = match form.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = match &client_id {
                Some(id) => state.clients.get(&ClientId::from_string(id.clone())).await.ok().flatten(),
                None => None,
            };
            let registered = client.is_some_and(|e| {
                e.0.registration.post_logout_redirect_uris.iter().any(|r| r.as_str() == uri)
            });
            if !registered {
                return pages::error_page(
                    req,
                    StatusCode::BAD_REQUEST,
                    "This sign-out link is not valid: the address to return to is not registered.",
                );
            }
            Some(uri.to_owned())
        }
    };
    let confirmed = posted && form.get("confirm") == Some("yes") && loaded.session.csrf_ok(form.get("csrf"));
    if posted && !confirmed {
        // A cross-site POST carries no SameSite=Lax cookie, so this browser's login is not
        // visible here: continue as a same-site GET, which carries it.
        let params: Vec<(&str, &str)> = ["id_token_hint", "post_logout_redirect_uri", "state", "client_id"]
            .iter()
            .filter_map(|k| form.get(k).map(|v| (*k, v)))
            .collect();
        return see_other(&with_query("/logout", &params));
    }
    let browser_sid = loaded.session.auth.as_ref().map(|a| a.sid.clone());
    let hint_sid = hint.as_ref().and_then(|h| h.sid.clone());
    // §2: without the person's confirmation only the login the hint names *in this browser*
    // ends; anything else (no hint, another login's hint) asks first.
    let matches_browser = hint_sid.is_some() && hint_sid == browser_sid;
    let nothing_to_end = hint_sid.is_none() && browser_sid.is_none();
    if !(confirmed || matches_browser || nothing_to_end) {
        let mut loaded = loaded;
        let Ok(cookie) = session::save(state, &mut loaded, secure).await else {
            return pages::unavailable(req);
        };
        let page = LogoutPage {
            t: pages::text(None),
            csrf: &loaded.session.csrf,
            id_token_hint: form.get("id_token_hint"),
            post_logout_redirect_uri: redirect.as_deref(),
            state: form.get("state"),
            client_id: client_id.as_deref(),
        };
        let mut resp = pages::html(StatusCode::OK, page.render());
        let _ = resp.add_cookie(&cookie);
        return resp;
    }
    // Only this browser's login ends: a confirmation comes from whoever clicked, so a hint
    // naming another login (someone else's ID token) ends nothing.
    let ended: Vec<String> = browser_sid.clone().into_iter().collect();
    for sid in &ended {
        if let Err(e) = super::revocation::end_login(state, sid).await {
            tracing::error!(error = ?e, "ending a login failed");
            return pages::unavailable(req);
        }
        let actor = match (&hint, &loaded.session.auth) {
            (Some(h), _) => format!("user:{}", h.sub),
            (None, Some(a)) => format!("user:{}", a.user_id),
            (None, None) => "anonymous".to_owned(),
        };
        let event = AuditEvent::new(actor, "logout", Outcome::Success)
            .details(serde_json::json!({ "sid": sid, "client_id": client_id, "confirmed": confirmed }));
        if let Err(e) = state.core.audit.append(event).await {
            tracing::error!(error = ?e, "auditing a logout failed");
        }
    }
    let cookie = session::destroy(state, &loaded, secure).await.ok();
    let mut resp = match redirect {
        Some(uri) => {
            let params: Vec<(&str, &str)> = form.get("state").map(|s| vec![("state", s)]).unwrap_or_default();
            see_other(&if params.is_empty() { uri } else { with_query(&uri, &params) })
        }
        None => {
            let t = pages::text(None);
            pages::message(StatusCode::OK, t.signed_out, t.signed_out_message)
        }
    };
    if let Some(c) = cookie {
        let _ = resp.add_cookie(&c);
    }
    resp
}
