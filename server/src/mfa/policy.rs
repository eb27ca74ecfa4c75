//! Which second factor a login needs: [`required_factors`] (the rule, from the configured
//! role table; the role-policy issue moves it into Cedar, and only this function changes) and
//! [`plan`] (what the login does next, given what the account has enrolled).

use crate::config::MfaSettings;
use crate::domain::{Acr, Factor, RoleName};

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

/// The factors `roles` require. Each listed role names the factors its members may use; a
/// user holding several may use only those all of them allow (and if they allow none in
/// common, the authenticator app, the strongest). A user with no listed role gets
/// `default_factors`, where an empty list means no second factor.
pub fn required_factors(settings: &MfaSettings, roles: &[RoleName]) -> Requirement {
    let mut allowed: Option<Vec<Factor>> = None;
    for role in roles {
        if let Some(list) = settings.roles.get(role.as_str()) {
            allowed = Some(match allowed {
                None => list.clone(),
                Some(prev) => prev.into_iter().filter(|f| list.contains(f)).collect(),
            });
        }
    }
    let mut list = match allowed {
        Some(l) if l.is_empty() => vec![Factor::Totp],
        Some(l) => l,
        None => settings.default_factors.clone(),
    };
    list.sort();
    list.dedup();
    if list.is_empty() { Requirement::None } else { Requirement::OneOf(list) }
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

    fn roles(names: &[&str]) -> Vec<RoleName> {
        names.iter().map(|n| RoleName::parse(n).unwrap()).collect()
    }

    #[test]
    fn the_shipped_table_wants_an_app_for_admins_and_lets_field_staff_choose() {
        let s = MfaSettings::default();
        assert_eq!(required_factors(&s, &roles(&["national_admin"])), Requirement::OneOf(vec![Factor::Totp]));
        assert_eq!(
            required_factors(&s, &roles(&["vaccinator"])),
            Requirement::OneOf(vec![Factor::Totp, Factor::Sms])
        );
        // An admin who also vaccinates may use only what both allow.
        assert_eq!(
            required_factors(&s, &roles(&["vaccinator", "district_admin"])),
            Requirement::OneOf(vec![Factor::Totp])
        );
        // Everyone else: a second factor too, either kind (every staff login has one).
        assert_eq!(required_factors(&s, &[]), Requirement::OneOf(vec![Factor::Totp, Factor::Sms]));
    }

    #[test]
    fn an_empty_default_exempts_users_without_a_listed_role_only() {
        let s = MfaSettings { default_factors: vec![], ..MfaSettings::default() };
        assert_eq!(required_factors(&s, &[]), Requirement::None);
        assert_eq!(required_factors(&s, &roles(&["unlisted"])), Requirement::None);
        assert_eq!(required_factors(&s, &roles(&["auditor"])), Requirement::OneOf(vec![Factor::Totp]));
    }

    #[test]
    fn roles_that_share_no_factor_fall_back_to_the_app() {
        let mut s = MfaSettings::default();
        s.roles.insert("sms_only".into(), vec![Factor::Sms]);
        assert_eq!(
            required_factors(&s, &roles(&["sms_only", "national_admin"])),
            Requirement::OneOf(vec![Factor::Totp])
        );
    }

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
