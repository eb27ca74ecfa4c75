//! HTTPS with rustls (ring provider) when `http.tls_certificate` and `http.tls_private_key` are set.
//! Behind a TLS-terminating proxy leave them unset and list the proxy in
//! `http.trusted_proxies`.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::state::StartError;

/// Reads the PEM certificate chain and private key and builds the server's TLS settings. Each
/// failure names the file and the setting.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<rustls::ServerConfig, StartError> {
    let bad = |setting: &str, path: &Path, why: String| {
        StartError::Other(format!("{setting} ({}): {why}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| bad("http.tls_certificate", cert_file, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad("http.tls_certificate", cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("http.tls_certificate", cert_file, "holds no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| bad("http.tls_private_key", key_file, e.to_string()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Other(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            bad(
                "http.tls_private_key",
                key_file,
                format!("does not match the certificate or is unusable: {e}"),
            )
        })
}
