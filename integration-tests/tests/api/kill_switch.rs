//! The kill switch (issue 7): suspending clients in bulk through the admin API on one
//! instance takes effect on another within a second — introspection, the token endpoint —
//! for exactly the clients selected; resuming revives no old token; only a national
//! administrator with a recent sign-in may do it, and every refusal is audited.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use pramaan_integration_tests::admin::{api, console_client, first_admin_login, staff_in};
use pramaan_integration_tests::browser::{
    Browser, PASSWORD, REDIRECT, code_for, post_form, public_client, register_client,
};
use pramaan_integration_tests::cli::{env_for, run_cli};
use pramaan_integration_tests::spawn_app_at;
use pramaan_integration_tests::two_factor::{fixed_clock, insert_staff};
use pramaan_server::domain::{
    AuthMethod, ClientCategory, ClientId, ClientRegistration, ClientType, GrantType, Scope,
};
use pramaan_server::oidc::client_changes::new_secret;
use pramaan_server::store::clients;
use serde_json::{Value, json};

struct Partner {
    id: String,
    secret: String,
    category: ClientCategory,
}

/// `n` client-credentials partners of `category`, straight into the store.
async fn partners(
    app: &pramaan_integration_tests::TestApp,
    n: usize,
    category: ClientCategory,
) -> Vec<Partner> {
    let mut out = Vec::new();
    let mut rows = Vec::new();
    for i in 0..n {
        let (secret, digest) = new_secret(&app.core);
        let id = format!("{}-{i:03}", category.as_str());
        rows.push((id.clone(), digest));
        out.push(Partner { id, secret, category });
    }
    let now = app.core.clock.now();
    app.core
        .db
        .run(move |c| {
            for (id, digest) in &rows {
                let reg = ClientRegistration {
                    name: id.clone(),
                    category,
                    client_type: ClientType::Confidential,
                    token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
                    grant_types: vec![GrantType::ClientCredentials],
                    scopes: vec![Scope::parse("registry.read").unwrap()],
                    redirect_uris: vec![],
                    post_logout_redirect_uris: vec![],
                    jwks: None,
                    access_token_ttl_secs: 600,
                    refresh_token_ttl_secs: 0,
                    first_party: false,
                    can_introspect: false,
                };
                clients::insert(c, &ClientId::from_string(id.clone()), &reg, Some(digest), now)?;
            }
            Ok::<_, pramaan_server::store::DbError>(())
        })
        .await
        .unwrap();
    out
}

/// How many refusals the audit trail holds.
async fn denials(app: &pramaan_integration_tests::TestApp) -> usize {
    app.core
        .audit
        .page(pramaan_server::store::audit_events::AuditFilter::default(), 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.action == "admin.denied")
        .count()
}

async fn token(base: &str, app: &pramaan_integration_tests::TestApp, p: &Partner) -> (u16, Value) {
    let resp = app
        .client
        .post(format!("{base}/token"))
        .basic_auth(&p.id, Some(&p.secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "registry.read")])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn active(
    base: &str,
    app: &pramaan_integration_tests::TestApp,
    reg: &(String, String),
    t: &str,
) -> bool {
    let resp = app
        .client
        .post(format!("{base}/introspect"))
        .basic_auth(&reg.0, Some(&reg.1))
        .form(&[("token", t)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["active"] == true
}

#[tokio::test]
async fn suspending_a_category_on_one_instance_kills_its_tokens_on_another_within_a_second() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let b = app.spawn_sibling().await;
    let console = console_client(&app).await.id;
    staff_in(&app, "nadmin", &["national_admin"], "in").await;
    let admin = first_admin_login(&app, &clock, &console, "nadmin").await;
    let reg = register_client(
        &app,
        &["--name", "registry", "--category", "internal", "--grant", "client_credentials", "--introspection"],
    )
    .await;
    // The registry's introspection client is internal: the switch leaves it alone.
    let reg = (reg.id, reg.secret.unwrap());
    let mut all = partners(&app, 100, ClientCategory::Private).await;
    all.extend(partners(&app, 100, ClientCategory::Government).await);
    let mut tokens = Vec::new();
    for p in &all {
        let (status, body) = token(&app.address, &app, p).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    for t in &tokens {
        assert!(active(&b.address, &app, &reg, t).await);
    }
    clock.advance(TimeDelta::seconds(1));

    let done = api(
        &app,
        "POST",
        "/clients/suspensions",
        Some(&admin.access_token),
        Some(json!({ "category": "private", "reason": "leak through a partner API" })),
    )
    .await;
    let returned = Instant::now();
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.body["count"], 100);
    // On the other instance: every private token inactive within a second.
    let private: Vec<&String> = tokens
        .iter()
        .zip(&all)
        .filter(|(_, p)| p.category == ClientCategory::Private)
        .map(|(t, _)| t)
        .collect();
    let mut last_alive = None;
    loop {
        let mut alive = 0;
        for t in &private {
            if active(&b.address, &app, &reg, t).await {
                alive += 1;
            }
        }
        if alive == 0 {
            break;
        }
        last_alive = Some(returned.elapsed());
        assert!(returned.elapsed() < Duration::from_secs(3), "{alive} private tokens still active");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = returned.elapsed();
    println!(
        "kill switch: last private token inactive at instance B {took:?} after the action returned (last seen alive at {last_alive:?})"
    );
    assert!(took <= Duration::from_secs(1), "took {took:?}");
    // Government tokens live on; a private client is refused at the token endpoint there.
    for (t, p) in tokens.iter().zip(&all) {
        if p.category == ClientCategory::Government {
            assert!(active(&b.address, &app, &reg, t).await, "{} lost its token", p.id);
        }
    }
    let (status, body) = token(&b.address, &app, &all[0]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    let (status, _) = token(&b.address, &app, &all[150]).await;
    assert_eq!(status, 200);

    // Resuming revives nothing issued before.
    let back = api(
        &app,
        "POST",
        "/clients/resumptions",
        Some(&admin.access_token),
        Some(json!({ "ids": [all[0].id.clone(), all[1].id.clone()], "reason": "cleared" })),
    )
    .await;
    assert_eq!((back.status, back.body["count"].as_u64()), (200, Some(2)), "{back:?}");
    clock.advance(TimeDelta::seconds(1));
    assert!(!active(&app.address, &app, &reg, &tokens[0]).await, "an old token stays dead");
    let (status, _) = token(&app.address, &app, &all[0]).await;
    assert_eq!(status, 200, "a resumed client gets new tokens");
    let (status, _) = token(&app.address, &app, &all[2]).await;
    assert_eq!(status, 401, "the others stay suspended");
}

#[tokio::test]
async fn only_a_national_admin_with_a_recent_sign_in_pulls_the_switch() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let console = console_client(&app).await.id;
    let partner = partners(&app, 3, ClientCategory::Private).await;
    staff_in(&app, "sadmin", &["state_admin"], "in/ka").await;
    staff_in(&app, "nadmin", &["national_admin"], "in").await;
    let body = json!({ "all": true, "reason": "drill" });
    // A state admin: no admin.clients scope at all, or refused by the policies.
    let state_admin = first_admin_login(&app, &clock, &console, "sadmin").await;
    let before = denials(&app).await;
    let refused =
        api(&app, "POST", "/clients/suspensions", Some(&state_admin.access_token), Some(body.clone())).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.content_type, "application/problem+json");
    // The policies give a state admin no admin.clients scope: refused before any decision, and
    // audited all the same.
    assert!(refused.challenge.unwrap().contains("insufficient_scope"));
    assert_eq!(denials(&app).await, before + 1, "the refusal is audited");
    // A national admin whose sign-in is half an hour old: a step-up challenge.
    let national = first_admin_login(&app, &clock, &console, "nadmin").await;
    clock.advance(TimeDelta::minutes(30));
    let (_, fresh) = post_form(
        &app,
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &console),
            ("refresh_token", &national.refresh_token),
        ],
    )
    .await;
    let old = fresh["access_token"].as_str().unwrap();
    let stale = api(&app, "POST", "/clients/suspensions", Some(old), Some(body.clone())).await;
    assert_eq!(stale.status, 401, "{stale:?}");
    assert!(stale.challenge.unwrap().contains("insufficient_user_authentication"));
    assert_eq!(denials(&app).await, before + 2, "the step-up refusal is audited");
    assert_eq!(stale.body["type"], "urn:pramaan:problem:step-up-required");
    // Nothing was suspended; each refusal is audited.
    let (status, _) = token(&app.address, &app, &partner[0]).await;
    assert_eq!(status, 200);
    // Malformed selections: a clear 400 or 404, nothing changed.
    let fresh_login =
        pramaan_integration_tests::admin::admin_login(&app, &clock, &console, "nadmin", &national.key).await;
    for (b, status) in [
        (json!({ "reason": "x" }), 400),
        (json!({ "all": true, "category": "private", "reason": "x" }), 400),
        (json!({ "category": "partner", "reason": "x" }), 400),
        (json!({ "ids": [], "reason": "x" }), 400),
        (json!({ "ids": ["no-such-client"], "reason": "x" }), 404),
        (json!({ "all": true, "reason": "" }), 400),
    ] {
        let a =
            api(&app, "POST", "/clients/suspensions", Some(&fresh_login.access_token), Some(b.clone())).await;
        assert_eq!(a.status, status, "{b}: {a:?}");
    }
    let (status, _) = token(&app.address, &app, &partner[0]).await;
    assert_eq!(status, 200, "nothing was suspended");
    // --all leaves the internal clients (the console) alone.
    let all = api(&app, "POST", "/clients/suspensions", Some(&fresh_login.access_token), Some(body)).await;
    assert_eq!((all.status, all.body["count"].as_u64()), (200, Some(3)), "{all:?}");
    let (status, _) = token(&app.address, &app, &partner[0]).await;
    assert_eq!(status, 401);
    let still = api(&app, "GET", "/clients", Some(&fresh_login.access_token), None).await;
    assert_eq!(still.status, 200, "the console still works: {still:?}");
}

#[tokio::test]
async fn the_cli_suspends_and_resumes_a_category() {
    let app = pramaan_integration_tests::spawn_app().await;
    let partner = partners(&app, 2, ClientCategory::Private).await;
    let gov = partners(&app, 1, ClientCategory::Government).await;
    let env = env_for(&app.db.url, app.data_dir.path());
    let run = run_cli(
        &["client", "suspend", "--category", "private", "--reason", "incident 7", "--json"],
        &env,
        "",
    )
    .await;
    assert!(run.ok(), "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["count"], 2, "{v}");
    // The running server sees it within a second (the CLI is another process).
    let start = Instant::now();
    loop {
        let (status, _) = token(&app.address, &app, &partner[0]).await;
        if status == 401 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "still issuing to a suspended client");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(token(&app.address, &app, &gov[0]).await.0, 200);
    let none = run_cli(&["client", "suspend", "--reason", "x"], &env, "").await;
    assert!(!none.ok() && none.stderr.contains("required"), "a selection is required: {}", none.stderr);
    let both =
        run_cli(&["client", "suspend", "--all", "--category", "private", "--reason", "x"], &env, "").await;
    assert!(!both.ok() && both.stderr.contains("cannot be used with"), "{}", both.stderr);
    let unknown = run_cli(&["client", "suspend", "--ids", "nope", "--reason", "x"], &env, "").await;
    assert!(!unknown.ok() && unknown.stderr.contains("does not exist"), "{}", unknown.stderr);
    // A field app (a private, public code-flow client) holding a person's refresh token:
    // suspended by name, its refresh token stops working.
    let field = public_client(&app, &["--category", "private"]).await;
    insert_staff(&app, "asha", &[], None, None).await;
    let (code, verifier) =
        code_for(&app, &Browser::new(&app), &field.id, REDIRECT, "openid registry.read", "asha", PASSWORD)
            .await;
    let (status, tokens) = post_form(
        &app,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &field.id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let off = run_cli(&["client", "suspend", "--ids", &field.id, "--reason", "incident 7"], &env, "").await;
    assert!(off.ok(), "{}", off.stderr);
    // Within a second every instance knows: the client is refused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("client_id", field.id.as_str()),
        ("refresh_token", refresh.as_str()),
    ];
    let (status, body) = post_form(&app, "/token", None, &refresh_form).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    // Resumed, the client is served again, but its refresh token from before stays dead.
    let on = run_cli(&["client", "resume", "--ids", &field.id, "--reason", "cleared"], &env, "").await;
    assert!(on.ok(), "{}", on.stderr);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = post_form(&app, "/token", None, &refresh_form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let back = run_cli(&["client", "resume", "--ids", &partner[0].id, "--reason", "cleared"], &env, "").await;
    assert!(back.ok(), "{}", back.stderr);
    assert!(back.stdout.contains("resumed 1 client"), "{}", back.stdout);
}
