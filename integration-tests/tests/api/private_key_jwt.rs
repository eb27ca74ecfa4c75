//! `private_key_jwt` client authentication (RFC 7523): assertions signed by an independent
//! JWT library with the client's own key; the server holds only the public half.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pramaan_integration_tests::cli::{env_for, run_cli};
use pramaan_integration_tests::{TestApp, spawn_app};
use pramaan_server::crypto::SigningAlg;
use pramaan_server::crypto::signing::{SigningKey, generate_pkcs8};
use serde_json::{Value, json};

struct KeyPair {
    kid: String,
    encoding: EncodingKey,
    public: Value,
}

fn key_pair() -> KeyPair {
    let der = generate_pkcs8(SigningAlg::ES256, 2048).unwrap();
    let public =
        serde_json::to_value(SigningKey::from_pkcs8(SigningAlg::ES256, &der).unwrap().public_jwk()).unwrap();
    KeyPair {
        kid: public["kid"].as_str().unwrap().to_owned(),
        encoding: EncodingKey::from_ec_der(&der),
        public,
    }
}

async fn register(app: &TestApp, key: &KeyPair) -> String {
    let file = app.data_dir.path().join(format!("{}.jwks", key.kid));
    std::fs::write(&file, json!({"keys": [key.public]}).to_string()).unwrap();
    let env = env_for(&app.db.url, app.data_dir.path());
    let run = run_cli(
        &[
            "client",
            "create",
            "--name",
            "partner",
            "--grant",
            "client_credentials",
            "--scope",
            "registry.read",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            file.to_str().unwrap(),
            "--json",
        ],
        &env,
        "",
    )
    .await;
    assert!(run.ok(), "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(v.get("client_secret").is_none());
    v["client_id"].as_str().unwrap().to_owned()
}

fn assertion(key: &KeyPair, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn claims(app: &TestApp, client: &str, patch: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({
        "iss": client, "sub": client, "aud": app.address,
        "iat": now, "exp": now + 120, "jti": uuid::Uuid::new_v4().to_string(),
    });
    c.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
    c
}

async fn token_with(app: &TestApp, assertion: &str) -> (u16, Value) {
    token_with_extra(app, assertion, &[]).await
}

/// A client-credentials request authenticated by `assertion`, with `extra` form parameters.
async fn token_with_extra(app: &TestApp, assertion: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        .append_pair("client_assertion", assertion)
        .extend_pairs(extra)
        .finish();
    let resp = app
        .client
        .post(format!("{}/token", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn a_signed_assertion_gets_a_token_once() {
    let app = spawn_app().await;
    let key = key_pair();
    let client = register(&app, &key).await;
    let jwt = assertion(&key, &claims(&app, &client, json!({})));
    let (status, body) = token_with(&app, &jwt).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "registry.read");
    let (status, body) = token_with(&app, &jwt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "a replayed assertion (same jti)"
    );
    // The issuer alone is the audience: a single-element list is the same thing.
    let (status, _) =
        token_with(&app, &assertion(&key, &claims(&app, &client, json!({"aud": [app.address]})))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_assertions_are_all_invalid_client() {
    let app = spawn_app().await;
    let key = key_pair();
    let client = register(&app, &key).await;
    let stranger = key_pair();
    let now = chrono::Utc::now().timestamp();
    let cases = [
        (
            "signed by another key",
            assertion(&KeyPair { kid: key.kid.clone(), ..key_pair() }, &claims(&app, &client, json!({}))),
        ),
        ("unknown kid", assertion(&stranger, &claims(&app, &client, json!({})))),
        ("expired", assertion(&key, &claims(&app, &client, json!({"iat": now - 600, "exp": now - 300})))),
        ("lives too long", assertion(&key, &claims(&app, &client, json!({"exp": now + 3600})))),
        (
            "wrong audience",
            assertion(&key, &claims(&app, &client, json!({"aud": "https://other.example/token"}))),
        ),
        ("iss is not the client", assertion(&key, &claims(&app, &client, json!({"iss": "someone-else"})))),
        ("no jti", {
            let mut c = claims(&app, &client, json!({}));
            c.as_object_mut().unwrap().remove("jti");
            assertion(&key, &c)
        }),
        (
            "issued in the future",
            assertion(&key, &claims(&app, &client, json!({"iat": now + 300, "exp": now + 400}))),
        ),
        ("not valid before later", assertion(&key, &claims(&app, &client, json!({"nbf": now + 300})))),
        ("exp as a string", assertion(&key, &claims(&app, &client, json!({"exp": (now + 60).to_string()})))),
        // Audience injection: an assertion made out to our token endpoint (as another server's
        // metadata might name it) or to several audiences is refused.
        (
            "token endpoint as audience",
            assertion(&key, &claims(&app, &client, json!({"aud": format!("{}/token", app.address)}))),
        ),
        (
            "several audiences",
            assertion(&key, &claims(&app, &client, json!({"aud": [app.address, "https://other.example"]}))),
        ),
        ("sub is not the client", assertion(&key, &claims(&app, &client, json!({"sub": "someone-else"})))),
        ("unsigned", {
            use base64::Engine;
            let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims(&app, &client, json!({}))))
        }),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (what, jwt) in cases {
        let (status, body) = token_with(&app, &jwt).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{what}: {body}");
    }
    // A secret-based client cannot switch to assertions on its own.
    let env = env_for(&app.db.url, app.data_dir.path());
    let run = run_cli(
        &[
            "client",
            "create",
            "--name",
            "s",
            "--id",
            "secret-client",
            "--grant",
            "client_credentials",
            "--json",
        ],
        &env,
        "",
    )
    .await;
    assert!(run.ok());
    let (status, _) = token_with(&app, &assertion(&key, &claims(&app, "secret-client", json!({})))).await;
    assert_eq!(status, 401);
    // And two methods at once is a malformed request.
    let jwt = assertion(&key, &claims(&app, &client, json!({})));
    let (status, body) = token_with_extra(&app, &jwt, &[("client_secret", "x")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn a_key_without_kid_or_alg_is_refused_at_registration() {
    let app = spawn_app().await;
    let key = key_pair();
    let mut public = key.public.clone();
    public.as_object_mut().unwrap().remove("alg");
    let file = app.data_dir.path().join("noalg.jwks");
    std::fs::write(&file, json!({"keys": [public]}).to_string()).unwrap();
    let env = env_for(&app.db.url, app.data_dir.path());
    let run = run_cli(
        &[
            "client",
            "create",
            "--name",
            "p",
            "--grant",
            "client_credentials",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            file.to_str().unwrap(),
        ],
        &env,
        "",
    )
    .await;
    assert!(!run.ok());
    assert!(run.stderr.contains("key 1 is not usable"), "{}", run.stderr);
}
