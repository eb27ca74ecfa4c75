//! Second factors and the strength of a login: which factor kinds exist, the RFC 8176
//! method references a login records, and the authentication context classes (`acr`) a
//! client may ask for.

use serde::{Deserialize, Serialize};

/// A second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Factor {
    /// An authenticator app (RFC 6238).
    Totp,
    /// A code sent by SMS to the account's registered phone.
    Sms,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Sms => "sms",
        }
    }
}

/// RFC 8176 authentication method references.
pub mod amr {
    /// A password.
    pub const PWD: &str = "pwd";
    /// A one-time password (an authenticator app's code).
    pub const OTP: &str = "otp";
    /// A code sent by SMS.
    pub const SMS: &str = "sms";
    /// More than one factor.
    pub const MFA: &str = "mfa";
}

/// How strongly a login proved who the person is, as an ordered level: a login satisfies
/// every class at or below its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Acr {
    /// A password alone.
    Password,
    /// A password and a second factor.
    Mfa,
}

impl Acr {
    pub const ALL: [Acr; 2] = [Acr::Password, Acr::Mfa];

    /// The class's URI, as it appears in `acr` claims and `acr_values`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "urn:pramaan:acr:password",
            Self::Mfa => "urn:pramaan:acr:mfa",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The weakest class among `acr_values` (OIDC Core §3.1.2.1: any listed class is
    /// acceptable). `Ok(None)` when nothing is asked; `Err(())` when values are asked and we
    /// know none of them, so no login here can meet the request.
    #[allow(clippy::result_unit_err)]
    pub fn requested(acr_values: &[String]) -> Result<Option<Self>, ()> {
        if acr_values.is_empty() {
            return Ok(None);
        }
        acr_values.iter().filter_map(|v| Self::parse(v)).min().map(Some).ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weakest_known_class_asked_for_decides() {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(Acr::requested(&v(&[])), Ok(None));
        assert_eq!(Acr::requested(&v(&["urn:pramaan:acr:mfa"])), Ok(Some(Acr::Mfa)));
        assert_eq!(
            Acr::requested(&v(&["urn:pramaan:acr:mfa", "urn:pramaan:acr:password"])),
            Ok(Some(Acr::Password))
        );
        assert_eq!(Acr::requested(&v(&["gold", "urn:pramaan:acr:mfa"])), Ok(Some(Acr::Mfa)));
        assert_eq!(Acr::requested(&v(&["gold"])), Err(()));
        assert!(Acr::Password < Acr::Mfa);
    }
}
