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
    let body = signed_in(app, &Browser::new(app), field_app, username).await;
    (body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned())
}

/// Signs `username` in with `browser` and exchanges the code: the token response.
async fn signed_in(app: &TestApp, browser: &Browser, field_app: &Registered, username: &str) -> Value {
    let (code, verifier) =
        code_for(app, browser, &field_app.id, REDIRECT, "openid registry.read", username, PASSWORD).await;
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
    body
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
    let fetched = Instant::now();
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
    let returned = fetched.elapsed();
    // The registry fetches the list again when its ttl runs out, 5 s after it fetched it. A
    // served list shows a change within a second of it, so the guarantee is ttl + 1 s from
    // the action; when the action returned well before the ttl ran out (as here, unless the
    // machine is very slow), within the ttl, on the first fetch after it.
    let took = until_rejected(&registry, &p1, Duration::from_secs(8)).await;
    let since_fetch = fetched.elapsed();
    println!(
        "status list: suspended client's token rejected by the registry {took:?} after the action returned \
         ({returned:?} after the registry's last fetch)"
    );
    assert!(took <= Duration::from_secs(6), "took {took:?}: beyond ttl + 1 s");
    if returned < Duration::from_secs(3) {
        // Rejected at the registry's first check after its copy's ttl ran out (it checks every
        // 50 ms): within the ttl of the action.
        assert!(since_fetch <= Duration::from_millis(5_300), "{since_fetch:?} after the fetch");
        assert_eq!(registry.list_requests.load(Ordering::SeqCst), 3, "one refresh, when the ttl ran out");
    }
    assert_eq!(registry.check(&p2).await.unwrap_err(), "revoked (status list)");
    // A registry fetching everything afresh still accepts the other client's token.
    let fresh = Registry::new(&app.address, &app.address).await;
    assert!(fresh.check(&g1).await.is_ok(), "another client's token is untouched");
    assert_eq!(fresh.check(&p1).await.unwrap_err(), "revoked (status list)");
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
    until_rejected(&registry, &a, Duration::from_secs(5)).await;
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
    until_rejected(&registry, &asha_at, Duration::from_secs(5)).await;
    // A reset campaign over ravi, from the CLI.
    let list = app.data_dir.path().join("leaked.txt");
    std::fs::write(&list, "ravi\n").unwrap();
    let env = env_for(&app.db.url, app.data_dir.path());
    let run =
        run_cli(&["campaign", "start", "--users", list.to_str().unwrap(), "--reason", "leak"], &env, "")
            .await;
    assert!(run.ok(), "{}", run.stderr);
    until_rejected(&registry, &ravi_at, Duration::from_secs(5)).await;
    // Revoking the refresh token revokes the access token issued with it (RFC 7009 §2.1).
    assert!(registry.check(&meera_at).await.is_ok(), "meera is untouched so far");
    let (status, _) =
        post_form(&app, "/revoke", None, &[("token", &meera_rt), ("client_id", &field_app.id)]).await;
    assert_eq!(status, 200);
    until_rejected(&registry, &meera_at, Duration::from_secs(5)).await;
    // A logout ends the tokens of an app without refresh tokens too (there is nothing to
    // revoke but the login itself).
    let kiosk = register_client(
        &app,
        &[
            "--name",
            "kiosk",
            "--public",
            "--first-party",
            "--grant",
            "authorization_code",
            "--scope",
            "registry.read",
            "--redirect-uri",
            REDIRECT,
        ],
    )
    .await;
    create_user(&app, "kiran", PASSWORD, false).await;
    let browser = Browser::new(&app);
    let body = signed_in(&app, &browser, &kiosk, "kiran").await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    let kiran_at = body["access_token"].as_str().unwrap().to_owned();
    assert!(registry.check(&kiran_at).await.is_ok());
    let out = browser.get(&format!("/logout?id_token_hint={}", body["id_token"].as_str().unwrap())).await;
    assert_eq!(out.status(), 200, "signed out");
    until_rejected(&registry, &kiran_at, Duration::from_secs(5)).await;
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
        // A number, but beyond any list a client could reach.
        format!("/statuslists/{}/8796093022208", p.id),
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
    // 2,200 tokens, 16 in flight at a time, alternately from both instances: more than a
    // block each (1,024), their refills racing.
    let mut old = Vec::new();
    let mut batch = tokio::task::JoinSet::new();
    for i in 0..2200 {
        let base = if i % 2 == 0 { app.address.clone() } else { b.address.clone() };
        let (http, id, secret) = (app.client.clone(), p.id.clone(), p.secret.clone());
        batch.spawn(async move { token_at(&http, &base, &id, secret.as_deref()).await });
        if batch.len() == 16 || i == 2199 {
            while let Some(done) = batch.join_next().await {
                let (status, body) = done.unwrap();
                assert_eq!(status, 200, "{body}");
                old.push(body["access_token"].as_str().unwrap().to_owned());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for t in &old {
        let s = &claims(t)["status"]["status_list"];
        assert!(seen.insert(s["idx"].as_u64().unwrap()), "{s} given twice");
        assert_eq!(s["uri"].as_str().unwrap(), format!("{}/statuslists/{}/0", app.address, p.id));
    }
    assert!(seen.iter().filter(|&&i| i >= 2048).count() >= 100, "past a block on each instance");
    // Both instances serve the same list under the same ETag (a verifier behind a load
    // balancer revalidates against either).
    let list = format!("/statuslists/{}/0", p.id);
    let etag_at = |base: String| {
        let http = app.client.clone();
        let url = format!("{base}{list}");
        async move { http.get(url).send().await.unwrap().headers()["etag"].to_str().unwrap().to_owned() }
    };
    assert_eq!(etag_at(app.address.clone()).await, etag_at(b.address.clone()).await);

    let registry = Registry::new(&app.address, &app.address).await;
    assert!(registry.check(&old[0]).await.is_ok() && registry.check(&old[1]).await.is_ok());
    let env = env_for(&app.db.url, app.data_dir.path());
    assert!(run_cli(&["client", "suspend", &p.id, "--reason", "drill"], &env, "").await.ok());
    until_rejected(&registry, &old[1], Duration::from_secs(5)).await;
    assert!(run_cli(&["client", "resume", &p.id, "--reason", "cleared"], &env, "").await.ok());
    // Once both instances have seen the resume, new tokens are good and old ones stay dead.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = token_at(&app.client, &b.address, &p.id, p.secret.as_deref()).await;
    assert_eq!(status, 200, "instance B has seen the resume: {body}");
    let fresh = body["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    registry.check(&fresh).await.unwrap();
    for t in &old {
        assert_eq!(registry.check(t).await.unwrap_err(), "revoked (status list)");
    }
    // The list and introspection agree.
    let reg = register_client(
        &app,
        &["--name", "registry", "--category", "internal", "--grant", "client_credentials", "--introspection"],
    )
    .await;
    for (t, want) in [(&fresh, true), (&old[0], false), (&old[2199], false)] {
        let (status, v) =
            post_form(&app, "/introspect", Some((&reg.id, reg.secret.as_deref().unwrap())), &[("token", t)])
                .await;
        assert_eq!((status, v["active"].as_bool()), (200, Some(want)), "{v}");
    }
}

async fn token_at(http: &reqwest::Client, base: &str, id: &str, secret: Option<&str>) -> (u16, Value) {
    let resp = http
        .post(format!("{base}/token"))
        .basic_auth(id, secret)
        .form(&[("grant_type", "client_credentials"), ("scope", "registry.read")])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_stored_state_follows_accounts_logins_and_their_expiry_on_either_backend() {
    use pramaan_server::oidc::status_lists::{BLOCKS_PER_LIST, cut_blocks_before};
    use pramaan_server::store::status_lists::{self as sl, ListLookup, Place, UserToken};
    let app = spawn_app_with(|_| {}).await;
    let p = partner(&app, "field app", "government").await;
    let user = create_user(&app, "asha", PASSWORD, false).await;
    let now = chrono::Utc::now();
    let (cid, uid) = (p.id.clone(), user.id.to_string());
    let state = app
        .core
        .db
        .run(move |c| {
            let block = sl::take_block(c, &cid, now, now - chrono::Duration::days(2))?;
            assert_eq!(block, 0);
            let at = |idx| Place { client_id: cid.clone(), list_no: 0, idx };
            // (index, login, seconds until the login ends): live; its login expired; two of a
            // login logged out below.
            for (idx, sid, ends) in [(1, "s1", 3600), (2, "s2", -1), (3, "s3", 3600), (4, "s3", 3600)] {
                let (place, jti) = (at(idx), format!("j{idx}"));
                let token = UserToken {
                    at: &place,
                    jti: &jti,
                    user_id: &uid,
                    auth_time: now - chrono::Duration::minutes(5),
                    sid,
                    session_ends: now + chrono::Duration::seconds(ends),
                    expires_at: now + chrono::Duration::minutes(5),
                };
                sl::record_user_token(c, &token)?;
            }
            assert_eq!(sl::revoke_sid(c, "s3")?, vec![cid.clone()]);
            assert_eq!(sl::revoke_sid(c, "s3")?, Vec::<String>::new(), "a second logout changes nothing");
            assert_eq!(sl::revoke_jti(c, "j1")?, vec![cid.clone()]);
            assert_eq!(sl::revoke_jti(c, "nothing")?, Vec::<String>::new());
            // Twice: still one row.
            sl::revoke_at(c, &at(9), "j9", now + chrono::Duration::minutes(1))?;
            sl::revoke_at(c, &at(9), "j9", now + chrono::Duration::minutes(1))?;
            sl::revoke_at(c, &at(10), "j10", now - chrono::Duration::minutes(1))?; // expired: left out
            let found = sl::list_state(c, &cid, 0, BLOCKS_PER_LIST, now, cut_blocks_before)?;
            assert_eq!(
                sl::list_state(c, &cid, 1, BLOCKS_PER_LIST, now, cut_blocks_before)?,
                ListLookup::NotStarted { next_block: 1 }
            );
            assert_eq!(
                sl::list_state(c, "nobody", 0, BLOCKS_PER_LIST, now, cut_blocks_before)?,
                ListLookup::NoClient
            );
            Ok::<_, pramaan_server::store::DbError>(found)
        })
        .await
        .unwrap();
    let ListLookup::Found(mut list) = state else { panic!("{state:?}") };
    list.invalid.sort_unstable();
    assert_eq!(list.invalid, vec![1, 2, 3, 4, 9]);
    assert!(!list.suspended && list.blocks_cut_off.is_empty(), "{list:?}");
}

#[tokio::test]
async fn resuming_a_client_that_is_not_suspended_cuts_nothing_off() {
    let app = spawn_app_with(|s| s.tokens.status_list_ttl_secs = 1).await;
    let p = partner(&app, "lab network", "private").await;
    let token = cc_token(&app, &p).await;
    // A second later, so a moved cut-off would fall after the token's iat.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let env = env_for(&app.db.url, app.data_dir.path());
    let run = run_cli(&["client", "resume", &p.id, "--reason", "just in case"], &env, "").await;
    assert!(run.ok(), "{}", run.stderr);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(Registry::new(&app.address, &app.address).await.check(&token).await.is_ok());
    let reg = register_client(
        &app,
        &["--name", "registry", "--category", "internal", "--grant", "client_credentials", "--introspection"],
    )
    .await;
    let (status, v) =
        post_form(&app, "/introspect", Some((&reg.id, reg.secret.as_deref().unwrap())), &[("token", &token)])
            .await;
    assert_eq!((status, v["active"].as_bool()), (200, Some(true)), "{v}");
    let events =
        app.core.audit.page(pramaan_server::store::audit_events::AuditFilter::default(), 100).await.unwrap();
    let resume = events.iter().find(|e| e.action == "client.resume").expect("the request is audited");
    let details: Value = serde_json::from_str(&resume.details).unwrap();
    assert_eq!(details["changed"], false, "{details}");
}
