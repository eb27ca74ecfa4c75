//! A cookie-keeping HTTP client that fills in the sign-in pages the way a browser does,
//! following redirects one at a time so tests can see each step, plus what the browser
//! flow needs around it: accounts, registered clients, PKCE pairs.

use base64::Engine;
use pramaan_server::domain::{NewUser, User, Username};
use pramaan_server::store::users;
use secrecy::SecretString;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::TestApp;
use crate::cli::{env_for, run_cli};

/// The redirect URI of the test clients (nothing listens there: tests read the redirect).
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// The password of the test accounts.
pub const PASSWORD: &str = "lantern orbit mango 42";

/// One browser: its own cookie jar, no automatic redirects.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self::from_address(app, None)
    }

    /// A browser whose connections come from `local` (another loopback address, such as
    /// 127.0.0.2: another person as far as per-address limits go).
    pub fn from_address(app: &TestApp, local: Option<std::net::IpAddr>) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .local_address(local)
            .build()
            .expect("browser client");
        Self { http, base: app.address.clone(), jar }
    }

    /// The `Cookie` header this browser sends to the server (to replay it elsewhere).
    pub fn cookie_header(&self, app: &TestApp) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url = url::Url::parse(&app.address).ok()?;
        self.jar.cookies(&url).and_then(|v| v.to_str().ok().map(str::to_owned))
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        self.http.get(self.url(path_or_url)).send().await.expect("request sent")
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(self.url(path)).form(form).send().await.expect("request sent")
    }

    /// Follows redirects that stay on this server; stops at a page or at a redirect that
    /// leaves it (to a client's redirect URI).
    pub async fn follow(&self, mut resp: reqwest::Response) -> reqwest::Response {
        for _ in 0..10 {
            if !resp.status().is_redirection() {
                return resp;
            }
            let loc = location(&resp);
            if loc.starts_with("http") && !loc.starts_with(&self.base) {
                return resp;
            }
            resp = self.get(&loc).await;
        }
        panic!("too many redirects");
    }

    /// Fills in and sends the login page at `page` (a response showing it).
    pub async fn submit_login(
        &self,
        page: reqwest::Response,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let html = page.text().await.expect("login page");
        let csrf = hidden(&html, "csrf").expect("the login page has a CSRF token");
        let request = hidden(&html, "request").expect("the login page names its request");
        self.post(
            "/login",
            &[("csrf", &csrf), ("request", &request), ("username", username), ("password", password)],
        )
        .await
    }

    /// From an authorization URL to wherever the flow leaves this server, signing in with
    /// the login page on the way (and only then). Returns the last response.
    pub async fn sign_in(&self, authorize_url: &str, username: &str, password: &str) -> reqwest::Response {
        let resp = self.follow(self.get(authorize_url).await).await;
        if resp.status().is_redirection() {
            return resp;
        }
        let url = resp.url().path().to_owned();
        assert_eq!(url, "/login", "the flow shows the login page first");
        let after = self.submit_login(resp, username, password).await;
        self.follow(after).await
    }
}

/// The `Location` header of a redirect.
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("a redirect, got {}", resp.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The query parameter `name` of `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The value of the hidden input `name` in `html`.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = pramaan_server::crypto::random_token(32);
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Creates an active account with `password`.
pub async fn create_user(app: &TestApp, username: &str, password: &str, must_change_password: bool) -> User {
    let hash = app.core.passwords.hash(SecretString::from(password.to_owned())).await.expect("hash");
    let new = NewUser {
        username: Username::parse(username).expect("username"),
        display_name: format!("{username} (test)"),
        phone: None,
        email: Some(pramaan_server::domain::Email::parse(&format!("{username}@example.org")).unwrap()),
        org_unit_id: None,
        password_hash: Some(hash),
        must_change_password,
    };
    app.core.db.run(move |c| users::insert(c, &new, chrono::Utc::now())).await.expect("user inserted")
}

/// The account named `username`, as stored now.
pub async fn find_user(app: &TestApp, username: &str) -> User {
    let name = Username::parse(username).expect("username");
    app.core
        .db
        .run(move |c| users::find_by_username(c, &name))
        .await
        .expect("lookup")
        .expect("the account exists")
}

/// Disables the account, as an administrator would.
pub async fn disable_user(app: &TestApp, user: &User) {
    let id = user.id.clone();
    app.core
        .db
        .run(move |c| {
            users::set_status(c, &id, pramaan_server::domain::UserStatus::Disabled, chrono::Utc::now())
        })
        .await
        .expect("disabled");
}

/// A client registered through the CLI, as an operator would.
pub struct Registered {
    pub id: String,
    pub secret: Option<String>,
}

pub async fn register_client(app: &TestApp, args: &[&str]) -> Registered {
    let env = env_for(&app.db.url, app.data_dir.path());
    let mut all = vec!["client", "create"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = run_cli(&all, &env, "").await;
    assert!(run.ok(), "client create failed: {}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).expect("JSON");
    Registered {
        id: v["client_id"].as_str().expect("client_id").to_owned(),
        secret: v["client_secret"].as_str().map(str::to_owned),
    }
}

/// A confidential partner app in category `private` with client credentials for
/// `registry.read`, named `name`.
pub async fn partner_client(app: &TestApp, name: &str) -> Registered {
    let args = [
        "--name",
        name,
        "--category",
        "private",
        "--grant",
        "client_credentials",
        "--scope",
        "registry.read",
    ];
    register_client(app, &args).await
}

/// A public, first-party code-flow client with refresh tokens (a field app), plus `extra`
/// arguments to `client create`.
pub async fn public_client(app: &TestApp, extra: &[&str]) -> Registered {
    let mut args = vec![
        "--name",
        "Field app",
        "--public",
        "--first-party",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--scope",
        "registry.read registry.write",
        "--redirect-uri",
        REDIRECT,
    ];
    args.extend_from_slice(extra);
    register_client(app, &args).await
}

/// An authorization URL for a code-flow request.
pub fn authorize_url(
    app: &TestApp,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    ser.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "st4te")
        .append_pair("nonce", "n0nce")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        ser.append_pair(k, v);
    }
    format!("{}/authorize?{}", app.address, ser.finish())
}

/// Signs `username` in through the pages and returns a fresh code with its PKCE verifier.
pub async fn code_for(
    app: &TestApp,
    browser: &Browser,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    username: &str,
    password: &str,
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let url = authorize_url(app, client_id, redirect_uri, scope, &challenge, &[]);
    let back = browser.sign_in(&url, username, password).await;
    let to = location(&back);
    let code = query_param(&to, "code").unwrap_or_else(|| panic!("a code, got {to}"));
    (code, verifier)
}

/// POSTs a form to the token endpoint (or another OAuth endpoint) and returns the status and
/// JSON body.
pub async fn post_form(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = app.client.post(format!("{}{path}", app.address)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
