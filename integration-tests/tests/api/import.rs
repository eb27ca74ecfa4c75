//! `pramaan user import`: all-or-nothing, every bad row named by line.

use std::fmt::Write as _;

use pramaan_integration_tests::TestDatabase;
use pramaan_integration_tests::cli::{migrated_env, run_cli};

struct Fixture {
    _db: TestDatabase,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

async fn fixture() -> Fixture {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let env = migrated_env(&db.url, dir.path()).await;
    for (path, kind) in [("national", "national"), ("national/ka", "state"), ("national/ka/blr", "district")]
    {
        let run = run_cli(&["org", "create", path, "--name", path, "--kind", kind], &env, "").await;
        assert!(run.ok(), "{}", run.stderr);
    }
    Fixture { _db: db, dir, env }
}

/// A CSV of `n` valid rows (line 1 is the header, row i is on line i + 2).
fn csv(n: usize) -> String {
    let mut s = String::from("username,display_name,phone,email,org_unit,roles\n");
    for i in 0..n {
        let org = if i % 2 == 0 { "national/ka/blr" } else { "national/ka" };
        writeln!(
            s,
            "staff{i:06},Staff Member {i},+9198{i:08},staff{i}@example.org,{org},vaccinator;verifier"
        )
        .unwrap();
    }
    s
}

async fn user_count(env: &[(String, String)]) -> usize {
    let run = run_cli(&["user", "list", "--json", "--limit", "10000"], env, "").await;
    assert!(run.ok(), "{}", run.stderr);
    serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap().as_array().unwrap().len()
}

async fn import(f: &Fixture, text: &str) -> pramaan_integration_tests::cli::CliRun {
    let file = f.dir.path().join("staff.csv");
    std::fs::write(&file, text).unwrap();
    run_cli(&["user", "import", file.to_str().unwrap()], &f.env, "").await
}

#[tokio::test]
async fn a_valid_file_imports_every_row_with_roles_and_no_usable_password() {
    let f = fixture().await;
    let run = import(&f, &csv(1500)).await;
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stdout.contains("imported 1500 users"), "{}", run.stdout);
    assert_eq!(user_count(&f.env).await, 1500);
    let show = run_cli(&["user", "show", "staff000002", "--json"], &f.env, "").await;
    let u: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(u["roles"], serde_json::json!(["vaccinator", "verifier"]));
    assert_eq!(u["org_unit"], "national/ka/blr");
    assert_eq!(u["has_password"], false);
    assert_eq!(u["must_change_password"], true);
    let audit = run_cli(&["audit", "export"], &f.env, "").await;
    let last: serde_json::Value = serde_json::from_str(audit.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["action"], "user.import");
    assert_eq!(last["details"]["imported"], 1500);
}

#[tokio::test]
async fn a_bad_phone_on_line_5001_of_10000_imports_nothing() {
    let f = fixture().await;
    let mut lines: Vec<String> = csv(10_000).lines().map(str::to_owned).collect();
    // Line 5001 is index 5000 (line 1 is the header).
    lines[5000] = "staff004999,Staff Member 4999,98-123,x@example.org,national/ka,vaccinator".into();
    let run = import(&f, &(lines.join("\n") + "\n")).await;
    assert!(!run.ok());
    assert!(
        run.stderr.contains("staff.csv:5001: '98-123' is not a phone number in E.164 form"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1 bad row(s)") && run.stderr.contains("nothing was imported"),
        "{}",
        run.stderr
    );
    assert_eq!(user_count(&f.env).await, 0);
}

#[tokio::test]
async fn an_unknown_org_unit_path_imports_nothing_and_names_the_path() {
    let f = fixture().await;
    let mut text = csv(20);
    text.push_str("late,Late Joiner,,,national/tn/chennai,vaccinator\n");
    let run = import(&f, &text).await;
    assert!(!run.ok());
    assert!(
        run.stderr.contains("staff.csv:22: org unit 'national/tn/chennai' does not exist"),
        "{}",
        run.stderr
    );
    assert_eq!(user_count(&f.env).await, 0);
}

#[tokio::test]
async fn every_bad_row_is_reported_not_just_the_first() {
    let f = fixture().await;
    let text = "username,display_name,phone,email,org_unit,roles\n\
                ok1,Fine,,,,\n\
                ok1,Duplicate,,,,\n\
                x,Too Short,,,,\n\
                ok2,,,,,\n\
                ok3,Bad Role,,,,emperor\n\
                ok4,Bad Email,,nope,,\n";
    let run = import(&f, text).await;
    assert!(!run.ok());
    for expect in [
        ":3: username 'ok1' appears again (first on line 2)",
        ":4: a username must be",
        ":5: a display name",
        ":6: role 'emperor' does not exist",
        ":7: 'nope' is not an email",
    ] {
        assert!(run.stderr.contains(expect), "{expect} missing from:\n{}", run.stderr);
    }
    assert!(run.stderr.contains("5 bad row(s)"), "{}", run.stderr);
    assert_eq!(user_count(&f.env).await, 0);
}

#[tokio::test]
async fn a_username_that_already_exists_imports_nothing() {
    let f = fixture().await;
    let pre = run_cli(&["user", "create", "staff000003", "--name", "Existing"], &f.env, "").await;
    assert!(pre.ok(), "{}", pre.stderr);
    let run = import(&f, &csv(10)).await;
    assert!(!run.ok());
    assert!(run.stderr.contains("staff.csv:5: username 'staff000003' is taken"), "{}", run.stderr);
    assert_eq!(user_count(&f.env).await, 1);
}

#[tokio::test]
async fn a_file_with_wrong_columns_is_refused() {
    let f = fixture().await;
    let run = import(&f, "user,name\nasha,Asha\n").await;
    assert!(!run.ok());
    assert!(run.stderr.contains("staff.csv:1: the header must name the columns"), "{}", run.stderr);
    let missing = run_cli(&["user", "import", "/nonexistent.csv"], &f.env, "").await;
    assert!(!missing.ok() && missing.stderr.contains("cannot read /nonexistent.csv"), "{}", missing.stderr);
}
