//! Guards on tokens and logins that only a race, another client or a cut-off reaches: parallel
//! refreshes of one refresh token, one app code sent from parallel half-finished logins, a
//! refresh token revoked by a client that does not own it, a suspended client's token at the
//! instant of its cut-off, an account cut off after its login, and a public client at
//! introspection. Each test fails if the one rule it names is taken out of the server.

use chrono::TimeDelta;
use pramaan_integration_tests::browser::{
    Browser, PASSWORD, REDIRECT, Registered, authorize_url, code_for, create_user, pkce, post_form,
    public_client, register_client,
};
use pramaan_integration_tests::two_factor::{
    app_code, claims, code_in, continue_from, enroll, fixed_clock, grant, password_step, staff, submit_code,
};
use pramaan_integration_tests::{TestApp, spawn_app, spawn_app_at};
use pramaan_server::domain::{
    AuthMethod, ClientCategory, ClientId, ClientRegistration, ClientStatus, ClientType, GrantType, Scope,
};
use pramaan_server::oidc::client_changes;
use pramaan_server::store::{clients, users};
use serde_json::{Value, json};

/// The resource server: a confidential client allowed to introspect.
async fn registry(app: &TestApp) -> Registered {
    register_client(app, &["--name", "registry", "--grant", "client_credentials", "--introspection"]).await
}

/// A confidential client-credentials partner.
async fn register_partner(app: &TestApp, name: &str) -> Registered {
    register_client(app, &["--name", name, "--grant", "client_credentials", "--scope", "registry.read"]).await
}

async fn partner_token(app: &TestApp, partner: &Registered) -> String {
    let (status, body) = post_form(
        app,
        "/token",
        Some((&partner.id, partner.secret.as_deref().unwrap())),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
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

/// `asha` signs in through `client` (a public code-flow client); the token response.
async fn signed_in(app: &TestApp, client: &str) -> Value {
    let browser = Browser::new(app);
    let (code, verifier) =
        code_for(app, &browser, client, REDIRECT, "openid profile", "asha", PASSWORD).await;
    let (status, body) = post_form(
        app,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
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

fn invalid_grant(status: u16, body: &Value) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[tokio::test]
async fn two_parallel_refreshes_of_one_token_let_at_most_one_through_and_revoke_the_family() {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let field = public_client(&app, &[]).await;
    let reg = registry(&app).await;
    let first = signed_in(&app, &field.id).await;
    let (r1, a1) = (first["refresh_token"].as_str().unwrap(), first["access_token"].as_str().unwrap());
    assert!(active(&app, &reg, a1).await);
    // Both requests read the token as unused; only the conditional "mark used" tells them apart.
    let (one, two) = tokio::join!(refresh(&app, &field.id, r1), refresh(&app, &field.id, r1));
    let answers = [one, two];
    let winners: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 200).map(|(_, body)| body).collect();
    assert!(winners.len() <= 1, "one refresh token, two token sets: {answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        invalid_grant(*status, body);
    }
    // The loser was a reuse: the whole family is dead, the winner's new tokens included.
    assert!(!active(&app, &reg, a1).await, "the family's first access token is revoked");
    for won in winners {
        let (status, body) = refresh(&app, &field.id, won["refresh_token"].as_str().unwrap()).await;
        invalid_grant(status, &body);
        assert!(!active(&app, &reg, won["access_token"].as_str().unwrap()).await, "the winner's is too");
    }
    let (status, body) = refresh(&app, &field.id, r1).await;
    invalid_grant(status, &body);
}

/// A refresh keeps tokens coming only for a login as strong as the account needs now: after a
/// password-only login, the account gains a role that requires a second factor, and its refresh
/// token gets nothing more; the person signs in again, with the factor.
#[tokio::test]
async fn a_refresh_from_a_login_weaker_than_the_account_now_needs_is_refused() {
    let app = spawn_app().await;
    let asha = create_user(&app, "asha", PASSWORD, false).await;
    let field = public_client(&app, &[]).await;
    let first = signed_in(&app, &field.id).await;
    let (status, again) = refresh(&app, &field.id, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "a password-only login is enough while the account needs no more: {again}");
    grant(&app, &asha, "vaccinator").await;
    let (status, body) = refresh(&app, &field.id, again["refresh_token"].as_str().unwrap()).await;
    invalid_grant(status, &body);
    assert!(body["error_description"].as_str().unwrap().contains("second factor"), "{body}");
}

/// Half-finished logins sending one code at once: more than two, so that on most runs two of
/// them are checked between each other's read and write of the app's last step.
const HALVES: usize = 4;

fn login_url(app: &TestApp, client: &str) -> String {
    let (_, challenge) = pkce();
    authorize_url(app, client, REDIRECT, "openid registry.read", &challenge, &[])
}

#[tokio::test]
async fn one_app_code_sent_at_once_from_parallel_half_finished_logins_completes_one_login() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    staff(&app, "dadmin", &["district_admin"], None).await;
    let client = public_client(&app, &[]).await;
    // The first login sets up the app; its enrollment code spends the current step.
    let b = Browser::new(&app);
    let page = password_step(&b, &login_url(&app, &client.id), "dadmin").await;
    let (enrolled, shown) = enroll(&b, &page.text().await.unwrap(), &clock).await;
    assert!(code_in(&continue_from(&b, &shown).await).is_some());
    clock.advance(TimeDelta::seconds(30));
    // Someone with the password (and a glimpse of the code) races the owner from other tabs.
    let mut halves = Vec::new();
    for _ in 0..HALVES {
        let b = Browser::new(&app);
        let page = password_step(&b, &login_url(&app, &client.id), "dadmin").await;
        assert_eq!(page.url().path(), "/login/factor");
        halves.push((b, page.text().await.unwrap()));
    }
    let code = app_code(&enrolled.key, &clock);
    let mut sent = tokio::task::JoinSet::new();
    for (b, html) in halves {
        let code = code.clone();
        sent.spawn(async move {
            let back = b.follow(submit_code(&b, &html, "totp", &code).await).await;
            if code_in(&back).is_some() {
                return true;
            }
            let page = back.text().await.unwrap();
            assert!(page.contains("That code is not right"), "a spent code is refused: {page}");
            false
        });
    }
    let mut completed = 0;
    while let Some(done) = sent.join_next().await {
        completed += usize::from(done.unwrap());
    }
    assert_eq!(completed, 1, "one code, one login");
}

#[tokio::test]
async fn another_client_revoking_a_refresh_token_leaves_it_working_for_its_owner() {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let owner = public_client(&app, &[]).await;
    let other = register_partner(&app, "other").await;
    let tokens = signed_in(&app, &owner.id).await;
    let r1 = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = post_form(
        &app,
        "/revoke",
        Some((&other.id, other.secret.as_deref().unwrap())),
        &[("token", r1), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(status, 200, "RFC 7009 §2.2: answered as if done, so nothing is revealed");
    let (status, body) = refresh(&app, &owner.id, r1).await;
    assert_eq!(status, 200, "the owner's refresh token still works: {body}");
}

#[tokio::test]
async fn a_suspended_clients_token_is_inactive_even_when_its_cut_off_alone_would_spare_it() {
    // The clock stands still: the token is issued and its client suspended at one instant.
    let app = spawn_app_at(fixed_clock(), |_| {}).await;
    let reg = registry(&app).await;
    let partner = register_partner(&app, "partner").await;
    let token = partner_token(&app, &partner).await;
    assert!(active(&app, &reg, &token).await);
    let id = ClientId::from_string(partner.id.clone());
    let suspended = client_changes::set_status(
        &app.core,
        "operator:test",
        &id,
        ClientStatus::Suspended,
        "breach",
        json!({}),
    )
    .await
    .unwrap();
    // The cut-off the suspension set is not after the token's `iat`: the iat comparison lets it
    // through, so only the client's status can end it.
    let iat = claims(&token)["iat"].as_i64().unwrap();
    assert!(
        suspended.tokens_valid_after.timestamp_micros() <= iat * 1_000_000,
        "the test needs a token the cut-off spares: {} > {iat}",
        suspended.tokens_valid_after
    );
    // This instance's client cache learns of it now rather than at its next epoch poll.
    app.state.clients.poll().await.unwrap();
    let (status, body) =
        post_form(&app, "/introspect", Some((&reg.id, reg.secret.as_deref().unwrap())), &[("token", &token)])
            .await;
    assert_eq!((status, body), (200, json!({"active": false})));
}

#[tokio::test]
async fn a_refresh_for_an_account_cut_off_after_its_login_is_invalid_grant() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let user = create_user(&app, "asha", PASSWORD, false).await;
    let field = public_client(&app, &[]).await;
    let first = signed_in(&app, &field.id).await;
    let (status, second) = refresh(&app, &field.id, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "before the cut-off the login serves: {second}");
    // A second later the account is cut off (a campaign, an administrator): the login, its
    // session and its refresh token all predate it. Nothing else about the login changes.
    clock.advance(TimeDelta::seconds(1));
    let (id, now) = (user.id.clone(), app.core.clock.now());
    app.core.db.run(move |c| users::cut_off_tokens(c, &id, now)).await.unwrap();
    let (status, body) = refresh(&app, &field.id, second["refresh_token"].as_str().unwrap()).await;
    invalid_grant(status, &body);
}

#[tokio::test]
async fn a_public_client_may_not_introspect_even_when_its_row_says_it_may() {
    let app = spawn_app().await;
    let reg = registry(&app).await;
    let partner = register_partner(&app, "partner").await;
    let token = partner_token(&app, &partner).await;
    assert!(active(&app, &reg, &token).await, "the token itself is active");
    // A field app as registered, and a public client whose row allows introspection (written
    // straight to the store: registration refuses the combination, an old row or a hand edit
    // need not). Either authenticates with its id alone, which is no secret.
    let field = public_client(&app, &[]).await;
    let leaky = ClientId::from_string("leaky-field-app".to_owned());
    let row = ClientRegistration {
        name: "Leaky field app".into(),
        category: ClientCategory::Private,
        client_type: ClientType::Public,
        token_endpoint_auth_method: AuthMethod::None,
        grant_types: vec![GrantType::AuthorizationCode],
        scopes: vec![Scope::parse("registry.read").unwrap()],
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        jwks: None,
        access_token_ttl_secs: 600,
        refresh_token_ttl_secs: 0,
        first_party: true,
        can_introspect: true,
    };
    let (id, now) = (leaky.clone(), app.core.clock.now());
    app.core.db.run(move |c| clients::insert(c, &id, &row, None, now)).await.unwrap();
    for client in [field.id.as_str(), leaky.as_str()] {
        let (status, body) =
            post_form(&app, "/introspect", None, &[("client_id", client), ("token", &token)]).await;
        assert_eq!((status, body["error"].as_str()), (403, Some("unauthorized_client")), "{client}: {body}");
        assert!(body.get("active").is_none(), "{client} learnt nothing of the token: {body}");
    }
}
