//! Repository for remembered consents (`consents`): which scopes a user agreed a client may
//! receive.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::consents;
use super::{AnyConnection, DbError, to_db_time};
use crate::domain::{ClientId, Scope, UserId};

/// The scopes `user` has agreed `client` may receive (empty when never asked).
pub fn granted(conn: &mut AnyConnection, user: &UserId, client: &ClientId) -> Result<Vec<Scope>, DbError> {
    let scope: Option<String> = consents::table
        .find((user.as_str(), client.as_str()))
        .select(consents::scope)
        .get_result(conn)
        .optional()?;
    // A stored scope that no longer parses asks again rather than failing the login.
    Ok(scope.and_then(|s| Scope::parse_list(&s).ok()).unwrap_or_default())
}

/// Records that `user` agreed `client` may receive `scopes`, adding to what was agreed
/// before.
pub fn grant(
    conn: &mut AnyConnection,
    user: &UserId,
    client: &ClientId,
    scopes: &[Scope],
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    super::write_transaction(conn, |c| {
        let mut all = granted(c, user, client)?;
        for s in scopes {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        let joined = Scope::join(&all);
        let t = to_db_time(now);
        let n = diesel::update(consents::table.find((user.as_str(), client.as_str())))
            .set((consents::scope.eq(&joined), consents::granted_at.eq(t)))
            .execute(c)?;
        if n == 0 {
            diesel::insert_into(consents::table)
                .values((
                    consents::user_id.eq(user.as_str()),
                    consents::client_id.eq(client.as_str()),
                    consents::scope.eq(&joined),
                    consents::granted_at.eq(t),
                ))
                .execute(c)?;
        }
        Ok(())
    })
}
