//! Repository for reset campaigns: `reset_campaigns`, `campaign_audience`, `campaign_members`,
//! and the campaign rows of `outbox`.
//!
//! A launch is set-based: each batch is one write transaction of four statements over up to
//! `batch` accounts (members, flags and cut-off, mail, count), never a statement per account.
//! The audience is one fixed query whatever its lists hold: roles and usernames are rows of
//! `campaign_audience`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::raw::{Bind, execute, load};
use super::schema::{campaign_members, reset_campaigns};
use super::{AnyConnection, DbError, from_db_time, to_db_time};
use crate::domain::AuditEvent;

/// What a campaign's mail says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignKind {
    /// After a breach: set a new password, the old one is no longer safe.
    Breach,
    /// Imported accounts without a password: choose your first one. Only accounts that have no
    /// password are targeted.
    Onboarding,
}

impl CampaignKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Breach => "breach",
            Self::Onboarding => "onboarding",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "breach" => Some(Self::Breach),
            "onboarding" => Some(Self::Onboarding),
            _ => None,
        }
    }
}

/// Who a campaign targets: active accounts matching every given part (all of them when
/// nothing is given and `all` is set).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AudienceFilter {
    pub all: bool,
    /// An org-unit subtree, by path.
    pub org: Option<String>,
    /// Holders of any of these roles (granted directly).
    pub roles: Vec<String>,
    /// Accounts whose password was last set before this instant (or never, since creation).
    pub password_set_before: Option<DateTime<Utc>>,
    /// These usernames.
    pub usernames: Vec<String>,
    /// Never this account (by id): the administrator who launches it keeps their session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<String>,
    /// How many usernames the audience lists (as stored: the list itself is only in
    /// `campaign_audience`, so reading a campaign never parses a hundred thousand names).
    #[serde(default)]
    pub usernames_listed: usize,
}

impl AudienceFilter {
    fn by_usernames(&self) -> bool {
        !self.usernames.is_empty() || self.usernames_listed > 0
    }
}

/// A new campaign, as recorded at launch.
#[derive(Debug, Clone)]
pub struct NewCampaign<'a> {
    pub id: &'a str,
    pub kind: CampaignKind,
    pub reason: &'a str,
    pub audience: &'a AudienceFilter,
    /// The subtree's unit, when the audience names one.
    pub org_unit_id: Option<&'a str>,
    pub launched_by: &'a str,
}

/// A campaign as stored, with its kept counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: String,
    pub kind: CampaignKind,
    /// `launching`, `running`, `completed`, `cancelled`.
    pub state: String,
    pub reason: String,
    pub audience: AudienceFilter,
    pub org_unit_id: Option<String>,
    pub launched_by: String,
    pub launched_at: DateTime<Utc>,
    pub targeted: i64,
    pub completed: i64,
    pub milestone: i32,
    pub finished_at: Option<DateTime<Utc>>,
    pub cancelled_by: Option<String>,
}

#[derive(Queryable)]
struct Row {
    id: String,
    kind: String,
    state: String,
    reason: String,
    audience: String,
    org_unit_id: Option<String>,
    launched_by: String,
    launched_at: chrono::NaiveDateTime,
    targeted: i64,
    completed: i64,
    milestone: i32,
    finished_at: Option<chrono::NaiveDateTime>,
    cancelled_by: Option<String>,
}

impl Row {
    fn into_campaign(self) -> Result<Campaign, DbError> {
        Ok(Campaign {
            kind: CampaignKind::parse(&self.kind)
                .ok_or_else(|| DbError::Corrupt(format!("campaign kind {:?}", self.kind)))?,
            audience: serde_json::from_str(&self.audience)
                .map_err(|e| DbError::Corrupt(format!("campaign audience: {e}")))?,
            id: self.id,
            state: self.state,
            reason: self.reason,
            org_unit_id: self.org_unit_id,
            launched_by: self.launched_by,
            launched_at: from_db_time(self.launched_at),
            targeted: self.targeted,
            completed: self.completed,
            milestone: self.milestone,
            finished_at: self.finished_at.map(from_db_time),
            cancelled_by: self.cancelled_by,
        })
    }
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    username: String,
}

fn load_counts(conn: &mut AnyConnection, sql: &str, binds: Vec<Bind>) -> Result<i64, DbError> {
    let rows: Vec<CountRow> = load(conn, sql, binds)?;
    Ok(rows.first().map_or(0, |r| r.n))
}

fn load_names(conn: &mut AnyConnection, sql: &str, binds: Vec<Bind>) -> Result<Vec<String>, DbError> {
    let rows: Vec<NameRow> = load(conn, sql, binds)?;
    Ok(rows.into_iter().map(|r| r.username).collect())
}

/// The audience's conditions on `users u` (after `WHERE`), and their values. The lists are
/// read from `campaign_audience` rows of `campaign_id`.
fn audience_sql(campaign_id: &str, kind: CampaignKind, a: &AudienceFilter) -> (String, Vec<Bind>) {
    let mut sql = String::from("u.status = 'active'");
    let mut binds = Vec::new();
    if let Some(path) = &a.org {
        let prefix = format!("{path}/");
        sql.push_str(
            " AND u.org_unit_id IN (SELECT o.id FROM org_units o WHERE o.path = ? OR substr(o.path, 1, ?) = ?)",
        );
        binds.push(Bind::Text(path.clone()));
        binds.push(Bind::Int(i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX)));
        binds.push(Bind::Text(prefix));
    }
    if !a.roles.is_empty() {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM user_roles r JOIN campaign_audience a ON a.value = r.role_name \
             WHERE r.user_id = u.id AND a.campaign_id = ? AND a.kind = 'role')",
        );
        binds.push(Bind::Text(campaign_id.to_owned()));
    }
    if a.by_usernames() {
        sql.push_str(
            " AND u.username IN (SELECT a.value FROM campaign_audience a WHERE a.campaign_id = ? AND a.kind = 'user')",
        );
        binds.push(Bind::Text(campaign_id.to_owned()));
    }
    if let Some(before) = a.password_set_before {
        sql.push_str(" AND COALESCE(u.password_changed_at, u.created_at) < ?");
        binds.push(Bind::Time(to_db_time(before)));
    }
    if kind == CampaignKind::Onboarding {
        sql.push_str(" AND u.password_hash IS NULL");
    }
    if let Some(id) = &a.except {
        sql.push_str(" AND u.id <> ?");
        binds.push(Bind::Text(id.clone()));
    }
    (sql, binds)
}

/// Records a campaign (state `launching`, nobody targeted yet) and its audience's lists.
pub fn create(conn: &mut AnyConnection, new: &NewCampaign<'_>, now: DateTime<Utc>) -> Result<(), DbError> {
    let mut stored = new.audience.clone();
    stored.usernames_listed = stored.usernames.len();
    stored.usernames = Vec::new();
    let audience =
        serde_json::to_string(&stored).map_err(|e| DbError::Corrupt(format!("campaign audience: {e}")))?;
    diesel::insert_into(reset_campaigns::table)
        .values((
            reset_campaigns::id.eq(new.id),
            reset_campaigns::kind.eq(new.kind.as_str()),
            reset_campaigns::state.eq("launching"),
            reset_campaigns::reason.eq(new.reason),
            reset_campaigns::audience.eq(audience),
            reset_campaigns::org_unit_id.eq(new.org_unit_id),
            reset_campaigns::launched_by.eq(new.launched_by),
            reset_campaigns::launched_at.eq(to_db_time(now)),
            reset_campaigns::targeted.eq(0i64),
            reset_campaigns::completed.eq(0i64),
            reset_campaigns::milestone.eq(0),
        ))
        .execute(conn)?;
    let mut rows: Vec<(String, &str, String)> = Vec::new();
    let mut roles = new.audience.roles.clone();
    roles.sort();
    roles.dedup();
    let mut users = new.audience.usernames.clone();
    users.sort();
    users.dedup();
    rows.extend(roles.into_iter().map(|r| (new.id.to_owned(), "role", r)));
    rows.extend(users.into_iter().map(|u| (new.id.to_owned(), "user", u)));
    // 3 values a row; SQLite takes at most 32766 in one statement.
    for chunk in rows.chunks(1000) {
        let mut sql = String::from("INSERT INTO campaign_audience (campaign_id, kind, value) VALUES ");
        let mut binds = Vec::with_capacity(chunk.len() * 3);
        for (i, (c, k, v)) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
            binds.extend([Bind::Text(c.clone()), Bind::Text((*k).to_owned()), Bind::Text(v.clone())]);
        }
        execute(conn, &sql, binds)?;
    }
    Ok(())
}

/// How many accounts the audience holds now, and up to `sample` of their usernames. Call in
/// a transaction that [`create`]d the campaign (a dry run rolls it back).
pub fn preview(
    conn: &mut AnyConnection,
    campaign_id: &str,
    kind: CampaignKind,
    audience: &AudienceFilter,
    sample: i64,
) -> Result<(i64, Vec<String>), DbError> {
    let (cond, binds) = audience_sql(campaign_id, kind, audience);
    let n = load_counts(conn, &format!("SELECT COUNT(*) AS n FROM users u WHERE {cond}"), binds)?;
    let (cond, mut binds) = audience_sql(campaign_id, kind, audience);
    binds.push(Bind::Big(sample));
    let names = load_names(
        conn,
        &format!("SELECT u.username FROM users u WHERE {cond} ORDER BY u.username LIMIT ?"),
        binds,
    )?;
    Ok((n, names))
}

/// One batch of a launch, in the caller's write transaction: the next (by id) up to `batch`
/// accounts of the audience become members; each is flagged `must_change_password` with its
/// tokens cut off at `now`; each with an email gets a campaign mail in the outbox. Returns how
/// many accounts it took (0: the launch is done). PostgreSQL does it in one statement
/// (data-modifying CTEs); SQLite in four, each over the whole batch.
pub fn launch_batch(
    conn: &mut AnyConnection,
    campaign: &Campaign,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<i64, DbError> {
    let id = campaign.id.as_str();
    let last: Option<String> = campaign_members::table
        .filter(campaign_members::campaign_id.eq(id))
        .select(diesel::dsl::max(campaign_members::user_id))
        .get_result::<Option<String>>(conn)?;
    let (cond, mut binds) = audience_sql(id, campaign.kind, &campaign.audience);
    let at = to_db_time(now);
    if let AnyConnection::Postgresql(_) = conn {
        // One statement: the batch is read once and every write works from it.
        binds.extend([
            Bind::Text(last.unwrap_or_default()),
            Bind::Big(batch),
            Bind::Text(id.to_owned()),
            Bind::Time(at),
            Bind::Time(at),
            Bind::Text(format!("{id}.")),
            Bind::Time(at),
            Bind::Time(at),
            Bind::Text(id.to_owned()),
        ]);
        let taken = load_counts(
            conn,
            &format!(
                "WITH picked AS ( \
                   SELECT u.id, u.email FROM users u WHERE {cond} AND u.id > ? ORDER BY u.id LIMIT ?), \
                 members AS ( \
                   INSERT INTO campaign_members (campaign_id, user_id) SELECT ?, p.id FROM picked p), \
                 flagged AS ( \
                   UPDATE users SET must_change_password = TRUE, tokens_valid_after = ?, updated_at = ? \
                   FROM picked p WHERE users.id = p.id), \
                 mailed AS ( \
                   INSERT INTO outbox (id, kind, recipient, subject, text_body, html_body, state, attempts, \
                                       next_attempt_at, created_at, campaign_id, user_id, priority) \
                   SELECT ? || p.id, 'campaign', p.email, '', '', '', 'pending', 0, ?, ?, ?, p.id, 1 \
                   FROM picked p WHERE p.email IS NOT NULL) \
                 SELECT COUNT(*) AS n FROM picked"
            ),
            binds,
        )?;
        if taken > 0 {
            diesel::update(reset_campaigns::table.find(id))
                .set(reset_campaigns::targeted.eq(reset_campaigns::targeted + taken))
                .execute(conn)?;
        }
        return Ok(taken);
    }
    let mut all = vec![Bind::Text(id.to_owned())];
    all.append(&mut binds);
    all.push(Bind::Text(last.clone().unwrap_or_default()));
    all.push(Bind::Big(batch));
    let taken = execute(
        conn,
        &format!(
            "INSERT INTO campaign_members (campaign_id, user_id, completed_at) \
             SELECT ?, u.id, NULL FROM users u WHERE {cond} AND u.id > ? ORDER BY u.id LIMIT ?"
        ),
        all,
    )?;
    if taken == 0 {
        return Ok(0);
    }
    let lo = last.unwrap_or_default();
    let hi: Option<String> = campaign_members::table
        .filter(campaign_members::campaign_id.eq(id))
        .select(diesel::dsl::max(campaign_members::user_id))
        .get_result::<Option<String>>(conn)?;
    let hi = hi.unwrap_or_default();
    execute(
        conn,
        "UPDATE users SET must_change_password = TRUE, tokens_valid_after = ?, updated_at = ? \
         WHERE id IN (SELECT m.user_id FROM campaign_members m \
                      WHERE m.campaign_id = ? AND m.user_id > ? AND m.user_id <= ?)",
        vec![
            Bind::Time(at),
            Bind::Time(at),
            Bind::Text(id.to_owned()),
            Bind::Text(lo.clone()),
            Bind::Text(hi.clone()),
        ],
    )?;
    execute(
        conn,
        "INSERT INTO outbox (id, kind, recipient, subject, text_body, html_body, state, attempts, \
                             next_attempt_at, created_at, campaign_id, user_id, priority) \
         SELECT ? || m.user_id, 'campaign', u.email, '', '', '', 'pending', 0, ?, ?, m.campaign_id, m.user_id, 1 \
         FROM campaign_members m JOIN users u ON u.id = m.user_id \
         WHERE m.campaign_id = ? AND m.user_id > ? AND m.user_id <= ? AND u.email IS NOT NULL",
        vec![
            Bind::Text(format!("{id}.")),
            Bind::Time(at),
            Bind::Time(at),
            Bind::Text(id.to_owned()),
            Bind::Text(lo),
            Bind::Text(hi),
        ],
    )?;
    let taken = i64::try_from(taken).unwrap_or(i64::MAX);
    diesel::update(reset_campaigns::table.find(id))
        .set(reset_campaigns::targeted.eq(reset_campaigns::targeted + taken))
        .execute(conn)?;
    Ok(taken)
}

/// Moves a campaign from `launching` to `running`, or straight to `completed` when everyone
/// it targeted is already done (nobody, or all completed while it launched). A campaign
/// cancelled meanwhile stays cancelled.
pub fn finish_launch(conn: &mut AnyConnection, id: &str, now: DateTime<Utc>) -> Result<Campaign, DbError> {
    let c = find(conn, id)?.ok_or(DbError::NotFound)?;
    let launching = reset_campaigns::table.find(id).filter(reset_campaigns::state.eq("launching"));
    if c.completed >= c.targeted {
        diesel::update(launching)
            .set((reset_campaigns::state.eq("completed"), reset_campaigns::finished_at.eq(to_db_time(now))))
            .execute(conn)?;
    } else {
        diesel::update(launching).set(reset_campaigns::state.eq("running")).execute(conn)?;
    }
    find(conn, id)?.ok_or(DbError::NotFound)
}

pub fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<Campaign>, DbError> {
    let row: Option<Row> = reset_campaigns::table.find(id).get_result(conn).optional()?;
    row.map(Row::into_campaign).transpose()
}

/// Every campaign, newest first (at most `limit`).
pub fn list(conn: &mut AnyConnection, limit: i64) -> Result<Vec<Campaign>, DbError> {
    let rows: Vec<Row> = reset_campaigns::table
        .order((reset_campaigns::launched_at.desc(), reset_campaigns::id.desc()))
        .limit(limit)
        .load(conn)?;
    rows.into_iter().map(Row::into_campaign).collect()
}

/// Cancels a campaign that is still launching or running: no further mail goes out. What it
/// already revoked stays revoked. False when it had already ended.
pub fn cancel(conn: &mut AnyConnection, id: &str, by: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
    let n = diesel::update(
        reset_campaigns::table.find(id).filter(reset_campaigns::state.eq_any(["launching", "running"])),
    )
    .set((
        reset_campaigns::state.eq("cancelled"),
        reset_campaigns::finished_at.eq(to_db_time(now)),
        reset_campaigns::cancelled_by.eq(by),
    ))
    .execute(conn)?;
    if n > 0 {
        super::outbox::cancel_campaign(conn, id)?;
    }
    Ok(n > 0)
}

/// Whether `user_id` already set a new password for campaign `id`.
pub fn member_completed(conn: &mut AnyConnection, id: &str, user_id: &str) -> Result<bool, DbError> {
    Ok(campaign_members::table
        .find((id, user_id))
        .select(campaign_members::completed_at)
        .get_result::<Option<chrono::NaiveDateTime>>(conn)
        .optional()?
        .flatten()
        .is_some())
}

/// The progress milestones that are audited, in percent of the targeted accounts.
const MILESTONES: [i32; 4] = [25, 50, 75, 100];

/// The account `user_id` set a new password at `now`: every campaign that targeted it and
/// was waiting for it counts it as completed. Returns the audit events to record in the same
/// transaction: each completion, each milestone crossed, each campaign finished by it.
pub fn record_completion(
    conn: &mut AnyConnection,
    user_id: &str,
    username: &str,
    now: DateTime<Utc>,
) -> Result<Vec<AuditEvent>, DbError> {
    let open: Vec<String> = campaign_members::table
        .filter(campaign_members::user_id.eq(user_id))
        .filter(campaign_members::completed_at.is_null())
        .select(campaign_members::campaign_id)
        .load(conn)?;
    let mut events = Vec::new();
    for id in open {
        let n = diesel::update(
            campaign_members::table
                .find((id.as_str(), user_id))
                .filter(campaign_members::completed_at.is_null()),
        )
        .set(campaign_members::completed_at.eq(to_db_time(now)))
        .execute(conn)?;
        if n == 0 {
            continue;
        }
        diesel::update(reset_campaigns::table.find(&id))
            .set(reset_campaigns::completed.eq(reset_campaigns::completed + 1))
            .execute(conn)?;
        let Some(c) = find(conn, &id)? else { continue };
        events.push(
            AuditEvent::new(
                format!("user:{username}"),
                "campaign.user_completed",
                crate::domain::Outcome::Success,
            )
            .target(format!("campaign:{id}"))
            .details(
                serde_json::json!({ "user": user_id, "completed": c.completed, "targeted": c.targeted }),
            ),
        );
        let percent = if c.targeted > 0 {
            i32::try_from(c.completed.saturating_mul(100) / c.targeted).unwrap_or(100)
        } else {
            100
        };
        let reached = MILESTONES.iter().copied().filter(|m| *m <= percent).max().unwrap_or(0);
        if reached > c.milestone {
            diesel::update(reset_campaigns::table.find(&id).filter(reset_campaigns::milestone.lt(reached)))
                .set(reset_campaigns::milestone.eq(reached))
                .execute(conn)?;
            events.push(
                AuditEvent::new("system", "campaign.progress", crate::domain::Outcome::Success)
                    .target(format!("campaign:{id}"))
                    .details(serde_json::json!({
                        "percent": reached, "completed": c.completed, "targeted": c.targeted
                    })),
            );
        }
        if c.state == "running" && c.completed >= c.targeted {
            diesel::update(reset_campaigns::table.find(&id).filter(reset_campaigns::state.eq("running")))
                .set((
                    reset_campaigns::state.eq("completed"),
                    reset_campaigns::finished_at.eq(to_db_time(now)),
                ))
                .execute(conn)?;
            events.push(
                AuditEvent::new("system", "campaign.completed", crate::domain::Outcome::Success)
                    .target(format!("campaign:{id}"))
                    .details(serde_json::json!({ "targeted": c.targeted })),
            );
        }
    }
    Ok(events)
}

/// How many accounts the campaign targeted have an email (mail was queued for them).
pub fn mailed(conn: &mut AnyConnection, id: &str) -> Result<i64, DbError> {
    load_counts(
        conn,
        "SELECT COUNT(*) AS n FROM outbox WHERE campaign_id = ?",
        vec![Bind::Text(id.to_owned())],
    )
}
