//! `pramaan user …`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use secrecy::SecretString;
use serde::Serialize;

use super::{CliResult, Io, print_json};
use crate::domain::{
    AuditEvent, Email, NewUser, OrgPath, Outcome, Phone, RoleName, User, UserStatus, Username,
};
use crate::state::Core;
use crate::store::users::UserFilter;
use crate::store::{org_units, roles, users};

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Create(CreateArgs),
    /// List accounts, by username.
    List(ListArgs),
    /// Show one account.
    Show {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: it cannot log in, and its sessions and tokens die at once.
    Disable {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Enable a disabled account (old sessions and tokens stay dead).
    Enable {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Clear an account's second factors (authenticator app and recovery codes), for a person
    /// who lost their phone: they set up a new app at their next login. Audited.
    MfaReset {
        username: String,
        /// Why (recorded in the audit trail), such as a helpdesk ticket.
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Import accounts from CSV: username, display_name, phone, email, org_unit, roles.
    /// Every row is checked first; one bad row and nothing is imported.
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    pub username: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Phone in E.164 form, such as +919812345678.
    #[arg(long)]
    pub phone: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    /// Organisation unit path, such as national/karnataka.
    #[arg(long, value_name = "PATH")]
    pub org: Option<String>,
    /// Role to grant; repeat for several.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Read an initial password from the first line of standard input. Without it the account
    /// has no usable password until one is set through a reset link.
    #[arg(long)]
    pub password_stdin: bool,
    /// Require a new password at first login even when one is given.
    #[arg(long)]
    pub must_change_password: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only accounts in this organisation unit's subtree.
    #[arg(long, value_name = "PATH")]
    pub org: Option<String>,
    /// active or disabled.
    #[arg(long)]
    pub status: Option<String>,
    /// Text in the username or display name.
    #[arg(long)]
    pub search: Option<String>,
    /// Continue after this username (cursor from the previous page).
    #[arg(long)]
    pub after: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    #[arg(long)]
    pub json: bool,
}

/// A user as the CLI shows it.
#[derive(Serialize)]
struct UserView {
    #[serde(flatten)]
    user: User,
    org_unit: Option<String>,
    roles: Vec<RoleName>,
}

pub async fn run(core: &Core, actor: &str, cmd: UserCommand, io: &mut Io) -> CliResult {
    match cmd {
        UserCommand::Create(args) => create(core, actor, args, io).await,
        UserCommand::List(args) => list(core, args, io).await,
        UserCommand::Show { username, json } => {
            let view = view(core, &parse_username(&username)?).await?;
            print_user(io, &view, json)
        }
        UserCommand::Disable { username, json } => {
            set_status(core, actor, &username, UserStatus::Disabled, json, io).await
        }
        UserCommand::Enable { username, json } => {
            set_status(core, actor, &username, UserStatus::Active, json, io).await
        }
        UserCommand::MfaReset { username, reason, json } => {
            mfa_reset(core, actor, &username, &reason, json, io).await
        }
        UserCommand::Import { file, json } => super::import::run(core, actor, &file, json, io).await,
    }
}

async fn mfa_reset(
    core: &Core,
    actor: &str,
    username: &str,
    reason: &str,
    json: bool,
    io: &mut Io,
) -> CliResult {
    let username = parse_username(username)?;
    let reason = reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 {
        bail!("--reason: say why, in at most 500 characters");
    }
    let (audit, actor, name) = (core.audit.clone(), actor.to_owned(), username.clone());
    let cleared = core
        .db
        .run(move |c| {
            crate::store::write_transaction(c, |c| {
                let user = users::find_by_username(c, &name)?.ok_or(crate::store::DbError::NotFound)?;
                let cleared = crate::store::factors::reset(c, &user.id)?;
                let event = AuditEvent::new(actor, "mfa.reset", Outcome::Success)
                    .target(format!("user:{}", user.id))
                    .details(serde_json::json!({ "username": name, "cleared": cleared, "reason": reason }));
                audit.append_with(c, vec![event])?;
                Ok(cleared)
            })
        })
        .await
        .map_err(|e| match e {
            crate::store::DbError::NotFound => anyhow!("no user '{username}'"),
            other => other.into(),
        })?;
    if json {
        return print_json(&mut io.stdout, &serde_json::json!({ "username": username, "cleared": cleared }));
    }
    let what = if cleared { "Cleared the second factors of" } else { "Nothing to clear for" };
    writeln!(io.stdout, "{what} '{username}'. At their next login they set up a new authenticator app.")?;
    Ok(())
}

fn parse_username(s: &str) -> anyhow::Result<Username> {
    Username::parse(s).map_err(|e| anyhow!("username '{s}': {e}"))
}

async fn create(core: &Core, actor: &str, a: CreateArgs, io: &mut Io) -> CliResult {
    let username = parse_username(&a.username)?;
    let display_name = NewUser::check_display_name(&a.name).map_err(|e| anyhow!("--name: {e}"))?;
    let phone = a.phone.as_deref().map(Phone::parse).transpose().map_err(|e| anyhow!("--phone: {e}"))?;
    let email = a.email.as_deref().map(Email::parse).transpose().map_err(|e| anyhow!("--email: {e}"))?;
    let org = a.org.as_deref().map(OrgPath::parse).transpose().map_err(|e| anyhow!("--org: {e}"))?;
    let role_names: Vec<RoleName> = a
        .roles
        .iter()
        .map(|r| RoleName::parse(r).map_err(|e| anyhow!("--role: {e}")))
        .collect::<Result<_, _>>()?;
    let password_hash = if a.password_stdin {
        let mut line = String::new();
        BufReader::new(&mut io.stdin)
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        let min = core.settings.password.min_length;
        if password.chars().count() < min {
            bail!("the password must be at least {min} characters long");
        }
        Some(core.passwords.hash(SecretString::from(password)).await?)
    } else {
        None
    };
    let must_change = a.must_change_password || password_hash.is_none();
    let now = core.clock.now();
    let audit = core.audit.clone();
    let actor = actor.to_owned();
    let created = core
        .db
        .run(move |c| {
            crate::store::write_transaction(c, |c| {
                let org_unit_id = match &org {
                    Some(p) => Some(
                        org_units::find_by_path(c, p)?
                            .ok_or_else(|| {
                                crate::store::DbError::Conflict(format!("org unit '{p}' does not exist"))
                            })?
                            .id,
                    ),
                    None => None,
                };
                let known: Vec<RoleName> = roles::list(c)?.into_iter().map(|(r, _)| r).collect();
                if let Some(r) = role_names.iter().find(|r| !known.contains(r)) {
                    return Err(crate::store::DbError::Conflict(format!("role '{r}' does not exist")));
                }
                let new = NewUser {
                    username,
                    display_name,
                    phone,
                    email,
                    org_unit_id,
                    password_hash,
                    must_change_password: must_change,
                };
                let user = users::insert(c, &new, now).map_err(|e| match e {
                    crate::store::DbError::Conflict(_) => {
                        crate::store::DbError::Conflict(format!("username '{}' is taken", new.username))
                    }
                    other => other,
                })?;
                for r in &role_names {
                    roles::assign(c, &user.id, r, now)?;
                }
                audit.append_with(
                    c,
                    vec![
                        AuditEvent::new(actor, "user.create", Outcome::Success)
                            .target(format!("user:{}", user.username))
                            .details(serde_json::json!({
                                "org_unit": org.as_ref().map(OrgPath::as_str),
                                "roles": role_names.iter().map(RoleName::as_str).collect::<Vec<_>>(),
                                "password_set": new.password_hash.is_some(),
                            })),
                    ],
                )?;
                Ok(user)
            })
        })
        .await?;
    let view = view(core, &created.username).await?;
    print_user(io, &view, a.json)
}

async fn view(core: &Core, username: &Username) -> anyhow::Result<UserView> {
    let shown = username.clone();
    let username = username.clone();
    core.db
        .run(move |c| {
            let user = users::find_by_username(c, &username)?.ok_or(crate::store::DbError::NotFound)?;
            let org_unit = match &user.org_unit_id {
                Some(id) => org_units::find(c, id)?.map(|o| o.path.to_string()),
                None => None,
            };
            let roles = roles::roles_of(c, &user.id)?;
            Ok(UserView { user, org_unit, roles })
        })
        .await
        .map_err(|e| match e {
            crate::store::DbError::NotFound => anyhow!("no user '{shown}'"),
            other => other.into(),
        })
}

fn print_user(io: &mut Io, v: &UserView, json: bool) -> CliResult {
    if json {
        return print_json(&mut io.stdout, v);
    }
    let u = &v.user;
    let out = &mut io.stdout;
    writeln!(out, "username:              {}", u.username)?;
    writeln!(out, "display name:          {}", u.display_name)?;
    writeln!(out, "id:                    {}", u.id)?;
    writeln!(out, "status:                {}", u.status.as_str())?;
    writeln!(out, "org unit:              {}", v.org_unit.as_deref().unwrap_or("-"))?;
    let roles: Vec<&str> = v.roles.iter().map(RoleName::as_str).collect();
    writeln!(out, "roles:                 {}", if roles.is_empty() { "-".into() } else { roles.join(", ") })?;
    writeln!(out, "phone:                 {}", u.phone.as_ref().map_or("-", Phone::as_str))?;
    writeln!(out, "email:                 {}", u.email.as_ref().map_or("-", Email::as_str))?;
    writeln!(out, "password set:          {}", if u.has_password { "yes" } else { "no" })?;
    writeln!(out, "must change password:  {}", if u.must_change_password { "yes" } else { "no" })?;
    writeln!(out, "created:               {}", u.created_at.to_rfc3339())?;
    Ok(())
}

async fn list(core: &Core, a: ListArgs, io: &mut Io) -> CliResult {
    let status =
        a.status.as_deref().map(UserStatus::parse).transpose().map_err(|e| anyhow!("--status: {e}"))?;
    let org = a.org.as_deref().map(OrgPath::parse).transpose().map_err(|e| anyhow!("--org: {e}"))?;
    if !(1..=10_000).contains(&a.limit) {
        bail!("--limit must be between 1 and 10000");
    }
    let (users, paths) = core
        .db
        .run(move |c| {
            if let Some(p) = &org
                && org_units::find_by_path(c, p)?.is_none()
            {
                return Err(crate::store::DbError::Conflict(format!("org unit '{p}' does not exist")));
            }
            let filter =
                UserFilter { org_subtree: org, status, text: a.search, after_username: a.after, role: None };
            let users = users::list(c, &filter, a.limit)?;
            let paths: std::collections::HashMap<_, _> =
                org_units::ids_by_path(c)?.into_iter().map(|(p, id)| (id, p)).collect();
            Ok((users, paths))
        })
        .await?;
    if a.json {
        #[derive(Serialize)]
        struct Row<'a> {
            #[serde(flatten)]
            user: &'a User,
            org_unit: Option<&'a String>,
        }
        let rows: Vec<Row<'_>> = users
            .iter()
            .map(|u| Row { user: u, org_unit: u.org_unit_id.as_ref().and_then(|id| paths.get(id)) })
            .collect();
        return print_json(&mut io.stdout, &rows);
    }
    for u in &users {
        let org = u.org_unit_id.as_ref().and_then(|id| paths.get(id)).map_or("-", String::as_str);
        writeln!(io.stdout, "{:<24} {:<9} {:<40} {}", u.username, u.status.as_str(), org, u.display_name)?;
    }
    if users.len() as i64 == a.limit
        && let Some(last) = users.last()
    {
        writeln!(io.stderr, "(more: --after {})", last.username)?;
    }
    Ok(())
}

async fn set_status(
    core: &Core,
    actor: &str,
    username: &str,
    status: UserStatus,
    json: bool,
    io: &mut Io,
) -> CliResult {
    let username = parse_username(username)?;
    let now = core.clock.now();
    let audit = core.audit.clone();
    let actor = actor.to_owned();
    let name = username.clone();
    core.db
        .run(move |c| {
            crate::store::write_transaction(c, |c| {
                let user = users::find_by_username(c, &name)?.ok_or(crate::store::DbError::NotFound)?;
                let updated = users::set_status(c, &user.id, status, now)?;
                crate::store::meta::bump_revocation_epoch(c)?;
                let action = match status {
                    UserStatus::Disabled => "user.disable",
                    UserStatus::Active => "user.enable",
                };
                audit.append_with(
                    c,
                    vec![AuditEvent::new(actor, action, Outcome::Success).target(format!("user:{name}"))],
                )?;
                Ok(updated)
            })
        })
        .await
        .map_err(|e| match e {
            crate::store::DbError::NotFound => anyhow!("no user '{username}'"),
            other => other.into(),
        })?;
    let view = view(core, &username).await?;
    print_user(io, &view, json)
}
