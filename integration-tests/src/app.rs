//! [`spawn_app`]: the real server, built as the binary builds it, on a random port.

use std::sync::Arc;

use pramaan_server::clock::{Clock, FixedClock, SystemClock};
use pramaan_server::config::{Secret, Settings, UrlWithPassword};
use pramaan_server::http::Application;
use pramaan_server::state::{AppState, Core, InitMode};

use crate::cli::{TEST_AUDIT_KEY, TEST_KEK};
use crate::db::TestDatabase;
use crate::sessions::{TestSessionStore, session_store_under_test};

/// A running server and what it runs on. Dropping it stops the server and removes its data.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub port: u16,
    pub core: Core,
    pub state: AppState,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub sessions: TestSessionStore,
    pub data_dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
}

/// Settings for a test: port 0, a temporary data folder, the test database. Password hashing
/// keeps the production parameters, so tests exercise the real cost.
pub fn test_settings(db: &TestDatabase, data_dir: &std::path::Path) -> Settings {
    let mut s = Settings::default();
    s.http.listen = "127.0.0.1:0".into();
    s.http.workers = 2;
    s.http.shutdown_timeout_secs = 1;
    s.data_dir = data_dir.to_owned();
    s.database.url = Some(UrlWithPassword::new(db.url.clone()));
    s.database.max_connections = 8;
    s.crypto.key_encryption_key = Some(Secret::new(TEST_KEK.into()));
    s.crypto.audit_key = Some(Secret::new(TEST_AUDIT_KEY.into()));
    // Accounts without a programme role need no second factor under the shipped policies, so
    // most suites test the password step on its own; the two-factor and admin suites give
    // their accounts roles that require one.
    // Tests send the outbox themselves (`OutboxWorker::run_once`), so each knows what went.
    s.mail.outbox.worker = false;
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with settings adjusted by `adjust` (TLS, proxies, lifetimes).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(adjust, Arc::new(SystemClock)).await
}

/// [`spawn_app_with`] on a clock that stands still until the test moves it (codes, expiry).
pub async fn spawn_app_at(clock: FixedClock, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(adjust, Arc::new(clock)).await
}

async fn spawn(adjust: impl FnOnce(&mut Settings), clock: Arc<dyn Clock>) -> TestApp {
    let db = TestDatabase::create();
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(&db, data_dir.path());
    adjust(&mut settings);
    let core = Core::init(settings, clock, InitMode::Serve).expect("core starts");
    let sessions = session_store_under_test().await;
    let state = AppState::new(core.clone(), sessions.store.clone());
    let app = Application::build(state.clone()).expect("server binds");
    let port = app.port();
    // The server's own idea of its URL (https when TLS is configured).
    let address = app.url().to_owned();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    TestApp { address, port, core, state, client, db, sessions, data_dir, handle }
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("request sent")
    }

    /// A second server instance on the same database and session store, as a second node
    /// behind a load balancer would be (its own caches, pools and background tasks).
    pub async fn spawn_sibling(&self) -> Sibling {
        let mut settings = test_settings(&self.db, self.data_dir.path());
        // Behind one load balancer every node has the same public URL, hence the same issuer.
        settings.http.public_url = Some(self.address.clone());
        // The same clock: a test that moves it moves both instances.
        let core =
            Core::init(settings, self.core.clock.clone(), InitMode::Serve).expect("second core starts");
        let state = AppState::new(core.clone(), self.sessions.store.clone());
        let app = Application::build(state.clone()).expect("second server binds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        Sibling { address, core, state, handle }
    }
}

/// A second instance of a [`TestApp`]; stops when dropped.
pub struct Sibling {
    pub address: String,
    pub core: Core,
    pub state: AppState,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Sibling {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting at once; the runtime ends the workers with the test.
        drop(self.handle.stop(false));
    }
}
