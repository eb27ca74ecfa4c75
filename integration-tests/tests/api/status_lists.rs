//! Token status lists (issue 7): every access token names a bit in its client's list, and a
//! resource server that validates tokens locally — the [`Registry`] here, which has no way to
//! call introspection — rejects a token once that bit is set: after its client is suspended,
//! the token revoked, its account disabled or cut off by a reset campaign. Also what the list
//! endpoint serves (signed, conditional, bounded) and that instances never share an index.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pramaan_integration_tests::browser::{
    Browser, PASSWORD, REDIRECT, Registered, code_for, create_user, disable_user, post_form, public_client,
    register_client,
};
use pramaan_integration_tests::cli::{env_for, run_cli};
use pramaan_integration_tests::registry::Registry;
use pramaan_integration_tests::{TestApp, spawn_app_with};
use serde_json::Value;

async fn partner(app: &TestApp, name: &str, category: &str) -> Registered {
    register_client(
        app,
        &[
            "--name",
            name,
            "--category",
            category,
            "--grant",
            "client_credentials",
            "--scope",
            "registry.read",
        ],
    )
    .await
}

async fn cc_token(app: &TestApp, c: &Registered) -> String {
    let (status, body) = post_form(
        app,
        "/token",
        Some((&c.id, c.secret.as_deref().unwrap())),
        &[("grant_type", "client_credentials"), ("scope", "registry.read")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A person's tokens (access, refresh) through the pages and the code exchange.
async fn user_tokens(app: &TestApp, field_app: &Registered, username: &str) -> (String, String) {
    let browser = Browser::new(app);
    let (code, verifier) =
        code_for(app, &browser, &field_app.id, REDIRECT, "openid registry.read", username, PASSWORD).await;
    let (status, body) = post_form(
        app,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &field_app.id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned())
}

fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token).unwrap().claims
}

/// Checks `token` until the registry rejects it; how long that took. Fails after `limit`.
async fn until_rejected(registry: &Registry, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match registry.check(token).await {
            Err(why) => {
                assert_eq!(why, "revoked (status list)");
                return start.elapsed();
            }
            Ok(_) => {
                assert!(start.elapsed() < limit, "still accepted after {:?}", start.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_registry_rejects_a_suspended_clients_token_within_the_lists_ttl_without_introspection() {
    let app = spawn_app_with(|s| s.tokens.status_list_ttl_secs = 5).await;
    let private = partner(&app, "pharmacy chain", "private").await;
    let government = partner(&app, "state health dept", "government").await;
    let (p1, g1) = (cc_token(&app, &private).await, cc_token(&app, &government).await);
    let registry = Registry::new(&app.address, &app.address).await;
    assert!(registry.check(&p1).await.is_ok());
    assert!(registry.check(&g1).await.is_ok());
    assert_eq!(registry.list_requests.load(Ordering::SeqCst), 2, "one list per client");
    // Within the ttl the registry asks nothing.
    let p2 = cc_token(&app, &private).await;
    assert!(registry.check(&p2).await.is_ok());
    assert_eq!(registry.list_requests.load(Ordering::SeqCst), 2);

    // The kill switch, pulled from the CLI (another process, as an operator would).
    let env = env_for(&app.db.url, app.data_dir.path());
    let run = run_cli(&["client", "suspend", &private.id, "--reason", "leak"], &env, "").await;
    assert!(run.ok(), "{}", run.stderr);
    // The registry fetched the list just before the action, so it fetches it again within the
    // ttl of the action; by then the served list (rebuilt within a second) shows it.
    let took = until_rejected(&registry, &p1, Duration::from_secs(7)).await;
    println!(
        "status list: suspended client's token rejected by the registry {took:?} after the action returned"
    );
    assert!(took <= Duration::from_secs(5), "took {took:?}, beyond the list's ttl");
    assert_eq!(registry.check(&p2).await.unwrap_err(), "revoked (status list)");
    assert!(registry.check(&g1).await.is_ok(), "another client's token is untouched");
    assert!(registry.list_requests.load(Ordering::SeqCst) >= 3, "the registry refreshed the list");
}

#[tokio::test]
async fn revoking_a_token_sets_its_bit_and_no_other() {
    let app = spawn_app_with(|s| s.tokens.status_list_ttl_secs = 1).await;
    let p = partner(&app, "lab network", "private").await;
    let (a, b) = (cc_token(&app, &p).await, cc_token(&app, &p).await);
    let (ia, ib) = (
        claims(&a)["status"]["status_list"]["idx"].clone(),
        claims(&b)["status"]["status_list"]["idx"].clone(),
    );
    assert_ne!(ia, ib, "each token has its own index");
    let registry = Registry::new(&app.address, &app.address).await;
    assert!(registry.check(&a).await.is_ok() && registry.check(&b).await.is_ok());
    let (status, _) =
        post_form(&app, "/revoke", Some((&p.id, p.secret.as_deref().unwrap())), &[("token", &a)]).await;
    assert_eq!(status, 200);
    until_rejected(&registry, &a, Duration::from_secs(3)).await;
    assert!(registry.check(&b).await.is_ok(), "the other token of the same client stays valid");
    // Another client cannot revoke it (RFC 7009 §2.1: left alone), so its bit stays clear.
    let q = partner(&app, "other", "private").await;
    let (status, _) =
        post_form(&app, "/revoke", Some((&q.id, q.secret.as_deref().unwrap())), &[("token", &b)]).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(registry.check(&b).await.is_ok(), "a stranger's revocation changes nothing");
}

#[tokio::test]
async fn a_persons_tokens_follow_their_account_their_login_and_reset_campaigns() {
    let app = spawn_app_with(|s| s.tokens.status_list_ttl_secs = 1).await;
    let field_app = public_client(&app, &[]).await;
    let asha = create_user(&app, "asha", PASSWORD, false).await;
    create_user(&app, "ravi", PASSWORD, false).await;
    create_user(&app, "meera", PASSWORD, false).await;
    let (asha_at, _) = user_tokens(&app, &field_app, "asha").await;
    let (ravi_at, _) = user_tokens(&app, &field_app, "ravi").await;
    let (meera_at, meera_rt) = user_tokens(&app, &field_app, "meera").await;
    let registry = Registry::new(&app.address, &app.address).await;
    for t in [&asha_at, &ravi_at, &meera_at] {
        assert!(registry.check(t).await.is_ok());
    }
    // A disabled account.
    disable_user(&app, &asha).await;
    until_rejected(&registry, &asha_at, Duration::from_secs(3)).await;
    // A reset campaign over ravi, from the CLI.
    let list = app.data_dir.path().join("leaked.txt");
    std::fs::write(&list, "ravi\n").unwrap();
    let env = env_for(&app.db.url, app.data_dir.path());
    let run =
        run_cli(&["campaign", "start", "--users", list.to_str().unwrap(), "--reason", "leak"], &env, "")
            .await;
    assert!(run.ok(), "{}", run.stderr);
    until_rejected(&registry, &ravi_at, Duration::from_secs(3)).await;
    // Revoking the refresh token revokes the access token issued with it (RFC 7009 §2.1).
    assert!(registry.check(&meera_at).await.is_ok(), "meera is untouched so far");
    let (status, _) =
        post_form(&app, "/revoke", None, &[("token", &meera_rt), ("client_id", &field_app.id)]).await;
    assert_eq!(status, 200);
    until_rejected(&registry, &meera_at, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn the_list_is_a_signed_conditional_bounded_document() {
    let app = spawn_app_with(|s| s.tokens.status_list_ttl_secs = 30).await;
    let p = partner(&app, "lab network", "private").await;
    let token = cc_token(&app, &p).await;
    let status = claims(&token)["status"]["status_list"].clone();
    let uri = status["uri"].as_str().unwrap().to_owned();
    assert_eq!(uri, format!("{}/statuslists/{}/0", app.address, p.id));
    let resp = app.client.get(&uri).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/statuslist+jwt");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let jwt = resp.text().await.unwrap();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.typ.as_deref(), Some("statuslist+jwt"));
    let list = claims(&jwt);
    assert_eq!((list["sub"].as_str(), list["ttl"].as_u64()), (Some(uri.as_str()), Some(30)), "{list}");
    assert!(list["exp"].as_i64().unwrap() > list["iat"].as_i64().unwrap());
    // A million valid tokens compress to almost nothing.
    assert!(list["status_list"]["lst"].as_str().unwrap().len() < 400, "{}", list["status_list"]["lst"]);
    // Unchanged: the same ETag, and a conditional request gets 304 without a body.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = app.client.get(&uri).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    // Lists that do not exist, and paths that are not lists.
    for path in [
        format!("/statuslists/{}/1", p.id),
        "/statuslists/nobody/0".to_owned(),
        format!("/statuslists/{}/-1", p.id),
        format!("/statuslists/{}/x", p.id),
        format!("/statuslists/{}/99999999999999999999", p.id),
    ] {
        assert_eq!(app.get(&path).await.status(), 404, "{path}");
    }
    // Suspended: every bit of the list is set, and the ETag moves.
    let env = env_for(&app.db.url, app.data_dir.path());
    assert!(run_cli(&["client", "suspend", &p.id, "--reason", "drill"], &env, "").await.ok());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let changed = app.client.get(&uri).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn instances_never_give_one_index_twice_and_a_resume_revives_nothing() {
    let app = spawn_app_with(|s| s.tokens.status_list_ttl_secs = 1).await;
    let b = app.spawn_sibling().await;
    let p = partner(&app, "lab network", "private").await;
    let mut seen = std::collections::HashSet::new();
    let mut old = Vec::new();
    for i in 0..40 {
        let base = if i % 2 == 0 { app.address.clone() } else { b.address.clone() };
        let (status, body) = post_form_at(&app, &base, &p).await;
        assert_eq!(status, 200, "{body}");
        let t = body["access_token"].as_str().unwrap().to_owned();
        let s = &claims(&t)["status"]["status_list"];
        assert!(
            seen.insert((s["uri"].as_str().unwrap().to_owned(), s["idx"].as_u64().unwrap())),
            "{s} given twice"
        );
        old.push(t);
    }
    let registry = Registry::new(&app.address, &app.address).await;
    assert!(registry.check(&old[0]).await.is_ok() && registry.check(&old[1]).await.is_ok());
    let env = env_for(&app.db.url, app.data_dir.path());
    assert!(run_cli(&["client", "suspend", &p.id, "--reason", "drill"], &env, "").await.ok());
    until_rejected(&registry, &old[1], Duration::from_secs(3)).await;
    assert!(run_cli(&["client", "resume", &p.id, "--reason", "cleared"], &env, "").await.ok());
    // Once both instances have seen the resume, new tokens are good and old ones stay dead.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, body) = post_form_at(&app, &b.address, &p).await;
    let fresh = body["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    registry.check(&fresh).await.unwrap();
    for t in &old {
        assert_eq!(registry.check(t).await.unwrap_err(), "revoked (status list)");
    }
}

async fn post_form_at(app: &TestApp, base: &str, c: &Registered) -> (u16, Value) {
    let resp = app
        .client
        .post(format!("{base}/token"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[("grant_type", "client_credentials"), ("scope", "registry.read")])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}
