//! Repository for `policy_sets`: the role policy sets loaded at run time, newest last.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::policy_sets;
use super::{AnyConnection, DbError, from_db_time, to_db_time};

/// A stored set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSet {
    pub seq: i64,
    pub version: String,
    /// File name → text.
    pub files: std::collections::BTreeMap<String, String>,
    pub loaded_by: String,
    pub reason: String,
    pub loaded_at: DateTime<Utc>,
}

#[derive(Queryable)]
struct Row {
    seq: i64,
    version: String,
    files: String,
    loaded_by: String,
    reason: String,
    loaded_at: chrono::NaiveDateTime,
}

impl Row {
    fn into_stored(self) -> Result<StoredSet, DbError> {
        let files = serde_json::from_str(&self.files)
            .map_err(|e| DbError::Corrupt(format!("policy set {} has unreadable files: {e}", self.seq)))?;
        Ok(StoredSet {
            seq: self.seq,
            version: self.version,
            files,
            loaded_by: self.loaded_by,
            reason: self.reason,
            loaded_at: from_db_time(self.loaded_at),
        })
    }
}

/// The newest set, if any was ever loaded.
pub fn latest(conn: &mut AnyConnection) -> Result<Option<StoredSet>, DbError> {
    let Some(seq) = latest_seq(conn)? else { return Ok(None) };
    policy_sets::table.find(seq).get_result::<Row>(conn).optional()?.map(Row::into_stored).transpose()
}

/// The newest set's number (cheap: what every instance polls).
pub fn latest_seq(conn: &mut AnyConnection) -> Result<Option<i64>, DbError> {
    Ok(policy_sets::table.select(diesel::dsl::max(policy_sets::seq)).get_result::<Option<i64>>(conn)?)
}

/// Stores a set as the newest and returns its number. Call inside a write transaction; of two
/// concurrent loads one may fail with a conflict on the number.
pub fn insert(
    conn: &mut AnyConnection,
    version: &str,
    files: &std::collections::BTreeMap<String, String>,
    loaded_by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<i64, DbError> {
    let seq = latest_seq(conn)?.unwrap_or(0) + 1;
    let files = serde_json::to_string(files).map_err(|e| DbError::Corrupt(e.to_string()))?;
    diesel::insert_into(policy_sets::table)
        .values((
            policy_sets::seq.eq(seq),
            policy_sets::version.eq(version),
            policy_sets::files.eq(files),
            policy_sets::loaded_by.eq(loaded_by),
            policy_sets::reason.eq(reason),
            policy_sets::loaded_at.eq(to_db_time(now)),
        ))
        .execute(conn)?;
    Ok(seq)
}
