//! The password step: one function that answers "is this the user's password?" the same way,
//! in the same time, whether the username exists or not, and upgrades the stored hash when the
//! argon2 parameters have changed since it was made.

use secrecy::SecretString;

use crate::crypto::Verification;
use crate::domain::{User, UserStatus, Username};
use crate::state::Core;
use crate::store::{DbError, users};

/// Why the password step could not answer (as opposed to answering "no").
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Store(#[from] DbError),
    #[error(transparent)]
    Hashing(#[from] crate::crypto::PasswordError),
}

/// The outcome of the password step. `Invalid` covers unknown users, wrong passwords, accounts
/// without a password and disabled accounts alike, so the answer reveals nothing.
#[derive(Debug)]
pub enum PasswordCheck {
    Valid(Box<User>),
    Invalid,
}

/// Checks `password` for `username` (as typed; parsed here). On success with an outdated hash,
/// stores a fresh hash with the current parameters before answering.
pub async fn check_password(
    core: &Core,
    username: &str,
    password: SecretString,
) -> Result<PasswordCheck, LoginError> {
    let found = match Username::parse(username) {
        Ok(name) => core.db.run(move |c| users::find_with_hash(c, &name)).await?,
        Err(_) => None,
    };
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    // Always one argon2 verification: against the dummy hash when there is no real one.
    let verdict = core
        .passwords
        .verify(hash, SecretString::from(secrecy::ExposeSecret::expose_secret(&password).to_owned()))
        .await?;
    let Some(user) = user else { return Ok(PasswordCheck::Invalid) };
    match verdict {
        Verification::Invalid => Ok(PasswordCheck::Invalid),
        Verification::Valid { .. } if user.status != UserStatus::Active => Ok(PasswordCheck::Invalid),
        Verification::Valid { needs_rehash } => {
            if needs_rehash {
                let fresh = core.passwords.hash(password).await?;
                let id = user.id.clone();
                let now = core.clock.now();
                core.db.run(move |c| users::set_password_hash(c, &id, &fresh, false, now)).await?;
                tracing::info!(user = %user.id, "password hash upgraded to current parameters");
            }
            Ok(PasswordCheck::Valid(Box::new(user)))
        }
    }
}
