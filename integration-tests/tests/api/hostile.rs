//! Hostile traffic, as one machine with no credentials would send it: floods of anonymous page
//! views, many password guesses at once, slow and oversized bodies, more connections than one
//! address should hold, and NUL bytes in every identifier. Every loop is bounded and every
//! request goes to loopback. Nothing here asserts a duration: it asserts what was stored,
//! counted, answered and refused (timings belong in `bench/`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pramaan_integration_tests::admin::{console_client, first_admin_login, staff_in};
use pramaan_integration_tests::browser::{
    Browser, PASSWORD, REDIRECT, authorize_url, create_user, hidden, pkce, public_client,
};
use pramaan_integration_tests::sms_gateway::SmsStub;
use pramaan_integration_tests::two_factor::{fixed_clock, staff};
use pramaan_integration_tests::{TestApp, spawn_app, spawn_app_at, spawn_app_with};
use pramaan_server::store::audit_events;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::task::JoinSet;

/// The anonymous page views of the flood test.
const FLOOD: usize = 200_000;

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A connection to the app from the loopback address `from`.
async fn connect(app: &TestApp, from: IpAddr) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(SocketAddr::from(([127, 0, 0, 1], app.port))).await.unwrap()
}

/// Reads what the server sends until it closes the connection (bounded, so a server that never
/// answers fails the test instead of hanging it). Returns the status and the whole response.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server neither answered nor closed: {}", String::from_utf8_lossy(&buf));
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// A request head declaring a body of `length` bytes, followed by `sent` of them.
fn slow_post(path: &str, length: usize, sent: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {length}\r\n\r\n{sent}"
    )
}

async fn audit_log(app: &TestApp) -> Vec<(String, String, String)> {
    let filter = audit_events::AuditFilter::default();
    app.core
        .db
        .run(move |c| audit_events::page(c, &filter, 10_000))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.outcome, r.details))
        .collect()
}

#[tokio::test]
async fn two_hundred_thousand_anonymous_page_views_store_nothing_and_sign_in_still_works() {
    println!("hostile suite on {}", pramaan_integration_tests::backends());
    let app = spawn_app().await;
    let client = public_client(&app, &[]).await;
    create_user(&app, "asha", PASSWORD, false).await;
    let (_, challenge) = pkce();
    // Each view of the sign-in flow used to store a session for 15 minutes.
    let targets = Arc::new([
        authorize_url(&app, &client.id, REDIRECT, "openid", &challenge, &[]),
        format!("{}/password/forgot", app.address),
        format!("{}/login?request=AAAAAAAAAAAAAAAAAAAAAA", app.address),
        format!("{}/account", app.address),
    ]);
    let before = app.sessions.entry_count().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let mut flood = JoinSet::new();
    for _ in 0..16 {
        let (http, next, targets) = (http.clone(), next.clone(), targets.clone());
        flood.spawn(async move {
            let mut server_errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= FLOOD {
                    return server_errors;
                }
                let resp = http.get(&targets[i % targets.len()]).send().await.unwrap();
                server_errors += usize::from(resp.status().is_server_error());
                let _ = resp.bytes().await;
            }
        });
    }
    let server_errors: usize = flood.join_all().await.into_iter().sum();
    assert_eq!(server_errors, 0, "a flood of page views is no reason to fail");
    assert_eq!(app.sessions.entry_count().await, before, "anonymous page views stored nothing");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    // Someone else, from another address, signs in as usual.
    let b = Browser::from_address(&app, Some(loopback(2)));
    let url = authorize_url(&app, &client.id, REDIRECT, "openid", &challenge, &[]);
    let back = b.sign_in(&url, "asha", PASSWORD).await;
    let to = pramaan_integration_tests::browser::location(&back);
    assert!(to.starts_with(REDIRECT) && to.contains("code="), "{to}");
    assert!(app.sessions.entry_count().await > before, "a real login is stored");
}

#[tokio::test]
async fn a_session_store_near_its_limit_makes_readyz_say_so() {
    if pramaan_integration_tests::sessions::backend_name() != "memory" {
        // Redis reports against its `maxmemory`, which the shared test server does not set.
        println!("skipped on Redis: the memory store's limit is what this checks");
        return;
    }
    let app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let usage = app.state.sessions.usage().await.unwrap().unwrap();
    let fill = usage.limit * 9 / 10 - usage.used;
    for i in 0..fill {
        app.state.sessions.put(&format!("filler:{i}"), b"x", Duration::from_secs(600)).await.unwrap();
    }
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["sessions"], "near_full", "{body}");
    assert_eq!(body["database"], "ok", "{body}");
}

#[tokio::test]
async fn sixty_guesses_at_once_judge_at_most_the_threshold_and_the_right_password_reaches_nothing() {
    let stub = SmsStub::start().await;
    let app = spawn_app_with(|s| stub.configure(s)).await;
    // A vaccinator: the right password would lead on to a code by SMS.
    let user = staff(&app, "vacc1", &["vaccinator"], Some("+919812345678")).await;
    let client = public_client(&app, &[]).await;
    let (_, challenge) = pkce();
    let b = Browser::new(&app);
    let page =
        b.follow(b.get(&authorize_url(&app, &client.id, REDIRECT, "openid", &challenge, &[])).await).await;
    let html = page.text().await.unwrap();
    let (csrf, request) = (hidden(&html, "csrf").unwrap(), hidden(&html, "request").unwrap());
    let cookie = b.cookie_header(&app).expect("the login page set a cookie");
    let guess = |password: String| {
        let (http, cookie, csrf, request) =
            (app.client.clone(), cookie.clone(), csrf.clone(), request.clone());
        let url = format!("{}/login", app.address);
        async move {
            let resp = http
                .post(url)
                .header("cookie", cookie)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("request", &request),
                    ("username", "vacc1"),
                    ("password", &password),
                ])
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let mut wrong = JoinSet::new();
    for i in 0..59 {
        wrong.spawn(guess(format!("wrong guess {i}")));
    }
    // The right password goes in once the lock is set, while the wrong guesses are in flight.
    let mut locked = false;
    for _ in 0..3000 {
        if audit_log(&app).await.iter().any(|(a, _, _)| a == "login.lockout") {
            locked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(locked, "59 wrong guesses lock the account");
    let (status, right_html) = guess(PASSWORD.to_owned()).await;
    let answers = wrong.join_all().await;
    assert_eq!(status, 200, "the login page again, not a redirect onward");
    assert!(right_html.contains("not right"), "the same refusal as a wrong password");
    let threshold = app.core.settings.login.lockout_threshold as usize;
    let log = audit_log(&app).await;
    let refusals: Vec<&String> =
        log.iter().filter(|(a, o, _)| a == "login.password" && o == "failure").map(|(_, _, d)| d).collect();
    assert_eq!(refusals.len(), 60, "every guess is in the trail");
    let judged = refusals.iter().filter(|d| d.contains("wrong_password")).count();
    let unjudged = refusals.iter().filter(|d| d.contains("\"locked\"")).count();
    assert!(judged <= threshold, "{judged} passwords were checked; the lock allows {threshold}");
    assert_eq!(judged + unjudged, 60);
    assert!(
        !log.iter().any(|(a, o, _)| a == "login.password" && o == "success"),
        "the right password reached nothing"
    );
    assert!(stub.received().is_empty(), "no code was sent");
    // A locked account answers a right and a wrong password alike.
    let (_, wrong_html) = guess("another wrong one".to_owned()).await;
    assert_eq!(wrong_html, right_html.replace(PASSWORD, "another wrong one"));
    assert!(answers.iter().all(|(s, _)| *s == 200));
    let fresh = pramaan_integration_tests::browser::find_user(&app, user.username.as_str()).await;
    assert!(fresh.locked_until.is_some());
}

#[tokio::test]
async fn a_slow_body_gets_408_and_a_declared_body_over_the_limit_413_before_it_is_read() {
    let app = spawn_app_with(|s| s.http.body_read_timeout_secs = 1).await;
    for path in ["/token", "/login", "/password/forgot", "/admin/api/v1/users"] {
        let mut s = connect(&app, loopback(1)).await;
        s.write_all(slow_post(path, 100, "grant_type=cl").as_bytes()).await.unwrap();
        // …and nothing more: the server must give up on its own and close.
        let (status, text) = read_answer(&mut s).await;
        assert_eq!(status, 408, "{path}: {text}");
        assert!(text.to_ascii_lowercase().contains("connection: close"), "{path}: {text}");
    }
    for path in ["/token", "/introspect", "/login", "/admin/api/v1/users"] {
        let mut s = connect(&app, loopback(1)).await;
        // A gigabyte declared, not one byte of it sent.
        s.write_all(slow_post(path, 1 << 30, "").as_bytes()).await.unwrap();
        let (status, text) = read_answer(&mut s).await;
        assert_eq!(status, 413, "{path}: {text}");
    }
    // The OAuth endpoints answer in their own error shape (RFC 6749 §5.2).
    let mut s = connect(&app, loopback(1)).await;
    s.write_all(slow_post("/token", 1 << 30, "").as_bytes()).await.unwrap();
    let (_, text) = read_answer(&mut s).await;
    assert!(text.contains("\"error\":\"invalid_request\""), "{text}");
    // A body that arrives in time, however it is split, is read as usual.
    let mut s = connect(&app, loopback(1)).await;
    s.write_all(slow_post("/token", 29, "grant_type=client_").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"credentials").await.unwrap();
    s.write_all(b"\r\n").await.unwrap_or(());
    let mut head = vec![0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head[9..12], b"401", "a whole body reaches the endpoint: no client, so 401");
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_refused_and_another_address_is_served() {
    let app = spawn_app_with(|s| {
        s.http.max_connections_per_address = 4;
        s.http.body_read_timeout_secs = 2;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut s = connect(&app, loopback(1)).await;
        s.write_all(slow_post("/token", 100, "grant").as_bytes()).await.unwrap();
        held.push(s);
    }
    // While one address holds its share, another is served.
    let other = Browser::from_address(&app, Some(loopback(3)));
    assert_eq!(other.get("/healthz").await.status(), 200);
    assert_eq!(other.get("/.well-known/openid-configuration").await.status(), 200);
    let mut statuses = Vec::new();
    for s in &mut held {
        let (status, text) = read_answer(s).await;
        if status == 503 {
            assert!(text.to_ascii_lowercase().contains("retry-after"), "{text}");
        }
        statuses.push(status);
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [408, 408, 408, 408, 503, 503, 503, 503, 503, 503],
        "4 held until the body timed out"
    );
    drop(held);
    // The address's slots came back with its connections.
    for _ in 0..200 {
        if app.get("/healthz").await.status() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(Browser::from_address(&app, Some(loopback(1))).get("/healthz").await.status(), 200);
}

/// Every place an identifier enters, with a NUL byte in it.
#[tokio::test]
async fn nul_bytes_in_identifiers_are_refused_alike_on_every_backend() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    staff_in(&app, "nadmin", &["national_admin"], "in").await;
    let console = console_client(&app).await.id;
    let admin = first_admin_login(&app, &clock, &console, "nadmin").await.access_token;
    let get_paths = [
        "/authorize?client_id=a%00b&redirect_uri=x&response_type=code",
        "/statuslists/a%00b/0",
        "/login?request=a%00b",
        "/authorize/resume?request=a%00b",
        "/admin/api/v1/users/a%00b",
        "/admin/api/v1/clients/a%00b",
        "/admin/api/v1/users?q=a%00b",
    ];
    for path in get_paths {
        let resp = app.client.get(format!("{}{path}", app.address)).bearer_auth(&admin).send().await.unwrap();
        let status = resp.status().as_u16();
        assert!((400..500).contains(&status), "{path}: {status} {}", resp.text().await.unwrap());
    }
    let forms: [(&str, &str); 5] = [
        ("/token", "grant_type=client_credentials&client_id=a%00b&client_secret=s"),
        ("/introspect", "token=x&client_id=a%00b&client_secret=s"),
        ("/revoke", "token=a%00b&client_id=c&client_secret=s"),
        ("/login", "request=a%00b&csrf=x&username=a%00b&password=p"),
        ("/password/forgot", "username=a%00b&csrf=x"),
    ];
    for (path, body) in forms {
        let resp = app
            .client
            .post(format!("{}{path}", app.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!((400..500).contains(&status), "{path}: {status} {}", resp.text().await.unwrap());
    }
    // Basic authentication is decoded after the body: the store refuses to look the id up.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("a\0b:secret");
    let resp = app
        .client
        .post(format!("{}/token", app.address))
        .header("authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "an unknown client, as on SQLite");
    let resp = app
        .client
        .post(format!("{}/admin/api/v1/users", app.address))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"username": "nul\u{0}user", "display_name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
}
