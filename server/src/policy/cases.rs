//! `policies/tests/*.json`: decisions the policy set must make, each with the reason it
//! should be so. A file names the entities it runs against (a file under `tests/`) and lists
//! its cases:
//!
//! ```json
//! { "entities": "entities/staff.json",
//!   "cases": [ { "name": "…", "principal": "Pramaan::User::\"asha\"", "action": "user.disable",
//!                "resource": "Pramaan::User::\"ravi\"", "context": { … },
//!                "expect": "allow", "by": ["district-admin-accounts"], "reason": "…" } ] }
//! ```
//!
//! `by` names the policies that decide the case, by `@id`: Cedar's determining policies (the
//! permits that allow, or the forbids that deny; none for a denial that no policy permits).
//! They must be exactly these, so a case notices a rule that stops applying even when another
//! rule happens to give the same answer (a role's own rule and the one it inherits).

use std::path::Path;
use std::str::FromStr;

use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, Request};
use serde::Deserialize;

use super::{Policies, PolicyError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    entities: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    principal: String,
    /// An action of the `Pramaan` namespace, by name.
    action: String,
    resource: String,
    #[serde(default)]
    context: serde_json::Value,
    expect: Expect,
    /// The `@id`s of the policies that decide it, in any order; empty for a denial by default.
    by: Vec<String>,
    /// Why the decision must be so (shown when it is not).
    reason: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
}

/// What a test run found.
#[derive(Debug, Default)]
pub struct TestReport {
    pub passed: usize,
    /// One line per case that decided otherwise, or could not be run.
    pub failures: Vec<String>,
}

/// Runs every case file of `<policies>/tests` against the policies.
pub fn run_tests(p: &Policies) -> Result<TestReport, Vec<PolicyError>> {
    let dir = p.dir.join("tests");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| vec![PolicyError::new("tests", 0, format!("cannot read: {e}"))])?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let mut report = TestReport::default();
    let mut errors = Vec::new();
    for name in names {
        if let Err(e) = run_file(p, &dir, &name, &mut report) {
            errors.push(e);
        }
    }
    if errors.is_empty() { Ok(report) } else { Err(errors) }
}

fn run_file(p: &Policies, dir: &Path, name: &str, report: &mut TestReport) -> Result<(), PolicyError> {
    let shown = format!("tests/{name}");
    let text =
        std::fs::read_to_string(dir.join(name)).map_err(|e| PolicyError::new(&shown, 0, e.to_string()))?;
    let file: CaseFile = serde_json::from_str(&text)
        .map_err(|e| PolicyError::new(&shown, e.line(), format!("not a test case file: {e}")))?;
    let entities_text = std::fs::read_to_string(dir.join(&file.entities))
        .map_err(|e| PolicyError::new(&shown, 0, format!("entities {}: {e}", file.entities)))?;
    let entities_json: serde_json::Value = serde_json::from_str(&entities_text)
        .map_err(|e| PolicyError::new(&format!("tests/{}", file.entities), e.line(), e.to_string()))?;
    let entities = Entities::from_json_value(with_role_hierarchy(p, entities_json), Some(&p.schema))
        .map_err(|e| PolicyError::new(&format!("tests/{}", file.entities), 0, e.to_string()))?;
    let authorizer = Authorizer::new();
    for case in file.cases {
        match decide(p, &authorizer, &entities, &case) {
            Ok((decision, why)) => {
                let got = if decision == Decision::Allow { Expect::Allow } else { Expect::Deny };
                let mut by = case.by.clone();
                by.sort();
                if got == case.expect && by == why {
                    report.passed += 1;
                } else {
                    let named = |ids: &[String]| {
                        if ids.is_empty() { "no policy".to_owned() } else { ids.join(", ") }
                    };
                    report.failures.push(format!(
                        "{shown}: \"{}\": expected {:?} by {}, got {got:?} by {}; expected because: {}",
                        case.name,
                        case.expect,
                        named(&by),
                        named(&why),
                        case.reason
                    ));
                }
            }
            Err(e) => report.failures.push(format!("{shown}: \"{}\": cannot run: {e}", case.name)),
        }
    }
    Ok(())
}

/// The test entities with the set's role hierarchy (`roles.json`): each role entity's parents
/// are the roles it includes, as the server gives them to the people holding it.
fn with_role_hierarchy(p: &Policies, mut entities: serde_json::Value) -> serde_json::Value {
    let role = |id: &str| serde_json::json!({ "type": "Pramaan::Role", "id": id });
    let Some(list) = entities.as_array_mut() else { return entities };
    let mut present = std::collections::BTreeSet::new();
    for e in list.iter_mut() {
        if e["uid"]["type"] == "Pramaan::Role"
            && let Some(id) = e["uid"]["id"].as_str().map(str::to_owned)
        {
            let parents: Vec<_> =
                p.role_hierarchy().get(&id).into_iter().flatten().map(|r| role(r)).collect();
            e["parents"] = serde_json::Value::Array(parents);
            present.insert(id);
        }
    }
    for (id, includes) in p.role_hierarchy() {
        for r in std::iter::once(id).chain(includes) {
            if present.insert(r.clone()) {
                let parents: Vec<_> =
                    p.role_hierarchy().get(r).into_iter().flatten().map(|x| role(x)).collect();
                list.push(serde_json::json!({ "uid": role(r), "attrs": {}, "parents": parents }));
            }
        }
    }
    entities
}

/// The decision for `case`, and the policies behind it (sorted; none when no policy applies).
fn decide(
    p: &Policies,
    authorizer: &Authorizer,
    entities: &Entities,
    case: &Case,
) -> Result<(Decision, Vec<String>), String> {
    let uid = |s: &str| EntityUid::from_str(s).map_err(|e| format!("{s}: {e}"));
    let principal = uid(&case.principal)?;
    let action = uid(&format!("Pramaan::Action::\"{}\"", case.action))?;
    let resource = uid(&case.resource)?;
    let context = if case.context.is_null() {
        Context::empty()
    } else {
        Context::from_json_value(case.context.clone(), Some((&p.schema, &action)))
            .map_err(|e| e.to_string())?
    };
    let request =
        Request::new(principal, action, resource, context, Some(&p.schema)).map_err(|e| e.to_string())?;
    let response = authorizer.is_authorized(&request, &p.set, entities);
    if let Some(e) = response.diagnostics().errors().next() {
        return Err(format!("a policy failed to evaluate: {e}"));
    }
    let mut why: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
    why.sort();
    Ok((response.decision(), why))
}
