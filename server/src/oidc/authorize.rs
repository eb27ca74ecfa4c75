//! The authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2): the code flow only, PKCE
//! S256 required for every client (RFC 9700 §2.1.1), `plain` refused.
//!
//! A request is checked in two stages (OIDC Core §3.1.2.6). Until the client and its exact
//! redirect URI are verified, nothing may be sent to that URI: the person gets an error page.
//! After that, every error goes back to the client as `error=` on the redirect URI, with
//! `state` and `iss` (RFC 9207).
//!
//! A valid request is kept in the browser session as a [`Pending`] request under a random
//! id; the login, password-change and consent pages carry that id and, when their step is
//! done, send the browser to `/authorize/resume`, where [`next_step`] decides what is still
//! missing. Only when nothing is missing is a code issued.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::Issuer;
use super::code::{self, CodeGrant};
use super::form::Form;
use crate::domain::{Acr, Client, ClientId, ClientStatus, GrantType, Scope, User, UserStatus};
use crate::limits::Limit;
use crate::login::pages;
use crate::login::session::{self, Authenticated, BrowserSession};
use crate::policy::ClientFacts;
use crate::state::AppState;
use crate::store::consents;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // OIDC Core §3.1.2.1: GET and POST (form-encoded) alike.
    cfg.route("/authorize", web::get().to(authorize_get))
        .route("/authorize", web::post().to(authorize_post))
        .route("/authorize/resume", web::get().to(resume));
}

/// Scopes every code-flow client may ask for without registering them (OIDC Core §5.4).
pub const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "phone"];

/// `prompt` (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A validated authorization request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub scope: Vec<Scope>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The weakest login `acr_values` accepts (OIDC Core §3.1.2.1), if any was asked for.
    #[serde(default)]
    pub acr: Option<Acr>,
    /// The `sub` of a verified `id_token_hint` (OIDC Core §3.1.2.1): the person the client
    /// believes is signed in. A login of anyone else made before the request does not count.
    #[serde(default)]
    pub hint_sub: Option<String>,
}

/// A request waiting for the person to finish a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub id: String,
    /// When the request arrived, in microseconds (compared with the login's `auth_time_us`).
    pub created_at_us: i64,
    pub purpose: Purpose,
    /// The person approved this request on the consent page.
    pub consented: bool,
}

/// What a login is for.
// A few per browser, serialised into the session at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// A client's authorization request: it ends with a code (or an error) at the client.
    Client(AuthorizationRequest),
    /// The person's own account page (`/account`): it ends there.
    Account,
}

impl Pending {
    /// A login for the account page, arriving at `now_us`.
    pub fn for_account(now_us: i64) -> Self {
        Self {
            id: crate::crypto::random_token(16),
            created_at_us: now_us,
            purpose: Purpose::Account,
            consented: false,
        }
    }

    pub fn client_request(&self) -> Option<&AuthorizationRequest> {
        match &self.purpose {
            Purpose::Client(r) => Some(r),
            Purpose::Account => None,
        }
    }

    pub fn client_id(&self) -> Option<&ClientId> {
        self.client_request().map(|r| &r.client_id)
    }

    pub fn login_hint(&self) -> Option<&str> {
        self.client_request().and_then(|r| r.login_hint.as_deref())
    }

    /// The weakest login the request accepts, if it named one.
    pub fn wanted_acr(&self) -> Option<Acr> {
        self.client_request().and_then(|r| r.acr)
    }
}

/// An error to send back to the client (OIDC Core §3.1.2.6, RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    pub error: &'static str,
    pub description: &'static str,
}

fn redirect_err(error: &'static str, description: &'static str) -> RedirectError {
    RedirectError { error, description }
}

/// Why a request cannot even be answered at its redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Shown to the person; never redirected (the URI is unverified).
    Page(&'static str),
    /// Sent to the verified redirect URI.
    Redirect { redirect_uri: String, state: Option<String>, error: RedirectError },
}

const BAD_LINK: &str = "This sign-in link is not valid. Go back to the application you came from and start \
                        the sign-in again; if it keeps happening, tell its support team.";

/// Stage one: who is asking and where the answer goes. `client` is what the store holds for
/// the `client_id` parameter, if anything.
pub fn verify_client<'a>(
    form: &'a Form,
    client: Option<&'a Client>,
) -> Result<(&'a Client, String), Rejection> {
    let client = client.filter(|c| c.status == ClientStatus::Active).ok_or(Rejection::Page(BAD_LINK))?;
    // OIDC Core §3.1.2.1 makes redirect_uri required; it must equal a registered one exactly
    // (RFC 9700 §4.1.3: no pattern, no prefix).
    let uri = form.get("redirect_uri").ok_or(Rejection::Page(BAD_LINK))?;
    if !client.registration.redirect_uris.iter().any(|r| r.as_str() == uri) {
        return Err(Rejection::Page(BAD_LINK));
    }
    Ok((client, uri.to_owned()))
}

/// Stage two: the request itself, answered at the verified redirect URI.
pub fn parse_request(
    form: &Form,
    client: &Client,
    redirect_uri: String,
) -> Result<AuthorizationRequest, Rejection> {
    let state = form.get("state").map(str::to_owned);
    let fail =
        |error| Rejection::Redirect { redirect_uri: redirect_uri.clone(), state: state.clone(), error };
    if state.as_ref().is_some_and(|s| s.len() > 2048) {
        return Err(fail(redirect_err("invalid_request", "state is too long.")));
    }
    if !client.registration.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(fail(redirect_err("unauthorized_client", "This client may not use the code flow.")));
    }
    match form.get("response_type") {
        Some("code") => {}
        None => return Err(fail(redirect_err("invalid_request", "response_type is required."))),
        Some(_) => {
            return Err(fail(redirect_err(
                "unsupported_response_type",
                "Only response_type=code is supported.",
            )));
        }
    }
    if let Some(m) = form.get("response_mode")
        && m != "query"
    {
        return Err(fail(redirect_err("invalid_request", "Only response_mode=query is supported.")));
    }
    // OIDC Core §6: request objects are not supported, and say so with their own codes.
    if form.get("request").is_some() {
        return Err(fail(redirect_err("request_not_supported", "Request objects are not supported.")));
    }
    if form.get("request_uri").is_some() {
        return Err(fail(redirect_err("request_uri_not_supported", "request_uri is not supported.")));
    }
    // RFC 7636 §4.3: without a method the challenge would be `plain`, which we refuse.
    let challenge = form.get("code_challenge").ok_or_else(|| {
        fail(redirect_err("invalid_request", "PKCE is required: send code_challenge (S256)."))
    })?;
    if form.get("code_challenge_method") != Some("S256") {
        return Err(fail(redirect_err("invalid_request", "code_challenge_method must be S256.")));
    }
    // base64url of a SHA-256 digest: exactly 43 characters.
    if challenge.len() != 43
        || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(fail(redirect_err(
            "invalid_request",
            "code_challenge is not a base64url SHA-256 digest.",
        )));
    }
    let requested = Scope::parse_list(form.get("scope").unwrap_or(""))
        .map_err(|_| fail(redirect_err("invalid_scope", "The scope is malformed.")))?;
    let allowed = |s: &Scope| OIDC_SCOPES.contains(&s.as_str()) || client.registration.scopes.contains(s);
    let scope: Vec<Scope> = requested.into_iter().filter(allowed).collect();
    if scope.is_empty() {
        return Err(fail(redirect_err(
            "invalid_scope",
            "None of the requested scopes is allowed for this client.",
        )));
    }
    let mut prompt = Prompt::default();
    for p in form.get("prompt").unwrap_or("").split(' ').filter(|p| !p.is_empty()) {
        match p {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            _ => return Err(fail(redirect_err("invalid_request", "prompt holds an unsupported value."))),
        }
    }
    // §3.1.2.1: none with any other value is an error.
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(fail(redirect_err(
            "invalid_request",
            "prompt=none cannot be combined with other values.",
        )));
    }
    let max_age =
        match form.get("max_age") {
            None => None,
            Some(m) => Some(m.parse::<u32>().map(i64::from).map_err(|_| {
                fail(redirect_err("invalid_request", "max_age must be a number of seconds."))
            })?),
        };
    let nonce = form.get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(fail(redirect_err("invalid_request", "nonce is too long.")));
    }
    let login_hint = form.get("login_hint").filter(|h| h.len() <= 256).map(str::to_owned);
    let acr_values: Vec<String> = form
        .get("acr_values")
        .unwrap_or("")
        .split(' ')
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    // Only classes we can deliver are worth a login; none known means none can be met
    // (OpenID Connect Core Unmet Authentication Requirements 1.0 §2).
    let acr = Acr::requested(&acr_values).map_err(|()| {
        fail(redirect_err(
            "unmet_authentication_requirements",
            "None of the requested authentication context classes is supported.",
        ))
    })?;
    Ok(AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri,
        scope,
        state,
        nonce,
        code_challenge: challenge.to_owned(),
        prompt,
        max_age,
        login_hint,
        acr,
        hint_sub: None,
    })
}

/// What a pending request still needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Login,
    /// The password is proven; the second factor (or setting one up) is still missing.
    SecondFactor,
    ChangePassword,
    Consent,
    Issue,
    /// An account-page login is complete: show the page.
    Account,
    Fail(RedirectError),
}

/// What the browser brings to a pending request.
#[derive(Debug, Clone, Copy)]
pub struct Standing<'a> {
    /// The completed login, already checked against the account (`None` when the account is
    /// gone, disabled or cut off since).
    pub auth: Option<&'a Authenticated>,
    pub user: Option<&'a User>,
    /// When a half-finished login (password proven, second factor not yet) proved its
    /// password, in microseconds.
    pub half_at_us: Option<i64>,
    /// The weakest login the signed-in account's roles and factors accept.
    pub required: Acr,
}

/// Decides the next step for `p` given what the browser brings and the scopes the person
/// agreed to before. `now_us` in microseconds.
pub fn next_step(p: &Pending, s: &Standing<'_>, consented: &[Scope], first_party: bool, now_us: i64) -> Next {
    let (prompt, max_age, wanted, hint_sub) = match &p.purpose {
        Purpose::Client(r) => (r.prompt, r.max_age, r.acr, r.hint_sub.as_deref()),
        Purpose::Account => (Prompt::default(), None, None, None),
    };
    let fresh_enough = |at_us: i64| {
        // A login made after the request arrived satisfies prompt=login and any max_age.
        let after_request = at_us >= p.created_at_us;
        // OIDC Core §3.1.2.1, compared to the microsecond: a login exactly max_age seconds old
        // still counts, one a microsecond older does not, and max_age=0 (a login in this very
        // request, as prompt=login) is met only by a login made after the request arrived.
        let within_max_age =
            max_age.is_none_or(|m| m > 0 && now_us.saturating_sub(at_us) <= m.saturating_mul(1_000_000));
        after_request || (!prompt.login && within_max_age)
    };
    // A login too old or too weak for this request starts again; a half-finished one fresh
    // enough goes on to its second factor.
    let again = |why: &'static str| {
        if prompt.none {
            Next::Fail(redirect_err("login_required", why))
        } else if s.half_at_us.is_some_and(fresh_enough) {
            Next::SecondFactor
        } else {
            Next::Login
        }
    };
    let (Some(a), Some(user)) = (s.auth, s.user) else {
        return again("The person is not signed in.");
    };
    // The client named someone else: only a login made for this request stands in.
    if hint_sub.is_some_and(|sub| sub != user.id.as_str()) && a.auth_time_us < p.created_at_us {
        return again("The signed-in person is not the one id_token_hint names.");
    }
    let needed = wanted.unwrap_or(Acr::Password).max(s.required);
    let strong_enough = Acr::parse(&a.acr).is_some_and(|have| have >= needed);
    if !fresh_enough(a.auth_time_us) {
        return again("A fresh sign-in is required.");
    }
    if !strong_enough {
        return again("A sign-in with a second factor is required.");
    }
    if user.must_change_password {
        return if prompt.none {
            Next::Fail(redirect_err("interaction_required", "The person must change their password."))
        } else {
            Next::ChangePassword
        };
    }
    let Purpose::Client(r) = &p.purpose else { return Next::Account };
    let covered = r.scope.iter().all(|s| consented.contains(s));
    let needs_consent = !first_party && !p.consented && (r.prompt.consent || !covered);
    if needs_consent {
        return if r.prompt.none {
            Next::Fail(redirect_err("consent_required", "The person has not agreed to this request."))
        } else {
            Next::Consent
        };
    }
    Next::Issue
}

/// The login, if it still stands: the account exists, is active, and was not cut off after
/// the login (a campaign or a disable moves `tokens_valid_after`).
pub fn standing_login<'a>(auth: Option<&'a Authenticated>, user: Option<&User>) -> Option<&'a Authenticated> {
    let (a, u) = (auth?, user?);
    let ok = u.id == a.user_id
        && u.status == UserStatus::Active
        && a.auth_time_us >= u.tokens_valid_after.timestamp_micros();
    ok.then_some(a)
}

/// `uri` with `params` appended to its query.
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::from(uri);
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    out.push(if uri.contains('?') { '&' } else { '?' });
    out.push_str(&ser.finish());
    out
}

/// The redirect carrying an error to the client.
pub fn error_redirect(
    issuer: &Issuer,
    redirect_uri: &str,
    state: Option<&str>,
    e: &RedirectError,
) -> HttpResponse {
    let mut params = vec![("error", e.error), ("error_description", e.description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer.issuer.as_str()));
    see_other(&with_query(redirect_uri, &params))
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

async fn authorize_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let query = req.query_string().to_owned();
    authorize(&req, query.as_bytes(), &state, &issuer).await
}

async fn authorize_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    authorize(&req, &body, &state, &issuer).await
}

#[tracing::instrument(skip_all, fields(client_id = tracing::field::Empty))]
async fn authorize(req: &HttpRequest, params: &[u8], state: &AppState, issuer: &Issuer) -> HttpResponse {
    let form = match Form::parse(params) {
        Ok(f) => f,
        Err(_) => return pages::error_page(req, actix_web::http::StatusCode::BAD_REQUEST, BAD_LINK),
    };
    // An address that keeps naming clients that do not exist is refused for a while — but
    // never for a client this instance knows, whatever else comes from that address.
    let ip = crate::http::client_ip::of_request(req);
    if let Some(id) = form.get("client_id")
        && !state.clients.cached_known(&ClientId::from_string(id.to_owned()))
        && let Some(refused) = state.limits.refusing(Limit::UnknownLookup, ip, None)
    {
        return pages::too_many(refused);
    }
    let found = match form.get("client_id") {
        Some(id) => match state.clients.get(&ClientId::from_string(id.to_owned())).await {
            Ok(None) => {
                state.limits.charge_failure(Limit::UnknownLookup, ip, None).await;
                None
            }
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = ?e, "client lookup failed");
                return pages::unavailable(req);
            }
        },
        None => None,
    };
    let client = found.as_ref().map(|e| &e.0);
    let request = verify_client(&form, client).and_then(|(c, uri)| {
        tracing::Span::current().record("client_id", c.id.as_str());
        parse_request(&form, c, uri)
    });
    let mut request = match request {
        Ok(r) => r,
        Err(Rejection::Page(msg)) => {
            return pages::error_page(req, actix_web::http::StatusCode::BAD_REQUEST, msg);
        }
        Err(Rejection::Redirect { redirect_uri, state: s, error }) => {
            return error_redirect(issuer, &redirect_uri, s.as_deref(), &error);
        }
    };
    // OIDC Core §3.1.2.1: an id_token_hint must be an ID token we issued (our signature, our
    // issuer); an expired one still names its person, which is all it is used for.
    if let Some(hint) = form.get("id_token_hint") {
        match super::end_session::read_hint(state, issuer, hint) {
            Some(h) => request.hint_sub = Some(h.sub),
            None => {
                let e = redirect_err("invalid_request", "id_token_hint is not an ID token issued here.");
                return error_redirect(issuer, &request.redirect_uri, request.state.as_deref(), &e);
            }
        }
    }
    let secure = session::secure_issuer(&issuer.issuer);
    let mut loaded = match session::load(state, req, secure).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = ?e, "session store unavailable");
            return pages::unavailable(req);
        }
    };
    let now_us = state.core.clock.now().timestamp_micros();
    let pending = Pending {
        id: crate::crypto::random_token(16),
        created_at_us: now_us,
        purpose: Purpose::Client(request),
        consented: false,
    };
    let id = pending.id.clone();
    loaded.session.add_pending(pending);
    proceed(req, state, issuer, loaded, &id).await
}

#[derive(Deserialize)]
struct ResumeQuery {
    request: String,
}

async fn resume(
    req: HttpRequest,
    query: web::Query<ResumeQuery>,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let secure = session::secure_issuer(&issuer.issuer);
    let loaded = match session::load(&state, &req, secure).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = ?e, "session store unavailable");
            return pages::unavailable(&req);
        }
    };
    proceed(&req, &state, &issuer, loaded, &query.request).await
}

/// Takes the pending request `id` as far as it can go: to the page of the step it still
/// needs, or to the client with a code or an error.
pub async fn proceed(
    req: &HttpRequest,
    state: &AppState,
    issuer: &Issuer,
    mut loaded: session::Loaded,
    id: &str,
) -> HttpResponse {
    match decide(state, issuer, &mut loaded, id).await {
        Ok(resp) => resp,
        Err(Failure::Expired) => pages::expired(req),
        Err(Failure::Unavailable) => pages::unavailable(req),
    }
}

enum Failure {
    /// No such pending request in this browser (finished, expired, or another browser's).
    Expired,
    Unavailable,
}

fn unavailable<E: std::fmt::Debug>(e: E) -> Failure {
    tracing::error!(error = ?e, "authorization could not proceed");
    Failure::Unavailable
}

async fn decide(
    state: &AppState,
    issuer: &Issuer,
    loaded: &mut session::Loaded,
    id: &str,
) -> Result<HttpResponse, Failure> {
    let secure = session::secure_issuer(&issuer.issuer);
    let now = state.core.clock.now();
    let pending = loaded.session.pending(id).cloned().ok_or(Failure::Expired)?;
    let client = match pending.client_id() {
        Some(cid) => {
            let found = state.clients.get(cid).await.map_err(unavailable)?;
            match found.as_ref().map(|e| &e.0).filter(|c| c.status == ClientStatus::Active) {
                Some(c) => Some(c.clone()),
                None => {
                    // Suspended or deleted while the person was signing in: the redirect URI
                    // is no longer one we can vouch for.
                    loaded.session.remove_pending(id);
                    session::save(state, loaded, secure).await.map_err(unavailable)?;
                    return Ok(pages::error_page_plain(actix_web::http::StatusCode::BAD_REQUEST, BAD_LINK));
                }
            }
        }
        None => None,
    };
    // The account page is Pramaan's own.
    let first_party = client.as_ref().is_none_or(|c| c.registration.first_party);
    let user = crate::login::session::signed_in_user(state, &loaded.session).await.map_err(unavailable)?;
    // A multi-factor login meets any requirement: only a weaker one needs the account read.
    let have = loaded.session.auth.as_ref().and_then(|a| Acr::parse(&a.acr));
    let required = match &user {
        Some(u) if have.is_some_and(|h| h < Acr::Mfa) => {
            crate::login::factor_state(state, u).await.map_err(unavailable)?.level()
        }
        _ => Acr::Password,
    };
    let standing = user.as_ref().and(loaded.session.auth.clone());
    if standing.is_none() && loaded.session.auth.is_some() {
        // The login no longer stands: forget it so the login page starts clean.
        loaded.session.auth = None;
    }
    let consented = match (&standing, &client) {
        (Some(a), Some(c)) if !first_party => {
            let (uid, cid) = (a.user_id.clone(), c.id.clone());
            state.core.db.run(move |c| consents::granted(c, &uid, &cid)).await.map_err(unavailable)?
        }
        _ => Vec::new(),
    };
    let half_at_us = loaded.session.partial.as_ref().map(|h| h.password_at_us);
    let situation = Standing { auth: standing.as_ref(), user: user.as_ref(), half_at_us, required };
    let next = next_step(&pending, &situation, &consented, first_party, now.timestamp_micros());
    let page = |path: &str| see_other(&format!("{path}?request={id}"));
    let resp = match next {
        Next::Login => page("/login"),
        Next::SecondFactor => page("/login/factor"),
        Next::ChangePassword => page("/login/password"),
        Next::Consent => page("/consent"),
        Next::Account => {
            loaded.session.remove_pending(id);
            see_other("/account")
        }
        Next::Fail(e) => {
            loaded.session.remove_pending(id);
            match pending.client_request() {
                Some(r) => error_redirect(issuer, &r.redirect_uri, r.state.as_deref(), &e),
                None => see_other("/account"),
            }
        }
        Next::Issue => {
            let (Some(a), Some(r), Some(client), Some(user)) =
                (standing, pending.client_request(), client, user.as_ref())
            else {
                return Err(Failure::Expired);
            };
            // The role policies decide what of the request this person receives through this
            // client; what they may not have is left out of the token, not refused (§3.3).
            let account = user.clone();
            let person = state
                .core
                .db
                .run(move |c| crate::policy::load_person(c, &account))
                .await
                .map_err(unavailable)?;
            // The same read decides the factor: a role gained since the login was checked may
            // need a stronger one (then the person signs in again).
            let needed = state.core.policy.factors(&person).level();
            if Acr::parse(&a.acr).is_none_or(|have| have < needed) {
                loaded.session.auth = None;
                let cookie = session::save(state, loaded, secure).await.map_err(unavailable)?;
                let mut resp = page("/login");
                resp.add_cookie(&cookie).map_err(unavailable)?;
                return Ok(resp);
            }
            let scope = state.core.policy.user_scopes(&person, ClientFacts::of(&client), &r.scope);
            if scope.is_empty() {
                // RFC 6749 §4.1.2.1: nothing of the request may be granted to this person.
                loaded.session.remove_pending(id);
                let e = redirect_err(
                    "invalid_scope",
                    "None of the requested scopes is allowed for this account.",
                );
                let mut resp = error_redirect(issuer, &r.redirect_uri, r.state.as_deref(), &e);
                let cookie = session::save(state, loaded, secure).await.map_err(unavailable)?;
                resp.add_cookie(&cookie).map_err(unavailable)?;
                return Ok(resp);
            }
            let grant = CodeGrant {
                client_id: client.id.clone(),
                redirect_uri: r.redirect_uri.clone(),
                code_challenge: r.code_challenge.clone(),
                user_id: a.user_id.clone(),
                sid: a.sid.clone(),
                scope: Scope::join(&scope),
                nonce: r.nonce.clone(),
                auth_time_us: a.auth_time_us,
                amr: a.amr.clone(),
                acr: a.acr.clone(),
            };
            let code = code::issue(state, &grant).await.map_err(unavailable)?;
            loaded.session.remove_pending(id);
            let mut params = vec![("code", code.as_str())];
            if let Some(s) = &r.state {
                params.push(("state", s));
            }
            params.push(("iss", issuer.issuer.as_str()));
            see_other(&with_query(&r.redirect_uri, &params))
        }
    };
    let cookie = session::save(state, loaded, secure).await.map_err(unavailable)?;
    let mut resp = resp;
    resp.add_cookie(&cookie).map_err(unavailable)?;
    Ok(resp)
}

/// Marks the pending request `id` consented (the consent page's approval).
pub fn mark_consented(s: &mut BrowserSession, id: &str) -> bool {
    match s.pending_mut(id) {
        Some(p) => {
            p.consented = true;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
