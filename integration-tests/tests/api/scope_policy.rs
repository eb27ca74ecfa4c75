//! Token scopes go through the role policies: a person receives what their roles allow of what
//! the client asked for (and loses it when a role is taken away), and a partner app asking
//! only for what its category may not have gets `invalid_scope`.

use pramaan_integration_tests::browser::{
    Browser, REDIRECT, authorize_url, pkce, post_form, public_client, register_client,
};
use pramaan_integration_tests::spawn_app_at;
use pramaan_integration_tests::two_factor::{
    claims, code_in, continue_from, enroll, fixed_clock, password_step, staff,
};
use pramaan_server::domain::RoleName;
use pramaan_server::store::roles;

#[tokio::test]
async fn a_vaccinator_asking_for_a_scope_beyond_policy_gets_a_token_without_it() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let vacc = staff(&app, "vacc", &["vaccinator"], None).await;
    // The field app may carry registry.write; a vaccinator's role does not give it.
    let client = public_client(&app, &[]).await;
    let (verifier, challenge) = pkce();
    let url =
        authorize_url(&app, &client.id, REDIRECT, "openid registry.read registry.write", &challenge, &[]);
    let b = Browser::new(&app);
    let page = password_step(&b, &url, "vacc").await;
    let (_, shown) = enroll(&b, &page.text().await.unwrap(), &clock).await;
    let back = continue_from(&b, &shown).await;
    let code = code_in(&back).expect("a code");
    let (status, tokens) = post_form(
        &app,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client.id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    // RFC 6749 §5.1: the response says what was granted, since it differs from the request.
    assert_eq!(tokens["scope"], "openid registry.read");
    assert_eq!(claims(tokens["access_token"].as_str().unwrap())["scope"], "openid registry.read");

    // The role taken away: the next access token no longer carries what it gave.
    let (id, role) = (vacc.id.clone(), RoleName::parse("vaccinator").unwrap());
    app.core.db.run(move |c| roles::remove(c, &id, &role)).await.unwrap();
    let (status, refreshed) = post_form(
        &app,
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client.id),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["scope"], "openid");
}

async fn partner(app: &pramaan_integration_tests::TestApp, category: &str) -> (String, String) {
    let c = register_client(
        app,
        &[
            "--name",
            "partner",
            "--category",
            category,
            "--grant",
            "client_credentials",
            "--scope",
            "registry.read registry.write",
        ],
    )
    .await;
    (c.id, c.secret.unwrap())
}

#[tokio::test]
async fn a_client_asking_for_a_scope_beyond_policy_gets_invalid_scope() {
    let app = spawn_app_at(fixed_clock(), |_| {}).await;
    let (id, secret) = partner(&app, "private").await;
    let ask = |scope: Option<&'static str>| {
        let (id, secret) = (id.clone(), secret.clone());
        let app = &app;
        async move {
            let mut form = vec![("grant_type", "client_credentials")];
            if let Some(s) = scope {
                form.push(("scope", s));
            }
            post_form(app, "/token", Some((&id, &secret)), &form).await
        }
    };
    // Registered for registry.write, but private partners never write (policies/clients.cedar).
    let (status, body) = ask(Some("registry.write")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");
    let (status, body) = ask(Some("registry.read registry.write")).await;
    assert_eq!((status, body["scope"].as_str()), (200, Some("registry.read")), "{body}");
    let (status, body) = ask(None).await;
    assert_eq!((status, body["scope"].as_str()), (200, Some("registry.read")), "{body}");
    // A government partner with the same registration may write.
    let (gid, gsecret) = partner(&app, "government").await;
    let (status, body) = post_form(
        &app,
        "/token",
        Some((&gid, &gsecret)),
        &[("grant_type", "client_credentials"), ("scope", "registry.write")],
    )
    .await;
    assert_eq!((status, body["scope"].as_str()), (200, Some("registry.write")), "{body}");
}

#[tokio::test]
async fn a_request_of_which_the_account_may_have_nothing_is_invalid_scope() {
    let app = spawn_app_at(fixed_clock(), |_| {}).await;
    staff(&app, "norole", &[], None).await;
    let client = public_client(&app, &[]).await;
    let (_, challenge) = pkce();
    let url = authorize_url(&app, &client.id, REDIRECT, "registry.read", &challenge, &[]);
    let back = password_step(&Browser::new(&app), &url, "norole").await;
    let to = back.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(to.starts_with(REDIRECT), "back to the client: {to}");
    assert!(to.contains("error=invalid_scope") && to.contains("state=st4te"), "{to}");
    assert!(code_in(&back).is_none());
}
