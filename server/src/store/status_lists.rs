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
use super::{AnyConnection, DbError, to_db_time, write_transaction};

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

/// Records a person's token, so the list follows their account (disabled, cut off).
pub fn record_user_token(
    conn: &mut AnyConnection,
    at: &Place,
    jti: &str,
    user_id: &str,
    auth_time: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::insert_into(status_list_entries::table)
        .values((
            status_list_entries::client_id.eq(&at.client_id),
            status_list_entries::list_no.eq(at.list_no),
            status_list_entries::idx.eq(at.idx),
            status_list_entries::jti.eq(jti),
            status_list_entries::user_id.eq(Some(user_id)),
            status_list_entries::auth_time.eq(Some(to_db_time(auth_time))),
            status_list_entries::revoked.eq(false),
            status_list_entries::expires_at.eq(to_db_time(expires_at)),
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
        "INSERT INTO status_list_entries (client_id, list_no, idx, jti, user_id, auth_time, revoked, expires_at) \
         VALUES (?, ?, ?, ?, NULL, NULL, TRUE, ?) \
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
/// family or its login). Returns whether one was recorded.
pub fn revoke_jti(conn: &mut AnyConnection, jti: &str) -> Result<bool, DbError> {
    let n = diesel::update(status_list_entries::table.filter(status_list_entries::jti.eq(jti)))
        .set(status_list_entries::revoked.eq(true))
        .execute(conn)?;
    Ok(n > 0)
}

/// What a list is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListState {
    /// The client is suspended: every token of the list is invalid.
    pub suspended: bool,
    /// Blocks of the list (numbers within it) taken before the client's cut-off.
    pub blocks_cut_off: Vec<i64>,
    /// Indexes of unexpired tokens revoked, or of a person whose account no longer backs them.
    pub invalid: Vec<i64>,
}

/// The state of list `list_no` of `client_id` (`blocks_per_list` blocks each) as of `now`;
/// `None` when the client does not exist or has never had an index in that list.
pub fn list_state(
    conn: &mut AnyConnection,
    client_id: &str,
    list_no: i64,
    blocks_per_list: i64,
    now: DateTime<Utc>,
) -> Result<Option<ListState>, DbError> {
    let first = list_no.checked_mul(blocks_per_list).ok_or(DbError::NotFound)?;
    let next: Option<i64> = status_list_counters::table
        .find(client_id)
        .select(status_list_counters::next_block)
        .first(conn)
        .optional()?;
    if list_no < 0 || next.is_none_or(|n| n <= first) {
        return Ok(None);
    }
    let client: Option<(String, chrono::NaiveDateTime)> = clients::table
        .find(client_id)
        .select((clients::status, clients::tokens_valid_after))
        .first(conn)
        .optional()?;
    let Some((status, cut_off)) = client else { return Ok(None) };
    if status != "active" {
        return Ok(Some(ListState { suspended: true, blocks_cut_off: Vec::new(), invalid: Vec::new() }));
    }
    let blocks: Vec<i64> = status_list_blocks::table
        .filter(status_list_blocks::client_id.eq(client_id))
        .filter(status_list_blocks::block_no.ge(first))
        .filter(status_list_blocks::block_no.lt(first + blocks_per_list))
        .filter(status_list_blocks::allocated_at.lt(cut_off))
        .select(status_list_blocks::block_no)
        .load(conn)?;
    let invalid: Vec<Number> = load(
        conn,
        "SELECT e.idx AS n FROM status_list_entries e LEFT JOIN users u ON u.id = e.user_id \
         WHERE e.client_id = ? AND e.list_no = ? AND e.expires_at > ? AND (e.revoked \
         OR (e.user_id IS NOT NULL AND (u.id IS NULL OR u.status <> 'active' OR u.tokens_valid_after > e.auth_time)))",
        vec![Bind::Text(client_id.to_owned()), Bind::Big(list_no), Bind::Time(to_db_time(now))],
    )?;
    Ok(Some(ListState {
        suspended: false,
        blocks_cut_off: blocks.into_iter().map(|b| b - first).collect(),
        invalid: invalid.into_iter().map(|r| r.n).collect(),
    }))
}
