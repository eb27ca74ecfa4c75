//! The key ring: the signing keys in the database, loaded into memory. It answers which key
//! signs for an algorithm now, which keys are published (and so verify), and holds the JWKS
//! document pre-serialised with its ETag. The database is the truth: a running server
//! re-reads it every `tokens.key_refresh_secs`, so a rotation made by the CLI or by another
//! instance reaches it without a restart.
//!
//! A key's life: created and published at once; signs from `signs_from` (a rotation sets it
//! `key_prepublish_secs` ahead, so relying parties' cached JWKS learn the key first); stops
//! signing at `retired_at` (the next key's `signs_from`); leaves the JWKS at `unpublish_at`,
//! `max_token_lifetime_secs` later, once every token it signed has expired; then is deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::config::TokenSettings;
use crate::crypto::signing::{PublicJwk, SigningError, generate_pkcs8};
use crate::crypto::{SecretBox, SigningAlg, SigningKey, VerifyingKey};
use crate::domain::{AuditEvent, Outcome};
use crate::store::signing_keys::{self, StoredSigningKey};
use crate::store::{AnyConnection, Database, DbError};

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// A sealed key does not open: the key-encryption key is not the one it was sealed under.
    #[error("signing key {kid}: the private key does not open ({reason})")]
    Unseal { kid: String, reason: String },
    #[error("signing key {kid}: stored public JWK is invalid ({reason})")]
    BadJwk { kid: String, reason: String },
}

impl From<KeyRingError> for DbError {
    fn from(e: KeyRingError) -> Self {
        match e {
            KeyRingError::Db(e) => e,
            other => DbError::Corrupt(other.to_string()),
        }
    }
}

/// Where a key is in its life at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not signing yet.
    Pending,
    /// Signing (the newest signing key of its algorithm is the one used).
    Active,
    /// No longer signing; still published so its tokens verify.
    Retired,
    /// Past `unpublish_at`: out of the JWKS, deleted at the next refresh.
    Unpublished,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Unpublished => "unpublished",
        }
    }
}

/// What is known about a key, without its private part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: SigningAlg,
    pub created_at: DateTime<Utc>,
    pub signs_from: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub unpublish_at: Option<DateTime<Utc>>,
}

impl KeyInfo {
    fn from_stored(k: &StoredSigningKey) -> Self {
        Self {
            kid: k.kid.clone(),
            alg: k.alg,
            created_at: k.created_at,
            signs_from: k.signs_from,
            retired_at: k.retired_at,
            unpublish_at: k.unpublish_at,
        }
    }

    pub fn state(&self, now: DateTime<Utc>) -> KeyState {
        if self.unpublish_at.is_some_and(|t| t <= now) {
            KeyState::Unpublished
        } else if self.retired_at.is_some_and(|t| t <= now) {
            KeyState::Retired
        } else if self.signs_from > now {
            KeyState::Pending
        } else {
            KeyState::Active
        }
    }

    fn published(&self, now: DateTime<Utc>) -> bool {
        self.state(now) != KeyState::Unpublished
    }

    fn signs(&self, now: DateTime<Utc>) -> bool {
        self.state(now) == KeyState::Active
    }
}

/// The JWKS document (RFC 7517 §5) as served: bytes and a strong ETag over them.
#[derive(Debug)]
pub struct JwksDoc {
    pub body: Arc<[u8]>,
    /// Quoted, as in the `ETag` header.
    pub etag: String,
    /// When the published set next shrinks (the earliest future `unpublish_at`).
    valid_until: Option<DateTime<Utc>>,
}

struct Entry {
    info: KeyInfo,
    jwk: PublicJwk,
    verifying: VerifyingKey,
    /// Present for keys that may still sign.
    signing: Option<Arc<SigningKey>>,
}

struct Snapshot {
    entries: Arc<[Entry]>,
    jwks: Arc<JwksDoc>,
}

struct Inner {
    db: Database,
    secrets: SecretBox,
    clock: Arc<dyn Clock>,
    audit: AuditLog,
    settings: TokenSettings,
    snapshot: ArcSwap<Snapshot>,
}

/// The signing keys in memory. Cheap to clone; readers never wait for a refresh.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.inner.snapshot.load();
        f.debug_struct("KeyRing").field("keys", &s.entries.len()).finish_non_exhaustive()
    }
}

/// Authenticated data binding a sealed private key to its row.
fn seal_aad(kid: &str) -> Vec<u8> {
    format!("signing-key:{kid}").into_bytes()
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct Rotation {
    pub created: KeyInfo,
    pub retired: Vec<KeyInfo>,
}

impl KeyRing {
    /// Reads the keys from the database (blocking; at start). Fails if a key that may still
    /// sign does not open with this key-encryption key.
    pub fn load(
        db: Database,
        secrets: SecretBox,
        clock: Arc<dyn Clock>,
        audit: AuditLog,
        settings: TokenSettings,
    ) -> Result<Self, KeyRingError> {
        let empty = Snapshot { entries: Arc::from(Vec::new()), jwks: Arc::new(build_jwks(&[], clock.now())) };
        let ring = Self {
            inner: Arc::new(Inner {
                db,
                secrets,
                clock,
                audit,
                settings,
                snapshot: ArcSwap::from_pointee(empty),
            }),
        };
        let stored = ring.inner.db.run_blocking(signing_keys::list_all)?;
        ring.install(stored)?;
        Ok(ring)
    }

    /// Re-reads the keys and deletes those past `unpublish_at`.
    pub async fn refresh(&self) -> Result<(), KeyRingError> {
        let now = self.inner.clock.now();
        let this = self.clone();
        let stored = self
            .inner
            .db
            .run(move |c| {
                let all = signing_keys::list_all(c)?;
                if all.iter().any(|k| k.unpublish_at.is_some_and(|t| t <= now)) {
                    this.delete_unpublished(c, now)?;
                    return signing_keys::list_all(c);
                }
                Ok(all)
            })
            .await?;
        self.install(stored)
    }

    fn delete_unpublished(&self, c: &mut AnyConnection, now: DateTime<Utc>) -> Result<(), DbError> {
        signing_keys::locked(c, |c| {
            let kids = signing_keys::delete_unpublished(c, now)?;
            if !kids.is_empty() {
                let event = AuditEvent::new("system", "keys.delete", Outcome::Success)
                    .details(serde_json::json!({ "kids": kids }));
                self.inner.audit.append_with(c, vec![event])?;
            }
            Ok(())
        })
    }

    /// Creates, for each algorithm with no key that signs now or later, one key that signs at
    /// once. `serve` calls it at start; the first keys need no pre-publication because no
    /// relying party has tokens of this server yet.
    pub fn ensure_initial_keys(&self) -> Result<Vec<KeyInfo>, KeyRingError> {
        let this = self.clone();
        let created = self.inner.db.run_blocking(move |c| {
            signing_keys::locked(c, |c| {
                let now = this.inner.clock.now();
                let all = signing_keys::list_all(c)?;
                let mut created = Vec::new();
                for alg in SigningAlg::ALL {
                    let live = all.iter().any(|k| k.alg == alg && k.retired_at.is_none_or(|t| t > now));
                    if !live {
                        created.push(this.create_key(c, alg, now, now)?);
                    }
                }
                let events = created
                    .iter()
                    .map(|k| {
                        AuditEvent::new("system", "keys.create", Outcome::Success)
                            .target(format!("key:{}", k.kid))
                            .details(serde_json::json!({ "kid": k.kid, "alg": k.alg }))
                    })
                    .collect();
                this.inner.audit.append_with(c, events)?;
                Ok(created)
            })
        })?;
        let stored = self.inner.db.run_blocking(signing_keys::list_all)?;
        self.install(stored)?;
        Ok(created)
    }

    /// Makes a new key of `alg` that signs after `prepublish` (at once when no key of `alg`
    /// is signing or pending), and retires the current ones at that moment; they stay
    /// published for `max_token_lifetime` more.
    pub async fn rotate(
        &self,
        alg: SigningAlg,
        prepublish: Duration,
        max_token_lifetime: Duration,
        actor: &str,
    ) -> Result<Rotation, KeyRingError> {
        let to_delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
        let (prepublish, lifetime) = (to_delta(prepublish), to_delta(max_token_lifetime));
        let this = self.clone();
        let actor = actor.to_owned();
        let rotation = self
            .inner
            .db
            .run(move |c| {
                signing_keys::locked(c, |c| {
                    let now = this.inner.clock.now();
                    let current: Vec<StoredSigningKey> = signing_keys::list_all(c)?
                        .into_iter()
                        .filter(|k| k.alg == alg && k.retired_at.is_none())
                        .collect();
                    let signs_from = if current.is_empty() { now } else { now + prepublish };
                    let created = this.create_key(c, alg, now, signs_from)?;
                    let mut retired = Vec::new();
                    for k in current {
                        if signing_keys::retire(c, &k.kid, signs_from, signs_from + lifetime)? {
                            let mut info = KeyInfo::from_stored(&k);
                            info.retired_at = Some(signs_from);
                            info.unpublish_at = Some(signs_from + lifetime);
                            retired.push(info);
                        }
                    }
                    let event = AuditEvent::new(actor, "keys.rotate", Outcome::Success)
                        .target(format!("key:{}", created.kid))
                        .details(serde_json::json!({
                            "kid": created.kid,
                            "alg": alg,
                            "retired": retired.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
                        }));
                    this.inner.audit.append_with(c, vec![event])?;
                    Ok(Rotation { created, retired })
                })
            })
            .await?;
        self.refresh().await?;
        Ok(rotation)
    }

    /// Generates, seals and stores one key (inside the caller's transaction).
    fn create_key(
        &self,
        c: &mut AnyConnection,
        alg: SigningAlg,
        now: DateTime<Utc>,
        signs_from: DateTime<Utc>,
    ) -> Result<KeyInfo, DbError> {
        let der = generate_pkcs8(alg, self.inner.settings.rsa_bits).map_err(KeyRingError::from)?;
        let key = SigningKey::from_pkcs8(alg, &der).map_err(KeyRingError::from)?;
        let public_jwk = serde_json::to_string(key.public_jwk())
            .map_err(|e| DbError::Corrupt(format!("JWK does not serialise: {e}")))?;
        let stored = StoredSigningKey {
            kid: key.kid().to_owned(),
            alg,
            // Sealed here, before the store sees it: the database never holds the key in clear.
            sealed_private_key: self.inner.secrets.seal(&der, &seal_aad(key.kid())),
            public_jwk,
            created_at: now,
            signs_from,
            retired_at: None,
            unpublish_at: None,
        };
        signing_keys::insert(c, &stored)?;
        Ok(KeyInfo::from_stored(&stored))
    }

    /// Replaces the snapshot with `stored`, reusing already opened private keys.
    fn install(&self, stored: Vec<StoredSigningKey>) -> Result<(), KeyRingError> {
        let now = self.inner.clock.now();
        let old = self.inner.snapshot.load();
        let opened: HashMap<&str, &Arc<SigningKey>> =
            old.entries.iter().filter_map(|e| Some((e.info.kid.as_str(), e.signing.as_ref()?))).collect();
        let mut entries = Vec::with_capacity(stored.len());
        for k in stored {
            let info = KeyInfo::from_stored(&k);
            if !info.published(now) {
                continue;
            }
            let bad_jwk = |reason: String| KeyRingError::BadJwk { kid: k.kid.clone(), reason };
            let jwk: PublicJwk = serde_json::from_str(&k.public_jwk).map_err(|e| bad_jwk(e.to_string()))?;
            if jwk.kid != k.kid || jwk.alg != k.alg {
                return Err(bad_jwk("kid or alg differs from the row".into()));
            }
            let verifying = VerifyingKey::from_jwk(&jwk).map_err(|e| bad_jwk(e.to_string()))?;
            let may_sign = k.retired_at.is_none_or(|t| t > now);
            let signing = match (may_sign, opened.get(k.kid.as_str())) {
                (false, _) => None,
                (true, Some(s)) => Some(Arc::clone(s)),
                (true, None) => Some(Arc::new(self.open(&k)?)),
            };
            entries.push(Entry { info, jwk, verifying, signing });
        }
        let jwks = Arc::new(build_jwks(&entries, now));
        self.inner.snapshot.store(Arc::new(Snapshot { entries: Arc::from(entries), jwks }));
        Ok(())
    }

    fn open(&self, k: &StoredSigningKey) -> Result<SigningKey, KeyRingError> {
        let unseal = |reason: String| KeyRingError::Unseal { kid: k.kid.clone(), reason };
        let der = self
            .inner
            .secrets
            .open(&k.sealed_private_key, &seal_aad(&k.kid))
            .map_err(|e| unseal(e.to_string()))?;
        let key = SigningKey::from_pkcs8(k.alg, &der)?;
        if key.kid() != k.kid {
            return Err(unseal("the private key does not match its kid".into()));
        }
        Ok(key)
    }

    /// The key that signs for `alg` now: the newest whose `signs_from` has passed and that is
    /// not retired.
    pub fn signing_key(&self, alg: SigningAlg) -> Option<Arc<SigningKey>> {
        let now = self.inner.clock.now();
        let snap = self.inner.snapshot.load();
        snap.entries
            .iter()
            .filter(|e| e.info.alg == alg && e.info.signs(now))
            .max_by_key(|e| (e.info.signs_from, e.info.created_at))
            .and_then(|e| e.signing.clone())
    }

    /// The key for access tokens (`tokens.access_token_alg`).
    pub fn access_token_key(&self) -> Option<Arc<SigningKey>> {
        self.signing_key(self.inner.settings.access_token_alg)
    }

    /// The key for ID tokens (`tokens.id_token_alg`).
    pub fn id_token_key(&self) -> Option<Arc<SigningKey>> {
        self.signing_key(self.inner.settings.id_token_alg)
    }

    /// A published key by kid, for `verify_jwt`.
    pub fn verifying_key(&self, kid: &str) -> Option<VerifyingKey> {
        let now = self.inner.clock.now();
        let snap = self.inner.snapshot.load();
        snap.entries.iter().find(|e| e.info.kid == kid && e.info.published(now)).map(|e| e.verifying.clone())
    }

    /// The published keys, as of the last refresh.
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.inner.snapshot.load().entries.iter().map(|e| e.info.clone()).collect()
    }

    /// The JWKS document. Rebuilt from memory (no database) when a key's `unpublish_at`
    /// passed since it was made.
    pub fn jwks(&self) -> Arc<JwksDoc> {
        let snap = self.inner.snapshot.load();
        let now = self.inner.clock.now();
        if snap.jwks.valid_until.is_none_or(|t| now < t) {
            return Arc::clone(&snap.jwks);
        }
        let jwks = Arc::new(build_jwks(&snap.entries, now));
        let fresh = Snapshot { entries: Arc::clone(&snap.entries), jwks: Arc::clone(&jwks) };
        // A concurrent refresh may have stored a newer snapshot; only replace the one we read.
        self.inner.snapshot.compare_and_swap(&snap, Arc::new(fresh));
        jwks
    }

    /// Refreshes every `tokens.key_refresh_secs` until the returned task is aborted. `None`
    /// outside a tokio runtime (nothing could run the task there).
    pub fn spawn_refresh(&self) -> Option<tokio::task::JoinHandle<()>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let ring = self.clone();
        let every = Duration::from_secs(self.inner.settings.key_refresh_secs.max(1));
        Some(runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = ring.refresh().await {
                    // Keep signing with the keys we have; the next tick retries.
                    tracing::warn!(error = %e, "signing keys could not be refreshed");
                }
            }
        }))
    }
}

/// `{"keys": [...]}` of the keys published at `now`, oldest first, and a strong ETag over
/// the exact bytes (RFC 9110 §8.8.3).
fn build_jwks(entries: &[Entry], now: DateTime<Utc>) -> JwksDoc {
    #[derive(Serialize)]
    struct Set<'a> {
        keys: Vec<&'a PublicJwk>,
    }
    let keys = entries.iter().filter(|e| e.info.published(now)).map(|e| &e.jwk).collect();
    // Plain structs of strings always serialise.
    let body = serde_json::to_vec(&Set { keys }).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &body);
    let valid_until = entries.iter().filter_map(|e| e.info.unpublish_at).filter(|t| *t > now).min();
    JwksDoc {
        etag: format!("\"{}\"", B64.encode(&digest.as_ref()[..16])),
        body: Arc::from(body),
        valid_until,
    }
}
