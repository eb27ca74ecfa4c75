//! What an account has and needs for the second step of its login: its roles' requirement
//! ([`required_factors`]), its authenticator app and its recovery codes, read together.

use crate::domain::{Acr, User};
use crate::mfa::{Enrolled, Requirement, required_factors};
use crate::state::AppState;
use crate::store::factors::{self, TotpFactor};
use crate::store::{DbError, roles};

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
    let (held, totp, recovery_left) = state
        .core
        .db
        .run(move |c| {
            let held = roles::roles_of(c, &id)?;
            let totp = factors::totp(c, &id)?;
            let left = factors::unused_recovery_codes(c, &id)?;
            Ok::<_, DbError>((held, totp, left))
        })
        .await?;
    Ok(FactorState {
        requirement: required_factors(&state.core.settings.mfa, &held),
        totp,
        phone: user.phone.is_some(),
        recovery_left,
    })
}
