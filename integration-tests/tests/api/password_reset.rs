//! Self-service password reset on both backends: the forgotten-password page answers the same
//! for known and unknown usernames; the link comes by mail (through the outbox and the SMTP
//! sink), or a code by text message (through the SMS gateway stub) when there is no email; a
//! used, expired or forged link fails with a clear page; an enrolled second factor is always
//! asked for, and wrong codes burn the link; success ends every login of the account.

use std::time::Duration;

use chrono::TimeDelta;
use pramaan_integration_tests::admin::{console_client, first_admin_login, set_email, staff_in};
use pramaan_integration_tests::browser::{Browser, PASSWORD, hidden, post_form, register_client};
use pramaan_integration_tests::sms_gateway::SmsStub;
use pramaan_integration_tests::smtp_sink::{SmtpSink, smtp_settings, worker};
use pramaan_integration_tests::two_factor::{fixed_clock, insert_staff};
use pramaan_integration_tests::{TestApp, spawn_app_at};
use pramaan_server::clock::FixedClock;
use pramaan_server::domain::User;
use pramaan_server::store::users;

const NEW_PASSWORD: &str = "quiet harbour violin 7";

async fn app(sink: &SmtpSink, sms: Option<&SmsStub>) -> (TestApp, FixedClock) {
    let clock = fixed_clock();
    let port = sink.port;
    let app = spawn_app_at(clock.clone(), |s| {
        s.mail = smtp_settings(port);
        if let Some(stub) = sms {
            stub.configure(s);
        }
    })
    .await;
    (app, clock)
}

async fn reload(app: &TestApp, u: &User) -> User {
    let id = u.id.clone();
    app.core.db.run(move |c| users::find(c, &id)).await.unwrap().unwrap()
}

/// Asks for a reset of `username` from a fresh browser page; the status and body.
async fn ask(b: &Browser, username: &str) -> (u16, String) {
    let page = b.get("/password/forgot").await;
    assert_eq!(page.status(), 200);
    let csrf = hidden(&page.text().await.unwrap(), "csrf").unwrap();
    let resp = b.post("/password/forgot", &[("csrf", &csrf), ("username", username)]).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Runs the outbox until `n` messages reached the sink (the request is handled after the
/// answer, in the background).
async fn mail_arrives(app: &TestApp, sink: &SmtpSink, n: usize) {
    let w = worker(app);
    for _ in 0..100 {
        w.run_once().await.unwrap();
        if sink.received().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{n} message(s) expected, got {}", sink.received().len());
}

fn csrf_free(body: &str) -> String {
    // The page carries the browser's CSRF token; everything else must be the same.
    body.lines().filter(|l| !l.contains("name=\"csrf\"")).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn the_forgot_password_page_answers_the_same_for_known_and_unknown_usernames() {
    let sink = SmtpSink::start().await;
    let (app, _clock) = app(&sink, None).await;
    let asha = insert_staff(&app, "asha", &[], None, None).await;
    set_email(&app, &asha, "asha@example.org").await;
    let b = Browser::new(&app);
    let known = ask(&b, "asha").await;
    let unknown = ask(&b, "nobody-here").await;
    assert_eq!(known.0, 200);
    assert_eq!(known.0, unknown.0);
    assert_eq!(csrf_free(&known.1), csrf_free(&unknown.1), "the same page for both");
    assert!(!known.1.contains("asha"), "the page does not echo the username");
    // The known one gets exactly one mail; the unknown one none.
    mail_arrives(&app, &sink, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(worker(&app).run_once().await.unwrap().sent, 0);
    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, ["<asha@example.org>"]);
    assert!(got[0].decoded().contains("Someone, probably you, asked to reset"));
    // A form without its CSRF token is refused.
    let forged = b.post("/password/forgot", &[("csrf", "wrong"), ("username", "asha")]).await;
    assert_eq!(forged.status(), 403);
}

#[tokio::test]
async fn a_reset_link_works_once_ends_every_login_and_expires() {
    let sink = SmtpSink::start().await;
    let (app, clock) = app(&sink, None).await;
    let console = console_client(&app).await.id;
    let reg =
        register_client(&app, &["--name", "registry", "--grant", "client_credentials", "--introspection"])
            .await;
    let reg = (reg.id, reg.secret.unwrap());
    let asha = insert_staff(&app, "asha", &[], None, None).await;
    let asha = set_email(&app, &asha, "asha@example.org").await;
    let ravi = insert_staff(&app, "ravi", &[], None, None).await;
    set_email(&app, &ravi, "ravi@example.org").await;
    // Asha is signed in somewhere (a token pair through the console).
    let login = first_admin_login_without_factor(&app, &console, "asha").await;

    ask(&Browser::new(&app), "asha").await;
    mail_arrives(&app, &sink, 1).await;
    let link = sink.received()[0].reset_link().unwrap();
    clock.advance(TimeDelta::seconds(5));
    let b = Browser::new(&app);
    let page = b.follow(b.get(&link).await).await;
    assert_eq!(page.url().path(), "/password/reset", "the token leaves the address bar");
    let html = page.text().await.unwrap();
    assert!(html.contains("new_password") && html.contains("asha"), "{html}");
    let csrf = hidden(&html, "csrf").unwrap();
    // The password rules hold; a refusal keeps the link.
    let weak = b
        .post("/password/reset", &[("csrf", &csrf), ("new_password", "short"), ("confirm_password", "short")])
        .await;
    assert_eq!(weak.status(), 200);
    assert!(weak.text().await.unwrap().contains("Use at least 12 characters."));
    let same = b
        .post(
            "/password/reset",
            &[("csrf", &csrf), ("new_password", PASSWORD), ("confirm_password", PASSWORD)],
        )
        .await;
    assert!(
        same.text().await.unwrap().contains("Choose a password different from your current one."),
        "the current password is not a new one"
    );
    assert_eq!(
        reload(&app, &asha).await.password_changed_at,
        asha.password_changed_at,
        "refusals change nothing"
    );
    let done = b
        .post(
            "/password/reset",
            &[("csrf", &csrf), ("new_password", NEW_PASSWORD), ("confirm_password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(done.status(), 200);
    let after = reload(&app, &asha).await;
    assert!(after.password_changed_at > asha.password_changed_at, "the password changed");
    // Every login of the account ended: its tokens are inactive, its refresh token refused.
    let (_, body) = post_form(&app, "/introspect", Some((&reg.0, &reg.1)), &[("token", &login.0)]).await;
    assert_eq!(body["active"], false, "{body}");
    let (status, _) = post_form(
        &app,
        "/token",
        None,
        &[("grant_type", "refresh_token"), ("client_id", &console), ("refresh_token", &login.1)],
    )
    .await;
    assert_eq!(status, 400);
    // Used: a clear page.
    let used = Browser::new(&app).get(&link).await;
    assert_eq!(used.status(), 410);
    assert!(used.text().await.unwrap().contains("This link no longer works"));
    // A forged or truncated token: the same page.
    let forged = Browser::new(&app).get(&format!("{}/password/reset?token=abc", app.address)).await;
    assert_eq!(forged.status(), 410);
    let nothing = Browser::new(&app).get("/password/reset").await;
    assert_eq!(nothing.status(), 410);

    // Expired: ravi's link, opened after its half hour.
    let ravi_before = reload(&app, &ravi).await.password_changed_at;
    ask(&Browser::new(&app), "ravi").await;
    mail_arrives(&app, &sink, 2).await;
    let ravi_link = sink.received()[1].reset_link().unwrap();
    clock.advance(TimeDelta::minutes(31));
    let expired = Browser::new(&app).get(&ravi_link).await;
    assert_eq!(expired.status(), 410);
    assert_eq!(reload(&app, &ravi).await.password_changed_at, ravi_before, "nothing changed");
}

/// A token pair for an account that needs no second factor, through the console.
async fn first_admin_login_without_factor(app: &TestApp, console: &str, username: &str) -> (String, String) {
    use pramaan_integration_tests::browser::{authorize_url, pkce};
    let (verifier, challenge) = pkce();
    let redirect = pramaan_integration_tests::browser::REDIRECT;
    let url = authorize_url(app, console, redirect, "openid", &challenge, &[]);
    let b = Browser::new(app);
    let back = b.sign_in(&url, username, PASSWORD).await;
    let code = pramaan_integration_tests::two_factor::code_in(&back).expect("a code");
    let (status, tokens) = post_form(
        app,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", console),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn the_second_factor_is_never_bypassed_and_wrong_codes_burn_the_link() {
    let sink = SmtpSink::start().await;
    let (app, clock) = app(&sink, None).await;
    let console = console_client(&app).await.id;
    let v = staff_in(&app, "vacc", &["vaccinator"], "in/ka/blr/phc-1").await;
    let v = set_email(&app, &v, "vacc@example.org").await;
    first_admin_login(&app, &clock, &console, "vacc").await;
    ask(&Browser::new(&app), "vacc").await;
    mail_arrives(&app, &sink, 1).await;
    let link = sink.received()[0].reset_link().unwrap();
    let b = Browser::new(&app);
    let html = b.follow(b.get(&link).await).await.text().await.unwrap();
    assert!(html.contains("/password/reset/factor") && !html.contains("new_password"), "{html}");
    let csrf = hidden(&html, "csrf").unwrap();
    let skip = b
        .post(
            "/password/reset",
            &[("csrf", &csrf), ("new_password", NEW_PASSWORD), ("confirm_password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(skip.status(), 303);
    assert_eq!(
        reload(&app, &v).await.password_changed_at,
        v.password_changed_at,
        "no password without the factor"
    );
    let tries = app.core.settings.mfa.max_tries;
    let mut last = None;
    for _ in 0..tries {
        let r = b
            .post("/password/reset/factor", &[("csrf", &csrf), ("method", "totp"), ("code", "000000")])
            .await;
        last = Some(r.status().as_u16());
    }
    assert_eq!(last, Some(410), "the last wrong code burns the link");
    let after = reload(&app, &v).await;
    assert!(
        after.failed_logins >= i32::try_from(tries).unwrap() || after.locked_until.is_some(),
        "each guess was charged to the account: {after:?}"
    );
    let again = Browser::new(&app).get(&link).await;
    assert_eq!(again.status(), 410);
    assert_eq!(reload(&app, &v).await.password_changed_at, v.password_changed_at);
}

#[tokio::test]
async fn an_account_without_email_gets_a_code_by_text_message() {
    let sink = SmtpSink::start().await;
    let sms = SmsStub::start().await;
    let (app, clock) = app(&sink, Some(&sms)).await;
    let u = insert_staff(&app, "field", &[], Some("+919876543210"), None).await;
    clock.advance(TimeDelta::seconds(5));
    let b = Browser::new(&app);
    let (status, body) = ask(&b, "field").await;
    assert_eq!(status, 200);
    let csrf = hidden(&body, "csrf").unwrap();
    for _ in 0..100 {
        if !sms.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = sms.received().pop().expect("a text message").text;
    let code: String = text.chars().take(8).collect();
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{text}");
    assert!(sink.received().is_empty(), "no mail for an account without email");
    // A wrong code: the same page with an error, exactly as for a username that does not
    // exist; the right one: the new-password form (the phone is proven; no other factor).
    let wrong = b.post("/password/code", &[("csrf", &csrf), ("code", "00000000")]).await;
    assert_eq!(wrong.status(), 200);
    let wrong_body = wrong.text().await.unwrap();
    assert!(wrong_body.contains("That code is not right"), "{wrong_body}");
    let stranger = Browser::new(&app);
    let (_, page) = ask(&stranger, "nobody-here").await;
    let their_csrf = hidden(&page, "csrf").unwrap();
    let theirs = stranger.post("/password/code", &[("csrf", &their_csrf), ("code", "00000000")]).await;
    assert_eq!(theirs.status(), 200);
    assert_eq!(csrf_free(&theirs.text().await.unwrap()), csrf_free(&wrong_body), "the same answer");
    let right = b.post("/password/code", &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(right.status(), 303);
    let html = b.follow(right).await.text().await.unwrap();
    let csrf = hidden(&html, "csrf").unwrap();
    let done = b
        .post(
            "/password/reset",
            &[("csrf", &csrf), ("new_password", NEW_PASSWORD), ("confirm_password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(done.status(), 200);
    assert!(reload(&app, &u).await.password_changed_at > u.password_changed_at);
    // The code is used up.
    let b2 = Browser::new(&app);
    let (_, body) = ask(&b2, "field").await;
    let csrf2 = hidden(&body, "csrf").unwrap();
    let reused = b2.post("/password/code", &[("csrf", &csrf2), ("code", &code)]).await;
    assert_eq!(reused.status(), 200, "an old code is refused");
}
