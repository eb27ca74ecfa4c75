//! Password-reset campaigns on both backends, with the tests' SMTP sink: a campaign over an
//! org subtree cuts its accounts off at once (introspection, refresh, userinfo) and leaves
//! the rest alone, mails each account exactly once, and counts completions as people set new
//! passwords through the real reset pages; dry runs change nothing; cancelling stops the mail;
//! onboarding campaigns give imported accounts their first password; the CLI does the same.

use chrono::TimeDelta;
use pramaan_integration_tests::admin::{
    AdminLogin, ApiAnswer, api, console_client, first_admin_login, set_email, staff_in,
};
use pramaan_integration_tests::browser::{Browser, hidden, post_form, register_client};
use pramaan_integration_tests::cli::{env_for, run_cli};
use pramaan_integration_tests::smtp_sink::{Received, SmtpSink, smtp_settings, worker};
use pramaan_integration_tests::two_factor::{app_code, fixed_clock};
use pramaan_integration_tests::{TestApp, spawn_app_at};
use pramaan_server::clock::FixedClock;
use pramaan_server::config::MailSettings;
use pramaan_server::domain::{Email, User, Username};
use pramaan_server::store::audit_events::AuditFilter;
use pramaan_server::store::campaigns::{AudienceFilter, CampaignKind, NewCampaign};
use pramaan_server::store::users;
use serde_json::{Value, json};

const BLR: &str = "in/ka/blr";
const MYS: &str = "in/ka/mys";
const NEW_PASSWORD: &str = "quiet harbour violin 7";

fn mail_to(port: u16) -> MailSettings {
    let mut s = smtp_settings(port);
    s.organisation_name = "Karnataka Vaccination Programme".into();
    s
}

struct World {
    app: TestApp,
    clock: FixedClock,
    sink: SmtpSink,
    console: String,
    admin: AdminLogin,
}

async fn world() -> World {
    let sink = SmtpSink::start().await;
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |s| s.mail = mail_to(sink.port)).await;
    let console = console_client(&app).await.id;
    staff_in(&app, "nadmin", &["national_admin"], "in").await;
    let admin = first_admin_login(&app, &clock, &console, "nadmin").await;
    World { app, clock, sink, console, admin }
}

/// A vaccinator at `org` with an email address.
async fn member(app: &TestApp, name: &str, org: &str) -> User {
    let u = staff_in(app, name, &["vaccinator"], org).await;
    set_email(app, &u, &format!("{name}@example.org")).await
}

async fn reload(app: &TestApp, u: &User) -> User {
    let id = u.id.clone();
    app.core.db.run(move |c| users::find(c, &id)).await.unwrap().unwrap()
}

async fn introspect(app: &TestApp, registry: &(String, String), token: &str) -> Value {
    let (status, body) =
        post_form(app, "/introspect", Some((&registry.0, &registry.1)), &[("token", token)]).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn registry(app: &TestApp) -> (String, String) {
    let r = register_client(app, &["--name", "registry", "--grant", "client_credentials", "--introspection"])
        .await;
    (r.id, r.secret.unwrap())
}

async fn refresh(app: &TestApp, console: &str, refresh_token: &str) -> (u16, Value) {
    post_form(
        app,
        "/token",
        None,
        &[("grant_type", "refresh_token"), ("client_id", console), ("refresh_token", refresh_token)],
    )
    .await
}

async fn launch(w: &World, body: Value) -> ApiAnswer {
    api(&w.app, "POST", "/password-reset-campaigns", Some(&w.admin.access_token), Some(body)).await
}

/// Every action in the audit trail, in order.
async fn actions(app: &TestApp) -> Vec<String> {
    let page = app.core.audit.page(AuditFilter::default(), 10_000).await.unwrap();
    page.into_iter().map(|r| r.action).collect()
}

async fn progress(w: &World, id: &str) -> Value {
    let a = api(&w.app, "GET", &format!("/password-reset-campaigns/{id}"), Some(&w.admin.access_token), None)
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body
}

fn mail_for<'a>(got: &'a [Received], to: &str) -> Vec<&'a Received> {
    got.iter().filter(|m| m.to.iter().any(|t| t == &format!("<{to}>"))).collect()
}

/// Sets a new password through the reset pages from `link`: the app code first when the
/// account has an app (`key`), then the password.
async fn complete_reset(
    app: &TestApp,
    clock: &FixedClock,
    link: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let b = Browser::new(app);
    let landed = b.follow(b.get(link).await).await;
    assert_eq!(landed.url().path(), "/password/reset");
    assert_eq!(landed.status(), 200);
    let mut html = landed.text().await.unwrap();
    if let Some(key) = key {
        assert!(html.contains("/password/reset/factor"), "the app is asked for first: {html}");
        // The link alone does not set a password.
        let csrf = hidden(&html, "csrf").unwrap();
        let early = b
            .post(
                "/password/reset",
                &[("csrf", &csrf), ("new_password", NEW_PASSWORD), ("confirm_password", NEW_PASSWORD)],
            )
            .await;
        assert_eq!(early.status(), 303, "a password before the factor goes back to the factor");
        clock.advance(TimeDelta::seconds(30));
        let code = app_code(key, clock);
        let proven =
            b.post("/password/reset/factor", &[("csrf", &csrf), ("method", "totp"), ("code", &code)]).await;
        assert_eq!(proven.status(), 303);
        html = b.follow(proven).await.text().await.unwrap();
    }
    assert!(html.contains("new_password"), "{html}");
    let csrf = hidden(&html, "csrf").unwrap();
    b.post(
        "/password/reset",
        &[("csrf", &csrf), ("new_password", NEW_PASSWORD), ("confirm_password", NEW_PASSWORD)],
    )
    .await
}

#[tokio::test]
async fn a_campaign_over_a_subtree_cuts_its_accounts_off_mails_each_once_and_counts_resets() {
    let w = world().await;
    let registry = registry(&w.app).await;
    let a = member(&w.app, "vacc-a", &format!("{BLR}/phc-1")).await;
    member(&w.app, "vacc-b", &format!("{BLR}/phc-2")).await;
    let m = member(&w.app, "vacc-m", &format!("{MYS}/phc-3")).await;
    // Live logins (with refresh tokens) inside and outside the subtree.
    let a_login = first_admin_login(&w.app, &w.clock, &w.console, "vacc-a").await;
    let b_login = first_admin_login(&w.app, &w.clock, &w.console, "vacc-b").await;
    let m_login = first_admin_login(&w.app, &w.clock, &w.console, "vacc-m").await;
    assert_eq!(introspect(&w.app, &registry, &a_login.access_token).await["active"], true);
    w.clock.advance(TimeDelta::seconds(2));

    let launched =
        launch(&w, json!({ "audience": { "org": BLR }, "reason": "breach of the BLR district server" }))
            .await;
    assert_eq!(launched.status, 201, "{:?}", launched.body);
    let id = launched.body["id"].as_str().unwrap().to_owned();
    assert_eq!(launched.body["targeted"], 2);
    assert_eq!(launched.body["state"], "running");
    assert_eq!(launched.body["launched_by"], "user:nadmin");

    // At once: the subtree's tokens are dead, the rest live.
    assert_eq!(introspect(&w.app, &registry, &a_login.access_token).await, json!({ "active": false }));
    assert_eq!(introspect(&w.app, &registry, &b_login.access_token).await, json!({ "active": false }));
    assert_eq!(introspect(&w.app, &registry, &m_login.access_token).await["active"], true);
    let (status, body) = refresh(&w.app, &w.console, &a_login.refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, _) = refresh(&w.app, &w.console, &m_login.refresh_token).await;
    assert_eq!(status, 200, "outside the subtree, refresh still works");
    let userinfo = w
        .app
        .client
        .get(format!("{}/userinfo", w.app.address))
        .bearer_auth(&b_login.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 401);
    assert!(reload(&w.app, &a).await.must_change_password);
    assert!(!reload(&w.app, &m).await.must_change_password);

    // Exactly one mail per targeted account, none outside; a second round sends nothing.
    let p = progress(&w, &id).await;
    assert_eq!((p["queued"].as_i64(), p["notified"].as_i64()), (Some(2), Some(0)), "{p}");
    let round = worker(&w.app).run_once().await.unwrap();
    assert_eq!(round.sent, 2, "{round:?}");
    assert_eq!(worker(&w.app).run_once().await.unwrap().sent, 0);
    let got = w.sink.received();
    assert_eq!(got.len(), 2);
    assert_eq!(mail_for(&got, "vacc-a@example.org").len(), 1);
    assert_eq!(mail_for(&got, "vacc-b@example.org").len(), 1);
    assert!(mail_for(&got, "vacc-m@example.org").is_empty());
    let text = mail_for(&got, "vacc-a@example.org")[0].decoded();
    assert!(text.contains("Karnataka Vaccination Programme"), "{text}");
    assert!(text.contains("set a new password now"), "{text}");
    let p = progress(&w, &id).await;
    assert_eq!(
        (p["notified"].as_i64(), p["completed"].as_i64(), p["pending"].as_i64(), p["mail_failed"].as_i64()),
        (Some(2), Some(0), Some(2), Some(0)),
        "{p}"
    );

    // vacc-a resets through the pages (the app code is asked first); the count moves.
    let link_a = mail_for(&got, "vacc-a@example.org")[0].reset_link().unwrap();
    let done = complete_reset(&w.app, &w.clock, &link_a, Some(&a_login.key)).await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Your password is set"));
    let p = progress(&w, &id).await;
    assert_eq!(
        (p["completed"].as_i64(), p["pending"].as_i64(), p["state"].as_str()),
        (Some(1), Some(1), Some("running")),
        "{p}"
    );
    assert!(!reload(&w.app, &a).await.must_change_password);
    // The link is used up.
    let again = Browser::new(&w.app).get(&link_a).await;
    assert_eq!(again.status(), 410);
    assert!(again.text().await.unwrap().contains("This link no longer works"));

    // vacc-b too: the campaign completes.
    let link_b = mail_for(&got, "vacc-b@example.org")[0].reset_link().unwrap();
    let done = complete_reset(&w.app, &w.clock, &link_b, Some(&b_login.key)).await;
    assert_eq!(done.status(), 200);
    let p = progress(&w, &id).await;
    assert_eq!(
        (p["completed"].as_i64(), p["pending"].as_i64(), p["state"].as_str()),
        (Some(2), Some(0), Some("completed")),
        "{p}"
    );

    // The audit trail: the launch, each completion, the milestones, the end.
    let trail = actions(&w.app).await;
    for action in [
        "campaign.launch",
        "campaign.launched",
        "campaign.user_completed",
        "campaign.progress",
        "campaign.completed",
        "password.reset",
    ] {
        assert!(trail.iter().any(|a| a == action), "{action} missing from {trail:?}");
    }
    assert_eq!(trail.iter().filter(|a| *a == "campaign.user_completed").count(), 2);
    // Cancelling a finished campaign is a conflict.
    let late = api(
        &w.app,
        "POST",
        &format!("/password-reset-campaigns/{id}/cancel"),
        Some(&w.admin.access_token),
        Some(json!({ "reason": "x" })),
    )
    .await;
    assert_eq!(late.status, 409, "{late:?}");
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_a_cancelled_campaign_sends_no_more_mail() {
    let w = world().await;
    let a = member(&w.app, "vacc-a", &format!("{BLR}/phc-1")).await;
    member(&w.app, "vacc-b", &format!("{MYS}/phc-2")).await;
    w.clock.advance(TimeDelta::seconds(2));
    let dry =
        launch(&w, json!({ "audience": { "roles": ["vaccinator"] }, "reason": "drill", "dry_run": true }))
            .await;
    assert_eq!(dry.status, 200, "{:?}", dry.body);
    assert_eq!(dry.body["targeted"], 2);
    assert_eq!(dry.body["sample"], json!(["vacc-a", "vacc-b"]));
    assert!(!reload(&w.app, &a).await.must_change_password, "a dry run changes nothing");
    let kept = w.app.core.db.run(|c| pramaan_server::store::campaigns::list(c, 10)).await.unwrap();
    assert!(kept.is_empty(), "a dry run leaves no campaign behind: {kept:?}");
    // Everyone, but the administrator launching it keeps their session.
    let everyone =
        launch(&w, json!({ "audience": { "all": true }, "reason": "drill", "dry_run": true })).await;
    assert_eq!(everyone.body["sample"], json!(["vacc-a", "vacc-b"]), "{:?}", everyone.body);
    assert_eq!(worker(&w.app).run_once().await.unwrap().sent, 0);

    // Bad audiences are refused with a clear problem and change nothing.
    for (body, status) in [
        (json!({ "audience": {}, "reason": "x" }), 400),
        (json!({ "audience": { "all": true, "org": BLR }, "reason": "x" }), 400),
        (json!({ "audience": { "roles": ["no_such_role"] }, "reason": "x" }), 400),
        (json!({ "audience": { "org": "in/nowhere" }, "reason": "x" }), 404),
        (json!({ "audience": { "all": true }, "reason": "" }), 400),
        (json!({ "audience": { "all": true }, "reason": "x", "kind": "everything" }), 400),
    ] {
        let a = launch(&w, body.clone()).await;
        assert_eq!(a.status, status, "{body}: {:?}", a.body);
    }
    assert!(!reload(&w.app, &a).await.must_change_password);

    let launched =
        launch(&w, json!({ "audience": { "usernames": ["vacc-a", "vacc-b"] }, "reason": "leak" })).await;
    assert_eq!(launched.status, 201, "{:?}", launched.body);
    let id = launched.body["id"].as_str().unwrap().to_owned();
    let cancel = api(
        &w.app,
        "POST",
        &format!("/password-reset-campaigns/{id}/cancel"),
        Some(&w.admin.access_token),
        Some(json!({ "reason": "sent to the wrong list" })),
    )
    .await;
    assert_eq!(cancel.status, 200, "{cancel:?}");
    assert_eq!(cancel.body["state"], "cancelled");
    assert_eq!(cancel.body["cancelled_by"], "user:nadmin");
    assert_eq!(worker(&w.app).run_once().await.unwrap().sent, 0, "no mail after cancelling");
    assert!(w.sink.received().is_empty());
    let p = progress(&w, &id).await;
    assert_eq!((p["not_sent"].as_i64(), p["notified"].as_i64()), (Some(2), Some(0)), "{p}");
    assert!(reload(&w.app, &a).await.must_change_password, "what was revoked stays revoked");
}

#[tokio::test]
async fn an_onboarding_campaign_gives_imported_accounts_their_first_password() {
    let w = world().await;
    // An imported account: no password, an email; and one with a password, which onboarding
    // leaves alone.
    let (name, now) = (Username::parse("new-vacc").unwrap(), w.app.core.clock.now());
    let unit = pramaan_integration_tests::admin::org(&w.app, &format!("{BLR}/phc-1")).await;
    let fresh = w
        .app
        .core
        .db
        .run(move |c| {
            users::insert(
                c,
                &pramaan_server::domain::NewUser {
                    username: name,
                    display_name: "New Vaccinator".into(),
                    phone: None,
                    email: Some(Email::parse("new-vacc@example.org").unwrap()),
                    org_unit_id: Some(unit),
                    password_hash: None,
                    must_change_password: true,
                },
                now,
            )
        })
        .await
        .unwrap();
    member(&w.app, "old-vacc", &format!("{BLR}/phc-1")).await;
    let launched =
        launch(&w, json!({ "audience": { "org": BLR }, "reason": "new staff", "kind": "onboarding" })).await;
    assert_eq!(launched.status, 201, "{:?}", launched.body);
    assert_eq!(launched.body["targeted"], 1, "only the account without a password");
    assert_eq!(launched.body["kind"], "onboarding");
    assert_eq!(worker(&w.app).run_once().await.unwrap().sent, 1);
    let got = w.sink.received();
    let text = got[0].decoded();
    assert!(text.contains("Welcome to Karnataka Vaccination Programme"), "{text}");
    assert!(text.contains("An account has been made for you: new-vacc"), "{text}");
    let done = complete_reset(&w.app, &w.clock, &got[0].reset_link().unwrap(), None).await;
    assert_eq!(done.status(), 200);
    let u = reload(&w.app, &fresh).await;
    assert!(u.password_changed_at.is_some() && !u.must_change_password);
    let id = launched.body["id"].as_str().unwrap();
    assert_eq!(progress(&w, id).await["state"], "completed");
}

#[tokio::test]
async fn the_cli_starts_a_campaign_and_reports_its_status_as_json() {
    let w = world().await;
    member(&w.app, "vacc-a", &format!("{BLR}/phc-1")).await;
    let no_mail = staff_in(&w.app, "vacc-n", &["vaccinator"], &format!("{BLR}/phc-2")).await;
    let env = env_for(&w.app.db.url, w.app.data_dir.path());
    let dry =
        run_cli(&["campaign", "start", "--org", BLR, "--reason", "drill", "--dry-run", "--json"], &env, "")
            .await;
    assert!(dry.ok(), "{}", dry.stderr);
    let v: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!((v["dry_run"].as_bool(), v["targeted"].as_i64()), (Some(true), Some(2)), "{v}");
    assert!(!reload(&w.app, &no_mail).await.must_change_password);

    let list = w.app.data_dir.path().join("users.txt");
    std::fs::write(&list, "# the leaked list\nvacc-a\nvacc-n\n").unwrap();
    let run = run_cli(
        &["campaign", "start", "--users", list.to_str().unwrap(), "--reason", "leak", "--json"],
        &env,
        "",
    )
    .await;
    assert!(run.ok(), "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["targeted"], 2, "{v}");
    assert_eq!(v["launched_by"], "cli:tester");
    let id = v["id"].as_str().unwrap();
    let status = run_cli(&["campaign", "status", id, "--json"], &env, "").await;
    assert!(status.ok(), "{}", status.stderr);
    let s: Value = serde_json::from_str(&status.stdout).unwrap();
    for key in ["state", "targeted", "notified", "mail_failed", "completed", "pending"] {
        assert!(s.get(key).is_some(), "{key} in {s}");
    }
    assert_eq!(
        (s["state"].as_str(), s["pending"].as_i64(), s["without_email"].as_i64()),
        (Some("running"), Some(2), Some(1)),
        "{s}"
    );
    assert!(reload(&w.app, &no_mail).await.must_change_password);
    let listed = run_cli(&["campaign", "list", "--json"], &env, "").await;
    assert!(listed.ok() && listed.stdout.contains(id), "{}", listed.stdout);
    let cancelled = run_cli(&["campaign", "cancel", id, "--reason", "wrong list", "--json"], &env, "").await;
    assert!(cancelled.ok(), "{}", cancelled.stderr);
    let c: Value = serde_json::from_str(&cancelled.stdout).unwrap();
    assert_eq!(
        (c["state"].as_str(), c["cancelled_by"].as_str()),
        (Some("cancelled"), Some("cli:tester")),
        "{c}"
    );
    let twice = run_cli(&["campaign", "cancel", id, "--reason", "again"], &env, "").await;
    assert!(!twice.ok() && twice.stderr.contains("already ended"), "{}", twice.stderr);
    // A launch that stopped half way (recorded, nobody taken yet) is taken up again.
    let unit = pramaan_integration_tests::admin::org(&w.app, BLR).await.to_string();
    let now = w.app.core.clock.now();
    w.app
        .core
        .db
        .run(move |c| {
            let audience = AudienceFilter { org: Some(BLR.into()), ..Default::default() };
            let new = NewCampaign {
                id: "stopped",
                kind: CampaignKind::Breach,
                reason: "stopped half way",
                audience: &audience,
                org_unit_id: Some(&unit),
                launched_by: "cli:tester",
            };
            pramaan_server::store::campaigns::create(c, &new, now)
        })
        .await
        .unwrap();
    let resumed = run_cli(&["campaign", "resume", "stopped", "--json"], &env, "").await;
    assert!(resumed.ok(), "{}", resumed.stderr);
    let r: Value = serde_json::from_str(&resumed.stdout).unwrap();
    assert_eq!((r["state"].as_str(), r["targeted"].as_i64()), (Some("running"), Some(2)), "{r}");
    let again = run_cli(&["campaign", "resume", "stopped"], &env, "").await;
    assert!(!again.ok() && again.stderr.contains("not launching"), "{}", again.stderr);
    // Refusals: no audience, both --all and a filter, an unknown campaign.
    let none = run_cli(&["campaign", "start", "--reason", "x"], &env, "").await;
    assert!(!none.ok() && none.stderr.contains("audience"), "{}", none.stderr);
    let both = run_cli(&["campaign", "start", "--all", "--org", BLR, "--reason", "x"], &env, "").await;
    assert!(!both.ok());
    let unknown = run_cli(&["campaign", "status", "nope"], &env, "").await;
    assert!(!unknown.ok() && unknown.stderr.contains("no campaign"), "{}", unknown.stderr);
}
