//! A database of its own for each test.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// Set to a PostgreSQL URL to run the suites against PostgreSQL.
pub const DATABASE_URL_VAR: &str = "PRAMAAN_TEST_DATABASE_URL";

fn admin_url() -> Option<String> {
    std::env::var(DATABASE_URL_VAR).ok().filter(|u| !u.trim().is_empty())
}

/// `"postgres"` or `"sqlite"`.
pub fn backend_name() -> &'static str {
    if admin_url().is_some() { "postgres" } else { "sqlite" }
}

/// An empty database that disappears when dropped.
pub struct TestDatabase {
    /// The URL to put in `database.url`.
    pub url: String,
    pub backend: &'static str,
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub fn create() -> Self {
        // OpenSSL without its exit handler, before libpq's first TLS connection (see
        // `Database::connect`).
        openssl::init();
        match admin_url() {
            Some(admin) => {
                let name = format!("pramaan_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn =
                    PgConnection::establish(&admin).expect("PRAMAAN_TEST_DATABASE_URL must be reachable");
                conn.batch_execute(&format!("CREATE DATABASE \"{name}\"")).expect("create the test database");
                let mut url = url::Url::parse(&admin).expect("PRAMAAN_TEST_DATABASE_URL must be a URL");
                url.set_path(&name);
                Self { url: url.to_string(), backend: "postgres", pg: Some((admin, name)), _dir: None }
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("pramaan.db").display());
                Self { url, backend: "sqlite", pg: None, _dir: Some(dir) }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// Runs raw SQL as an operator with direct database access would (to tamper in tests).
    pub fn execute_raw(&self, sql: &str) -> Result<(), String> {
        match &self.pg {
            Some(_) => PgConnection::establish(&self.url)
                .map_err(|e| e.to_string())?
                .batch_execute(sql)
                .map_err(|e| e.to_string()),
            None => {
                let path = self.url.trim_start_matches("sqlite://");
                diesel::SqliteConnection::establish(path)
                    .map_err(|e| e.to_string())?
                    .batch_execute(sql)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(mut conn) = PgConnection::establish(admin)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
}
