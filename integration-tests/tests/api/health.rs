use std::sync::Arc;
use std::time::Duration;

use pramaan_integration_tests::spawn_app;
use pramaan_server::http::Application;
use pramaan_server::sessions::redis::RedisStore;
use pramaan_server::state::AppState;

#[tokio::test]
async fn healthz_and_readyz_answer_200_when_everything_is_up() {
    let app = spawn_app().await;
    println!("backends: {}", pramaan_integration_tests::backends());
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"), "every response carries a request id");
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ready", "database": "ok", "sessions": "ok"}));
}

#[tokio::test]
async fn request_ids_differ_per_request() {
    let app = spawn_app().await;
    let a = app.get("/healthz").await.headers()["x-request-id"].clone();
    let b = app.get("/healthz").await.headers()["x-request-id"].clone();
    assert_ne!(a, b);
}

#[tokio::test]
async fn an_unknown_path_is_a_problem_json_404() {
    let app = spawn_app().await;
    let r = app.get("/no/such/thing").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 404);
}

/// A Redis server of the test's own, so it can be stopped without touching the shared one.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
}

impl OwnRedis {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = match std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("redis-server not found ({e}); this check needs it (CI installs it)");
                return None;
            }
            Err(e) => panic!("redis-server is required under CI: {e}"),
        };
        Some(Self { child, port })
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn readyz_answers_503_naming_the_session_store_when_it_is_unreachable() {
    let Some(mut redis) = OwnRedis::start() else { return };
    let app = spawn_app().await;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let mut store = None;
    for _ in 0..50 {
        if let Ok(s) = RedisStore::connect(&url, "readyz-test:", Duration::from_millis(200)).await {
            store = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = AppState::new(app.core.clone(), Arc::new(store.expect("own redis starts")));
    let own = Application::build(state).unwrap();
    let address = format!("http://127.0.0.1:{}", own.port());
    tokio::spawn(own.run_until_stopped());
    assert_eq!(app.client.get(format!("{address}/readyz")).send().await.unwrap().status(), 200);

    redis.child.kill().unwrap();
    redis.child.wait().unwrap();
    let r = app.client.get(format!("{address}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["sessions"], "unreachable");
    assert_eq!(body["database"], "ok");
    assert_eq!(app.get("/healthz").await.status(), 200, "liveness does not depend on dependencies");
}

#[tokio::test]
async fn readyz_answers_503_naming_the_database_when_postgres_is_gone() {
    let app = spawn_app().await;
    if !app.db.is_postgres() {
        // An open SQLite file cannot go away underneath the process; the check is for servers.
        return;
    }
    let name = app.db.url.rsplit('/').next().unwrap().to_owned();
    let admin = std::env::var("PRAMAAN_TEST_DATABASE_URL").unwrap();
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let mut c = diesel::PgConnection::establish(&admin).unwrap();
    c.batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).unwrap();
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["database"], "unreachable");
    assert_eq!(body["sessions"], "ok");
}

#[tokio::test]
async fn a_rediss_url_gets_as_far_as_connecting_over_tls() {
    // Nothing listens on port 1: the failure must be the connection, not a missing TLS build.
    let err =
        RedisStore::connect("rediss://127.0.0.1:1", "p:", Duration::from_millis(500)).await.unwrap_err();
    let message = err.to_string();
    assert!(!message.to_lowercase().contains("feature"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
}
