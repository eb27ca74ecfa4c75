//! Forgotten passwords and reset links.
//!
//! - `GET/POST /password/forgot`: asks for a username. The answer is the same page, at the
//!   same speed, whether or not the account exists: the lookup and the sending happen after
//!   the answer, in the background. An account with an email gets a reset mail through the
//!   outbox (its link is made when it is sent); one without email but with a phone gets an
//!   eight-digit code by text message.
//! - `POST /password/code`: the code from the text message.
//! - `GET /password/reset?token=…`: a reset link. A live link binds this browser to its reset
//!   (on a new session id) and moves on to `/password/reset`, so the token leaves the address
//!   bar. Opening a link uses nothing up: mail scanners that fetch links do no harm.
//! - `GET/POST /password/reset`, `POST /password/reset/factor`, `POST /password/reset/send`:
//!   the account's second factor first, when it has one (a link alone never replaces it),
//!   then a new password under the password rules. Success uses the reset (and every other
//!   one of the account) up, ends every session and token of the account, and counts towards
//!   any campaign that was waiting for it.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::SecretString;
use serde_json::json;

use super::factor_state::{AppCode, check_app_code, factor_state, spend_recovery_code};
use super::pages::{self, ForgotPage, MethodLink, ResetPage};
use super::password::is_current_password;
use super::rules::{PasswordRule, check_new_password};
use super::session::{self, Loaded, ResetFlow};
use super::{audit, page_form, with_cookie};
use crate::domain::{AuditEvent, Factor, Outcome, User, UserId, UserStatus, Username};
use crate::limits::Limit;
use crate::mfa::sms::{self, Recipient, Verdict};
use crate::mfa::{SecondStep, plan};
use crate::oidc::Issuer;
use crate::state::AppState;
use crate::store::{outbox, password_resets, users, write_transaction};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/password/forgot", web::get().to(show_forgot))
        .route("/password/forgot", web::post().to(request))
        .route("/password/code", web::post().to(code))
        .route("/password/reset", web::get().to(show))
        .route("/password/reset", web::post().to(set_password))
        .route("/password/reset/factor", web::post().to(factor))
        .route("/password/reset/send", web::post().to(send_sms));
}

/// The keyed digest a text-message reset code is stored as (bound to its account: eight
/// digits are unique only per account).
fn code_digest(state: &AppState, user: &UserId, code: &str) -> String {
    state.core.keys.digester.digest("password-reset-code", format!("{user}:{code}").as_bytes())
}

/// Eight uniformly random digits.
fn eight_digits() -> String {
    loop {
        let b = crate::crypto::random_bytes(4);
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        // 4_200_000_000 is a multiple of 10^8 below 2^32: no modulo bias.
        if n < 4_200_000_000 {
            return format!("{:08}", n % 100_000_000);
        }
    }
}

// The error is the page to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
async fn browser(
    req: &HttpRequest,
    state: &AppState,
    issuer: &Issuer,
) -> Result<(Loaded, bool), HttpResponse> {
    let secure = session::secure_issuer(&issuer.issuer);
    let loaded = session::load(state, req, secure).await.map_err(|e| {
        tracing::error!(error = ?e, "session store unavailable");
        pages::unavailable(req)
    })?;
    Ok((loaded, secure))
}

/// A posted form and the browser's session.
// The error is the page to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
async fn posted(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
    issuer: &Issuer,
) -> Result<(crate::oidc::form::Form, Loaded, bool), HttpResponse> {
    let form = page_form(body)?;
    let (loaded, secure) = browser(req, state, issuer).await?;
    Ok((form, loaded, secure))
}

/// A posted form of a reset under way: the form, the session and the step it is at.
// The error is the page to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
async fn posted_step(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
    issuer: &Issuer,
) -> Result<(crate::oidc::form::Form, Loaded, bool, Step), HttpResponse> {
    let (form, loaded, secure) = posted(req, body, state, issuer).await?;
    let s = step(state, &loaded).await?;
    Ok((form, loaded, secure, s))
}

fn forgot_page(csrf: &str, sent: bool, error: Option<&str>, status: StatusCode) -> HttpResponse {
    pages::html(status, ForgotPage { t: pages::text(None), csrf, sent, error }.render())
}

/// Saves the session and answers `resp` with its cookie.
async fn saved(
    req: &HttpRequest,
    state: &AppState,
    loaded: &mut Loaded,
    secure: bool,
    resp: HttpResponse,
) -> HttpResponse {
    match session::save(state, loaded, secure).await {
        Ok(cookie) => with_cookie(req, resp, &cookie),
        Err(e) => {
            tracing::error!(error = ?e, "session store unavailable");
            pages::unavailable(req)
        }
    }
}

/// Moves the session to a new id (a reset step was proven) and answers `resp` with it.
async fn renewed(
    req: &HttpRequest,
    state: &AppState,
    loaded: &mut Loaded,
    secure: bool,
    resp: HttpResponse,
) -> HttpResponse {
    match session::renew(state, loaded, secure).await {
        Ok(cookie) => with_cookie(req, resp, &cookie),
        Err(e) => {
            tracing::error!(error = ?e, "session store unavailable");
            pages::unavailable(req)
        }
    }
}

fn dead_link() -> HttpResponse {
    let r = pages::text(None).reset;
    pages::message_with_link(
        StatusCode::GONE,
        r.link_dead_title,
        r.link_dead_message,
        "/password/forgot",
        r.ask_again,
    )
}

fn see_other(to: &str) -> HttpResponse {
    crate::oidc::authorize::see_other(to)
}

async fn show_forgot(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (mut loaded, secure) = match browser(&req, &state, &issuer).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let page = forgot_page(&loaded.session.csrf, false, None, StatusCode::OK);
    saved(&req, &state, &mut loaded, secure, page).await
}

async fn request(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, mut loaded, secure) = match posted(&req, &body, &state, &issuer).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let t = pages::text(None);
    if !loaded.session.csrf_ok(form.get("csrf")) {
        let page = forgot_page(&loaded.session.csrf, false, Some(t.form_expired), StatusCode::FORBIDDEN);
        return saved(&req, &state, &mut loaded, secure, page).await;
    }
    // One address (a carrier NAT may be many people) gets a bounded number an hour, and
    // whoever is refused is told so — a refused request is never answered "sent".
    if let Err(resp) = super::within_limit(&state, &req, Limit::ResetRequest).await {
        return resp;
    }
    let username: String = form.get("username").unwrap_or("").trim().chars().take(64).collect();
    loaded.session.reset_requested = Some(username.clone());
    // Everything that depends on the account happens after the answer, so the answer is the
    // same, and as fast, for every username.
    let ip = crate::http::client_ip::of_request(&req);
    let user_agent =
        req.headers().get("user-agent").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
    let worker = state.get_ref().clone();
    tokio::spawn(async move {
        if let Err(e) = send_reset(&worker, &username, ip, user_agent).await {
            tracing::error!(error = %e, "a password reset could not be sent");
        }
    });
    let page = forgot_page(&loaded.session.csrf, true, None, StatusCode::OK);
    saved(&req, &state, &mut loaded, secure, page).await
}

/// Sends the reset for `username`, if there is such an active account: a mail through the
/// outbox, or a code by text message. At most one per account a minute. Audited, except for
/// unknown usernames (a typed password must not land in the trail).
async fn send_reset(
    state: &AppState,
    username: &str,
    ip: Option<std::net::IpAddr>,
    user_agent: Option<String>,
) -> Result<(), String> {
    let Ok(name) = Username::parse(username) else { return Ok(()) };
    let user =
        state.core.db.run(move |c| users::find_by_username(c, &name)).await.map_err(|e| e.to_string())?;
    let Some(user) = user else { return Ok(()) };
    let record = |action: &str, outcome: Outcome, details: serde_json::Value| {
        let mut e = AuditEvent::new("anonymous", action, outcome)
            .target(format!("user:{}", user.id))
            .details(details);
        e.client_ip = ip.map(|i| i.to_string());
        e.user_agent.clone_from(&user_agent);
        e
    };
    if user.status != UserStatus::Active {
        let _ = state
            .core
            .audit
            .append(record("password.reset.request", Outcome::Denied, json!({ "reason": "disabled" })))
            .await;
        return Ok(());
    }
    let once = format!("reset-request:{}", user.id);
    if !state.sessions.put_if_absent(&once, b"1", Duration::from_secs(60)).await.map_err(|e| e.to_string())? {
        let _ = state
            .core
            .audit
            .append(record("password.reset.request", Outcome::Denied, json!({ "reason": "cooldown" })))
            .await;
        return Ok(());
    }
    let now = state.core.clock.now();
    if let Some(email) = user.email.clone() {
        let event = record("password.reset.request", Outcome::Success, json!({ "channel": "email" }));
        let (id, log) = (user.id.clone(), state.core.audit.clone());
        state
            .core
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    outbox::enqueue_reset(c, id.as_str(), email.as_str(), now)?;
                    log.append_with(c, vec![event])?;
                    Ok(())
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let Some(phone) = user.phone.clone() else {
        let _ = state
            .core
            .audit
            .append(record(
                "password.reset.request",
                Outcome::Failure,
                json!({ "reason": "no email or phone" }),
            ))
            .await;
        return Ok(());
    };
    // At most five reset codes a day to one phone number (SMS pumping, harassment).
    let day = now.timestamp().div_euclid(86_400);
    let phone_key = format!(
        "reset-sms-phone:{}:{day}",
        state.core.keys.digester.digest("reset-sms-phone", phone.as_str().as_bytes())
    );
    if state.sessions.increment(&phone_key, Duration::from_secs(86_400)).await.map_err(|e| e.to_string())? > 5
    {
        let _ = state
            .core
            .audit
            .append(record("password.reset.request", Outcome::Denied, json!({ "reason": "daily SMS cap" })))
            .await;
        return Ok(());
    }
    let code = eight_digits();
    let digest = code_digest(state, &user.id, &code);
    let ttl = state.core.settings.password.reset_code_ttl_secs;
    let expires = now + chrono::TimeDelta::seconds(i64::try_from(ttl).unwrap_or(600));
    let id = user.id.clone();
    state
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                password_resets::drop_codes_of(c, id.as_str())?;
                password_resets::create(
                    c,
                    &password_resets::NewReset {
                        digest: &digest,
                        user_id: id.as_str(),
                        campaign_id: None,
                        channel: "sms",
                        expires_at: expires,
                    },
                    now,
                )
            })
        })
        .await
        .map_err(|e| e.to_string())?;
    let org = &state.core.settings.mail.organisation_name;
    let message = format!(
        "{code} is your {org} password reset code. It works for {} minutes. Never share it; staff will never ask for it.",
        ttl.div_ceil(60)
    );
    let masked = sms::mask(&phone);
    let event = match state.sms.send(&phone, &message).await {
        Ok(()) => {
            record("password.reset.request", Outcome::Success, json!({ "channel": "sms", "phone": masked }))
        }
        Err(e) => record(
            "password.reset.request",
            Outcome::Failure,
            json!({ "channel": "sms", "phone": masked, "reason": format!("delivery_failed: {e}") }),
        ),
    };
    let _ = state.core.audit.append(event).await;
    Ok(())
}

async fn code(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, mut loaded, secure) = match posted(&req, &body, &state, &issuer).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let t = pages::text(None);
    if !loaded.session.csrf_ok(form.get("csrf")) {
        let page = forgot_page(&loaded.session.csrf, true, Some(t.form_expired), StatusCode::FORBIDDEN);
        return saved(&req, &state, &mut loaded, secure, page).await;
    }
    // One address (a carrier NAT may be many people) gets a bounded number an hour, and
    // whoever is refused is told so — a refused request is never answered "sent".
    // A typed code is a guess like a password: the same per-address budget (each account's
    // own tries are counted below).
    if let Err(resp) = super::within_limit(&state, &req, Limit::PasswordAttempt).await {
        return resp;
    }
    let wrong =
        |loaded: &Loaded| forgot_page(&loaded.session.csrf, true, Some(t.reset.wrong_code), StatusCode::OK);
    let typed: String = form.get("code").unwrap_or("").chars().filter(|c| c.is_ascii_digit()).collect();
    let asked = loaded.session.reset_requested.clone().unwrap_or_default();
    // The same work, in the same order, for every username (known, unknown, disabled), so
    // the answer's timing says nothing about which exist: a lookup, a digest lookup, a count.
    let name = Username::parse(&asked).ok();
    let user =
        match state.core.db.run(move |c| name.map_or(Ok(None), |n| users::find_by_username(c, &n))).await {
            Ok(u) => u.filter(|u| u.status == UserStatus::Active),
            Err(e) => {
                tracing::error!(error = ?e, "could not read the account");
                return pages::unavailable(&req);
            }
        };
    let owner = user.as_ref().map_or_else(|| UserId::from_string(String::from("-")), |u| u.id.clone());
    let digest = code_digest(&state, &owner, &typed);
    let found = match state.core.db.run(move |c| password_resets::find_by_digest(c, &digest)).await {
        Ok(r) => r,
        Err(_) => return pages::unavailable(&req),
    };
    // Wrong codes count per typed username: after `mfa.max_tries` its codes are thrown away.
    let tries_key = format!(
        "reset-code-tries:{}",
        state.core.keys.digester.digest("reset-code-tries", asked.to_lowercase().as_bytes())
    );
    // Charged before the code is compared (as passwords and second-factor codes are), so
    // parallel guesses cannot all be checked before the count catches up.
    let tries = match state.sessions.increment(&tries_key, Duration::from_secs(3600)).await {
        Ok(n) => n,
        Err(_) => return pages::unavailable(&req),
    };
    let spent = tries > u64::from(state.core.settings.mfa.max_tries);
    let now = state.core.clock.now();
    let found = found.filter(|r| {
        !spent && r.channel == "sms" && r.user_id == owner.as_str() && r.live(now) && typed.len() == 8
    });
    let (Some(user), Some(reset)) = (user, found) else {
        if tries >= u64::from(state.core.settings.mfa.max_tries) && owner.as_str() != "-" {
            let id = owner.clone();
            let _ = state.core.db.run(move |c| password_resets::drop_codes_of(c, id.as_str())).await;
        }
        if owner.as_str() != "-" {
            let event = AuditEvent::new("anonymous", "password.reset.code", Outcome::Failure)
                .target(format!("user:{owner}"))
                .details(json!({ "reason": "wrong or expired code" }));
            let log = state.core.audit.clone();
            tokio::spawn(async move {
                if let Err(e) = log.append(event).await {
                    tracing::error!(error = ?e, "could not audit a wrong reset code");
                }
            });
        }
        return wrong(&loaded);
    };
    let _ = state.sessions.delete(&tries_key).await;
    loaded.session.reset =
        Some(ResetFlow { reset_id: reset.id, user_id: user.id.clone(), via_sms: true, factor_done: false });
    loaded.session.reset_requested = None;
    renewed(&req, &state, &mut loaded, secure, see_other("/password/reset")).await
}

#[derive(serde::Deserialize)]
struct ResetQuery {
    token: Option<String>,
    method: Option<String>,
}

/// The reset this browser is in, its account, and the second factors it must prove (empty:
/// none, or proven); or the page to show instead.
struct Step {
    flow: ResetFlow,
    user: User,
    /// What may prove the second factor, the app first; empty when nothing is owed.
    methods: Vec<&'static str>,
}

// The error is the page to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
async fn step(state: &AppState, loaded: &Loaded) -> Result<Step, HttpResponse> {
    let Some(flow) = loaded.session.reset.clone() else { return Err(dead_link()) };
    let (rid, uid) = (flow.reset_id.clone(), flow.user_id.clone());
    let found = state
        .core
        .db
        .run(move |c| {
            Ok::<_, crate::store::DbError>((password_resets::find(c, &rid)?, users::find(c, &uid)?))
        })
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, "could not read the reset");
            pages::unavailable_plain()
        })?;
    let now = state.core.clock.now();
    let (Some(reset), Some(user)) = found else { return Err(dead_link()) };
    if !reset.live(now) || user.status != UserStatus::Active {
        return Err(dead_link());
    }
    let mut methods = Vec::new();
    if !flow.factor_done {
        let fs = factor_state(state, &user).await.map_err(|e| {
            tracing::error!(error = ?e, "could not read the account's factors");
            pages::unavailable_plain()
        })?;
        if let SecondStep::Verify(factors) = plan(&fs.requirement, fs.enrolled(), None) {
            for f in factors {
                match f {
                    Factor::Totp => methods.push("totp"),
                    // The text message that brought the code already proved the phone.
                    Factor::Sms if !flow.via_sms => methods.push("sms"),
                    Factor::Sms => {}
                }
            }
            if fs.totp.is_some() && fs.recovery_left > 0 {
                methods.push("recovery");
            }
        }
    }
    Ok(Step { flow, user, methods })
}

struct View {
    method: &'static str,
    code_sent: bool,
    notice: Option<String>,
    error: Option<String>,
}

fn render(state: &AppState, csrf: &str, s: &Step, view: View, status: StatusCode) -> HttpResponse {
    let t = pages::text(None);
    let min_length = state.core.settings.password.min_length;
    let others = s
        .methods
        .iter()
        .filter(|m| **m != view.method)
        .map(|m| MethodLink {
            method: m,
            label: match *m {
                "totp" => t.use_totp,
                "sms" => t.use_sms,
                _ => t.use_recovery,
            },
        })
        .collect();
    let prompt = match view.method {
        "totp" => t.totp_prompt,
        "sms" => t.sms_prompt,
        _ => t.recovery_prompt,
    }
    .to_owned();
    let page = ResetPage {
        t,
        csrf,
        username: s.user.username.as_str(),
        step: if s.methods.is_empty() { "password" } else { "factor" },
        method: view.method,
        prompt,
        others,
        code_sent: view.code_sent,
        min_length,
        rule_length: t.rule_length.replace("{n}", &min_length.to_string()),
        notice: view.notice,
        error: view.error,
    };
    pages::html(status, page.render())
}

fn pick(s: &Step, asked: Option<&str>) -> &'static str {
    s.methods
        .iter()
        .copied()
        .find(|m| Some(*m) == asked)
        .or_else(|| s.methods.first().copied())
        .unwrap_or("totp")
}

async fn show(
    req: HttpRequest,
    q: web::Query<ResetQuery>,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (mut loaded, secure) = match browser(&req, &state, &issuer).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let q = q.into_inner();
    if let Some(token) = q.token {
        // A link: bind this browser to its reset, if it is live, and drop the token from the
        // address.
        if token.len() > 128 {
            return dead_link();
        }
        let digest = crate::mail::outbox::reset_digest(&state.core.keys.digester, &token);
        let found = match state.core.db.run(move |c| password_resets::find_by_digest(c, &digest)).await {
            Ok(r) => r,
            Err(_) => return pages::unavailable(&req),
        };
        let now = state.core.clock.now();
        let Some(reset) = found.filter(|r| r.channel == "email" && r.live(now)) else { return dead_link() };
        loaded.session.reset = Some(ResetFlow {
            reset_id: reset.id,
            user_id: UserId::from_string(reset.user_id),
            via_sms: false,
            factor_done: false,
        });
        return renewed(&req, &state, &mut loaded, secure, see_other("/password/reset")).await;
    }
    let s = match step(&state, &loaded).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let method = pick(&s, q.method.as_deref());
    let code_sent = method == "sms"
        && sms::code_pending(
            state.sessions.as_ref(),
            &sms_tx(&s.flow),
            state.core.clock.now().timestamp_micros(),
        )
        .await
        .unwrap_or(false);
    render(
        &state,
        &loaded.session.csrf,
        &s,
        View { method, code_sent, notice: None, error: None },
        StatusCode::OK,
    )
}

/// The text-message transaction of a reset's second-factor codes.
fn sms_tx(flow: &ResetFlow) -> String {
    format!("reset:{}", flow.reset_id)
}

async fn factor(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, mut loaded, secure, s) = match posted_step(&req, &body, &state, &issuer).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if s.methods.is_empty() {
        return see_other("/password/reset");
    }
    let t = pages::text(None);
    let method = pick(&s, form.get("method"));
    let csrf = loaded.session.csrf.clone();
    if !loaded.session.csrf_ok(form.get("csrf")) {
        let view = View { method, code_sent: false, notice: None, error: Some(t.form_expired.to_owned()) };
        return render(&state, &csrf, &s, view, StatusCode::FORBIDDEN);
    }
    // Charged against the account before it is checked, as at sign-in: parallel guesses, or
    // guesses spread over fresh links, cannot outrun the account's lock.
    let now = state.core.clock.now();
    match super::password::charge_attempt(&state.core, &s.user, now).await {
        Ok(true) => {}
        Ok(false) => {
            let view = View { method, code_sent: false, notice: None, error: Some(t.locked.to_owned()) };
            return render(&state, &csrf, &s, view, StatusCode::TOO_MANY_REQUESTS);
        }
        Err(_) => return pages::unavailable(&req),
    }
    let typed = form.get("code").unwrap_or("");
    let right = match method {
        "totp" => match check_app_code(&state, &s.user, typed).await {
            Ok(AppCode::Right) => true,
            Ok(_) => false,
            Err(e) => {
                tracing::error!(error = ?e, "could not check the app code");
                return pages::unavailable(&req);
            }
        },
        "recovery" => match spend_recovery_code(&state, &s.user, typed).await {
            Ok(left) => left.is_some(),
            Err(e) => {
                tracing::error!(error = ?e, "could not check the recovery code");
                return pages::unavailable(&req);
            }
        },
        _ => {
            let now_us = state.core.clock.now().timestamp_micros();
            let tx = sms_tx(&s.flow);
            match sms::verify(state.sessions.as_ref(), &state.core.keys.digester, &tx, typed, now_us).await {
                Ok(Verdict::Right) => true,
                Ok(_) => false,
                Err(_) => return pages::unavailable(&req),
            }
        }
    };
    let actor = format!("user:{}", s.user.username);
    if !right {
        let (rid, now) = (s.flow.reset_id.clone(), state.core.clock.now());
        let max = i32::try_from(state.core.settings.mfa.max_tries).unwrap_or(5);
        let tries = match state.core.db.run(move |c| password_resets::count_failure(c, &rid, max, now)).await
        {
            Ok(n) => n,
            Err(_) => return pages::unavailable(&req),
        };
        audit(
            &state,
            &req,
            AuditEvent::new(actor, "password.reset.factor", Outcome::Failure)
                .target(format!("user:{}", s.user.id))
                .details(json!({ "method": method, "wrong_codes": tries })),
        )
        .await;
        if tries >= max {
            loaded.session.reset = None;
            return renewed(&req, &state, &mut loaded, secure, dead_link()).await;
        }
        let left = max - tries;
        let error = format!("{} {}", t.wrong_code, t.tries_left.replace("{n}", &left.to_string()));
        let view = View { method, code_sent: method == "sms", notice: None, error: Some(error) };
        return render(&state, &csrf, &s, view, StatusCode::OK);
    }
    audit(
        &state,
        &req,
        AuditEvent::new(actor, "password.reset.factor", Outcome::Success)
            .target(format!("user:{}", s.user.id))
            .details(json!({ "method": method })),
    )
    .await;
    // The right code clears its charge (as a completed sign-in does).
    let id = s.user.id.clone();
    if state.core.db.run(move |c| users::admit_charged(c, &id)).await.is_err() {
        return pages::unavailable(&req);
    }
    if let Some(flow) = loaded.session.reset.as_mut() {
        flow.factor_done = true;
    }
    renewed(&req, &state, &mut loaded, secure, see_other("/password/reset")).await
}

async fn send_sms(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, loaded, _, s) = match posted_step(&req, &body, &state, &issuer).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let t = pages::text(None);
    let csrf = loaded.session.csrf.clone();
    let (Some(phone), true) = (s.user.phone.clone(), s.methods.contains(&"sms")) else {
        return see_other("/password/reset");
    };
    if !loaded.session.csrf_ok(form.get("csrf")) {
        let view =
            View { method: "sms", code_sent: false, notice: None, error: Some(t.form_expired.to_owned()) };
        return render(&state, &csrf, &s, view, StatusCode::FORBIDDEN);
    }
    let now_us = state.core.clock.now().timestamp_micros();
    let host = url::Url::parse(&issuer.issuer).ok().and_then(|u| u.host_str().map(str::to_owned));
    let to = Recipient { user: &s.user.id, phone: &phone, ip: crate::http::client_ip::of_request(&req) };
    let settings = &state.core.settings.sms;
    let sent = sms::send(
        state.sessions.as_ref(),
        state.sms.as_ref(),
        &state.core.keys.digester,
        settings,
        &sms_tx(&s.flow),
        to,
        host.as_deref(),
        now_us,
    )
    .await;
    let masked = sms::mask(&phone);
    let view = match sent {
        Err(_) => return pages::unavailable(&req),
        Ok(Ok(())) => View {
            method: "sms",
            code_sent: true,
            notice: Some(
                t.sms_sent
                    .replace("{phone}", &masked)
                    .replace("{n}", &settings.code_ttl_secs.div_ceil(60).to_string()),
            ),
            error: None,
        },
        Ok(Err(refusal)) => View {
            method: "sms",
            code_sent: sms::code_pending(state.sessions.as_ref(), &sms_tx(&s.flow), now_us)
                .await
                .unwrap_or(false),
            notice: None,
            error: Some(match refusal {
                sms::Refusal::Cooldown(secs) => t.sms_cooldown.replace("{n}", &secs.to_string()),
                sms::Refusal::Capped(_) => t.sms_capped.to_owned(),
                sms::Refusal::Delivery(_) => t.sms_failed.to_owned(),
            }),
        },
    };
    render(&state, &csrf, &s, view, StatusCode::OK)
}

async fn set_password(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let (form, mut loaded, secure, s) = match posted_step(&req, &body, &state, &issuer).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    // The second factor comes first; a link alone never sets a password where one is owed.
    if !s.methods.is_empty() {
        return see_other("/password/reset");
    }
    let t = pages::text(None);
    let csrf = loaded.session.csrf.clone();
    let fail = |msg: String, status| {
        render(
            &state,
            &csrf,
            &s,
            View { method: "totp", code_sent: false, notice: None, error: Some(msg) },
            status,
        )
    };
    if !loaded.session.csrf_ok(form.get("csrf")) {
        return fail(t.form_expired.to_owned(), StatusCode::FORBIDDEN);
    }
    let new = form.get("new_password").unwrap_or("");
    let verdict = if new != form.get("confirm_password").unwrap_or("") {
        Err(PasswordRule::Mismatch)
    } else {
        check_new_password(s.user.username.as_str(), new, state.core.settings.password.min_length)
    };
    let verdict = match verdict {
        Ok(()) => match is_current_password(&state.core, &s.user, new).await {
            Ok(true) => Err(PasswordRule::Unchanged),
            Ok(false) => Ok(()),
            Err(_) => return pages::unavailable(&req),
        },
        Err(rule) => Err(rule),
    };
    if let Err(rule) = verdict {
        return fail(rule.to_string(), StatusCode::OK);
    }
    let Ok(hash) = state.core.passwords.hash(SecretString::from(new.to_owned())).await else {
        return pages::unavailable(&req);
    };
    let now = state.core.clock.now();
    let (rid, user, log) = (s.flow.reset_id.clone(), s.user.clone(), state.core.audit.clone());
    let event = AuditEvent::new(format!("user:{}", s.user.username), "password.reset", Outcome::Success)
        .target(format!("user:{}", s.user.id))
        .details(json!({ "via": if s.flow.via_sms { "sms" } else { "email" }, "factor_proven": s.flow.factor_done }));
    let done = state
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                if !password_resets::consume(c, &rid, now)? {
                    return Ok(false);
                }
                crate::campaigns::store_new_password(c, &log, &user, &hash, now)?;
                // Every session, refresh token and access token of the account ends; a lock
                // from wrong passwords ends with the password.
                users::cut_off_tokens(c, &user.id, now)?;
                users::admit_charged(c, &user.id)?;
                log.append_with(c, vec![event])?;
                Ok(true)
            })
        })
        .await;
    match done {
        Ok(true) => {}
        Ok(false) => {
            loaded.session.reset = None;
            return renewed(&req, &state, &mut loaded, secure, dead_link()).await;
        }
        Err(e) => {
            tracing::error!(error = ?e, "could not store the new password");
            return pages::unavailable(&req);
        }
    }
    // The cut-off already kills them; ending them also clears them from the session store.
    if let Ok(logins) = session::logins_of(&state, &s.user.id).await {
        for (sid, _) in logins {
            if crate::oidc::revocation::end_login(&state, &sid).await.is_err() {
                tracing::warn!("a login of a reset account could not be ended; its cut-off holds");
            }
        }
    }
    loaded.session.reset = None;
    loaded.session.auth = None;
    let r = t.reset;
    let page = pages::message(StatusCode::OK, r.done_title, r.done_message);
    renewed(&req, &state, &mut loaded, secure, page).await
}
