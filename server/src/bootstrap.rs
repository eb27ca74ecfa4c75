//! First run: the first administrator and the root organisation unit.
//!
//! The first time `serve` starts on a database, if no one holds the national admin role yet, it
//! creates the configured admin with a random one-time password, returned here to be printed
//! once to the console (never logged), flagged so it must be changed at first login. A marker
//! in `server_meta` records that bootstrap happened, so no later start prints a second password
//! — and disabling or demoting that admin never silently re-creates it.

use secrecy::{ExposeSecret, SecretString};

use crate::domain::{AuditEvent, NewUser, OrgPath, Outcome, RoleName, Username};
use crate::state::{Core, StartError};
use crate::store::{DbError, meta, org_units, roles, users};

/// `server_meta` entry recording that bootstrap ran (the admin's id, or `existing`).
const MARKER: &str = "bootstrap_admin";

/// The role the first administrator receives.
pub const BOOTSTRAP_ROLE: &str = "national_admin";

/// The administrator created on this run.
pub struct BootstrapAdmin {
    pub username: Username,
    pub one_time_password: SecretString,
}

/// A one-time password people can type: 4 groups of 5 characters from an alphabet without
/// look-alikes (about 99 bits).
fn one_time_password() -> SecretString {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let bytes = crate::crypto::random_bytes(20);
    let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
    let groups: Vec<String> = chars.chunks(5).map(|c| c.iter().collect()).collect();
    SecretString::from(groups.join("-"))
}

/// Creates the first admin if the database has no users. Returns it when created.
pub async fn ensure_admin(core: &Core) -> Result<Option<BootstrapAdmin>, StartError> {
    let db_err =
        |source: DbError| StartError::Database { url: core.settings.database_url().redacted(), source };
    if core.db.run(|c| meta::get(c, MARKER)).await.map_err(db_err)?.is_some() {
        return Ok(None);
    }
    let b = &core.settings.bootstrap;
    let username = Username::parse(&b.admin_username)
        .map_err(|e| StartError::Other(format!("bootstrap.admin_username: {e}")))?;
    let root = OrgPath::parse(&b.root_org_path)
        .map_err(|e| StartError::Other(format!("bootstrap.root_org_path: {e}")))?;
    let role = RoleName::parse(BOOTSTRAP_ROLE).map_err(|e| StartError::Other(e.0))?;
    let password = one_time_password();
    let hash = core.passwords.hash(SecretString::from(password.expose_secret().to_owned())).await?;
    let now = core.clock.now();
    let root_name = b.root_org_name.clone();
    let new = NewUser {
        username: username.clone(),
        display_name: "Administrator".into(),
        phone: None,
        email: None,
        org_unit_id: None,
        password_hash: Some(hash),
        must_change_password: true,
    };
    let audit = core.audit.clone();
    let created = core
        .db
        .run(move |c| {
            crate::store::write_transaction(c, |c| {
                if meta::get(c, MARKER)?.is_some() {
                    return Ok(None);
                }
                if roles::holders(c, &role)? > 0 {
                    // Someone set the deployment up by hand (e.g. `user create --role …`).
                    meta::get_or_insert(c, MARKER, "existing")?;
                    return Ok(None);
                }
                let org = match org_units::find_by_path(c, &root)? {
                    Some(o) => o,
                    None => org_units::create(c, &root, &root_name, "national", now)?,
                };
                let user = users::insert(c, &NewUser { org_unit_id: Some(org.id), ..new }, now)?;
                roles::assign(c, &user.id, &role, now)?;
                meta::get_or_insert(c, MARKER, user.id.as_str())?;
                audit.append_with(
                    c,
                    vec![
                        AuditEvent::new("system", "bootstrap.admin_created", Outcome::Success)
                            .target(format!("user:{}", user.username))
                            .details(serde_json::json!({"role": role.as_str(), "org_unit": root.as_str()})),
                    ],
                )?;
                Ok(Some(user))
            })
        })
        .await;
    match created {
        Ok(Some(_)) => Ok(Some(BootstrapAdmin { username, one_time_password: password })),
        Ok(None) => Ok(None),
        // Another instance bootstrapped at the same moment: its admin stands.
        Err(DbError::Conflict(_)) => Ok(None),
        Err(e) => Err(db_err(e)),
    }
}
