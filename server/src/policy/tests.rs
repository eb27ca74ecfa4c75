use super::*;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// A copy of the shipped policies in a temporary folder, with `file` replaced by `text`.
fn with_file(file: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&shipped(), dir.path());
    std::fs::write(dir.path().join(file), text).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn the_shipped_policies_validate_and_pass_their_cases() {
    let p = load_valid(&shipped()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(p.len() >= 20, "{} policies", p.len());
    let report = run_tests(&p).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.passed >= 40, "{} cases", report.passed);
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let text = "// a comment\n@id(\"broken\")\npermit (principal, action, resource)\nwhen { principal.active && };\n";
    let errors = load(with_file("broken.cedar", text).path()).unwrap_err();
    let e = errors.iter().find(|e| e.file == "broken.cedar").unwrap_or_else(|| panic!("{errors:#?}"));
    assert_eq!(e.line, 4, "{e}");
    assert!(!e.reason.is_empty());
}

#[test]
fn a_policy_the_schema_does_not_allow_is_named_with_its_file_and_line() {
    let text = "@id(\"ok\")\npermit (principal, action == Pramaan::Action::\"scope.user\", resource);\n\n\
                @id(\"typo\")\npermit (principal, action == Pramaan::Action::\"user.update\", resource)\n\
                when { principal.rank == \"high\" };\n";
    let p = load(with_file("typo.cedar", text).path()).unwrap();
    let errors = p.validate();
    let e = errors.iter().find(|e| e.file == "typo.cedar").unwrap_or_else(|| panic!("{errors:#?}"));
    assert_eq!(e.line, 6, "{e}");
    assert!(e.reason.contains("typo") && e.reason.contains("rank"), "{e}");
}

#[test]
fn every_policy_needs_a_unique_id() {
    let text = "@id(\"oidc-scopes\")\npermit (principal, action, resource);\n\npermit (principal, action, resource);\n";
    let errors = load(with_file("dupes.cedar", text).path()).unwrap_err();
    let lines: Vec<(usize, &str)> =
        errors.iter().filter(|e| e.file == "dupes.cedar").map(|e| (e.line, e.reason.as_str())).collect();
    assert!(lines.iter().any(|(l, r)| *l == 2 && r.contains("common.cedar")), "{lines:?}");
    assert!(lines.iter().any(|(l, r)| *l == 4 && r.contains("@id")), "{lines:?}");
}

#[test]
fn a_case_that_decides_otherwise_is_reported_with_its_reason() {
    let cases = r#"{ "entities": "entities/staff.json", "cases": [
        { "name": "wrongly expected", "principal": "Pramaan::User::\"vacc-blr\"", "action": "scope.user",
          "resource": "Pramaan::Scope::\"registry.write\"",
          "context": { "client": { "__entity": { "type": "Pramaan::Client", "id": "field-app" } } },
          "expect": "allow", "reason": "a deliberately wrong expectation" } ] }"#;
    let dir = with_file("tests/zz-wrong.json", cases);
    let p = load_valid(dir.path()).unwrap();
    let report = run_tests(&p).unwrap();
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    assert!(report.failures[0].contains("wrongly expected") && report.failures[0].contains("deliberately"));
}
