//! The client credentials grant, driven by the `oauth2` crate as a real client, and the
//! negative cases by hand; tokens are checked with an independent JWT library against the
//! published JWKS.

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use pramaan_integration_tests::cli::{env_for, run_cli};
use pramaan_integration_tests::{TestApp, spawn_app};
use serde_json::Value;

struct Registered {
    id: String,
    secret: String,
}

async fn register(app: &TestApp, extra: &[&str]) -> Registered {
    let env = env_for(&app.db.url, app.data_dir.path());
    let mut args = vec![
        "client",
        "create",
        "--name",
        "registry",
        // Government partners may read and write (policies/clients.cedar).
        "--category",
        "government",
        "--grant",
        "client_credentials",
        "--scope",
        "registry.read registry.write",
        "--json",
    ];
    args.extend_from_slice(extra);
    let run = run_cli(&args, &env, "").await;
    assert!(run.ok(), "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    Registered {
        id: v["client_id"].as_str().unwrap().into(),
        secret: v["client_secret"].as_str().unwrap().into(),
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Verifies `token` with `jsonwebtoken` (not Pramaan's own code) against the JWKS.
async fn verify(app: &TestApp, token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256, "access tokens default to ES256");
    let jwks: jsonwebtoken::jwk::JwkSet = app.get("/jwks").await.json().await.unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the signing key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[app.address.as_str()]);
    validation.set_issuer(&[app.address.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap().claims
}

#[tokio::test]
async fn a_partner_gets_a_scoped_rfc_9068_token_with_basic_and_post_authentication() {
    let app = spawn_app().await;
    for method in ["client_secret_basic", "client_secret_post"] {
        let c = register(&app, &["--auth-method", method]).await;
        let client = BasicClient::new(ClientId::new(c.id.clone()))
            .set_client_secret(ClientSecret::new(c.secret.clone()))
            .set_token_uri(TokenUrl::new(format!("{}/token", app.address)).unwrap())
            .set_auth_type(if method == "client_secret_basic" {
                AuthType::BasicAuth
            } else {
                AuthType::RequestBody
            });
        let token = client
            .exchange_client_credentials()
            .add_scope(Scope::new("registry.read".into()))
            .request_async(&http())
            .await
            .unwrap_or_else(|e| panic!("{method}: {e:?}"));
        assert!(token.refresh_token().is_none(), "no refresh token for client credentials (RFC 6749 §4.4.3)");
        assert_eq!(token.expires_in().unwrap().as_secs(), 300);
        let claims = verify(&app, token.access_token().secret()).await;
        assert_eq!(claims["client_id"], c.id.as_str());
        assert_eq!(claims["sub"], c.id.as_str());
        assert_eq!(claims["scope"], "registry.read");
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);
        // Without a scope, the client gets everything it is allowed.
        let all = client.exchange_client_credentials().request_async(&http()).await.unwrap();
        assert_eq!(verify(&app, all.access_token().secret()).await["scope"], "registry.read registry.write");
    }
}

/// What a negative case sends and expects: name, body, Basic credentials, status, error.
type Case<'a> = (&'a str, &'a str, Option<(&'a str, &'a str)>, u16, &'a str);

async fn post_token(
    app: &TestApp,
    body: &str,
    basic: Option<(&str, &str)>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = app
        .client
        .post(format!("{}/token", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn every_bad_token_request_gets_its_rfc_6749_error_and_no_token() {
    let app = spawn_app().await;
    let c = register(&app, &[]).await;
    let good = Some((c.id.as_str(), c.secret.as_str()));
    let wrong = format!("{}x", c.secret);
    let post_body = format!("grant_type=client_credentials&client_id={}&client_secret={}", c.id, c.secret);
    let cases: Vec<Case<'_>> = vec![
        (
            "wrong secret",
            "grant_type=client_credentials",
            Some((c.id.as_str(), wrong.as_str())),
            401,
            "invalid_client",
        ),
        (
            "unknown client",
            "grant_type=client_credentials",
            Some(("nobody", "secret")),
            401,
            "invalid_client",
        ),
        ("no authentication", "grant_type=client_credentials", None, 401, "invalid_client"),
        ("post when basic is registered", post_body.as_str(), None, 401, "invalid_client"),
        (
            "unsupported grant",
            "grant_type=password&username=a&password=b",
            good,
            400,
            "unsupported_grant_type",
        ),
        ("missing grant", "scope=registry.read", good, 400, "invalid_request"),
        (
            "repeated parameter",
            "grant_type=client_credentials&grant_type=client_credentials",
            good,
            400,
            "invalid_request",
        ),
        ("scope beyond allowed", "grant_type=client_credentials&scope=admin.all", good, 400, "invalid_scope"),
        ("malformed scope", "grant_type=client_credentials&scope=a%22b", good, 400, "invalid_scope"),
    ];
    for (what, body, auth, status, error) in cases {
        let (got, headers, json) = post_token(&app, body, auth).await;
        assert_eq!((got, json["error"].as_str()), (status, Some(error)), "{what}: {json}");
        assert!(json.get("access_token").is_none(), "{what}");
        assert_eq!(headers["cache-control"], "no-store", "{what}");
        if status == 401 {
            assert!(headers.contains_key("www-authenticate"), "{what}");
        }
    }
    // An oversized body gets an RFC-shaped JSON error too, not the framework's plain text.
    let big = format!("grant_type=client_credentials&scope={}", "a".repeat(70_000));
    let (status, headers, json) = post_token(&app, &big, good).await;
    assert_eq!((status, json["error"].as_str()), (413, Some("invalid_request")), "{json}");
    assert_eq!(headers["cache-control"], "no-store");
    // A malformed body gets an RFC-shaped JSON error, not a plain-text 400.
    let resp = app
        .client
        .post(format!("{}/token", app.address))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
    // The unknown client and the wrong secret are indistinguishable.
    let (_, _, a) = post_token(&app, "grant_type=client_credentials", Some(("nobody", "s"))).await;
    let (_, _, b) = post_token(&app, "grant_type=client_credentials", Some((c.id.as_str(), "s"))).await;
    assert_eq!(a, b);
}

#[tokio::test]
async fn a_suspended_client_gets_invalid_client_and_a_resumed_one_tokens_again() {
    let app = spawn_app().await;
    let c = register(&app, &[]).await;
    let env = env_for(&app.db.url, app.data_dir.path());
    let auth = Some((c.id.as_str(), c.secret.as_str()));
    assert_eq!(post_token(&app, "grant_type=client_credentials", auth).await.0, 200);
    let suspend = run_cli(&["client", "suspend", &c.id, "--reason", "breach"], &env, "").await;
    assert!(suspend.ok(), "{}", suspend.stderr);
    // The CLI is another process: the server sees the change at its next epoch poll.
    let start = std::time::Instant::now();
    let body = loop {
        let (status, _, body) = post_token(&app, "grant_type=client_credentials", auth).await;
        if status == 401 || start.elapsed() > std::time::Duration::from_secs(2) {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(body["error"], "invalid_client");
    assert!(start.elapsed() <= std::time::Duration::from_secs(1), "took {:?}", start.elapsed());
    let resume = run_cli(&["client", "resume", &c.id, "--reason", "fixed"], &env, "").await;
    assert!(resume.ok(), "{}", resume.stderr);
    let start = std::time::Instant::now();
    while post_token(&app, "grant_type=client_credentials", auth).await.0 != 200 {
        assert!(start.elapsed() <= std::time::Duration::from_secs(2), "resume not seen");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_rotated_secret_replaces_the_old_one_at_once() {
    let app = spawn_app().await;
    let c = register(&app, &[]).await;
    let env = env_for(&app.db.url, app.data_dir.path());
    // Use the old secret first, so the server has the client cached when the secret changes.
    let old = Some((c.id.as_str(), c.secret.as_str()));
    assert_eq!(post_token(&app, "grant_type=client_credentials", old).await.0, 200);
    let run = run_cli(&["client", "rotate-secret", &c.id, "--json"], &env, "").await;
    let new: Value = serde_json::from_str(&run.stdout).unwrap();
    let new_secret = new["client_secret"].as_str().unwrap();
    // The CLI is another process: the change reaches the server's cache within a second.
    let start = std::time::Instant::now();
    while post_token(&app, "grant_type=client_credentials", Some((c.id.as_str(), new_secret))).await.0 != 200
    {
        assert!(
            start.elapsed() <= std::time::Duration::from_secs(1),
            "the new secret must work within a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(post_token(&app, "grant_type=client_credentials", old).await.0, 401);
}

#[tokio::test]
async fn issuance_is_audited_as_one_aggregate_per_client_and_minute() {
    let app = spawn_app().await;
    let c = register(&app, &[]).await;
    for _ in 0..5 {
        assert_eq!(
            post_token(
                &app,
                "grant_type=client_credentials&scope=registry.read",
                Some((c.id.as_str(), c.secret.as_str()))
            )
            .await
            .0,
            200
        );
    }
    let flushed = app.state.issuance.flush(&app.core.audit, app.core.clock.now(), true).await;
    assert_eq!(flushed, 1);
    let events = app.core.audit.page(Default::default(), 100).await.unwrap();
    let agg: Vec<_> = events.iter().filter(|e| e.action == "token.client_credentials").collect();
    assert_eq!(agg.len(), 1);
    let details = agg[0].details_json().unwrap();
    assert_eq!(details["count"], 5);
    assert_eq!(details["scopes"], serde_json::json!(["registry.read"]));
}
