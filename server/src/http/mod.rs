//! The HTTP layer: the server's startup, shared middleware and the operational endpoints.
//! Feature modules (oidc, login, admin) each expose `configure(&mut web::ServiceConfig)`.

mod access_log;
pub mod client_ip;
mod health;
pub mod intake;
pub mod problem;
mod request_id;
pub mod startup;
mod tls;

pub use startup::Application;
