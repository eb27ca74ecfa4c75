//! The changes the admin API makes to accounts. Each takes the [`Capability`] a permitting
//! decision produced and acts on the account the decision was about, in one transaction with
//! its audit event (which records the decision's reason and the policy version).

use serde_json::json;

use super::caller::Caller;
use super::error::ApiError;
use crate::domain::{AuditEvent, Outcome, RoleName, User, UserId, UserStatus};
use crate::policy::actions::{AssignRole, DisableUser, EnableUser, ResetFactors, RevokeSessions};
use crate::policy::{AdminAction, Capability};
use crate::state::AppState;
use crate::store::{AnyConnection, DbError, factors, meta, roles, users, write_transaction};

fn target_of<A: AdminAction>(cap: &Capability<A>) -> Result<UserId, ApiError> {
    cap.user().cloned().ok_or_else(|| ApiError::unexpected(&"a capability without an account"))
}

fn decided<A: AdminAction>(cap: &Capability<A>) -> serde_json::Value {
    json!({ "decision": cap.verdict().reason(), "policy_version": cap.verdict().version })
}

fn event<A: AdminAction>(
    caller: &Caller,
    cap: &Capability<A>,
    action: &str,
    mut details: serde_json::Value,
) -> AuditEvent {
    if let (Some(d), serde_json::Value::Object(extra)) = (details.as_object_mut(), decided(cap)) {
        d.extend(extra);
    }
    let target = cap.user().map(|u| format!("user:{u}")).unwrap_or_default();
    AuditEvent::new(caller.actor(), action, Outcome::Success).target(target).details(details)
}

/// Refuses to leave a protected role (anti-lockout) without an active holder besides `user`.
fn keep_a_holder(c: &mut AnyConnection, role: &RoleName, user: &UserId) -> Result<(), DbError> {
    roles::lock_holders(c, role)?;
    if roles::other_active_holders(c, role, user)? == 0 {
        return Err(DbError::Conflict(format!(
            "this is the last active {role}: grant the role to another active account first, so the \
             organisation can still be administered"
        )));
    }
    Ok(())
}

fn protected(state: &AppState) -> Vec<RoleName> {
    state.core.settings.policy.protected_roles.iter().filter_map(|r| RoleName::parse(r).ok()).collect()
}

fn db_error(e: DbError) -> ApiError {
    match e {
        DbError::Conflict(m) => ApiError::Conflict(m),
        DbError::NotFound => ApiError::NotFound("No such account.".into()),
        other => ApiError::unexpected(&other),
    }
}

/// Disables the account: it cannot sign in, and its sessions and tokens die at once. The last
/// active holder of a protected role cannot be disabled.
pub async fn disable(
    state: &AppState,
    caller: &Caller,
    cap: Capability<DisableUser>,
    reason: Option<String>,
) -> Result<User, ApiError> {
    let id = target_of(&cap)?;
    let now = state.core.clock.now();
    let (audit, protected) = (state.core.audit.clone(), protected(state));
    let event = event(caller, &cap, "user.disable", json!({ "reason": reason }));
    state
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                let user = users::find(c, &id)?.ok_or(DbError::NotFound)?;
                if user.status == UserStatus::Active {
                    for role in roles::roles_of(c, &id)?.iter().filter(|r| protected.contains(r)) {
                        keep_a_holder(c, role, &id)?;
                    }
                }
                let updated = users::set_status(c, &id, UserStatus::Disabled, now)?;
                meta::bump_revocation_epoch(c)?;
                audit.append_with(c, vec![event])?;
                Ok(updated)
            })
        })
        .await
        .map_err(db_error)
}

/// Enables the account (sessions and tokens from before it was disabled stay dead).
pub async fn enable(
    state: &AppState,
    caller: &Caller,
    cap: Capability<EnableUser>,
) -> Result<User, ApiError> {
    let id = target_of(&cap)?;
    let now = state.core.clock.now();
    let audit = state.core.audit.clone();
    let event = event(caller, &cap, "user.enable", json!({}));
    state
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                let updated = users::set_status(c, &id, UserStatus::Active, now)?;
                meta::bump_revocation_epoch(c)?;
                audit.append_with(c, vec![event])?;
                Ok(updated)
            })
        })
        .await
        .map_err(db_error)
}

/// Grants the role the decision was about.
pub async fn grant(state: &AppState, caller: &Caller, cap: Capability<AssignRole>) -> Result<(), ApiError> {
    let (role, id) = match cap.subject() {
        crate::policy::Subject::Role { role, user } => (role.clone(), user.clone()),
        _ => return Err(ApiError::unexpected(&"a role capability without a role")),
    };
    let now = state.core.clock.now();
    let audit = state.core.audit.clone();
    let event = event(caller, &cap, "role.grant", json!({ "role": role.as_str() }));
    state
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                if !roles::exists(c, &role)? {
                    return Err(DbError::Conflict(format!("there is no role '{role}'")));
                }
                roles::assign(c, &id, &role, now)?;
                audit.append_with(c, vec![event])?;
                Ok(())
            })
        })
        .await
        .map_err(db_error)
}

/// Takes the role the decision was about away; true when the account held it. The last active
/// holder of a protected role keeps it. Logins and tokens from before lose what the role gave
/// at their next use (every decision reads the roles afresh).
pub async fn revoke_role(
    state: &AppState,
    caller: &Caller,
    cap: Capability<AssignRole>,
) -> Result<bool, ApiError> {
    let (role, id) = match cap.subject() {
        crate::policy::Subject::Role { role, user } => (role.clone(), user.clone()),
        _ => return Err(ApiError::unexpected(&"a role capability without a role")),
    };
    let (audit, protected) = (state.core.audit.clone(), protected(state));
    let event = event(caller, &cap, "role.revoke", json!({ "role": role.as_str() }));
    state
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                let user = users::find(c, &id)?.ok_or(DbError::NotFound)?;
                let held = roles::roles_of(c, &id)?.contains(&role);
                if held && protected.contains(&role) && user.status == UserStatus::Active {
                    keep_a_holder(c, &role, &id)?;
                }
                let removed = roles::remove(c, &id, &role)?;
                if removed {
                    audit.append_with(c, vec![event])?;
                }
                Ok(removed)
            })
        })
        .await
        .map_err(db_error)
}

/// Clears the account's authenticator app and recovery codes; at its next sign-in it sets up a
/// new app. True when there was something to clear.
pub async fn reset_factors(
    state: &AppState,
    caller: &Caller,
    cap: Capability<ResetFactors>,
    reason: String,
) -> Result<bool, ApiError> {
    let id = target_of(&cap)?;
    let audit = state.core.audit.clone();
    let base = event(caller, &cap, "mfa.reset", json!({ "reason": reason }));
    state
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                users::find(c, &id)?.ok_or(DbError::NotFound)?;
                let cleared = factors::reset(c, &id)?;
                let mut event = base;
                if let Some(d) = event.details.as_object_mut() {
                    d.insert("cleared".into(), json!(cleared));
                }
                audit.append_with(c, vec![event])?;
                Ok(cleared)
            })
        })
        .await
        .map_err(db_error)
}

/// Ends every login of the account: its sessions, refresh tokens and access tokens die at once
/// (the account's cut-off moves to now, and each known login is ended). Returns how many
/// logins were open.
pub async fn revoke_sessions(
    state: &AppState,
    caller: &Caller,
    cap: Capability<RevokeSessions>,
) -> Result<usize, ApiError> {
    let id = target_of(&cap)?;
    let now = state.core.clock.now();
    let uid = id.clone();
    state
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                users::cut_off_tokens(c, &uid, now)?;
                meta::bump_revocation_epoch(c)
            })
        })
        .await
        .map_err(db_error)?;
    let logins = crate::login::session::logins_of(state, &id).await.map_err(|e| ApiError::unexpected(&e))?;
    for (sid, _) in &logins {
        crate::oidc::revocation::end_login(state, sid).await.map_err(|e| ApiError::unexpected(&e))?;
    }
    let event = event(caller, &cap, "session.revoke_all", json!({ "ended": logins.len() }));
    state.core.audit.append(event).await.map_err(|e| ApiError::unexpected(&e))?;
    Ok(logins.len())
}
