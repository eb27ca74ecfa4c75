//! The browser session: a random id in a cookie, its state in the session store under a
//! keyed digest of that id (a store dump yields no usable cookie). The id is replaced after
//! every authentication step (session fixation), and with it the CSRF token.
//!
//! Cookie: `__Host-pramaan` (Secure, HttpOnly, SameSite=Lax, Path=/) when the issuer is https;
//! on a plain-http issuer (the loopback development default) `pramaan_session`, the same
//! without Secure, which browsers would otherwise drop.
//!
//! An anonymous visitor's session (its CSRF token and pending requests, nothing proven yet)
//! is never written to the store: it rides in the same cookie, compressed and sealed with
//! AES-256-GCM under a subkey of the key-encryption key, with its expiry inside the seal. So
//! opening pages, however often and from however many addresses, fills no store (DESIGN.md:
//! anonymous visitors create no server-side state). The session moves into the store only
//! when it holds a proof — a password, a reset link or code — which needs a valid CSRF token
//! and a secret; it leaves the store again when the proof is forgotten.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};

use crate::domain::UserId;
use crate::oidc::authorize::Pending;
use crate::sessions::StoreError;
use crate::state::AppState;

/// At most this many unfinished authorization requests per browser (tabs); the oldest goes.
const MAX_PENDING: usize = 5;

/// The longest sealed cookie value sent: browsers keep cookies of up to 4096 bytes, name and
/// attributes included. Pending requests are dropped oldest first until the session fits.
const SEALED_BUDGET: usize = 3_900;

/// The associated data that binds a sealed session to its use.
const SEALED_AAD: &[u8] = b"pramaan/v1/anonymous-browser-session";

/// A sealed value that inflates past this is refused (a forged one could not get here, but
/// the bound costs nothing).
const SEALED_MAX_INFLATED: u64 = 64 * 1024;

/// The login this browser completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authenticated {
    pub user_id: UserId,
    /// The session's public id: the `sid` of its tokens, the key of its liveness record.
    pub sid: String,
    /// When the person last proved who they are, in microseconds (compared with the
    /// account's `tokens_valid_after`, which has microsecond precision).
    pub auth_time_us: i64,
    /// RFC 8176 method references (`pwd`, later `otp`, `sms`, `mfa`).
    pub amr: Vec<String>,
    pub acr: String,
}

impl Authenticated {
    pub fn auth_time_secs(&self) -> i64 {
        self.auth_time_us.div_euclid(1_000_000)
    }
}

/// A login between its password and its second factor. It grants nothing: every page but the
/// second-factor page sees no login, and it lasts `login.pending_ttl_secs` from the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialLogin {
    /// The login transaction: binds SMS codes and counts wrong codes across parallel tabs.
    pub tx: String,
    pub user_id: UserId,
    /// When the password was proven, in microseconds.
    pub password_at_us: i64,
    /// The factors this login may finish with (empty while an app is being set up).
    pub factors: Vec<crate::domain::Factor>,
    /// Recovery codes may stand in for the authenticator app.
    pub recovery: bool,
    /// The secret of an authenticator app being set up, sealed (bound to the account).
    pub enrolling: Option<String>,
}

/// What the store keeps for one browser.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BrowserSession {
    pub csrf: String,
    pub auth: Option<Authenticated>,
    pub pending: Vec<Pending>,
    #[serde(default)]
    pub partial: Option<PartialLogin>,
    /// A new authenticator app being set up from the account page.
    #[serde(default)]
    pub account_enrolling: Option<AccountEnrollment>,
    /// A password reset under way in this browser (the link or code was proven).
    #[serde(default)]
    pub reset: Option<ResetFlow>,
    /// The username the forgotten-password page was last given here (its code form needs it,
    /// and the page must not show it).
    #[serde(default)]
    pub reset_requested: Option<String>,
}

/// A reset link or code proven in this browser: the reset it belongs to, and whether the
/// account's second factor has been proven too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetFlow {
    pub reset_id: String,
    pub user_id: UserId,
    /// The reset came by text message (the phone is proven already).
    pub via_sms: bool,
    pub factor_done: bool,
}

/// A new app's secret on its way from the account page's proof to its confirming code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountEnrollment {
    /// Sealed, bound to the account, the login and the app that was proven.
    pub sealed: String,
    pub started_at_us: i64,
}

impl BrowserSession {
    pub fn fresh() -> Self {
        Self {
            csrf: crate::crypto::random_token(24),
            auth: None,
            pending: Vec::new(),
            partial: None,
            account_enrolling: None,
            reset: None,
            reset_requested: None,
        }
    }

    /// Whether the session holds nothing that must live in the store: no login (finished or
    /// half), no reset or app enrollment under way. Such a session rides sealed in the cookie.
    pub fn is_anonymous(&self) -> bool {
        self.auth.is_none()
            && self.partial.is_none()
            && self.account_enrolling.is_none()
            && self.reset.is_none()
    }

    /// Compares a form's CSRF token with this session's in constant time.
    pub fn csrf_ok(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| crate::crypto::constant_time_eq(p.as_bytes(), self.csrf.as_bytes()))
    }

    pub fn pending(&self, id: &str) -> Option<&Pending> {
        self.pending.iter().find(|p| crate::crypto::constant_time_eq(p.id.as_bytes(), id.as_bytes()))
    }

    pub fn pending_mut(&mut self, id: &str) -> Option<&mut Pending> {
        self.pending.iter_mut().find(|p| crate::crypto::constant_time_eq(p.id.as_bytes(), id.as_bytes()))
    }

    pub fn add_pending(&mut self, p: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push(p);
    }

    pub fn remove_pending(&mut self, id: &str) {
        self.pending.retain(|p| p.id != id);
    }

    /// Drops requests that arrived more than `ttl_us` microseconds before `now_us`, and a
    /// half-finished login whose password is as old.
    pub fn expire_pending(&mut self, now_us: i64, ttl_us: i64) {
        self.pending.retain(|p| now_us - p.created_at_us <= ttl_us);
        if self.partial.as_ref().is_some_and(|h| now_us - h.password_at_us > ttl_us) {
            self.partial = None;
        }
    }
}

/// Drops the session's pending requests older than `login.pending_ttl_secs`: a request
/// left open for hours must not be finishable with its old `state`.
pub fn expire_pending(state: &AppState, s: &mut BrowserSession) {
    let ttl_us =
        i64::try_from(state.core.settings.login.pending_ttl_secs).unwrap_or(i64::MAX / 2_000_000) * 1_000_000;
    s.expire_pending(state.core.clock.now().timestamp_micros(), ttl_us);
}

/// The cookie's name for an issuer.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-pramaan" } else { "pramaan_session" }
}

/// Whether cookies must be `Secure` (`__Host-`): the issuer is https.
pub fn secure_issuer(issuer: &str) -> bool {
    issuer.starts_with("https://")
}

fn store_key(state: &AppState, id: &str) -> String {
    format!("browser:{}", state.core.keys.digester.digest("browser-session", id.as_bytes()))
}

/// A loaded session and the cookie id it was found under (`None`: not in the store — new, or
/// anonymous and sealed in the cookie).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Option<String>,
    pub session: BrowserSession,
}

/// An anonymous session as sealed in the cookie, with the instant it stops being accepted.
#[derive(Serialize, Deserialize)]
struct SealedSession {
    exp_us: i64,
    session: BrowserSession,
}

/// Whether a cookie value has the shape of a store id: 32 base64url characters.
fn is_store_id(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The browser's session, or a fresh (unsaved) one. A cookie whose session is gone, whose
/// seal does not open or whose sealed session has expired counts as no session.
pub async fn load(state: &AppState, req: &HttpRequest, secure: bool) -> Result<Loaded, StoreError> {
    if let Some(c) = req.cookie(cookie_name(secure)) {
        let value = c.value();
        // Our ids are 32 base64url characters; anything else is not worth a store lookup.
        if is_store_id(value)
            && let Some(bytes) = state.sessions.get(&store_key(state, value)).await?
            && let Ok(session) = serde_json::from_slice::<BrowserSession>(&bytes)
        {
            let mut session = session;
            expire_pending(state, &mut session);
            return Ok(Loaded { id: Some(value.to_owned()), session });
        }
        let now_us = state.core.clock.now().timestamp_micros();
        if let Some(mut session) = unseal(state, value, now_us) {
            expire_pending(state, &mut session);
            return Ok(Loaded { id: None, session });
        }
    }
    Ok(Loaded { id: None, session: BrowserSession::fresh() })
}

/// Opens a sealed anonymous session that has not expired at `now_us`.
fn unseal(state: &AppState, value: &str, now_us: i64) -> Option<BrowserSession> {
    use std::io::Read;
    if value.len() > SEALED_BUDGET {
        return None;
    }
    let compressed = state.core.keys.sessions.open(value, SEALED_AAD).ok()?;
    let mut json = Vec::new();
    flate2::read::DeflateDecoder::new(&compressed[..])
        .take(SEALED_MAX_INFLATED)
        .read_to_end(&mut json)
        .ok()?;
    let sealed: SealedSession = serde_json::from_slice(&json).ok()?;
    (sealed.exp_us > now_us && sealed.session.is_anonymous()).then_some(sealed.session)
}

/// Seals an anonymous session for `ttl_us` from `now_us`, or `None` when it does not fit in
/// a cookie even alone.
fn seal(state: &AppState, session: &BrowserSession, now_us: i64, ttl_us: i64) -> Option<String> {
    use std::io::Write;
    let sealed = SealedSession { exp_us: now_us.saturating_add(ttl_us), session: session.clone() };
    let json = serde_json::to_vec(&sealed).ok()?;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&json).ok()?;
    let value = state.core.keys.sessions.seal(&z.finish().ok()?, SEALED_AAD);
    (value.len() <= SEALED_BUDGET).then_some(value)
}

/// How long the stored session lives: an authenticated one until its login expires, an
/// anonymous one (a login in progress, perhaps half-finished) for the pending-request
/// lifetime.
fn ttl(state: &AppState, s: &BrowserSession) -> Duration {
    let login = &state.core.settings.login;
    match &s.auth {
        Some(a) => {
            let now_us = state.core.clock.now().timestamp_micros();
            let ends =
                a.auth_time_us + i64::try_from(login.session_ttl_secs).unwrap_or(i64::MAX / 2) * 1_000_000;
            Duration::from_micros(u64::try_from(ends - now_us).unwrap_or(0).max(1_000_000))
        }
        None => Duration::from_secs(login.pending_ttl_secs),
    }
}

/// Keeps the session and returns the cookie to set: an anonymous one sealed in the cookie
/// itself (leaving the store if it was there), any other in the store under its id (a new id
/// if it had none).
pub async fn save(
    state: &AppState,
    loaded: &mut Loaded,
    secure: bool,
) -> Result<Cookie<'static>, StoreError> {
    if loaded.session.is_anonymous() {
        if let Some(old) = loaded.id.take() {
            state.sessions.delete(&store_key(state, &old)).await?;
        }
        let now_us = state.core.clock.now().timestamp_micros();
        let ttl_us = i64::try_from(ttl(state, &loaded.session).as_micros()).unwrap_or(i64::MAX / 2);
        loop {
            if let Some(value) = seal(state, &loaded.session, now_us, ttl_us) {
                return Ok(cookie(value, secure));
            }
            // Too large for a cookie: the oldest tab's request goes first.
            if loaded.session.pending.len() <= 1 {
                return Err(StoreError::Unavailable("the anonymous session does not fit in a cookie".into()));
            }
            loaded.session.pending.remove(0);
        }
    }
    let id = match &loaded.id {
        Some(id) => id.clone(),
        None => {
            let id = crate::crypto::random_token(24);
            loaded.id = Some(id.clone());
            id
        }
    };
    let bytes = serde_json::to_vec(&loaded.session).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    state.sessions.put(&store_key(state, &id), &bytes, ttl(state, &loaded.session)).await?;
    Ok(cookie(id, secure))
}

/// Moves the session to a new id with a new CSRF token (after each authentication step), so
/// an id planted or seen before the step is worthless after it.
pub async fn renew(
    state: &AppState,
    loaded: &mut Loaded,
    secure: bool,
) -> Result<Cookie<'static>, StoreError> {
    if let Some(old) = loaded.id.take() {
        state.sessions.delete(&store_key(state, &old)).await?;
    }
    loaded.session.csrf = crate::crypto::random_token(24);
    save(state, loaded, secure).await
}

/// Deletes the session and returns a cookie that clears it in the browser.
pub async fn destroy(state: &AppState, loaded: &Loaded, secure: bool) -> Result<Cookie<'static>, StoreError> {
    if let Some(id) = &loaded.id {
        state.sessions.delete(&store_key(state, id)).await?;
    }
    let mut c = cookie(String::new(), secure);
    c.make_removal();
    Ok(c)
}

fn cookie(id: String, secure: bool) -> Cookie<'static> {
    Cookie::build(cookie_name(secure), id)
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .finish()
}

/// The liveness record of a login (`sid`): introspection, userinfo and the refresh grant read
/// it, so ending a session ends its tokens at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidRecord {
    pub user_id: UserId,
    pub auth_time_us: i64,
}

fn sid_key(sid: &str) -> String {
    format!("sid:{sid}")
}

fn user_sessions_index(user: &UserId) -> String {
    format!("user-sessions:{user}")
}

/// Records a new login's `sid` for the session lifetime, indexed by user ("sign out
/// everywhere").
pub async fn start_sid(state: &AppState, a: &Authenticated) -> Result<(), StoreError> {
    let rec = SidRecord { user_id: a.user_id.clone(), auth_time_us: a.auth_time_us };
    let bytes = serde_json::to_vec(&rec).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let ttl = Duration::from_secs(state.core.settings.login.session_ttl_secs);
    state.sessions.put_indexed(&user_sessions_index(&a.user_id), &sid_key(&a.sid), &bytes, ttl).await
}

/// The person's live logins: each `sid` with its record, oldest first.
pub async fn logins_of(state: &AppState, user: &UserId) -> Result<Vec<(String, SidRecord)>, StoreError> {
    let mut out = Vec::new();
    for key in state.sessions.index_members(&user_sessions_index(user)).await? {
        let Some(sid) = key.strip_prefix("sid:") else { continue };
        if let Some(rec) = sid_record(state, sid).await?
            && rec.user_id == *user
        {
            out.push((sid.to_owned(), rec));
        }
    }
    out.sort_by_key(|(_, r)| r.auth_time_us);
    Ok(out)
}

/// The live record of `sid`, if the session has not ended.
pub async fn sid_record(state: &AppState, sid: &str) -> Result<Option<SidRecord>, StoreError> {
    Ok(state.sessions.get(&sid_key(sid)).await?.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Whether the login `a` still has its liveness record (logout elsewhere, an expired login
/// and "sign out everywhere" remove it).
pub async fn sid_alive(state: &AppState, a: &Authenticated) -> Result<bool, StoreError> {
    Ok(sid_record(state, &a.sid).await?.is_some_and(|r| r.user_id == a.user_id))
}

/// Why the signed-in account could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Db(#[from] crate::store::DbError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The account this browser is signed in as, if its login still stands: the account exists,
/// is active and was not cut off after the login
/// ([`standing_login`](crate::oidc::authorize::standing_login)), and the login's `sid`
/// record is alive. The one check every page and `/authorize` make.
pub async fn signed_in_user(
    state: &AppState,
    s: &BrowserSession,
) -> Result<Option<crate::domain::User>, LookupError> {
    let Some(a) = &s.auth else { return Ok(None) };
    let uid = a.user_id.clone();
    let user = state.core.db.run(move |c| crate::store::users::find(c, &uid)).await?;
    if crate::oidc::authorize::standing_login(Some(a), user.as_ref()).is_none()
        || !sid_alive(state, a).await?
    {
        return Ok(None);
    }
    Ok(user)
}

/// Ends the login `sid` (its tokens become inactive at once).
pub async fn end_sid(state: &AppState, sid: &str) -> Result<(), StoreError> {
    state.sessions.delete(&sid_key(sid)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::authorize::{AuthorizationRequest, Prompt, Purpose};

    fn pending(id: &str, created_at_us: i64) -> Pending {
        Pending {
            id: id.into(),
            created_at_us,
            purpose: Purpose::Client(AuthorizationRequest {
                client_id: crate::domain::ClientId::from_string("c".into()),
                redirect_uri: "https://a/cb".into(),
                scope: vec![],
                state: None,
                nonce: None,
                code_challenge: "x".into(),
                prompt: Prompt::default(),
                max_age: None,
                login_hint: None,
                acr: None,
                hint_sub: None,
            }),
            consented: false,
        }
    }

    #[test]
    fn old_pending_requests_expire_and_at_most_five_are_kept() {
        let mut s = BrowserSession::fresh();
        for i in 0..7 {
            s.add_pending(pending(&format!("p{i}"), i * 1_000_000));
        }
        assert_eq!(s.pending.len(), 5);
        assert!(s.pending("p0").is_none() && s.pending("p6").is_some());
        s.expire_pending(10_000_000, 5_000_000);
        assert!(s.pending("p4").is_none(), "arrived 6 s before, lifetime 5 s");
        assert!(s.pending("p5").is_some());
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let s = BrowserSession::fresh();
        assert!(s.csrf_ok(Some(&s.csrf.clone())));
        assert!(!s.csrf_ok(None));
        assert!(!s.csrf_ok(Some("")));
        assert!(!s.csrf_ok(Some(&format!("{}x", s.csrf))));
    }
}
