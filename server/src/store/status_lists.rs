//! Repository for token status lists: `status_list_counters`, `status_list_blocks` and
//! `status_list_entries` (see the migration for what each holds).
//!
//! Writes: one transaction per block of indexes (a client-credentials token writes nothing of
//! its own), one row per person's token (in the transaction that stores its refresh token), one
//! upsert per revocation. Reading a list is three indexed queries.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::raw::{Bind, execute, load};
use super::schema::{clients, status_list_blocks, status_list_counters, status_list_entries};
use super::{AnyConnection, DbError, from_db_time, to_db_time, write_transaction};

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Takes the client's next block of indexes at `now`; returns its number. In the same
/// transaction, forgets the client's blocks taken before `forget_blocks_before` and its
/// entries of expired tokens.
pub fn take_block(
    conn: &mut AnyConnection,
    client_id: &str,
    now: DateTime<Utc>,
    forget_blocks_before: DateTime<Utc>,
) -> Result<i64, DbError> {
    let now = to_db_time(now);
    write_transaction(conn, |c| {
        let taken: Vec<Number> = load(
            c,
            "INSERT INTO status_list_counters (client_id, next_block) VALUES (?, 1) \
             ON CONFLICT (client_id) DO UPDATE SET next_block = status_list_counters.next_block + 1 \
             RETURNING next_block - 1 AS n",
            vec![Bind::Text(client_id.to_owned())],
        )?;
        let block_no = taken.first().map(|r| r.n).ok_or(DbError::NotFound)?;
        diesel::insert_into(status_list_blocks::table)
            .values((
                status_list_blocks::client_id.eq(client_id),
                status_list_blocks::block_no.eq(block_no),
                status_list_blocks::allocated_at.eq(now),
            ))
            .execute(c)?;
        diesel::delete(
            status_list_blocks::table
                .filter(status_list_blocks::client_id.eq(client_id))
                .filter(status_list_blocks::allocated_at.lt(to_db_time(forget_blocks_before))),
        )
        .execute(c)?;
        diesel::delete(
            status_list_entries::table
                .filter(status_list_entries::client_id.eq(client_id))
                .filter(status_list_entries::expires_at.lt(now)),
        )
        .execute(c)?;
        Ok(block_no)
    })
}

/// Where a token sits: index `idx` of list `list_no` of `client_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub client_id: String,
    pub list_no: i64,
    pub idx: i64,
}

/// A person's token, as the list needs it.
#[derive(Debug, Clone)]
pub struct UserToken<'a> {
    pub at: &'a Place,
    pub jti: &'a str,
    pub user_id: &'a str,
    /// When the login it came from was made (an account cut-off after it ends it).
    pub auth_time: DateTime<Utc>,
    pub sid: &'a str,
    /// When that login ends by itself.
    pub session_ends: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Records a person's token, so the list follows their account (disabled, cut off) and their
/// login (ended, expired).
pub fn record_user_token(conn: &mut AnyConnection, t: &UserToken<'_>) -> Result<(), DbError> {
    diesel::insert_into(status_list_entries::table)
        .values((
            status_list_entries::client_id.eq(&t.at.client_id),
            status_list_entries::list_no.eq(t.at.list_no),
            status_list_entries::idx.eq(t.at.idx),
            status_list_entries::jti.eq(t.jti),
            status_list_entries::user_id.eq(Some(t.user_id)),
            status_list_entries::auth_time.eq(Some(to_db_time(t.auth_time))),
            status_list_entries::sid.eq(Some(t.sid)),
            status_list_entries::session_ends.eq(Some(to_db_time(t.session_ends))),
            status_list_entries::revoked.eq(false),
            status_list_entries::expires_at.eq(to_db_time(t.expires_at)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks the token at `at` revoked (recording it if it was not).
pub fn revoke_at(
    conn: &mut AnyConnection,
    at: &Place,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    execute(
        conn,
        "INSERT INTO status_list_entries \
         (client_id, list_no, idx, jti, user_id, auth_time, sid, session_ends, revoked, expires_at) \
         VALUES (?, ?, ?, ?, NULL, NULL, NULL, NULL, TRUE, ?) \
         ON CONFLICT (client_id, list_no, idx) DO UPDATE SET revoked = TRUE",
        vec![
            Bind::Text(at.client_id.clone()),
            Bind::Big(at.list_no),
            Bind::Big(at.idx),
            Bind::Text(jti.to_owned()),
            Bind::Time(to_db_time(expires_at)),
        ],
    )?;
    Ok(())
}

/// Marks the recorded token `jti` revoked (a person's token revoked with its refresh-token
/// family). Returns the clients whose lists changed.
pub fn revoke_jti(conn: &mut AnyConnection, jti: &str) -> Result<Vec<String>, DbError> {
    let clients: Vec<String> = status_list_entries::table
        .filter(status_list_entries::jti.eq(jti))
        .filter(status_list_entries::revoked.eq(false))
        .select(status_list_entries::client_id)
        .load(conn)?;
    if !clients.is_empty() {
        diesel::update(status_list_entries::table.filter(status_list_entries::jti.eq(jti)))
            .set(status_list_entries::revoked.eq(true))
            .execute(conn)?;
    }
    Ok(distinct(clients))
}

/// Marks every recorded token of the login `sid` revoked (a logout, "sign out everywhere").
/// Returns the clients whose lists changed.
pub fn revoke_sid(conn: &mut AnyConnection, sid: &str) -> Result<Vec<String>, DbError> {
    let clients: Vec<String> = status_list_entries::table
        .filter(status_list_entries::sid.eq(sid))
        .filter(status_list_entries::revoked.eq(false))
        .select(status_list_entries::client_id)
        .load(conn)?;
    if !clients.is_empty() {
        diesel::update(status_list_entries::table.filter(status_list_entries::sid.eq(sid)))
            .set(status_list_entries::revoked.eq(true))
            .execute(conn)?;
    }
    Ok(distinct(clients))
}

fn distinct(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// What the database holds about a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListLookup {
    /// No such client.
    NoClient,
    /// The client has not reached this list: it has taken `next_block` blocks so far.
    NotStarted {
        next_block: i64,
    },
    Found(ListState),
}

/// What a list is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListState {
    /// Blocks the client has taken so far (of every list).
    pub next_block: i64,
    /// The client is suspended: every token of the list is invalid.
    pub suspended: bool,
    /// Blocks of the list (numbers within it) taken before the client's cut-off.
    pub blocks_cut_off: Vec<i64>,
    /// Indexes of unexpired tokens revoked, or of a person whose account no longer backs them.
    pub invalid: Vec<i64>,
}

/// The state of list `list_no` of `client_id` (`blocks_per_list` blocks each) as of `now`.
/// `cut_blocks_before` maps the client's `tokens_valid_after` to the instant before which a
/// block is cut (see `oidc::status_lists`).
pub fn list_state(
    conn: &mut AnyConnection,
    client_id: &str,
    list_no: i64,
    blocks_per_list: i64,
    now: DateTime<Utc>,
    cut_blocks_before: impl FnOnce(DateTime<Utc>) -> DateTime<Utc>,
) -> Result<ListLookup, DbError> {
    let client: Option<(String, chrono::NaiveDateTime)> = clients::table
        .find(client_id)
        .select((clients::status, clients::tokens_valid_after))
        .get_result(conn)
        .optional()?;
    let Some((status, cut_off)) = client else { return Ok(ListLookup::NoClient) };
    let next_block: i64 = status_list_counters::table
        .find(client_id)
        .select(status_list_counters::next_block)
        .get_result(conn)
        .optional()?
        .unwrap_or(0);
    let Some(first) = list_no.checked_mul(blocks_per_list).filter(|f| list_no >= 0 && *f < next_block) else {
        return Ok(ListLookup::NotStarted { next_block });
    };
    if status != "active" {
        return Ok(ListLookup::Found(ListState {
            next_block,
            suspended: true,
            blocks_cut_off: Vec::new(),
            invalid: Vec::new(),
        }));
    }
    let cut = to_db_time(cut_blocks_before(from_db_time(cut_off)));
    let blocks: Vec<i64> = status_list_blocks::table
        .filter(status_list_blocks::client_id.eq(client_id))
        .filter(status_list_blocks::block_no.ge(first))
        .filter(status_list_blocks::block_no.lt(first + blocks_per_list))
        .filter(status_list_blocks::allocated_at.lt(cut))
        .select(status_list_blocks::block_no)
        .order(status_list_blocks::block_no.asc())
        .load(conn)?;
    // The rules of introspection: revoked; the account disabled or cut off after the login;
    // the login over (a logout marks `revoked`; expiry is `session_ends`).
    let invalid: Vec<Number> = load(
        conn,
        "SELECT e.idx AS n FROM status_list_entries e LEFT JOIN users u ON u.id = e.user_id \
         WHERE e.client_id = ? AND e.list_no = ? AND e.expires_at > ? AND (e.revoked \
         OR (e.user_id IS NOT NULL AND (u.id IS NULL OR u.status <> 'active' \
             OR u.tokens_valid_after > e.auth_time OR e.session_ends <= ?))) ORDER BY e.idx",
        vec![
            Bind::Text(client_id.to_owned()),
            Bind::Big(list_no),
            Bind::Time(to_db_time(now)),
            Bind::Time(to_db_time(now)),
        ],
    )?;
    Ok(ListLookup::Found(ListState {
        next_block,
        suspended: false,
        blocks_cut_off: blocks.into_iter().map(|b| b - first).collect(),
        invalid: invalid.into_iter().map(|r| r.n).collect(),
    }))
}
