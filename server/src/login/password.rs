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
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::WrongPassword => "wrong_password",
            Self::NoPassword => "no_password",
            Self::Disabled => "disabled",
            Self::Locked => "locked",
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

/// The password step of the login page, with lockout. Each attempt on an active account is
/// charged as a failure *before* its verdict may count (one atomic statement per charge), so
/// however many guesses arrive at once, at most `lockout_threshold` of them are judged per
/// lock window; the rest are refused as locked. The charge runs beside the argon2
/// verification, so an existing account answers no slower than an unknown one, and every
/// answer costs one verification. A right password takes its own charge back (and a lock
/// that charge set), so typing it never locks its owner; wrong ones stay counted until a
/// login completes. A right password is then admitted only when the login completes
/// (`complete_login`: one atomic statement that sees a lock set meanwhile by parallel
/// guesses), so while a second factor is still to come, wrong codes keep adding up.
pub async fn attempt_login(
    core: &Core,
    username: &str,
    password: SecretString,
) -> Result<LoginAttempt, LoginError> {
    let found = match Username::parse(username) {
        Ok(name) => core.db.run(move |c| users::find_with_hash(c, &name)).await?,
        Err(_) => None,
    };
    let now = core.clock.now();
    let copy = SecretString::from(secrecy::ExposeSecret::expose_secret(&password).to_owned());
    let Some((user, hash)) = found else {
        core.passwords.verify(None, copy).await?;
        return Ok(LoginAttempt::Refused { user: None, why: Refusal::UnknownUser });
    };
    let had_hash = hash.is_some();
    if user.status != UserStatus::Active {
        core.passwords.verify(hash, copy).await?;
        return Ok(LoginAttempt::Refused { user: Some(Box::new(user)), why: Refusal::Disabled });
    }
    let charging = charge_password(core, &user, now, LockAudit::Caller);
    let (charge, verdict) = tokio::join!(charging, core.passwords.verify(hash, copy));
    let (charge, verdict) = (charge?, verdict?);
    // Locked (before this attempt, or by a parallel one): refused whatever the verdict, which
    // is thrown away unread.
    let Charge::Counted { lock } = charge else {
        return Ok(LoginAttempt::Refused { user: Some(Box::new(user)), why: Refusal::Locked });
    };
    match verdict {
        Verification::Invalid => {
            if let Some(lock) = lock {
                audit_lockout(core, &user, &lock).await;
            }
            let why = if had_hash { Refusal::WrongPassword } else { Refusal::NoPassword };
            Ok(LoginAttempt::Refused { user: Some(Box::new(user)), why })
        }
        Verification::Valid { needs_rehash } => {
            let (id, until) = (user.id.clone(), lock.map(|l| l.until));
            core.db.run(move |c| users::refund_failed_login(c, &id, until)).await?;
            if needs_rehash {
                upgrade_hash(core, &user, password).await?;
            }
            Ok(LoginAttempt::Success(Box::new(user)))
        }
    }
}

/// What charging one attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Charge {
    /// Counted; `lock` when this very charge reached the threshold and set the lock.
    Counted { lock: Option<Lock> },
    /// The account is locked: nothing was counted, and the attempt must not be judged.
    Locked,
}

/// A lock a charge set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lock {
    pub until: chrono::DateTime<chrono::Utc>,
    pub failures: i32,
    pub seconds: u64,
}

/// Who writes the `login.lockout` event of a lock a charge sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LockAudit {
    /// The charge, in its transaction (the attempt is a failure whatever comes next).
    Charge,
    /// The caller, once the verdict shows the attempt was wrong (a right password takes its
    /// charge and its lock back, and must leave no lockout in the trail).
    Caller,
}

/// Charges one attempt against `user` as a failure — a password or a second-factor code,
/// before it is checked — and locks the account at the threshold. The transaction's UPDATE
/// holds the account's row, so of parallel attempts only `threshold` get counted before the
/// lock; a right answer then takes the charge back (`users::refund_failed_login`) or clears it
/// (`users::admit_charged`).
pub(super) async fn charge_password(
    core: &Core,
    user: &User,
    now: chrono::DateTime<chrono::Utc>,
    lock_audit: LockAudit,
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
                    return Ok(Charge::Counted { lock: None });
                };
                // Whole microseconds, as both databases keep it, so a refund can find it again.
                let until = crate::clock::truncate_micros(
                    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(1)),
                );
                users::set_locked_until(c, &id, Some(until))?;
                let lock = Lock { until, failures, seconds: d.as_secs() };
                if lock_audit == LockAudit::Charge {
                    audit.append_with(c, vec![lockout_event(&name, &id, &lock)])?;
                }
                Ok(Charge::Counted { lock: Some(lock) })
            })
        })
        .await
}

fn lockout_event(name: &Username, id: &crate::domain::UserId, lock: &Lock) -> crate::domain::AuditEvent {
    crate::domain::AuditEvent::new(format!("user:{name}"), "login.lockout", crate::domain::Outcome::Denied)
        .target(format!("user:{id}"))
        .details(serde_json::json!({ "failures": lock.failures, "seconds": lock.seconds }))
}

/// Records a lock that a wrong password set (logged, never shown, if it cannot be written).
async fn audit_lockout(core: &Core, user: &User, lock: &Lock) {
    if let Err(e) = core.audit.append(lockout_event(&user.username, &user.id, lock)).await {
        tracing::error!(error = ?e, "could not audit a lockout");
    }
}

/// [`charge_password`] for the steps that only need to know whether to go on: `false` when
/// the account is locked and the attempt must not be checked at all.
pub(super) async fn charge_attempt(
    core: &Core,
    user: &User,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, DbError> {
    Ok(matches!(charge_password(core, user, now, LockAudit::Charge).await?, Charge::Counted { .. }))
}

/// Whether `password` is the account's current one (the "not the current password" rule).
pub async fn is_current_password(core: &Core, user: &User, password: &str) -> Result<bool, LoginError> {
    let name = user.username.clone();
    let found = core.db.run(move |c| users::find_with_hash(c, &name)).await?;
    let Some((_, Some(hash))) = found else { return Ok(false) };
    let verdict = core.passwords.verify(Some(hash), SecretString::from(password.to_owned())).await?;
    Ok(matches!(verdict, Verification::Valid { .. }))
}
