//! Changes to a registered client that the CLI and the admin API both make: suspend or resume
//! it, and rotate its secret. Each is one transaction with its audit event and an epoch bump,
//! so every instance drops the client's cached state within a second.

use serde_json::json;

use super::client_auth::CLIENT_SECRET_PURPOSE;
use crate::domain::{AuditEvent, Client, ClientId, ClientStatus, Outcome};
use crate::state::Core;
use crate::store::{DbError, clients, meta, write_transaction};

/// A new client secret and the keyed digest that is all the database keeps of it. 256 bits
/// from the CSPRNG: a secret this strong needs a keyed digest, not a slow hash.
pub fn new_secret(core: &Core) -> (String, String) {
    let secret = crate::crypto::random_token(32);
    let digest = core.keys.digester.digest(CLIENT_SECRET_PURPOSE, secret.as_bytes());
    (secret, digest)
}

fn merged(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// Issues a new secret for a secret-based client and returns it (to be shown once). `extra`
/// goes into the audit event's details (the admin API's decision). `NotFound` for an unknown
/// client; `Conflict` for one that does not use a secret.
pub async fn rotate_secret(
    core: &Core,
    actor: &str,
    id: &ClientId,
    extra: serde_json::Value,
) -> Result<(Client, String), DbError> {
    let (secret, digest) = new_secret(core);
    let now = core.clock.now();
    let audit = core.audit.clone();
    let actor = actor.to_owned();
    let target = id.clone();
    let client = core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                let existing = clients::find(c, &target)?.ok_or(DbError::NotFound)?;
                if !existing.registration.uses_secret() {
                    return Err(DbError::Conflict(format!(
                        "client '{target}' authenticates with {}, not a secret",
                        existing.registration.token_endpoint_auth_method
                    )));
                }
                let client = clients::set_secret_digest(c, &target, &digest, now)?;
                meta::bump_revocation_epoch(c)?;
                let event = AuditEvent::new(actor, "client.rotate_secret", Outcome::Success)
                    .target(format!("client:{target}"))
                    .details(merged(json!({}), extra));
                audit.append_with(c, vec![event])?;
                Ok(client)
            })
        })
        .await?;
    Ok((client, secret))
}

/// Suspends or resumes a client (`reason` is audited with `extra`). Both cut its tokens off at
/// now: resuming revives nothing issued before. `NotFound` for an unknown client.
pub async fn set_status(
    core: &Core,
    actor: &str,
    id: &ClientId,
    status: ClientStatus,
    reason: &str,
    extra: serde_json::Value,
) -> Result<Client, DbError> {
    let now = core.clock.now();
    let audit = core.audit.clone();
    let actor = actor.to_owned();
    let target = id.clone();
    let details = merged(json!({ "reason": reason }), extra);
    core.db
        .run(move |c| {
            write_transaction(c, |c| {
                let client = clients::set_status(c, &target, status, now)?;
                meta::bump_revocation_epoch(c)?;
                let action = match status {
                    ClientStatus::Suspended => "client.suspend",
                    ClientStatus::Active => "client.resume",
                };
                let event = AuditEvent::new(actor, action, Outcome::Success)
                    .target(format!("client:{target}"))
                    .details(details);
                audit.append_with(c, vec![event])?;
                Ok(client)
            })
        })
        .await
}
