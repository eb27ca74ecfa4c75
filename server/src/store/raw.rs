//! Hand-written SQL on either backend: `?` placeholders (numbered for PostgreSQL) and typed
//! binds. For what diesel's DSL cannot say on a multi-backend connection (set-based
//! `INSERT … SELECT`, data-modifying CTEs, upserts with `RETURNING`).

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::query_dsl::methods::LoadQuery;
use diesel::sql_types::{BigInt, Integer, Text, Timestamp};
use diesel::sqlite::Sqlite;

use super::{AnyConnection, DbError};

/// One bound value of a hand-written statement.
pub(crate) enum Bind {
    Text(String),
    Int(i32),
    Big(i64),
    Time(chrono::NaiveDateTime),
}

/// `?` placeholders as the backend wants them (`$1`, `$2`, … on PostgreSQL).
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(ch);
        }
    }
    out
}

macro_rules! bound {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bind::Text(v) => q.bind::<Text, _>(v),
                Bind::Int(v) => q.bind::<Integer, _>(v),
                Bind::Big(v) => q.bind::<BigInt, _>(v),
                Bind::Time(v) => q.bind::<Timestamp, _>(v),
            };
        }
        q
    }};
}

/// Runs a hand-written statement on either backend; how many rows it changed.
pub(crate) fn execute(conn: &mut AnyConnection, sql: &str, binds: Vec<Bind>) -> Result<usize, DbError> {
    Ok(match conn {
        AnyConnection::Postgresql(c) => {
            bound!(diesel::sql_query(numbered(sql)).into_boxed::<Pg>(), binds).execute(c)?
        }
        AnyConnection::Sqlite(c) => {
            bound!(diesel::sql_query(sql).into_boxed::<Sqlite>(), binds).execute(c)?
        }
    })
}

/// Runs a hand-written query on either backend and reads its rows.
pub(crate) fn load<T>(conn: &mut AnyConnection, sql: &str, binds: Vec<Bind>) -> Result<Vec<T>, DbError>
where
    T: QueryableByName<Pg> + QueryableByName<Sqlite> + 'static,
    for<'a> diesel::query_builder::BoxedSqlQuery<'a, Pg, diesel::query_builder::SqlQuery>:
        LoadQuery<'a, diesel::PgConnection, T> + QueryFragment<Pg>,
    for<'a> diesel::query_builder::BoxedSqlQuery<'a, Sqlite, diesel::query_builder::SqlQuery>:
        LoadQuery<'a, diesel::SqliteConnection, T> + QueryFragment<Sqlite>,
{
    Ok(match conn {
        AnyConnection::Postgresql(c) => {
            bound!(diesel::sql_query(numbered(sql)).into_boxed::<Pg>(), binds).load(c)?
        }
        AnyConnection::Sqlite(c) => bound!(diesel::sql_query(sql).into_boxed::<Sqlite>(), binds).load(c)?,
    })
}
