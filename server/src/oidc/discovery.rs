//! Discovery: `GET /.well-known/openid-configuration` (OIDC Discovery 1.0 §4) and
//! `GET /.well-known/oauth-authorization-server` (RFC 8414 §3) serve one document, listing
//! only what this server really supports.
//!
//! The document depends only on the issuer, the settings and the code, so it is serialised
//! once at start and served with a strong ETag.

use actix_web::http::header::{self, IfNoneMatch};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Issuer;
use super::jwks::{jwks_uri, not_modified};

pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
pub const OIDC_PATH: &str = "/.well-known/openid-configuration";

/// How long clients may cache the metadata.
const MAX_AGE_SECS: u32 = 3600;

/// The pre-serialised metadata document.
#[derive(Debug, Clone)]
pub struct Metadata {
    body: web::Bytes,
    etag: String,
}

impl Metadata {
    pub fn new(issuer: &Issuer, id_token_alg: crate::crypto::SigningAlg) -> Self {
        let base = &issuer.issuer;
        let auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
        let token_auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"];
        // OIDC Discovery 1.0 §3 REQUIRED: issuer, authorization_endpoint, token_endpoint,
        // jwks_uri, response_types_supported, subject_types_supported,
        // id_token_signing_alg_values_supported. The rest says what we do and do not do
        // (request objects default to "supported" when left out, so they are listed false).
        let doc = json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "userinfo_endpoint": format!("{base}/userinfo"),
            "jwks_uri": jwks_uri(base),
            "end_session_endpoint": format!("{base}/logout"),
            "introspection_endpoint": format!("{base}/introspect"),
            "revocation_endpoint": format!("{base}/revoke"),
            "scopes_supported": crate::oidc::authorize::OIDC_SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [id_token_alg.as_str()],
            "token_endpoint_auth_methods_supported": token_auth_methods,
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": token_auth_methods,
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none", "login", "consent"],
            "acr_values_supported": crate::domain::Acr::ALL.map(crate::domain::Acr::as_str),
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
                "name", "preferred_username", "updated_at", "email", "email_verified",
                "phone_number", "phone_number_verified"
            ],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "authorization_response_iss_parameter_supported": true,
        });
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
        Self { body: web::Bytes::from(body), etag }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(METADATA_PATH, web::get().to(metadata)).route(OIDC_PATH, web::get().to(metadata));
}

async fn metadata(req: HttpRequest, doc: web::Data<Metadata>) -> HttpResponse {
    let cache = format!("public, max-age={MAX_AGE_SECS}");
    if not_modified(req.get_header::<IfNoneMatch>(), &doc.etag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, doc.etag.as_str()))
            .insert_header((header::CACHE_CONTROL, cache))
            .finish();
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, doc.etag.as_str()))
        .insert_header((header::CACHE_CONTROL, cache))
        .body(doc.body.clone())
}
