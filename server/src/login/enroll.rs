//! `POST /login/factor/enroll` (and the page `/login/factor` shows while enrolling): a person
//! whose roles need a second factor and who has none sets up an authenticator app right after
//! the password, before any code is issued. The app counts only once it produced one right
//! code; then ten recovery codes are shown, once.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine;
use zeroize::Zeroizing;

use super::complete::{Admission, Completion, Proof, complete_login};
use super::pages::{self, EnrollPage, RecoveryCodesPage};
use super::second_factor::{burn_and_start_again, half_login, locked_out, spend_try};
use super::session::PartialLogin;
use super::{PageContext, audit, posted, resume, with_cookie};
use crate::domain::{Acr, AuditEvent, Outcome, User, amr};
use crate::mfa::{recovery, totp};
use crate::oidc::Issuer;
use crate::state::AppState;
use crate::store::factors;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login/factor/enroll", web::post().to(submit));
}

/// The associated data of a secret being set up: bound to the account and the login
/// transaction, so it cannot be carried into another.
fn pending_aad(h: &PartialLogin) -> String {
    format!("totp-enroll:{}:{}", h.user_id, h.tx)
}

/// A new secret for `h`, sealed for the browser session.
pub(super) fn new_enrollment(state: &AppState, h: &PartialLogin) -> String {
    let secret = totp::new_secret();
    state.core.keys.secrets.seal(&secret, pending_aad(h).as_bytes())
}

/// The enrollment page: the QR code and the key of the secret being set up.
pub(super) fn show(
    state: &AppState,
    csrf: &str,
    request: &str,
    h: &PartialLogin,
    user: &User,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let Some(sealed) = &h.enrolling else { return resume(request) };
    let Ok(secret) = state.core.keys.secrets.open(sealed, pending_aad(h).as_bytes()) else {
        tracing::error!("the secret being enrolled does not open");
        return pages::unavailable_plain();
    };
    let secret = Zeroizing::new(secret);
    let e = match totp::enrollment(&secret, user.username.as_str(), &state.core.settings.mfa.issuer_name) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "the enrollment QR code could not be drawn");
            return pages::unavailable_plain();
        }
    };
    enroll_page(csrf, request, "/login/factor/enroll", &e, error, status)
}

/// The enrollment page for `e`, posting to `action`.
pub(super) fn enroll_page(
    csrf: &str,
    request: &str,
    action: &str,
    e: &totp::Enrollment,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let qr = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&e.qr_png));
    let t = pages::text(None);
    let page = EnrollPage {
        t,
        action,
        csrf,
        request,
        qr_data_uri: qr,
        otpauth_uri: &e.uri,
        manual_key: &e.manual_key,
        error,
    };
    pages::html(status, page.render())
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
    let request = pending.id.clone();
    let (h, user) = match half_login(&state, &loaded, &request).await {
        Ok(v) if v.0.enrolling.is_some() => v,
        Ok(_) => return resume(&request),
        Err(resp) => return resp,
    };
    let t = pages::text(None);
    let csrf = loaded.session.csrf.clone();
    if !loaded.session.csrf_ok(form.get("csrf")) {
        return show(&state, &csrf, &request, &h, &user, Some(t.form_expired), StatusCode::FORBIDDEN);
    }
    if let Err(resp) = spend_try(&state, &req, &mut loaded, secure, &request, &user, "totp_enroll").await {
        return resp;
    }
    let Some(sealed) = &h.enrolling else { return resume(&request) };
    let Ok(secret) = state.core.keys.secrets.open(sealed, pending_aad(&h).as_bytes()) else {
        return pages::unavailable(&req);
    };
    let secret = Zeroizing::new(secret);
    let now = state.core.clock.now();
    let Some(step) = totp::verify(&secret, form.get("code").unwrap_or(""), now.timestamp(), -1) else {
        let event = AuditEvent::new(format!("user:{}", user.username), "mfa.totp.enroll", Outcome::Failure)
            .target(format!("user:{}", user.id))
            .details(serde_json::json!({ "reason": "wrong_code" }));
        audit(&state, &req, event).await;
        return show(&state, &csrf, &request, &h, &user, Some(t.enroll_wrong), StatusCode::OK);
    };
    let codes = recovery::generate();
    let digests: Vec<String> = codes
        .iter()
        .filter_map(|c| recovery::normalize(c))
        .map(|n| recovery::digest(&state.core.keys.digester, &user.id, &n))
        .collect();
    // Admitted first (not locked at this moment), so nothing is stored for a locked account.
    let uid = user.id.clone();
    match state.core.db.run(move |c| crate::store::users::claim_login(c, &uid, now)).await {
        Ok(true) => {}
        Ok(false) => {
            return locked_out(&state, &req, &mut loaded, secure, &request).await;
        }
        Err(_) => return pages::unavailable(&req),
    }
    let stored = state.core.keys.secrets.seal(&secret, format!("totp:{}", user.id).as_bytes());
    let uid = user.id.clone();
    // Only if the account still has no app: one set up meanwhile (another tab, the person
    // themselves while someone else holds their password) is never replaced from here.
    match state.core.db.run(move |c| factors::enroll_first_totp(c, &uid, &stored, step, &digests, now)).await
    {
        Ok(true) => {}
        Ok(false) => {
            let details = serde_json::json!({ "reason": "already_enrolled", "during": "login" });
            let event =
                AuditEvent::new(format!("user:{}", user.username), "mfa.totp.enroll", Outcome::Failure)
                    .target(format!("user:{}", user.id))
                    .details(details);
            audit(&state, &req, event).await;
            let msg = t.enroll_conflict;
            return burn_and_start_again(
                &state,
                &req,
                &mut loaded,
                secure,
                &request,
                msg,
                StatusCode::CONFLICT,
            )
            .await;
        }
        Err(e) => {
            tracing::error!(error = ?e, "could not store the authenticator app");
            return pages::unavailable(&req);
        }
    }
    let event = AuditEvent::new(format!("user:{}", user.username), "mfa.totp.enroll", Outcome::Success)
        .target(format!("user:{}", user.id))
        .details(serde_json::json!({ "recovery_codes": codes.len(), "during": "login" }));
    audit(&state, &req, event).await;
    let proof = Proof {
        amr: vec![amr::PWD.to_owned(), amr::OTP.to_owned(), amr::MFA.to_owned()],
        acr: Acr::Mfa,
        admission: Admission::Charged,
        password_at_us: h.password_at_us,
    };
    let (auth, cookie) = match complete_login(&state, &mut loaded, &user, proof, secure).await {
        Ok(Completion::Done { auth, cookie }) => (auth, cookie),
        Ok(Completion::Locked | Completion::Stale) => {
            return locked_out(&state, &req, &mut loaded, secure, &request).await;
        }
        Err(resp) => return resp,
    };
    let event = AuditEvent::new(format!("user:{}", user.username), "login.second_factor", Outcome::Success)
        .target(format!("user:{}", user.id))
        .details(
            serde_json::json!({ "method": "totp_enroll", "client_id": pending.client_id(), "sid": auth.sid }),
        );
    audit(&state, &req, event).await;
    let next = format!("/authorize/resume?request={request}");
    let page = RecoveryCodesPage { t, next: &next, codes: &codes, notice: None };
    with_cookie(&req, pages::html(StatusCode::OK, page.render()), &cookie)
}
