//! `GET/POST /login/factor` and `POST /login/factor/send`: the second step of a login — a code
//! from the authenticator app, a code by SMS, or a recovery code. The step belongs to a
//! half-finished login ([`PartialLogin`]) made by the password page; without one these pages
//! send the browser back to the flow, which starts at the password.
//!
//! Wrong codes count twice: against the login transaction (after `mfa.max_tries` it is burnt
//! and the person starts again from the password) and against the account's lockout, which
//! only a completed login clears.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::complete::{Admission, Completion, Proof, complete_login};
use super::factor_state::{AppCode, check_app_code, spend_recovery_code};
use super::pages::{self, FactorPage, MethodLink, RecoveryCodesPage};
use super::session::{self, Loaded, PartialLogin};
use super::{PageContext, audit, page_context, posted, resume, with_cookie};
use crate::domain::{Acr, AuditEvent, Factor, Outcome, User, UserStatus, amr};
use crate::mfa::sms::{self, Recipient, Refusal, Verdict};
use crate::oidc::Issuer;
use crate::state::AppState;
use crate::store::users;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login/factor", web::get().to(show))
        .route("/login/factor", web::post().to(submit))
        .route("/login/factor/send", web::post().to(send_sms));
}

#[derive(serde::Deserialize)]
struct FactorQuery {
    request: String,
    method: Option<String>,
}

/// How the person proves the second factor on this page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Totp,
    Sms,
    Recovery,
}

impl Method {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "totp" => Some(Self::Totp),
            "sms" => Some(Self::Sms),
            "recovery" => Some(Self::Recovery),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Sms => "sms",
            Self::Recovery => "recovery",
        }
    }

    /// The methods a half-finished login may finish with, the app first.
    fn offered(h: &PartialLogin) -> Vec<Self> {
        let mut out: Vec<Self> = h
            .factors
            .iter()
            .map(|f| match f {
                Factor::Totp => Self::Totp,
                Factor::Sms => Self::Sms,
            })
            .collect();
        if h.recovery {
            out.push(Self::Recovery);
        }
        out
    }

    /// The method `asked` for, if offered; otherwise the first offered.
    fn pick(h: &PartialLogin, asked: Option<&str>) -> Option<Self> {
        let offered = Self::offered(h);
        asked.and_then(Self::parse).filter(|m| offered.contains(m)).or_else(|| offered.first().copied())
    }
}

/// Whether the password `h` proved still counts: the account was not cut off (disabled,
/// a reset campaign) and its password did not change since.
fn still_valid(h: &PartialLogin, user: &User) -> bool {
    let cut_off = user.tokens_valid_after.timestamp_micros();
    let changed = user.password_changed_at.map_or(i64::MIN, |t| t.timestamp_micros());
    h.password_at_us >= cut_off && h.password_at_us >= changed
}

/// The half-finished login and its (still active) account, or where to go instead.
// The error is the response to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
pub(super) async fn half_login(
    state: &AppState,
    loaded: &Loaded,
    request: &str,
) -> Result<(PartialLogin, User), HttpResponse> {
    let Some(h) = loaded.session.partial.clone() else { return Err(resume(request)) };
    let id = h.user_id.clone();
    match state.core.db.run(move |c| users::find(c, &id)).await {
        Ok(Some(u)) if u.status == UserStatus::Active && still_valid(&h, &u) => Ok((h, u)),
        Ok(_) => Err(resume(request)),
        Err(e) => {
            tracing::error!(error = ?e, "the half-signed-in account could not be looked up");
            Err(pages::unavailable_plain())
        }
    }
}

struct View {
    method: Method,
    code_sent: bool,
    notice: Option<String>,
    error: Option<String>,
}

fn render(
    state: &AppState,
    csrf: &str,
    request: &str,
    h: &PartialLogin,
    user: &User,
    v: View,
    status: StatusCode,
) -> HttpResponse {
    let t = pages::text(None);
    let phone = user.phone.as_ref().map(sms::mask).unwrap_or_default();
    let prompt = match v.method {
        Method::Totp => t.totp_prompt.to_owned(),
        Method::Sms => t.sms_prompt.replace("{phone}", &phone),
        Method::Recovery => t.recovery_prompt.to_owned(),
    };
    let others = Method::offered(h)
        .into_iter()
        .filter(|m| *m != v.method)
        .map(|m| MethodLink {
            method: m.as_str(),
            label: match m {
                Method::Totp => t.use_totp,
                Method::Sms => t.use_sms,
                Method::Recovery => t.use_recovery,
            },
        })
        .collect();
    let _ = state;
    let page = FactorPage {
        t,
        csrf,
        request,
        method: v.method.as_str(),
        prompt,
        others,
        code_sent: v.code_sent,
        notice: v.notice,
        error: v.error,
    };
    pages::html(status, page.render())
}

async fn show(
    req: HttpRequest,
    q: web::Query<FactorQuery>,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let ctx = match page_context(&req, &state, &issuer, Some(&q.request)).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (h, user) = match half_login(&state, &ctx.loaded, &q.request).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if h.enrolling.is_some() {
        return super::enroll::show(
            &state,
            &ctx.loaded.session.csrf,
            &q.request,
            &h,
            &user,
            None,
            StatusCode::OK,
        );
    }
    let Some(method) = Method::pick(&h, q.method.as_deref()) else { return resume(&q.request) };
    let now_us = state.core.clock.now().timestamp_micros();
    let code_sent = method == Method::Sms
        && match sms::code_pending(state.sessions.as_ref(), &h.tx, now_us).await {
            Ok(b) => b,
            Err(_) => return pages::unavailable(&req),
        };
    let view = View { method, code_sent, notice: None, error: None };
    render(&state, &ctx.loaded.session.csrf, &q.request, &h, &user, view, StatusCode::OK)
}

fn tries_key(tx: &str) -> String {
    format!("factor-tries:{tx}")
}

/// Counts one try of the half-finished login's transaction. Past `mfa.max_tries` the login
/// is burnt (audited), and the error is the page that says to start again.
pub(super) async fn spend_try(
    state: &AppState,
    req: &HttpRequest,
    loaded: &mut Loaded,
    secure: bool,
    request: &str,
    user: &User,
    method: &str,
) -> Result<(), HttpResponse> {
    let Some(tx) = loaded.session.partial.as_ref().map(|h| h.tx.clone()) else { return Err(resume(request)) };
    let ttl = std::time::Duration::from_secs(state.core.settings.login.pending_ttl_secs);
    let n = state.sessions.increment(&tries_key(&tx), ttl).await.map_err(|_| pages::unavailable(req))?;
    if n <= u64::from(state.core.settings.mfa.max_tries) {
        return Ok(());
    }
    let details = serde_json::json!({ "method": method, "reason": "too_many_tries" });
    audit(state, req, event(user, "login.second_factor", Outcome::Failure, details)).await;
    let t = pages::text(None);
    Err(burn_and_start_again(
        state,
        req,
        loaded,
        secure,
        request,
        t.too_many_tries,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await)
}

/// [`burn`], then the page that says `msg` and leads back to the password.
pub(super) async fn burn_and_start_again(
    state: &AppState,
    req: &HttpRequest,
    loaded: &mut Loaded,
    secure: bool,
    request: &str,
    msg: &str,
    status: StatusCode,
) -> HttpResponse {
    match burn(state, loaded, secure).await {
        Ok(cookie) => with_cookie(req, start_again(request, msg, status), &cookie),
        Err(_) => pages::unavailable(req),
    }
}

/// [`burn_and_start_again`] for a locked account.
pub(super) async fn locked_out(
    state: &AppState,
    req: &HttpRequest,
    loaded: &mut Loaded,
    secure: bool,
    request: &str,
) -> HttpResponse {
    let t = pages::text(None);
    burn_and_start_again(state, req, loaded, secure, request, t.locked, StatusCode::OK).await
}

/// Ends a half-finished login (too many wrong codes, a lock): the person starts again from
/// the password.
async fn burn(
    state: &AppState,
    loaded: &mut Loaded,
    secure: bool,
) -> Result<actix_web::cookie::Cookie<'static>, crate::sessions::StoreError> {
    if let Some(h) = loaded.session.partial.take() {
        sms::discard(state.sessions.as_ref(), &h.tx).await?;
    }
    session::renew(state, loaded, secure).await
}

/// The page that sends the person back to the password.
fn start_again(request: &str, msg: &str, status: StatusCode) -> HttpResponse {
    let t = pages::text(None);
    let href = format!("/authorize/resume?request={request}");
    pages::message_with_link(status, t.sign_in_again, msg, &href, t.sign_in_again)
}

fn event(user: &User, action: &str, outcome: Outcome, details: serde_json::Value) -> AuditEvent {
    AuditEvent::new(format!("user:{}", user.username), action, outcome)
        .target(format!("user:{}", user.id))
        .details(details)
}

/// What a typed code turned out to be.
enum Checked {
    Right { amr: Vec<String>, recovery_left: Option<i64> },
    Wrong { reason: &'static str, message: String },
}

async fn check(
    state: &AppState,
    h: &PartialLogin,
    user: &User,
    method: Method,
    typed: &str,
) -> Result<Checked, HttpResponse> {
    let t = pages::text(None);
    let now = state.core.clock.now();
    let unavailable = |e: &dyn std::fmt::Debug| {
        tracing::error!(error = ?e, "the second factor could not be checked");
        pages::unavailable_plain()
    };
    let wrong = |reason| Checked::Wrong { reason, message: t.wrong_code.to_owned() };
    Ok(match method {
        Method::Totp => match check_app_code(state, user, typed).await.map_err(|e| unavailable(&e))? {
            AppCode::Right => Checked::Right {
                amr: vec![amr::PWD.into(), amr::OTP.into(), amr::MFA.into()],
                recovery_left: None,
            },
            AppCode::Replayed => wrong("replayed_code"),
            AppCode::Wrong => wrong("wrong_code"),
            AppCode::NoApp => wrong("no_app"),
        },
        Method::Sms => {
            let v = sms::verify(
                state.sessions.as_ref(),
                &state.core.keys.digester,
                &h.tx,
                typed,
                now.timestamp_micros(),
            )
            .await
            .map_err(|e| unavailable(&e))?;
            match v {
                Verdict::Right => Checked::Right {
                    amr: vec![amr::PWD.into(), amr::SMS.into(), amr::MFA.into()],
                    recovery_left: None,
                },
                Verdict::Wrong => wrong("wrong_code"),
                Verdict::Expired => {
                    Checked::Wrong { reason: "expired_code", message: t.code_expired.to_owned() }
                }
                Verdict::NoCode => Checked::Wrong { reason: "no_code", message: t.no_code_sent.to_owned() },
            }
        }
        // A recovery code is something the person has, but no one-time password.
        Method::Recovery => match spend_recovery_code(state, user, typed)
            .await
            .map_err(|e| unavailable(&e))?
        {
            Some(n) => Checked::Right { amr: vec![amr::PWD.into(), amr::MFA.into()], recovery_left: Some(n) },
            None => wrong("wrong_code"),
        },
    })
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
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let t = pages::text(None);
    let csrf = loaded.session.csrf.clone();
    let Some(method) = Method::pick(&h, form.get("method")) else { return resume(&request) };
    if !loaded.session.csrf_ok(form.get("csrf")) {
        let view = View {
            method,
            code_sent: method == Method::Sms,
            notice: None,
            error: Some(t.form_expired.to_owned()),
        };
        return render(&state, &csrf, &request, &h, &user, view, StatusCode::FORBIDDEN);
    }
    if let Err(resp) = spend_try(&state, &req, &mut loaded, secure, &request, &user, method.as_str()).await {
        return resp;
    }
    // Charged against the account before it is checked (as a wrong password would be), so
    // parallel guesses from many half-finished logins cannot outrun the lock.
    let now = state.core.clock.now();
    match super::password::charge_attempt(&state.core, &user, now).await {
        Ok(true) => {}
        Ok(false) => {
            let details = serde_json::json!({ "method": method.as_str(), "reason": "locked" });
            audit(&state, &req, event(&user, "login.second_factor", Outcome::Failure, details)).await;
            return locked_out(&state, &req, &mut loaded, secure, &request).await;
        }
        Err(_) => return pages::unavailable(&req),
    }
    let checked = match check(&state, &h, &user, method, form.get("code").unwrap_or("")).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (amr, recovery_left) = match checked {
        Checked::Right { amr, recovery_left } => (amr, recovery_left),
        Checked::Wrong { reason, message } => {
            audit(
                &state,
                &req,
                event(
                    &user,
                    "login.second_factor",
                    Outcome::Failure,
                    serde_json::json!({ "method": method.as_str(), "reason": reason }),
                ),
            )
            .await;
            let left = tries_left(&state, &h.tx).await;
            let error = format!("{message} {}", t.tries_left.replace("{n}", &left.to_string()));
            let code_sent = method == Method::Sms && reason != "expired_code" && reason != "no_code";
            let view = View { method, code_sent, notice: None, error: Some(error) };
            return render(&state, &csrf, &request, &h, &user, view, StatusCode::OK);
        }
    };
    let proof = Proof { amr, acr: Acr::Mfa, admission: Admission::Charged, password_at_us: h.password_at_us };
    let (auth, cookie) = match complete_login(&state, &mut loaded, &user, proof, secure).await {
        Ok(Completion::Done { auth, cookie }) => (auth, cookie),
        Ok(Completion::Locked | Completion::Stale) => {
            return locked_out(&state, &req, &mut loaded, secure, &request).await;
        }
        Err(resp) => return resp,
    };
    // Best effort: both expire with the transaction anyway.
    let _ = state.sessions.delete(&tries_key(&h.tx)).await;
    let _ = sms::discard(state.sessions.as_ref(), &h.tx).await;
    audit(&state, &req, event(&user, "login.second_factor", Outcome::Success, serde_json::json!({ "method": method.as_str(), "client_id": pending.client_id(), "sid": auth.sid }))).await;
    if let Some(left) = recovery_left {
        audit(
            &state,
            &req,
            event(
                &user,
                "mfa.recovery_code.used",
                Outcome::Success,
                serde_json::json!({ "remaining": left }),
            ),
        )
        .await;
        let next = format!("/authorize/resume?request={request}");
        let page = RecoveryCodesPage {
            t,
            next: &next,
            codes: &[],
            notice: Some(t.recovery_used.replace("{n}", &left.to_string())),
        };
        return with_cookie(&req, pages::html(StatusCode::OK, page.render()), &cookie);
    }
    with_cookie(&req, resume(&request), &cookie)
}

async fn tries_left(state: &AppState, tx: &str) -> u64 {
    let used = match state.sessions.get(&tries_key(tx)).await {
        Ok(Some(b)) => std::str::from_utf8(&b).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
        _ => 0,
    };
    u64::from(state.core.settings.mfa.max_tries).saturating_sub(used)
}

async fn send_sms(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, PageContext { loaded, pending, .. }) = match posted(&req, &body, &state, &issuer).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let request = pending.id.clone();
    let (h, user) = match half_login(&state, &loaded, &request).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let t = pages::text(None);
    let csrf = loaded.session.csrf.clone();
    let (Some(phone), true) = (user.phone.clone(), h.factors.contains(&Factor::Sms)) else {
        return resume(&request);
    };
    let mut view = View { method: Method::Sms, code_sent: false, notice: None, error: None };
    if !loaded.session.csrf_ok(form.get("csrf")) {
        view.error = Some(t.form_expired.to_owned());
        return render(&state, &csrf, &request, &h, &user, view, StatusCode::FORBIDDEN);
    }
    let now_us = state.core.clock.now().timestamp_micros();
    let host = url::Url::parse(&issuer.issuer).ok().and_then(|u| u.host_str().map(str::to_owned));
    let to = Recipient { user: &user.id, phone: &phone, ip: crate::http::client_ip::of_request(&req) };
    let settings = &state.core.settings.sms;
    let sent = sms::send(
        state.sessions.as_ref(),
        state.sms.as_ref(),
        &state.core.keys.digester,
        settings,
        &h.tx,
        to,
        host.as_deref(),
        now_us,
    )
    .await;
    let masked = sms::mask(&phone);
    let status = match sent {
        Err(e) => {
            tracing::error!(error = ?e, "session store unavailable");
            return pages::unavailable(&req);
        }
        Ok(Ok(())) => {
            audit(
                &state,
                &req,
                event(&user, "mfa.sms.sent", Outcome::Success, serde_json::json!({ "phone": masked })),
            )
            .await;
            view.notice = Some(
                t.sms_sent
                    .replace("{phone}", &masked)
                    .replace("{n}", &settings.code_ttl_secs.div_ceil(60).to_string()),
            );
            view.code_sent = true;
            StatusCode::OK
        }
        Ok(Err(refusal)) => {
            let (reason, message, status) = match &refusal {
                Refusal::Cooldown(secs) => (
                    "cooldown".to_owned(),
                    t.sms_cooldown.replace("{n}", &secs.to_string()),
                    StatusCode::TOO_MANY_REQUESTS,
                ),
                Refusal::Capped(which) => {
                    (format!("cap_{which}"), t.sms_capped.to_owned(), StatusCode::TOO_MANY_REQUESTS)
                }
                Refusal::Delivery(e) => {
                    (format!("delivery_failed: {e}"), t.sms_failed.to_owned(), StatusCode::BAD_GATEWAY)
                }
            };
            let action =
                if matches!(refusal, Refusal::Delivery(_)) { "mfa.sms.failed" } else { "mfa.sms.refused" };
            audit(
                &state,
                &req,
                event(
                    &user,
                    action,
                    Outcome::Failure,
                    serde_json::json!({ "phone": masked, "reason": reason }),
                ),
            )
            .await;
            view.error = Some(message);
            view.code_sent = sms::code_pending(state.sessions.as_ref(), &h.tx, now_us).await.unwrap_or(false);
            status
        }
    };
    render(&state, &csrf, &request, &h, &user, view, status)
}
