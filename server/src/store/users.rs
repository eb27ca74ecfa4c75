//! Repository for user accounts (`users`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{org_units, users};
use super::{AnyConnection, DbError, from_db_time, to_db_time};
use crate::domain::{Email, NewUser, OrgPath, OrgUnitId, Phone, User, UserId, UserStatus, Username};

#[derive(Queryable)]
struct UserRow {
    id: String,
    username: String,
    display_name: String,
    phone: Option<String>,
    email: Option<String>,
    org_unit_id: Option<String>,
    status: String,
    password_hash: Option<String>,
    password_changed_at: Option<chrono::NaiveDateTime>,
    must_change_password: bool,
    tokens_valid_after: chrono::NaiveDateTime,
    failed_logins: i32,
    locked_until: Option<chrono::NaiveDateTime>,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
struct NewUserRow<'a> {
    id: &'a str,
    username: &'a str,
    display_name: &'a str,
    phone: Option<&'a str>,
    email: Option<&'a str>,
    org_unit_id: Option<&'a str>,
    status: &'a str,
    password_hash: Option<&'a str>,
    password_changed_at: Option<chrono::NaiveDateTime>,
    must_change_password: bool,
    tokens_valid_after: chrono::NaiveDateTime,
    failed_logins: i32,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

impl UserRow {
    /// Rows were validated on the way in; a row that no longer parses is corrupt data and is
    /// reported as an error rather than served.
    fn into_domain(self) -> Result<(User, Option<String>), DbError> {
        let corrupt = |what: &str, e: crate::domain::Invalid| {
            DbError::Corrupt(format!("stored user {} has an invalid {what}: {e}", self.id))
        };
        let user = User {
            username: Username::parse(&self.username).map_err(|e| corrupt("username", e))?,
            phone: self.phone.as_deref().map(Phone::parse).transpose().map_err(|e| corrupt("phone", e))?,
            email: self.email.as_deref().map(Email::parse).transpose().map_err(|e| corrupt("email", e))?,
            status: UserStatus::parse(&self.status).map_err(|e| corrupt("status", e))?,
            id: UserId::from_string(self.id.clone()),
            display_name: self.display_name,
            org_unit_id: self.org_unit_id.map(OrgUnitId::from_string),
            has_password: self.password_hash.is_some(),
            password_changed_at: self.password_changed_at.map(from_db_time),
            must_change_password: self.must_change_password,
            tokens_valid_after: from_db_time(self.tokens_valid_after),
            failed_logins: self.failed_logins,
            locked_until: self.locked_until.map(from_db_time),
            created_at: from_db_time(self.created_at),
            updated_at: from_db_time(self.updated_at),
        };
        Ok((user, self.password_hash))
    }
}

fn new_row<'a>(id: &'a UserId, u: &'a NewUser, now: chrono::NaiveDateTime) -> NewUserRow<'a> {
    NewUserRow {
        id: id.as_str(),
        username: u.username.as_str(),
        display_name: &u.display_name,
        phone: u.phone.as_ref().map(Phone::as_str),
        email: u.email.as_ref().map(Email::as_str),
        org_unit_id: u.org_unit_id.as_ref().map(OrgUnitId::as_str),
        status: UserStatus::Active.as_str(),
        password_hash: u.password_hash.as_deref(),
        password_changed_at: u.password_hash.as_ref().map(|_| now),
        must_change_password: u.must_change_password,
        tokens_valid_after: super::initial_cut_off(now.and_utc()),
        failed_logins: 0,
        created_at: now,
        updated_at: now,
    }
}

/// Creates an active account, its `tokens_valid_after` at the start of the current second
/// (see `initial_cut_off`). A taken username is `DbError::Conflict`.
pub fn insert(conn: &mut AnyConnection, new: &NewUser, now: DateTime<Utc>) -> Result<User, DbError> {
    insert_with_id(conn, &UserId::generate(), new, now)
}

/// [`insert`] with the id chosen by the caller (the admin API decides about the account before
/// it exists). A taken username or id is `DbError::Conflict`.
pub fn insert_with_id(
    conn: &mut AnyConnection,
    id: &UserId,
    new: &NewUser,
    now: DateTime<Utc>,
) -> Result<User, DbError> {
    let now = to_db_time(now);
    diesel::insert_into(users::table).values(new_row(id, new, now)).execute(conn)?;
    find(conn, id)?.ok_or(DbError::NotFound)
}

/// Creates many accounts with one multi-row statement per chunk; the caller holds the
/// transaction, so either all land or none. Returns the new ids in input order.
pub fn insert_many(
    conn: &mut AnyConnection,
    new: &[NewUser],
    now: DateTime<Utc>,
) -> Result<Vec<UserId>, DbError> {
    let now = to_db_time(now);
    let ids: Vec<UserId> = new.iter().map(|_| UserId::generate()).collect();
    // 14 columns per row: 500 rows stay far below both backends' bind-parameter limits.
    for (chunk_ids, chunk) in ids.chunks(500).zip(new.chunks(500)) {
        let rows: Vec<NewUserRow<'_>> =
            chunk_ids.iter().zip(chunk).map(|(id, u)| new_row(id, u, now)).collect();
        // Multi-row inserts do not compile through the multi-backend; each dialect has them.
        let insert = diesel::insert_into(users::table).values(&rows);
        match conn {
            AnyConnection::Postgresql(c) => insert.execute(c)?,
            AnyConnection::Sqlite(c) => insert.execute(c)?,
        };
    }
    Ok(ids)
}

/// The account with this id, if any.
pub fn find(conn: &mut AnyConnection, id: &UserId) -> Result<Option<User>, DbError> {
    if !id.is_storable() {
        return Ok(None);
    }
    let row = users::table.find(id.as_str()).get_result::<UserRow>(conn).optional()?;
    row.map(|r| r.into_domain().map(|(u, _)| u)).transpose()
}

/// The account with this username, if any.
pub fn find_by_username(conn: &mut AnyConnection, username: &Username) -> Result<Option<User>, DbError> {
    Ok(find_with_hash(conn, username)?.map(|(u, _)| u))
}

/// The account and its password hash (for login): the only function that lets a hash out.
pub fn find_with_hash(
    conn: &mut AnyConnection,
    username: &Username,
) -> Result<Option<(User, Option<String>)>, DbError> {
    let row =
        users::table.filter(users::username.eq(username.as_str())).get_result::<UserRow>(conn).optional()?;
    row.map(UserRow::into_domain).transpose()
}

/// Which of `usernames` are taken. Queries in chunks to stay under bind limits.
pub fn existing_usernames(conn: &mut AnyConnection, usernames: &[&str]) -> Result<HashSet<String>, DbError> {
    let mut taken = HashSet::new();
    for chunk in usernames.chunks(1000) {
        let found: Vec<String> =
            users::table.filter(users::username.eq_any(chunk)).select(users::username).load(conn)?;
        taken.extend(found);
    }
    Ok(taken)
}

/// Filter for [`list`]; every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only users whose org unit is this one or inside its subtree.
    pub org_subtree: Option<OrgPath>,
    pub status: Option<UserStatus>,
    /// Case-insensitive substring of the username or display name.
    pub text: Option<String>,
    /// Keyset cursor: only usernames after this one.
    pub after_username: Option<String>,
    /// Only holders of this role.
    pub role: Option<crate::domain::RoleName>,
}

/// Users ordered by username, at most `limit`.
pub fn list(conn: &mut AnyConnection, filter: &UserFilter, limit: i64) -> Result<Vec<User>, DbError> {
    let mut q = users::table.into_boxed();
    if let Some(p) = &filter.org_subtree {
        // A subquery, not a list of ids: a national subtree can hold more units than a
        // statement may bind. Paths hold no LIKE wildcards (OrgPath's charset).
        let subtree = org_units::table
            .filter(org_units::path.eq(p.as_str().to_owned()).or(org_units::path.like(format!("{p}/%"))))
            .select(org_units::id.nullable());
        q = q.filter(users::org_unit_id.eq_any(subtree));
    }
    if let Some(s) = filter.status {
        q = q.filter(users::status.eq(s.as_str()));
    }
    if let Some(t) = &filter.text {
        let escaped = t.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        q = q.filter(
            users::username.like(pattern.clone()).escape('\\').or(
                diesel::dsl::sql::<diesel::sql_types::Bool>("LOWER(display_name) LIKE ")
                    .bind::<diesel::sql_types::Text, _>(pattern)
                    .sql(" ESCAPE '\\'"),
            ),
        );
    }
    if let Some(role) = &filter.role {
        let holders = super::schema::user_roles::table
            .filter(super::schema::user_roles::role_name.eq(role.as_str().to_owned()))
            .select(super::schema::user_roles::user_id);
        q = q.filter(users::id.eq_any(holders));
    }
    if let Some(after) = &filter.after_username {
        q = q.filter(users::username.gt(after.clone()));
    }
    let rows: Vec<UserRow> = q.order(users::username.asc()).limit(limit).load(conn)?;
    rows.into_iter().map(|r| r.into_domain().map(|(u, _)| u)).collect()
}

/// Number of accounts.
pub fn count(conn: &mut AnyConnection) -> Result<i64, DbError> {
    Ok(users::table.count().get_result(conn)?)
}

/// Sets the status. Both directions move `tokens_valid_after` to `now`: disabling kills every
/// token and session the user holds, and enabling kills any minted while the disable was
/// still spreading, so nothing old comes back. Returns `NotFound` for an unknown id.
pub fn set_status(
    conn: &mut AnyConnection,
    id: &UserId,
    status: UserStatus,
    now: DateTime<Utc>,
) -> Result<User, DbError> {
    let now = to_db_time(now);
    let n = diesel::update(users::table.find(id.as_str()))
        .set((
            users::status.eq(status.as_str()),
            users::tokens_valid_after.eq(now),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    find(conn, id)?.ok_or(DbError::NotFound)
}

/// Moves `tokens_valid_after` to `now`: every session, refresh token and access token the
/// account holds from before dies. `NotFound` for an unknown id.
pub fn cut_off_tokens(conn: &mut AnyConnection, id: &UserId, now: DateTime<Utc>) -> Result<(), DbError> {
    let now = to_db_time(now);
    let n = diesel::update(users::table.find(id.as_str()))
        .set((users::tokens_valid_after.eq(now), users::updated_at.eq(now)))
        .execute(conn)?;
    if n == 0 { Err(DbError::NotFound) } else { Ok(()) }
}

/// Counts one more wrong password, unless the account is locked at `now`, and returns the
/// new count (`None` when locked). One atomic statement, so parallel attempts never lose a
/// count. `NotFound` for an unknown id.
pub fn count_failed_login(
    conn: &mut AnyConnection,
    id: &UserId,
    now: DateTime<Utc>,
) -> Result<Option<i32>, DbError> {
    let t = to_db_time(now);
    let count: Option<i32> = diesel::update(
        users::table.find(id.as_str()).filter(users::locked_until.is_null().or(users::locked_until.le(t))),
    )
    .set(users::failed_logins.eq(users::failed_logins + 1))
    .returning(users::failed_logins)
    .get_result(conn)
    .optional()?;
    match count {
        Some(n) => Ok(Some(n)),
        None => match find(conn, id)? {
            Some(_) => Ok(None),
            None => Err(DbError::NotFound),
        },
    }
}

/// Locks the account until `until` (or unlocks it with `None`).
pub fn set_locked_until(
    conn: &mut AnyConnection,
    id: &UserId,
    until: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id.as_str()))
        .set(users::locked_until.eq(until.map(to_db_time)))
        .execute(conn)?;
    Ok(())
}

/// Admits a login whose password was right: if the account is not locked at `now`, clears
/// the failure count and any expired lock and returns `true`; if it is locked, changes
/// nothing and returns `false`. One atomic statement: a lock set by parallel wrong guesses
/// is seen.
pub fn claim_login(conn: &mut AnyConnection, id: &UserId, now: DateTime<Utc>) -> Result<bool, DbError> {
    let t = to_db_time(now);
    let n = diesel::update(
        users::table.find(id.as_str()).filter(users::locked_until.is_null().or(users::locked_until.le(t))),
    )
    .set((users::failed_logins.eq(0), users::locked_until.eq(None::<chrono::NaiveDateTime>)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Admits a login whose last step was charged as a failure before it was checked (a
/// second-factor code): clears the count and any lock that charge or a parallel one set.
pub fn admit_charged(conn: &mut AnyConnection, id: &UserId) -> Result<(), DbError> {
    diesel::update(users::table.find(id.as_str()))
        .set((users::failed_logins.eq(0), users::locked_until.eq(None::<chrono::NaiveDateTime>)))
        .execute(conn)?;
    Ok(())
}

/// Stores a new password hash. `changed` says whether the password itself changed (and so
/// clears `must_change_password` and stamps `password_changed_at`) or only its hash
/// parameters did (rehash on login).
pub fn set_password_hash(
    conn: &mut AnyConnection,
    id: &UserId,
    hash: &str,
    changed: bool,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let now = to_db_time(now);
    let n = if changed {
        diesel::update(users::table.find(id.as_str()))
            .set((
                users::password_hash.eq(hash),
                users::password_changed_at.eq(now),
                users::must_change_password.eq(false),
                users::updated_at.eq(now),
            ))
            .execute(conn)?
    } else {
        diesel::update(users::table.find(id.as_str())).set(users::password_hash.eq(hash)).execute(conn)?
    };
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Locks the rows of `ids` until the transaction ends (PostgreSQL; in id order, so two
/// transactions locking the same pair cannot deadlock). SQLite has one writer at a time.
pub fn lock(conn: &mut AnyConnection, ids: &[&UserId]) -> Result<(), DbError> {
    if let AnyConnection::Postgresql(c) = conn {
        let mut sorted: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        for id in sorted {
            diesel::sql_query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind::<diesel::sql_types::Text, _>(id)
                .execute(c)?;
        }
    }
    Ok(())
}

/// What [`update_profile`] changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub display_name: Option<String>,
    /// `Some(None)` clears it.
    pub email: Option<Option<Email>>,
    pub phone: Option<Option<Phone>>,
    pub org_unit_id: Option<OrgUnitId>,
}

/// Changes an account's display name, email, phone or unit. `NotFound` for an unknown id.
pub fn update_profile(
    conn: &mut AnyConnection,
    id: &UserId,
    change: &ProfileChange,
    now: DateTime<Utc>,
) -> Result<User, DbError> {
    let current = find(conn, id)?.ok_or(DbError::NotFound)?;
    let display_name = change.display_name.clone().unwrap_or(current.display_name);
    let email = change.email.clone().unwrap_or(current.email);
    let phone = change.phone.clone().unwrap_or(current.phone);
    let org = change.org_unit_id.clone().or(current.org_unit_id);
    diesel::update(users::table.find(id.as_str()))
        .set((
            users::display_name.eq(display_name),
            users::email.eq(email.as_ref().map(Email::as_str)),
            users::phone.eq(phone.as_ref().map(Phone::as_str)),
            users::org_unit_id.eq(org.as_ref().map(OrgUnitId::as_str)),
            users::updated_at.eq(to_db_time(now)),
        ))
        .execute(conn)?;
    find(conn, id)?.ok_or(DbError::NotFound)
}

/// Marks the account as needing a new password at its next sign-in. `NotFound` for an unknown
/// id.
pub fn require_password_change(conn: &mut AnyConnection, id: &UserId) -> Result<(), DbError> {
    let n = diesel::update(users::table.find(id.as_str()))
        .set(users::must_change_password.eq(true))
        .execute(conn)?;
    if n == 0 { Err(DbError::NotFound) } else { Ok(()) }
}
