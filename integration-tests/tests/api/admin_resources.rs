//! The admin API's other resources: creating and changing accounts, the organisation tree and
//! the roles, clients (suspend, resume, a new secret), and the audit trail — each inside what
//! the caller's roles allow.

use pramaan_integration_tests::admin::*;
use pramaan_integration_tests::browser::{partner_client, post_form};
use pramaan_integration_tests::two_factor::fixed_clock;
use pramaan_integration_tests::{TestApp, spawn_app_at};
use pramaan_server::clock::FixedClock;
use serde_json::{Value, json};

const BLR: &str = "in/ka/blr";

struct Setup {
    app: TestApp,
    clock: FixedClock,
    console: String,
}

async fn setup() -> Setup {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    org(&app, &format!("{BLR}/phc-1")).await;
    org(&app, "in/ka/mys/phc-2").await;
    let console = console_client(&app).await.id;
    Setup { app, clock, console }
}

fn problem(a: &ApiAnswer, status: u16) {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.content_type, "application/problem+json", "{a:?}");
}

#[tokio::test]
async fn a_district_admin_creates_and_changes_accounts_inside_the_district_only() {
    let s = setup().await;
    staff_in(&s.app, "dadmin-blr", &["district_admin"], BLR).await;
    let admin = first_admin_login(&s.app, &s.clock, &s.console, "dadmin-blr").await;
    let token = Some(admin.access_token.as_str());
    let new = |username: &str, org: &str, roles: Value| json!({ "username": username, "display_name": "Asha Rao", "org_unit": org, "roles": roles });
    let made = api(
        &s.app,
        "POST",
        "/users",
        token,
        Some(new("asha", &format!("{BLR}/phc-1"), json!(["vaccinator"]))),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.body["roles"], json!(["vaccinator"]));
    assert_eq!(
        (made.body["has_password"].as_bool(), made.body["must_change_password"].as_bool()),
        (Some(false), Some(true))
    );
    let id = made.body["id"].as_str().unwrap().to_owned();

    problem(
        &api(&s.app, "POST", "/users", token, Some(new("asha", &format!("{BLR}/phc-1"), json!([])))).await,
        409,
    );
    problem(
        &api(&s.app, "POST", "/users", token, Some(new("ravi", "in/ka/mys/phc-2", json!([])))).await,
        403,
    );
    // A peer's rank: only a state admin makes district admins.
    problem(
        &api(&s.app, "POST", "/users", token, Some(new("ravi", BLR, json!(["district_admin"])))).await,
        403,
    );
    problem(
        &api(&s.app, "POST", "/users", token, Some(new("ravi", BLR, json!(["no_such_role"])))).await,
        403,
    );
    problem(&api(&s.app, "POST", "/users", token, Some(new("Bad Name", BLR, json!([])))).await, 400);
    problem(&api(&s.app, "POST", "/users", token, Some(new("ravi", "in/xx", json!([])))).await, 400);
    problem(&api(&s.app, "POST", "/users", token, Some(json!({ "username": "x" }))).await, 400);

    let path = format!("/users/{id}");
    let renamed = api(
        &s.app,
        "PATCH",
        &path,
        token,
        Some(json!({ "display_name": "Asha R.", "email": "asha@example.org" })),
    )
    .await;
    assert_eq!(
        (renamed.status, renamed.body["display_name"].as_str()),
        (200, Some("Asha R.")),
        "{renamed:?}"
    );
    assert_eq!(renamed.body["email"], "asha@example.org");
    // The email receives reset links: changing it is recorded as changing a way in.
    let filter = pramaan_server::store::audit_events::AuditFilter {
        action: Some("user.update".into()),
        ..Default::default()
    };
    let events =
        s.app.core.db.run(move |c| pramaan_server::store::audit_events::page(c, &filter, 10)).await.unwrap();
    let details: Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(details["factor_channels"], json!(["email"]), "{details}");
    let cleared = api(&s.app, "PATCH", &path, token, Some(json!({ "email": "" }))).await;
    assert_eq!(cleared.body["email"], Value::Null, "{cleared:?}");
    problem(&api(&s.app, "PATCH", &path, token, Some(json!({ "org_unit": "in/ka/mys/phc-2" }))).await, 403);
    let still = api(&s.app, "GET", &path, token, None).await;
    assert_eq!(still.body["org_unit"], format!("{BLR}/phc-1"), "the refused move changed nothing");
    problem(&api(&s.app, "PATCH", &path, token, Some(json!({ "email": "not an email" }))).await, 400);
    org(&s.app, &format!("{BLR}/phc-3")).await;
    let moved = api(&s.app, "PATCH", &path, token, Some(json!({ "org_unit": format!("{BLR}/phc-3") }))).await;
    assert_eq!(moved.body["org_unit"], format!("{BLR}/phc-3"), "{moved:?}");
}

#[tokio::test]
async fn the_tree_and_the_roles_are_read_and_grown_inside_ones_unit() {
    let s = setup().await;
    staff_in(&s.app, "dadmin-blr", &["district_admin"], BLR).await;
    let admin = first_admin_login(&s.app, &s.clock, &s.console, "dadmin-blr").await;
    let token = Some(admin.access_token.as_str());
    let made = api(
        &s.app,
        "POST",
        "/org-units",
        token,
        Some(json!({ "path": format!("{BLR}/phc-9"), "name": "PHC 9", "kind": "facility" })),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    problem(
        &api(
            &s.app,
            "POST",
            "/org-units",
            token,
            Some(json!({ "path": format!("{BLR}/phc-9"), "name": "again", "kind": "facility" })),
        )
        .await,
        409,
    );
    problem(
        &api(
            &s.app,
            "POST",
            "/org-units",
            token,
            Some(json!({ "path": "in/ka/mys/phc-9", "name": "x", "kind": "facility" })),
        )
        .await,
        403,
    );
    problem(
        &api(
            &s.app,
            "POST",
            "/org-units",
            token,
            Some(json!({ "path": format!("{BLR}/nope/phc"), "name": "x", "kind": "facility" })),
        )
        .await,
        404,
    );
    let listed = api(&s.app, "GET", "/org-units", token, None).await;
    let paths: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|u| u["path"].as_str().unwrap()).collect();
    assert_eq!(paths, [BLR, "in/ka/blr/phc-1", "in/ka/blr/phc-9"], "{listed:?}");
    problem(&api(&s.app, "GET", "/org-units?under=in/ka", token, None).await, 403);
    let roles = api(&s.app, "GET", "/roles", token, None).await;
    assert_eq!(roles.status, 200, "{roles:?}");
    let district =
        roles.body["items"].as_array().unwrap().iter().find(|r| r["name"] == "district_admin").unwrap();
    assert_eq!(district["includes"], json!(["facility_admin", "helpdesk", "vaccinator", "verifier"]));
}

#[tokio::test]
async fn a_national_admin_suspends_resumes_and_rekeys_a_client_and_reads_the_trail() {
    let s = setup().await;
    staff_in(&s.app, "nadmin", &["national_admin"], "in").await;
    staff_in(&s.app, "dadmin-blr", &["district_admin"], BLR).await;
    let partner = partner_client(&s.app, "partner").await;
    let secret = partner.secret.clone().unwrap();
    let admin = first_admin_login(&s.app, &s.clock, &s.console, "nadmin").await;
    let token = Some(admin.access_token.as_str());
    let listed = api(&s.app, "GET", "/clients?category=private", token, None).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert!(listed.body.to_string().find("secret_digest").is_none(), "never a digest");
    let path = format!("/clients/{}", partner.id);
    let one = api(&s.app, "GET", &path, token, None).await;
    assert_eq!((one.body["status"].as_str(), one.body["has_secret"].as_bool()), (Some("active"), Some(true)));
    problem(&api(&s.app, "GET", "/clients/no-such-client", token, None).await, 404);
    problem(
        &api(&s.app, "POST", &format!("{path}/suspend"), token, Some(json!({ "reason": "" }))).await,
        400,
    );

    let token_request = |secret: String| {
        let (app, id) = (&s.app, partner.id.clone());
        async move {
            post_form(app, "/token", Some((&id, &secret)), &[("grant_type", "client_credentials")]).await
        }
    };
    assert_eq!(token_request(secret.clone()).await.0, 200);
    let suspended =
        api(&s.app, "POST", &format!("{path}/suspend"), token, Some(json!({ "reason": "incident 42" })))
            .await;
    assert_eq!(suspended.body["status"], "suspended", "{suspended:?}");
    let (status, body) = token_request(secret.clone()).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    let resumed =
        api(&s.app, "POST", &format!("{path}/resume"), token, Some(json!({ "reason": "resolved" }))).await;
    assert_eq!(resumed.body["status"], "active", "{resumed:?}");
    let rekeyed = api(&s.app, "POST", &format!("{path}/secret"), token, None).await;
    assert_eq!(rekeyed.status, 200, "{rekeyed:?}");
    let new_secret = rekeyed.body["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(token_request(secret).await.0, 401, "the old secret stops at once");
    assert_eq!(token_request(new_secret).await.0, 200);
    // Not the client one's own token comes from.
    problem(
        &api(
            &s.app,
            "POST",
            &format!("/clients/{}/suspend", s.console),
            token,
            Some(json!({ "reason": "x" })),
        )
        .await,
        409,
    );
    // The console is public: it has no secret to rotate.
    problem(&api(&s.app, "POST", &format!("/clients/{}/secret", s.console), token, None).await, 409);

    // The trail: the suspension with the decision that allowed it, one page at a time.
    let trail = api(
        &s.app,
        "GET",
        &format!("/audit-events?action=client.suspend&target=client:{}", partner.id),
        token,
        None,
    )
    .await;
    assert_eq!(trail.status, 200, "{trail:?}");
    let items = trail.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{trail:?}");
    assert_eq!(items[0]["actor"], "user:nadmin");
    assert_eq!(items[0]["details"]["reason"], "incident 42");
    assert!(items[0]["details"]["decision"].as_str().unwrap().contains("national-admin-everything"));
    let mut seen = 0;
    let mut next = "/audit-events?limit=2".to_owned();
    loop {
        let page = api(&s.app, "GET", &next, token, None).await;
        assert_eq!(page.status, 200, "{page:?}");
        seen += page.body["items"].as_array().unwrap().len();
        match page.body["next_cursor"].as_str() {
            Some(c) => next = format!("/audit-events?limit=2&cursor={c}"),
            None => break,
        }
    }
    let all = api(&s.app, "GET", "/audit-events?limit=500", token, None).await;
    assert_eq!(seen, all.body["items"].as_array().unwrap().len());
    for bad in [
        "/audit-events?limit=0",
        "/audit-events?cursor=x",
        "/audit-events?outcome=maybe",
        "/audit-events?since=yesterday",
    ] {
        problem(&api(&s.app, "GET", bad, token, None).await, 400);
    }

    // A district admin has no client or audit scope at all.
    let district = first_admin_login(&s.app, &s.clock, &s.console, "dadmin-blr").await;
    let refused = api(&s.app, "GET", "/clients", Some(&district.access_token), None).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.challenge.unwrap().contains("insufficient_scope"));
}

#[tokio::test]
async fn an_import_is_all_or_nothing_and_every_row_is_asked_of_the_policies() {
    let s = setup().await;
    staff_in(&s.app, "dadmin-blr", &["district_admin"], BLR).await;
    let admin = first_admin_login(&s.app, &s.clock, &s.console, "dadmin-blr").await;
    let token = admin.access_token.as_str();
    let header = "username,display_name,phone,email,org_unit,roles\n";
    let count = |app: &TestApp| {
        let core = app.core.clone();
        async move { core.db.run(pramaan_server::store::users::count).await.unwrap() }
    };
    let before = count(&s.app).await;
    // One row outside the district, one with a role above the importer's: nothing lands.
    let csv = format!(
        "{header}nurse-1,Nurse One,,,{BLR}/phc-1,vaccinator\nnurse-2,Nurse Two,,,in/ka/mys/phc-2,vaccinator\nboss,Boss,,,{BLR},state_admin\n"
    );
    let refused = api_csv(&s.app, "/users/import", token, &csv).await;
    problem(&refused, 403);
    let lines: Vec<u64> =
        refused.body["rows"].as_array().unwrap().iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 4], "{refused:?}");
    assert_eq!(count(&s.app).await, before, "nothing was imported");
    let malformed = api_csv(&s.app, "/users/import", token, &format!("{header}Bad Name,x,,,{BLR},\n")).await;
    problem(&malformed, 400);
    assert_eq!(malformed.body["rows"][0]["line"], 2);
    let wrong_type = api(&s.app, "POST", "/users/import", Some(token), Some(json!({ "csv": "x" }))).await;
    problem(&wrong_type, 415);

    let csv = format!(
        "{header}nurse-1,Nurse One,,,{BLR}/phc-1,vaccinator\nnurse-2,Nurse Two,,nurse2@example.org,{BLR}/phc-1,vaccinator;verifier\n"
    );
    let done = api_csv(&s.app, "/users/import", token, &csv).await;
    assert_eq!((done.status, done.body["imported"].as_u64()), (200, Some(2)), "{done:?}");
    assert_eq!(count(&s.app).await, before + 2);
    let filter = pramaan_server::store::audit_events::AuditFilter {
        action: Some("user.import".into()),
        ..Default::default()
    };
    let events =
        s.app.core.db.run(move |c| pramaan_server::store::audit_events::page(c, &filter, 10)).await.unwrap();
    assert_eq!(events.len(), 1);
    let details: Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(details["usernames"], json!(["nurse-1", "nurse-2"]));
    assert_eq!((details["imported"].as_u64(), details["role_grants"].as_u64()), (Some(2), Some(3)));
    assert_eq!(details["policy_version"], s.app.core.policy.version());
    let again = api_csv(&s.app, "/users/import", token, &csv).await;
    problem(&again, 400);
    assert!(again.body["rows"][0]["reason"].as_str().unwrap().contains("taken"), "{again:?}");
}
