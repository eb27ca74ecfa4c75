//! Repository for roles and user–role assignments.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{roles, user_roles};
use super::{AnyConnection, DbError, to_db_time};
use crate::domain::{RoleName, UserId};

/// Every role with its description, by name.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<(RoleName, String)>, DbError> {
    let rows: Vec<(String, String)> = roles::table.order(roles::name.asc()).load(conn)?;
    rows.into_iter()
        .map(|(n, d)| RoleName::parse(&n).map(|r| (r, d)).map_err(|e| DbError::Corrupt(e.0)))
        .collect()
}

/// Grants `role` to `user`; granting a role the user already holds changes nothing.
/// An unknown role or user is `DbError::Conflict`.
pub fn assign(
    conn: &mut AnyConnection,
    user: &UserId,
    role: &RoleName,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let held: i64 = user_roles::table
        .filter(user_roles::user_id.eq(user.as_str()).and(user_roles::role_name.eq(role.as_str())))
        .count()
        .get_result(conn)?;
    if held == 0 {
        diesel::insert_into(user_roles::table)
            .values((
                user_roles::user_id.eq(user.as_str()),
                user_roles::role_name.eq(role.as_str()),
                user_roles::granted_at.eq(to_db_time(now)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Grants many (user, role) pairs with multi-row statements; the caller holds the
/// transaction. Pairs must not already exist.
pub fn assign_many(
    conn: &mut AnyConnection,
    pairs: &[(UserId, RoleName)],
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let now = to_db_time(now);
    for chunk in pairs.chunks(1000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(u, r)| {
                (
                    user_roles::user_id.eq(u.as_str()),
                    user_roles::role_name.eq(r.as_str()),
                    user_roles::granted_at.eq(now),
                )
            })
            .collect();
        let insert = diesel::insert_into(user_roles::table).values(&rows);
        match conn {
            AnyConnection::Postgresql(c) => insert.execute(c)?,
            AnyConnection::Sqlite(c) => insert.execute(c)?,
        };
    }
    Ok(())
}

/// The roles `user` holds, by name.
pub fn roles_of(conn: &mut AnyConnection, user: &UserId) -> Result<Vec<RoleName>, DbError> {
    let names: Vec<String> = user_roles::table
        .filter(user_roles::user_id.eq(user.as_str()))
        .select(user_roles::role_name)
        .order(user_roles::role_name.asc())
        .load(conn)?;
    names.iter().map(|n| RoleName::parse(n).map_err(|e| DbError::Corrupt(e.0))).collect()
}

/// How many users hold `role`.
pub fn holders(conn: &mut AnyConnection, role: &RoleName) -> Result<i64, DbError> {
    Ok(user_roles::table.filter(user_roles::role_name.eq(role.as_str())).count().get_result(conn)?)
}

/// Grants `role` to `user` in one statement; true when it was granted now, false when the user
/// held it already (two grants at once: one inserts, the other finds it held). An unknown role
/// or user is `DbError::Conflict`.
pub fn grant(
    conn: &mut AnyConnection,
    user: &UserId,
    role: &RoleName,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "INSERT INTO user_roles (user_id, role_name, granted_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, role_name) DO NOTHING",
    )
    .bind::<diesel::sql_types::Text, _>(user.as_str())
    .bind::<diesel::sql_types::Text, _>(role.as_str())
    .bind::<diesel::sql_types::Timestamp, _>(to_db_time(now))
    .execute(conn)?;
    Ok(n > 0)
}

/// Takes `role` away from `user`; true when they held it.
pub fn remove(conn: &mut AnyConnection, user: &UserId, role: &RoleName) -> Result<bool, DbError> {
    let n = diesel::delete(
        user_roles::table
            .filter(user_roles::user_id.eq(user.as_str()).and(user_roles::role_name.eq(role.as_str()))),
    )
    .execute(conn)?;
    Ok(n > 0)
}

/// Whether `role` exists.
pub fn exists(conn: &mut AnyConnection, role: &RoleName) -> Result<bool, DbError> {
    let n: i64 = roles::table.filter(roles::name.eq(role.as_str())).count().get_result(conn)?;
    Ok(n > 0)
}

/// How many active accounts other than `except` hold `role`: the anti-lockout check. The
/// caller holds the write transaction, so two administrators removing each other cannot both
/// pass it (SQLite serialises writers; PostgreSQL's row locks on the holders' rows do, see
/// [`lock_holders`]).
pub fn other_active_holders(
    conn: &mut AnyConnection,
    role: &RoleName,
    except: &UserId,
) -> Result<i64, DbError> {
    use super::schema::users;
    let holders = user_roles::table
        .filter(user_roles::role_name.eq(role.as_str()).and(user_roles::user_id.ne(except.as_str())))
        .select(user_roles::user_id);
    Ok(users::table
        .filter(users::id.eq_any(holders).and(users::status.eq("active")))
        .count()
        .get_result(conn)?)
}

/// Locks the rows of `role`'s holders until the transaction ends (PostgreSQL), so concurrent
/// anti-lockout checks on the same role run one after another. SQLite has one writer at a
/// time already.
pub fn lock_holders(conn: &mut AnyConnection, role: &RoleName) -> Result<(), DbError> {
    if let AnyConnection::Postgresql(c) = conn {
        diesel::sql_query("SELECT user_id FROM user_roles WHERE role_name = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(role.as_str())
            .execute(c)?;
    }
    Ok(())
}

/// The roles each of `users` holds (accounts without a role are left out).
pub fn roles_of_many(
    conn: &mut AnyConnection,
    users: &[UserId],
) -> Result<std::collections::HashMap<UserId, Vec<RoleName>>, DbError> {
    let mut out: std::collections::HashMap<UserId, Vec<RoleName>> = std::collections::HashMap::new();
    for chunk in users.chunks(500) {
        let keys: Vec<&str> = chunk.iter().map(UserId::as_str).collect();
        let rows: Vec<(String, String)> = user_roles::table
            .filter(user_roles::user_id.eq_any(keys))
            .select((user_roles::user_id, user_roles::role_name))
            .order((user_roles::user_id.asc(), user_roles::role_name.asc()))
            .load(conn)?;
        for (u, r) in rows {
            let role = RoleName::parse(&r).map_err(|e| DbError::Corrupt(e.0))?;
            out.entry(UserId::from_string(u)).or_default().push(role);
        }
    }
    Ok(out)
}
