//! The password step: one function that answers "is this the user's password?" the same way,
//! in the same time, whether the username exists or not, and upgrades the stored hash when the
//! argon2 parameters have changed since it was made.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::Verification;
use crate::domain::{User, UserStatus, Username};
use crate::sessions::SessionStore;
use crate::state::Core;
use crate::store::{DbError, users};

/// Why the password step could not answer (as opposed to answering "no").
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Store(#[from] DbError),
    #[error(transparent)]
    Hashing(#[from] crate::crypto::PasswordError),
    #[error(transparent)]
    Sessions(#[from] crate::sessions::StoreError),
    /// The check's task ended before it answered (the server is shutting down).
    #[error("the password check stopped before it answered")]
    Interrupted,
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
    let (user, _, verdict) = lookup_and_verify(core, username, &password).await?;
    let Some(user) = user else { return Ok(PasswordCheck::Invalid) };
    match verdict {
        Verification::Invalid => Ok(PasswordCheck::Invalid),
        Verification::Valid { .. } if user.status != UserStatus::Active => Ok(PasswordCheck::Invalid),
        Verification::Valid { needs_rehash } => {
            if needs_rehash {
                upgrade_hash(core, &user, password).await?;
            }
            Ok(PasswordCheck::Valid(Box::new(user)))
        }
    }
}

/// The account `username` names (if any), whether it has a password, and the verdict of one
/// argon2 verification — against the dummy hash when there is no real one, so every answer
/// costs the same.
async fn lookup_and_verify(
    core: &Core,
    username: &str,
    password: &SecretString,
) -> Result<(Option<User>, bool, Verification), LoginError> {
    let found = match Username::parse(username) {
        Ok(name) => core.db.run(move |c| users::find_with_hash(c, &name)).await?,
        Err(_) => None,
    };
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    let had_hash = hash.is_some();
    let copy = SecretString::from(secrecy::ExposeSecret::expose_secret(password).to_owned());
    let verdict = core.passwords.verify(hash, copy).await?;
    Ok((user, had_hash, verdict))
}

/// Stores a fresh hash of the (verified) password with the current parameters.
async fn upgrade_hash(core: &Core, user: &User, password: SecretString) -> Result<(), LoginError> {
    let fresh = core.passwords.hash(password).await?;
    let id = user.id.clone();
    let now = core.clock.now();
    core.db.run(move |c| users::set_password_hash(c, &id, &fresh, false, now)).await?;
    tracing::info!(user = %user.id, "password hash upgraded to current parameters");
    Ok(())
}

/// Why a login attempt was refused. Only the audit trail sees this; the person always gets
/// the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownUser,
    WrongPassword,
    /// The account has no usable password yet (imported; set through a reset link).
    NoPassword,
    Disabled,
    /// Locked after repeated failures; the password was not even considered.
    Locked,
    /// Not locked, but more passwords were being checked at once than guesses are left
    /// before the lock; this one was not considered.
    TooManyAtOnce,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::WrongPassword => "wrong_password",
            Self::NoPassword => "no_password",
            Self::Disabled => "disabled",
            Self::Locked => "locked",
            Self::TooManyAtOnce => "too_many_at_once",
        }
    }
}

/// The outcome of a login form's password step.
#[derive(Debug)]
pub enum LoginAttempt {
    Success(Box<User>),
    /// `user` is the account the username named, if any (for the audit trail).
    Refused {
        user: Option<Box<User>>,
        why: Refusal,
    },
}

/// How long the count of password checks in progress for one username outlives its last
/// check when an instance never says a check ended (it crashed mid-check). Far longer than a
/// check takes, even queued behind every other argon2 verification.
const CHECKS_HELD_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// The password step of the login page, with lockout. However many guesses arrive at once,
/// at most `lockout_threshold` of them are judged per lock window; the rest are refused
/// unjudged. The rule: the checks in progress for a username are counted in the session store
/// (shared by every instance) *before* the account's failures are read, a check is judged
/// only when the failures so far plus the checks in progress, itself included, stay within
/// the threshold, and a wrong password is counted in the database before its check stops
/// counting as in progress. So every judged guess is seen by every later one, as a failure or
/// as a check in progress. A right password writes nothing (the database is written only for
/// wrong ones, as before there was a race to close); it is admitted only when the login
/// completes (`complete_login`: one atomic statement that sees a lock set meanwhile by
/// parallel guesses), so while a second factor is still to come, wrong codes keep adding up.
/// Every answer costs one argon2 verification, so a locked or unknown account answers no
/// faster than an existing one. The check runs in its own task: a client that hangs up cannot
/// stop it between judging a wrong password and counting it.
pub async fn attempt_login(
    core: &Core,
    sessions: &Arc<dyn SessionStore>,
    username: &str,
    password: SecretString,
) -> Result<LoginAttempt, LoginError> {
    let Ok(name) = Username::parse(username) else {
        core.passwords.verify(None, password).await?;
        return Ok(LoginAttempt::Refused { user: None, why: Refusal::UnknownUser });
    };
    let (core, sessions) = (core.clone(), sessions.clone());
    tokio::spawn(async move {
        let key = format!("password-checks:{name}");
        let in_progress = sessions.hold(&key, CHECKS_HELD_FOR).await?;
        let judged = judge(&core, &name, password, in_progress).await;
        if let Err(e) = sessions.release(&key).await {
            // Forgotten `CHECKS_HELD_FOR` after the last check; until then it counts as one.
            tracing::warn!(error = %e, "a finished password check could not be let go");
        }
        judged
    })
    .await
    .map_err(|_| LoginError::Interrupted)?
}

/// [`attempt_login`] once this check is counted among the `in_progress` ones.
async fn judge(
    core: &Core,
    name: &Username,
    password: SecretString,
    in_progress: u64,
) -> Result<LoginAttempt, LoginError> {
    let lookup = name.clone();
    let found = core.db.run(move |c| users::find_with_hash(c, &lookup)).await?;
    let now = core.clock.now();
    let Some((user, hash)) = found else {
        core.passwords.verify(None, password).await?;
        return Ok(LoginAttempt::Refused { user: None, why: Refusal::UnknownUser });
    };
    if user.status != UserStatus::Active {
        core.passwords.verify(hash, password).await?;
        return Ok(LoginAttempt::Refused { user: Some(Box::new(user)), why: Refusal::Disabled });
    }
    let refused_unjudged = if user.locked_until.is_some_and(|until| until > now) {
        Some(Refusal::Locked)
    } else if in_progress > guesses_left(user.failed_logins, &core.settings.login) {
        Some(Refusal::TooManyAtOnce)
    } else {
        None
    };
    if let Some(why) = refused_unjudged {
        // The verdict is never computed; the time it takes is still spent.
        core.passwords.verify(None, password).await?;
        return Ok(LoginAttempt::Refused { user: Some(Box::new(user)), why });
    }
    let had_hash = hash.is_some();
    match core.passwords.verify(hash, SecretString::from(password.expose_secret().to_owned())).await? {
        Verification::Invalid => {
            charge_password(core, &user, now).await?;
            let why = if had_hash { Refusal::WrongPassword } else { Refusal::NoPassword };
            Ok(LoginAttempt::Refused { user: Some(Box::new(user)), why })
        }
        Verification::Valid { needs_rehash } => {
            if needs_rehash {
                upgrade_hash(core, &user, password).await?;
            }
            Ok(LoginAttempt::Success(Box::new(user)))
        }
    }
}

/// How many guesses an unlocked account with `failures` in a row may have judged at once: up
/// to the threshold, then one at a time (each further failure locks it again, for longer).
fn guesses_left(failures: i32, s: &crate::config::LoginSettings) -> u64 {
    let failures = u64::try_from(failures).unwrap_or(0);
    u64::from(s.lockout_threshold).saturating_sub(failures).max(1)
}

/// What charging one attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charge {
    Counted,
    /// The account is locked: nothing was counted, and the attempt must not be judged.
    Locked,
}

/// A lock a charge set, for the audit trail.
struct Lock {
    failures: i32,
    seconds: u64,
}

/// Charges one failure against `user` — a wrong password once judged, or a second-factor,
/// reset or account-page code before it is checked — and locks the account at the
/// threshold, recording the lock in the same transaction. The UPDATE holds the account's
/// row, so of parallel charges only `threshold` are counted before the lock.
async fn charge_password(
    core: &Core,
    user: &User,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Charge, DbError> {
    let (id, name) = (user.id.clone(), user.username.clone());
    let (settings, audit) = (core.settings.login.clone(), core.audit.clone());
    core.db
        .run(move |c| {
            crate::store::write_transaction(c, |c| {
                let Some(failures) = users::count_failed_login(c, &id, now)? else {
                    return Ok(Charge::Locked);
                };
                let Some(d) = super::lockout::lock_for(u32::try_from(failures).unwrap_or(0), &settings)
                else {
                    return Ok(Charge::Counted);
                };
                let until = now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(1));
                users::set_locked_until(c, &id, Some(until))?;
                let lock = Lock { failures, seconds: d.as_secs() };
                audit.append_with(c, vec![lockout_event(&name, &id, &lock)])?;
                Ok(Charge::Counted)
            })
        })
        .await
}

fn lockout_event(name: &Username, id: &crate::domain::UserId, lock: &Lock) -> crate::domain::AuditEvent {
    crate::domain::AuditEvent::new(format!("user:{name}"), "login.lockout", crate::domain::Outcome::Denied)
        .target(format!("user:{id}"))
        .details(serde_json::json!({ "failures": lock.failures, "seconds": lock.seconds }))
}

/// Charges an attempt that is about to be checked (a second-factor, reset or account-page
/// code; [`charge_password`]): `false` when the account is locked and the attempt must not
/// be checked at all. A right answer then clears the count (`users::admit_charged`).
pub(super) async fn charge_attempt(
    core: &Core,
    user: &User,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, DbError> {
    Ok(charge_password(core, user, now).await? == Charge::Counted)
}

/// Whether `password` is the account's current one (the "not the current password" rule).
pub async fn is_current_password(core: &Core, user: &User, password: &str) -> Result<bool, LoginError> {
    let name = user.username.clone();
    let found = core.db.run(move |c| users::find_with_hash(c, &name)).await?;
    let Some((_, Some(hash))) = found else { return Ok(false) };
    let verdict = core.passwords.verify(Some(hash), SecretString::from(password.to_owned())).await?;
    Ok(matches!(verdict, Verification::Valid { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_left_count_down_to_the_threshold_then_one_at_a_time() {
        let s = crate::config::LoginSettings::default();
        assert_eq!(s.lockout_threshold, 5);
        assert_eq!(guesses_left(0, &s), 5);
        assert_eq!(guesses_left(3, &s), 2);
        assert_eq!(guesses_left(4, &s), 1);
        // Past the threshold each failure locks again: one guess per lock window.
        assert_eq!(guesses_left(5, &s), 1);
        assert_eq!(guesses_left(40, &s), 1);
        assert_eq!(guesses_left(-1, &s), 5, "a count that cannot be is read as none");
    }
}
