//! The token endpoint's browser grants and what their tokens may do, by hand-built requests:
//! replayed codes, PKCE, bound redirect URIs, refresh rotation and reuse, revocation, logout,
//! disabled accounts and RFC 6750 errors at userinfo. Each negative case asserts the status,
//! the `error` and that nothing changed (or, where the spec says so, what was revoked).

use std::time::{Duration, Instant};

use pramaan_integration_tests::browser::{
    Browser, PASSWORD, REDIRECT, Registered, authorize_url, code_for, create_user, disable_user, hidden,
    location, pkce, post_form, public_client, query_param, register_client,
};
use pramaan_integration_tests::{TestApp, spawn_app, spawn_app_with};
use serde_json::Value;

async fn public_app(app: &TestApp) -> Registered {
    public_client(app, &[]).await
}

/// A server with the account `asha`, the field app and the registry (an introspecting client).
async fn setup() -> (TestApp, Registered, Registered) {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let c = public_app(&app).await;
    let reg = registry(&app).await;
    (app, c, reg)
}

async fn registry(app: &TestApp) -> Registered {
    register_client(app, &["--name", "registry", "--grant", "client_credentials", "--introspection"]).await
}

async fn exchange(
    app: &TestApp,
    client: &str,
    code: &str,
    verifier: Option<&str>,
    redirect: &str,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client),
        ("code", code),
        ("redirect_uri", redirect),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    post_form(app, "/token", None, &form).await
}

async fn refresh(app: &TestApp, client: &str, token: &str) -> (u16, Value) {
    post_form(
        app,
        "/token",
        None,
        &[("grant_type", "refresh_token"), ("client_id", client), ("refresh_token", token)],
    )
    .await
}

async fn active(app: &TestApp, registry: &Registered, token: &str) -> bool {
    let (status, body) = post_form(
        app,
        "/introspect",
        Some((&registry.id, registry.secret.as_deref().unwrap())),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["active"].as_bool().unwrap()
}

async fn signed_in_tokens(app: &TestApp, client: &Registered, username: &str) -> Value {
    let browser = Browser::new(app);
    let (code, verifier) =
        code_for(app, &browser, &client.id, REDIRECT, "openid profile", username, PASSWORD).await;
    let (status, body) = exchange(app, &client.id, &code, Some(&verifier), REDIRECT).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn invalid_grant(status: u16, body: &Value) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[tokio::test]
async fn a_user_access_token_is_rfc_9068_with_login_claims() {
    let app = spawn_app().await;
    let user = create_user(&app, "asha", PASSWORD, false).await;
    let c = public_app(&app).await;
    let body = signed_in_tokens(&app, &c, "asha").await;
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let reg = registry(&app).await;
    let (_, info) =
        post_form(&app, "/introspect", Some((&reg.id, reg.secret.as_deref().unwrap())), &[("token", token)])
            .await;
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], user.id.as_str());
    assert_eq!(info["client_id"], c.id.as_str());
    assert_eq!(info["amr"], serde_json::json!(["pwd"]));
    for claim in ["auth_time", "acr", "sid", "jti", "exp", "iat", "iss", "aud"] {
        assert!(!info[claim].is_null(), "{claim} missing: {info}");
    }
}

#[tokio::test]
async fn a_replayed_code_is_invalid_grant_and_revokes_every_token_it_issued() {
    let (app, c, reg) = setup().await;
    let browser = Browser::new(&app);
    let (code, verifier) =
        code_for(&app, &browser, &c.id, REDIRECT, "openid registry.read", "asha", PASSWORD).await;
    let (status, first) = exchange(&app, &c.id, &code, Some(&verifier), REDIRECT).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().unwrap();
    assert!(active(&app, &reg, access).await);
    // Another client presenting the leaked, used code is refused and revokes nothing.
    let other = public_app(&app).await;
    let (status, body) = exchange(&app, &other.id, &code, Some(&verifier), REDIRECT).await;
    invalid_grant(status, &body);
    assert!(active(&app, &reg, access).await, "another client cannot revoke this client's tokens");
    let (status, body) = exchange(&app, &c.id, &code, Some(&verifier), REDIRECT).await;
    invalid_grant(status, &body);
    assert!(!active(&app, &reg, access).await, "the first exchange's access token is revoked");
    let (status, body) = refresh(&app, &c.id, first["refresh_token"].as_str().unwrap()).await;
    invalid_grant(status, &body);
}

#[tokio::test]
async fn pkce_redirect_uri_and_client_binding_are_enforced_at_the_token_endpoint() {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let c = public_app(&app).await;
    let other = public_app(&app).await;
    let browser = Browser::new(&app);
    let scope = "openid registry.read";
    // A verifier missing, wrong, or the challenge itself (what `plain` would send).
    let wrong = pramaan_server::crypto::random_token(32);
    for verifier in [None, Some(wrong.as_str()), Some("challenge")] {
        let (_, challenge) = pkce();
        let url = authorize_url(&app, &c.id, REDIRECT, scope, &challenge, &[]);
        let back = browser.sign_in(&url, "asha", PASSWORD).await;
        let code = query_param(&location(&back), "code").unwrap();
        let sent = if verifier == Some("challenge") { Some(challenge.as_str()) } else { verifier };
        let (status, body) = exchange(&app, &c.id, &code, sent, REDIRECT).await;
        invalid_grant(status, &body);
    }
    // A different redirect URI than the authorization request's.
    let (code, verifier) = code_for(&app, &browser, &c.id, REDIRECT, scope, "asha", PASSWORD).await;
    let (status, body) = exchange(&app, &c.id, &code, Some(&verifier), "http://127.0.0.1:9/other").await;
    invalid_grant(status, &body);
    // Another client presenting this client's code is refused without using it up.
    let (code, verifier) = code_for(&app, &browser, &c.id, REDIRECT, scope, "asha", PASSWORD).await;
    let (status, body) = exchange(&app, &other.id, &code, Some(&verifier), REDIRECT).await;
    invalid_grant(status, &body);
    let (status, body) = exchange(&app, &c.id, &code, Some(&verifier), REDIRECT).await;
    assert_eq!(status, 200, "the rightful client still redeems it: {body}");
    // An unknown code.
    let (status, body) = exchange(&app, &c.id, "not-a-code", Some(&verifier), REDIRECT).await;
    invalid_grant(status, &body);
}

#[tokio::test]
async fn an_expired_code_is_invalid_grant() {
    let app = spawn_app_with(|s| s.login.code_ttl_secs = 1).await;
    create_user(&app, "asha", PASSWORD, false).await;
    let c = public_app(&app).await;
    let browser = Browser::new(&app);
    let (code, verifier) = code_for(&app, &browser, &c.id, REDIRECT, "openid", "asha", PASSWORD).await;
    // The session store's own TTL expires it (in Redis as in memory).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, body) = exchange(&app, &c.id, &code, Some(&verifier), REDIRECT).await;
    invalid_grant(status, &body);
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_family() {
    let (app, c, reg) = setup().await;
    let first = signed_in_tokens(&app, &c, "asha").await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let (status, second) = refresh(&app, &c.id, r1).await;
    assert_eq!(status, 200, "{second}");
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    assert!(second["id_token"].is_string());
    let a2 = second["access_token"].as_str().unwrap();
    assert!(active(&app, &reg, a2).await);
    // r1 again: someone holds a copy. The family dies, access tokens included.
    let (status, body) = refresh(&app, &c.id, r1).await;
    invalid_grant(status, &body);
    let (status, body) = refresh(&app, &c.id, r2).await;
    invalid_grant(status, &body);
    assert!(!active(&app, &reg, a2).await, "the family's access token is revoked");
}

#[tokio::test]
async fn a_refresh_token_is_bound_to_its_client_and_cannot_widen_its_scope() {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let c = public_app(&app).await;
    let other = public_app(&app).await;
    let first = signed_in_tokens(&app, &c, "asha").await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let (status, body) = refresh(&app, &other.id, r1).await;
    invalid_grant(status, &body);
    let (status, body) = post_form(
        &app,
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &c.id),
            ("refresh_token", r1),
            ("scope", "registry.write"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");
    // Neither attempt used it up.
    let (status, body) = refresh(&app, &c.id, r1).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_narrowed_refresh_narrows_the_access_token_but_not_the_next_refresh_token() {
    let (app, c, _) = setup().await;
    let first = signed_in_tokens(&app, &c, "asha").await;
    let (status, narrow) = post_form(
        &app,
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &c.id),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ("scope", "openid"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{narrow}");
    assert_eq!(narrow["scope"], "openid");
    // RFC 6749 §6: the new refresh token carries the original scope.
    let (status, wide) = refresh(&app, &c.id, narrow["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{wide}");
    assert_eq!(wide["scope"], "openid profile");
}

#[tokio::test]
async fn an_ended_login_is_never_revived_by_signing_in_again() {
    let (app, c, reg) = setup().await;
    let browser = Browser::new(&app);
    let (code, verifier) = code_for(&app, &browser, &c.id, REDIRECT, "openid", "asha", PASSWORD).await;
    let (_, tokens) = exchange(&app, &c.id, &code, Some(&verifier), REDIRECT).await;
    let access = tokens["access_token"].as_str().unwrap();
    let sid = jsonwebtoken::dangerous::insecure_decode::<Value>(access).unwrap().claims["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    // The login ends elsewhere (another device's logout, an administrator).
    pramaan_server::oidc::revocation::end_login(&app.state, &sid).await.unwrap();
    assert!(!active(&app, &reg, access).await);
    // This browser is asked to sign in again instead of getting codes that cannot be used.
    let (_, challenge) = pkce();
    let url = authorize_url(&app, &c.id, REDIRECT, "openid", &challenge, &[]);
    let page = browser.follow(browser.get(&url).await).await;
    assert_eq!(page.url().path(), "/login");
    let back = browser.submit_login(page, "asha", PASSWORD).await;
    assert!(browser.follow(back).await.status().is_redirection());
    assert!(!active(&app, &reg, access).await, "the old login's token stays dead");
}

#[tokio::test]
async fn logout_asks_first_unless_the_hint_names_this_browsers_login() {
    let (app, c, reg) = setup().await;
    let phone = Browser::new(&app);
    let (code, verifier) = code_for(&app, &phone, &c.id, REDIRECT, "openid", "asha", PASSWORD).await;
    let (_, tokens) = exchange(&app, &c.id, &code, Some(&verifier), REDIRECT).await;
    let (access, hint) = (tokens["access_token"].as_str().unwrap(), tokens["id_token"].as_str().unwrap());
    // Another browser holding the ID token (a link on a hostile page) gets a question, not a
    // logout.
    let other = Browser::new(&app);
    let asked = other.get(&format!("/logout?id_token_hint={hint}")).await;
    assert_eq!(asked.status(), 200);
    let html = asked.text().await.unwrap();
    assert!(html.contains("Do you want to sign out"));
    assert!(active(&app, &reg, access).await, "nothing ended without confirmation");
    // A cross-site POST without the confirmation continues as a GET.
    let posted = other.post("/logout", &[("id_token_hint", hint)]).await;
    assert_eq!(posted.status(), 303);
    assert!(location(&posted).starts_with("/logout?id_token_hint="));
    assert!(active(&app, &reg, access).await);
    // Confirmed there, it ends only that browser's own login (it has none): the confirmation
    // comes from whoever clicked, not from the person the hint names.
    let confirmed = other
        .post(
            "/logout",
            &[("csrf", &hidden(&html, "csrf").unwrap()), ("confirm", "yes"), ("id_token_hint", hint)],
        )
        .await;
    assert_eq!(confirmed.status(), 200);
    assert!(active(&app, &reg, access).await, "someone else's ID token ends nothing");
    // In the person's own browser the hint ends the login at once.
    let own = phone.get(&format!("/logout?id_token_hint={hint}")).await;
    assert_eq!(own.status(), 200);
    assert!(!active(&app, &reg, access).await);
}

#[tokio::test]
async fn revoked_tokens_are_refused_at_userinfo_and_introspection() {
    let (app, c, reg) = setup().await;
    let tokens = signed_in_tokens(&app, &c, "asha").await;
    let access = tokens["access_token"].as_str().unwrap();
    let userinfo = |t: String| {
        let (http, url) = (app.client.clone(), format!("{}/userinfo", app.address));
        async move { http.get(url).bearer_auth(t).send().await.unwrap() }
    };
    assert_eq!(userinfo(access.to_owned()).await.status(), 200);
    let (status, _) = post_form(&app, "/revoke", None, &[("client_id", &c.id), ("token", access)]).await;
    assert_eq!(status, 200);
    let resp = userinfo(access.to_owned()).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));
    assert!(!active(&app, &reg, access).await);
    // Revoking the refresh token ends its family (RFC 7009 §2.1).
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let (status, _) =
        post_form(&app, "/revoke", None, &[("client_id", &c.id), ("token", refresh_token)]).await;
    assert_eq!(status, 200);
    let (status, body) = refresh(&app, &c.id, refresh_token).await;
    invalid_grant(status, &body);
}

#[tokio::test]
async fn userinfo_answers_rfc_6750_errors() {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let c = public_app(&app).await;
    let url = format!("{}/userinfo", app.address);
    let none = app.client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"pramaan\"",
        "§3.1: no error code without a token"
    );
    let garbage = app.client.get(&url).bearer_auth("garbage").send().await.unwrap();
    assert_eq!(garbage.status(), 401);
    let body: Value = garbage.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    let basic = app.client.get(&url).header("authorization", "Basic abc").send().await.unwrap();
    assert_eq!(basic.status(), 400);
    // A token without openid is insufficient_scope.
    let browser = Browser::new(&app);
    let (code, verifier) = code_for(&app, &browser, &c.id, REDIRECT, "profile", "asha", PASSWORD).await;
    let (_, tokens) = exchange(&app, &c.id, &code, Some(&verifier), REDIRECT).await;
    assert!(tokens["id_token"].is_null(), "no ID token without openid");
    let resp =
        app.client.post(&url).bearer_auth(tokens["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));
    // A client-credentials token has no person behind it.
    let partner =
        register_client(&app, &["--name", "p", "--grant", "client_credentials", "--scope", "registry.read"])
            .await;
    let (_, cc) = post_form(
        &app,
        "/token",
        Some((&partner.id, partner.secret.as_deref().unwrap())),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let resp = app.client.get(&url).bearer_auth(cc["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn disabling_a_user_ends_their_tokens_and_their_login() {
    let app = spawn_app().await;
    let user = create_user(&app, "asha", PASSWORD, false).await;
    let c = public_app(&app).await;
    let reg = registry(&app).await;
    let tokens = signed_in_tokens(&app, &c, "asha").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(active(&app, &reg, access).await);
    disable_user(&app, &user).await;
    assert!(!active(&app, &reg, access).await, "inactive at once");
    let (status, body) = refresh(&app, &c.id, tokens["refresh_token"].as_str().unwrap()).await;
    invalid_grant(status, &body);
}

#[tokio::test]
async fn a_logout_on_one_instance_is_seen_by_introspection_on_the_other_within_a_second() {
    let app = spawn_app().await;
    let b = app.spawn_sibling().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let c = public_app(&app).await;
    let reg = registry(&app).await;
    let browser = Browser::new(&app);
    let (code, verifier) =
        code_for(&app, &browser, &c.id, REDIRECT, "openid registry.read", "asha", PASSWORD).await;
    let (_, tokens) = exchange(&app, &c.id, &code, Some(&verifier), REDIRECT).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let at_b = |token: String| {
        let (http, url, reg_id, secret) = (
            app.client.clone(),
            format!("{}/introspect", b.address),
            reg.id.clone(),
            reg.secret.clone().unwrap(),
        );
        async move {
            let v: Value = http
                .post(url)
                .basic_auth(reg_id, Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["active"].as_bool().unwrap()
        }
    };
    assert!(at_b(access.clone()).await);
    let hint = tokens["id_token"].as_str().unwrap();
    let out = browser.get(&format!("/logout?id_token_hint={hint}")).await;
    assert_eq!(out.status(), 200, "signed out page");
    let start = Instant::now();
    loop {
        if !at_b(access.clone()).await {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "instance B still says active after 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("logout on A seen at B after {:?}", start.elapsed());
}
