//! Everything a request or a CLI command needs, built once from the settings and passed in:
//! no globals, so two apps can run in one process (the tests do).

use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::config::{SessionBackend, SessionSettings, Settings};
use crate::crypto::{DevKeys, Keys, PasswordHasher, PasswordParams, load_keys};
use crate::oidc::KeyRing;
use crate::oidc::introspect::VerifiedTokens;
use crate::oidc::issuance_log::IssuanceLog;
use crate::oidc::state_cache::ClientCache;
use crate::policy::PolicyEngine;
use crate::sessions::SessionStore;
use crate::sessions::memory::MemoryStore;
use crate::sessions::redis::RedisStore;
use crate::store::{Database, meta, write_transaction};

/// Why the server or a command could not start. Each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("data_dir {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error("database.url ({url}): {source}")]
    Database { url: String, source: crate::store::DbError },
    /// The store's message names the (redacted) URL itself.
    #[error("sessions.redis_url: {0}")]
    Sessions(crate::sessions::StoreError),
    #[error(transparent)]
    Keys(#[from] crate::crypto::KeyError),
    #[error("password: {0}")]
    Password(#[from] crate::crypto::PasswordError),
    #[error("signing keys: {0}")]
    KeyRing(#[from] crate::oidc::keyring::KeyRingError),
    #[error("http.listen: {0}")]
    Bind(std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// How a process starts: the server may set things up; a one-off command only uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMode {
    /// `serve`: apply migrations, create development keys if none are configured, and create
    /// the first signing keys.
    Serve,
    /// Any other command: the schema must be current and the keys must exist, so a command run
    /// from the wrong folder or with the wrong settings fails instead of changing the schema or
    /// signing the audit trail with a key it just made up.
    Command,
}

/// Database, keys, signing keys and clock: what every command needs.
#[derive(Clone)]
pub struct Core {
    pub settings: Arc<Settings>,
    pub db: Database,
    pub keys: Keys,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditLog,
    pub passwords: PasswordHasher,
    /// Token signing keys and the pre-serialised JWKS.
    pub keyring: KeyRing,
    /// The role policies every decision goes through.
    pub policy: Arc<PolicyEngine>,
}

impl Core {
    /// Creates the data folder (owner-only), connects to the database, applies migrations or
    /// checks none are pending, loads the keys and checks they are the ones this database was
    /// set up with.
    pub fn init(settings: Settings, clock: Arc<dyn Clock>, mode: InitMode) -> Result<Self, StartError> {
        ensure_private_dir(&settings.data_dir)?;
        let url = settings.database_url();
        let db_err = |source| StartError::Database { url: url.redacted(), source };
        let db = Database::connect(
            url.expose(),
            settings.database.max_connections,
            Duration::from_secs(settings.database.connect_timeout_secs),
        )
        .map_err(db_err)?;
        match mode {
            InitMode::Serve => {
                db.migrate().map_err(db_err)?;
            }
            InitMode::Command => {
                if db.has_pending_migrations().map_err(db_err)? {
                    return Err(StartError::Other(
                        "the database schema is not current: run `pramaan migrate` (or start `pramaan serve`) first"
                            .into(),
                    ));
                }
            }
        }
        let dev = if mode == InitMode::Serve { DevKeys::Generate } else { DevKeys::ExistingOnly };
        let keys = load_keys(
            settings.crypto.key_encryption_key.as_ref().map(|s| s.as_secret_string()),
            settings.crypto.audit_key.as_ref().map(|s| s.as_secret_string()),
            &settings.data_dir,
            dev,
        )?;
        check_fingerprints(&db, &keys).map_err(|e| match e {
            FingerprintError::Db(source) => db_err(source),
            FingerprintError::Mismatch(m) => StartError::Other(m),
        })?;
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
        let keyring = KeyRing::load(
            db.clone(),
            keys.secrets.clone(),
            clock.clone(),
            audit.clone(),
            settings.tokens.clone(),
        )?;
        if mode == InitMode::Serve {
            for k in keyring.ensure_initial_keys()? {
                tracing::info!(kid = %k.kid, alg = %k.alg, "created a signing key");
            }
        }
        let (policies, origin) = load_policies(&settings, &db, mode)?;
        let policy = Arc::new(PolicyEngine::new(policies, origin));
        Ok(Self { settings: Arc::new(settings), db, keys, clock, audit, passwords, keyring, policy })
    }
}

/// The newest stored policy set, else the configured folder, else the compiled-in set. For the
/// server, a set that does not check stops the start with every error; a one-off command (which
/// may be the `policy reload` that repairs it) runs on the configured set instead.
fn load_policies(
    settings: &Settings,
    db: &Database,
    mode: InitMode,
) -> Result<(crate::policy::Policies, crate::policy::Origin), StartError> {
    use crate::policy::reload::{configured_set, startup_set};
    match (startup_set(settings, db), mode) {
        (Ok(set), _) => Ok(set),
        (Err(e), InitMode::Serve) => Err(StartError::Other(format!(
            "policy: {e}; load a valid set with `pramaan policy reload --dir DIR` (or --built-in)"
        ))),
        (Err(e), InitMode::Command) => {
            tracing::warn!(error = %e, "the stored policy set does not check; this command uses the configured one");
            configured_set(settings).map_err(|e| StartError::Other(format!("policy: {e}")))
        }
    }
}

enum FingerprintError {
    Db(crate::store::DbError),
    Mismatch(String),
}

/// Records the keys' fingerprints at first start and refuses different keys afterwards: a
/// wrong audit key would fork the chain for good, a wrong KEK would seal secrets that the
/// rest of the fleet cannot open.
fn check_fingerprints(db: &Database, keys: &Keys) -> Result<(), FingerprintError> {
    let checks = [
        ("kek_fingerprint", "crypto.key_encryption_key", keys.kek_fingerprint.clone()),
        ("audit_key_fingerprint", "crypto.audit_key", keys.audit_fingerprint.clone()),
    ];
    db.run_blocking(|c| {
        write_transaction(c, |c| {
            for (name, setting, fingerprint) in &checks {
                let stored = meta::get_or_insert(c, name, fingerprint)?;
                if !crate::crypto::constant_time_eq(stored.as_bytes(), fingerprint.as_bytes()) {
                    return Ok(Err(FingerprintError::Mismatch(format!(
                        "{setting}: this is not the key this database was set up with \
                         (expected fingerprint {stored}, got {fingerprint}); refusing to start"
                    ))));
                }
            }
            Ok(Ok(()))
        })
    })
    .map_err(FingerprintError::Db)?
}

/// Creates `dir` readable by its owner only (it holds the SQLite database and development
/// keys), and refuses an existing folder that others may write to.
fn ensure_private_dir(dir: &std::path::Path) -> Result<(), StartError> {
    let err = |reason: String| StartError::DataDir { path: dir.display().to_string(), reason };
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(|e| err(e.to_string()))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).map_err(|e| err(e.to_string()))?.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(err(format!(
                "other users may write to it (mode {:o}); run `chmod 700 {}`",
                mode & 0o777,
                dir.display()
            )));
        }
        if mode & 0o077 != 0 {
            tracing::warn!(path = %dir.display(), mode = format!("{:o}", mode & 0o777), "data_dir is readable by other users; chmod 700 recommended");
        }
    }
    Ok(())
}

/// What the HTTP server holds: the core plus the session store.
#[derive(Clone)]
pub struct AppState {
    pub core: Core,
    pub sessions: Arc<dyn SessionStore>,
    /// Per-client, per-minute tallies of client-credentials tokens, flushed to the audit trail.
    pub issuance: IssuanceLog,
    /// Client state for the token and introspection endpoints, refreshed by the epoch.
    pub clients: ClientCache,
    /// Claims of access tokens whose signature was verified, until they expire.
    pub verified: VerifiedTokens,
    /// Sends one-time codes by text message.
    pub sms: Arc<dyn crate::mfa::sms::SmsGateway>,
    /// Status-list index blocks and the lists this instance serves.
    pub status_lists: crate::oidc::status_lists::StatusLists,
    /// Rate limits per client address, shared through the session store.
    pub limits: crate::limits::Limiter,
}

impl AppState {
    pub fn new(core: Core, sessions: Arc<dyn SessionStore>) -> Self {
        let clients = ClientCache::new(core.db.clone());
        let sms = sms_gateway(&core.settings);
        let limits =
            crate::limits::Limiter::new(sessions.clone(), core.settings.limits.clone(), core.clock.clone());
        Self {
            core,
            limits,
            sessions,
            issuance: IssuanceLog::default(),
            clients,
            verified: VerifiedTokens::default(),
            sms,
            status_lists: Default::default(),
        }
    }
}

/// Connects the session store chosen in the settings. An unreachable Redis fails here, at
/// start, before anything is written.
pub async fn connect_sessions(s: &SessionSettings) -> Result<Arc<dyn SessionStore>, StartError> {
    match s.backend {
        SessionBackend::Memory => Ok(Arc::new(MemoryStore::new(s.memory_max_entries))),
        SessionBackend::Redis => {
            let url = s.redis_url.clone().ok_or_else(|| {
                StartError::Other("sessions.redis_url: is required when sessions.backend = \"redis\"".into())
            })?;
            let store =
                RedisStore::connect(url.expose(), &s.key_prefix, Duration::from_secs(s.connect_timeout_secs))
                    .await
                    .map_err(StartError::Sessions)?;
            Ok(Arc::new(store))
        }
    }
}

pub(crate) fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// The configured SMS gateway.
fn sms_gateway(settings: &Settings) -> Arc<dyn crate::mfa::sms::SmsGateway> {
    use crate::config::SmsGatewayKind;
    use crate::mfa::sms::{HttpGateway, LogGateway};
    match settings.sms.gateway {
        SmsGatewayKind::Log => {
            if settings.http.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) {
                tracing::warn!(
                    "sms.gateway is \"log\": sign-in codes are written to sms.log in the data folder, \
                     not sent; configure [sms.http] for production"
                );
            }
            Arc::new(LogGateway::new(settings.data_dir.join("sms.log")))
        }
        SmsGatewayKind::Http => Arc::new(HttpGateway::new(settings.sms.http.clone())),
    }
}
