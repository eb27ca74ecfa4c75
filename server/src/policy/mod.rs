//! Role policies: the Cedar policy set in `policies/` (one `.cedar` file per role, plus the
//! rules for everyone), checked against `schema.cedarschema`, and its test cases in
//! `policies/tests/`. Every error names its file and line.

mod cases;

pub use cases::{TestReport, run_tests};

use std::collections::BTreeMap;
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
#[derive(Debug)]
pub struct Policies {
    pub dir: PathBuf,
    pub schema: Schema,
    pub set: PolicySet,
    /// File name → its text.
    sources: BTreeMap<String, String>,
    /// Policy id → the file it is in.
    origin: BTreeMap<PolicyId, String>,
}

const SCHEMA_FILE: &str = "schema.cedarschema";

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

/// Loads the schema and every `*.cedar` file of `dir` (in name order). Each policy's id is its
/// `@id` annotation, which must be unique across the files.
pub fn load(dir: &Path) -> Result<Policies, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let schema_src = read(dir, SCHEMA_FILE).map_err(|e| vec![e])?;
    let schema = match Schema::from_cedarschema_str(&schema_src) {
        Ok((s, _warnings)) => Some(s),
        Err(e) => {
            errors.push(PolicyError::new(SCHEMA_FILE, line_of_diagnostic(&schema_src, &e), reason_of(&e)));
            None
        }
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| vec![PolicyError::new(&dir.display().to_string(), 0, format!("cannot read: {e}"))])?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cedar"))
        .collect();
    names.sort();
    if names.is_empty() {
        errors.push(PolicyError::new(&dir.display().to_string(), 0, "no .cedar policy files"));
    }
    let mut set = PolicySet::new();
    let mut sources = BTreeMap::new();
    let mut origin = BTreeMap::new();
    for name in names {
        let src = match read(dir, &name) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match src.parse::<PolicySet>() {
            Err(parse_errors) => {
                for e in parse_errors.iter() {
                    errors.push(PolicyError::new(&name, line_of_diagnostic(&src, e), reason_of(e)));
                }
            }
            Ok(parsed) => {
                for p in parsed.policies() {
                    // Parsing names them policy0, policy1, … in file order.
                    let n =
                        p.id().to_string().strip_prefix("policy").and_then(|n| n.parse().ok()).unwrap_or(0);
                    let line = nth_policy_line(&src, n);
                    let Some(id) = p.annotation("id") else {
                        errors.push(PolicyError::new(
                            &name,
                            line,
                            "every policy needs an @id(\"…\") annotation",
                        ));
                        continue;
                    };
                    let id = PolicyId::new(id);
                    if let Some(other) = origin.get(&id) {
                        errors.push(PolicyError::new(
                            &name,
                            line,
                            format!("@id(\"{id}\") is also used in {other}"),
                        ));
                        continue;
                    }
                    if let Err(e) = set.add(p.new_id(id.clone())) {
                        errors.push(PolicyError::new(&name, line, e.to_string()));
                        continue;
                    }
                    origin.insert(id, name.clone());
                }
            }
        }
        sources.insert(name, src);
    }
    match (errors.is_empty(), schema) {
        (true, Some(schema)) => Ok(Policies { dir: dir.to_owned(), schema, set, sources, origin }),
        _ => Err(errors),
    }
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

    /// How many policies the set holds.
    pub fn len(&self) -> usize {
        self.set.policies().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// [`load`] and [`Policies::validate`] together.
pub fn load_valid(dir: &Path) -> Result<Policies, Vec<PolicyError>> {
    let p = load(dir)?;
    let errors = p.validate();
    if errors.is_empty() { Ok(p) } else { Err(errors) }
}

#[cfg(test)]
mod tests;
