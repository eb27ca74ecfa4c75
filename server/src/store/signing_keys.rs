//! Repository for token signing keys (`signing_keys`). The private key arrives already sealed
//! (the caller seals it under the key-encryption key): this module only holds text.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::signing_keys;
use super::{AnyConnection, DbError, from_db_time, to_db_time};
use crate::crypto::SigningAlg;

/// Serialises key-ring changes across every process on the database (two instances starting
/// at once must not both create a first key; two rotations must not interleave).
const KEYRING_LOCK_KEY: i64 = 0x7072_616d_6161_6e02;

/// A stored signing key. Published in the JWKS from `created_at` until `unpublish_at`; signs
/// from `signs_from` until `retired_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    /// `Keys.secrets.seal(pkcs8_der, "signing-key:<kid>")`.
    pub sealed_private_key: String,
    /// The public JWK as JSON.
    pub public_jwk: String,
    pub created_at: DateTime<Utc>,
    pub signs_from: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub unpublish_at: Option<DateTime<Utc>>,
}

#[derive(Queryable)]
struct Row {
    kid: String,
    alg: String,
    private_key: String,
    public_jwk: String,
    created_at: chrono::NaiveDateTime,
    signs_from: chrono::NaiveDateTime,
    retired_at: Option<chrono::NaiveDateTime>,
    unpublish_at: Option<chrono::NaiveDateTime>,
}

impl Row {
    fn into_domain(self) -> Result<StoredSigningKey, DbError> {
        let alg = SigningAlg::parse(&self.alg).ok_or_else(|| {
            DbError::Corrupt(format!("signing key {} has unknown alg '{}'", self.kid, self.alg))
        })?;
        Ok(StoredSigningKey {
            kid: self.kid,
            alg,
            sealed_private_key: self.private_key,
            public_jwk: self.public_jwk,
            created_at: from_db_time(self.created_at),
            signs_from: from_db_time(self.signs_from),
            retired_at: self.retired_at.map(from_db_time),
            unpublish_at: self.unpublish_at.map(from_db_time),
        })
    }
}

/// Runs `f` in a write transaction that no other key-ring change runs beside, on any process.
pub fn locked<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    super::conn::serialised_transaction(conn, KEYRING_LOCK_KEY, f)
}

/// Stores a new key. A taken kid is `DbError::Conflict`.
pub fn insert(conn: &mut AnyConnection, key: &StoredSigningKey) -> Result<(), DbError> {
    diesel::insert_into(signing_keys::table)
        .values((
            signing_keys::kid.eq(&key.kid),
            signing_keys::alg.eq(key.alg.as_str()),
            signing_keys::private_key.eq(&key.sealed_private_key),
            signing_keys::public_jwk.eq(&key.public_jwk),
            signing_keys::created_at.eq(to_db_time(key.created_at)),
            signing_keys::signs_from.eq(to_db_time(key.signs_from)),
            signing_keys::retired_at.eq(key.retired_at.map(to_db_time)),
            signing_keys::unpublish_at.eq(key.unpublish_at.map(to_db_time)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Every stored key, oldest `signs_from` first (kid breaks ties), retired ones included.
pub fn list_all(conn: &mut AnyConnection) -> Result<Vec<StoredSigningKey>, DbError> {
    let rows: Vec<Row> =
        signing_keys::table.order((signing_keys::signs_from.asc(), signing_keys::kid.asc())).load(conn)?;
    rows.into_iter().map(Row::into_domain).collect()
}

/// Marks a key to stop signing at `at` and leave the JWKS at `unpublish_at`. Only a key that
/// is not retired yet changes; returns whether it did. `NotFound` for an unknown kid.
pub fn retire(
    conn: &mut AnyConnection,
    kid: &str,
    at: DateTime<Utc>,
    unpublish_at: DateTime<Utc>,
) -> Result<bool, DbError> {
    let changed = diesel::update(signing_keys::table.find(kid).filter(signing_keys::retired_at.is_null()))
        .set((
            signing_keys::retired_at.eq(Some(to_db_time(at))),
            signing_keys::unpublish_at.eq(Some(to_db_time(unpublish_at))),
        ))
        .execute(conn)?;
    if changed == 0 {
        let exists: i64 = signing_keys::table.find(kid).count().get_result(conn)?;
        if exists == 0 {
            return Err(DbError::NotFound);
        }
    }
    Ok(changed > 0)
}

/// Deletes the keys whose `unpublish_at` is at or before `now` (no token they signed is still
/// alive) and returns their kids.
pub fn delete_unpublished(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<Vec<String>, DbError> {
    let now = to_db_time(now);
    let gone = signing_keys::unpublish_at.le(now);
    let kids: Vec<String> = signing_keys::table
        .filter(gone)
        .select(signing_keys::kid)
        .order(signing_keys::kid.asc())
        .load(conn)?;
    if !kids.is_empty() {
        diesel::delete(signing_keys::table.filter(signing_keys::kid.eq_any(&kids))).execute(conn)?;
    }
    Ok(kids)
}
