//! The CLI, run in-process exactly as the binary runs it: good commands and bad input.

use pramaan_integration_tests::TestDatabase;
use pramaan_integration_tests::cli::{env_for, migrated_env, run_cli};

struct Fixture {
    db: TestDatabase,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// A database with no schema yet.
fn bare() -> Fixture {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(&db.url, dir.path());
    Fixture { db, dir, env }
}

/// A migrated database, as after `pramaan migrate`.
async fn fixture() -> Fixture {
    let f = bare();
    let env = migrated_env(&f.db.url, f.dir.path()).await;
    Fixture { env, ..f }
}

fn with(env: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut e: Vec<(String, String)> =
        env.iter().filter(|(k, _)| !extra.iter().any(|(x, _)| x == k)).cloned().collect();
    e.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    e
}

#[tokio::test]
async fn help_lists_every_command() {
    use clap::CommandFactory;
    let cli = pramaan_server::cli::Cli::command();
    let names = |c: &clap::Command| c.get_subcommands().map(|s| s.get_name().to_owned()).collect::<Vec<_>>();
    assert_eq!(
        names(&cli),
        ["serve", "migrate", "config", "user", "org", "audit", "keys", "client", "policy", "campaign"]
    );
    let sub = |n: &str| names(cli.find_subcommand(n).unwrap());
    assert_eq!(sub("config"), ["show"]);
    assert_eq!(sub("campaign"), ["start", "status", "cancel", "resume", "list"]);
    assert_eq!(sub("user"), ["create", "list", "show", "disable", "enable", "mfa-reset", "import"]);
    assert_eq!(sub("org"), ["create", "list"]);
    assert_eq!(sub("audit"), ["verify", "export"]);
    assert_eq!(sub("keys"), ["list", "rotate"]);
    assert_eq!(sub("policy"), ["validate", "test", "reload", "show"]);
    let run = run_cli(&["--help"], &[], "").await;
    assert!(run.ok());
    for c in names(&cli) {
        assert!(
            run.stdout.lines().any(|l| l.trim_start().starts_with(&c)),
            "{c} missing from:\n{}",
            run.stdout
        );
    }
}

#[tokio::test]
async fn migrate_applies_once_then_reports_up_to_date() {
    let f = bare();
    let first = run_cli(&["migrate"], &f.env, "").await;
    assert!(first.ok(), "{}", first.stderr);
    assert!(first.stdout.contains("applied"), "{}", first.stdout);
    let second = run_cli(&["migrate"], &f.env, "").await;
    assert_eq!(second.stdout.trim(), "database is up to date");
}

#[tokio::test]
async fn config_show_prints_effective_settings_without_secrets() {
    let f = fixture().await;
    let env = with(
        &f.env,
        &[
            ("PRAMAAN__CRYPTO__AUDIT_KEY", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="),
            ("PRAMAAN__SESSIONS__REDIS_URL", "redis://:pw123@127.0.0.1:6379"),
        ],
    );
    let run = run_cli(&["config", "show"], &env, "").await;
    assert!(run.ok(), "{}", run.stderr);
    assert!(
        run.stdout.contains("[http]") && run.stdout.contains("listen = \"127.0.0.1:8080\""),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("QUFBQUFB") && !run.stdout.contains("pw123"), "{}", run.stdout);
    assert!(run.stdout.contains("redis://:***@127.0.0.1:6379"), "{}", run.stdout);
}

#[tokio::test]
async fn a_malformed_config_file_fails_with_its_line() {
    let f = fixture().await;
    let file = f.dir.path().join("bad.toml");
    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:1\"\nworkers = [\n").unwrap();
    let run = run_cli(&["--config", file.to_str().unwrap(), "migrate"], &f.env, "").await;
    assert!(!run.ok());
    assert!(run.stderr.contains("bad.toml") && run.stderr.contains("not valid TOML"), "{}", run.stderr);
    assert_eq!(run.stderr.matches("error:").count(), 1, "one clear message: {}", run.stderr);
}

#[tokio::test]
async fn an_unknown_config_key_is_named() {
    let f = fixture().await;
    let file = f.dir.path().join("typo.toml");
    std::fs::write(&file, "[database]\nmax_conections = 3\n").unwrap();
    let run = run_cli(&["--config", file.to_str().unwrap(), "migrate"], &f.env, "").await;
    assert!(!run.ok());
    assert!(run.stderr.starts_with("error: database.max_conections: unknown field"), "{}", run.stderr);
}

#[tokio::test]
async fn a_bad_database_url_is_named_and_creates_nothing() {
    let f = bare();
    for (url, expect) in
        [("mysql://localhost/x", "database.url"), ("postgres://postgres@127.0.0.1:1/nope", "cannot connect")]
    {
        let env = with(&f.env, &[("PRAMAAN__DATABASE__URL", url)]);
        let run = run_cli(&["user", "list"], &env, "").await;
        assert!(!run.ok(), "{url}");
        assert!(run.stderr.contains(expect), "{url}: {}", run.stderr);
        assert!(run.stderr.contains("database.url"), "{url}: {}", run.stderr);
    }
    assert_eq!(std::fs::read_dir(f.dir.path()).unwrap().count(), 0, "nothing may be written");
}

#[tokio::test]
async fn serve_with_an_unreachable_redis_fails_at_start_and_writes_no_admin() {
    let f = bare();
    let env = with(
        &f.env,
        &[
            ("PRAMAAN__SESSIONS__BACKEND", "redis"),
            ("PRAMAAN__SESSIONS__REDIS_URL", "redis://:secretpw@127.0.0.1:1"),
            ("PRAMAAN__HTTP__LISTEN", "127.0.0.1:0"),
        ],
    );
    let started = std::time::Instant::now();
    let run = run_cli(&["serve"], &env, "").await;
    assert!(!run.ok());
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "must fail fast");
    assert!(run.stderr.contains("sessions.redis_url"), "{}", run.stderr);
    assert!(!run.stderr.contains("secretpw"), "the Redis password must not be printed: {}", run.stderr);
    assert!(!run.stdout.contains("one-time password"), "no admin may be created: {}", run.stdout);
    assert_eq!(std::fs::read_dir(f.dir.path()).unwrap().count(), 0, "nothing may be written");
    let schema = run_cli(&["user", "list"], &f.env, "").await;
    assert!(schema.stderr.contains("schema is not current"), "not even migrations ran: {}", schema.stderr);
}

#[tokio::test]
async fn users_are_created_shown_listed_disabled_and_enabled() {
    let f = fixture().await;
    let org =
        run_cli(&["org", "create", "national", "--name", "National", "--kind", "national"], &f.env, "").await;
    assert!(org.ok(), "{}", org.stderr);
    let run =
        run_cli(&["org", "create", "national/ka", "--name", "Karnataka", "--kind", "state"], &f.env, "")
            .await;
    assert!(run.ok(), "{}", run.stderr);
    let create = run_cli(
        &[
            "user",
            "create",
            "Asha",
            "--name",
            "Asha Kumari",
            "--phone",
            "+919812345678",
            "--org",
            "national/ka",
            "--role",
            "vaccinator",
            "--password-stdin",
            "--json",
        ],
        &f.env,
        "a long enough password\n",
    )
    .await;
    assert!(create.ok(), "{}", create.stderr);
    let json: serde_json::Value = serde_json::from_str(&create.stdout).unwrap();
    assert_eq!(json["username"], "asha");
    assert_eq!(json["org_unit"], "national/ka");
    assert_eq!(json["roles"], serde_json::json!(["vaccinator"]));
    assert_eq!(json["has_password"], true);
    assert_eq!(json["must_change_password"], false);
    assert!(!create.stdout.contains("a long enough password") && json.get("password_hash").is_none());

    let list = run_cli(&["user", "list", "--org", "national"], &f.env, "").await;
    assert!(list.stdout.contains("asha") && list.stdout.contains("national/ka"), "{}", list.stdout);
    let disabled = run_cli(&["user", "disable", "asha", "--json"], &f.env, "").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&disabled.stdout).unwrap()["status"], "disabled");
    let enabled = run_cli(&["user", "enable", "asha"], &f.env, "").await;
    assert!(enabled.stdout.contains("status:                active"), "{}", enabled.stdout);

    let export = run_cli(&["audit", "export"], &f.env, "").await;
    let actions: Vec<String> = export
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["org.create", "org.create", "user.create", "user.disable", "user.enable"]);
    assert!(export.stdout.contains("\"actor\":\"cli:tester\""));
    assert!(!export.stdout.contains("a long enough password"));
}

#[tokio::test]
async fn user_create_rejects_bad_input_and_writes_nothing() {
    let f = fixture().await;
    let cases: [(&[&str], &str, &str); 6] = [
        (&["user", "create", "x", "--name", "X"], "", "username"),
        (&["user", "create", "ravi", "--name", "Ravi", "--phone", "98123"], "", "--phone"),
        (
            &["user", "create", "ravi", "--name", "Ravi", "--org", "nowhere/at-all"],
            "",
            "org unit 'nowhere/at-all' does not exist",
        ),
        (
            &["user", "create", "ravi", "--name", "Ravi", "--role", "emperor"],
            "",
            "role 'emperor' does not exist",
        ),
        (&["user", "create", "ravi", "--name", "Ravi", "--password-stdin"], "short\n", "at least 12"),
        (&["user", "create", "ravi", "--name", "Ravi", "--email", "ravi@"], "", "--email"),
    ];
    for (args, stdin, expect) in cases {
        let run = run_cli(args, &f.env, stdin).await;
        assert!(!run.ok(), "{args:?}");
        assert!(run.stderr.contains(expect), "{args:?}: {}", run.stderr);
    }
    let ok = run_cli(&["user", "create", "ravi", "--name", "Ravi"], &f.env, "").await;
    assert!(ok.ok(), "{}", ok.stderr);
    let dup = run_cli(&["user", "create", "RAVI", "--name", "Ravi again"], &f.env, "").await;
    assert!(!dup.ok() && dup.stderr.contains("username 'ravi' is taken"), "{}", dup.stderr);
    let missing = run_cli(&["user", "show", "nobody"], &f.env, "").await;
    assert!(!missing.ok() && missing.stderr.contains("no user 'nobody'"), "{}", missing.stderr);
    let list = run_cli(&["user", "list", "--json"], &f.env, "").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&list.stdout).unwrap().as_array().unwrap().len(), 1);
    drop(f.db);
}

#[tokio::test]
async fn org_create_needs_an_existing_parent() {
    let f = fixture().await;
    let run = run_cli(&["org", "create", "national/ka", "--name", "Karnataka"], &f.env, "").await;
    assert!(!run.ok());
    assert!(run.stderr.contains("parent org unit 'national' does not exist"), "{}", run.stderr);
    let bad = run_cli(&["org", "create", "National/KA", "--name", "x"], &f.env, "").await;
    assert!(!bad.ok() && bad.stderr.contains("path"), "{}", bad.stderr);
    let list = run_cli(&["org", "list", "--json"], &f.env, "").await;
    assert_eq!(list.stdout.trim(), "[]");
}

#[tokio::test]
async fn commands_refuse_a_database_whose_schema_is_not_current() {
    let f = bare();
    let run = run_cli(&["user", "list"], &f.env, "").await;
    assert!(!run.ok());
    assert!(run.stderr.contains("run `pramaan migrate`"), "{}", run.stderr);
}

#[tokio::test]
async fn a_command_never_invents_keys_and_refuses_keys_the_database_does_not_know() {
    let f = fixture().await;
    assert!(run_cli(&["org", "list"], &f.env, "").await.ok());
    let no_keys: Vec<(String, String)> =
        f.env.iter().filter(|(k, _)| !k.starts_with("PRAMAAN__CRYPTO__")).cloned().collect();
    let run = run_cli(&["org", "list"], &no_keys, "").await;
    assert!(!run.ok());
    assert!(run.stderr.contains("crypto.key_encryption_key is not set"), "{}", run.stderr);
    assert!(!f.dir.path().join("dev-key-encryption.key").exists(), "a command must not generate keys");

    let other =
        with(&f.env, &[("PRAMAAN__CRYPTO__AUDIT_KEY", "b3RoZXItYXVkaXQta2V5LTMyLWJ5dGVzLWxvbmcuLi4=")]);
    let run = run_cli(&["user", "create", "ravi", "--name", "Ravi"], &other, "").await;
    assert!(!run.ok());
    assert!(
        run.stderr.contains("crypto.audit_key: this is not the key this database was set up with"),
        "{}",
        run.stderr
    );
    let list = run_cli(&["user", "list", "--json"], &f.env, "").await;
    assert_eq!(list.stdout.trim(), "[]", "nothing written with the wrong key; stderr: {}", list.stderr);
    let verify = run_cli(&["audit", "verify"], &f.env, "").await;
    assert!(verify.ok(), "{}", verify.stderr);
}
