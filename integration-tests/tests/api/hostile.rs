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

/// A login form opened once, for posting many passwords at it: the form's fields and the
/// cookie that goes with them.
struct LoginForm {
    url: String,
    cookie: String,
    csrf: String,
    request: String,
}

impl LoginForm {
    async fn open(app: &TestApp, client_id: &str) -> Self {
        let (_, challenge) = pkce();
        let b = Browser::new(app);
        let page =
            b.follow(b.get(&authorize_url(app, client_id, REDIRECT, "openid", &challenge, &[])).await).await;
        let html = page.text().await.unwrap();
        Self {
            url: format!("{}/login", app.address),
            cookie: b.cookie_header(app).expect("the login page set a cookie"),
            csrf: hidden(&html, "csrf").unwrap(),
            request: hidden(&html, "request").unwrap(),
        }
    }

    /// Posts `username` and `password` with `http` (a task of its own can own the future).
    fn post(&self, http: &reqwest::Client, username: &str, password: &str) -> reqwest::RequestBuilder {
        http.post(&self.url).header("cookie", &self.cookie).form(&[
            ("csrf", self.csrf.as_str()),
            ("request", &self.request),
            ("username", username),
            ("password", password),
        ])
    }
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
    assert!(ready.headers().get("strict-transport-security").is_none(), "no HSTS on a plain-http issuer");
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
    let form = Arc::new(LoginForm::open(&app, &client.id).await);
    let guess = |password: String| {
        let (http, form) = (app.client.clone(), form.clone());
        async move {
            let resp = form.post(&http, "vacc1", &password).send().await.unwrap();
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
    // Unjudged: locked, or more at once than guesses were left before the lock.
    let unjudged = refusals
        .iter()
        .filter(|d| d.contains("\"reason\":\"locked\"") || d.contains("\"reason\":\"too_many_at_once\""))
        .count();
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
async fn a_locked_account_sends_the_right_password_nowhere_even_one_guess_at_a_time() {
    use pramaan_server::clock::Clock as _;
    let stub = SmsStub::start().await;
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |s| stub.configure(s)).await;
    // A vaccinator: the right password would lead on to a code by SMS.
    staff(&app, "vacc2", &["vaccinator"], Some("+919812345679")).await;
    let client = public_client(&app, &[]).await;
    let form = LoginForm::open(&app, &client.id).await;
    let threshold = app.core.settings.login.lockout_threshold;
    for i in 0..threshold {
        let resp = form.post(&app.client, "vacc2", &format!("wrong {i}")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    // Nothing else is in progress now: only the lock can refuse it.
    let resp = form.post(&app.client, "vacc2", PASSWORD).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the login page again, not the factor step");
    assert!(resp.text().await.unwrap().contains("not right"));
    let log = audit_log(&app).await;
    assert!(
        log.iter()
            .any(|(a, o, d)| a == "login.password" && o == "failure" && d.contains("\"reason\":\"locked\"")),
        "the right password was refused as locked, unjudged"
    );
    assert!(!log.iter().any(|(a, o, _)| a == "login.password" && o == "success"));
    assert!(stub.received().is_empty(), "no code was sent");
    // The lock ends at its instant, not a microsecond later: then the right password is judged.
    let until = pramaan_integration_tests::browser::find_user(&app, "vacc2").await.locked_until.unwrap();
    clock.advance(until - clock.now());
    let resp = form.post(&app.client, "vacc2", PASSWORD).send().await.unwrap();
    assert_eq!(resp.status(), 303, "the password step passed, on to what comes next");
    let to = pramaan_integration_tests::browser::location(&resp);
    assert!(to.starts_with("/authorize/resume"), "{to}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checks_whose_client_hung_up_leave_nothing_behind() {
    let app = spawn_app().await;
    let client = public_client(&app, &[]).await;
    create_user(&app, "asha", PASSWORD, false).await;
    let form = Arc::new(LoginForm::open(&app, &client.id).await);
    let before = app.sessions.entry_count().await;
    // Wrong passwords for a real account (fewer than the threshold) and guesses at a name
    // nobody has, each abandoned by its client a few milliseconds in, at every stage of its
    // check.
    let mut abandoned = JoinSet::new();
    for i in 0..24u64 {
        let username = if i % 6 == 0 { "asha" } else { "nobody-by-this-name" };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(1 + i % 8))
            .build()
            .unwrap();
        let form = form.clone();
        abandoned.spawn(async move {
            let _ = form.post(&http, username, &format!("wrong {i}")).send().await;
        });
    }
    abandoned.join_all().await;
    // The checks go on without their clients, then let go of their count.
    let mut left = u64::MAX;
    for _ in 0..3000 {
        left = app.sessions.entry_count().await;
        if left == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left, before, "no check in progress is left counted");
    for name in ["asha", "nobody-by-this-name"] {
        let held = app.sessions.store.get(&format!("password-checks:{name}")).await.unwrap();
        assert_eq!(held, None, "{name}");
    }
    // And the owner signs in: nothing abandoned counts against her.
    let (_, challenge) = pkce();
    let url = authorize_url(&app, &client.id, REDIRECT, "openid", &challenge, &[]);
    let back = Browser::new(&app).sign_in(&url, "asha", PASSWORD).await;
    let to = pramaan_integration_tests::browser::location(&back);
    assert!(to.starts_with(REDIRECT) && to.contains("code="), "{to}");
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

/// A plain HTTP client whose connections come from `from`.
fn client_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(from)
        .build()
        .unwrap()
}

async fn refusal_events(app: &TestApp) -> Vec<serde_json::Value> {
    // The tallies of the minute in progress, as the minute's end would write them.
    let later = app.core.clock.now() + chrono::TimeDelta::minutes(2);
    app.state.limits.flush(&app.core.audit, later, false).await;
    audit_log(app)
        .await
        .into_iter()
        .filter(|(a, _, _)| a == "rate_limit.refused")
        .map(|(_, _, d)| serde_json::from_str(&d).unwrap())
        .collect()
}

#[tokio::test]
async fn password_attempts_from_one_address_are_limited_and_another_address_is_not() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |s| s.limits.password_attempts_per_minute = 5).await;
    let client = public_client(&app, &[]).await;
    create_user(&app, "asha", PASSWORD, false).await;
    let (_, challenge) = pkce();
    let url = authorize_url(&app, &client.id, REDIRECT, "openid", &challenge, &[]);
    let attacker = Browser::from_address(&app, Some(loopback(1)));
    let page = attacker.follow(attacker.get(&url).await).await.text().await.unwrap();
    let (csrf, request) = (hidden(&page, "csrf").unwrap(), hidden(&page, "request").unwrap());
    // Five guesses at five accounts (no lockout involved), then the address is refused.
    for i in 0..5 {
        let user = format!("user{i}");
        let form =
            [("csrf", csrf.as_str()), ("request", &request), ("username", &user), ("password", "guess")];
        assert_eq!(attacker.post("/login", &form).await.status(), 200);
    }
    let form = [("csrf", csrf.as_str()), ("request", &request), ("username", "asha"), ("password", PASSWORD)];
    let refused = attacker.post("/login", &form).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "12", "five a minute: one every 12 s");
    let html = refused.text().await.unwrap();
    assert!(html.contains("Too many attempts") && html.contains("Wait 1 minute"), "{html}");
    // The refused right password was not checked: no success, no failure in the trail for it.
    let log = audit_log(&app).await;
    assert_eq!(log.iter().filter(|(a, _, _)| a == "login.password").count(), 5);
    // Someone else, from another address, signs in as usual.
    let other = Browser::from_address(&app, Some(loopback(2)));
    let back = other.sign_in(&url, "asha", PASSWORD).await;
    assert!(pramaan_integration_tests::browser::location(&back).contains("code="));
    // The wait is over after one interval, for one more attempt.
    clock.advance(chrono::TimeDelta::seconds(12));
    let again = attacker.post("/login", &form).await;
    assert_eq!(again.status(), 303, "the right password, once the address may try again");
    let events = refusal_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["limit"], "password_attempts");
    assert_eq!(events[0]["count"], 1);
}

#[tokio::test]
async fn wrong_client_secrets_are_limited_per_address_and_then_even_the_right_one_is_refused() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |s| s.limits.client_auth_failures_per_minute = 3).await;
    let partner = pramaan_integration_tests::browser::partner_client(&app, "Partner").await;
    let secret = partner.secret.clone().unwrap();
    let token = |from: IpAddr, secret: String| {
        let (http, url, id) = (client_from(from), format!("{}/token", app.address), partner.id.clone());
        async move {
            let resp = http
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), retry, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    // Good traffic costs the limit nothing.
    for _ in 0..10 {
        assert_eq!(token(loopback(1), secret.clone()).await.0, 200);
    }
    for _ in 0..3 {
        assert_eq!(token(loopback(1), "wrong".into()).await.0, 401);
    }
    let (status, retry, body) = token(loopback(1), "wrong".into()).await;
    assert_eq!((status, retry.as_deref()), (429, Some("20")), "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    // Past the limit even the right secret is refused unchecked: a guesser learns nothing.
    assert_eq!(token(loopback(1), secret.clone()).await.0, 429);
    // The same limit at introspection, and another address is served.
    let introspect = client_from(loopback(1))
        .post(format!("{}/introspect", app.address))
        .basic_auth(&partner.id, Some(&secret))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(introspect.status(), 429);
    assert_eq!(token(loopback(2), secret.clone()).await.0, 200);
    // Only the client whose secret was guessed is refused at that address.
    let other = pramaan_integration_tests::browser::partner_client(&app, "Other").await;
    let resp = client_from(loopback(1))
        .post(format!("{}/token", app.address))
        .basic_auth(&other.id, other.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    clock.advance(chrono::TimeDelta::seconds(20));
    assert_eq!(token(loopback(1), secret.clone()).await.0, 200, "served again after Retry-After");
    let events = refusal_events(&app).await;
    assert_eq!(events.len(), 1, "one event for the minute, whatever the count: {events:?}");
    assert_eq!(events[0]["limit"], "client_auth_failures");
    assert_eq!(events[0]["count"], 3);
}

/// A public client (the staff portal) holds no secret, so junk credentials sent in its name
/// from a shared address must not get it refused there: the vaccinators behind that carrier NAT
/// still sign in through it.
#[tokio::test]
async fn junk_credentials_in_a_public_clients_name_never_refuse_it_at_that_address() {
    let app = spawn_app_at(fixed_clock(), |s| s.limits.client_auth_failures_per_minute = 3).await;
    let portal = public_client(&app, &[]).await;
    let token = |form: Vec<(&'static str, String)>| {
        let (http, url) = (client_from(loopback(1)), format!("{}/token", app.address));
        async move {
            let resp = http.post(url).form(&form).send().await.unwrap();
            (resp.status().as_u16(), resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let code_exchange = || {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("client_id", portal.id.clone()),
            ("code", "not-a-code".to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", "v".repeat(43)),
        ]
    };
    for _ in 0..6 {
        let mut junk = code_exchange();
        junk.push(("client_secret", "guess".to_owned()));
        let (status, body) = token(junk).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    }
    // The portal's own requests from that address are still judged, not refused unheard.
    let (status, body) = token(code_exchange()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert!(refusal_events(&app).await.is_empty());
}

#[tokio::test]
async fn a_reset_refused_at_a_capped_address_is_told_and_another_address_is_served() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |s| s.limits.reset_requests_per_hour = 2).await;
    let ask = |from: IpAddr, username: &'static str| {
        let b = Browser::from_address(&app, Some(from));
        async move {
            let page = b.get("/password/forgot").await.text().await.unwrap();
            let csrf = hidden(&page, "csrf").unwrap();
            let resp = b.post("/password/forgot", &[("csrf", &csrf), ("username", username)]).await;
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    // Two people behind one carrier NAT use up the address's share…
    assert_eq!(ask(loopback(1), "asha").await.0, 200);
    assert_eq!(ask(loopback(1), "ravi").await.0, 200);
    // …and the third is told, not shown "sent" for a request that went nowhere.
    let (status, html) = ask(loopback(1), "meena").await;
    assert_eq!(status, 429);
    assert!(html.contains("Too many attempts") && !html.contains("Check your email or phone"), "{html}");
    assert_eq!(ask(loopback(2), "meena").await.0, 200, "another address is not affected");
}

#[tokio::test]
async fn an_address_that_keeps_asking_for_unknown_clients_is_refused_for_a_while() {
    let clock = fixed_clock();
    let app = spawn_app_at(clock.clone(), |s| s.limits.unknown_lookups_per_minute = 4).await;
    let http = client_from(loopback(1));
    let status_of = |path: String| {
        let (http, url) = (http.clone(), format!("{}{path}", app.address));
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    for i in 0..4 {
        assert_eq!(status_of(format!("/statuslists/nobody-{i}/0")).await, 404);
    }
    assert_eq!(status_of("/statuslists/nobody-5/0".into()).await, 429);
    let (_, challenge) = pkce();
    assert_eq!(
        status_of(
            authorize_url(&app, "nobody", REDIRECT, "openid", &challenge, &[])[app.address.len()..]
                .to_owned()
        )
        .await,
        429
    );
    let other = client_from(loopback(2));
    assert_eq!(
        other.get(format!("{}/statuslists/nobody-9/0", app.address)).send().await.unwrap().status(),
        404
    );
    // A client this instance knows (it served it before, here to another address) is served
    // to the refused address all the same: a hostile page that makes a shared address probe
    // junk cannot shut its people out of sign-in.
    let known = public_client(&app, &[]).await;
    let url = authorize_url(&app, &known.id, REDIRECT, "openid", &challenge, &[]);
    assert_eq!(other.get(&url).send().await.unwrap().status(), 303);
    assert_eq!(status_of(url[app.address.len()..].to_owned()).await, 303);
}
