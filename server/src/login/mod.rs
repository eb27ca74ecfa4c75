//! Logging people in. The browser pages arrive with the OIDC issue; the rules they call live
//! here as functions over plain values, unit-tested without a server.

mod password;

pub use password::{LoginError, PasswordCheck, check_password};
