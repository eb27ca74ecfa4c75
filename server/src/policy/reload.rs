//! Loading a new policy set while servers run. A candidate is checked whole (it parses, every
//! policy validates against its schema in strict mode, and the schema still has every action
//! the server asks); a set that fails is refused with its errors and the running set stays.
//! A set that passes is stored in the database (`policy_sets`) with an audit event in one
//! transaction, and every instance sharing the database swaps to it within a second (each polls
//! for a newer set). `pramaan policy reload`, the admin API and SIGHUP all come here.

use std::time::Duration;

use serde_json::json;

use super::{Act, Origin, Policies, PolicyError, Sources, builtin_sources, from_sources_valid};
use crate::config::Settings;
use crate::domain::{AuditEvent, Outcome};
use crate::state::Core;
use crate::store::{DbError, policy_sets, write_transaction};

/// How often each instance looks for a newer stored set.
pub const POLL: Duration = Duration::from_secs(1);
/// At most this many files, and this many bytes in all, in a set.
pub const MAX_FILES: usize = 64;
pub const MAX_BYTES: usize = 1024 * 1024;

/// Brackets may nest at most this deep in a file: the parser recurses per level, and a set
/// arriving through the API must not be able to exhaust a worker's stack.
pub const MAX_NESTING: usize = 32;

/// How deep `(`, `[` and `{` nest in `text`, outside strings and `//` comments.
fn nesting(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(s) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for s in chars.by_ref() {
                    if s == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Checks a candidate set: the files, their policies against the schema, and that the schema
/// still declares every action the server asks (a set without one would deny it silently).
pub fn check_candidate(files: Sources) -> Result<Policies, Vec<PolicyError>> {
    if files.len() > MAX_FILES {
        return Err(vec![PolicyError::new("policies", 0, format!("at most {MAX_FILES} files"))]);
    }
    if files.iter().map(|(n, t)| n.len() + t.len()).sum::<usize>() > MAX_BYTES {
        return Err(vec![PolicyError::new("policies", 0, format!("at most {MAX_BYTES} bytes in all"))]);
    }
    let deep: Vec<PolicyError> = files
        .iter()
        .filter(|(_, text)| nesting(text) > MAX_NESTING)
        .map(|(name, _)| PolicyError::new(name, 0, format!("brackets nest deeper than {MAX_NESTING}")))
        .collect();
    if !deep.is_empty() {
        return Err(deep);
    }
    let p = from_sources_valid(files)?;
    // The server slices the set by action name; a policy on an action group would be left out
    // of every slice and never apply.
    let groups: Vec<PolicyError> = p
        .schema
        .action_groups()
        .map(|g| {
            PolicyError::new(
                super::SCHEMA_FILE,
                0,
                format!("action groups are not supported (\"{}\"): name each action", g.id().unescaped()),
            )
        })
        .collect();
    if !groups.is_empty() {
        return Err(groups);
    }
    let declared: Vec<String> = p.schema.actions().map(|a| a.id().unescaped().to_owned()).collect();
    let missing: Vec<PolicyError> = Act::ALL
        .iter()
        .filter(|a| !declared.iter().any(|d| d == a.name()))
        .map(|a| {
            PolicyError::new(
                super::SCHEMA_FILE,
                0,
                format!("the schema must declare the action \"{}\": the server asks it", a.name()),
            )
        })
        .collect();
    if missing.is_empty() { Ok(p) } else { Err(missing) }
}

/// The set a process starts with: the newest stored set, else the configured folder, else the
/// compiled-in set. `Err` lists why the chosen set does not validate.
pub fn startup_set(settings: &Settings, db: &crate::store::Database) -> Result<(Policies, Origin), String> {
    let stored = db.run_blocking(policy_sets::latest).map_err(|e| format!("policy_sets: {e}"))?;
    if let Some(s) = stored {
        let origin =
            Origin::Stored { seq: s.seq, loaded_by: s.loaded_by, reason: s.reason, loaded_at: s.loaded_at };
        return check_candidate(s.files)
            .map(|p| (p, origin))
            .map_err(|errors| describe(&format!("the stored policy set {}", s.seq), &errors));
    }
    configured_set(settings)
}

/// The configured folder, or the compiled-in set.
pub fn configured_set(settings: &Settings) -> Result<(Policies, Origin), String> {
    match &settings.policy.dir {
        Some(dir) => {
            let origin = Origin::Dir { path: dir.display().to_string() };
            super::read_dir(dir)
                .and_then(check_candidate)
                .map(|mut p| {
                    p.dir = dir.clone();
                    (p, origin)
                })
                .map_err(|errors| describe(&dir.display().to_string(), &errors))
        }
        None => check_candidate(builtin_sources())
            .map(|p| (p, Origin::BuiltIn))
            .map_err(|errors| describe("the built-in set", &errors)),
    }
}

fn describe(what: &str, errors: &[PolicyError]) -> String {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("{what}: {}", list.join("; "))
}

/// Stores a checked set as the newest, audited as `policy.reload` by `actor` with `reason` in
/// the same transaction, and runs it here at once. Returns its number.
pub async fn store(core: &Core, policies: Policies, actor: &str, reason: &str) -> Result<i64, DbError> {
    let version = policies.version();
    let files = policies.sources().clone();
    let now = core.clock.now();
    let (audit, actor_s, reason_s, v) =
        (core.audit.clone(), actor.to_owned(), reason.to_owned(), version.clone());
    let previous = core.policy.version();
    let seq = core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                let seq = policy_sets::insert(c, &v, &files, &actor_s, &reason_s, now)?;
                let event = AuditEvent::new(actor_s.clone(), "policy.reload", Outcome::Success)
                    .target(format!("policy_set:{seq}"))
                    .details(json!({
                        "version": v,
                        "previous_version": previous,
                        "files": files.len(),
                        "reason": reason_s,
                    }));
                audit.append_with(c, vec![event])?;
                Ok(seq)
            })
        })
        .await?;
    let origin =
        Origin::Stored { seq, loaded_by: actor.to_owned(), reason: reason.to_owned(), loaded_at: now };
    core.policy.replace(policies, origin);
    tracing::info!(seq, version = %version, "policy set reloaded");
    Ok(seq)
}

/// Runs the newest stored set if it is newer than the running one. A stored set that does not
/// check (written by a newer server whose schema this one does not know) is logged and skipped;
/// the running set stays. Returns whether the set changed.
pub async fn poll(core: &Core) -> Result<bool, DbError> {
    let running = core.policy.current().origin.seq();
    let newest = core.db.run(policy_sets::latest_seq).await?;
    if newest.is_none() || newest <= running {
        return Ok(false);
    }
    let Some(s) = core.db.run(policy_sets::latest).await? else { return Ok(false) };
    match check_candidate(s.files) {
        Ok(p) => {
            let version = p.version();
            let origin = Origin::Stored {
                seq: s.seq,
                loaded_by: s.loaded_by,
                reason: s.reason,
                loaded_at: s.loaded_at,
            };
            core.policy.replace(p, origin);
            tracing::info!(seq = s.seq, version = %version, "picked up a reloaded policy set");
            Ok(true)
        }
        Err(errors) => {
            tracing::error!(seq = s.seq, errors = %describe("stored set", &errors), "a stored policy set does not check here; keeping the running set");
            Ok(false)
        }
    }
}

/// Polls every [`POLL`] until aborted.
pub fn spawn_poller(core: Core) -> Option<tokio::task::JoinHandle<()>> {
    tokio::runtime::Handle::try_current().ok()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = poll(&core).await {
                tracing::warn!(error = ?e, "policy set poll failed; the running set stays");
            }
        }
    }))
}

/// SIGHUP: loads the configured folder (or the compiled-in set when none is configured) as the
/// newest set, for every instance, unless it is what runs already. A set that does not check is
/// logged with its errors and the running set stays.
pub async fn on_hangup(core: &Core) {
    let (policies, origin) = match configured_set(&core.settings) {
        Ok(set) => set,
        Err(e) => {
            tracing::error!(errors = %e, "SIGHUP: the policy set does not check; keeping the running set");
            return;
        }
    };
    if policies.version() == core.policy.version() {
        tracing::info!(version = %policies.version(), "SIGHUP: the policy set is unchanged");
        return;
    }
    let reason = match &origin {
        Origin::Dir { path } => format!("SIGHUP: reloaded {path}"),
        _ => "SIGHUP: reloaded the built-in set".to_owned(),
    };
    if let Err(e) = store(core, policies, "signal:SIGHUP", &reason).await {
        tracing::error!(error = ?e, "SIGHUP: could not store the policy set; keeping the running set");
    }
}

/// Reloads on every SIGHUP until aborted (Unix only).
pub fn spawn_on_hangup(core: Core) -> Option<tokio::task::JoinHandle<()>> {
    tokio::runtime::Handle::try_current().ok()?;
    #[cfg(unix)]
    {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()?;
        Some(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                on_hangup(&core).await;
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = core;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_with_action_groups_is_refused() {
        let mut files = builtin_sources();
        let schema = files["schema.cedarschema"].replace(
            "  action \"scope.client\" appliesTo {",
            "  action \"everything\";\n  action \"scope.client\" in [\"everything\"] appliesTo {",
        );
        assert_ne!(schema, files["schema.cedarschema"], "the schema text changed");
        files.insert("schema.cedarschema".into(), schema);
        let errors = check_candidate(files).unwrap_err();
        assert!(
            errors.iter().any(|e| e.reason.contains("action groups") && e.reason.contains("everything")),
            "{errors:?}"
        );
        assert!(check_candidate(builtin_sources()).is_ok());
    }

    #[test]
    fn nesting_counts_brackets_outside_strings_and_comments() {
        assert_eq!(nesting("permit (principal, action, resource) when { [1, (2)] };"), 3);
        assert_eq!(nesting("// (((((\n\"(((\\\"(((\" ()"), 1);
        let deep = format!(
            "@id(\"x\") permit (principal, action, resource) when {{ {}true{} }};",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        let mut files = builtin_sources();
        files.insert("deep.cedar".into(), deep);
        let errors = check_candidate(files).unwrap_err();
        assert_eq!(errors[0].file, "deep.cedar");
        assert!(errors[0].reason.contains("nest deeper"), "{errors:?}");
    }
}
