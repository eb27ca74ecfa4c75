//! `pramaan client …`: registration rules, secrets shown once and stored as digests, audit.

use pramaan_integration_tests::TestDatabase;
use pramaan_integration_tests::cli::{migrated_env, run_cli};
use std::sync::Arc;

use pramaan_integration_tests::app::test_settings;
use pramaan_server::clock::SystemClock;
use pramaan_server::domain::ClientId;
use pramaan_server::state::{Core, InitMode};
use pramaan_server::store::clients;
use serde_json::Value;

struct Fixture {
    db: TestDatabase,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

async fn fixture() -> Fixture {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let env = migrated_env(&db.url, dir.path()).await;
    Fixture { db, dir, env }
}

async fn json(f: &Fixture, args: &[&str]) -> Value {
    let run = run_cli(args, &f.env, "").await;
    assert!(run.ok(), "{args:?}: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", run.stdout))
}

async fn audit_actions(f: &Fixture) -> Vec<Value> {
    let run = run_cli(&["audit", "export"], &f.env, "").await;
    // Reading the trail is itself audited; leave those events out.
    run.stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["action"] != "audit.export")
        .collect()
}

#[tokio::test]
async fn a_confidential_client_gets_a_secret_once_stored_only_as_a_digest() {
    let f = fixture().await;
    let created = json(
        &f,
        &[
            "client",
            "create",
            "--name",
            "registry",
            "--grant",
            "client_credentials",
            "--scope",
            "registry.read registry.write",
            "--category",
            "government",
            "--json",
        ],
    )
    .await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    assert_eq!(created["scopes"], serde_json::json!(["registry.read", "registry.write"]));
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["category"], "government");
    assert_eq!(created["status"], "active");

    let shown = json(&f, &["client", "show", &id, "--json"]).await;
    assert!(shown.get("client_secret").is_none(), "a secret is shown only at creation");
    assert_eq!(shown["has_secret"], true);

    // The database holds the keyed digest, not the secret; the audit trail holds neither.
    let core =
        Core::init(test_settings(&f.db, f.dir.path()), Arc::new(SystemClock), InitMode::Command).unwrap();
    let client_id = ClientId::from_string(id.clone());
    let (_, digest) = core.db.run(move |c| clients::find_with_secret(c, &client_id)).await.unwrap().unwrap();
    let digest = digest.unwrap();
    assert_ne!(digest, secret);
    assert!(core.keys.digester.verify("client_secret", secret.as_bytes(), &digest));
    let export = run_cli(&["audit", "export"], &f.env, "").await.stdout;
    assert!(!export.contains(&secret));
    let rotated = json(&f, &["client", "rotate-secret", &id, "--json"]).await;
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let actions: Vec<String> =
        audit_actions(&f).await.iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    assert_eq!(actions, ["client.create", "client.rotate_secret"]);
    assert!(!run_cli(&["audit", "export"], &f.env, "").await.stdout.contains(new_secret));
    drop(f.dir);
}

#[tokio::test]
async fn a_public_client_uses_pkce_and_has_no_secret() {
    let f = fixture().await;
    let created = json(
        &f,
        &[
            "client",
            "create",
            "--name",
            "Field app",
            "--public",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--redirect-uri",
            "http://127.0.0.1:8765/callback",
            "--scope",
            "openid profile",
            "--json",
        ],
    )
    .await;
    assert!(created.get("client_secret").is_none());
    assert_eq!(created["client_type"], "public");
    assert_eq!(created["token_endpoint_auth_method"], "none");
    assert_eq!(created["redirect_uris"], serde_json::json!(["http://127.0.0.1:8765/callback"]));
    let id = created["client_id"].as_str().unwrap();
    let rotate = run_cli(&["client", "rotate-secret", id], &f.env, "").await;
    assert!(!rotate.ok() && rotate.stderr.contains("not a secret"), "{}", rotate.stderr);
}

#[tokio::test]
async fn bad_registrations_are_refused_with_the_flag_named_and_nothing_stored() {
    let f = fixture().await;
    let cases: [(&[&str], &str); 9] = [
        (&["--name", "x", "--grant", "password"], "--grant"),
        (&["--name", "x", "--grant", "authorization_code"], "--redirect-uri"),
        (
            &["--name", "x", "--grant", "authorization_code", "--redirect-uri", "http://evil.example/cb"],
            "https",
        ),
        (
            &["--name", "x", "--grant", "authorization_code", "--redirect-uri", "https://a.example/cb#frag"],
            "fragment",
        ),
        (&["--name", "x", "--public", "--grant", "client_credentials"], "client_credentials"),
        (&["--name", "x", "--grant", "client_credentials", "--scope", "bad\"scope"], "--scope"),
        (
            &["--name", "x", "--grant", "client_credentials", "--auth-method", "private_key_jwt"],
            "--jwks-file",
        ),
        (&["--name", "x", "--grant", "client_credentials", "--category", "alien"], "--category"),
        (
            &[
                "--name",
                "x",
                "--public",
                "--grant",
                "authorization_code",
                "--redirect-uri",
                "http://127.0.0.1/cb",
                "--introspection",
            ],
            "cannot be allowed to introspect",
        ),
    ];
    for (args, expect) in cases {
        let mut full = vec!["client", "create"];
        full.extend_from_slice(args);
        let run = run_cli(&full, &f.env, "").await;
        assert!(!run.ok(), "{args:?}");
        assert!(run.stderr.contains(expect), "{args:?}: {}", run.stderr);
    }
    assert_eq!(json(&f, &["client", "list", "--json"]).await, serde_json::json!([]));
    assert!(audit_actions(&f).await.is_empty());
}

#[tokio::test]
async fn a_private_key_jwt_client_registers_public_keys_only() {
    let f = fixture().await;
    let public = f.dir.path().join("public.jwks");
    std::fs::write(&public, r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1","alg":"ES256"}]}"#).unwrap();
    let created = json(
        &f,
        &[
            "client",
            "create",
            "--name",
            "Partner",
            "--grant",
            "client_credentials",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            public.to_str().unwrap(),
            "--json",
        ],
    )
    .await;
    assert!(created.get("client_secret").is_none());
    assert_eq!(created["jwks"]["keys"][0]["kid"], "k1");
    let private = f.dir.path().join("private.jwks");
    std::fs::write(&private, r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}]}"#).unwrap();
    let run = run_cli(
        &[
            "client",
            "create",
            "--name",
            "Leaky",
            "--grant",
            "client_credentials",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            private.to_str().unwrap(),
        ],
        &f.env,
        "",
    )
    .await;
    assert!(!run.ok() && run.stderr.contains("private key material"), "{}", run.stderr);
}

#[tokio::test]
async fn suspend_resume_and_delete_are_audited_with_their_reason() {
    let f = fixture().await;
    let created = json(
        &f,
        &["client", "create", "--name", "p", "--id", "partner-7", "--grant", "client_credentials", "--json"],
    )
    .await;
    assert_eq!(created["client_id"], "partner-7");
    let dup = run_cli(
        &["client", "create", "--name", "again", "--id", "partner-7", "--grant", "client_credentials"],
        &f.env,
        "",
    )
    .await;
    assert!(!dup.ok() && dup.stderr.contains("client id 'partner-7' is taken"), "{}", dup.stderr);
    let suspended = json(&f, &["client", "suspend", "partner-7", "--reason", "data leak", "--json"]).await;
    assert_eq!(suspended["status"], "suspended");
    let resumed = json(&f, &["client", "resume", "partner-7", "--reason", "fixed", "--json"]).await;
    assert_eq!(resumed["status"], "active");
    assert!(
        resumed["tokens_valid_after"].as_str() > suspended["tokens_valid_after"].as_str(),
        "resuming moves the cut-off again, so it revives no token"
    );
    let no_reason = run_cli(&["client", "suspend", "partner-7", "--reason", " "], &f.env, "").await;
    assert!(!no_reason.ok());
    let deleted = run_cli(&["client", "delete", "partner-7", "--reason", "contract ended"], &f.env, "").await;
    assert!(deleted.ok(), "{}", deleted.stderr);
    let again = run_cli(&["client", "show", "partner-7"], &f.env, "").await;
    assert!(!again.ok() && again.stderr.contains("no client 'partner-7'"), "{}", again.stderr);
    let events = audit_actions(&f).await;
    let summary: Vec<(String, Value)> = events
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["details"]["reason"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("client.create".to_owned(), Value::Null),
            ("client.suspend".to_owned(), "data leak".into()),
            ("client.resume".to_owned(), "fixed".into()),
            ("client.delete".to_owned(), "contract ended".into()),
        ]
    );
    assert!(events.iter().all(|e| e["target"] == "client:partner-7"));
}
