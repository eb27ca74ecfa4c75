//! Reloading the role policies while servers run: from the CLI, the admin API and SIGHUP. A
//! set that checks reaches every instance sharing the database within a second or two; a set
//! that does not is refused with its file, line and reason, and nothing changes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use pramaan_integration_tests::admin::{api, console_client, first_admin_login, staff_in};
use pramaan_integration_tests::cli::{env_for, run_cli};
use pramaan_integration_tests::two_factor::fixed_clock;
use pramaan_integration_tests::{TestApp, spawn_app_at};
use pramaan_server::domain::{ClientCategory, Scope};
use pramaan_server::policy::{ClientFacts, PolicyEngine, builtin_sources};
use pramaan_server::store::{audit_events, policy_sets};
use serde_json::{Value, json};

/// A policy that lets vaccinators write the registry (the shipped set does not).
const EXTRA: &str = "@id(\"vaccinators-write\")\npermit (principal in Pramaan::Role::\"vaccinator\", \
                     action == Pramaan::Action::\"scope.user\", resource == Pramaan::Scope::\"registry.write\");\n";
const BROKEN: &str =
    "// a comment\n@id(\"broken\")\npermit (principal, action, resource)\nwhen { principal.active && };\n";

fn write_set(dir: &Path, extra: Option<(&str, &str)>) {
    for (name, text) in builtin_sources() {
        std::fs::write(dir.join(name), text).unwrap();
    }
    if let Some((name, text)) = extra {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

async fn stored_sets(app: &TestApp) -> i64 {
    app.core.db.run(policy_sets::latest_seq).await.unwrap().unwrap_or(0)
}

/// Waits until `engine` runs `version`; returns how long it took.
async fn until_running(engine: &PolicyEngine, version: &str) -> Duration {
    let start = Instant::now();
    while engine.version() != version {
        assert!(start.elapsed() < Duration::from_secs(5), "still {} instead of {version}", engine.version());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

fn vaccinator_may_write(engine: &PolicyEngine) -> bool {
    let person = pramaan_server::policy::Person {
        id: pramaan_server::domain::UserId::from_string("v".into()),
        username: "v".into(),
        active: true,
        roles: vec![pramaan_server::domain::RoleName::parse("vaccinator").unwrap()],
        org: Vec::new(),
    };
    let app = ClientFacts { id: "field-app", category: ClientCategory::Government, first_party: true };
    engine.user_scope(&person, app, &Scope::parse("registry.write").unwrap()).allowed
}

#[tokio::test]
async fn a_set_reloaded_from_the_cli_reaches_every_instance_and_a_broken_one_changes_nothing() {
    let app = spawn_app_at(fixed_clock(), |_| {}).await;
    let sibling = app.spawn_sibling().await;
    let env = env_for(&app.db.url, app.data_dir.path());
    let before = app.core.policy.version();
    assert!(!vaccinator_may_write(&app.core.policy));

    let broken = tempfile::tempdir().unwrap();
    write_set(broken.path(), Some(("broken.cedar", BROKEN)));
    let dir = broken.path().to_str().unwrap();
    let run = run_cli(&["policy", "reload", "--dir", dir, "--reason", "try"], &env, "").await;
    assert!(!run.ok());
    assert!(run.stderr.contains("broken.cedar:4:"), "file and line: {}", run.stderr);
    assert!(run.stderr.contains("nothing was loaded"), "{}", run.stderr);
    assert_eq!(stored_sets(&app).await, 0);
    let missing_reason = run_cli(&["policy", "reload", "--dir", dir], &env, "").await;
    assert!(!missing_reason.ok());

    let good = tempfile::tempdir().unwrap();
    write_set(good.path(), Some(("extra.cedar", EXTRA)));
    let dir = good.path().to_str().unwrap();
    let run =
        run_cli(&["policy", "reload", "--dir", dir, "--reason", "vaccinators write", "--json"], &env, "")
            .await;
    assert!(run.ok(), "{}", run.stderr);
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    let version = out["version"].as_str().unwrap().to_owned();
    assert_ne!(version, before);
    let took_a = until_running(&app.core.policy, &version).await;
    let took_b = until_running(&sibling.core.policy, &version).await;
    println!("reload reached instance A in {took_a:?}, B in {took_b:?}");
    assert!(vaccinator_may_write(&app.core.policy) && vaccinator_may_write(&sibling.core.policy));
    let events = app
        .core
        .db
        .run(|c| {
            let f = audit_events::AuditFilter { action: Some("policy.reload".into()), ..Default::default() };
            audit_events::page(c, &f, 10)
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].details.contains("vaccinators write") && events[0].details.contains(&version));

    // What runs, and back to the built-in set.
    let show = run_cli(&["policy", "show", "--json"], &env, "").await;
    let shown: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(
        (shown["version"].as_str(), shown["origin"]["source"].as_str()),
        (Some(version.as_str()), Some("stored"))
    );
    let back = run_cli(&["policy", "reload", "--built-in", "--reason", "undo"], &env, "").await;
    assert!(back.ok(), "{}", back.stderr);
    until_running(&sibling.core.policy, &before).await;
    assert!(!vaccinator_may_write(&sibling.core.policy));
}

#[tokio::test]
async fn sighup_loads_the_configured_folder_for_every_instance() {
    let folder = tempfile::tempdir().unwrap();
    write_set(folder.path(), None);
    let dir = folder.path().to_owned();
    let app = spawn_app_at(fixed_clock(), |s| s.policy.dir = Some(dir)).await;
    let sibling = app.spawn_sibling().await;
    let before = app.core.policy.version();
    // Unchanged: nothing is stored.
    pramaan_server::policy::reload::on_hangup(&app.core).await;
    assert_eq!(stored_sets(&app).await, 0);
    // A broken edit: refused, the running set stays.
    std::fs::write(folder.path().join("broken.cedar"), BROKEN).unwrap();
    pramaan_server::policy::reload::on_hangup(&app.core).await;
    assert_eq!((stored_sets(&app).await, app.core.policy.version()), (0, before.clone()));
    std::fs::remove_file(folder.path().join("broken.cedar")).unwrap();
    std::fs::write(folder.path().join("extra.cedar"), EXTRA).unwrap();
    pramaan_server::policy::reload::on_hangup(&app.core).await;
    assert_eq!(stored_sets(&app).await, 1);
    let version = app.core.policy.version();
    assert_ne!(version, before);
    until_running(&sibling.core.policy, &version).await;
    assert!(vaccinator_may_write(&sibling.core.policy));
}

fn files_with(extra: Option<(&str, &str)>, without: Option<&str>) -> BTreeMap<String, String> {
    let mut files = builtin_sources();
    if let Some((n, t)) = extra {
        files.insert(n.to_owned(), t.to_owned());
    }
    if let Some(n) = without {
        files.remove(n);
    }
    files
}

#[tokio::test]
async fn a_national_admin_checks_and_loads_a_set_through_the_api() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let sibling = app.spawn_sibling().await;
    staff_in(&app, "nadmin", &["national_admin"], "in").await;
    staff_in(&app, "sadmin", &["state_admin"], "in/ka").await;
    let console = console_client(&app).await.id;
    let admin = first_admin_login(&app, &clock, &console, "nadmin").await;
    assert!(admin.scope.contains("admin.policy"), "{}", admin.scope);
    let token = Some(admin.access_token.as_str());

    let current = api(&app, "GET", "/policy", token, None).await;
    assert_eq!(current.status, 200, "{current:?}");
    assert_eq!(current.body["version"], app.core.policy.version());
    assert_eq!(current.body["origin"]["source"], "built_in");
    assert!(current.body["files"]["common.cedar"].as_str().unwrap().contains("step-up"));

    let broken = json!({ "files": files_with(Some(("broken.cedar", BROKEN)), None) });
    let checked = api(&app, "POST", "/policy/validate", token, Some(broken.clone())).await;
    assert_eq!(checked.status, 422, "{checked:?}");
    assert_eq!(checked.content_type, "application/problem+json");
    let e = &checked.body["errors"][0];
    assert_eq!((e["file"].as_str(), e["line"].as_u64()), (Some("broken.cedar"), Some(4)), "{checked:?}");
    let good = files_with(Some(("extra.cedar", EXTRA)), None);
    let checked = api(&app, "POST", "/policy/validate", token, Some(json!({ "files": good }))).await;
    assert_eq!((checked.status, checked.body["valid"].as_bool()), (200, Some(true)), "{checked:?}");
    let version = checked.body["version"].as_str().unwrap().to_owned();

    // A schema without an action the server asks, and a set that would lock the caller out.
    let mut no_action = files_with(None, None);
    let schema =
        no_action["schema.cedarschema"].replace(r#""policy.read", "policy.manage""#, r#""policy.read""#);
    no_action.insert("schema.cedarschema".into(), schema);
    let national = no_action["national_admin.cedar"].replace(
        "    Pramaan::Action::\"policy.read\",\n    Pramaan::Action::\"policy.manage\"\n",
        "    Pramaan::Action::\"policy.read\"\n",
    );
    no_action.insert("national_admin.cedar".into(), national.clone());
    no_action.insert(
        "common.cedar".into(),
        no_action["common.cedar"].replace(",\n    Pramaan::Action::\"policy.manage\"\n", "\n"),
    );
    let refused =
        api(&app, "POST", "/policy/reload", token, Some(json!({ "files": no_action, "reason": "x" }))).await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert!(refused.body["errors"].to_string().contains("policy.manage"), "{refused:?}");
    let mut lockout = files_with(None, None);
    lockout.insert("national_admin.cedar".into(), national);
    let refused =
        api(&app, "POST", "/policy/reload", token, Some(json!({ "files": lockout, "reason": "x" }))).await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert!(
        refused.body["errors"][0]["reason"].as_str().unwrap().contains("could no longer load"),
        "{refused:?}"
    );
    let no_reason = api(&app, "POST", "/policy/reload", token, Some(json!({ "files": good }))).await;
    assert_eq!(no_reason.status, 400, "{no_reason:?}");
    assert_eq!(stored_sets(&app).await, 0, "nothing was loaded");

    // A state admin may not; the national admin may.
    let state = first_admin_login(&app, &clock, &console, "sadmin").await;
    assert!(!state.scope.contains("admin.policy"), "{}", state.scope);
    let loaded = api(
        &app,
        "POST",
        "/policy/reload",
        token,
        Some(json!({ "files": good, "reason": "vaccinators write" })),
    )
    .await;
    assert_eq!(loaded.status, 200, "{loaded:?}");
    assert_eq!(loaded.body["version"], version.as_str());
    assert_eq!(app.core.policy.version(), version, "the instance that loaded it runs it at once");
    until_running(&sibling.core.policy, &version).await;
}
