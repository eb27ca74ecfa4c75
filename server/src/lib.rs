//! Pramaan: an OpenID Connect provider and identity server for large field staffs and partner
//! APIs. The binary `pramaan` is a thin CLI over this library; the tests build the same
//! [`http::Application`] the binary runs.

pub mod admin;
pub mod audit;
pub mod bootstrap;
pub mod campaigns;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod limits;
pub mod login;
pub mod mail;
pub mod mfa;
pub mod oidc;
pub mod policy;
pub mod sessions;
pub mod state;
pub mod store;
pub mod telemetry;
