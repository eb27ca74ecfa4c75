//! The OpenID Connect provider: one file per endpoint. Each exposes what it registers through
//! [`configure`].

pub mod jwks;
pub mod keyring;

pub use keyring::KeyRing;

use actix_web::web;

/// Registers the provider's endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    jwks::configure(cfg);
}
