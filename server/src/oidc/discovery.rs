//! `GET /.well-known/oauth-authorization-server`: authorization server metadata (RFC 8414),
//! listing only what this server really supports today. The OpenID Connect discovery
//! document (`/.well-known/openid-configuration`) joins it with the authorization endpoint;
//! OIDC Discovery 1.0 §3 requires one, so publishing it sooner would be a lie.
//!
//! The document depends only on the issuer and the code, so it is serialised once at start
//! and served with a strong ETag.

use actix_web::http::header::{self, IfNoneMatch};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Issuer;
use super::jwks::{jwks_uri, not_modified};

pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// How long clients may cache the metadata.
const MAX_AGE_SECS: u32 = 3600;

/// The pre-serialised metadata document.
#[derive(Debug, Clone)]
pub struct Metadata {
    body: web::Bytes,
    etag: String,
}

impl Metadata {
    pub fn new(issuer: &Issuer) -> Self {
        let base = &issuer.issuer;
        let auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
        // RFC 8414 §2; response_types_supported is REQUIRED and honestly empty until the
        // authorization endpoint exists.
        let doc = json!({
            "issuer": base,
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": jwks_uri(base),
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint": format!("{base}/introspect"),
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint": format!("{base}/revoke"),
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        });
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
        Self { body: web::Bytes::from(body), etag }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(METADATA_PATH, web::get().to(metadata));
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
