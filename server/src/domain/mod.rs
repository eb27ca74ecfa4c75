//! Pure types and rules: no actix, no diesel. Values here are valid by construction —
//! parsing is the only way in, so code that holds a `Username` never re-checks it.

mod audit;
mod client;
mod factor;
mod ids;
mod network;
mod org;
mod user;

pub use audit::{AuditEvent, AuditRecord, Outcome};
pub use client::{
    AuthMethod, Client, ClientCategory, ClientRegistration, ClientStatus, ClientType, GrantType, RedirectUri,
    Scope,
};
pub use factor::{Acr, Factor, amr};
pub use ids::{ClientId, OrgUnitId, UserId};
pub use network::network_of;
pub use org::{OrgPath, OrgUnit};
pub use user::{Email, NewUser, Phone, RoleName, User, UserStatus, Username};

/// A value that failed validation; `Display` is safe to show to the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
