//! Persistence: the only module that imports diesel. One schema over PostgreSQL and SQLite
//! through a `MultiConnection` enum; repositories are small, one per aggregate, and convert
//! rows to domain types at the boundary.
//!
//! One row is read with `get_result` on a unique key (or an aggregate such as `max`), never
//! with diesel's `first`: `first` adds `LIMIT ?`, and SQLite (3.47 and later) plans a bound
//! `LIMIT` by its value, so every run of such a statement recompiles it (measured: 0.9 ms of
//! a login's 20.3 ms of server CPU on SQLite). `clippy.toml` disallows `first`.

pub mod audit_events;
pub mod campaigns;
pub mod clients;
mod conn;
pub mod consents;
pub mod factors;
pub mod meta;
pub mod org_units;
pub mod outbox;
pub mod password_resets;
pub mod policy_sets;
mod raw;
pub mod refresh_tokens;
pub mod roles;
mod schema;
pub mod signing_keys;
pub mod status_lists;
pub mod users;

pub use conn::{AnyConnection, Backend, Database, DbError, parse_url, write_transaction};

use chrono::{DateTime, NaiveDateTime, Utc};

/// Stored times are UTC in a `TIMESTAMP` column.
pub(crate) fn to_db_time(t: DateTime<Utc>) -> NaiveDateTime {
    crate::clock::truncate_micros(t).naive_utc()
}

pub(crate) fn from_db_time(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// The initial `tokens_valid_after` of a new account or client: the start of the current
/// second. Token `iat`s have whole-second precision (RFC 7519 NumericDate as integers), so a
/// cut-off inside the second of creation would reject the first second's tokens; a new
/// record has nothing older to cut off.
pub(crate) fn initial_cut_off(now: DateTime<Utc>) -> NaiveDateTime {
    DateTime::from_timestamp(now.timestamp(), 0).map_or_else(|| to_db_time(now), |t| t.naive_utc())
}
