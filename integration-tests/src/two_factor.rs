//! Helpers for the two-factor suite: staff accounts with roles and phones, a clock the test
//! moves, and the second-factor pages driven as a person would (codes computed from the key
//! the enrollment page shows, at the clock's time).

use base64::Engine;
use chrono::DateTime;
use pramaan_server::clock::{Clock, FixedClock};
use pramaan_server::domain::{NewUser, OrgUnitId, Phone, RoleName, User, Username};
use pramaan_server::mfa::totp;
use pramaan_server::store::{roles, users};
use secrecy::SecretString;
use serde_json::Value;

use crate::TestApp;
use crate::browser::{Browser, PASSWORD, hidden};

/// Where the tests' clock starts: a little into a 30-second step.
pub const T0: i64 = 1_900_000_005;

pub fn fixed_clock() -> FixedClock {
    FixedClock::new(DateTime::from_timestamp(T0, 0).unwrap())
}

/// Creates an active account with [`PASSWORD`], `roles` and perhaps a phone.
pub async fn staff(app: &TestApp, username: &str, role_names: &[&str], phone: Option<&str>) -> User {
    insert_staff(app, username, role_names, phone, None).await
}

/// Creates an active account with [`PASSWORD`], `roles`, perhaps a phone and a unit.
pub async fn insert_staff(
    app: &TestApp,
    username: &str,
    role_names: &[&str],
    phone: Option<&str>,
    org_unit_id: Option<OrgUnitId>,
) -> User {
    let hash = app.core.passwords.hash(SecretString::from(PASSWORD.to_owned())).await.unwrap();
    let new = NewUser {
        username: Username::parse(username).unwrap(),
        display_name: format!("{username} (test)"),
        phone: phone.map(|p| Phone::parse(p).unwrap()),
        email: None,
        org_unit_id,
        password_hash: Some(hash),
        must_change_password: false,
    };
    let role_names: Vec<RoleName> = role_names.iter().map(|r| RoleName::parse(r).unwrap()).collect();
    let now = app.core.clock.now();
    app.core
        .db
        .run(move |c| {
            let u = users::insert(c, &new, now)?;
            for r in &role_names {
                roles::assign(c, &u.id, r, now)?;
            }
            Ok::<_, pramaan_server::store::DbError>(u)
        })
        .await
        .unwrap()
}

/// Grants `role` to an existing account.
pub async fn grant(app: &TestApp, user: &User, role: &str) {
    let (id, role, now) = (user.id.clone(), RoleName::parse(role).unwrap(), app.core.clock.now());
    app.core.db.run(move |c| roles::assign(c, &id, &role, now)).await.unwrap();
}

/// The page after submitting the password for `authorize_url`, redirects on this server
/// followed.
pub async fn password_step(browser: &Browser, authorize_url: &str, username: &str) -> reqwest::Response {
    let page = browser.follow(browser.get(authorize_url).await).await;
    assert_eq!(page.url().path(), "/login", "the flow starts at the password");
    let after = browser.submit_login(page, username, PASSWORD).await;
    browser.follow(after).await
}

/// The base32 key the enrollment page shows for typing in by hand.
pub fn manual_key(html: &str) -> String {
    let start = html.find("<code id=\"manual-key\">").expect("the enrollment page shows the key") + 22;
    let end = html[start..].find("</code>").unwrap() + start;
    html[start..end].to_owned()
}

/// The authenticator app's code for `key` at the clock's time.
pub fn app_code(key: &str, clock: &FixedClock) -> String {
    totp::code_for_key(key, clock.now().timestamp()).unwrap()
}

/// Posts a code on the second-factor page shown in `html`.
pub async fn submit_code(browser: &Browser, html: &str, method: &str, code: &str) -> reqwest::Response {
    let csrf = hidden(html, "csrf").expect("the page has a CSRF token");
    let request = hidden(html, "request").expect("the page names its request");
    browser
        .post("/login/factor", &[("csrf", &csrf), ("request", &request), ("method", method), ("code", code)])
        .await
}

/// Posts the "text me a code" form of the page in `html`.
pub async fn send_sms(browser: &Browser, html: &str) -> reqwest::Response {
    let csrf = hidden(html, "csrf").unwrap();
    let request = hidden(html, "request").unwrap();
    browser.post("/login/factor/send", &[("csrf", &csrf), ("request", &request)]).await
}

/// An enrolled authenticator app: its key and the recovery codes shown once.
pub struct Enrolled {
    pub key: String,
    pub recovery_codes: Vec<String>,
}

/// Sets up the app on the enrollment page `html` (as the person would, with the app's code)
/// and returns the key, the recovery codes and the page that shows them.
pub async fn enroll(browser: &Browser, html: &str, clock: &FixedClock) -> (Enrolled, String) {
    let key = manual_key(html);
    let csrf = hidden(html, "csrf").unwrap();
    let request = hidden(html, "request").unwrap();
    let code = app_code(&key, clock);
    let resp = browser
        .post("/login/factor/enroll", &[("csrf", &csrf), ("request", &request), ("code", &code)])
        .await;
    assert_eq!(resp.status(), 200, "enrollment accepted");
    let page = resp.text().await.unwrap();
    let recovery_codes = recovery_codes(&page);
    assert_eq!(recovery_codes.len(), 10, "ten recovery codes are shown: {page}");
    (Enrolled { key, recovery_codes }, page)
}

fn recovery_codes(html: &str) -> Vec<String> {
    html.split("<li><code>").skip(1).filter_map(|s| s.split("</code>").next()).map(str::to_owned).collect()
}

/// The "Continue" link of an interstitial page.
pub fn continue_link(html: &str) -> String {
    let start = html.find("class=\"button\" href=\"").expect("a continue link") + 21;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&amp;", "&")
}

/// Follows a page's "Continue" link to where the flow leaves the server.
pub async fn continue_from(browser: &Browser, html: &str) -> reqwest::Response {
    browser.follow(browser.get(&continue_link(html)).await).await
}

/// The payload of a JWT, unverified (the tests check the claims; other suites check
/// signatures).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

/// The code in a redirect to the client.
pub fn code_in(resp: &reqwest::Response) -> Option<String> {
    let to = resp.headers().get("location")?.to_str().ok()?;
    crate::browser::query_param(to, "code")
}
