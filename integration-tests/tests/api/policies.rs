//! `pramaan policy validate` and `pramaan policy test` on the shipped policies, and on a
//! deliberately broken copy: the binary as an operator runs it.

use std::path::{Path, PathBuf};

use pramaan_integration_tests::cli::run_cli;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test]
async fn the_shipped_policies_validate_and_pass_every_case() {
    let dir = shipped();
    let dir = dir.to_str().unwrap();
    let validate = run_cli(&["policy", "validate", "--dir", dir], &[], "").await;
    assert!(validate.ok(), "{}", validate.stderr);
    assert!(validate.stdout.contains("are valid against the schema"));
    let test = run_cli(&["policy", "test", "--dir", dir], &[], "").await;
    assert!(test.ok(), "{}", test.stderr);
    assert!(test.stdout.contains(" cases passed, 0 failed"), "{}", test.stdout);
}

#[tokio::test]
async fn a_broken_policy_file_is_refused_with_its_file_line_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&shipped(), tmp.path());
    // A condition on an attribute no User has.
    let original = std::fs::read_to_string(tmp.path().join("helpdesk.cedar")).unwrap();
    let broken = original.replacen(
        "when { principal has org",
        "when { principal.clearance == 3 && principal has org",
        1,
    );
    assert_ne!(broken, original);
    std::fs::write(tmp.path().join("helpdesk.cedar"), &broken).unwrap();
    let line = broken.lines().position(|l| l.contains("clearance")).unwrap() + 1;
    let dir = tmp.path().to_str().unwrap();
    for cmd in ["validate", "test"] {
        let run = run_cli(&["policy", cmd, "--dir", dir], &[], "").await;
        assert!(!run.ok(), "{cmd} must fail");
        assert!(run.stderr.contains(&format!("helpdesk.cedar:{line}:")), "{cmd}: {}", run.stderr);
        assert!(run.stderr.contains("clearance"), "{cmd}: {}", run.stderr);
    }
    // A syntax error is named the same way.
    std::fs::write(tmp.path().join("helpdesk.cedar"), "@id(\"x\")\npermit (principal, action, resource\n")
        .unwrap();
    let run = run_cli(&["policy", "validate", "--dir", dir], &[], "").await;
    assert!(!run.ok());
    assert!(run.stderr.contains("helpdesk.cedar:"), "{}", run.stderr);
}
