//! The admin REST API: administrators sign in through Pramaan's own console (password, then
//! the authenticator app) and call `/admin/api/v1` with the access token. Every action asks the
//! role policies; refusals are RFC 9457 problems and are audited.

use chrono::TimeDelta;
use pramaan_integration_tests::admin::*;
use pramaan_integration_tests::browser::post_form;
use pramaan_integration_tests::two_factor::fixed_clock;
use pramaan_integration_tests::{TestApp, spawn_app_at};
use pramaan_server::clock::FixedClock;
use pramaan_server::domain::{User, UserStatus};
use pramaan_server::store::{campaigns, roles, users};
use serde_json::{Value, json};

const BLR: &str = "in/ka/blr";
const MYS: &str = "in/ka/mys";

struct World {
    app: TestApp,
    clock: FixedClock,
    console: String,
    vacc_blr: User,
    vacc_mys: User,
    /// A campaign over BLR (recorded, nobody flagged).
    campaign: String,
}

/// Two districts of one state, a vaccinator in a facility of each, the console.
async fn world() -> World {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let vacc_blr = staff_in(&app, "vacc-blr", &["vaccinator"], &format!("{BLR}/phc-1")).await;
    let vacc_mys = staff_in(&app, "vacc-mys", &["vaccinator"], &format!("{MYS}/phc-2")).await;
    let console = console_client(&app).await.id;
    let unit = pramaan_integration_tests::admin::org(&app, BLR).await.to_string();
    let now = app.core.clock.now();
    app.core
        .db
        .run(move |c| {
            let audience = campaigns::AudienceFilter { org: Some(BLR.into()), ..Default::default() };
            let new = campaigns::NewCampaign {
                id: "route-check",
                kind: campaigns::CampaignKind::Breach,
                reason: "route check",
                audience: &audience,
                org_unit_id: Some(&unit),
                launched_by: "cli:test",
            };
            campaigns::create(c, &new, now)
        })
        .await
        .unwrap();
    World { app, clock, console, vacc_blr, vacc_mys, campaign: "route-check".into() }
}

#[tokio::test]
async fn a_district_admin_acts_inside_their_district_and_is_refused_outside_it() {
    let w = world().await;
    staff_in(&w.app, "dadmin-blr", &["district_admin"], BLR).await;
    let admin = first_admin_login(&w.app, &w.clock, &w.console, "dadmin-blr").await;
    // The policies gave a district admin admin.users (and not the national scopes it asked for).
    assert!(admin.scope.split(' ').any(|s| s == "admin.users"), "{}", admin.scope);
    assert!(!admin.scope.split(' ').any(|s| s == "admin.clients"), "{}", admin.scope);
    let token = Some(admin.access_token.as_str());

    let refused = api(&w.app, "POST", &format!("/users/{}/disable", w.vacc_mys.id), token, None).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(is_problem(&refused), "{refused:?}");
    assert_eq!(refused.body["type"], "urn:pramaan:problem:forbidden-by-policy");
    assert_eq!(refused.body["action"], "user.disable");
    assert_eq!(status_of(&w.app, &w.vacc_mys).await, UserStatus::Active, "nothing changed");
    let denied = audit(&w.app, "admin.denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].actor, "user:dadmin-blr");
    assert_eq!(denied[0].target.as_deref(), Some(format!("user:{}", w.vacc_mys.id).as_str()));
    assert_eq!(denied[0].outcome, "denied");
    assert_eq!(details(&denied[0])["action"], "user.disable");
    assert_eq!(details(&denied[0])["decision"], "no policy permits it");

    let done = api(
        &w.app,
        "POST",
        &format!("/users/{}/disable", w.vacc_blr.id),
        token,
        Some(json!({ "reason": "left the programme" })),
    )
    .await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.body["status"], "disabled");
    assert_eq!(done.body["org_unit"], format!("{BLR}/phc-1"));
    assert_eq!(status_of(&w.app, &w.vacc_blr).await, UserStatus::Disabled);
    let disabled = audit(&w.app, "user.disable").await;
    assert_eq!(disabled.len(), 1);
    let d = details(&disabled[0]);
    // district_admin includes facility_admin (roles.json): both permit it.
    assert_eq!(d["decision"], "permitted by district-admin-accounts, facility-admin-accounts");
    assert_eq!(d["reason"], "left the programme");
    assert_eq!(d["policy_version"], w.app.core.policy.version());

    // Reading and listing follow the same line.
    let read = api(&w.app, "GET", &format!("/users/{}", w.vacc_blr.id), token, None).await;
    assert_eq!((read.status, read.body["username"].as_str()), (200, Some("vacc-blr")));
    let other = api(&w.app, "GET", &format!("/users/{}", w.vacc_mys.id), token, None).await;
    assert_eq!(other.status, 403);
    let listed = api(&w.app, "GET", "/users", token, None).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let names: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["dadmin-blr", "vacc-blr"]);
    let state = api(&w.app, "GET", "/users?org=in/ka", token, None).await;
    assert_eq!(state.status, 403, "the state is above the district: {state:?}");
}

#[tokio::test]
async fn listing_filters_and_walks_pages_with_a_cursor() {
    let w = world().await;
    staff_in(&w.app, "nadmin", &["national_admin"], "in").await;
    for i in 0..5 {
        staff_in(&w.app, &format!("field-{i}"), &["verifier"], &format!("{BLR}/phc-1")).await;
    }
    let admin = first_admin_login(&w.app, &w.clock, &w.console, "nadmin").await;
    let token = Some(admin.access_token.as_str());
    let mut seen = Vec::new();
    let mut path = "/users?org=in/ka/blr&role=verifier&limit=2".to_owned();
    loop {
        let page = api(&w.app, "GET", &path, token, None).await;
        assert_eq!(page.status, 200, "{page:?}");
        for u in page.body["items"].as_array().unwrap() {
            assert_eq!(u["roles"], json!(["verifier"]));
            seen.push(u["username"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/users?org=in/ka/blr&role=verifier&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["field-0", "field-1", "field-2", "field-3", "field-4"]);
    let text = api(&w.app, "GET", "/users?q=VACC&status=active", token, None).await;
    let names: Vec<&str> =
        text.body["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["vacc-blr", "vacc-mys"]);
    for (bad, why) in [
        ("/users?limit=0", "limit"),
        ("/users?limit=201", "limit"),
        ("/users?status=sleeping", "status"),
        ("/users?cursor=%%%", "cursor"),
        ("/users?cursor=bm90IGEgdXNlcm5hbWUh", "cursor"),
        ("/users?org=not%20a%20path", "org"),
        ("/users?colour=blue", "unknown parameter"),
    ] {
        let a = api(&w.app, "GET", bad, token, None).await;
        assert_eq!(a.status, 400, "{why}: {a:?}");
        assert!(is_problem(&a), "{why}: {a:?}");
    }
    let missing = api(&w.app, "GET", "/users?org=in/xx", token, None).await;
    assert_eq!(missing.status, 404, "{missing:?}");
}

#[tokio::test]
async fn the_last_national_admin_can_be_neither_disabled_nor_demoted() {
    let w = world().await;
    let first = staff_in(&w.app, "nadmin-1", &["national_admin"], "in").await;
    let second = staff_in(&w.app, "nadmin-2", &[], "in").await;
    let admin = first_admin_login(&w.app, &w.clock, &w.console, "nadmin-1").await;
    let token = Some(admin.access_token.as_str());

    let disable = api(&w.app, "POST", &format!("/users/{}/disable", first.id), token, None).await;
    assert_eq!(disable.status, 409, "{disable:?}");
    assert!(is_problem(&disable));
    assert!(disable.body["detail"].as_str().unwrap().contains("last active national_admin"), "{disable:?}");
    let demote =
        api(&w.app, "DELETE", &format!("/users/{}/roles/national_admin", first.id), token, None).await;
    assert_eq!(demote.status, 409, "{demote:?}");
    assert_eq!(status_of(&w.app, &first).await, UserStatus::Active);
    let id = first.id.clone();
    let held = w.app.core.db.run(move |c| roles::roles_of(c, &id)).await.unwrap();
    assert_eq!(held.len(), 1, "still a national admin");
    assert!(audit(&w.app, "user.disable").await.is_empty() && audit(&w.app, "role.revoke").await.is_empty());

    // With a second national admin, the first may step down.
    let grant = api(&w.app, "PUT", &format!("/users/{}/roles/national_admin", second.id), token, None).await;
    assert_eq!(grant.status, 200, "{grant:?}");
    assert_eq!(grant.body["roles"], json!(["national_admin"]));
    let demote =
        api(&w.app, "DELETE", &format!("/users/{}/roles/national_admin", first.id), token, None).await;
    assert_eq!(demote.status, 200, "{demote:?}");
    assert_eq!(demote.body["roles"], json!([]));
    // Now the second is the last one, and cannot disable or demote itself either.
    w.clock.advance(TimeDelta::seconds(30));
    let last = first_admin_login(&w.app, &w.clock, &w.console, "nadmin-2").await;
    let token = Some(last.access_token.as_str());
    let ask = api(&w.app, "POST", &format!("/users/{}/disable", second.id), token, None).await;
    assert_eq!(ask.status, 409, "{ask:?}");
    let ask = api(&w.app, "DELETE", &format!("/users/{}/roles/national_admin", second.id), token, None).await;
    assert_eq!(ask.status, 409, "{ask:?}");
    assert_eq!(status_of(&w.app, &second).await, UserStatus::Active);
}

#[tokio::test]
async fn an_administrator_is_administered_only_from_a_rank_above() {
    let w = world().await;
    let district = staff_in(&w.app, "dadmin-blr", &["district_admin"], BLR).await;
    staff_in(&w.app, "helpdesk-blr", &["helpdesk"], BLR).await;
    staff_in(&w.app, "sadmin-ka", &["state_admin"], "in/ka").await;
    let victim = first_admin_login(&w.app, &w.clock, &w.console, "dadmin-blr").await;
    let own = format!("/users/{}", district.id);
    assert_eq!(api(&w.app, "GET", &own, Some(&victim.access_token), None).await.status, 200);
    let helpdesk = first_admin_login(&w.app, &w.clock, &w.console, "helpdesk-blr").await;
    let path = format!("/users/{}/factors/reset", district.id);
    let body = Some(json!({ "reason": "lost phone" }));
    let refused = api(&w.app, "POST", &path, Some(&helpdesk.access_token), body.clone()).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.body["policies"], json!(["administer-only-junior-accounts"]));
    // The helpdesk still resets field staff.
    let field = format!("/users/{}/factors/reset", w.vacc_blr.id);
    let done = api(&w.app, "POST", &field, Some(&helpdesk.access_token), body.clone()).await;
    assert_eq!(done.status, 200, "{done:?}");
    let state = first_admin_login(&w.app, &w.clock, &w.console, "sadmin-ka").await;
    let done = api(&w.app, "POST", &path, Some(&state.access_token), body).await;
    assert_eq!((done.status, done.body["cleared"].as_bool()), (200, Some(true)), "{done:?}");
    // The reset ended the district admin's logins and tokens with the app.
    let dead = api(&w.app, "GET", &own, Some(&victim.access_token), None).await;
    assert_eq!(dead.status, 401, "{dead:?}");
    let resets = audit(&w.app, "mfa.reset").await;
    assert_eq!(resets.len(), 2);
    // A state admin holds the roles below it (roles.json), whose policies agree.
    let decision = details(&resets[1])["decision"].as_str().unwrap().to_owned();
    assert!(decision.starts_with("permitted by") && decision.contains("state-admin-accounts"), "{decision}");
}

#[tokio::test]
async fn nobody_grants_a_role_they_do_not_hold() {
    let w = world().await;
    staff_in(&w.app, "dadmin-blr", &["district_admin"], BLR).await;
    let helper = staff_in(&w.app, "new-hire", &[], &format!("{BLR}/phc-1")).await;
    let admin = first_admin_login(&w.app, &w.clock, &w.console, "dadmin-blr").await;
    let token = Some(admin.access_token.as_str());
    let refused = api(&w.app, "PUT", &format!("/users/{}/roles/state_admin", helper.id), token, None).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.body["policies"], json!(["grant-only-held-roles"]));
    let granted =
        api(&w.app, "PUT", &format!("/users/{}/roles/district_admin", helper.id), token, None).await;
    assert_eq!(granted.status, 200, "{granted:?}");
    let unknown =
        api(&w.app, "PUT", &format!("/users/{}/roles/Not%20A%20Role", helper.id), token, None).await;
    assert_eq!(unknown.status, 400, "{unknown:?}");
}

#[tokio::test]
async fn a_sensitive_action_with_a_thirty_minute_old_login_asks_for_a_step_up() {
    let w = world().await;
    staff_in(&w.app, "nadmin", &["national_admin"], "in").await;
    let admin = first_admin_login(&w.app, &w.clock, &w.console, "nadmin").await;
    w.clock.advance(TimeDelta::minutes(30));
    // A fresh access token from the same (now 30-minute-old) login.
    let (status, refreshed) = post_form(
        &w.app,
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &w.console),
            ("refresh_token", &admin.refresh_token),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let old = refreshed["access_token"].as_str().unwrap();
    let path = format!("/users/{}/disable", w.vacc_blr.id);
    let asked = api(&w.app, "POST", &path, Some(old), None).await;
    assert_eq!(asked.status, 401, "{asked:?}");
    assert!(is_problem(&asked), "{asked:?}");
    assert_eq!(asked.body["type"], "urn:pramaan:problem:step-up-required");
    assert_eq!(asked.body["max_age"], 600);
    assert_eq!(asked.body["acr_values"], "urn:pramaan:acr:mfa");
    let detail = asked.body["detail"].as_str().unwrap();
    assert!(detail.contains("max_age=600") && detail.contains("10 minutes"), "{detail}");
    let challenge = asked.challenge.unwrap();
    assert!(challenge.contains(r#"error="insufficient_user_authentication""#), "RFC 9470: {challenge}");
    assert!(challenge.contains("max_age=600"), "{challenge}");
    assert_eq!(status_of(&w.app, &w.vacc_blr).await, UserStatus::Active);
    assert_eq!(details(&audit(&w.app, "admin.denied").await[0])["step_up"], true);
    // Reading is not sensitive: the old login still serves.
    let read = api(&w.app, "GET", &format!("/users/{}", w.vacc_blr.id), Some(old), None).await;
    assert_eq!(read.status, 200, "{read:?}");

    // Stepping up: a new sign-in with the app, and the action goes through.
    let fresh = admin_login(&w.app, &w.clock, &w.console, "nadmin", &admin.key).await;
    let done = api(&w.app, "POST", &path, Some(&fresh.access_token), None).await;
    assert_eq!(done.status, 200, "{done:?}");

    // Outside the admin's reach, an old login is simply refused: no fresh sign-in would help.
    staff_in(&w.app, "dadmin-mys", &["district_admin"], MYS).await;
    let other = first_admin_login(&w.app, &w.clock, &w.console, "dadmin-mys").await;
    w.clock.advance(TimeDelta::minutes(30));
    let (_, stale) = post_form(
        &w.app,
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &w.console),
            ("refresh_token", &other.refresh_token),
        ],
    )
    .await;
    let outside = api(
        &w.app,
        "POST",
        &format!("/users/{}/disable", w.vacc_blr.id),
        stale["access_token"].as_str(),
        None,
    )
    .await;
    assert_eq!(outside.status, 403, "{outside:?}");
    assert_eq!(outside.body["type"], "urn:pramaan:problem:forbidden-by-policy");
}

/// The path and body that call route `r` on `vacc_blr` (and its district, and the console
/// client), so that the request reaches the route's decision.
fn call_for(w: &World, r: &pramaan_server::admin::Route) -> (String, Option<Value>) {
    let id = if r.path.starts_with("/clients") {
        w.console.as_str()
    } else if r.path.starts_with("/password-reset-campaigns") {
        w.campaign.as_str()
    } else {
        w.vacc_blr.id.as_str()
    };
    let path = r.path.replace("{id}", id).replace("{role}", "vaccinator");
    let path = match r.path {
        "/users" if r.method == "GET" => format!("{path}?org={BLR}"),
        "/org-units" if r.method == "GET" => format!("{path}?under={BLR}"),
        _ => path,
    };
    let body = match (r.method, r.path) {
        ("GET", _) => None,
        (_, p) if p.starts_with("/policy") => {
            Some(json!({ "files": pramaan_server::policy::builtin_sources(), "reason": "route check" }))
        }
        ("POST", "/users") => Some(json!({
            "username": "route-check", "display_name": "Route check", "org_unit": format!("{BLR}/phc-1"), "roles": []
        })),
        ("PATCH", _) => Some(json!({ "display_name": "Route check" })),
        ("POST", "/clients/suspensions" | "/clients/resumptions") => {
            Some(json!({ "all": true, "reason": "route check" }))
        }
        ("POST", "/password-reset-campaigns") => {
            Some(json!({ "audience": { "org": BLR }, "reason": "route check" }))
        }
        ("POST", "/org-units") => {
            Some(json!({ "path": format!("{BLR}/phc-9"), "name": "PHC 9", "kind": "facility" }))
        }
        _ => Some(json!({ "reason": "route check" })),
    };
    (path, body)
}

/// Calls each admin route `which` selects as `token` and expects each refused by the policies
/// (403 naming the route's action), each refusal audited, and nothing changed.
async fn every_route_refused(w: &World, token: &str, which: impl Fn(&pramaan_server::admin::Route) -> bool) {
    let before = audit(&w.app, "admin.denied").await.len();
    let mut called = 0;
    for r in pramaan_server::admin::ROUTES.iter().filter(|r| which(r)) {
        let (path, body) = call_for(w, r);
        let a = if r.path == "/users/import" {
            let csv = format!(
                "username,display_name,phone,email,org_unit,roles\nroute-check,Route check,,,{BLR}/phc-1,\n"
            );
            api_csv(&w.app, &path, token, &csv).await
        } else {
            api(&w.app, r.method, &path, Some(token), body).await
        };
        assert_eq!(a.status, 403, "{} {}: {a:?}", r.method, r.path);
        assert!(is_problem(&a), "{} {}: {a:?}", r.method, r.path);
        assert_eq!(a.body["action"], r.act.name(), "{} {}", r.method, r.path);
        called += 1;
    }
    assert!(called > 0);
    let denied = audit(&w.app, "admin.denied").await;
    assert_eq!(denied.len() - before, called, "each refusal is audited");
    assert_eq!(status_of(&w.app, &w.vacc_blr).await, UserStatus::Active, "nothing changed");
    assert!(!users_named(&w.app, "vacc-blr").await.must_change_password, "no campaign flagged anyone");
    let id = w.vacc_blr.id.clone();
    let held = w.app.core.db.run(move |c| roles::roles_of(c, &id)).await.unwrap();
    assert_eq!(held.len(), 1, "the roles are unchanged");
    assert_eq!(users_named(&w.app, "vacc-blr").await.display_name, "vacc-blr (test)");
    let name = pramaan_server::domain::Username::parse("route-check").unwrap();
    let none = w.app.core.db.run(move |c| users::find_by_username(c, &name)).await.unwrap();
    assert!(none.is_none(), "no account was created");
}

#[tokio::test]
async fn every_admin_route_is_behind_a_policy_decision() {
    let w = world().await;
    // An administrator of the other district: the scope is right, the policies say no.
    staff_in(&w.app, "dadmin-mys", &["district_admin"], MYS).await;
    let admin = first_admin_login(&w.app, &w.clock, &w.console, "dadmin-mys").await;
    // Everything it would do to the other district: accounts, lists, units.
    every_route_refused(&w, &admin.access_token, |r| {
        r.scope == pramaan_server::admin::SCOPE_USERS && r.path != "/roles"
    })
    .await;
    // A national administrator's token, with every admin scope, after the role was taken away:
    // the roles are read at each request, whatever the token says.
    let demoted = staff_in(&w.app, "nadmin", &["national_admin"], "in").await;
    let national = first_admin_login(&w.app, &w.clock, &w.console, "nadmin").await;
    assert!(national.scope.contains("admin.policy"), "{}", national.scope);
    let (id, role) = (demoted.id.clone(), pramaan_server::domain::RoleName::parse("national_admin").unwrap());
    w.app.core.db.run(move |c| roles::remove(c, &id, &role)).await.unwrap();
    every_route_refused(&w, &national.access_token, |_| true).await;
}

#[tokio::test]
async fn tokens_that_are_missing_wrong_or_without_the_scope_are_refused() {
    let w = world().await;
    let path = format!("/users/{}", w.vacc_blr.id);
    let none = api(&w.app, "GET", &path, None, None).await;
    assert_eq!(none.status, 401);
    assert!(is_problem(&none));
    assert_eq!(none.challenge.as_deref(), Some(r#"Bearer realm="pramaan""#));
    let garbage = api(&w.app, "GET", &path, Some("not-a-token"), None).await;
    assert_eq!(garbage.status, 401);
    assert!(garbage.challenge.unwrap().contains(r#"error="invalid_token""#));
    let basic = w
        .app
        .client
        .get(format!("{}/admin/api/v1{path}", w.app.address))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 400);

    // A vaccinator's token through the console carries no admin scope.
    let v = first_admin_login(&w.app, &w.clock, &w.console, "vacc-blr").await;
    assert!(!v.scope.contains("admin."), "{}", v.scope);
    let scoped = api(&w.app, "GET", &path, Some(&v.access_token), None).await;
    assert_eq!(scoped.status, 403, "{scoped:?}");
    assert!(scoped.challenge.unwrap().contains(r#"error="insufficient_scope""#));

    // An administrator whose account is disabled afterwards: the token dies with it.
    staff_in(&w.app, "nadmin", &["national_admin"], "in").await;
    staff_in(&w.app, "nadmin-2", &["national_admin"], "in").await;
    let n = first_admin_login(&w.app, &w.clock, &w.console, "nadmin").await;
    let ok = api(&w.app, "GET", &path, Some(&n.access_token), None).await;
    assert_eq!(ok.status, 200);
    // Not one's own factors, through the API (the account page does that, proving the old app).
    let me = users_named(&w.app, "nadmin").await;
    let own_path = format!("/users/{}/factors/reset", me.id);
    let own = api(&w.app, "POST", &own_path, Some(&n.access_token), Some(json!({ "reason": "x" }))).await;
    assert_eq!((own.status, own.body["policies"].clone()), (403, json!(["not-on-oneself"])), "{own:?}");
    let unknown = api(&w.app, "GET", "/users/no-such-id", Some(&n.access_token), None).await;
    assert_eq!(unknown.status, 404);
    assert!(is_problem(&unknown));
    let nowhere = api(&w.app, "GET", "/nothing-here", Some(&n.access_token), None).await;
    assert_eq!(nowhere.status, 404);
    assert!(is_problem(&nowhere));
    let malformed = w
        .app
        .client
        .post(format!("{}/admin/api/v1/users/{}/factors/reset", w.app.address, w.vacc_blr.id))
        .bearer_auth(&n.access_token)
        .header("content-type", "application/json")
        .body("{\"reason\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let missing_reason =
        api(&w.app, "POST", &format!("/users/{}/factors/reset", w.vacc_blr.id), Some(&n.access_token), None)
            .await;
    assert_eq!(missing_reason.status, 400, "{missing_reason:?}");
    // The administrator's account is disabled by another: the token dies with it.
    let other = first_admin_login(&w.app, &w.clock, &w.console, "nadmin-2").await;
    let nadmin = users_named(&w.app, "nadmin").await;
    let off =
        api(&w.app, "POST", &format!("/users/{}/disable", nadmin.id), Some(&other.access_token), None).await;
    assert_eq!(off.status, 200, "{off:?}");
    let dead = api(&w.app, "GET", &path, Some(&n.access_token), None).await;
    assert_eq!(dead.status, 401, "{dead:?}");
}

async fn users_named(app: &TestApp, name: &str) -> User {
    let name = pramaan_server::domain::Username::parse(name).unwrap();
    app.core.db.run(move |c| users::find_by_username(c, &name)).await.unwrap().unwrap()
}

#[tokio::test]
async fn the_openapi_document_is_served_and_names_every_route() {
    let w = world().await;
    let resp = w.app.get("/admin/api/v1/openapi.json").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for r in pramaan_server::admin::ROUTES {
        assert!(doc["paths"][r.path][r.method.to_lowercase()].is_object(), "{} {}", r.method, r.path);
    }
}
