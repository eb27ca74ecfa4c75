//! What an account has and needs for the second step of its login: its roles' requirement
//! (the role policies' `factor.require` and `factor.use`), its authenticator app and its recovery codes, read together.

use crate::domain::{Acr, User};
use crate::mfa::{Enrolled, Requirement};
use crate::state::AppState;
use crate::store::DbError;
use crate::store::factors::{self, TotpFactor};

/// What an account has and needs for its second step.
#[derive(Debug, Clone)]
pub struct FactorState {
    pub requirement: Requirement,
    pub totp: Option<TotpFactor>,
    pub phone: bool,
    pub recovery_left: i64,
}

impl FactorState {
    pub fn enrolled(&self) -> Enrolled {
        Enrolled { totp: self.totp.is_some(), phone: self.phone }
    }

    /// The weakest login this account may use: a second factor when its roles require one
    /// or when it has an authenticator app.
    pub fn level(&self) -> Acr {
        if self.totp.is_some() { Acr::Mfa } else { self.requirement.level() }
    }
}

/// The account's roles, factors and recovery codes, in one database round trip.
pub async fn factor_state(state: &AppState, user: &User) -> Result<FactorState, DbError> {
    let id = user.id.clone();
    let account = user.clone();
    let (person, totp, recovery_left) = state
        .core
        .db
        .run(move |c| {
            let person = crate::policy::load_person(c, &account)?;
            let totp = factors::totp(c, &id)?;
            let left = factors::unused_recovery_codes(c, &id)?;
            Ok::<_, DbError>((person, totp, left))
        })
        .await?;
    Ok(FactorState {
        requirement: state.core.policy.factors(&person),
        totp,
        phone: user.phone.is_some(),
        recovery_left,
    })
}

/// Why a code could not be checked (as opposed to being wrong).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the app's secret does not open: {0}")]
    Sealed(#[from] crate::crypto::EnvelopeError),
}

/// What a typed authenticator-app code turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppCode {
    Right,
    /// Right for a step already accepted (RFC 6238 §5.2): refused.
    Replayed,
    Wrong,
    /// The account has no app.
    NoApp,
}

/// Checks `typed` against the account's app: ± one step, and only a step newer than the last
/// accepted, which it then stores in one conditional statement (of two parallel uses of one
/// code, one is `Right`).
pub async fn check_app_code(state: &AppState, user: &User, typed: &str) -> Result<AppCode, CheckError> {
    let now = state.core.clock.now();
    let id = user.id.clone();
    let Some(f) = state.core.db.run(move |c| factors::totp(c, &id)).await? else { return Ok(AppCode::NoApp) };
    let aad = format!("totp:{}", user.id);
    let secret = zeroize::Zeroizing::new(state.core.keys.secrets.open(&f.sealed_secret, aad.as_bytes())?);
    match crate::mfa::totp::verify(&secret, typed, now.timestamp(), f.last_step) {
        Some(step) => {
            let id = user.id.clone();
            let fresh = state.core.db.run(move |c| factors::accept_totp_step(c, &id, step, now)).await?;
            Ok(if fresh { AppCode::Right } else { AppCode::Replayed })
        }
        None if crate::mfa::totp::verify(&secret, typed, now.timestamp(), -1).is_some() => {
            Ok(AppCode::Replayed)
        }
        None => Ok(AppCode::Wrong),
    }
}

/// Spends `typed` if it is one of the account's unused recovery codes: how many are left after
/// it, or `None`.
pub async fn spend_recovery_code(
    state: &AppState,
    user: &User,
    typed: &str,
) -> Result<Option<i64>, CheckError> {
    let Some(normal) = crate::mfa::recovery::normalize(typed) else { return Ok(None) };
    let digest = crate::mfa::recovery::digest(&state.core.keys.digester, &user.id, &normal);
    let (id, now) = (user.id.clone(), state.core.clock.now());
    Ok(state.core.db.run(move |c| factors::spend_recovery_code(c, &id, &digest, now)).await?)
}
