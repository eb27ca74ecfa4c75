//! Signing keys and the JWKS: what is published, how it is cached, that private keys are
//! sealed at rest, and a rotation made with the CLI from pre-publication to removal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{TimeDelta, Utc};
use pramaan_integration_tests::app::test_settings;
use pramaan_integration_tests::cli::{env_for, migrated_env, run_cli};
use pramaan_integration_tests::sessions::{TestSessionStore, session_store_under_test};
use pramaan_integration_tests::{TestDatabase, spawn_app};
use pramaan_server::clock::{Clock, FixedClock};
use pramaan_server::config::Settings;
use pramaan_server::crypto::SigningAlg;
use pramaan_server::http::Application;
use pramaan_server::state::{AppState, Core, InitMode};
use pramaan_server::store::audit_events::AuditFilter;
use pramaan_server::store::signing_keys;
use serde_json::Value;

/// A server on a clock the test moves.
struct ClockedApp {
    address: String,
    core: Core,
    clock: FixedClock,
    client: reqwest::Client,
    db: TestDatabase,
    dir: tempfile::TempDir,
    _sessions: TestSessionStore,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for ClockedApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn clocked_app(tune: impl FnOnce(&mut Settings)) -> ClockedApp {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&db, dir.path());
    tune(&mut settings);
    let clock = FixedClock::new(Utc::now());
    let core = Core::init(settings, Arc::new(clock.clone()), InitMode::Serve).unwrap();
    let sessions = session_store_under_test().await;
    let app = Application::build(AppState::new(core.clone(), sessions.store.clone())).unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    println!("keys suite on {}", pramaan_integration_tests::backends());
    ClockedApp { address, core, clock, client: reqwest::Client::new(), db, dir, _sessions: sessions, handle }
}

async fn get_jwks(client: &reqwest::Client, address: &str) -> (reqwest::header::HeaderMap, Value) {
    let r = client.get(format!("{address}/jwks")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    (headers, r.json().await.unwrap())
}

fn kids(jwks: &Value) -> BTreeSet<String> {
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_jwks_publishes_one_key_per_algorithm_each_with_kid_kty_alg_and_use() {
    let app = spawn_app().await;
    let (headers, jwks) = get_jwks(&app.client, &app.address).await;
    assert_eq!(headers["content-type"], "application/jwk-set+json");
    assert_eq!(headers["cache-control"], "public, max-age=300");
    assert!(headers["etag"].to_str().unwrap().starts_with('"'), "a strong ETag");
    let keys = jwks["keys"].as_array().unwrap();
    let mut algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    algs.sort_unstable();
    assert_eq!(algs, ["ES256", "EdDSA", "RS256"]);
    for k in keys {
        for member in ["kid", "kty", "alg", "use"] {
            assert!(k[member].as_str().is_some_and(|v| !v.is_empty()), "{member} missing in {k}");
        }
        assert_eq!(k["use"], "sig");
        let expected_kty = match k["alg"].as_str().unwrap() {
            "ES256" => "EC",
            "RS256" => "RSA",
            _ => "OKP",
        };
        assert_eq!(k["kty"], expected_kty);
        // RFC 7517 §4 / RFC 7518 §6: private members never leave the server.
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(k.get(private).is_none(), "private member {private} published: {k}");
        }
    }
    assert_eq!(kids(&jwks).len(), 3, "kids are distinct");
}

#[tokio::test]
async fn an_unchanged_jwks_answers_304_to_its_etag() {
    let app = spawn_app().await;
    let (headers, _) = get_jwks(&app.client, &app.address).await;
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let url = format!("{}/jwks", app.address);
    for tag in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".into()] {
        let r = app.client.get(&url).header("if-none-match", &tag).send().await.unwrap();
        assert_eq!(r.status(), 304, "If-None-Match: {tag}");
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
        assert_eq!(r.headers()["cache-control"], "public, max-age=300");
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = app.client.get(&url).header("if-none-match", "\"stale\"").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn private_keys_are_sealed_in_the_database_and_never_published() {
    let app = spawn_app().await;
    let stored = app.core.db.run_blocking(signing_keys::list_all).unwrap();
    assert_eq!(stored.len(), 3);
    let jwks_body = app.get("/jwks").await.text().await.unwrap();
    for k in stored {
        let sealed = &k.sealed_private_key;
        assert!(sealed.starts_with("v1."), "{sealed:.20}");
        assert!(!sealed.contains("PRIVATE KEY") && !sealed.contains("BEGIN"), "no PEM");
        let aad = format!("signing-key:{}", k.kid);
        let der = app.core.keys.secrets.open(sealed, aad.as_bytes()).unwrap();
        // The clear DER, in any encoding, appears neither in the row nor in the JWKS.
        let encodings = [
            base64::engine::general_purpose::STANDARD.encode(&der),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der),
            hex_encode(&der),
        ];
        for e in &encodings {
            let probe = &e[..32];
            assert!(!sealed.contains(probe) && !k.public_jwk.contains(probe) && !jwks_body.contains(probe));
        }
        // DER of a PKCS#8 document starts with a SEQUENCE tag; the sealed row is text.
        assert!(!sealed.as_bytes().starts_with(&[0x30]));
        // Bound to its row: it does not open as another key's.
        assert!(app.core.keys.secrets.open(sealed, b"signing-key:other").is_err());
    }
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn a_cli_rotation_is_published_first_signs_later_and_the_old_key_leaves_after_its_tokens() {
    let app = clocked_app(|_| {}).await;
    let ring = &app.core.keyring;
    let old = ring.signing_key(SigningAlg::ES256).unwrap();
    let (_, before) = get_jwks(&app.client, &app.address).await;
    assert_eq!(kids(&before).len(), 3);

    let env = env_for(&app.db.url, app.dir.path());
    let run = run_cli(&["keys", "rotate", "--alg", "ES256", "--json"], &env, "").await;
    assert!(run.ok(), "{}", run.stderr);
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    let new_kid = out[0]["created"]["kid"].as_str().unwrap().to_owned();
    assert_eq!(out[0]["retired"][0]["kid"], old.kid());
    let at = |v: &Value| v.as_str().unwrap().parse::<chrono::DateTime<Utc>>().unwrap();
    let signs_from = at(&out[0]["created"]["signs_from"]);
    let unpublish_at = at(&out[0]["retired"][0]["unpublish_at"]);
    // The CLI ran on the wall clock; the server's clock is moved to just past each moment.
    let advance_past =
        |t: chrono::DateTime<Utc>| app.clock.advance(t - app.clock.now() + TimeDelta::seconds(1));
    assert!(signs_from - app.clock.now() > TimeDelta::hours(23), "a day of pre-publication by default");
    assert_eq!(
        unpublish_at - signs_from,
        TimeDelta::days(1),
        "retired keys stay published for max_token_lifetime_secs"
    );

    // The running server learns the rotation at its next refresh, not before.
    assert!(!kids(&get_jwks(&app.client, &app.address).await.1).contains(&new_kid));
    ring.refresh().await.unwrap();
    let (h1, published) = get_jwks(&app.client, &app.address).await;
    assert!(kids(&published).contains(&new_kid), "published before it signs");
    assert!(kids(&published).contains(old.kid()));
    assert_eq!(ring.signing_key(SigningAlg::ES256).unwrap().kid(), old.kid(), "the old key signs on");
    let list = run_cli(&["keys", "list", "--json"], &env, "").await;
    let listed: Value = serde_json::from_str(&list.stdout).unwrap();
    let state = |kid: &str| listed.as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap().clone();
    assert_eq!(state(&new_kid)["state"], "pending");
    assert_eq!(state(old.kid())["state"], "active");
    assert_eq!(state(old.kid())["in_use"], true);

    // Past the pre-publication period.
    advance_past(signs_from);
    let new = ring.signing_key(SigningAlg::ES256).unwrap();
    assert_eq!(new.kid(), new_kid, "the new key signs");
    let token = new.sign_jwt("at+jwt", &serde_json::json!({"sub": "x"})).unwrap();
    assert!(pramaan_server::crypto::verify_jwt(&token, Some("at+jwt"), |k| ring.verifying_key(k)).is_ok());
    let (_, retired) = get_jwks(&app.client, &app.address).await;
    assert!(kids(&retired).contains(old.kid()), "a retired key stays published while its tokens live");
    assert!(ring.verifying_key(old.kid()).is_some());

    // Past max_token_lifetime_secs after retirement: gone from the JWKS, even before a refresh.
    advance_past(unpublish_at);
    let (h2, after) = get_jwks(&app.client, &app.address).await;
    assert!(!kids(&after).contains(old.kid()));
    assert_eq!(kids(&after).len(), 3);
    assert_ne!(h1["etag"], h2["etag"]);
    assert!(ring.verifying_key(old.kid()).is_none());
    // The next refresh deletes the row and records it.
    ring.refresh().await.unwrap();
    let stored = app.core.db.run_blocking(signing_keys::list_all).unwrap();
    assert!(stored.iter().all(|k| k.kid != old.kid()));

    let audit = |action: &str| {
        let filter = AuditFilter { action: Some(action.into()), ..Default::default() };
        let core = app.core.clone();
        async move { core.audit.page(filter, 100).await.unwrap() }
    };
    let rotated = audit("keys.rotate").await;
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0].actor, "cli:tester");
    let details: Value = serde_json::from_str(&rotated[0].details).unwrap();
    let fields: BTreeSet<&str> = details.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(fields, BTreeSet::from(["alg", "kid", "retired"]), "identifiers only");
    assert_eq!(audit("keys.create").await.len(), 3);
    assert_eq!(audit("keys.delete").await.len(), 1);
    let verify = run_cli(&["audit", "verify"], &env, "").await;
    assert!(verify.ok(), "{}", verify.stderr);
}

#[tokio::test]
async fn a_running_server_picks_up_a_cli_rotation_on_its_own() {
    let app = clocked_app(|s| s.tokens.key_refresh_secs = 1).await;
    let env = env_for(&app.db.url, app.dir.path());
    let run = run_cli(&["keys", "rotate", "--alg", "EdDSA", "--json"], &env, "").await;
    assert!(run.ok(), "{}", run.stderr);
    let new_kid =
        serde_json::from_str::<Value>(&run.stdout).unwrap()[0]["created"]["kid"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if kids(&get_jwks(&app.client, &app.address).await.1).contains(&new_kid) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "rotation not seen within 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn rotating_every_algorithm_and_restarting_keeps_one_signing_key_per_algorithm() {
    let app = clocked_app(|_| {}).await;
    let env = env_for(&app.db.url, app.dir.path());
    let run = run_cli(&["keys", "rotate"], &env, "").await;
    assert!(run.ok(), "{}", run.stderr);
    assert_eq!(run.stdout.lines().filter(|l| l.contains("new key")).count(), 3, "{}", run.stdout);
    // A second instance on the same database creates no keys of its own.
    let again =
        Core::init(test_settings(&app.db, app.dir.path()), Arc::new(app.clock.clone()), InitMode::Serve)
            .unwrap();
    assert_eq!(app.core.db.run_blocking(signing_keys::list_all).unwrap().len(), 6);
    for alg in SigningAlg::ALL {
        assert_eq!(
            again.keyring.signing_key(alg).unwrap().kid(),
            app.core.keyring.signing_key(alg).unwrap().kid(),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn keys_commands_refuse_bad_input_and_explain_an_empty_ring() {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let env = migrated_env(&db.url, dir.path()).await;
    let list = run_cli(&["keys", "list"], &env, "").await;
    assert!(list.ok(), "{}", list.stderr);
    assert!(list.stdout.contains("no signing keys yet"), "{}", list.stdout);
    let bad = run_cli(&["keys", "rotate", "--alg", "HS256"], &env, "").await;
    assert!(!bad.ok());
    assert!(bad.stderr.contains("HS256"), "{}", bad.stderr);
    // A first rotation with no key yet signs at once: nothing else would sign for it.
    let first = run_cli(&["keys", "rotate", "--alg", "rs256", "--prepublish", "0", "--json"], &env, "").await;
    assert!(first.ok(), "{}", first.stderr);
    assert!(first.stderr.contains("warning"), "a short pre-publication is warned about");
    let out: Value = serde_json::from_str(&first.stdout).unwrap();
    assert_eq!(out[0]["created"]["alg"], "RS256");
    assert_eq!(out[0]["retired"].as_array().unwrap().len(), 0);
}
