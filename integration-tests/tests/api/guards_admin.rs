//! Guards that each test below exists to keep: a state administrator's reach ends at the state's
//! border, a logout confirmation needs the page's CSRF token, an unregistered
//! `post_logout_redirect_uri` is never followed, and the admin API takes tokens of Pramaan's own
//! (internal) clients only. Each test fails if its rule is removed.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use pramaan_integration_tests::admin::{
    admin_login, api, audit, console_client, details, first_admin_login, is_problem, staff_in, status_of,
};
use pramaan_integration_tests::browser::{
    Browser, PASSWORD, REDIRECT, Registered, authorize_url, code_for, create_user, hidden, location, pkce,
    post_form, public_client, query_param, register_client,
};
use pramaan_integration_tests::two_factor::fixed_clock;
use pramaan_integration_tests::{TestApp, spawn_app, spawn_app_at};
use pramaan_server::domain::UserStatus;
use pramaan_server::store::roles;
use serde_json::json;

const AFTER_LOGOUT: &str = "http://127.0.0.1:9/bye";

#[tokio::test]
async fn a_state_admin_acts_inside_their_state_and_is_refused_in_another_state() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let inside = staff_in(&app, "vacc-ka", &["vaccinator"], "in/ka/blr/phc-1").await;
    let outside = staff_in(&app, "vacc-tn", &["vaccinator"], "in/tn/chn/phc-1").await;
    staff_in(&app, "sadmin-ka", &["state_admin"], "in/ka").await;
    let console = console_client(&app).await.id;
    let admin = first_admin_login(&app, &clock, &console, "sadmin-ka").await;
    assert!(admin.scope.split(' ').any(|s| s == "admin.users"), "{}", admin.scope);
    let token = Some(admin.access_token.as_str());
    let reason = Some(json!({ "reason": "left the programme" }));

    // Another state: reading, listing, granting a role and disabling are each refused.
    let tn = format!("/users/{}", outside.id);
    let refused = [
        ("user.read", api(&app, "GET", &tn, token, None).await),
        ("user.list", api(&app, "GET", "/users?org=in/tn", token, None).await),
        ("role.assign", api(&app, "PUT", &format!("{tn}/roles/verifier"), token, None).await),
        ("user.disable", api(&app, "POST", &format!("{tn}/disable"), token, reason.clone()).await),
    ];
    for (action, a) in &refused {
        assert_eq!(a.status, 403, "{action}: {a:?}");
        assert!(is_problem(a), "{action}: {a:?}");
        assert_eq!(a.body["type"], "urn:pramaan:problem:forbidden-by-policy", "{action}: {a:?}");
        assert_eq!(a.body["action"], *action, "{a:?}");
    }
    assert_eq!(status_of(&app, &outside).await, UserStatus::Active, "nothing changed");
    let id = outside.id.clone();
    let held = app.core.db.run(move |c| roles::roles_of(c, &id)).await.unwrap();
    assert_eq!(held.len(), 1, "no role was granted: {held:?}");
    // Each refusal is audited, as the state admin's, with no policy behind the action.
    let denied = audit(&app, "admin.denied").await;
    let mut acts: Vec<String> =
        denied.iter().map(|r| details(r)["action"].as_str().unwrap().to_owned()).collect();
    acts.sort();
    assert_eq!(acts, ["role.assign", "user.disable", "user.list", "user.read"], "{denied:?}");
    for r in &denied {
        assert_eq!((r.actor.as_str(), r.outcome.as_str()), ("user:sadmin-ka", "denied"), "{r:?}");
        assert_eq!(details(r)["decision"], "no policy permits it", "{r:?}");
    }
    let disable = denied.iter().find(|r| details(r)["action"] == "user.disable").unwrap();
    assert_eq!(disable.target.as_deref(), Some(format!("user:{}", outside.id).as_str()));

    // Inside the state the same requests go through.
    let ka = format!("/users/{}", inside.id);
    let read = api(&app, "GET", &ka, token, None).await;
    assert_eq!((read.status, read.body["username"].as_str()), (200, Some("vacc-ka")), "{read:?}");
    let listed = api(&app, "GET", "/users?org=in/ka", token, None).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let names: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["sadmin-ka", "vacc-ka"]);
    let granted = api(&app, "PUT", &format!("{ka}/roles/verifier"), token, None).await;
    assert_eq!(granted.status, 200, "{granted:?}");
    assert!(granted.body["roles"].as_array().unwrap().contains(&json!("verifier")), "{granted:?}");
    let done = api(&app, "POST", &format!("{ka}/disable"), token, reason).await;
    assert_eq!((done.status, done.body["status"].as_str()), (200, Some("disabled")), "{done:?}");
    assert_eq!(status_of(&app, &inside).await, UserStatus::Disabled);
    let disabled = audit(&app, "user.disable").await;
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    let decision = details(&disabled[0])["decision"].as_str().unwrap().to_owned();
    assert!(decision.contains("state-admin-accounts"), "{decision}");
    assert_eq!(audit(&app, "admin.denied").await.len(), 4, "nothing inside the state was refused");
}

/// A browser signed in as `asha` through a public client that registered [`AFTER_LOGOUT`],
/// with the login's tokens, and an introspecting client to see whether they are alive.
struct SignedIn {
    app: TestApp,
    browser: Browser,
    client: String,
    registry: Registered,
    access: String,
    id_token: String,
}

async fn signed_in() -> SignedIn {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let client = public_client(&app, &["--post-logout-redirect-uri", AFTER_LOGOUT]).await.id;
    let registry =
        register_client(&app, &["--name", "registry", "--grant", "client_credentials", "--introspection"])
            .await;
    let browser = Browser::new(&app);
    let (code, verifier) = code_for(&app, &browser, &client, REDIRECT, "openid", "asha", PASSWORD).await;
    let (status, tokens) = post_form(
        &app,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    SignedIn { app, browser, client, registry, access, id_token }
}

impl SignedIn {
    /// Whether the login's access token is still active (introspection).
    async fn alive(&self) -> bool {
        let secret = self.registry.secret.as_deref().unwrap();
        let (status, body) = post_form(
            &self.app,
            "/introspect",
            Some((&self.registry.id, secret)),
            &[("token", &self.access)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body["active"].as_bool().unwrap()
    }

    /// Where a `prompt=none` authorization in this browser sends it back to.
    async fn prompt_none(&self) -> String {
        let (_, challenge) = pkce();
        let url =
            authorize_url(&self.app, &self.client, REDIRECT, "openid", &challenge, &[("prompt", "none")]);
        let back = self.browser.follow(self.browser.get(&url).await).await;
        let to = location(&back);
        assert!(to.starts_with(REDIRECT), "{to}");
        to
    }
}

fn logout_url(params: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    format!("/logout?{}", ser.finish())
}

#[tokio::test]
async fn a_logout_confirmation_without_the_pages_csrf_token_ends_nothing() {
    let s = signed_in().await;
    let page = s.browser.get("/logout").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Do you want to sign out"), "{html}");
    assert!(hidden(&html, "csrf").is_some(), "the confirmation carries a CSRF token");

    // The confirmation, forged: a wrong token, then none at all.
    for forged in [vec![("confirm", "yes"), ("csrf", "not-the-pages-token")], vec![("confirm", "yes")]] {
        let resp = s.browser.post("/logout", &forged).await;
        assert_eq!(resp.status(), 303, "{forged:?}: continues as a GET, decides nothing");
        assert!(location(&resp).starts_with("/logout"), "{forged:?}");
        assert!(s.alive().await, "{forged:?}: the login's tokens still work");
        let to = s.prompt_none().await;
        assert!(query_param(&to, "code").is_some(), "{forged:?}: the browser is still signed in: {to}");
    }
    assert!(audit(&s.app, "logout").await.is_empty(), "no logout happened");

    // The same confirmation with the page's token signs out.
    let html = s.browser.get("/logout").await.text().await.unwrap();
    let csrf = hidden(&html, "csrf").unwrap();
    let done = s.browser.post("/logout", &[("confirm", "yes"), ("csrf", &csrf)]).await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("signed out"));
    assert!(!s.alive().await, "the login ended");
    assert_eq!(query_param(&s.prompt_none().await, "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn an_unregistered_post_logout_redirect_uri_is_never_followed_and_a_registered_one_is() {
    let s = signed_in().await;
    // Another address, and the registered one with more after it: only an exact match counts.
    for elsewhere in ["https://evil.example/bye", "http://127.0.0.1:9/bye?next=https://evil.example"] {
        let url = logout_url(&[
            ("id_token_hint", &s.id_token),
            ("post_logout_redirect_uri", elsewhere),
            ("state", "bye-state"),
        ]);
        let out = s.browser.get(&url).await;
        assert_eq!(out.status(), 400, "{elsewhere}: a page, not a redirect");
        assert!(out.headers().get("location").is_none(), "{elsewhere}");
        assert!(out.text().await.unwrap().contains("not registered"), "{elsewhere}");
        assert!(s.alive().await, "{elsewhere}: checked before anything ended");
    }

    let url = logout_url(&[
        ("id_token_hint", &s.id_token),
        ("post_logout_redirect_uri", AFTER_LOGOUT),
        ("state", "bye-state"),
    ]);
    let out = s.browser.get(&url).await;
    assert_eq!(out.status(), 303);
    let to = location(&out);
    assert!(to.starts_with(AFTER_LOGOUT), "{to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some("bye-state"));
    assert!(!s.alive().await, "the hint named this browser's login: it ended");
}

/// The shipped policies without `admin-scopes-only-internal`: admin scopes through any client.
fn policies_with_admin_scopes_for_every_client() -> BTreeMap<String, String> {
    let mut files = pramaan_server::policy::builtin_sources();
    let common = files.get_mut("common.cedar").unwrap();
    let start = common.find("@id(\"admin-scopes-only-internal\")").unwrap();
    let end = start + common[start..].find("};").unwrap() + 2;
    common.replace_range(start..end, "");
    assert!(!common.contains("admin-scopes-only-internal"));
    files
}

#[tokio::test]
async fn a_national_admins_token_from_a_partner_app_is_refused_by_the_admin_api_whatever_its_scopes() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let vacc = staff_in(&app, "vacc-blr", &["vaccinator"], "in/ka/blr/phc-1").await;
    staff_in(&app, "nadmin", &["national_admin"], "in").await;
    staff_in(&app, "nadmin-2", &["national_admin"], "in").await;
    let console = console_client(&app).await.id;
    // A partner's app, registered for every admin scope (first-party: no consent page).
    let partner = register_client(
        &app,
        &[
            "--name",
            "Partner portal",
            "--category",
            "government",
            "--public",
            "--first-party",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--scope",
            "admin.users admin.clients admin.audit admin.campaigns admin.policy",
            "--redirect-uri",
            REDIRECT,
        ],
    )
    .await
    .id;
    // Under the shipped policies no partner token carries an admin scope; an operator loosens
    // them through the API, leaving the admin API's own check as the only guard.
    let operator = first_admin_login(&app, &clock, &console, "nadmin").await;
    let files = policies_with_admin_scopes_for_every_client();
    let body = json!({ "files": files, "reason": "admin scopes for every client" });
    let loaded = api(&app, "POST", "/policy/reload", Some(&operator.access_token), Some(body)).await;
    assert_eq!(loaded.status, 200, "{loaded:?}");

    let through_partner = first_admin_login(&app, &clock, &partner, "nadmin-2").await;
    assert!(through_partner.scope.split(' ').any(|s| s == "admin.users"), "{}", through_partner.scope);
    let token = Some(through_partner.access_token.as_str());
    // The token itself is alive: userinfo serves it.
    let info = app
        .client
        .get(format!("{}/userinfo", app.address))
        .bearer_auth(&through_partner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);

    let path = format!("/users/{}", vacc.id);
    let read = api(&app, "GET", &path, token, None).await;
    assert_eq!(read.status, 401, "{read:?}");
    assert!(is_problem(&read), "{read:?}");
    assert!(read.challenge.as_deref().unwrap_or_default().contains(r#"error="invalid_token""#), "{read:?}");
    let reason = Some(json!({ "reason": "through a partner" }));
    let disable = api(&app, "POST", &format!("{path}/disable"), token, reason.clone()).await;
    assert_eq!(disable.status, 401, "{disable:?}");
    assert_eq!(status_of(&app, &vacc).await, UserStatus::Active, "nothing changed");

    // The same administrator, signed in the same way through the console, is served.
    clock.advance(TimeDelta::seconds(30));
    let own = admin_login(&app, &clock, &console, "nadmin-2", &through_partner.key).await;
    let read = api(&app, "GET", &path, Some(&own.access_token), None).await;
    assert_eq!((read.status, read.body["username"].as_str()), (200, Some("vacc-blr")), "{read:?}");
    let done = api(&app, "POST", &format!("{path}/disable"), Some(&own.access_token), reason).await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(status_of(&app, &vacc).await, UserStatus::Disabled);
}
