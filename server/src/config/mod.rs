//! Settings: compiled defaults, then a TOML file (`--config`), then `PRAMAAN__SECTION__KEY`
//! environment variables (a `_FILE` suffix reads the value from a file, for secrets). Unknown
//! keys are rejected and every value is checked at start with an error that names its key.
//! See `pramaan.example.toml` at the repository root for every setting, commented.

mod limits;
mod load;
mod mail;
mod mfa;
mod secret;

pub use limits::LimitSettings;
pub use load::{ConfigError, load};
pub use mail::{MailSecurity, MailSettings, MailTransport, OutboxSettings, SmtpSettings};
pub use mfa::{BodyEncoding, HttpGatewaySettings, MfaSettings, SmsGatewayKind, SmsSettings};
pub use secret::{Secret, UrlWithPassword};

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where the embedded defaults keep their files (SQLite database, development keys, mail).
    pub data_dir: PathBuf,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub sessions: SessionSettings,
    pub log: LogSettings,
    pub crypto: CryptoSettings,
    pub password: PasswordSettings,
    pub bootstrap: BootstrapSettings,
    pub tokens: TokenSettings,
    pub login: LoginSettings,
    pub mfa: MfaSettings,
    pub limits: LimitSettings,
    pub sms: SmsSettings,
    pub policy: PolicySettings,
    pub mail: MailSettings,
}

/// `[policy]`: where the role policies come from, and the roles that must never be left
/// without an active holder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// A folder with `schema.cedarschema` and `*.cedar` files; unset: the compiled-in set.
    pub dir: Option<PathBuf>,
    /// Anti-lockout: the last active holder of one of these roles cannot be disabled or lose
    /// it, so the organisation can always administer itself.
    pub protected_roles: Vec<String>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self { dir: None, protected_roles: vec!["national_admin".to_owned()] }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            http: HttpSettings::default(),
            database: DatabaseSettings::default(),
            sessions: SessionSettings::default(),
            log: LogSettings::default(),
            crypto: CryptoSettings::default(),
            password: PasswordSettings::default(),
            bootstrap: BootstrapSettings::default(),
            tokens: TokenSettings::default(),
            login: LoginSettings::default(),
            mfa: MfaSettings::default(),
            limits: LimitSettings::default(),
            sms: SmsSettings::default(),
            policy: PolicySettings::default(),
            mail: MailSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Address and port to listen on.
    pub listen: String,
    /// The external base URL (the OIDC issuer); defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Seconds in-flight requests get to finish on SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// PEM certificate chain; with `tls_private_key`, the server speaks HTTPS itself.
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_private_key: Option<PathBuf>,
    /// Addresses of proxies whose `X-Forwarded-For` is believed; from anyone else it is ignored.
    pub trusted_proxies: Vec<String>,
    /// Seconds a request body may take to arrive in full; a slower one gets 408 and the
    /// connection closes (slow-body attacks hold sockets open otherwise).
    pub body_read_timeout_secs: u64,
    /// Seconds a new connection may take to send its request head.
    pub request_head_timeout_secs: u64,
    /// Open connections the whole server accepts (shared out among the workers); the process's
    /// open-file limit lowers it, keeping room for the database and log files.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64) before its further ones are
    /// answered 503 and closed; at most a quarter of `max_connections` as lowered by the
    /// open-file limit, so one address can never take them all. Trusted proxies count only
    /// against `max_connections`.
    pub max_connections_per_address: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            max_body_bytes: 64 * 1024,
            workers: 0,
            shutdown_timeout_secs: 30,
            tls_certificate: None,
            tls_private_key: None,
            trusted_proxies: Vec::new(),
            body_read_timeout_secs: 10,
            request_head_timeout_secs: 5,
            max_connections: 10_000,
            // A carrier-grade NAT puts many field staff behind one address, each browser with
            // up to six keep-alive connections.
            max_connections_per_address: 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://PATH`; defaults to `sqlite://<data_dir>/pramaan.db`.
    pub url: Option<UrlWithPassword>,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { url: None, max_connections: 16, connect_timeout_secs: 5 }
    }
}

/// Which session store to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionBackend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    pub backend: SessionBackend,
    /// Required with `backend = "redis"`.
    pub redis_url: Option<UrlWithPassword>,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Most live entries the in-process store holds before refusing writes.
    pub memory_max_entries: usize,
    pub connect_timeout_secs: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            backend: SessionBackend::Memory,
            redis_url: None,
            key_prefix: "pramaan:".into(),
            memory_max_entries: 1_000_000,
            connect_timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,pramaan_server=debug`; `RUST_LOG` wins.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: LogFormat::Human, filter: "info".into() }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CryptoSettings {
    /// 32 bytes, base64: seals secrets at rest. Without it a development key is generated
    /// under `data_dir` (never do that in production).
    pub key_encryption_key: Option<Secret>,
    /// 32 bytes, base64: signs the audit chain. Same development fallback.
    pub audit_key: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordSettings {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Hashes computed at once; 0 means one per core.
    pub max_concurrent_hashes: usize,
    /// Shortest password accepted when one is set.
    pub min_length: usize,
    /// How long a reset link works from when its mail is sent.
    pub reset_link_ttl_secs: u64,
    /// How long a reset code sent by text message works.
    pub reset_code_ttl_secs: u64,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        let p = crate::crypto::PasswordParams::default();
        Self {
            argon2_memory_kib: p.memory_kib,
            argon2_iterations: p.iterations,
            argon2_parallelism: p.parallelism,
            max_concurrent_hashes: 0,
            min_length: 12,
            reset_link_ttl_secs: 1800,
            reset_code_ttl_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapSettings {
    /// The first administrator, created with a one-time password when the database has no
    /// users at all.
    pub admin_username: String,
    /// The root organisation unit created with it.
    pub root_org_path: String,
    pub root_org_name: String,
}

impl Default for BootstrapSettings {
    fn default() -> Self {
        Self {
            admin_username: "admin".into(),
            root_org_path: "national".into(),
            root_org_name: "National".into(),
        }
    }
}

/// The browser login: sessions, authorization codes and lockout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginSettings {
    /// How long a login lasts (single sign-on); its refresh tokens die with it.
    pub session_ttl_secs: u64,
    /// How long an unfinished login (the login page, consent) stays valid.
    pub pending_ttl_secs: u64,
    /// Life of an authorization code (RFC 6749 §4.1.2 recommends at most 10 minutes).
    pub code_ttl_secs: u64,
    /// Wrong passwords in a row before the account is locked.
    pub lockout_threshold: u32,
    /// The first lock's length; each further failure doubles it.
    pub lockout_base_secs: u64,
    /// The longest lock.
    pub lockout_max_secs: u64,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            session_ttl_secs: 28_800,
            pending_ttl_secs: 900,
            code_ttl_secs: 60,
            lockout_threshold: 5,
            lockout_base_secs: 30,
            lockout_max_secs: 900,
        }
    }
}

impl LoginSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.session_ttl_secs < 60 {
            return Err(ConfigError::new("login.session_ttl_secs", "must be at least 60"));
        }
        if !(60..=86_400).contains(&self.pending_ttl_secs) {
            return Err(ConfigError::new("login.pending_ttl_secs", "must be between 60 and 86400"));
        }
        if !(1..=600).contains(&self.code_ttl_secs) {
            return Err(ConfigError::new(
                "login.code_ttl_secs",
                "must be between 1 and 600 (RFC 6749 §4.1.2)",
            ));
        }
        if self.lockout_threshold == 0 {
            return Err(ConfigError::new("login.lockout_threshold", "must be at least 1"));
        }
        if self.lockout_base_secs == 0 || self.lockout_max_secs < self.lockout_base_secs {
            return Err(ConfigError::new(
                "login.lockout_max_secs",
                "lockout_base_secs must be at least 1 and lockout_max_secs at least lockout_base_secs",
            ));
        }
        Ok(())
    }
}

/// Token signing: algorithms and the key rotation schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// Signs access tokens (RFC 9068): `ES256`, `RS256` or `EdDSA`.
    pub access_token_alg: crate::crypto::SigningAlg,
    /// Signs ID tokens; OIDC Core §15.1 makes RS256 mandatory to implement.
    pub id_token_alg: crate::crypto::SigningAlg,
    /// Size of generated RSA keys: 2048 or 3072.
    pub rsa_bits: u32,
    /// How long a rotated-in key is published before it signs, so caches of the JWKS learn it.
    pub key_prepublish_secs: u64,
    /// The longest life of any token; a retired key stays published this long.
    pub max_token_lifetime_secs: u64,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age_secs: u64,
    /// How often a running server re-reads the keys (to see `pramaan keys rotate`).
    pub key_refresh_secs: u64,
    /// The `aud` of access tokens (RFC 9068 §2.2); defaults to the issuer URL. Resource
    /// servers such as the registry check it.
    pub access_token_audience: Option<String>,
    /// The `ttl` of token status lists: how long a resource server may use a list it fetched
    /// before fetching it again (draft-ietf-oauth-status-list). A revocation reaches a
    /// resource server that checks the list within this, plus at most a second.
    pub status_list_ttl_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_token_alg: crate::crypto::SigningAlg::ES256,
            id_token_alg: crate::crypto::SigningAlg::RS256,
            rsa_bits: 2048,
            key_prepublish_secs: 86_400,
            max_token_lifetime_secs: 86_400,
            jwks_max_age_secs: 300,
            key_refresh_secs: 30,
            access_token_audience: None,
            status_list_ttl_secs: 60,
        }
    }
}

impl TokenSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.rsa_bits, 2048 | 3072) {
            return Err(ConfigError::new("tokens.rsa_bits", "must be 2048 or 3072"));
        }
        if !(1..=86_400).contains(&self.status_list_ttl_secs) {
            return Err(ConfigError::new("tokens.status_list_ttl_secs", "must be 1 to 86400"));
        }
        if self.max_token_lifetime_secs == 0 {
            return Err(ConfigError::new("tokens.max_token_lifetime_secs", "must be at least 1"));
        }
        if self.key_refresh_secs == 0 || self.key_refresh_secs > 3600 {
            return Err(ConfigError::new("tokens.key_refresh_secs", "must be between 1 and 3600"));
        }
        if self.jwks_max_age_secs > 86_400 {
            return Err(ConfigError::new("tokens.jwks_max_age_secs", "must be at most 86400"));
        }
        // A key that signs before cached JWKS copies expire would fail verification at
        // relying parties until their cache refreshes.
        if self.key_prepublish_secs < self.jwks_max_age_secs + self.key_refresh_secs {
            return Err(ConfigError::new(
                "tokens.key_prepublish_secs",
                "must be at least tokens.jwks_max_age_secs + tokens.key_refresh_secs, so every cache sees a new key before it signs",
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// The database URL in force (the configured one, or the embedded SQLite file).
    pub fn database_url(&self) -> UrlWithPassword {
        self.database.url.clone().unwrap_or_else(|| {
            UrlWithPassword::new(format!("sqlite://{}", self.data_dir.join("pramaan.db").display()))
        })
    }

    /// The listen address, already validated.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http.listen.parse().map_err(|_| {
            ConfigError::new(
                "http.listen",
                format!("'{}' is not an address such as 127.0.0.1:8080", self.http.listen),
            )
        })
    }

    /// The external base URL, without a trailing slash.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.http.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None if self.http.tls_certificate.is_some() => format!("https://{bound}"),
            None => format!("http://{bound}"),
        }
    }

    /// `http.trusted_proxies`, parsed (validated at start).
    pub fn trusted_proxies(&self) -> Vec<std::net::IpAddr> {
        self.http.trusted_proxies.iter().filter_map(|p| p.trim().parse().ok()).collect()
    }

    /// Checks every value that serde's types do not; the first problem is reported with its
    /// key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("data_dir", "must not be empty"));
        }
        self.listen_addr()?;
        if let Some(u) = &self.http.public_url {
            let ok = url::Url::parse(u)
                .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some());
            if !ok {
                return Err(ConfigError::new("http.public_url", format!("'{u}' is not an http(s) URL")));
            }
        }
        match (&self.http.tls_certificate, &self.http.tls_private_key) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "http.tls_private_key",
                    "is required with http.tls_certificate",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "http.tls_certificate",
                    "is required with http.tls_private_key",
                ));
            }
            _ => {}
        }
        if let Some(bad) =
            self.http.trusted_proxies.iter().find(|p| p.trim().parse::<std::net::IpAddr>().is_err())
        {
            return Err(ConfigError::new("http.trusted_proxies", format!("'{bad}' is not an IP address")));
        }
        if self.http.max_body_bytes < 1024 {
            return Err(ConfigError::new("http.max_body_bytes", "must be at least 1024"));
        }
        if !(1..=300).contains(&self.http.body_read_timeout_secs) {
            return Err(ConfigError::new("http.body_read_timeout_secs", "must be between 1 and 300"));
        }
        if !(1..=60).contains(&self.http.request_head_timeout_secs) {
            return Err(ConfigError::new("http.request_head_timeout_secs", "must be between 1 and 60"));
        }
        if self.http.max_connections < 16 {
            return Err(ConfigError::new("http.max_connections", "must be at least 16"));
        }
        if self.http.max_connections_per_address == 0 {
            return Err(ConfigError::new("http.max_connections_per_address", "must be at least 1"));
        }
        crate::store::parse_url(self.database_url().expose())
            .map_err(|e| ConfigError::new("database.url", e.to_string()))?;
        if self.database.max_connections == 0 {
            return Err(ConfigError::new("database.max_connections", "must be at least 1"));
        }
        match (self.sessions.backend, &self.sessions.redis_url) {
            (SessionBackend::Redis, None) => {
                return Err(ConfigError::new(
                    "sessions.redis_url",
                    "is required when sessions.backend = \"redis\"",
                ));
            }
            (_, Some(u)) => {
                let ok = url::Url::parse(u.expose()).is_ok_and(|p| matches!(p.scheme(), "redis" | "rediss"));
                if !ok {
                    return Err(ConfigError::new(
                        "sessions.redis_url",
                        "must be a redis:// or rediss:// URL",
                    ));
                }
            }
            _ => {}
        }
        if self.sessions.key_prefix.is_empty() {
            return Err(ConfigError::new("sessions.key_prefix", "must not be empty"));
        }
        if self.sessions.memory_max_entries == 0 {
            return Err(ConfigError::new("sessions.memory_max_entries", "must be at least 1"));
        }
        let p = &self.password;
        if argon2::Params::new(p.argon2_memory_kib, p.argon2_iterations, p.argon2_parallelism, None).is_err()
        {
            return Err(ConfigError::new(
                "password.argon2_memory_kib",
                "argon2 parameters are invalid (memory must be at least 8 KiB per lane, iterations and parallelism at least 1)",
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return Err(ConfigError::new(
                "log.filter",
                format!("'{}' is not a tracing filter: {e}", self.log.filter),
            ));
        }
        if p.min_length < 8 {
            return Err(ConfigError::new("password.min_length", "must be at least 8"));
        }
        if !(60..=86_400).contains(&p.reset_link_ttl_secs) || !(60..=3600).contains(&p.reset_code_ttl_secs) {
            return Err(ConfigError::new(
                "password.reset_link_ttl_secs",
                "reset links work 60 s to a day, reset codes 60 s to an hour",
            ));
        }
        crate::domain::Username::parse(&self.bootstrap.admin_username)
            .map_err(|e| ConfigError::new("bootstrap.admin_username", e.to_string()))?;
        crate::domain::OrgPath::parse(&self.bootstrap.root_org_path)
            .map_err(|e| ConfigError::new("bootstrap.root_org_path", e.to_string()))?;
        self.tokens.validate()?;
        self.login.validate()?;
        self.mfa.validate()?;
        self.limits.validate()?;
        self.sms.validate()?;
        self.mail.validate()?;
        for r in &self.policy.protected_roles {
            crate::domain::RoleName::parse(r)
                .map_err(|e| ConfigError::new("policy.protected_roles", e.to_string()))?;
        }
        Ok(())
    }

    /// The effective settings as TOML with secrets and URL passwords redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = Some(self.database_url());
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}
