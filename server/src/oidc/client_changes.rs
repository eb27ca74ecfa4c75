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
/// now: resuming revives nothing issued before. A client already in that state is left as it
/// is (resuming an active client must not cut its live tokens off); the request is audited
/// with `"changed": false`. `NotFound` for an unknown client.
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
                let before = clients::find(c, &target)?.ok_or(DbError::NotFound)?;
                let changed = before.status != status;
                let client = if changed {
                    let client = clients::set_status(c, &target, status, now)?;
                    meta::bump_revocation_epoch(c)?;
                    client
                } else {
                    before
                };
                let action = match status {
                    ClientStatus::Suspended => "client.suspend",
                    ClientStatus::Active => "client.resume",
                };
                let event = AuditEvent::new(actor, action, Outcome::Success)
                    .target(format!("client:{target}"))
                    .details(merged(details, json!({ "changed": changed })));
                audit.append_with(c, vec![event])?;
                Ok(client)
            })
        })
        .await
}

/// Which clients a bulk suspension (the kill switch) or resumption takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSelector {
    /// Every client but the `internal` ones (Pramaan's console, the registry's introspection
    /// client), so the operators do not lock themselves out.
    All,
    /// Every client of one category (`internal` only when named so).
    Category(crate::domain::ClientCategory),
    /// These clients, whatever their category.
    Ids(Vec<ClientId>),
}

impl ClientSelector {
    pub fn matches(&self, c: &Client) -> bool {
        match self {
            Self::All => c.registration.category != crate::domain::ClientCategory::Internal,
            Self::Category(cat) => c.registration.category == *cat,
            Self::Ids(ids) => ids.contains(&c.id),
        }
    }

    /// For the audit trail and the answer.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Self::All => json!({ "all": true }),
            Self::Category(c) => json!({ "category": c.as_str() }),
            Self::Ids(ids) => json!({ "ids": ids.iter().map(ClientId::as_str).collect::<Vec<_>>() }),
        }
    }
}

/// The clients `selector` takes now that are not already in `status` (a client already
/// suspended is not suspended again; its cut-off stays where it was). Unknown ids are
/// `NotFound`.
pub async fn select(
    core: &Core,
    selector: &ClientSelector,
    status: ClientStatus,
) -> Result<Vec<Client>, DbError> {
    let all = core.db.run(|c| clients::list(c, None)).await?;
    if let ClientSelector::Ids(ids) = selector
        && let Some(missing) = ids.iter().find(|id| !all.iter().any(|c| &c.id == *id))
    {
        tracing::debug!(client = %missing, "a bulk change names an unknown client");
        return Err(DbError::NotFound);
    }
    Ok(all.into_iter().filter(|c| selector.matches(c) && c.status != status).collect())
}

/// Suspends or resumes every client of `chosen` (chosen by `selector`) in one transaction
/// with one audit event (reason, selector, count) and one epoch bump: every instance drops
/// them from its cache within a second; tokens issued before now are dead for good.
pub async fn set_status_many(
    core: &Core,
    actor: &str,
    selector: &ClientSelector,
    chosen: &[Client],
    status: ClientStatus,
    reason: &str,
    extra: serde_json::Value,
) -> Result<usize, DbError> {
    let now = core.clock.now();
    let audit = core.audit.clone();
    let ids: Vec<ClientId> = chosen.iter().map(|c| c.id.clone()).collect();
    let action = match status {
        ClientStatus::Suspended => "client.suspend_bulk",
        ClientStatus::Active => "client.resume_bulk",
    };
    let event = AuditEvent::new(actor, action, Outcome::Success).target("clients").details(merged(
        json!({
            "reason": reason,
            "selector": selector.describe(),
            "count": ids.len(),
            "clients": ids.iter().map(ClientId::as_str).collect::<Vec<_>>(),
        }),
        extra,
    ));
    core.db
        .run(move |c| {
            write_transaction(c, |c| {
                let n = clients::set_status_many(c, &ids, status, now)?;
                meta::bump_revocation_epoch(c)?;
                audit.append_with(c, vec![event])?;
                Ok(n)
            })
        })
        .await
}
