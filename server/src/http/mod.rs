//! The HTTP layer: the server's startup, shared middleware and the operational endpoints.
//! Feature modules (oidc, login, admin) each expose `configure(&mut web::ServiceConfig)`.

mod access_log;
mod health;
pub mod problem;
mod request_id;
pub mod startup;

pub use startup::Application;
