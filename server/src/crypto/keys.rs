//! The server's root keys: the key-encryption key (KEK) that seals secrets at rest and from
//! which the token-digest key is derived, and the audit key that signs the audit chain.
//!
//! Production supplies both through settings (or `_FILE` indirection). Without them, a
//! development pair is generated once under the data folder and reused, with a loud warning:
//! anyone who can read those files can forge the audit chain and open every sealed secret.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretString};

use super::{Digester, SecretBox};

/// Where a key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    /// Generated for development and kept in this file.
    DevelopmentFile {
        path: PathBuf,
        created: bool,
    },
}

/// 32 bytes of key and where they came from.
pub struct KeyMaterial {
    bytes: [u8; 32],
    pub source: KeySource,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial").field("source", &self.source).finish_non_exhaustive()
    }
}

/// Everything derived from the root keys. Each use gets its own subkey (HMAC-SHA256 of the
/// root key over a label, a single-block HKDF-Expand), so no key serves two algorithms.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Seals secrets at rest under a subkey of the KEK.
    pub secrets: SecretBox,
    /// Seals anonymous browser sessions into their cookies: a subkey of its own, since every
    /// anonymous page view uses it (attacker-chosen plaintext, a random nonce each time) and
    /// the secrets at rest must not share that budget.
    pub sessions: SecretBox,
    /// Digests of tokens, codes and links (a subkey of the KEK).
    pub digester: Digester,
    /// Signs the audit chain (a subkey of the audit key).
    pub audit: Digester,
    pub kek_source: KeySource,
    pub audit_source: KeySource,
    /// Identifies the KEK without revealing it; stored in the database at first start so a
    /// different key is refused later.
    pub kek_fingerprint: String,
    pub audit_fingerprint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{setting}: must be 32 bytes, base64-encoded (generate one with `openssl rand -base64 32`)")]
    BadKey { setting: &'static str },
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error(
        "{setting} is not set and there is no development key at {path}: set {setting} \
         (production), or run `pramaan serve` once with this data_dir to generate development keys"
    )]
    Missing { setting: &'static str, path: String },
}

/// Whether a missing development key may be created (only `serve` may: a one-off command
/// run from the wrong folder must not invent a key and sign with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevKeys {
    Generate,
    ExistingOnly,
}

/// Loads (or, for development, creates) the KEK and the audit key.
pub fn load_keys(
    kek: Option<&SecretString>,
    audit: Option<&SecretString>,
    data_dir: &Path,
    dev: DevKeys,
) -> Result<Keys, KeyError> {
    let kek = material(kek, "crypto.key_encryption_key", &data_dir.join("dev-key-encryption.key"), dev)?;
    let audit = material(audit, "crypto.audit_key", &data_dir.join("dev-audit.key"), dev)?;
    let kek_root = Digester::new(kek.bytes);
    let audit_root = Digester::new(audit.bytes);
    let kek_fingerprint = fingerprint(&kek_root);
    Ok(Keys {
        secrets: SecretBox::new(&kek_root.digest_parts(&[b"pramaan/v1/seal-key"]), &kek_fingerprint[..8]),
        sessions: SecretBox::new(&kek_root.digest_parts(&[b"pramaan/v1/browser-session-seal"]), "s1"),
        digester: Digester::new(kek_root.digest_parts(&[b"pramaan/v1/token-digest-key"])),
        audit: Digester::new(audit_root.digest_parts(&[b"pramaan/v1/audit-chain-key"])),
        kek_source: kek.source,
        audit_source: audit.source,
        audit_fingerprint: fingerprint(&audit_root),
        kek_fingerprint,
    })
}

fn fingerprint(root: &Digester) -> String {
    hex::encode(&root.digest_parts(&[b"pramaan/v1/fingerprint"])[..16])
}

fn material(
    configured: Option<&SecretString>,
    setting: &'static str,
    dev_path: &Path,
    dev: DevKeys,
) -> Result<KeyMaterial, KeyError> {
    if let Some(s) = configured {
        return Ok(KeyMaterial { bytes: decode(s.expose_secret(), setting)?, source: KeySource::Configured });
    }
    let file_err = |reason: String| KeyError::File { path: dev_path.display().to_string(), reason };
    match std::fs::read_to_string(dev_path) {
        Ok(text) => Ok(KeyMaterial {
            bytes: decode(&text, setting)
                .map_err(|_| file_err("is not a base64-encoded 32-byte key".into()))?,
            source: KeySource::DevelopmentFile { path: dev_path.to_owned(), created: false },
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dev == DevKeys::ExistingOnly => {
            Err(KeyError::Missing { setting, path: dev_path.display().to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes: [u8; 32] =
                super::random_bytes(32).try_into().map_err(|_| file_err("key generation failed".into()))?;
            write_private(dev_path, B64.encode(bytes).as_bytes()).map_err(|e| file_err(e.to_string()))?;
            Ok(KeyMaterial {
                bytes,
                source: KeySource::DevelopmentFile { path: dev_path.to_owned(), created: true },
            })
        }
        Err(e) => Err(file_err(e.to_string())),
    }
}

fn decode(text: &str, setting: &'static str) -> Result<[u8; 32], KeyError> {
    B64.decode(text.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or(KeyError::BadKey { setting })
}

/// Creates `path` readable by its owner only; never overwrites an existing file.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_keys_are_created_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_keys(None, None, dir.path(), DevKeys::ExistingOnly),
            Err(KeyError::Missing { setting: "crypto.key_encryption_key", .. })
        ));
        let first = load_keys(None, None, dir.path(), DevKeys::Generate).unwrap();
        assert!(matches!(first.kek_source, KeySource::DevelopmentFile { created: true, .. }));
        let sealed = first.secrets.seal(b"s", b"");
        let second = load_keys(None, None, dir.path(), DevKeys::ExistingOnly).unwrap();
        assert_eq!(first.kek_fingerprint, second.kek_fingerprint);
        assert!(matches!(second.audit_source, KeySource::DevelopmentFile { created: false, .. }));
        assert_eq!(second.secrets.open(&sealed, b"").unwrap(), b"s");
        assert_eq!(first.audit.digest("x", b"y"), second.audit.digest("x", b"y"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("dev-audit.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_keys_must_be_32_bytes_of_base64() {
        let dir = tempfile::tempdir().unwrap();
        let good = SecretString::from(B64.encode([3u8; 32]));
        let keys = load_keys(Some(&good), Some(&good), dir.path(), DevKeys::Generate).unwrap();
        let other = SecretString::from(B64.encode([4u8; 32]));
        let keys2 = load_keys(Some(&other), Some(&good), dir.path(), DevKeys::Generate).unwrap();
        assert_ne!(keys.kek_fingerprint, keys2.kek_fingerprint);
        assert_eq!(keys.audit_fingerprint, keys2.audit_fingerprint);
        assert_eq!(keys.kek_fingerprint.len(), 32);
        assert_eq!(keys.kek_source, KeySource::Configured);
        assert!(!dir.path().join("dev-key-encryption.key").exists());
        let short = SecretString::from(B64.encode([3u8; 16]));
        let err = load_keys(Some(&short), None, dir.path(), DevKeys::Generate).unwrap_err();
        assert!(err.to_string().starts_with("crypto.key_encryption_key:"), "{err}");
    }
}
