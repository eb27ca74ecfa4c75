//! User accounts and the values that describe them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Invalid, OrgUnitId, UserId};

/// A login name: 3–64 characters of lowercase letters, digits, `.`, `_`, `-` and `@`,
/// starting with a letter or digit. Input is lower-cased so `Asha` and `asha` are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim().to_lowercase();
        let len = s.chars().count();
        if !(3..=64).contains(&len) {
            return Err(Invalid::new("a username must be 3 to 64 characters long"));
        }
        let first_ok = s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@'));
        if !first_ok || !rest_ok {
            return Err(Invalid::new(
                "a username may hold only lowercase letters, digits, '.', '_', '-' and '@', \
                 and must start with a letter or digit",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}
impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}
impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in E.164 form: `+`, a country code not starting with 0, 7–15 digits in all.
/// Spaces and dashes in the input are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = compact.strip_prefix('+').unwrap_or("");
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !ok {
            return Err(Invalid::new(format!(
                "'{}' is not a phone number in E.164 form (such as +919812345678)",
                s.trim()
            )));
        }
        Ok(Self(compact))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Phone {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}
impl From<Phone> for String {
    fn from(p: Phone) -> String {
        p.0
    }
}

/// An email address, checked for shape only (one `@`, a dotted domain, no spaces); whether it
/// reaches anyone is for the mail it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let bad = || Invalid::new(format!("'{s}' is not an email address"));
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad());
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Email {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}
impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

/// A role's name, such as `vaccinator` or `national_admin`. What a role may do is decided by
/// the Cedar policies in `policies/`, never by comparing names in code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(Invalid::new(format!(
                "'{s}' is not a role name (lowercase letters, digits and '_')"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for RoleName {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}
impl From<RoleName> for String {
    fn from(r: RoleName) -> String {
        r.0
    }
}
impl std::fmt::Display for RoleName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether an account may log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "active" => Ok(Self::Active),
            "disabled" => Ok(Self::Disabled),
            other => Err(Invalid::new(format!("unknown user status '{other}'"))),
        }
    }
}

/// A user account as stored. The password hash stays inside the store layer's row type;
/// what leaves it is only whether one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub display_name: String,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
    pub org_unit_id: Option<OrgUnitId>,
    pub status: UserStatus,
    pub has_password: bool,
    pub password_changed_at: Option<DateTime<Utc>>,
    pub must_change_password: bool,
    /// Tokens and sessions issued before this instant are dead (campaigns, disable, logout-all).
    pub tokens_valid_after: DateTime<Utc>,
    pub failed_logins: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What it takes to create an account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: Username,
    pub display_name: String,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
    pub org_unit_id: Option<OrgUnitId>,
    /// A PHC-format hash, or `None` for an account that must set its password through a
    /// reset link (imports).
    pub password_hash: Option<String>,
    pub must_change_password: bool,
}

impl NewUser {
    /// Display names are free text but bounded and single-line.
    pub fn check_display_name(s: &str) -> Result<String, Invalid> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) {
            return Err(Invalid::new("a display name must be 1 to 200 characters on one line"));
        }
        Ok(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(Username::parse(" Asha.K ").unwrap().as_str(), "asha.k");
        for bad in ["ab", "-abc", "a b c", "ab$c", &"x".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_must_be_e164() {
        assert_eq!(Phone::parse("+91 98123-45678").unwrap().as_str(), "+919812345678");
        for bad in ["9812345678", "+0123456789", "+91abc", "+1234", "+1234567890123456"] {
            let err = Phone::parse(bad).unwrap_err();
            assert!(err.0.contains("E.164"), "{bad}: {err}");
        }
    }

    #[test]
    fn emails_are_checked_for_shape_and_domains_lowercased() {
        assert_eq!(Email::parse("Asha@Example.ORG").unwrap().as_str(), "Asha@example.org");
        for bad in ["asha", "@x.org", "a@b", "a@@b.org", "a b@c.org", "a@.org"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_names_are_snake_case() {
        assert!(RoleName::parse("national_admin").is_ok());
        assert!(RoleName::parse("National Admin").is_err());
    }
}
