//! The account page (`/account`): reached only through a login as strong as the account
//! needs; the person's factors, password and sessions, each change proven and audited.

use chrono::TimeDelta;
use pramaan_integration_tests::browser::{Browser, PASSWORD, hidden};
use pramaan_integration_tests::spawn_app_at;
use pramaan_integration_tests::two_factor::*;
use pramaan_server::clock::FixedClock;
use pramaan_server::store::audit_events;

const NEW_PASSWORD: &str = "copper kettle seventy rivers";

/// Signs `username` in to the account page with the app `key` (from a browser that has no
/// login yet) and returns the page's HTML.
async fn account_login(b: &Browser, username: &str, password: &str, key: &str, clock: &FixedClock) -> String {
    let page = b.follow(b.get("/account").await).await;
    assert_eq!(page.url().path(), "/login", "the account page needs a login");
    assert!(page.text().await.unwrap().contains("your Pramaan account"));
    let page = b.follow(b.get("/account").await).await;
    let factor = b.follow(b.submit_login(page, username, password).await).await;
    assert_eq!(factor.url().path(), "/login/factor", "and its second factor");
    let html = factor.text().await.unwrap();
    let done = b.follow(submit_code(b, &html, "totp", &app_code(key, clock)).await).await;
    assert_eq!(done.url().path(), "/account");
    assert_eq!(done.status(), 200);
    done.text().await.unwrap()
}

async fn actions(app: &pramaan_integration_tests::TestApp) -> Vec<(String, String, String)> {
    let filter = audit_events::AuditFilter::default();
    let rows = app.core.db.run(move |c| audit_events::page(c, &filter, 1000)).await.unwrap();
    rows.into_iter().map(|r| (r.action, r.outcome, r.details)).collect()
}

async fn enrolled_admin(
    app: &pramaan_integration_tests::TestApp,
    clock: &FixedClock,
    name: &str,
) -> Enrolled {
    staff(app, name, &["district_admin"], Some("+919812340000")).await;
    let b = Browser::new(app);
    let page = b.follow(b.get("/account").await).await;
    let html = b.follow(b.submit_login(page, name, PASSWORD).await).await.text().await.unwrap();
    let (enrolled, shown) = enroll(&b, &html, clock).await;
    assert_eq!(continue_from(&b, &shown).await.url().path(), "/account");
    enrolled
}

#[tokio::test]
async fn the_page_shows_the_factors_and_needs_both_factors() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let e = enrolled_admin(&app, &clock, "acc1").await;
    clock.advance(TimeDelta::seconds(30));
    let b = Browser::new(&app);
    // The password alone: the page is not shown, whatever is asked.
    let page = b.follow(b.get("/account").await).await;
    let half = b.follow(b.submit_login(page, "acc1", PASSWORD).await).await;
    assert_eq!(half.url().path(), "/login/factor");
    let html = half.text().await.unwrap();
    for path in ["/account"] {
        let again = b.follow(b.get(path).await).await;
        assert_ne!(again.url().path(), "/account", "{path} with the password alone");
    }
    let csrf = hidden(&html, "csrf").unwrap();
    let before = pramaan_integration_tests::browser::find_user(&app, "acc1").await;
    clock.advance(TimeDelta::seconds(1));
    let post = b
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(post.status(), 303, "a half-finished login changes nothing");
    let stored = pramaan_integration_tests::browser::find_user(&app, "acc1").await;
    assert_eq!(stored.password_changed_at, before.password_changed_at, "the password did not change");
    // With the app: the page.
    let done = b.follow(submit_code(&b, &html, "totp", &app_code(&e.key, &clock)).await).await;
    assert_eq!(done.url().path(), "/account");
    let page = done.text().await.unwrap();
    assert!(page.contains("Set up on "), "the app");
    assert!(page.contains("Recovery codes left: 10."));
    assert!(page.contains("+91******0000") && !page.contains("9812340000"), "the phone, masked");
    assert!(page.contains("This browser"));
}

#[tokio::test]
async fn new_recovery_codes_need_the_app_and_replace_the_old_ones() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let e = enrolled_admin(&app, &clock, "acc2").await;
    clock.advance(TimeDelta::seconds(30));
    let b = Browser::new(&app);
    let html = account_login(&b, "acc2", PASSWORD, &e.key, &clock).await;
    let csrf = hidden(&html, "csrf").unwrap();
    clock.advance(TimeDelta::seconds(30));
    // A recovery code does not mint new ones; a wrong code neither.
    for proof in [e.recovery_codes[0].as_str(), "000000"] {
        let resp = b.post("/account/recovery-codes", &[("csrf", &csrf), ("code", proof)]).await;
        assert!(resp.text().await.unwrap().contains("That code is not right"), "{proof}");
    }
    let missing = b.post("/account/recovery-codes", &[("code", &app_code(&e.key, &clock))]).await;
    assert_eq!(missing.status(), 403, "no CSRF token");
    let resp =
        b.post("/account/recovery-codes", &[("csrf", &csrf), ("code", &app_code(&e.key, &clock))]).await;
    let shown = resp.text().await.unwrap();
    assert!(shown.contains("the old ones no longer work"));
    let fresh = shown.split("<li><code>").skip(1).count();
    assert_eq!(fresh, 10);
    // An old code no longer signs in.
    clock.advance(TimeDelta::seconds(30));
    let b2 = Browser::new(&app);
    let page = b2.follow(b2.get("/account").await).await;
    let html = b2.follow(b2.submit_login(page, "acc2", PASSWORD).await).await.text().await.unwrap();
    let old = submit_code(&b2, &html, "recovery", &e.recovery_codes[1]).await;
    assert!(old.text().await.unwrap().contains("That code is not right"));
    let log = actions(&app).await;
    assert!(log.iter().any(|(a, o, _)| a == "mfa.recovery_codes.replace" && o == "success"));
    assert!(log.iter().any(|(a, o, _)| a == "mfa.recovery_codes.replace" && o == "failure"));
}

#[tokio::test]
async fn a_new_app_needs_the_old_one_and_then_only_the_new_one_works() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let e = enrolled_admin(&app, &clock, "acc3").await;
    clock.advance(TimeDelta::seconds(30));
    let b = Browser::new(&app);
    let html = account_login(&b, "acc3", PASSWORD, &e.key, &clock).await;
    let csrf = hidden(&html, "csrf").unwrap();
    let wrong = b.post("/account/app", &[("csrf", &csrf), ("code", "123456")]).await;
    assert!(wrong.text().await.unwrap().contains("That code is not right"));
    // A recovery code proves the person here (the phone with the old app may be lost).
    let resp = b.post("/account/app", &[("csrf", &csrf), ("code", &e.recovery_codes[2])]).await;
    let enroll_html = resp.text().await.unwrap();
    let new_key = manual_key(&enroll_html);
    assert_ne!(new_key, e.key);
    clock.advance(TimeDelta::seconds(30));
    let code = app_code(&new_key, &clock);
    let confirm = b.post("/account/app/confirm", &[("csrf", &csrf), ("code", &code)]).await;
    let shown = confirm.text().await.unwrap();
    assert!(shown.contains("the old one no longer works"), "{shown}");
    clock.advance(TimeDelta::seconds(30));
    let b2 = Browser::new(&app);
    let page = b2.follow(b2.get("/account").await).await;
    let html = b2.follow(b2.submit_login(page, "acc3", PASSWORD).await).await.text().await.unwrap();
    let old = submit_code(&b2, &html, "totp", &app_code(&e.key, &clock)).await;
    assert!(old.text().await.unwrap().contains("That code is not right"), "the old app is gone");
    let new = b2.follow(submit_code(&b2, &html, "totp", &app_code(&new_key, &clock)).await).await;
    assert_eq!(new.url().path(), "/account");
}

#[tokio::test]
async fn changing_the_password_ends_every_other_sign_in_and_sessions_can_be_ended() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let e = enrolled_admin(&app, &clock, "acc4").await;
    let mut browsers = Vec::new();
    for _ in 0..3 {
        clock.advance(TimeDelta::seconds(30));
        let b = Browser::new(&app);
        let html = account_login(&b, "acc4", PASSWORD, &e.key, &clock).await;
        browsers.push((b, html));
    }
    let (b, html) = &browsers[2];
    assert_eq!(html.matches("name=\"sid\"").count(), 4, "three other sign-ins and 'all others'");
    let csrf = hidden(html, "csrf").unwrap();
    // End one other session by its id.
    let sid = html.split("name=\"sid\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let resp = b.post("/account/sessions/end", &[("csrf", &csrf), ("sid", &sid)]).await;
    assert!(resp.text().await.unwrap().contains("Signed out there"));
    // Wrong current password, a weak new one: refused, nothing changes.
    let wrong = b
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", "nope nope nope"),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert!(wrong.text().await.unwrap().contains("The current password is not right"));
    let weak = b
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "tiny pass"),
                ("confirm_password", "tiny pass"),
            ],
        )
        .await;
    let weak = weak.text().await.unwrap();
    assert!(weak.contains("Use at least 12 characters") && !weak.contains("Your password was changed"));
    let ok = b
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert!(ok.text().await.unwrap().contains("Every other sign-in of yours was ended"));
    // This browser is still signed in; the others are not.
    assert_eq!(b.follow(b.get("/account").await).await.url().path(), "/account");
    for (other, _) in &browsers[..2] {
        assert_eq!(other.follow(other.get("/account").await).await.url().path(), "/login");
    }
    let log = actions(&app).await;
    // Ended by the change: the enrollment's login and the other browser not ended by hand.
    assert!(log.iter().any(|(a, o, d)| a == "password.change"
        && o == "success"
        && d.contains("\"other_sessions_ended\":2")));
    assert!(log.iter().any(|(a, o, _)| a == "password.change" && o == "failure"));
    assert!(!format!("{log:?}").contains(NEW_PASSWORD));
}

#[tokio::test]
async fn a_password_alone_cannot_set_up_the_first_app() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let user = staff(&app, "plainacc", &[], Some("+919800000030")).await;
    let b = Browser::new(&app);
    let page = b.follow(b.get("/account").await).await;
    let done = b.follow(b.submit_login(page, "plainacc", PASSWORD).await).await;
    assert_eq!(done.url().path(), "/account", "no factor needed: the password signs in");
    let html = done.text().await.unwrap();
    let csrf = hidden(&html, "csrf").unwrap();
    let resp = b.post("/account/app", &[("csrf", &csrf), ("code", "")]).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("sign in with a second factor"));
    let id = user.id.clone();
    let row = app.core.db.run(move |c| pramaan_server::store::factors::totp(c, &id)).await.unwrap();
    assert!(row.is_none(), "whoever holds the password cannot claim the second factor");
}

#[tokio::test]
async fn wrong_current_passwords_on_the_page_count_towards_the_lock() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let e = enrolled_admin(&app, &clock, "acc5").await;
    clock.advance(TimeDelta::seconds(30));
    let b = Browser::new(&app);
    let html = account_login(&b, "acc5", PASSWORD, &e.key, &clock).await;
    let csrf = hidden(&html, "csrf").unwrap();
    let guess = |p: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf", csrf.clone()),
            ("current_password", p.to_owned()),
            ("new_password", NEW_PASSWORD.to_owned()),
            ("confirm_password", NEW_PASSWORD.to_owned()),
        ]
    };
    for _ in 0..5 {
        let g = guess("not the password");
        let g: Vec<(&str, &str)> = g.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = b.post("/account/password", &g).await;
        assert!(resp.text().await.unwrap().contains("The current password is not right"));
    }
    // Locked now: even the right password is refused, and the trail says why.
    let g = guess(PASSWORD);
    let g: Vec<(&str, &str)> = g.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = b.post("/account/password", &g).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("locked for a while"));
    let log = actions(&app).await;
    assert!(log.iter().any(|(a, _, _)| a == "login.lockout"));
    assert!(!log.iter().any(|(a, o, _)| a == "password.change" && o == "success"));
}

#[tokio::test]
async fn a_new_app_started_before_another_change_cannot_be_confirmed() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let e = enrolled_admin(&app, &clock, "acc6").await;
    clock.advance(TimeDelta::seconds(30));
    let a = Browser::new(&app);
    let html_a = account_login(&a, "acc6", PASSWORD, &e.key, &clock).await;
    let csrf_a = hidden(&html_a, "csrf").unwrap();
    let key_a = manual_key(
        &a.post("/account/app", &[("csrf", &csrf_a), ("code", &e.recovery_codes[0])])
            .await
            .text()
            .await
            .unwrap(),
    );
    // Meanwhile, in another browser, a new app is set up and confirmed.
    clock.advance(TimeDelta::seconds(30));
    let b = Browser::new(&app);
    let html_b = account_login(&b, "acc6", PASSWORD, &e.key, &clock).await;
    let csrf_b = hidden(&html_b, "csrf").unwrap();
    let key_b = manual_key(
        &b.post("/account/app", &[("csrf", &csrf_b), ("code", &e.recovery_codes[1])])
            .await
            .text()
            .await
            .unwrap(),
    );
    let done =
        b.post("/account/app/confirm", &[("csrf", &csrf_b), ("code", &app_code(&key_b, &clock))]).await;
    assert!(done.text().await.unwrap().contains("the old one no longer works"));
    // The first browser's setup was proven against the app that is gone: refused.
    let late =
        a.post("/account/app/confirm", &[("csrf", &csrf_a), ("code", &app_code(&key_a, &clock))]).await;
    assert_eq!(late.status(), 303);
    clock.advance(TimeDelta::seconds(30));
    let c = Browser::new(&app);
    account_login(&c, "acc6", PASSWORD, &key_b, &clock).await;
}
