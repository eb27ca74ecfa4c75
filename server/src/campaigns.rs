//! Password-reset campaigns: "everyone in this state sets a new password, now", as one action
//! from the admin API or the CLI, with its progress.
//!
//! A launch records the campaign, then takes the audience in batches of [`BATCH`] accounts,
//! each batch one write transaction of a few set-based statements: the accounts become
//! members, are flagged `must_change_password`, have every session, refresh token and access
//! token cut off (`tokens_valid_after = now`), and get a mail in the outbox. The worker makes
//! each mail's reset link when it sends it. Each account that sets a new password (through its
//! link or when it next signs in) counts as completed, in the transaction that stores it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::audit::AuditLog;
use crate::domain::{AuditEvent, Outcome, User};
use crate::state::Core;
use crate::store::campaigns::{self, AudienceFilter, Campaign, CampaignKind, NewCampaign};
use crate::store::{AnyConnection, DbError, outbox, password_resets, users, write_transaction};

/// Accounts flagged per transaction.
pub const BATCH: i64 = 10_000;
/// Usernames a dry run shows.
pub const SAMPLE: i64 = 20;

/// Usernames one campaign may list.
pub const MAX_USERNAMES: usize = 100_000;

/// An audience as asked for (API body, CLI flags), before it is checked.
#[derive(Debug, Clone, Default)]
pub struct AudienceSpec {
    pub all: bool,
    pub org: Option<String>,
    pub roles: Vec<String>,
    pub older_than_days: Option<u32>,
    pub usernames: Vec<String>,
}

/// Why an audience cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Checks an audience: exactly `all`, or some filter; a unit that exists; roles that exist;
/// usernames that parse. Returns the filter to store and the chain (unit to root) of its
/// subtree, if it names one.
pub async fn audience(
    core: &Core,
    spec: AudienceSpec,
) -> Result<(AudienceFilter, Option<Vec<crate::domain::OrgUnit>>), AudienceError> {
    use crate::domain::{OrgPath, RoleName, Username};
    use AudienceError::Invalid;
    let given = spec.org.is_some()
        || !spec.roles.is_empty()
        || spec.older_than_days.is_some()
        || !spec.usernames.is_empty();
    if spec.all == given {
        return Err(Invalid(
            "audience: give all, or any of org, roles, older_than_days, usernames (not both).".into(),
        ));
    }
    let mut filter = AudienceFilter { all: spec.all, ..AudienceFilter::default() };
    let mut chain = None;
    if let Some(p) = spec.org {
        let path = OrgPath::parse(&p).map_err(|e| Invalid(format!("audience.org: {e}.")))?;
        let p2 = path.clone();
        let units = core
            .db
            .run(move |c| match crate::store::org_units::find_by_path(c, &p2)? {
                Some(u) => crate::store::org_units::chain(c, &u.id),
                None => Ok(Vec::new()),
            })
            .await?;
        if units.is_empty() {
            return Err(AudienceError::NotFound(format!("No organisation unit '{path}'.")));
        }
        filter.org = Some(path.to_string());
        chain = Some(units);
    }
    if !spec.roles.is_empty() {
        let known = core.db.run(crate::store::roles::list).await?;
        for r in &spec.roles {
            let name = RoleName::parse(r).map_err(|e| Invalid(format!("audience.roles: {e}.")))?;
            if !known.iter().any(|(k, _)| *k == name) {
                return Err(Invalid(format!("audience.roles: there is no role '{name}'.")));
            }
            filter.roles.push(name.as_str().to_owned());
        }
    }
    if let Some(days) = spec.older_than_days {
        if !(1..=36_500).contains(&days) {
            return Err(Invalid("audience.older_than_days: 1 to 36500.".into()));
        }
        filter.password_set_before = Some(core.clock.now() - chrono::TimeDelta::days(i64::from(days)));
    }
    if spec.usernames.len() > MAX_USERNAMES {
        return Err(Invalid(format!("audience.usernames: at most {MAX_USERNAMES}.")));
    }
    for u in spec.usernames {
        let name = Username::parse(&u).map_err(|e| Invalid(format!("audience.usernames: {e}.")))?;
        filter.usernames.push(name.as_str().to_owned());
    }
    Ok((filter, chain))
}

/// A campaign to launch (or to try, with `dry_run`).
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub kind: CampaignKind,
    pub audience: AudienceFilter,
    pub reason: String,
    pub dry_run: bool,
    /// `user:<name>` or `cli:<name>`.
    pub launched_by: String,
    /// The subtree's unit, when the audience names one.
    pub org_unit_id: Option<String>,
    /// What the decision that allowed it said, for the audit trail.
    pub decision: serde_json::Value,
}

/// What a launch did.
#[derive(Debug, Clone)]
pub enum Launched {
    /// Nothing changed: how many it would target, and some of them.
    DryRun {
        targeted: i64,
        sample: Vec<String>,
    },
    Launched(Box<Campaign>),
}

/// A dry run rolls its transaction back with its answer.
enum DryRun {
    Done(i64, Vec<String>),
    Db(DbError),
}

impl From<diesel::result::Error> for DryRun {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

impl From<DbError> for DryRun {
    fn from(e: DbError) -> Self {
        Self::Db(e)
    }
}

/// Launches a campaign (or tries it). Runs to the end of the launch: when it returns, every
/// targeted account is flagged and cut off.
pub async fn launch(core: &Core, req: LaunchRequest) -> Result<Launched, DbError> {
    let id = crate::crypto::random_token(12);
    let now = core.clock.now();
    if req.dry_run {
        let r = req.clone();
        return core
            .db
            .run(move |c| {
                use diesel::Connection;
                let new = new_campaign(&id, &r);
                match c.transaction::<(), DryRun, _>(|c| {
                    campaigns::create(c, &new, now)?;
                    let (n, sample) = campaigns::preview(c, &id, r.kind, &r.audience, SAMPLE)?;
                    Err(DryRun::Done(n, sample))
                }) {
                    Err(DryRun::Done(targeted, sample)) => Ok(Launched::DryRun { targeted, sample }),
                    Err(DryRun::Db(e)) => Err(e),
                    Ok(()) => Err(DbError::Corrupt("a dry run committed".into())),
                }
            })
            .await;
    }
    let audit = core.audit.clone();
    let r = req.clone();
    let cid = id.clone();
    core.db
        .run(move |c| {
            write_transaction(c, |c| {
                campaigns::create(c, &new_campaign(&cid, &r), now)?;
                let event = AuditEvent::new(&r.launched_by, "campaign.launch", Outcome::Success)
                    .target(format!("campaign:{cid}"))
                    .details(json!({
                        "kind": r.kind.as_str(),
                        "reason": r.reason,
                        "audience": r.audience,
                        "decision": r.decision,
                    }));
                audit.append_with(c, vec![event])?;
                Ok(())
            })
        })
        .await?;
    // The flagging runs on its own task: a client that hangs up, or a proxy that times out,
    // does not stop it half way.
    let (core2, by) = (core.clone(), req.launched_by.clone());
    let campaign = tokio::spawn(async move { flag_all(&core2, &id, &by).await })
        .await
        .map_err(|e| DbError::Join(e.to_string()))??;
    Ok(Launched::Launched(Box::new(campaign)))
}

/// Goes on with a campaign whose launch stopped half way (the process ended while it was
/// `launching`): takes the rest of its audience, from the account after the last one taken.
pub async fn resume(core: &Core, id: &str, by: &str) -> Result<Campaign, DbError> {
    let cid = id.to_owned();
    let c = core.db.run(move |c| campaigns::find(c, &cid)).await?.ok_or(DbError::NotFound)?;
    if c.state != "launching" {
        return Err(DbError::Conflict(format!("the campaign is {}, not launching", c.state)));
    }
    flag_all(core, id, by).await
}

/// Takes the audience of campaign `id` batch by batch until none is left, then moves it on
/// from `launching` (audited).
async fn flag_all(core: &Core, id: &str, by: &str) -> Result<Campaign, DbError> {
    let started = std::time::Instant::now();
    loop {
        let cid = id.to_owned();
        // Each batch cuts off at its own instant: a login made while earlier batches were
        // flagged is older than this batch's cut-off.
        let now = core.clock.now();
        let taken = core
            .db
            .run(move |c| {
                write_transaction(c, |c| {
                    let campaign = campaigns::find(c, &cid)?.ok_or(DbError::NotFound)?;
                    if campaign.state != "launching" {
                        return Ok(0);
                    }
                    campaigns::launch_batch(c, &campaign, now, BATCH)
                })
            })
            .await?;
        if taken == 0 {
            break;
        }
    }
    let audit = core.audit.clone();
    let (cid, by) = (id.to_owned(), by.to_owned());
    let finished = core.clock.now();
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let campaign = core
        .db
        .run(move |c| {
            write_transaction(c, |c| {
                let campaign = campaigns::finish_launch(c, &cid, finished)?;
                let mailed = campaigns::mailed(c, &cid)?;
                let event = AuditEvent::new(by, "campaign.launched", Outcome::Success)
                    .target(format!("campaign:{cid}"))
                    .details(json!({
                        "targeted": campaign.targeted,
                        "mail_queued": mailed,
                        "state": campaign.state,
                        "flagging_ms": elapsed_ms,
                    }));
                audit.append_with(c, vec![event])?;
                Ok(campaign)
            })
        })
        .await?;
    tracing::info!(campaign = %campaign.id, targeted = campaign.targeted, elapsed_ms, "campaign launched");
    Ok(campaign)
}

fn new_campaign<'a>(id: &'a str, r: &'a LaunchRequest) -> NewCampaign<'a> {
    NewCampaign {
        id,
        kind: r.kind,
        reason: &r.reason,
        audience: &r.audience,
        org_unit_id: r.org_unit_id.as_deref(),
        launched_by: &r.launched_by,
    }
}

/// A campaign and how far it got.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub id: String,
    pub kind: CampaignKind,
    /// `launching`, `running`, `completed` or `cancelled`.
    pub state: String,
    pub reason: String,
    #[schema(value_type = Object)]
    pub audience: AudienceFilter,
    pub launched_by: String,
    pub launched_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub cancelled_by: Option<String>,
    /// Accounts flagged and cut off.
    pub targeted: i64,
    /// Mail handed to the mail server.
    pub notified: i64,
    /// Mail given up (refused, or out of attempts).
    pub mail_failed: i64,
    /// Accounts without an email address: no mail; they can reset by text message.
    pub without_email: i64,
    /// Mail whose worker stopped mid-send: perhaps delivered, never sent again.
    pub unconfirmed: i64,
    /// Mail waiting to go out.
    pub queued: i64,
    /// Mail not sent because the account had already set a new password, or the campaign was
    /// cancelled.
    pub not_sent: i64,
    /// Accounts that set a new password.
    pub completed: i64,
    /// Accounts that have not yet.
    pub pending: i64,
}

/// The campaign `id` and its progress; `None` when there is no such campaign.
pub fn progress(conn: &mut AnyConnection, id: &str) -> Result<Option<Progress>, DbError> {
    let Some(c) = campaigns::find(conn, id)? else { return Ok(None) };
    let counts = outbox::campaign_counts(conn, id)?;
    let n = |s: &str| counts.get(s).copied().unwrap_or(0);
    let queued_mail: i64 = counts.values().sum();
    Ok(Some(Progress {
        notified: n("sent"),
        mail_failed: n("failed"),
        unconfirmed: n("unconfirmed"),
        queued: n("pending") + n("sending"),
        not_sent: n("skipped") + n("cancelled"),
        without_email: (c.targeted - queued_mail).max(0),
        pending: (c.targeted - c.completed).max(0),
        completed: c.completed,
        targeted: c.targeted,
        id: c.id,
        kind: c.kind,
        state: c.state,
        reason: c.reason,
        audience: c.audience,
        launched_by: c.launched_by,
        launched_at: c.launched_at,
        finished_at: c.finished_at,
        cancelled_by: c.cancelled_by,
    }))
}

/// Why a campaign could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such campaign")]
    NotFound,
    #[error("the campaign has already ended ({0})")]
    Ended(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Cancels campaign `id`: no further mail goes out; what it revoked stays revoked. Audited.
pub async fn cancel(core: &Core, id: &str, by: &str, reason: &str) -> Result<Progress, CancelError> {
    let (id, by, reason) = (id.to_owned(), by.to_owned(), reason.to_owned());
    let now = core.clock.now();
    let audit = core.audit.clone();
    core.db
        .run(move |c| {
            write_transaction(c, |c| {
                let Some(before) = campaigns::find(c, &id)? else { return Ok(Err(CancelError::NotFound)) };
                if !campaigns::cancel(c, &id, &by, now)? {
                    return Ok(Err(CancelError::Ended(before.state)));
                }
                let p = progress(c, &id)?.ok_or(DbError::NotFound)?;
                let event = AuditEvent::new(&by, "campaign.cancel", Outcome::Success)
                    .target(format!("campaign:{id}"))
                    .details(json!({
                        "reason": reason, "targeted": p.targeted, "completed": p.completed,
                        "notified": p.notified, "mail_stopped": p.not_sent,
                    }));
                audit.append_with(c, vec![event])?;
                Ok(Ok(p))
            })
        })
        .await
        .map_err(CancelError::Db)?
}

/// Stores `user`'s new password (hash) in the caller's write transaction, with what follows
/// from it: every reset link still out is used up, and every campaign waiting for the
/// account counts it as completed (audited, with the milestones it crosses).
pub fn store_new_password(
    conn: &mut AnyConnection,
    audit: &AuditLog,
    user: &User,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    users::set_password_hash(conn, &user.id, hash, true, now)?;
    password_resets::end_all_of(conn, user.id.as_str(), now)?;
    let events = campaigns::record_completion(conn, user.id.as_str(), user.username.as_str(), now)?;
    if !events.is_empty() {
        audit.append_with(conn, events)?;
    }
    Ok(())
}
