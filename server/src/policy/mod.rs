//! Role policies: the Cedar policy set in `policies/` (one `.cedar` file per role, plus the
//! rules for everyone), checked against `schema.cedarschema`, and its test cases in
//! `policies/tests/`. Every error names its file and line.

mod capability;
mod cases;
mod engine;
pub mod reload;

pub use capability::{AdminAction, Capability, Denied, Subject};
pub use cases::{TestReport, run_tests};
pub mod actions {
    //! The administrative actions as types, for [`super::Capability`].
    pub use super::capability::{
        AssignRole, CreateUser, DisableUser, EnableUser, LaunchCampaign, ListUsers, ManageClient, ManageOrg,
        ManagePolicy, ReadAudit, ReadClient, ReadPolicy, ReadUser, ResetFactors, RevokeSessions,
        SuspendClients, UpdateUser,
    };
}
pub use engine::{Act, ActiveSet, ClientFacts, LoginFacts, Origin, Person, PolicyEngine, Target, Verdict};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};

/// A problem with the policy files, where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

impl PolicyError {
    fn new(file: &str, line: usize, reason: impl Into<String>) -> Self {
        Self { file: file.to_owned(), line, reason: reason.into() }
    }
}

/// The loaded policy set with its schema, and where each policy came from.
#[derive(Debug, Clone)]
pub struct Policies {
    pub dir: PathBuf,
    pub schema: Schema,
    pub set: PolicySet,
    /// File name → its text.
    sources: BTreeMap<String, String>,
    /// Policy id → the file it is in.
    origin: BTreeMap<PolicyId, String>,
    /// Role → every role it includes, transitively (from `roles.json`).
    includes: BTreeMap<String, BTreeSet<String>>,
}

const SCHEMA_FILE: &str = "schema.cedarschema";
/// The role hierarchy (optional): which roles each role includes.
const ROLES_FILE: &str = "roles.json";

/// The line (from 1) of a byte offset in `src`.
fn line_of(src: &str, offset: usize) -> usize {
    src.get(..offset.min(src.len())).map_or(1, |s| s.matches('\n').count() + 1)
}

/// The first source line a diagnostic points at, or 1.
fn line_of_diagnostic(src: &str, d: &dyn miette::Diagnostic) -> usize {
    d.labels().and_then(|mut l| l.next()).map_or(1, |l| line_of(src, l.offset()))
}

/// One line of reason: the error and its help, without miette's drawing.
fn reason_of(d: &dyn miette::Diagnostic) -> String {
    let mut s = d.to_string();
    if let Some(help) = d.help() {
        s.push_str(&format!(" ({help})"));
    }
    s
}

/// The line of the `n`-th policy (from 0) of a file: the policies' `permit`/`forbid` lines, in
/// order (annotations sit above them).
fn nth_policy_line(src: &str, n: usize) -> usize {
    src.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            l.starts_with("permit") || l.starts_with("forbid")
        })
        .nth(n)
        .map_or(1, |(i, _)| i + 1)
}

fn read(dir: &Path, name: &str) -> Result<String, PolicyError> {
    std::fs::read_to_string(dir.join(name))
        .map_err(|e| PolicyError::new(name, 0, format!("cannot read: {e}")))
}

/// The policy files read from a folder or stored in the database: file name → text. It holds
/// `schema.cedarschema` and the `*.cedar` files.
pub type Sources = BTreeMap<String, String>;

/// The shipped policies, compiled in: what a server runs when no `policy.dir` is configured and
/// no set was reloaded into the database. A test checks this list against `policies/`.
pub const BUILTIN: &[(&str, &str)] = &[
    (SCHEMA_FILE, include_str!("../../../policies/schema.cedarschema")),
    (ROLES_FILE, include_str!("../../../policies/roles.json")),
    ("auditor.cedar", include_str!("../../../policies/auditor.cedar")),
    ("clients.cedar", include_str!("../../../policies/clients.cedar")),
    ("common.cedar", include_str!("../../../policies/common.cedar")),
    ("district_admin.cedar", include_str!("../../../policies/district_admin.cedar")),
    ("facility_admin.cedar", include_str!("../../../policies/facility_admin.cedar")),
    ("helpdesk.cedar", include_str!("../../../policies/helpdesk.cedar")),
    ("national_admin.cedar", include_str!("../../../policies/national_admin.cedar")),
    ("state_admin.cedar", include_str!("../../../policies/state_admin.cedar")),
    ("vaccinator.cedar", include_str!("../../../policies/vaccinator.cedar")),
    ("verifier.cedar", include_str!("../../../policies/verifier.cedar")),
];

/// The compiled-in policy files.
pub fn builtin_sources() -> Sources {
    BUILTIN.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect()
}

/// Reads the schema and every `*.cedar` file of `dir`.
pub fn read_dir(dir: &Path) -> Result<Sources, Vec<PolicyError>> {
    let mut sources = Sources::new();
    sources.insert(SCHEMA_FILE.to_owned(), read(dir, SCHEMA_FILE).map_err(|e| vec![e])?);
    if dir.join(ROLES_FILE).exists() {
        sources.insert(ROLES_FILE.to_owned(), read(dir, ROLES_FILE).map_err(|e| vec![e])?);
    }
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| vec![PolicyError::new(&dir.display().to_string(), 0, format!("cannot read: {e}"))])?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cedar"))
        .collect();
    let mut errors = Vec::new();
    for name in names {
        match read(dir, &name) {
            Ok(text) => {
                sources.insert(name, text);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok(sources) } else { Err(errors) }
}

/// Loads the schema and every `*.cedar` file of `dir` (in name order). Each policy's id is its
/// `@id` annotation, which must be unique across the files.
pub fn load(dir: &Path) -> Result<Policies, Vec<PolicyError>> {
    let mut p = from_sources(read_dir(dir)?)?;
    p.dir = dir.to_owned();
    Ok(p)
}

/// Parses a set of policy files (see [`load`]). Its `dir` (where test cases are looked for) is
/// `policies`.
pub fn from_sources(files: Sources) -> Result<Policies, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let Some(schema_src) = files.get(SCHEMA_FILE) else {
        return Err(vec![PolicyError::new(SCHEMA_FILE, 0, "the schema file is missing")]);
    };
    let schema = match Schema::from_cedarschema_str(schema_src) {
        Ok((s, _warnings)) => Some(s),
        Err(e) => {
            errors.push(PolicyError::new(SCHEMA_FILE, line_of_diagnostic(schema_src, &e), reason_of(&e)));
            None
        }
    };
    let includes = match files.get(ROLES_FILE).map(|t| role_hierarchy(t)).transpose() {
        Ok(h) => h.unwrap_or_default(),
        Err(e) => {
            errors.push(e);
            BTreeMap::new()
        }
    };
    if let Some(other) =
        files.keys().find(|n| n.as_str() != SCHEMA_FILE && n.as_str() != ROLES_FILE && !n.ends_with(".cedar"))
    {
        errors.push(PolicyError::new(
            other,
            0,
            "a policy set holds schema.cedarschema, roles.json and *.cedar files only",
        ));
    }
    let names: Vec<&String> = files.keys().filter(|n| n.ends_with(".cedar")).collect();
    if names.is_empty() {
        errors.push(PolicyError::new("policies", 0, "no .cedar policy files"));
    }
    let mut set = PolicySet::new();
    let mut sources = BTreeMap::new();
    let mut origin = BTreeMap::new();
    for name in names {
        let Some(src) = files.get(name) else { continue };
        if !valid_file_name(name) {
            errors.push(PolicyError::new(
                name,
                0,
                "a policy file name is letters, digits, '_', '-' and '.cedar'",
            ));
            continue;
        }
        match src.parse::<PolicySet>() {
            Err(parse_errors) => {
                for e in parse_errors.iter() {
                    errors.push(PolicyError::new(name, line_of_diagnostic(src, e), reason_of(e)));
                }
            }
            Ok(parsed) => {
                for p in parsed.policies() {
                    // Parsing names them policy0, policy1, … in file order.
                    let n =
                        p.id().to_string().strip_prefix("policy").and_then(|n| n.parse().ok()).unwrap_or(0);
                    let line = nth_policy_line(src, n);
                    let Some(id) = p.annotation("id") else {
                        errors.push(PolicyError::new(
                            name,
                            line,
                            "every policy needs an @id(\"…\") annotation",
                        ));
                        continue;
                    };
                    let id = PolicyId::new(id);
                    if let Some(other) = origin.get(&id) {
                        errors.push(PolicyError::new(
                            name,
                            line,
                            format!("@id(\"{id}\") is also used in {other}"),
                        ));
                        continue;
                    }
                    if let Err(e) = set.add(p.new_id(id.clone())) {
                        errors.push(PolicyError::new(name, line, e.to_string()));
                        continue;
                    }
                    origin.insert(id, name.clone());
                }
            }
        }
    }
    for (name, src) in &files {
        sources.insert(name.clone(), src.clone());
    }
    match (errors.is_empty(), schema) {
        (true, Some(schema)) => {
            Ok(Policies { dir: PathBuf::from("policies"), schema, set, sources, origin, includes })
        }
        _ => Err(errors),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesFile {
    #[serde(default, rename = "about")]
    _about: Option<String>,
    includes: BTreeMap<String, Vec<String>>,
}

/// Parses `roles.json` into each role's transitive inclusions; role names must be valid and
/// the hierarchy may not loop.
fn role_hierarchy(text: &str) -> Result<BTreeMap<String, BTreeSet<String>>, PolicyError> {
    let file: RolesFile = serde_json::from_str(text)
        .map_err(|e| PolicyError::new(ROLES_FILE, e.line(), format!("not a role hierarchy: {e}")))?;
    for name in file.includes.keys().chain(file.includes.values().flatten()) {
        crate::domain::RoleName::parse(name)
            .map_err(|e| PolicyError::new(ROLES_FILE, 0, format!("role '{name}': {e}")))?;
    }
    let mut out = BTreeMap::new();
    for role in file.includes.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = file.includes.get(role).map(|v| v.iter().collect()).unwrap_or_default();
        while let Some(r) = todo.pop() {
            if r == role {
                return Err(PolicyError::new(ROLES_FILE, 0, format!("role '{role}' includes itself")));
            }
            if seen.insert(r.clone()) {
                todo.extend(file.includes.get(r).into_iter().flatten());
            }
        }
        out.insert(role.clone(), seen);
    }
    Ok(out)
}

fn valid_file_name(name: &str) -> bool {
    name.strip_suffix(".cedar").is_some_and(|stem| {
        !stem.is_empty()
            && stem.len() <= 64
            && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

impl Policies {
    /// Checks every policy against the schema (strict mode: no unknown entity, attribute or
    /// action, no type error). Empty when the set is valid.
    pub fn validate(&self) -> Vec<PolicyError> {
        let result = Validator::new(self.schema.clone()).validate(&self.set, ValidationMode::Strict);
        result
            .validation_errors()
            .map(|e| {
                let file = self.origin.get(e.policy_id()).cloned().unwrap_or_else(|| "?".into());
                let src = self.sources.get(&file).map_or("", String::as_str);
                PolicyError::new(
                    &file,
                    line_of_diagnostic(src, e),
                    format!("policy \"{}\": {}", e.policy_id(), reason_of(e)),
                )
            })
            .collect()
    }

    /// The roles a person holding `held` has: those, and every role they include.
    pub fn effective_roles<'a>(&'a self, held: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
        let mut out = BTreeSet::new();
        for r in held {
            out.insert(r);
            if let Some(inc) = self.includes.get(r) {
                out.extend(inc.iter().map(String::as_str));
            }
        }
        out
    }

    /// The roles each role includes directly or not.
    pub fn role_hierarchy(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.includes
    }

    /// The files the set was read from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Which file a policy is in.
    pub fn file_of(&self, id: &PolicyId) -> Option<&str> {
        self.origin.get(id).map(String::as_str)
    }

    /// A short fingerprint of the files (SHA-256 of names and texts, 16 hex digits): the set's
    /// version, the same on every instance that runs it.
    pub fn version(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (name, text) in &self.sources {
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            h.update((text.len() as u64).to_be_bytes());
            h.update(text.as_bytes());
        }
        h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// How many policies the set holds.
    pub fn len(&self) -> usize {
        self.set.policies().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// [`from_sources`] and [`Policies::validate`] together.
pub fn from_sources_valid(files: Sources) -> Result<Policies, Vec<PolicyError>> {
    let p = from_sources(files)?;
    let errors = p.validate();
    if errors.is_empty() { Ok(p) } else { Err(errors) }
}

/// [`load`] and [`Policies::validate`] together.
pub fn load_valid(dir: &Path) -> Result<Policies, Vec<PolicyError>> {
    let p = load(dir)?;
    let errors = p.validate();
    if errors.is_empty() { Ok(p) } else { Err(errors) }
}

/// `user` as the policies see them: their roles and their unit's chain up to the root, read in
/// one transaction-less pair of queries.
pub fn load_person(
    conn: &mut crate::store::AnyConnection,
    user: &crate::domain::User,
) -> Result<Person, crate::store::DbError> {
    let roles = crate::store::roles::roles_of(conn, &user.id)?;
    let org = match &user.org_unit_id {
        Some(id) => crate::store::org_units::chain(conn, id)?,
        None => Vec::new(),
    };
    Ok(Person {
        id: user.id.clone(),
        username: user.username.as_str().to_owned(),
        active: user.status == crate::domain::UserStatus::Active,
        roles,
        org,
    })
}

#[cfg(test)]
mod tests;
