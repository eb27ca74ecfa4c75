//! What the second step of a login does: [`plan`], given what the account's roles require (the
//! role policies' decision, `PolicyEngine::factors`) and what it has enrolled.

use crate::domain::{Acr, Factor};

/// What the account's roles demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// No second factor is required.
    None,
    /// One of these factors is required (never empty).
    OneOf(Vec<Factor>),
}

impl Requirement {
    /// The weakest login the roles accept.
    pub fn level(&self) -> Acr {
        match self {
            Self::None => Acr::Password,
            Self::OneOf(_) => Acr::Mfa,
        }
    }
}

/// What the account can use today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Enrolled {
    pub totp: bool,
    /// A phone number is registered (SMS needs nothing else).
    pub phone: bool,
}

/// The step after a right password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondStep {
    /// The password is enough.
    NotNeeded,
    /// Prove one of these (never empty).
    Verify(Vec<Factor>),
    /// The roles need a factor and none is usable: set up an authenticator app first.
    EnrollTotp,
    /// A factor is needed and none can be used or set up on the password alone: the roles
    /// allow SMS only and no phone is registered, or only the client asked for one (setting
    /// up an app then would let whoever holds the password claim the account's second
    /// factor).
    NoUsableFactor,
}

/// Decides the step after the password. A second factor is asked for when the roles require
/// one, when the person has set up an authenticator app (then it is always used), or when the
/// client asked for a multi-factor login (`acr_values`).
pub fn plan(requirement: &Requirement, enrolled: Enrolled, wanted: Option<Acr>) -> SecondStep {
    let wants_mfa = wanted == Some(Acr::Mfa);
    let required = matches!(requirement, Requirement::OneOf(_)) || enrolled.totp || wants_mfa;
    if !required {
        return SecondStep::NotNeeded;
    }
    let allowed = match requirement {
        Requirement::OneOf(l) => l.clone(),
        Requirement::None => vec![Factor::Totp, Factor::Sms],
    };
    let usable: Vec<Factor> = allowed
        .iter()
        .copied()
        .filter(|f| match f {
            Factor::Totp => enrolled.totp,
            Factor::Sms => enrolled.phone,
        })
        .collect();
    if !usable.is_empty() {
        SecondStep::Verify(usable)
    } else if matches!(requirement, Requirement::OneOf(_)) && allowed.contains(&Factor::Totp) {
        SecondStep::EnrollTotp
    } else {
        SecondStep::NoUsableFactor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_follows_what_is_required_and_enrolled() {
        let app = Requirement::OneOf(vec![Factor::Totp]);
        let either = Requirement::OneOf(vec![Factor::Totp, Factor::Sms]);
        let sms = Requirement::OneOf(vec![Factor::Sms]);
        let none = Enrolled::default();
        let phone = Enrolled { totp: false, phone: true };
        let totp = Enrolled { totp: true, phone: false };
        assert_eq!(plan(&Requirement::None, none, None), SecondStep::NotNeeded);
        assert_eq!(plan(&app, none, None), SecondStep::EnrollTotp);
        assert_eq!(plan(&app, phone, None), SecondStep::EnrollTotp, "SMS is not allowed for this role");
        assert_eq!(plan(&either, phone, None), SecondStep::Verify(vec![Factor::Sms]));
        assert_eq!(plan(&sms, none, None), SecondStep::NoUsableFactor);
        assert_eq!(plan(&app, totp, None), SecondStep::Verify(vec![Factor::Totp]));
        // An app set up voluntarily is always used.
        assert_eq!(plan(&Requirement::None, totp, None), SecondStep::Verify(vec![Factor::Totp]));
        // A client asking for a multi-factor login gets one.
        assert_eq!(plan(&Requirement::None, phone, Some(Acr::Mfa)), SecondStep::Verify(vec![Factor::Sms]));
        // …but setting up an app on the password alone is only for roles that require one.
        assert_eq!(plan(&Requirement::None, none, Some(Acr::Mfa)), SecondStep::NoUsableFactor);
        assert_eq!(plan(&Requirement::None, none, Some(Acr::Password)), SecondStep::NotNeeded);
    }
}
