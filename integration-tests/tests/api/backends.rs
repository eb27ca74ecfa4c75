//! Guards the CI matrix: a run asked to use PostgreSQL and Redis really does, so a typo in an
//! environment variable cannot quietly turn the second run into a copy of the first.

use pramaan_integration_tests::TestDatabase;
use pramaan_integration_tests::sessions::session_store_under_test;

#[tokio::test]
async fn the_suites_run_on_the_backends_the_environment_names() {
    let wants_pg = std::env::var("PRAMAAN_TEST_DATABASE_URL").is_ok_and(|v| !v.trim().is_empty());
    let wants_redis = std::env::var("PRAMAAN_TEST_REDIS_URL").is_ok_and(|v| !v.trim().is_empty());
    let db = TestDatabase::create();
    assert_eq!(db.backend, if wants_pg { "postgres" } else { "sqlite" });
    assert_eq!(db.is_postgres(), wants_pg);
    // Only PostgreSQL has this function: the URL really reaches a PostgreSQL server.
    assert_eq!(db.execute_raw("SELECT pg_backend_pid()").is_ok(), wants_pg);
    let sessions = session_store_under_test().await;
    assert_eq!(sessions.backend, if wants_redis { "redis" } else { "memory" });
    sessions.store.ping().await.unwrap();
    println!("backends under test: {}", pramaan_integration_tests::backends());
}
