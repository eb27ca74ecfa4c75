use super::*;
use crate::config::SessionBackend;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

#[test]
fn defaults_need_no_file_and_no_environment() {
    let s = load(None, env(&[])).unwrap();
    assert_eq!(s.http.listen, "127.0.0.1:8080");
    assert_eq!(s.database_url().expose(), "sqlite://./data/pramaan.db");
    assert_eq!(s.sessions.backend, SessionBackend::Memory);
}

#[test]
fn the_environment_overrides_the_file_which_overrides_the_defaults() {
    let f = file("data_dir = \"/srv/p\"\n[http]\nlisten = \"0.0.0.0:9000\"\nmax_body_bytes = 2048\n");
    let s =
        load(Some(f.path()), env(&[("PRAMAAN__HTTP__LISTEN", "127.0.0.1:9999"), ("OTHER", "x")])).unwrap();
    assert_eq!(s.http.listen, "127.0.0.1:9999");
    assert_eq!(s.http.max_body_bytes, 2048);
    assert_eq!(s.database_url().expose(), "sqlite:///srv/p/pramaan.db");
}

#[test]
fn environment_values_take_the_type_of_their_setting() {
    let s = load(
        None,
        env(&[
            ("PRAMAAN__HTTP__MAX_BODY_BYTES", "4096"),
            ("PRAMAAN__CRYPTO__AUDIT_KEY", "123"),
            ("PRAMAAN__SESSIONS__BACKEND", "redis"),
            ("PRAMAAN__SESSIONS__REDIS_URL", "redis://127.0.0.1:6379"),
        ]),
    )
    .unwrap();
    assert_eq!(s.http.max_body_bytes, 4096);
    assert_eq!(s.crypto.audit_key.unwrap().expose(), "123");
    assert_eq!(s.sessions.backend, SessionBackend::Redis);
    let err = load(None, env(&[("PRAMAAN__HTTP__MAX_BODY_BYTES", "lots")])).unwrap_err();
    assert_eq!(err.key, "PRAMAAN__HTTP__MAX_BODY_BYTES");
}

#[test]
fn a_file_suffix_reads_the_secret_from_a_file() {
    let secret = file("s3cret-value\n");
    let s = load(
        None,
        vec![("PRAMAAN__CRYPTO__KEY_ENCRYPTION_KEY_FILE".into(), secret.path().display().to_string())],
    )
    .unwrap();
    assert_eq!(s.crypto.key_encryption_key.unwrap().expose(), "s3cret-value");
    let err = load(None, env(&[("PRAMAAN__CRYPTO__AUDIT_KEY_FILE", "/nonexistent/key")])).unwrap_err();
    assert!(err.message.contains("/nonexistent/key"), "{err}");
}

#[test]
fn unknown_keys_are_rejected_with_their_place_named() {
    let f = file("[http]\nlisten = \"127.0.0.1:1\"\nlisen = \"typo\"\n");
    let err = load(Some(f.path()), env(&[])).unwrap_err();
    assert_eq!(err.key, "http.lisen", "{err}");
    assert!(err.message.contains("lisen"), "{err}");
    let err = load(None, env(&[("PRAMAAN__NOPE__X", "1")])).unwrap_err();
    assert!(err.message.contains("nope"), "{err}");
}

#[test]
fn malformed_toml_is_reported_with_the_file_and_line() {
    let f = file("[http]\nlisten = \n");
    let err = load(Some(f.path()), env(&[])).unwrap_err();
    assert_eq!(err.key, f.path().display().to_string());
    assert!(err.message.contains("not valid TOML") && err.message.contains("line 2"), "{err}");
}

#[test]
fn invalid_values_name_their_key() {
    let cases = [
        ("PRAMAAN__HTTP__LISTEN", "localhost", "http.listen"),
        ("PRAMAAN__DATABASE__URL", "mysql://x", "database.url"),
        ("PRAMAAN__SESSIONS__BACKEND", "redis", "sessions.redis_url"),
        ("PRAMAAN__SESSIONS__BACKEND", "memcached", "sessions.backend"),
        ("PRAMAAN__HTTP__PUBLIC_URL", "ftp://x", "http.public_url"),
        ("PRAMAAN__PASSWORD__ARGON2_MEMORY_KIB", "1", "password.argon2_memory_kib"),
        ("PRAMAAN__BOOTSTRAP__ROOT_ORG_PATH", "Not A Path", "bootstrap.root_org_path"),
        ("PRAMAAN__LOG__FILTER", "info,[[[", "log.filter"),
        ("PRAMAAN__HTTP__TLS_CERTIFICATE", "/etc/x.pem", "http.tls_private_key"),
        ("PRAMAAN__HTTP__TLS_PRIVATE_KEY", "/etc/x.key", "http.tls_certificate"),
        ("PRAMAAN__HTTP__TRUSTED_PROXIES", "10.0.0.1,proxy.local", "http.trusted_proxies"),
        ("PRAMAAN__TOKENS__ACCESS_TOKEN_ALG", "HS256", "tokens.access_token_alg"),
        ("PRAMAAN__TOKENS__ID_TOKEN_ALG", "none", "tokens.id_token_alg"),
        ("PRAMAAN__TOKENS__RSA_BITS", "1024", "tokens.rsa_bits"),
        ("PRAMAAN__TOKENS__MAX_TOKEN_LIFETIME_SECS", "0", "tokens.max_token_lifetime_secs"),
        ("PRAMAAN__TOKENS__KEY_REFRESH_SECS", "0", "tokens.key_refresh_secs"),
        ("PRAMAAN__TOKENS__KEY_PREPUBLISH_SECS", "60", "tokens.key_prepublish_secs"),
    ];
    for (k, v, key) in cases {
        let err = load(None, env(&[(k, v)])).unwrap_err();
        assert_eq!(err.key, key, "{k}={v}: {err}");
    }
}

#[test]
fn config_show_redacts_secrets_and_url_passwords() {
    let s = load(
        None,
        env(&[
            ("PRAMAAN__DATABASE__URL", "postgres://app:hunter2@db/pramaan"),
            ("PRAMAAN__CRYPTO__AUDIT_KEY", "c2VjcmV0"),
        ]),
    )
    .unwrap();
    let shown = s.to_redacted_toml();
    assert!(!shown.contains("hunter2") && !shown.contains("c2VjcmV0"), "{shown}");
    assert!(shown.contains("postgres://app:***@db/pramaan"), "{shown}");
    assert!(shown.contains("audit_key = \"[redacted]\""), "{shown}");
    let debug = format!("{s:?}");
    assert!(!debug.contains("hunter2") && !debug.contains("c2VjcmV0"));
}

#[test]
fn a_value_and_its_file_variant_together_are_refused() {
    let secret = file("x\n");
    let err = load(
        None,
        vec![
            ("PRAMAAN__CRYPTO__AUDIT_KEY".into(), "inline".into()),
            ("PRAMAAN__CRYPTO__AUDIT_KEY_FILE".into(), secret.path().display().to_string()),
        ],
    )
    .unwrap_err();
    assert_eq!(err.key, "PRAMAAN__CRYPTO__AUDIT_KEY", "{err}");
}

#[test]
fn the_example_config_loads_and_matches_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pramaan.example.toml");
    let s = load(Some(&path), env(&[])).unwrap();
    let d = load(None, env(&[])).unwrap();
    assert_eq!(s.to_redacted_toml(), d.to_redacted_toml(), "the example documents the defaults");
}

#[test]
fn list_settings_come_comma_separated_from_the_environment() {
    let s = load(None, env(&[("PRAMAAN__HTTP__TRUSTED_PROXIES", "10.0.0.1, ::1")])).unwrap();
    assert_eq!(s.http.trusted_proxies, ["10.0.0.1", "::1"]);
    assert_eq!(s.trusted_proxies().len(), 2);
}
