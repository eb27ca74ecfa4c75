//! The status-list size report (issue 7): hands out N indexes (default 1,000,000) to one
//! client through the server's own allocator (`StatusLists::assign`, the path every token
//! takes), then revokes a share of them at random and fetches the served list
//! (`GET /statuslists/{client}/{n}`) from the running server, reporting its size and how long
//! the rebuild took.
//!
//! Backend as in the tests: PostgreSQL when `PRAMAAN_TEST_DATABASE_URL` is set, else SQLite.
//! Run with a release build: `bench/status-list.sh`.
//!
//!   status_list_size [TOKENS]

use std::time::{Duration, Instant};

use pramaan_integration_tests::spawn_app;
use pramaan_server::domain::{
    AuthMethod, ClientCategory, ClientId, ClientRegistration, ClientStatus, ClientType, GrantType, Scope,
};
use pramaan_server::oidc::status_lists::{LIST_LEN, REBUILD_AFTER};
use pramaan_server::store::status_lists::{self, Place};
use pramaan_server::store::{DbError, clients, write_transaction};
use rand::seq::index::sample;

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).map_or(1_000_000, |s| s.parse().expect("TOKENS is a number"));
    let app = spawn_app().await;
    let id = ClientId::from_string("partner".into());
    let now = app.core.clock.now();
    let reg = ClientRegistration {
        name: "partner".into(),
        category: ClientCategory::Private,
        client_type: ClientType::Confidential,
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        grant_types: vec![GrantType::ClientCredentials],
        scopes: vec![Scope::parse("registry.read").expect("scope")],
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        jwks: None,
        access_token_ttl_secs: 3600,
        refresh_token_ttl_secs: 0,
        first_party: false,
        can_introspect: false,
    };
    let cid = id.clone();
    app.core.db.run(move |c| clients::insert(c, &cid, &reg, Some("x"), now)).await.expect("client");
    let client = app.core.db.run(move |c| clients::find(c, &id)).await.expect("lookup").expect("client");

    let started = Instant::now();
    let mut places = Vec::with_capacity(n);
    for _ in 0..n {
        let (_, place, _) =
            app.state.status_lists.assign(&app.core, &app.address, &client).await.expect("index");
        places.push(place);
    }
    let took = started.elapsed();
    let lists: std::collections::BTreeSet<i64> = places.iter().map(|p| p.list_no).collect();
    println!(
        "backend: {}\nindexes handed out: {n} in {took:.2?} ({:.0}/s), {} list(s) of {LIST_LEN}",
        pramaan_integration_tests::backends(),
        n as f64 / took.as_secs_f64(),
        lists.len()
    );
    println!("\n| revoked | list 0 served (bytes) | lst (chars) | rebuild + fetch |");
    println!("| ---: | ---: | ---: | ---: |");
    let uri = format!("{}/statuslists/partner/0", app.address);
    let mut revoked = 0usize;
    for share in [0.0, 0.001, 0.01, 0.1] {
        // Revoke up to `share` of the tokens (at random), in one transaction.
        let want = (n as f64 * share) as usize;
        let extra: Vec<Place> = if want > revoked {
            sample(&mut rand::rng(), n, want - revoked).into_iter().map(|i| places[i].clone()).collect()
        } else {
            Vec::new()
        };
        revoked = want.max(revoked);
        let exp = now + chrono::Duration::hours(1);
        app.core
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    for p in &extra {
                        status_lists::revoke_at(c, p, "x", exp)?;
                    }
                    Ok::<_, DbError>(())
                })
            })
            .await
            .expect("revocations");
        report(&app.client, &uri, &format!("{:.1} %", share * 100.0)).await;
    }
    let cid = ClientId::from_string("partner".into());
    app.core
        .db
        .run(move |c| clients::set_status(c, &cid, ClientStatus::Suspended, chrono::Utc::now()))
        .await
        .expect("suspend");
    report(&app.client, &uri, "client suspended").await;
}

/// Waits out the served copy's life, then fetches the list once (the rebuild) and reports.
async fn report(http: &reqwest::Client, uri: &str, label: &str) {
    tokio::time::sleep(REBUILD_AFTER + Duration::from_millis(100)).await;
    let t = Instant::now();
    let body = http.get(uri).send().await.expect("fetch").text().await.expect("body");
    let took = t.elapsed();
    let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&body).expect("a JWT").claims;
    let lst = claims["status_list"]["lst"].as_str().expect("lst").len();
    println!("| {label} | {} | {lst} | {took:.1?} |", body.len());
}
