//! Helpers for the admin API suite: an organisation tree, staff placed in it, Pramaan's own
//! console client, an administrator's sign-in (password, then the authenticator app set up at
//! the first login) that ends with a real access token, and JSON requests to the API.

use chrono::Utc;
use pramaan_server::clock::FixedClock;
use pramaan_server::domain::{AuditRecord, OrgPath, OrgUnitId, User, UserStatus};
use pramaan_server::store::{audit_events, org_units, users};
use serde_json::Value;

use crate::TestApp;
use crate::browser::{Browser, REDIRECT, Registered, authorize_url, pkce, post_form, register_client};
use crate::two_factor::{app_code, code_in, continue_from, enroll, insert_staff, password_step, submit_code};

/// Every admin scope, as the console asks for them.
pub const ADMIN_SCOPES: &str = "openid admin.users admin.clients admin.audit admin.campaigns admin.policy";

/// The unit at `path`, created with its missing ancestors (kinds by depth: national, state,
/// district, facility).
pub async fn org(app: &TestApp, path: &str) -> OrgUnitId {
    let path = OrgPath::parse(path).unwrap();
    let now = Utc::now();
    app.core
        .db
        .run(move |c| {
            let mut chain = vec![path.clone()];
            while let Some(p) = chain.last().and_then(OrgPath::parent) {
                chain.push(p);
            }
            let mut id = None;
            for p in chain.iter().rev() {
                let kind = ["national", "state", "district", "facility"][(p.depth() - 1).min(3)];
                id = Some(match org_units::find_by_path(c, p)? {
                    Some(u) => u.id,
                    None => org_units::create(c, p, p.as_str(), kind, now)?.id,
                });
            }
            Ok::<_, pramaan_server::store::DbError>(id.unwrap())
        })
        .await
        .unwrap()
}

/// An active account with the test password and `roles`, in the unit at `org_path`.
pub async fn staff_in(app: &TestApp, username: &str, role_names: &[&str], org_path: &str) -> User {
    let unit = org(app, org_path).await;
    insert_staff(app, username, role_names, None, Some(unit)).await
}

/// Gives `user` the email address `email`.
pub async fn set_email(app: &TestApp, user: &User, email: &str) -> User {
    use pramaan_server::store::users;
    let (id, now) = (user.id.clone(), app.core.clock.now());
    let change = users::ProfileChange {
        email: Some(Some(pramaan_server::domain::Email::parse(email).unwrap())),
        ..Default::default()
    };
    app.core.db.run(move |c| users::update_profile(c, &id, &change, now)).await.unwrap()
}

/// Pramaan's own console: an internal, first-party, public code-flow client with refresh
/// tokens and every admin scope.
pub async fn console_client(app: &TestApp) -> Registered {
    register_client(
        app,
        &[
            "--name",
            "Admin console",
            "--category",
            "internal",
            "--public",
            "--first-party",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--scope",
            "admin.users admin.clients admin.audit admin.campaigns admin.policy registry.read",
            "--redirect-uri",
            REDIRECT,
        ],
    )
    .await
}

/// An administrator's tokens from a sign-in through the console.
pub struct AdminLogin {
    pub access_token: String,
    pub refresh_token: String,
    pub scope: String,
    /// The authenticator app's key, for later sign-ins.
    pub key: String,
}

/// Signs `username` in through `console` for the first time: password, the authenticator app
/// set up on the spot, the code exchanged for tokens.
pub async fn first_admin_login(
    app: &TestApp,
    clock: &FixedClock,
    console: &str,
    username: &str,
) -> AdminLogin {
    let (verifier, challenge) = pkce();
    let url = authorize_url(app, console, REDIRECT, ADMIN_SCOPES, &challenge, &[]);
    let b = Browser::new(app);
    let page = password_step(&b, &url, username).await;
    assert_eq!(page.url().path(), "/login/factor", "an administrator needs a second factor");
    let (enrolled, shown) = enroll(&b, &page.text().await.unwrap(), clock).await;
    let back = continue_from(&b, &shown).await;
    let tokens = exchange(app, console, &back, &verifier).await;
    AdminLogin {
        access_token: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        scope: tokens["scope"].as_str().unwrap_or_default().to_owned(),
        key: enrolled.key,
    }
}

/// Signs `username` in again with the app (after the clock moved past the last code's step).
pub async fn admin_login(
    app: &TestApp,
    clock: &FixedClock,
    console: &str,
    username: &str,
    key: &str,
) -> AdminLogin {
    let (verifier, challenge) = pkce();
    let url = authorize_url(app, console, REDIRECT, ADMIN_SCOPES, &challenge, &[("prompt", "login")]);
    let b = Browser::new(app);
    let page = password_step(&b, &url, username).await;
    assert_eq!(page.url().path(), "/login/factor");
    let html = page.text().await.unwrap();
    let back = b.follow(submit_code(&b, &html, "totp", &app_code(key, clock)).await).await;
    let tokens = exchange(app, console, &back, &verifier).await;
    AdminLogin {
        access_token: tokens["access_token"].as_str().unwrap().to_owned(),
        refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        scope: tokens["scope"].as_str().unwrap_or_default().to_owned(),
        key: key.to_owned(),
    }
}

async fn exchange(app: &TestApp, client: &str, back: &reqwest::Response, verifier: &str) -> Value {
    let code = code_in(back).unwrap_or_else(|| panic!("a code, got {:?}", back.headers().get("location")));
    let (status, body) = post_form(
        app,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// An admin API answer: status, `content-type`, `www-authenticate` and the JSON body (Null
/// when there is none).
#[derive(Debug)]
pub struct ApiAnswer {
    pub status: u16,
    pub content_type: String,
    pub challenge: Option<String>,
    pub body: Value,
}

/// Calls `method path` under `/admin/api/v1` with `token` and an optional JSON body.
pub async fn api(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> ApiAnswer {
    let url = format!("{}/admin/api/v1{path}", app.address);
    let mut req = app.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let status = resp.status().as_u16();
    let content_type = header("content-type").unwrap_or_default();
    let challenge = header("www-authenticate");
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    ApiAnswer { status, content_type, challenge, body }
}

/// Posts `csv` (as `text/csv`) to `path` under `/admin/api/v1` with `token`.
pub async fn api_csv(app: &TestApp, path: &str, token: &str, csv: &str) -> ApiAnswer {
    let resp = app
        .client
        .post(format!("{}/admin/api/v1{path}", app.address))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type =
        resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    ApiAnswer {
        status,
        content_type,
        challenge,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// The audit events of `action`, oldest first.
pub async fn audit(app: &TestApp, action: &str) -> Vec<AuditRecord> {
    let filter = audit_events::AuditFilter { action: Some(action.to_owned()), ..Default::default() };
    app.core.db.run(move |c| audit_events::page(c, &filter, 1000)).await.unwrap()
}

/// The account's status as stored now.
pub async fn status_of(app: &TestApp, user: &User) -> UserStatus {
    let id = user.id.clone();
    app.core.db.run(move |c| users::find(c, &id)).await.unwrap().unwrap().status
}

/// An audit event's details as JSON.
pub fn details(r: &AuditRecord) -> Value {
    serde_json::from_str(&r.details).unwrap()
}

/// Whether an admin API answer is RFC 9457 problem+json whose `status` matches the response.
pub fn is_problem(a: &ApiAnswer) -> bool {
    a.content_type == "application/problem+json" && a.body["status"].as_u64() == Some(u64::from(a.status))
}
