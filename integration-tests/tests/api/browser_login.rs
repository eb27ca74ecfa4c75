//! The login page's negative cases: one answer for every refusal, lockout, disabled
//! accounts, CSRF, open-redirect attempts, protocol errors at the redirect URI, session
//! cookies and their renewal, and the pages' security headers.

use pramaan_integration_tests::browser::{
    Browser, PASSWORD, REDIRECT, Registered, authorize_url, create_user, disable_user, find_user, hidden,
    location, pkce, public_client, query_param,
};
use pramaan_integration_tests::{TestApp, spawn_app};
use pramaan_server::store::audit_events;

async fn field_app(app: &TestApp) -> Registered {
    public_client(app, &[]).await
}

fn url(app: &TestApp, c: &Registered) -> String {
    let (_, challenge) = pkce();
    authorize_url(app, &c.id, REDIRECT, "openid registry.read", &challenge, &[])
}

async fn login_page(browser: &Browser, url: &str) -> reqwest::Response {
    let page = browser.follow(browser.get(url).await).await;
    assert_eq!(page.url().path(), "/login");
    page
}

async fn audit_actions(app: &TestApp) -> Vec<(String, String, String, String)> {
    let filter = audit_events::AuditFilter::default();
    app.core
        .db
        .run(move |c| audit_events::page(c, &filter, 1000))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.actor.clone(), r.action.clone(), r.outcome.clone(), r.details.clone()))
        .collect()
}

#[tokio::test]
async fn every_refusal_gets_the_same_answer_and_is_audited_without_the_password() {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let c = field_app(&app).await;
    let browser = Browser::new(&app);
    let wrong =
        browser.submit_login(login_page(&browser, &url(&app, &c)).await, "asha", "not the password").await;
    assert_eq!(wrong.status(), 200);
    let wrong_html = wrong.text().await.unwrap();
    let unknown =
        browser.submit_login(login_page(&browser, &url(&app, &c)).await, "nobody", "not the password").await;
    let unknown_html = unknown.text().await.unwrap();
    let msg = "The username or password is not right";
    assert!(wrong_html.contains(msg) && unknown_html.contains(msg));
    let events = audit_actions(&app).await;
    let failures: Vec<_> = events.iter().filter(|e| e.1 == "login.password" && e.2 == "failure").collect();
    assert_eq!(failures.len(), 2, "{events:?}");
    assert!(failures.iter().any(|e| e.0 == "user:asha" && e.3.contains("wrong_password")));
    assert!(failures.iter().any(|e| e.0 == "anonymous" && e.3.contains("unknown_user")));
    for e in &events {
        assert!(!e.3.contains("not the password"), "a password reached the audit trail: {e:?}");
        assert!(!e.3.contains("nobody"), "an unknown name reached the audit trail: {e:?}");
    }
}

#[tokio::test]
async fn repeated_failures_lock_the_account_even_for_the_right_password() {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let c = field_app(&app).await;
    let browser = Browser::new(&app);
    for _ in 0..5 {
        let page = login_page(&browser, &url(&app, &c)).await;
        let r = browser.submit_login(page, "asha", "guess guess guess").await;
        assert_eq!(r.status(), 200);
    }
    // Each wrong password is counted before its answer; check that the fifth has landed.
    let start = std::time::Instant::now();
    while find_user(&app, "asha").await.failed_logins < 5 {
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "the failures were never counted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let page = login_page(&browser, &url(&app, &c)).await;
    let r = browser.submit_login(page, "asha", PASSWORD).await;
    assert_eq!(r.status(), 200, "the right password is refused while locked");
    assert!(r.text().await.unwrap().contains("not right"));
    let user = find_user(&app, "asha").await;
    assert_eq!(user.failed_logins, 5, "attempts while locked do not count");
    let until = user.locked_until.expect("locked");
    let secs = (until - chrono::Utc::now()).num_seconds();
    assert!((20..=30).contains(&secs), "the first lock lasts lockout_base_secs: {secs}");
    assert!(audit_actions(&app).await.iter().any(|e| e.3.contains("\"locked\"")));
}

#[tokio::test]
async fn a_disabled_user_cannot_sign_in() {
    let app = spawn_app().await;
    let user = create_user(&app, "asha", PASSWORD, false).await;
    let c = field_app(&app).await;
    disable_user(&app, &user).await;
    let browser = Browser::new(&app);
    let r = browser.sign_in(&url(&app, &c), "asha", PASSWORD).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("not right"));
}

#[tokio::test]
async fn the_login_form_refuses_a_missing_or_wrong_csrf_token() {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let c = field_app(&app).await;
    let browser = Browser::new(&app);
    let html = login_page(&browser, &url(&app, &c)).await.text().await.unwrap();
    let request = hidden(&html, "request").unwrap();
    for csrf in [None, Some("forged")] {
        let mut form = vec![("request", request.as_str()), ("username", "asha"), ("password", PASSWORD)];
        if let Some(t) = csrf {
            form.push(("csrf", t));
        }
        let r = browser.post("/login", &form).await;
        assert_eq!(r.status(), 403, "{csrf:?}");
    }
    assert!(!audit_actions(&app).await.iter().any(|e| e.1 == "login.password"), "no attempt was even made");
}

#[tokio::test]
async fn a_pending_request_cannot_be_finished_from_another_browser() {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let c = field_app(&app).await;
    let victim = Browser::new(&app);
    let html = login_page(&victim, &url(&app, &c)).await.text().await.unwrap();
    let (csrf, request) = (hidden(&html, "csrf").unwrap(), hidden(&html, "request").unwrap());
    let attacker = Browser::new(&app);
    let r = attacker
        .post(
            "/login",
            &[("csrf", &csrf), ("request", &request), ("username", "asha"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("start the sign-in again"));
    let r = attacker.get(&format!("/authorize/resume?request={request}")).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn an_open_redirect_attempt_gets_an_error_page_and_no_redirect() {
    let app = spawn_app().await;
    let c = field_app(&app).await;
    let (_, challenge) = pkce();
    let browser = Browser::new(&app);
    for (client, redirect) in [
        (c.id.as_str(), "https://evil.example/steal"),
        (c.id.as_str(), "http://127.0.0.1:9/callback/../evil"),
        (c.id.as_str(), "http://127.0.0.1:9/callback?next=https://evil.example"),
        ("no-such-client", REDIRECT),
    ] {
        let r = browser.get(&authorize_url(&app, client, redirect, "openid", &challenge, &[])).await;
        assert_eq!(r.status(), 400, "{redirect}");
        assert!(r.headers().get("location").is_none(), "{redirect}: never redirected");
        let html = r.text().await.unwrap();
        assert!(html.contains("Go back to the application"), "the page says what to do");
    }
}

/// Scope, parameters to set, expected error.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[tokio::test]
async fn protocol_errors_go_back_to_a_verified_redirect_uri() {
    let app = spawn_app().await;
    let c = field_app(&app).await;
    let browser = Browser::new(&app);
    let (_, challenge) = pkce();
    let cases: [Case; 4] = [
        ("openid", &[("code_challenge_method", "plain")], "invalid_request"),
        ("registry.admin", &[], "invalid_scope"),
        ("openid", &[("response_type", "token")], "unsupported_response_type"),
        ("openid", &[("prompt", "none login")], "invalid_request"),
    ];
    for (scope, extra, error) in cases {
        let mut url = authorize_url(&app, &c.id, REDIRECT, scope, &challenge, &[]);
        for (k, v) in extra {
            // Replace the parameter the helper set, or add it.
            let mut u = url::Url::parse(&url).unwrap();
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(key, _)| key != k)
                .map(|(a, b)| (a.into_owned(), b.into_owned()))
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs).append_pair(k, v);
            url = u.to_string();
        }
        let r = browser.get(&url).await;
        assert_eq!(r.status(), 303, "{scope} {extra:?}");
        let to = location(&r);
        assert!(to.starts_with(REDIRECT));
        assert_eq!(query_param(&to, "error").as_deref(), Some(error), "{scope} {extra:?}");
        assert_eq!(query_param(&to, "state").as_deref(), Some("st4te"));
        assert_eq!(query_param(&to, "iss").as_deref(), Some(app.address.as_str()));
    }
    // A repeated parameter is refused before anything else (RFC 6749 §3.1).
    let twice = format!("{}&scope=openid", authorize_url(&app, &c.id, REDIRECT, "openid", &challenge, &[]));
    assert_eq!(browser.get(&twice).await.status(), 400);
}

#[tokio::test]
async fn the_session_cookie_is_http_only_lax_and_renewed_at_login_and_pages_are_locked_down() {
    let app = spawn_app().await;
    create_user(&app, "asha", PASSWORD, false).await;
    let c = field_app(&app).await;
    let browser = Browser::new(&app);
    let first = browser.get(&url(&app, &c)).await;
    let before = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(before.starts_with("pramaan_session="), "plain-http loopback issuer: no __Host- prefix");
    assert!(before.contains("HttpOnly") && before.contains("SameSite=Lax") && before.contains("Path=/"));
    let page = browser.follow(first).await;
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.len() < 30 * 1024);
    let after = browser
        .post(
            "/login",
            &[
                ("csrf", &hidden(&html, "csrf").unwrap()),
                ("request", &hidden(&html, "request").unwrap()),
                ("username", "asha"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(after.status(), 303);
    let renewed = after.headers()["set-cookie"].to_str().unwrap().to_owned();
    let value = |c: &str| c.split(';').next().unwrap().to_owned();
    assert_ne!(value(&before), value(&renewed), "the session id changes at login");
    // The old cookie is worthless now: it was the anonymous session (sealed in the cookie, so
    // it still opens), which holds no login — replayed, it leads back to the password page.
    let old = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = old
        .get(format!("{}/authorize/resume?request={}", app.address, hidden(&html, "request").unwrap()))
        .header("cookie", value(&before))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.starts_with("/login?request="), "back to the password, not on with the login: {to}");
    // The new one carries the login on to the client.
    let r = old
        .get(format!("{}/authorize/resume?request={}", app.address, hidden(&html, "request").unwrap()))
        .header("cookie", value(&renewed))
        .send()
        .await
        .unwrap();
    assert!(location(&r).contains("code="), "{}", location(&r));
}

#[tokio::test]
async fn authorize_accepts_a_form_post_as_well_as_get() {
    let app = spawn_app().await;
    let c = field_app(&app).await;
    let (_, challenge) = pkce();
    let url = authorize_url(&app, &c.id, REDIRECT, "openid", &challenge, &[]);
    let query = url.split_once('?').unwrap().1.to_owned();
    let browser = Browser::new(&app);
    let r = browser
        .http
        .post(format!("{}/authorize", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/login?request="));
}
