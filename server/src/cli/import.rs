//! `pramaan user import FILE.csv`: all rows are checked before anything is written, and the
//! write is one transaction with multi-row statements, so 100,000 rows land in seconds or not
//! at all.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

use super::{CliResult, Io, print_json};
use crate::domain::{AuditEvent, Email, NewUser, OrgPath, Outcome, Phone, RoleName, UserId, Username};
use crate::state::Core;
use crate::store::{org_units, roles, users, write_transaction};

/// The columns, in any order; the header row is required.
const COLUMNS: [&str; 6] = ["username", "display_name", "phone", "email", "org_unit", "roles"];

/// One row's problems, by line number in the file (the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// Rows checked against the database's org units and roles, ready to insert.
pub struct CheckedRows {
    pub users: Vec<NewUser>,
    pub roles: Vec<Vec<RoleName>>,
}

/// A username and the line it came from.
pub type UsernameLine = (String, u64);

/// Parses and checks the whole file; never writes.
pub fn check(
    csv_text: &[u8],
    org_ids: &HashMap<String, crate::domain::OrgUnitId>,
    known_roles: &HashSet<RoleName>,
) -> Result<(CheckedRows, Vec<UsernameLine>), Vec<BadRow>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(csv_text);
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.to_lowercase()).collect(),
        Err(e) => return Err(vec![BadRow { line: 1, reason: format!("cannot read the header: {e}") }]),
    };
    let mut index = [0usize; 6];
    for (i, col) in COLUMNS.iter().enumerate() {
        match header.iter().position(|h| h == col) {
            Some(p) => index[i] = p,
            None => {
                return Err(vec![BadRow {
                    line: 1,
                    reason: format!(
                        "the header must name the columns {}; '{col}' is missing",
                        COLUMNS.join(", ")
                    ),
                }]);
            }
        }
    }
    if let Some(extra) = header.iter().find(|h| !COLUMNS.contains(&h.as_str())) {
        return Err(vec![BadRow { line: 1, reason: format!("unknown column '{extra}'") }]);
    }
    let mut bad = Vec::new();
    let mut rows = CheckedRows { users: Vec::new(), roles: Vec::new() };
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                bad.push(BadRow { line, reason: format!("not a valid CSV row: {e}") });
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        let field = |i: usize| record.get(index[i]).unwrap_or("");
        let mut reasons = Vec::new();
        let username = Username::parse(field(0)).map_err(|e| reasons.push(e.0)).ok();
        if let Some(u) = &username
            && let Some(first) = seen.insert(u.as_str().to_owned(), line)
        {
            reasons.push(format!("username '{u}' appears again (first on line {first})"));
        }
        let display_name = NewUser::check_display_name(field(1)).map_err(|e| reasons.push(e.0)).ok();
        let phone = match field(2) {
            "" => None,
            p => Phone::parse(p).map_err(|e| reasons.push(e.0)).ok(),
        };
        let email = match field(3) {
            "" => None,
            e => Email::parse(e).map_err(|e| reasons.push(e.0)).ok(),
        };
        let org_unit_id = match field(4) {
            "" => None,
            p => match OrgPath::parse(p) {
                Ok(path) => match org_ids.get(path.as_str()) {
                    Some(id) => Some(id.clone()),
                    None => {
                        reasons.push(format!("org unit '{path}' does not exist"));
                        None
                    }
                },
                Err(e) => {
                    reasons.push(e.0);
                    None
                }
            },
        };
        let mut user_roles = Vec::new();
        for r in field(5).split([';', ' ', '|']).filter(|s| !s.is_empty()) {
            match RoleName::parse(r) {
                Ok(role) if known_roles.contains(&role) => {
                    if !user_roles.contains(&role) {
                        user_roles.push(role);
                    }
                }
                Ok(role) => reasons.push(format!("role '{role}' does not exist")),
                Err(e) => reasons.push(e.0),
            }
        }
        match (username, display_name, reasons.is_empty()) {
            (Some(username), Some(display_name), true) => {
                lines.push((username.as_str().to_owned(), line));
                rows.users.push(NewUser {
                    username,
                    display_name,
                    phone,
                    email,
                    org_unit_id,
                    password_hash: None,
                    must_change_password: true,
                });
                rows.roles.push(user_roles);
            }
            _ => bad.push(BadRow { line, reason: reasons.join("; ") }),
        }
    }
    if bad.is_empty() { Ok((rows, lines)) } else { Err(bad) }
}

pub async fn run(core: &Core, actor: &str, file: &Path, json: bool, io: &mut Io) -> CliResult {
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (org_ids, known_roles) = core
        .db
        .run(|c| {
            let org_ids = org_units::ids_by_path(c)?;
            let known: HashSet<RoleName> = roles::list(c)?.into_iter().map(|(r, _)| r).collect();
            Ok((org_ids, known))
        })
        .await?;
    let (rows, lines) = match check(&text, &org_ids, &known_roles) {
        Ok(ok) => ok,
        Err(bad) => return report_bad(io, file, &bad),
    };
    if rows.users.is_empty() {
        bail!("{} holds no rows to import", file.display());
    }
    let file_name = file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let details = serde_json::json!({ "file": file_name });
    let result = write_rows(core, actor, rows, lines, details, |_| Ok(true)).await?;
    match result {
        Ok(n) if json => print_json(&mut io.stdout, &serde_json::json!({"imported": n})),
        Ok(n) => {
            writeln!(io.stdout, "imported {n} users; each must set a password through a reset link")?;
            Ok(())
        }
        Err(bad) => report_bad(io, file, &bad),
    }
}

/// Inserts checked rows in one transaction with multi-row statements and one `user.import`
/// audit event (`details` plus the counts). Usernames taken meanwhile come back as bad rows and
/// nothing is written. `still_allowed` runs first inside the transaction (the admin API decides
/// again there); `false` writes nothing and is a conflict. Returns how many accounts were
/// created.
pub async fn write_rows(
    core: &Core,
    actor: &str,
    rows: CheckedRows,
    lines: Vec<UsernameLine>,
    details: serde_json::Value,
    still_allowed: impl FnOnce(&mut crate::store::AnyConnection) -> Result<bool, crate::store::DbError>
    + Send
    + 'static,
) -> Result<Result<usize, Vec<BadRow>>, crate::store::DbError> {
    let now = core.clock.now();
    let audit = core.audit.clone();
    let actor = actor.to_owned();
    core.db
        .run(move |c| {
            write_transaction(c, |c| {
                if !still_allowed(c)? {
                    return Err(crate::store::DbError::Conflict(
                        "the decision no longer holds; try again".into(),
                    ));
                }
                let names: Vec<&str> = lines.iter().map(|(u, _)| u.as_str()).collect();
                let taken = users::existing_usernames(c, &names)?;
                if !taken.is_empty() {
                    let mut bad: Vec<BadRow> = lines
                        .iter()
                        .filter(|(u, _)| taken.contains(u))
                        .map(|(u, line)| BadRow { line: *line, reason: format!("username '{u}' is taken") })
                        .collect();
                    bad.sort_by_key(|b| b.line);
                    return Ok(Err(bad));
                }
                let ids = users::insert_many(c, &rows.users, now)?;
                let pairs: Vec<(UserId, RoleName)> = ids
                    .iter()
                    .zip(&rows.roles)
                    .flat_map(|(id, rs)| rs.iter().map(move |r| (id.clone(), r.clone())))
                    .collect();
                roles::assign_many(c, &pairs, now)?;
                let mut details = details;
                if let Some(d) = details.as_object_mut() {
                    d.insert("imported".into(), serde_json::json!(ids.len()));
                    d.insert("role_grants".into(), serde_json::json!(pairs.len()));
                }
                audit.append_with(
                    c,
                    vec![AuditEvent::new(actor, "user.import", Outcome::Success).details(details)],
                )?;
                Ok(Ok(ids.len()))
            })
        })
        .await
}

fn report_bad(io: &mut Io, file: &Path, bad: &[BadRow]) -> CliResult {
    for b in bad {
        writeln!(io.stderr, "{}:{}: {}", file.display(), b.line, b.reason)?;
    }
    bail!("{} bad row(s) in {}; nothing was imported", bad.len(), file.display())
}
