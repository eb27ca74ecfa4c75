//! The changes the admin API makes to accounts. Each takes the [`Capability`] a permitting
//! decision produced and acts on the account the decision was about, in one transaction with
//! its audit event (which records the decision's reason and the policy version). Inside that
//! transaction the caller and the account are read again (their rows locked on PostgreSQL) and
//! the policies asked again, so a role taken away or an account moved meanwhile stops the
//! change.

use std::sync::Arc;

use serde_json::json;

use super::caller::Caller;
use super::error::ApiError;
use crate::domain::{AuditEvent, Outcome, RoleName, User, UserId, UserStatus};
use crate::policy::actions::{
    AssignRole, CreateUser, DisableUser, EnableUser, ResetFactors, RevokeSessions, UpdateUser,
};
use crate::policy::{AdminAction, Capability, Denied, PolicyEngine, Subject, Target, load_person};
use crate::state::AppState;
use crate::store::{AnyConnection, DbError, factors, meta, roles, users, write_transaction};

fn target_of<A: AdminAction>(cap: &Capability<A>) -> Result<UserId, ApiError> {
    cap.user().cloned().ok_or_else(|| ApiError::unexpected(&"a capability without an account"))
}

fn event<A: AdminAction>(
    caller: &Caller,
    cap: &Capability<A>,
    action: &str,
    details: serde_json::Value,
) -> AuditEvent {
    let mut details = details;
    if let Some(d) = details.as_object_mut() {
        d.insert("decision".into(), json!(cap.verdict().reason()));
        d.insert("policy_version".into(), json!(cap.verdict().version));
    }
    let target = cap.user().map(|u| format!("user:{u}")).unwrap_or_default();
    AuditEvent::new(caller.actor(), action, Outcome::Success).target(target).details(details)
}

/// Asks the policies again inside the write transaction, on the caller and the account as they
/// are now.
fn decide_again<A: AdminAction>(
    c: &mut AnyConnection,
    engine: &PolicyEngine,
    caller: &Caller,
    subject: &Subject,
) -> Result<Result<(), Denied>, DbError> {
    let target_id = match subject {
        Subject::User(u) | Subject::Role { user: u, .. } => u,
        _ => return Err(DbError::Conflict("not an account decision".into())),
    };
    users::lock(c, &[&caller.user.id, target_id])?;
    let admin = users::find(c, &caller.user.id)?.ok_or(DbError::NotFound)?;
    let admin = load_person(c, &admin)?;
    let target = users::find(c, target_id)?.ok_or(DbError::NotFound)?;
    let target = load_person(c, &target)?;
    let t = match subject {
        Subject::Role { role, .. } => Target::Grant { role, to: &target },
        _ => Target::Person(&target),
    };
    Ok(engine.authorize::<A>(&admin, &caller.login, t).map(|_| ()))
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

/// Runs `change` in a write transaction after deciding again; a refusal then is audited and
/// answered like the first.
async fn change<A, T, F>(
    state: &AppState,
    caller: &Caller,
    cap: &Capability<A>,
    change: F,
) -> Result<T, ApiError>
where
    A: AdminAction,
    T: Send + 'static,
    F: FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
{
    let (engine, who, subject) = (Arc::clone(&state.core.policy), caller.clone(), cap.subject().clone());
    let outcome = state
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| match decide_again::<A>(c, &engine, &who, &subject)? {
                Err(denied) => Ok(Err(denied)),
                Ok(()) => change(c).map(Ok),
            })
        })
        .await
        .map_err(db_error)?;
    match outcome {
        Ok(t) => Ok(t),
        Err(denied) => {
            super::audit_denial(state, caller, &denied).await;
            Err(denied.into())
        }
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
    change(state, caller, &cap, move |c| {
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
    .await
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
    change(state, caller, &cap, move |c| {
        let updated = users::set_status(c, &id, UserStatus::Active, now)?;
        meta::bump_revocation_epoch(c)?;
        audit.append_with(c, vec![event])?;
        Ok(updated)
    })
    .await
}

/// Creates the account the decision was about, with its roles (each granted by its own
/// decision before this), in one transaction with its audit event. A taken username is 409.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    cap: Capability<CreateUser>,
    new: crate::domain::NewUser,
    roles_wanted: Vec<RoleName>,
    person: crate::policy::Person,
) -> Result<User, ApiError> {
    let (engine, who) = (Arc::clone(&state.core.policy), caller.clone());
    let now = state.core.clock.now();
    let audit = state.core.audit.clone();
    let names: Vec<&str> = roles_wanted.iter().map(RoleName::as_str).collect();
    let base = event(caller, &cap, "user.create", json!({ "roles": names, "password_set": false }));
    let id = target_of(&cap)?;
    state
        .core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                // Decided again with the caller as they are now (their row locked on PostgreSQL).
                users::lock(c, &[&who.user.id])?;
                let admin = users::find(c, &who.user.id)?.ok_or(DbError::NotFound)?;
                let admin = load_person(c, &admin)?;
                let allowed = engine
                    .authorize::<CreateUser>(&admin, &who.login, Target::Person(&person))
                    .is_ok()
                    && roles_wanted.iter().all(|role| {
                        engine
                            .authorize::<AssignRole>(&admin, &who.login, Target::Grant { role, to: &person })
                            .is_ok()
                    });
                if !allowed {
                    return Err(DbError::Conflict("the decision no longer holds; try again".into()));
                }
                for r in &roles_wanted {
                    if !roles::exists(c, r)? {
                        return Err(DbError::Conflict(format!("there is no role '{r}'")));
                    }
                }
                if users::find_by_username(c, &new.username)?.is_some() {
                    return Err(DbError::Conflict(format!("username '{}' is taken", new.username)));
                }
                let user = users::insert_with_id(c, &id, &new, now).map_err(|e| match e {
                    DbError::Conflict(_) => DbError::Conflict(
                        "another change took this username or id meanwhile; try again".into(),
                    ),
                    other => other,
                })?;
                for r in &roles_wanted {
                    roles::grant(c, &user.id, r, now)?;
                }
                let mut event = base;
                event.target = Some(format!("user:{}", user.id));
                audit.append_with(c, vec![event])?;
                Ok(user)
            })
        })
        .await
        .map_err(db_error)
}

/// Changes the account's profile (name, email, phone, unit), deciding again inside the
/// transaction.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    cap: Capability<UpdateUser>,
    profile: users::ProfileChange,
    moved_to: Option<Vec<crate::domain::OrgUnit>>,
) -> Result<User, ApiError> {
    let id = target_of(&cap)?;
    let now = state.core.clock.now();
    let audit = state.core.audit.clone();
    let (engine, who) = (Arc::clone(&state.core.policy), caller.clone());
    let fields: Vec<&str> = [
        profile.display_name.is_some().then_some("display_name"),
        profile.email.is_some().then_some("email"),
        profile.phone.is_some().then_some("phone"),
        profile.org_unit_id.is_some().then_some("org_unit"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let channels: Vec<&str> =
        [profile.phone.is_some().then_some("phone"), profile.email.is_some().then_some("email")]
            .into_iter()
            .flatten()
            .collect();
    let to = moved_to.as_ref().and_then(|c| c.first()).map(|u| u.path.to_string());
    let event = event(
        caller,
        &cap,
        "user.update",
        json!({ "fields": fields, "factor_channels": channels, "moved_to": to }),
    );
    change(state, caller, &cap, move |c| {
        // A move is decided again where the account would be, with the caller as they are now.
        if let Some(chain) = &moved_to {
            let current = users::find(c, &id)?.ok_or(DbError::NotFound)?;
            let moved = crate::policy::Person { org: chain.clone(), ..load_person(c, &current)? };
            let admin = users::find(c, &who.user.id)?.ok_or(DbError::NotFound)?;
            let admin = load_person(c, &admin)?;
            if engine.authorize::<UpdateUser>(&admin, &who.login, Target::Person(&moved)).is_err() {
                return Err(DbError::Conflict("the decision no longer holds; try again".into()));
            }
        }
        let user = users::update_profile(c, &id, &profile, now)?;
        audit.append_with(c, vec![event])?;
        Ok(user)
    })
    .await
}

fn role_of(cap: &Capability<AssignRole>) -> Result<(RoleName, UserId), ApiError> {
    match cap.subject() {
        Subject::Role { role, user } => Ok((role.clone(), user.clone())),
        _ => Err(ApiError::unexpected(&"a role capability without a role")),
    }
}

/// Grants the role the decision was about; true when the account did not hold it (only then
/// is it audited).
pub async fn grant(state: &AppState, caller: &Caller, cap: Capability<AssignRole>) -> Result<bool, ApiError> {
    let (role, id) = role_of(&cap)?;
    let now = state.core.clock.now();
    let audit = state.core.audit.clone();
    let event = event(caller, &cap, "role.grant", json!({ "role": role.as_str() }));
    change(state, caller, &cap, move |c| {
        if !roles::exists(c, &role)? {
            return Err(DbError::Conflict(format!("there is no role '{role}'")));
        }
        let granted = roles::grant(c, &id, &role, now)?;
        if granted {
            audit.append_with(c, vec![event])?;
        }
        Ok(granted)
    })
    .await
}

/// Takes the role the decision was about away; true when the account held it. The last active
/// holder of a protected role keeps it. Logins and tokens from before lose what the role gave
/// at their next use (every decision reads the roles afresh).
pub async fn revoke_role(
    state: &AppState,
    caller: &Caller,
    cap: Capability<AssignRole>,
) -> Result<bool, ApiError> {
    let (role, id) = role_of(&cap)?;
    let (audit, protected) = (state.core.audit.clone(), protected(state));
    let event = event(caller, &cap, "role.revoke", json!({ "role": role.as_str() }));
    change(state, caller, &cap, move |c| {
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
    .await
}

/// Clears the account's authenticator app and recovery codes and ends its logins and tokens
/// (a reset usually means a lost or stolen phone); at its next sign-in it sets up a new app.
/// True when there was something to clear.
pub async fn reset_factors(
    state: &AppState,
    caller: &Caller,
    cap: Capability<ResetFactors>,
    reason: String,
) -> Result<bool, ApiError> {
    let id = target_of(&cap)?;
    let now = state.core.clock.now();
    let audit = state.core.audit.clone();
    let base = event(caller, &cap, "mfa.reset", json!({ "reason": reason }));
    let uid = id.clone();
    let cleared = change(state, caller, &cap, move |c| {
        let cleared = factors::reset(c, &uid)?;
        users::cut_off_tokens(c, &uid, now)?;
        meta::bump_revocation_epoch(c)?;
        let mut event = base;
        if let Some(d) = event.details.as_object_mut() {
            d.insert("cleared".into(), json!(cleared));
        }
        audit.append_with(c, vec![event])?;
        Ok(cleared)
    })
    .await?;
    end_logins(state, &id).await;
    Ok(cleared)
}

/// Ends every login of the account: its sessions, refresh tokens and access tokens die at once
/// (the account's cut-off moves to now, audited in the same transaction; then each known login
/// is ended too). Returns how many logins were open.
pub async fn revoke_sessions(
    state: &AppState,
    caller: &Caller,
    cap: Capability<RevokeSessions>,
) -> Result<usize, ApiError> {
    let id = target_of(&cap)?;
    let now = state.core.clock.now();
    let open =
        crate::login::session::logins_of(state, &id).await.map_err(|e| ApiError::unexpected(&e))?.len();
    let audit = state.core.audit.clone();
    let event = event(caller, &cap, "session.revoke_all", json!({ "open_logins": open }));
    let uid = id.clone();
    change(state, caller, &cap, move |c| {
        users::cut_off_tokens(c, &uid, now)?;
        meta::bump_revocation_epoch(c)?;
        audit.append_with(c, vec![event])?;
        Ok(())
    })
    .await?;
    end_logins(state, &id).await;
    Ok(open)
}

/// Ends each known login of `id` (its session record and refresh tokens). The cut-off already
/// makes them worthless, so a failure here is logged, not answered.
async fn end_logins(state: &AppState, id: &UserId) {
    let logins = match crate::login::session::logins_of(state, id).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = ?e, "could not list the logins to end (the cut-off stands)");
            return;
        }
    };
    for (sid, _) in &logins {
        if let Err(e) = crate::oidc::revocation::end_login(state, sid).await {
            tracing::warn!(error = ?e, "could not end a login (the cut-off stands)");
        }
    }
}
