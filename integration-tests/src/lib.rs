//! Test support: a fresh database and session store per test, and [`spawn_app`], which runs the
//! real server on a random port. Which backends the tests use is chosen by the environment:
//!
//! - `PRAMAAN_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`): each test
//!   gets its own `CREATE DATABASE`, dropped afterwards; unset, a temporary SQLite file.
//! - `PRAMAAN_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379`): each test gets its own key
//!   prefix, deleted afterwards; unset, the in-process store.

pub mod admin;
pub mod app;
pub mod browser;
pub mod cli;
pub mod db;
pub mod registry;
pub mod sessions;
pub mod sms_gateway;
pub mod smtp_sink;
pub mod two_factor;

pub use app::{TestApp, spawn_app, spawn_app_at, spawn_app_with};
pub use db::TestDatabase;

/// A line naming the backends this run uses, printed by the suites so CI logs show which
/// combination ran.
pub fn backends() -> String {
    format!("database={} sessions={}", db::backend_name(), sessions::backend_name())
}
