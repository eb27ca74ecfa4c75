//! Everything a request or a CLI command needs, built once from the settings and passed in:
//! no globals, so two apps can run in one process (the tests do).

use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::config::{SessionBackend, Settings};
use crate::crypto::{Keys, PasswordHasher, PasswordParams, load_keys};
use crate::sessions::SessionStore;
use crate::sessions::memory::MemoryStore;
use crate::sessions::redis::RedisStore;
use crate::store::Database;

/// Why the server or a command could not start. Each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("data_dir {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error("database.url ({url}): {source}")]
    Database { url: String, source: crate::store::DbError },
    #[error("sessions.redis_url ({url}): {source}")]
    Sessions { url: String, source: crate::sessions::StoreError },
    #[error(transparent)]
    Keys(#[from] crate::crypto::KeyError),
    #[error("password: {0}")]
    Password(#[from] crate::crypto::PasswordError),
    #[error("http.listen: {0}")]
    Bind(std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// Database, keys and clock: what every command needs.
#[derive(Clone)]
pub struct Core {
    pub settings: Arc<Settings>,
    pub db: Database,
    pub keys: Keys,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditLog,
    pub passwords: PasswordHasher,
}

impl Core {
    /// Creates the data folder, connects to the database, applies migrations and loads keys.
    pub fn init(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| StartError::DataDir {
            path: settings.data_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let url = settings.database_url();
        let db = Database::connect(
            url.expose(),
            settings.database.max_connections,
            Duration::from_secs(settings.database.connect_timeout_secs),
        )
        .map_err(|source| StartError::Database { url: url.redacted(), source })?;
        db.migrate().map_err(|source| StartError::Database { url: url.redacted(), source })?;
        let keys = load_keys(
            settings.crypto.key_encryption_key.as_ref().map(|s| s.as_secret_string()),
            settings.crypto.audit_key.as_ref().map(|s| s.as_secret_string()),
            &settings.data_dir,
        )?;
        let p = &settings.password;
        let concurrency = if p.max_concurrent_hashes == 0 { num_cpus() } else { p.max_concurrent_hashes };
        let passwords = PasswordHasher::new(
            PasswordParams {
                memory_kib: p.argon2_memory_kib,
                iterations: p.argon2_iterations,
                parallelism: p.argon2_parallelism,
            },
            concurrency,
        )?;
        let audit = AuditLog::new(db.clone(), keys.audit.clone(), clock.clone());
        Ok(Self { settings: Arc::new(settings), db, keys, clock, audit, passwords })
    }
}

/// What the HTTP server holds: the core plus the session store.
#[derive(Clone)]
pub struct AppState {
    pub core: Core,
    pub sessions: Arc<dyn SessionStore>,
}

impl AppState {
    /// Connects the session store chosen in the settings; an unreachable Redis fails here,
    /// at start, not at the first login.
    pub async fn init(core: Core) -> Result<Self, StartError> {
        let s = &core.settings.sessions;
        let sessions: Arc<dyn SessionStore> = match s.backend {
            SessionBackend::Memory => Arc::new(MemoryStore::new(s.memory_max_entries)),
            SessionBackend::Redis => {
                let url = s.redis_url.clone().ok_or_else(|| {
                    StartError::Other(
                        "sessions.redis_url: is required when sessions.backend = \"redis\"".into(),
                    )
                })?;
                let store = RedisStore::connect(
                    url.expose(),
                    &s.key_prefix,
                    Duration::from_secs(s.connect_timeout_secs),
                )
                .await
                .map_err(|source| StartError::Sessions { url: url.redacted(), source })?;
                Arc::new(store)
            }
        };
        Ok(Self { core, sessions })
    }
}

pub(crate) fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}
