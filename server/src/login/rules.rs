//! The rules a new password must meet: long enough, not the username, not one of the 10,000
//! most common passwords (SecLists, shipped in `server/data/`), and not the current one (the
//! caller checks that against the stored hash, since only it can).

use std::collections::HashSet;
use std::sync::OnceLock;

/// The list, one password per line, most common first. See `common-passwords.SOURCE.md`.
const COMMON: &str = include_str!("../../data/common-passwords.txt");

fn common() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().map(str::to_lowercase).collect())
}

/// Why a new password was refused; `Display` is the sentence shown to the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRule {
    #[error("Use at least {0} characters.")]
    TooShort(usize),
    #[error("Use at most 1024 characters.")]
    TooLong,
    #[error("Do not use your username as your password.")]
    IsUsername,
    #[error("This password is one of the most common passwords; choose another.")]
    Common,
    #[error("Choose a password different from your current one.")]
    Unchanged,
    #[error("The two passwords do not match.")]
    Mismatch,
}

/// Checks `candidate` for the account `username`. Case is ignored for the username and list
/// comparisons: `Password123!` is as guessable as `password123!`.
pub fn check_new_password(username: &str, candidate: &str, min_length: usize) -> Result<(), PasswordRule> {
    let len = candidate.chars().count();
    if len < min_length {
        return Err(PasswordRule::TooShort(min_length));
    }
    if len > 1024 {
        return Err(PasswordRule::TooLong);
    }
    let lower = candidate.to_lowercase();
    if lower.trim() == username.to_lowercase() {
        return Err(PasswordRule::IsUsername);
    }
    if common().contains(&lower) || common().contains(lower.trim()) {
        return Err(PasswordRule::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_holds_ten_thousand_passwords() {
        assert_eq!(COMMON.lines().count(), 10_000);
        assert!(common().contains("password"));
        assert!(common().len() > 9_000, "case-folding may merge a few entries only");
    }

    #[test]
    fn a_new_password_must_be_long_not_the_username_and_not_common() {
        assert_eq!(check_new_password("asha", "short", 12), Err(PasswordRule::TooShort(12)));
        assert_eq!(check_new_password("asha.kumari01", "Asha.Kumari01", 12), Err(PasswordRule::IsUsername));
        // In the list, and long enough to pass the length rule.
        let long_common = COMMON.lines().find(|p| p.chars().count() >= 12).unwrap();
        assert_eq!(check_new_password("asha", long_common, 12), Err(PasswordRule::Common));
        assert_eq!(check_new_password("asha", &long_common.to_uppercase(), 12), Err(PasswordRule::Common));
        assert_eq!(check_new_password("asha", &"x".repeat(1025), 12), Err(PasswordRule::TooLong));
        assert!(check_new_password("asha", "correct horse battery", 12).is_ok());
        // Length counts characters, not bytes.
        assert_eq!(check_new_password("asha", "टीकाकरण", 12), Err(PasswordRule::TooShort(12)));
    }
}
