//! Second factors: authenticator apps (TOTP), codes by SMS, recovery codes, and the rule
//! that says which of them a login needs. The functions here take plain values and `now`;
//! the login pages (`login::second_factor`) and the account page call them.

pub mod policy;
pub mod recovery;
pub mod sms;
pub mod totp;

pub use policy::{Enrolled, Requirement, SecondStep, plan};
