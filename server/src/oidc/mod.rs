//! The OpenID Connect provider: one file per endpoint. Each exposes what it registers through
//! [`configure`].

pub mod access_token;
pub mod authorize;
pub mod client_auth;
pub mod client_changes;
pub mod code;
pub mod discovery;
pub mod end_session;
pub mod error;
pub mod form;
pub mod introspect;
pub mod issuance_log;
pub mod jwks;
pub mod keyring;
pub mod revocation;
pub mod revocation_feed;
pub mod revoke;
pub mod state_cache;
pub mod status_list;
pub mod status_lists;
pub mod token;
pub mod user_tokens;
pub mod userinfo;

pub use keyring::KeyRing;

use actix_web::web;

/// Who this server is to the outside: the `iss` of its tokens and the default `aud` of its
/// access tokens. Known only once the listener is bound (tests use port 0).
#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    pub audience: String,
}

/// Registers the provider's endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    discovery::configure(cfg);
    authorize::configure(cfg);
    userinfo::configure(cfg);
    end_session::configure(cfg);
    jwks::configure(cfg);
    token::configure(cfg);
    introspect::configure(cfg);
    revoke::configure(cfg);
    status_lists::configure(cfg);
}
