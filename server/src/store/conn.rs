//! Connections, the pool and migrations for both backends.

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// Serialises `migrate` across instances starting at once on one PostgreSQL.
const MIGRATION_LOCK_KEY: i64 = 0x7072_616d_6161_6e01;

/// One connection to either backend. Queries written once run on both; code that must differ
/// by dialect matches on the variant (and only `store` ever does).
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// Errors from the store. `Display` is safe to show; details go to logs through `Debug`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or foreign-key rule refused the write; the text names what clashed.
    #[error("{0}")]
    Conflict(String),
    #[error("database URL: {0}")]
    BadUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database unavailable: {0}")]
    Pool(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A stored row no longer parses: the data was changed outside Pramaan.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error")]
    Query(#[source] diesel::result::Error),
    #[error("internal error")]
    Join(String),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match e {
            E::NotFound => Self::NotFound,
            // The database's own text names constraints and columns: logged, never passed on
            // (these messages reach API callers).
            E::DatabaseError(K::UniqueViolation, info) => {
                tracing::debug!(detail = info.message(), "unique violation");
                Self::Conflict("already exists".into())
            }
            E::DatabaseError(K::ForeignKeyViolation, info) => {
                tracing::debug!(detail = info.message(), "foreign key violation");
                Self::Conflict("refers to something that does not exist".into())
            }
            other => Self::Query(other),
        }
    }
}

/// Parses a database URL into the backend and what its driver wants.
///
/// `postgres://…` and `postgresql://…` go to libpq as they are; `sqlite://PATH` and
/// `sqlite:PATH` name a file (relative paths are relative to the working directory).
pub fn parse_url(url: &str) -> Result<(Backend, String), DbError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url::Url::parse(url).map_err(|e| DbError::BadUrl(format!("not a valid URL: {e}")))?;
        return Ok((Backend::Postgres, url.to_owned()));
    }
    if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        if rest.is_empty() {
            return Err(DbError::BadUrl(
                "a sqlite URL needs a file path, as in sqlite://./data/pramaan.db".into(),
            ));
        }
        return Ok((Backend::Sqlite, rest.to_owned()));
    }
    Err(DbError::BadUrl("the scheme must be postgres://, postgresql:// or sqlite://".into()))
}

#[derive(Debug, thiserror::Error)]
enum ManagerError {
    #[error("{0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("{0}")]
    Query(#[from] diesel::result::Error),
}

#[derive(Debug)]
struct Manager {
    backend: Backend,
    target: String,
}

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ManagerError;

    fn connect(&self) -> Result<AnyConnection, ManagerError> {
        match self.backend {
            Backend::Postgres => Ok(AnyConnection::Postgresql(PgConnection::establish(&self.target)?)),
            Backend::Sqlite => {
                let mut c = SqliteConnection::establish(&self.target)?;
                // busy_timeout first: every later statement, the journal-mode switch included,
                // must wait for a lock held by another process (a CLI command beside the
                // server) instead of failing at once with "database is locked". WAL lets
                // readers run beside the one writer.
                c.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )?;
                Ok(AnyConnection::Sqlite(c))
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ManagerError> {
        Ok(conn.batch_execute("SELECT 1")?)
    }

    /// A connection that a panic or a failed rollback left inside a transaction must not go
    /// back to the pool: on SQLite it would hold the write lock for good.
    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        diesel::r2d2::R2D2Connection::is_broken(conn)
    }
}

/// The connection pool. Cheap to clone. Every call runs on tokio's blocking pool, never on
/// an actix worker thread.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<Manager>,
    backend: Backend,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl Database {
    /// Connects (once directly, so the real error is reported rather than a pool time-out)
    /// and builds the pool.
    pub fn connect(url: &str, max_connections: u32, timeout: Duration) -> Result<Self, DbError> {
        // Before libpq first touches OpenSSL: initialise it without its exit handler. That
        // handler frees OpenSSL's global state at process exit while pool threads may still be
        // connecting over TLS, which crashed a test run (SIGSEGV after every test passed).
        openssl::init();
        let (backend, target) = parse_url(url)?;
        if backend == Backend::Sqlite
            && let Some(dir) = std::path::Path::new(&target).parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            return Err(DbError::Connect(format!("folder {} does not exist", dir.display())));
        }
        let manager = Manager { backend, target };
        let first = r2d2::ManageConnection::connect(&manager).map_err(|e| DbError::Connect(e.to_string()))?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(max_connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(timeout)
            .build(manager)
            .map_err(|e| DbError::Connect(e.to_string()))?;
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| DbError::Pool(e.to_string()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Join(e.to_string()))?
    }

    /// Runs `f` on the calling thread; for the CLI and tests, never for request handlers.
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut conn = self.pool.get().map_err(|e| DbError::Pool(e.to_string()))?;
        f(&mut conn)
    }

    /// Applies pending migrations and returns the names of those applied.
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        self.run_blocking(|conn| {
            let applied = match conn {
                AnyConnection::Postgresql(c) => {
                    c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
                    let r = c
                        .run_pending_migrations(PG_MIGRATIONS)
                        .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>());
                    c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
                    r
                }
                AnyConnection::Sqlite(c) => c
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>()),
            };
            applied.map_err(|e| DbError::Migration(e.to_string()))
        })
    }

    /// True when migrations this build knows are not applied yet.
    pub fn has_pending_migrations(&self) -> Result<bool, DbError> {
        self.run_blocking(|conn| {
            let pending = match conn {
                AnyConnection::Postgresql(c) => c.has_pending_migration(PG_MIGRATIONS),
                AnyConnection::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
            };
            pending.map_err(|e| DbError::Migration(e.to_string()))
        })
    }

    /// Succeeds when a connection can run a query (`/readyz`).
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|c| Ok(c.batch_execute("SELECT 1")?)).await
    }
}

/// Runs `f` in a write transaction. On SQLite a top-level one starts with `BEGIN IMMEDIATE`,
/// taking the write lock at once: a deferred transaction that reads and then writes can fail
/// with `SQLITE_BUSY_SNAPSHOT` when another writer went first, and no busy timeout helps.
/// Nested calls become savepoints of the enclosing transaction.
pub fn write_transaction<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    let sqlite_top_level = match conn {
        AnyConnection::Sqlite(inner) => {
            AnsiTransactionManager::transaction_manager_status_mut(inner).transaction_depth()?.is_none()
        }
        AnyConnection::Postgresql(_) => false,
    };
    if !sqlite_top_level {
        return conn.transaction(f);
    }
    if let AnyConnection::Sqlite(inner) = conn {
        AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
    }
    match f(conn) {
        Ok(v) => {
            <AnyConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(v)
        }
        Err(e) => {
            let _ = <AnyConnection as Connection>::TransactionManager::rollback_transaction(conn);
            Err(e)
        }
    }
}

/// A write transaction whose writers are serialised across every process on the database:
/// SQLite has one writer anyway; PostgreSQL takes a transaction-scoped advisory lock first.
/// Used where order matters (the audit chain).
pub(crate) fn serialised_transaction<T>(
    conn: &mut AnyConnection,
    lock_key: i64,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    write_transaction(conn, |c| {
        if let AnyConnection::Postgresql(_) = c {
            c.batch_execute(&format!("SELECT pg_advisory_xact_lock({lock_key})"))?;
        }
        f(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend_by_scheme() {
        assert_eq!(parse_url("postgres://u@h/db").unwrap().0, Backend::Postgres);
        assert_eq!(parse_url("postgresql://u@h/db").unwrap().0, Backend::Postgres);
        assert_eq!(parse_url("sqlite://./data/x.db").unwrap(), (Backend::Sqlite, "./data/x.db".into()));
        assert_eq!(parse_url("sqlite:/tmp/x.db").unwrap(), (Backend::Sqlite, "/tmp/x.db".into()));
        for bad in ["mysql://x", "x.db", "sqlite://", ""] {
            assert!(matches!(parse_url(bad), Err(DbError::BadUrl(_))), "{bad}");
        }
    }
}
