//! Two-factor login through the HTML forms with a cookie-keeping client, on whichever backends
//! the environment names: an authenticator app (codes computed at the test's fixed clock),
//! codes by SMS through a real HTTP gateway stub, recovery codes — and every way around the
//! second step a password alone might try.

use chrono::TimeDelta;
use pramaan_integration_tests::browser::{
    Browser, REDIRECT, authorize_url, hidden, location, pkce, post_form, public_client,
};
use pramaan_integration_tests::sms_gateway::SmsStub;
use pramaan_integration_tests::two_factor::*;
use pramaan_integration_tests::{TestApp, spawn_app_at};
use pramaan_server::clock::FixedClock;
use pramaan_server::store::audit_events;
use serde_json::Value;

const SCOPE: &str = "openid registry.read";

struct Flow {
    url: String,
    verifier: String,
    client: String,
}

async fn flow(app: &TestApp, extra: &[(&str, &str)]) -> Flow {
    let client = public_client(app, &[]).await;
    flow_for(app, &client.id, extra)
}

fn flow_for(app: &TestApp, client: &str, extra: &[(&str, &str)]) -> Flow {
    let (verifier, challenge) = pkce();
    Flow {
        url: authorize_url(app, client, REDIRECT, SCOPE, &challenge, extra),
        verifier,
        client: client.to_owned(),
    }
}

/// Exchanges the code in `back` and returns the token response.
async fn tokens(app: &TestApp, f: &Flow, back: &reqwest::Response) -> Value {
    let code = code_in(back).unwrap_or_else(|| panic!("a code, got {}", location(back)));
    let (status, body) = post_form(
        app,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &f.client),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &f.verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn amr_of(token: &Value, field: &str) -> (Vec<String>, String) {
    let c = claims(token[field].as_str().unwrap());
    let amr = c["amr"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    (amr, c["acr"].as_str().unwrap().to_owned())
}

async fn audit_log(app: &TestApp) -> Vec<(String, String, String)> {
    let filter = audit_events::AuditFilter::default();
    app.core
        .db
        .run(move |c| audit_events::page(c, &filter, 1000))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.outcome, r.details))
        .collect()
}

/// Signs an admin in for the first time (setting up the app) and returns the key.
async fn first_login(app: &TestApp, clock: &FixedClock, username: &str) -> Enrolled {
    let f = flow(app, &[]).await;
    let b = Browser::new(app);
    let page = password_step(&b, &f.url, username).await;
    let (enrolled, shown) = enroll(&b, &page.text().await.unwrap(), clock).await;
    assert!(code_in(&continue_from(&b, &shown).await).is_some());
    enrolled
}

#[tokio::test]
async fn an_admin_sets_up_an_app_at_first_login_and_the_tokens_say_so() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    staff(&app, "nadmin", &["national_admin"], Some("+919812345678")).await;
    let f = flow(&app, &[]).await;
    let b = Browser::new(&app);
    let page = password_step(&b, &f.url, "nadmin").await;
    assert_eq!(page.url().path(), "/login/factor", "straight to the second step");
    let html = page.text().await.unwrap();
    assert!(html.contains("src=\"data:image/png;base64,"), "a QR code to scan");
    assert!(html.contains("href=\"otpauth://totp/"), "the otpauth URI for an app on the same phone");
    assert!(!html.contains("Get a code by text message"), "admins may not use SMS");
    let key = manual_key(&html);
    // A wrong code does not enroll anything.
    let csrf = hidden(&html, "csrf").unwrap();
    let request = hidden(&html, "request").unwrap();
    let wrong =
        b.post("/login/factor/enroll", &[("csrf", &csrf), ("request", &request), ("code", "000000")]).await;
    let wrong_html = wrong.text().await.unwrap();
    assert!(wrong_html.contains("That code is not right"));
    assert_eq!(manual_key(&wrong_html), key, "the same key until it is proven");
    let (enrolled, shown) = enroll(&b, &html, &clock).await;
    assert!(shown.contains("will not be shown again"));
    let back = continue_from(&b, &shown).await;
    let t = tokens(&app, &f, &back).await;
    for field in ["id_token", "access_token"] {
        let (amr, acr) = amr_of(&t, field);
        assert_eq!(amr, ["pwd", "otp", "mfa"], "{field}");
        assert_eq!(acr, "urn:pramaan:acr:mfa", "{field}");
    }
    // The trail has the enrollment and the login, and no secret or code.
    let log = audit_log(&app).await;
    assert!(log.iter().any(|(a, o, _)| a == "mfa.totp.enroll" && o == "success"));
    assert!(log.iter().any(|(a, o, _)| a == "mfa.totp.enroll" && o == "failure"));
    let all = format!("{log:?}");
    let compact_key: String = key.chars().filter(|c| *c != ' ').collect();
    assert!(!all.contains(&compact_key) && !all.contains(&key));
    assert!(!all.contains(&app_code(&key, &clock)));
    for c in &enrolled.recovery_codes {
        assert!(!all.contains(c.as_str()));
    }
}

#[tokio::test]
async fn an_app_code_works_once_and_a_replay_is_refused() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    staff(&app, "dadmin", &["district_admin"], None).await;
    let key = first_login(&app, &clock, "dadmin").await.key;
    // The enrollment's own code is spent: the next login within the same step must wait.
    let f = flow(&app, &[]).await;
    let b = Browser::new(&app);
    let html = password_step(&b, &f.url, "dadmin").await.text().await.unwrap();
    let replay = submit_code(&b, &html, "totp", &app_code(&key, &clock)).await;
    assert_eq!(replay.status(), 200);
    assert!(replay.text().await.unwrap().contains("That code is not right"));
    clock.advance(TimeDelta::seconds(30));
    let ok = submit_code(&b, &html, "totp", &app_code(&key, &clock)).await;
    let back = b.follow(ok).await;
    let t = tokens(&app, &f, &back).await;
    assert_eq!(amr_of(&t, "id_token").0, ["pwd", "otp", "mfa"]);
    let log = audit_log(&app).await;
    assert!(log.iter().any(|(a, _, d)| a == "login.second_factor" && d.contains("replayed_code")));
}

#[tokio::test]
async fn the_password_alone_gets_no_code_token_or_page_by_any_route() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    staff(&app, "sadmin", &["state_admin"], None).await;
    let key = first_login(&app, &clock, "sadmin").await.key;
    clock.advance(TimeDelta::seconds(60));
    let client = public_client(&app, &[]).await;
    let f = flow_for(&app, &client.id, &[]);
    let b = Browser::new(&app);
    let html = password_step(&b, &f.url, "sadmin").await.text().await.unwrap();
    let request = hidden(&html, "request").unwrap();
    let csrf = hidden(&html, "csrf").unwrap();
    // 1. /authorize again, for the same or another request: back to the second step.
    let again = b.follow(b.get(&f.url).await).await;
    assert_eq!(again.url().path(), "/login/factor");
    let other = flow_for(&app, &client.id, &[]);
    assert_eq!(b.follow(b.get(&other.url).await).await.url().path(), "/login/factor");
    // 2. prompt=none: an error for the client, never a code.
    let silent = flow_for(&app, &client.id, &[("prompt", "none")]);
    let resp = b.get(&silent.url).await;
    assert_eq!(query_of(&resp, "error").as_deref(), Some("login_required"));
    // 3. Resuming the request directly, or posting to the later steps.
    let resumed = b.follow(b.get(&format!("/authorize/resume?request={request}")).await).await;
    assert_eq!(resumed.url().path(), "/login/factor");
    let consent = b.post("/consent", &[("csrf", &csrf), ("request", &request), ("decision", "allow")]).await;
    assert!(code_in(&b.follow(consent).await).is_none());
    let pw = b.follow(b.get(&format!("/login/password?request={request}")).await).await;
    assert_eq!(pw.url().path(), "/login/factor");
    let pw_post = b
        .post(
            "/login/password",
            &[("csrf", &csrf), ("request", &request), ("new_password", "x"), ("confirm_password", "x")],
        )
        .await;
    assert!(code_in(&b.follow(pw_post).await).is_none());
    // 4. Enrolling a new app instead of using the existing one.
    let enroll =
        b.post("/login/factor/enroll", &[("csrf", &csrf), ("request", &request), ("code", "123456")]).await;
    assert!(code_in(&b.follow(enroll).await).is_none());
    // 5. The half-finished session's cookie in another client is the same half-finished login.
    let cookie = b.cookie_header(&app).expect("a session cookie");
    let thief = app.client.get(&f.url).header("cookie", &cookie).send().await.unwrap();
    let to = location(&thief);
    assert!(to.starts_with("/login/factor") || to.starts_with("/login?"), "{to}");
    // 6. No token from the token endpoint without a code; userinfo without a token.
    let (status, _) = post_form(
        &app,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client.id),
            ("code", "guess"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &f.verifier),
        ],
    )
    .await;
    assert_eq!(status, 400);
    // Only the second factor finishes it.
    let back = b.follow(submit_code(&b, &html, "totp", &app_code(&key, &clock)).await).await;
    assert!(code_in(&back).is_some());
}

fn query_of(resp: &reqwest::Response, name: &str) -> Option<String> {
    pramaan_integration_tests::browser::query_param(&location(resp), name)
}

#[tokio::test]
async fn a_login_made_before_a_role_needed_a_factor_no_longer_serves() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let user = staff(&app, "newadmin", &[], None).await;
    let f = flow(&app, &[]).await;
    let b = Browser::new(&app);
    let back = b
        .follow(
            b.submit_login(
                b.follow(b.get(&f.url).await).await,
                "newadmin",
                pramaan_integration_tests::browser::PASSWORD,
            )
            .await,
        )
        .await;
    assert!(code_in(&back).is_some(), "no role, no factor: the password is enough");
    grant(&app, &user, "national_admin").await;
    let f2 = flow_for(&app, &f.client, &[]);
    let page = b.follow(b.get(&f2.url).await).await;
    assert_eq!(page.url().path(), "/login", "single sign-on does not reuse the weaker login");
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_both_factors_again() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    staff(&app, "fadmin", &["facility_admin"], None).await;
    let f = flow(&app, &[]).await;
    let b = Browser::new(&app);
    let html = password_step(&b, &f.url, "fadmin").await.text().await.unwrap();
    let (enrolled, shown) = enroll(&b, &html, &clock).await;
    continue_from(&b, &shown).await;
    clock.advance(TimeDelta::seconds(120));
    for extra in [("prompt", "login"), ("max_age", "60")] {
        let g = flow_for(&app, &f.client, &[extra]);
        let page = b.follow(b.get(&g.url).await).await;
        assert_eq!(page.url().path(), "/login", "{extra:?}: the password first");
        let factor = b
            .follow(b.submit_login(page, "fadmin", pramaan_integration_tests::browser::PASSWORD).await)
            .await;
        assert_eq!(factor.url().path(), "/login/factor", "{extra:?}: then the app again");
        let html = factor.text().await.unwrap();
        let back = b.follow(submit_code(&b, &html, "totp", &app_code(&enrolled.key, &clock)).await).await;
        let t = tokens(&app, &g, &back).await;
        let c = claims(t["id_token"].as_str().unwrap());
        assert_eq!(c["auth_time"].as_i64(), Some(clock_now(&clock)), "{extra:?}: a fresh login");
        // Past the next request's max_age, and into a new step for the app.
        clock.advance(TimeDelta::seconds(90));
    }
}

fn clock_now(clock: &FixedClock) -> i64 {
    use pramaan_server::clock::Clock;
    clock.now().timestamp()
}

#[tokio::test]
async fn acr_values_ask_for_a_second_factor_or_are_refused_when_none_can_be_met() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    // No role needs a factor for these two; the client asks for one.
    staff(&app, "texter", &[], Some("+919800000010")).await;
    staff(&app, "plain", &[], None).await;
    let f = flow(&app, &[("acr_values", "urn:pramaan:acr:mfa")]).await;
    let b = Browser::new(&app);
    let html = password_step(&b, &f.url, "texter").await.text().await.unwrap();
    assert!(html.contains("+91******0010"), "the registered phone serves");
    let html = send_sms(&b, &html).await.text().await.unwrap();
    // The embedded log gateway: the code is in the data folder's sms.log.
    let log = std::fs::read_to_string(app.data_dir.path().join("sms.log")).unwrap();
    let code: String = log.lines().last().unwrap().split('\t').nth(2).unwrap().chars().take(6).collect();
    let t = tokens(&app, &f, &b.follow(submit_code(&b, &html, "sms", &code).await).await).await;
    assert_eq!(
        amr_of(&t, "id_token"),
        (vec!["pwd".into(), "sms".into(), "mfa".into()], "urn:pramaan:acr:mfa".into())
    );
    // No factor at all: setting one up on the password alone is not offered; the client hears
    // that its request cannot be met.
    let g = flow_for(&app, &f.client, &[("acr_values", "urn:pramaan:acr:mfa")]);
    let b = Browser::new(&app);
    let page = b.follow(b.get(&g.url).await).await;
    let back = b.submit_login(page, "plain", pramaan_integration_tests::browser::PASSWORD).await;
    assert_eq!(query_of(&back, "error").as_deref(), Some("unmet_authentication_requirements"));
    assert_eq!(query_of(&back, "state").as_deref(), Some("st4te"));
    // Classes we do not know: refused at once.
    let g = flow_for(&app, &f.client, &[("acr_values", "urn:example:loa:4")]);
    let resp = Browser::new(&app).get(&g.url).await;
    assert_eq!(query_of(&resp, "error").as_deref(), Some("unmet_authentication_requirements"));
}

#[tokio::test]
async fn a_recovery_code_signs_in_once_and_says_how_many_are_left() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    staff(&app, "auditor1", &["auditor"], None).await;
    let enrolled = first_login(&app, &clock, "auditor1").await;
    let code = enrolled.recovery_codes[3].to_lowercase();
    for attempt in 0..2 {
        let f = flow(&app, &[]).await;
        let b = Browser::new(&app);
        let page = password_step(&b, &f.url, "auditor1").await;
        let html = page.text().await.unwrap();
        assert!(html.contains("method=recovery"), "recovery codes are offered");
        let resp = submit_code(&b, &html, "recovery", &code).await;
        let shown = resp.text().await.unwrap();
        if attempt == 0 {
            assert!(shown.contains("9 are left"), "{shown}");
            let t = tokens(&app, &f, &continue_from(&b, &shown).await).await;
            assert_eq!(amr_of(&t, "id_token").0, ["pwd", "mfa"]);
        } else {
            assert!(shown.contains("That code is not right"), "a recovery code works once");
        }
    }
    let log = audit_log(&app).await;
    assert!(log.iter().any(|(a, _, d)| a == "mfa.recovery_code.used" && d.contains("\"remaining\":9")));
}

#[tokio::test]
async fn a_field_worker_signs_in_with_a_code_sent_through_the_http_gateway() {
    let clock = fixed_clock();
    let stub = SmsStub::start().await;
    let app = spawn_app_at(clock.clone(), |s| stub.configure(s)).await;
    staff(&app, "vacc1", &["vaccinator"], Some("+919812345678")).await;
    let f = flow(&app, &[]).await;
    let b = Browser::new(&app);
    let html = password_step(&b, &f.url, "vacc1").await.text().await.unwrap();
    assert!(html.contains("+91******5678"), "the phone, masked");
    assert!(!html.contains("9812345678"), "never the whole number");
    let sent = send_sms(&b, &html).await;
    assert_eq!(sent.status(), 200);
    let html = sent.text().await.unwrap();
    assert!(html.contains("We sent a code to +91******5678"));
    let msgs = stub.received();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].to, "+919812345678");
    let back = b.follow(submit_code(&b, &html, "sms", &stub.last_code()).await).await;
    let t = tokens(&app, &f, &back).await;
    assert_eq!(amr_of(&t, "access_token").0, ["pwd", "sms", "mfa"]);
    let log = audit_log(&app).await;
    assert!(!format!("{log:?}").contains(&stub.last_code()), "no code in the trail");
    assert!(log.iter().any(|(a, o, _)| a == "mfa.sms.sent" && o == "success"));
}

async fn sms_page(app: &TestApp, username: &str) -> (Browser, Flow, String) {
    let f = flow(app, &[]).await;
    let b = Browser::new(app);
    let html = password_step(&b, &f.url, username).await.text().await.unwrap();
    (b, f, html)
}

#[tokio::test]
async fn an_expired_sms_code_is_refused_and_a_new_one_works() {
    let clock = fixed_clock();
    let stub = SmsStub::start().await;
    let app = spawn_app_at(clock.clone(), |s| stub.configure(s)).await;
    staff(&app, "vacc2", &["verifier"], Some("+919800000002")).await;
    let (b, f, html) = sms_page(&app, "vacc2").await;
    let html = send_sms(&b, &html).await.text().await.unwrap();
    let first = stub.last_code();
    clock.advance(TimeDelta::seconds(301));
    let resp = submit_code(&b, &html, "sms", &first).await;
    let html = resp.text().await.unwrap();
    assert!(html.contains("That code has expired"), "{html}");
    let html = send_sms(&b, &html).await.text().await.unwrap();
    assert_eq!(stub.received().len(), 2);
    let back = b.follow(submit_code(&b, &html, "sms", &stub.last_code()).await).await;
    tokens(&app, &f, &back).await;
}

#[tokio::test]
async fn the_sixth_try_fails_even_with_the_right_code_and_the_account_locks() {
    let clock = fixed_clock();
    let stub = SmsStub::start().await;
    let app = spawn_app_at(clock.clone(), |s| stub.configure(s)).await;
    let user = staff(&app, "vacc3", &["vaccinator"], Some("+919800000003")).await;
    let (b, f, html) = sms_page(&app, "vacc3").await;
    let html = send_sms(&b, &html).await.text().await.unwrap();
    let right = stub.last_code();
    let wrong = if right == "000000" { "111111" } else { "000000" };
    for i in 0..5 {
        let page = submit_code(&b, &html, "sms", wrong).await.text().await.unwrap();
        assert!(page.contains(&format!("Tries left: {}.", 4 - i)), "{page}");
    }
    let sixth = submit_code(&b, &html, "sms", &right).await;
    assert_eq!(sixth.status(), 429);
    assert!(sixth.text().await.unwrap().contains("Too many wrong codes"));
    // The login is burnt: the flow starts again at the password.
    let again = b.follow(b.get(&f.url).await).await;
    assert_eq!(again.url().path(), "/login");
    let stored = pramaan_integration_tests::browser::find_user(&app, "vacc3").await;
    assert!(stored.locked_until.is_some(), "five wrong codes lock the account as wrong passwords do");
    assert_eq!(stored.id, user.id);
    let log = audit_log(&app).await;
    assert!(log.iter().any(|(a, _, d)| a == "login.second_factor" && d.contains("too_many_tries")));
}

#[tokio::test]
async fn a_resend_inside_the_cooldown_sends_nothing() {
    let clock = fixed_clock();
    let stub = SmsStub::start().await;
    let app = spawn_app_at(clock.clone(), |s| stub.configure(s)).await;
    staff(&app, "vacc4", &["vaccinator"], Some("+919800000004")).await;
    let (b, _, html) = sms_page(&app, "vacc4").await;
    let html = send_sms(&b, &html).await.text().await.unwrap();
    clock.advance(TimeDelta::seconds(10));
    let resp = send_sms(&b, &html).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.text().await.unwrap().contains("Wait 20 seconds"));
    assert_eq!(stub.received().len(), 1);
    clock.advance(TimeDelta::seconds(20));
    assert_eq!(send_sms(&b, &html).await.status(), 200);
    assert_eq!(stub.received().len(), 2);
}

#[tokio::test]
async fn the_per_phone_cap_holds_across_accounts_sharing_a_phone() {
    let clock = fixed_clock();
    let stub = SmsStub::start().await;
    let app = spawn_app_at(clock.clone(), |s| {
        stub.configure(s);
        s.sms.per_user_hourly = 10;
    })
    .await;
    let phone = "+919800000005";
    staff(&app, "vacc5", &["vaccinator"], Some(phone)).await;
    staff(&app, "vacc6", &["vaccinator"], Some(phone)).await;
    for (user, sends) in [("vacc5", 3), ("vacc6", 2)] {
        let (b, _, html) = sms_page(&app, user).await;
        for _ in 0..sends {
            assert_eq!(send_sms(&b, &html).await.status(), 200);
            clock.advance(TimeDelta::seconds(31));
        }
    }
    let (b, _, html) = sms_page(&app, "vacc6").await;
    let capped = send_sms(&b, &html).await;
    assert_eq!(capped.status(), 429);
    assert!(capped.text().await.unwrap().contains("Too many codes were sent to this number"));
    assert_eq!(stub.received().len(), 5);
    let log = audit_log(&app).await;
    assert!(log.iter().any(|(a, _, d)| a == "mfa.sms.refused" && d.contains("cap_phone")));
}

#[tokio::test]
async fn a_failing_gateway_is_explained_audited_and_charges_nothing() {
    let clock = fixed_clock();
    let stub = SmsStub::start().await;
    let app = spawn_app_at(clock.clone(), |s| {
        stub.configure(s);
        s.sms.per_user_hourly = 1;
    })
    .await;
    staff(&app, "vacc7", &["vaccinator"], Some("+919800000007")).await;
    let (b, f, html) = sms_page(&app, "vacc7").await;
    stub.fail_with(Some(503));
    let resp = send_sms(&b, &html).await;
    assert_eq!(resp.status(), 502);
    let page = resp.text().await.unwrap();
    assert!(page.contains("could not be sent") && page.contains("Nothing was counted against you"));
    assert_eq!(stub.failed_requests(), 2, "one retry");
    let log = audit_log(&app).await;
    assert!(log.iter().any(|(a, o, d)| a == "mfa.sms.failed" && o == "failure" && d.contains("503")));
    // At once, with no cooldown and the one-per-hour cap untouched:
    stub.fail_with(None);
    let html = send_sms(&b, &html).await.text().await.unwrap();
    let back = b.follow(submit_code(&b, &html, "sms", &stub.last_code()).await).await;
    tokens(&app, &f, &back).await;
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    staff(&app, "nadmin2", &["national_admin"], None).await;
    let key = first_login(&app, &clock, "nadmin2").await.key;
    clock.advance(TimeDelta::seconds(30));
    let (b, _, html) = sms_page(&app, "nadmin2").await;
    let request = hidden(&html, "request").unwrap();
    let code = app_code(&key, &clock);
    let resp = b.post("/login/factor", &[("request", &request), ("method", "totp"), ("code", &code)]).await;
    assert_eq!(resp.status(), 403);
    // Nothing was spent: the same code still works with the token.
    let back = b.follow(submit_code(&b, &resp.text().await.unwrap(), "totp", &code).await).await;
    assert!(code_in(&back).is_some());
}

#[tokio::test]
async fn the_shipped_policies_ask_every_programme_role_for_a_second_factor_and_no_one_else() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    for role in [
        "vaccinator",
        "verifier",
        "facility_admin",
        "district_admin",
        "state_admin",
        "national_admin",
        "auditor",
        "helpdesk",
    ] {
        let name = format!("r-{}", role.replace('_', "-"));
        staff(&app, &name, &[role], None).await;
        let f = flow(&app, &[]).await;
        let page = password_step(&Browser::new(&app), &f.url, &name).await;
        assert_eq!(page.url().path(), "/login/factor", "{role}");
        assert!(page.text().await.unwrap().contains("manual-key"), "{role}: no factor yet: set up an app");
    }
    // An account without a programme role signs in with its password (OpenID scopes only).
    staff(&app, "norole", &[], None).await;
    let f = flow(&app, &[]).await;
    let back = password_step(&Browser::new(&app), &f.url, "norole").await;
    assert!(code_in(&back).is_some(), "a code after the password: {}", location(&back));
}

#[tokio::test]
async fn the_helpdesk_resets_a_lost_app_and_the_next_login_sets_up_a_new_one() {
    use pramaan_integration_tests::cli::{env_for, run_cli};
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let user = staff(&app, "lostphone", &["district_admin"], None).await;
    let old = first_login(&app, &clock, "lostphone").await;
    let env = env_for(&app.db.url, app.data_dir.path());
    let missing = run_cli(&["user", "mfa-reset", "lostphone", "--json"], &env, "").await;
    assert!(!missing.ok(), "a reason is required");
    let run = run_cli(
        &["user", "mfa-reset", "lostphone", "--reason", "ticket 118: phone lost", "--json"],
        &env,
        "",
    )
    .await;
    assert!(run.ok(), "{}", run.stderr);
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["cleared"], true);
    let unknown = run_cli(&["user", "mfa-reset", "nobody", "--reason", "x"], &env, "").await;
    assert!(!unknown.ok() && unknown.stderr.contains("no user 'nobody'"));
    // The old app and codes are gone: the next login sets up a new app.
    clock.advance(TimeDelta::seconds(60));
    let f = flow(&app, &[]).await;
    let b = Browser::new(&app);
    let html = password_step(&b, &f.url, "lostphone").await.text().await.unwrap();
    let key = manual_key(&html);
    assert_ne!(key, old.key);
    let (_, shown) = enroll(&b, &html, &clock).await;
    assert!(code_in(&continue_from(&b, &shown).await).is_some());
    let log = audit_log(&app).await;
    assert!(log.iter().any(|(a, o, d)| a == "mfa.reset" && o == "success" && d.contains("ticket 118")));
    let _ = user;
}

#[tokio::test]
async fn wrong_codes_from_many_half_finished_logins_lock_the_account() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    staff(&app, "target", &["national_admin"], None).await;
    let key = first_login(&app, &clock, "target").await.key;
    clock.advance(TimeDelta::seconds(30));
    // Someone with the password opens eight half-finished logins and guesses in all at once.
    let mut halves = Vec::new();
    for _ in 0..8 {
        let f = flow(&app, &[]).await;
        let b = Browser::new(&app);
        let html = password_step(&b, &f.url, "target").await.text().await.unwrap();
        halves.push((b, html));
    }
    let right = app_code(&key, &clock);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    let mut guesses = tokio::task::JoinSet::new();
    let mut kept = None;
    for (i, (b, html)) in halves.into_iter().enumerate() {
        if i == 0 {
            kept = Some((b, html));
            continue;
        }
        let wrong = wrong.to_owned();
        guesses.spawn(async move { submit_code(&b, &html, "totp", &wrong).await.status() });
    }
    while let Some(r) = guesses.join_next().await {
        r.unwrap();
    }
    // Seven wrong codes in parallel: the lock came at the fifth, so even the right code is refused.
    let stored = pramaan_integration_tests::browser::find_user(&app, "target").await;
    assert!(stored.locked_until.is_some(), "the account is locked");
    let (b, html) = kept.unwrap();
    let resp = submit_code(&b, &html, "totp", &right).await;
    assert!(code_in(&resp).is_none());
    assert!(resp.text().await.unwrap().contains("locked for a while"));
    let log = audit_log(&app).await;
    assert!(
        log.iter().any(|(a, o, d)| a == "login.lockout" && o == "denied" && d.contains("\"failures\":5"))
    );
    assert!(log.iter().any(|(a, _, d)| a == "login.second_factor" && d.contains("\"reason\":\"locked\"")));
}

#[tokio::test]
async fn every_second_step_form_refuses_a_missing_csrf_token() {
    let clock = fixed_clock();
    let stub = SmsStub::start().await;
    let app = spawn_app_at(clock.clone(), |s| stub.configure(s)).await;
    staff(&app, "csrfsms", &["vaccinator"], Some("+919800000020")).await;
    staff(&app, "csrfapp", &["auditor"], None).await;
    let (b, _, html) = sms_page(&app, "csrfsms").await;
    let request = hidden(&html, "request").unwrap();
    let send = b.post("/login/factor/send", &[("request", &request)]).await;
    assert_eq!(send.status(), 403);
    assert!(stub.received().is_empty(), "no message without the token");
    let (b, _, html) = sms_page(&app, "csrfapp").await;
    let request = hidden(&html, "request").unwrap();
    let code = app_code(&manual_key(&html), &clock);
    let enroll =
        b.post("/login/factor/enroll", &[("request", &request), ("code", &code), ("csrf", "forged")]).await;
    assert_eq!(enroll.status(), 403);
    let stored = pramaan_integration_tests::browser::find_user(&app, "csrfapp").await;
    let id = stored.id.clone();
    let app_row = app.core.db.run(move |c| pramaan_server::store::factors::totp(c, &id)).await.unwrap();
    assert!(app_row.is_none(), "nothing enrolled");
}

#[tokio::test]
async fn an_app_set_up_meanwhile_is_never_replaced_by_a_login() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    staff(&app, "twotabs", &["helpdesk"], None).await;
    // The password holder stops at the enrollment page; the owner sets up their app.
    let f1 = flow(&app, &[]).await;
    let intruder = Browser::new(&app);
    let intruder_html = password_step(&intruder, &f1.url, "twotabs").await.text().await.unwrap();
    let owner_key = first_login(&app, &clock, "twotabs").await.key;
    let (csrf, request) =
        (hidden(&intruder_html, "csrf").unwrap(), hidden(&intruder_html, "request").unwrap());
    let code = app_code(&manual_key(&intruder_html), &clock);
    let resp = intruder
        .post("/login/factor/enroll", &[("csrf", &csrf), ("request", &request), ("code", &code)])
        .await;
    assert_eq!(resp.status(), 409);
    assert!(code_in(&resp).is_none());
    // The owner's app still signs in.
    clock.advance(TimeDelta::seconds(30));
    let f2 = flow(&app, &[]).await;
    let b = Browser::new(&app);
    let html = password_step(&b, &f2.url, "twotabs").await.text().await.unwrap();
    assert!(
        code_in(&b.follow(submit_code(&b, &html, "totp", &app_code(&owner_key, &clock)).await).await)
            .is_some()
    );
}

#[tokio::test]
async fn a_refresh_token_from_a_password_only_login_stops_when_a_role_needs_a_factor() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let user = staff(&app, "promoted", &[], None).await;
    let f = flow(&app, &[]).await;
    let b = Browser::new(&app);
    let page = b.follow(b.get(&f.url).await).await;
    let back =
        b.follow(b.submit_login(page, "promoted", pramaan_integration_tests::browser::PASSWORD).await).await;
    let t = tokens(&app, &f, &back).await;
    let refresh = t["refresh_token"].as_str().expect("a refresh token").to_owned();
    grant(&app, &user, "state_admin").await;
    let (status, body) = post_form(
        &app,
        "/token",
        None,
        &[("grant_type", "refresh_token"), ("client_id", &f.client), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}
