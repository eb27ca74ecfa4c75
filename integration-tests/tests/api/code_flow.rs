//! The browser code flow end to end, with the `openidconnect` crate as the relying party:
//! discovery → authorize → login form → code → token → ID token validation → userinfo →
//! refresh → logout. Then single sign-on, prompt=none, consent, and the forced password
//! change, through the HTML forms with a cookie-keeping client.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreUserInfoClaims};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, LogoutRequest, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl,
    RefreshToken, Scope, TokenResponse,
};
use pramaan_integration_tests::browser::{
    Browser, PASSWORD, REDIRECT, authorize_url, create_user, find_user, hidden, location, pkce, query_param,
    register_client,
};
use pramaan_integration_tests::{TestApp, spawn_app};

const AFTER_LOGOUT: &str = "http://127.0.0.1:9/bye";

fn rp_http() -> reqwest::Client {
    // RFC 9700 §4.11: a relying party's HTTP client must not follow redirects.
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn web_app(app: &TestApp, extra: &[&str]) -> pramaan_integration_tests::browser::Registered {
    let mut args = vec![
        "--name",
        "Vaccination portal",
        "--category",
        "government",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--scope",
        "registry.read",
        "--redirect-uri",
        REDIRECT,
        "--post-logout-redirect-uri",
        AFTER_LOGOUT,
    ];
    args.extend_from_slice(extra);
    register_client(app, &args).await
}

#[tokio::test]
async fn the_openidconnect_crate_completes_the_code_flow_refresh_and_logout() {
    let app = spawn_app().await;
    let user = create_user(&app, "asha", PASSWORD, false).await;
    let reg = web_app(&app, &["--first-party"]).await;
    let http = rp_http();

    let metadata =
        ProviderMetadataWithLogout::discover_async(IssuerUrl::new(app.address.clone()).unwrap(), &http)
            .await
            .expect("discovery validates");
    let end_session =
        metadata.additional_metadata().end_session_endpoint.clone().expect("end_session_endpoint");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(reg.id.clone()),
        Some(ClientSecret::new(reg.secret.clone().unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("registry.read".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    let browser = Browser::new(&app);
    let back = browser.sign_in(auth_url.as_str(), "asha", PASSWORD).await;
    let to = location(&back);
    assert!(to.starts_with(REDIRECT), "back to the client: {to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some(csrf.secret().as_str()));
    assert_eq!(query_param(&to, "iss").as_deref(), Some(app.address.as_str()), "RFC 9207");
    let code = query_param(&to, "code").expect("a code");

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code is exchanged");
    let id_token = tokens.id_token().expect("an ID token");
    let claims: &CoreIdTokenClaims =
        id_token.claims(&client.id_token_verifier(), &nonce).expect("the ID token verifies");
    assert_eq!(claims.subject().as_str(), user.id.as_str());
    assert!(claims.auth_time().is_some());
    assert_eq!(claims.auth_method_refs().unwrap()[0].as_str(), "pwd");
    assert!(claims.access_token_hash().is_some(), "at_hash is set");
    let raw: serde_json::Value = {
        use base64::Engine;
        let payload = id_token.to_string().split('.').nth(1).unwrap().to_owned();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
            .unwrap()
    };
    assert!(raw["sid"].is_string(), "the ID token names its session: {raw}");
    let scope = tokens.scopes().unwrap().iter().map(|s| s.as_str().to_owned()).collect::<Vec<_>>();
    assert!(scope.contains(&"profile".to_owned()) && scope.contains(&"openid".to_owned()), "{scope:?}");
    // The client may ask for registry.read, but this person holds no role the policies give it to.
    assert!(!scope.contains(&"registry.read".to_owned()), "{scope:?}");

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo answers");
    assert_eq!(info.preferred_username().unwrap().as_str(), "asha");
    assert_eq!(info.email().unwrap().as_str(), "asha@example.org");

    let refreshed = client
        .exchange_refresh_token(&RefreshToken::new(tokens.refresh_token().unwrap().secret().clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("the refresh token works");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        tokens.refresh_token().unwrap().secret(),
        "refresh tokens rotate"
    );

    // Single sign-on: a second authorization in the same browser needs no password.
    let (challenge2, _) = PkceCodeChallenge::new_random_sha256();
    let (again, _, _) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge2)
        .url();
    let sso = browser.follow(browser.get(again.as_str()).await).await;
    assert!(location(&sso).starts_with(REDIRECT), "SSO issues a code without the login page");

    // RP-initiated logout with the ID token as hint.
    let logout = LogoutRequest::from(end_session)
        .set_id_token_hint(id_token)
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(AFTER_LOGOUT.into()).unwrap())
        .set_state(CsrfToken::new("bye-state".into()))
        .http_get_url();
    let out = browser.get(logout.as_str()).await;
    assert_eq!(out.status(), 303);
    let to = location(&out);
    assert!(to.starts_with(AFTER_LOGOUT), "{to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some("bye-state"));
    // Every token of that login is dead at once.
    let denied: Result<CoreUserInfoClaims, _> =
        client.user_info(refreshed.access_token().clone(), None).unwrap().request_async(&http).await;
    assert!(denied.is_err(), "userinfo refuses a token of an ended login");
    let dead = client
        .exchange_refresh_token(&RefreshToken::new(refreshed.refresh_token().unwrap().secret().clone()))
        .unwrap()
        .request_async(&http)
        .await;
    assert!(dead.is_err(), "the refresh token died with the login");
    // And the browser must sign in again.
    let after = browser.follow(browser.get(again.as_str()).await).await;
    assert_eq!(after.url().path(), "/login");
}

#[tokio::test]
async fn prompt_none_without_a_login_answers_login_required_at_the_redirect_uri() {
    let app = spawn_app().await;
    let reg = web_app(&app, &["--public", "--first-party"]).await;
    let (_, challenge) = pkce();
    let url = authorize_url(&app, &reg.id, REDIRECT, "openid", &challenge, &[("prompt", "none")]);
    let resp = Browser::new(&app).get(&url).await;
    let to = location(&resp);
    assert!(to.starts_with(REDIRECT));
    assert_eq!(query_param(&to, "error").as_deref(), Some("login_required"));
    assert_eq!(query_param(&to, "state").as_deref(), Some("st4te"));
}

#[tokio::test]
async fn a_third_party_client_needs_consent_once_and_a_denial_is_access_denied() {
    let app = spawn_app().await;
    create_user(&app, "ravi", PASSWORD, false).await;
    let reg = web_app(&app, &["--public"]).await;
    let browser = Browser::new(&app);
    let (_, challenge) = pkce();
    let url = authorize_url(&app, &reg.id, REDIRECT, "openid registry.read", &challenge, &[]);
    let page = browser.sign_in(&url, "ravi", PASSWORD).await;
    assert_eq!(page.url().path(), "/consent", "a third-party client asks first");
    let html = page.text().await.unwrap();
    assert!(html.contains("Vaccination portal") && html.contains("registry.read"));
    let (csrf, request) = (hidden(&html, "csrf").unwrap(), hidden(&html, "request").unwrap());
    // Without the CSRF token nothing is decided.
    let forged = browser.post("/consent", &[("request", &request), ("decision", "allow")]).await;
    assert_eq!(location(&forged), format!("/consent?request={request}"));
    let denied =
        browser.post("/consent", &[("csrf", &csrf), ("request", &request), ("decision", "deny")]).await;
    let to = location(&denied);
    assert_eq!(query_param(&to, "error").as_deref(), Some("access_denied"));

    // Allowed once, remembered after.
    let page = browser.follow(browser.get(&url).await).await;
    assert_eq!(page.url().path(), "/consent");
    let html = page.text().await.unwrap();
    let allowed = browser
        .post(
            "/consent",
            &[
                ("csrf", &hidden(&html, "csrf").unwrap()),
                ("request", &hidden(&html, "request").unwrap()),
                ("decision", "allow"),
            ],
        )
        .await;
    let done = browser.follow(allowed).await;
    assert!(query_param(&location(&done), "code").is_some());
    let again = browser.follow(browser.get(&url).await).await;
    assert!(query_param(&location(&again), "code").is_some(), "consent is remembered");
}

/// The first entry of the shipped common-passwords list long enough to pass the length rule.
fn a_long_common_password() -> &'static str {
    include_str!("../../../server/data/common-passwords.txt").lines().find(|p| p.len() >= 12).unwrap()
}

#[tokio::test]
async fn a_required_password_change_comes_before_any_code_and_enforces_the_rules() {
    let app = spawn_app().await;
    create_user(&app, "meena.kumari", PASSWORD, true).await;
    let reg = web_app(&app, &["--public", "--first-party"]).await;
    let browser = Browser::new(&app);
    let (_, challenge) = pkce();
    let url = authorize_url(&app, &reg.id, REDIRECT, "openid", &challenge, &[]);
    let page = browser.sign_in(&url, "meena.kumari", PASSWORD).await;
    assert_eq!(page.url().path(), "/login/password", "the change comes before any code");
    let mut html = page.text().await.unwrap();
    // Asking for a code again does not skip the change.
    let skip = browser.follow(browser.get(&url).await).await;
    assert_eq!(skip.url().path(), "/login/password");
    let common = a_long_common_password();
    for (new, confirm, why) in [
        ("short", "short", "at least 12"),
        ("Meena.Kumari", "Meena.Kumari", "your username"),
        (common, common, "most common"),
        (PASSWORD, PASSWORD, "different from your current"),
        ("river stone quiet 2026", "river stone quiet 2027", "do not match"),
    ] {
        let resp = browser
            .post(
                "/login/password",
                &[
                    ("csrf", &hidden(&html, "csrf").unwrap()),
                    ("request", &hidden(&html, "request").unwrap()),
                    ("new_password", new),
                    ("confirm_password", confirm),
                ],
            )
            .await;
        assert_eq!(resp.status(), 200, "{new}: the page comes back");
        html = resp.text().await.unwrap();
        assert!(html.contains(why), "{new}: expected '{why}' in the page");
    }
    let good = "river stone quiet 2026";
    let resp = browser
        .post(
            "/login/password",
            &[
                ("csrf", &hidden(&html, "csrf").unwrap()),
                ("request", &hidden(&html, "request").unwrap()),
                ("new_password", good),
                ("confirm_password", good),
            ],
        )
        .await;
    let done = browser.follow(resp).await;
    assert!(query_param(&location(&done), "code").is_some(), "a code after the change");
    let user = find_user(&app, "meena.kumari").await;
    assert!(!user.must_change_password);
    // The new password works and the old one does not.
    let fresh = Browser::new(&app);
    let refused = fresh.sign_in(&url, "meena.kumari", PASSWORD).await;
    assert_eq!(refused.status(), 200);
    assert!(refused.text().await.unwrap().contains("not right"));
    let ok = Browser::new(&app).sign_in(&url, "meena.kumari", good).await;
    assert!(query_param(&location(&ok), "code").is_some());
}

#[tokio::test]
async fn a_required_password_change_ends_the_accounts_other_logins() {
    let app = spawn_app().await;
    let user = create_user(&app, "ravi.shankar", PASSWORD, false).await;
    let reg = web_app(&app, &["--public", "--first-party"]).await;
    // A login from before the change was required (someone else's, say, after a breach).
    let earlier = Browser::new(&app);
    let (_, challenge) = pkce();
    let url = authorize_url(&app, &reg.id, REDIRECT, "openid", &challenge, &[]);
    let back = earlier.sign_in(&url, "ravi.shankar", PASSWORD).await;
    assert!(query_param(&location(&back), "code").is_some());
    let before = pramaan_server::login::session::logins_of(&app.state, &user.id).await.unwrap();
    assert_eq!(before.len(), 1);
    // The change is required now; the owner signs in and makes it.
    let id = user.id.clone();
    app.core.db.run(move |c| pramaan_server::store::users::require_password_change(c, &id)).await.unwrap();
    let browser = Browser::new(&app);
    let page = browser.sign_in(&url, "ravi.shankar", PASSWORD).await;
    assert_eq!(page.url().path(), "/login/password");
    let html = page.text().await.unwrap();
    let good = "river stone quiet 2026";
    let resp = browser
        .post(
            "/login/password",
            &[
                ("csrf", &hidden(&html, "csrf").unwrap()),
                ("request", &hidden(&html, "request").unwrap()),
                ("new_password", good),
                ("confirm_password", good),
            ],
        )
        .await;
    let done = browser.follow(resp).await;
    assert!(query_param(&location(&done), "code").is_some(), "a code after the change");
    let after = pramaan_server::login::session::logins_of(&app.state, &user.id).await.unwrap();
    assert_eq!(after.len(), 1, "only the login that made the change");
    assert!(
        before.iter().all(|(sid, _)| after.iter().all(|(other, _)| other != sid)),
        "the earlier login is gone"
    );
    // The earlier browser is signed out: asking for a code sends it to the password page.
    let again = earlier.follow(earlier.get(&url).await).await;
    assert_eq!(again.url().path(), "/login", "{}", again.url());
}
