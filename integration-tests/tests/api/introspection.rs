//! Introspection (RFC 7662) and revocation (RFC 7009) of access tokens, on one instance and
//! across two.

use std::time::{Duration, Instant};

use pramaan_integration_tests::cli::{env_for, run_cli};
use pramaan_integration_tests::{TestApp, spawn_app};
use serde_json::{Value, json};

struct Client {
    id: String,
    secret: String,
}

async fn register(app: &TestApp, extra: &[&str]) -> Client {
    let env = env_for(&app.db.url, app.data_dir.path());
    let mut args = vec![
        "client",
        "create",
        "--name",
        "c",
        "--grant",
        "client_credentials",
        "--scope",
        "registry.read",
        "--json",
    ];
    args.extend_from_slice(extra);
    let run = run_cli(&args, &env, "").await;
    assert!(run.ok(), "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    Client {
        id: v["client_id"].as_str().unwrap().into(),
        secret: v["client_secret"].as_str().unwrap().into(),
    }
}

async fn post(app: &TestApp, base: &str, path: &str, c: &Client, body: &str) -> (u16, Value) {
    let resp = app
        .client
        .post(format!("{base}{path}"))
        .basic_auth(&c.id, Some(&c.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn token_for(app: &TestApp, c: &Client) -> String {
    let (status, body) = post(app, &app.address, "/token", c, "grant_type=client_credentials").await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn form(token: &str) -> String {
    format!("token={}", form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>())
}

async fn introspect_at(app: &TestApp, base: &str, registry: &Client, token: &str) -> Value {
    let (status, body) = post(app, base, "/introspect", registry, &form(token)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Signs claims with the server's own access-token key, for tokens a client could not get.
fn forge(app: &TestApp, claims: Value, typ: &str) -> String {
    app.core.keyring.access_token_key().unwrap().sign_jwt(typ, &claims).unwrap()
}

#[tokio::test]
async fn a_valid_token_is_active_with_its_metadata() {
    let app = spawn_app().await;
    let registry = register(&app, &["--introspection"]).await;
    let partner = register(&app, &[]).await;
    let token = token_for(&app, &partner).await;
    for _ in 0..2 {
        // The second time comes from the verified-claims cache; the answer must not change.
        let body = introspect_at(&app, &app.address, &registry, &token).await;
        assert_eq!(body["active"], true);
        assert_eq!(body["client_id"], partner.id.as_str());
        assert_eq!(body["sub"], partner.id.as_str());
        assert_eq!(body["scope"], "registry.read");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["iss"], app.address.as_str());
        assert!(body["exp"].as_i64().unwrap() > body["iat"].as_i64().unwrap());
    }
}

#[tokio::test]
async fn only_permitted_and_authenticated_clients_may_introspect() {
    let app = spawn_app().await;
    let partner = register(&app, &[]).await;
    let token = token_for(&app, &partner).await;
    let (status, body) = post(&app, &app.address, "/introspect", &partner, &form(&token)).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("unauthorized_client")));
    let wrong = Client { id: partner.id.clone(), secret: "nope".into() };
    let (status, body) = post(&app, &app.address, "/introspect", &wrong, &form(&token)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    let registry = register(&app, &["--introspection"]).await;
    let (status, body) =
        post(&app, &app.address, "/introspect", &registry, "token_type_hint=access_token").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_inactive() {
    let app = spawn_app().await;
    let registry = register(&app, &["--introspection"]).await;
    let partner = register(&app, &[]).await;
    let good = token_for(&app, &partner).await;
    let (h, p, s) = {
        let mut parts = good.split('.');
        (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned())
    };
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&h).unwrap())
            .unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&p).unwrap())
            .unwrap();
    let now = chrono::Utc::now().timestamp();
    let with = |patch: Value| {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        c
    };
    let jwk = app.get("/jwks").await.json::<Value>().await.unwrap()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap()
        .clone();
    // HS256 keyed with the public key (the classic algorithm-confusion attack).
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]});
    let hs_input = format!("{}.{}", b64(&hs_header), p);
    let hs_sig = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(jwk.to_string().as_bytes()).unwrap();
        mac.update(hs_input.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    };
    let cases = [
        ("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "typ": "at+jwt"})), p)),
        ("HS256 with the public key", format!("{hs_input}.{hs_sig}")),
        ("tampered payload", format!("{h}.{}.{s}", b64(&with(json!({"scope": "registry.admin"}))))),
        ("wrong typ", forge(&app, claims.clone(), "JWT")),
        ("expired", forge(&app, with(json!({"iat": now - 600, "exp": now - 60})), "at+jwt")),
        ("another issuer", forge(&app, with(json!({"iss": "https://evil.example"})), "at+jwt")),
        ("unknown client", forge(&app, with(json!({"client_id": "ghost", "sub": "ghost"})), "at+jwt")),
        ("garbage", "not.a.token".to_owned()),
        ("empty segments", "..".to_owned()),
    ];
    for (what, token) in cases {
        let body = introspect_at(&app, &app.address, &registry, &token).await;
        assert_eq!(body, json!({"active": false}), "{what}");
    }
    assert_eq!(introspect_at(&app, &app.address, &registry, &good).await["active"], true);
}

#[tokio::test]
async fn a_revoked_token_is_inactive_at_once_and_only_its_own_client_may_revoke_it() {
    let app = spawn_app().await;
    let registry = register(&app, &["--introspection"]).await;
    let partner = register(&app, &[]).await;
    let other = register(&app, &[]).await;
    let token = token_for(&app, &partner).await;
    let untouched = token_for(&app, &partner).await;
    assert_eq!(introspect_at(&app, &app.address, &registry, &token).await["active"], true);
    // Another client's attempt is answered 200 (RFC 7009 §2.2) and changes nothing.
    let (status, _) = post(&app, &app.address, "/revoke", &other, &form(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(introspect_at(&app, &app.address, &registry, &token).await["active"], true);
    let (status, _) = post(&app, &app.address, "/revoke", &partner, &form(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(introspect_at(&app, &app.address, &registry, &token).await, json!({"active": false}));
    assert_eq!(introspect_at(&app, &app.address, &registry, &untouched).await["active"], true);
    let (status, _) = post(&app, &app.address, "/revoke", &partner, "token=garbage").await;
    assert_eq!(status, 200, "an invalid token is not an error (RFC 7009 §2.2)");
}

/// Polls until `check` holds or `limit` passes; returns how long it took.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn suspension_and_revocation_on_one_instance_reach_the_other_within_a_second() {
    let a = spawn_app().await;
    let b = a.spawn_sibling().await;
    let registry = register(&a, &["--introspection"]).await;
    let partner = register(&a, &[]).await;
    let kept = register(&a, &[]).await;
    let token = token_for(&a, &partner).await;
    let revoked = token_for(&a, &partner).await;
    let other = token_for(&a, &kept).await;
    for t in [&token, &revoked, &other] {
        assert_eq!(introspect_at(&a, &b.address, &registry, t).await["active"], true, "B caches the client");
    }

    // Revocation of one token on A: A knows at once; B reads the shared revocation list
    // again within its 250 ms reuse window.
    let (status, _) = post(&a, &a.address, "/revoke", &partner, &form(&revoked)).await;
    assert_eq!(status, 200);
    assert_eq!(introspect_at(&a, &a.address, &registry, &revoked).await["active"], false);
    let took = within(Duration::from_secs(2), || async {
        introspect_at(&a, &b.address, &registry, &revoked).await["active"] == false
    })
    .await
    .expect("the revocation must reach instance B");
    println!("revocation seen by instance B after {took:?}");
    assert!(took <= Duration::from_millis(1000), "took {took:?}");

    // Suspension (through the CLI, as an operator would): B drops its cached client state at
    // its next epoch poll.
    let env = env_for(&a.db.url, a.data_dir.path());
    assert!(run_cli(&["client", "suspend", &partner.id, "--reason", "breach"], &env, "").await.ok());
    let took = within(Duration::from_secs(2), || async {
        introspect_at(&a, &b.address, &registry, &token).await["active"] == false
    })
    .await
    .expect("the suspension must reach instance B");
    println!("suspension seen by instance B after {took:?}");
    assert!(took <= Duration::from_millis(1000), "took {took:?}");
    let (status, body) = post(&a, &b.address, "/token", &partner, "grant_type=client_credentials").await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(
        introspect_at(&a, &b.address, &registry, &other).await["active"],
        true,
        "other clients unaffected"
    );

    // Resuming never revives tokens issued before the suspension.
    assert!(run_cli(&["client", "resume", &partner.id, "--reason", "fixed"], &env, "").await.ok());
    within(Duration::from_secs(2), || async {
        post(&a, &b.address, "/token", &partner, "grant_type=client_credentials").await.0 == 200
    })
    .await
    .expect("resumed");
    assert_eq!(introspect_at(&a, &b.address, &registry, &token).await["active"], false);
    drop(b);
}

#[tokio::test]
async fn introspection_reads_revocations_from_the_feed_not_the_store_per_request() {
    let app = spawn_app().await;
    let registry = register(&app, &["--introspection"]).await;
    let partner = register(&app, &[]).await;
    let token = token_for(&app, &partner).await;
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&token).unwrap().claims;
    let jti = claims["jti"].as_str().unwrap();
    let feed = app.state.verified.feed.clone();
    let start = Instant::now();
    while !feed.fresh() {
        assert!(start.elapsed() < Duration::from_secs(2), "the feed never became fresh");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = &app.sessions.store;
    let key = format!("revoked:jti:{jti}");
    // An entry written without announcing it is not looked up per request while the feed is
    // fresh: introspection asks the store nothing on its hot path.
    store.put(&key, b"1", Duration::from_secs(600)).await.unwrap();
    assert_eq!(introspect_at(&app, &app.address, &registry, &token).await["active"], true);
    // Announced as another instance does (index, then counter), it is seen within a poll.
    store.put_indexed("revoked-jtis", &key, b"1", Duration::from_secs(600)).await.unwrap();
    store.increment("revoked-gen", Duration::from_secs(3600)).await.unwrap();
    let announced = Instant::now();
    while introspect_at(&app, &app.address, &registry, &token).await["active"] == true {
        assert!(announced.elapsed() < Duration::from_secs(1), "not seen within a second");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_local_map_that_starts_over_during_a_poll_is_read_again_not_trusted() {
    let app = spawn_app().await;
    let registry = register(&app, &["--introspection"]).await;
    let partner = register(&app, &[]).await;
    let (a, b) = (token_for(&app, &partner).await, token_for(&app, &partner).await);
    let jti = |t: &str| {
        jsonwebtoken::dangerous::insecure_decode::<Value>(t).unwrap().claims["jti"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // The local map one short of its bound: the next poll's second entry makes it start over,
    // dropping the first.
    for i in 0..(pramaan_server::oidc::introspect::MAX_JTIS - 1) {
        app.state.verified.mark_revoked(&format!("filler-{i}"), i64::MAX);
    }
    let store = &app.sessions.store;
    for t in [&a, &b] {
        let key = format!("revoked:jti:{}", jti(t));
        store.put_indexed("revoked-jtis", &key, b"1", Duration::from_secs(600)).await.unwrap();
    }
    store.increment("revoked-gen", Duration::from_secs(3600)).await.unwrap();
    app.state.verified.feed.poll(&app.state).await.unwrap();
    // Whatever that poll lost, the feed reads the list again before trusting its copy.
    let start = Instant::now();
    loop {
        let (ra, rb) = (
            introspect_at(&app, &app.address, &registry, &a).await,
            introspect_at(&app, &app.address, &registry, &b).await,
        );
        if ra["active"] == false && rb["active"] == false {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "a revoked token stayed active: {ra} {rb}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And stays so once the copy is fresh again.
    let start = Instant::now();
    while !app.state.verified.feed.fresh() {
        assert!(start.elapsed() < Duration::from_secs(2), "the feed never became fresh again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(introspect_at(&app, &app.address, &registry, &a).await["active"], false);
    assert_eq!(introspect_at(&app, &app.address, &registry, &b).await["active"], false);
}
