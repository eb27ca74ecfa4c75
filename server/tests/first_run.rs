//! The README's run command on a fresh machine, as a newcomer meets it: the real binary in an
//! empty folder with no config and no services.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::zombie_processes,
    reason = "test helpers: a broken assumption is a failed test; children are reaped in stop()"
)]

mod common;

use std::process::Command;

use common::{get, serve, serve_with, stop};

#[test]
fn a_fresh_folder_gets_a_working_server_and_the_second_run_reuses_everything() {
    let dir = tempfile::tempdir().unwrap();

    let first = serve(dir.path());
    assert!(first.url.starts_with("http://127.0.0.1:"), "{}", first.url);
    assert_eq!(get(&first.url, "/healthz"), (200, r#"{"status":"ok"}"#.to_owned()));
    let (status, body) = get(&first.url, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""database":"ok""#) && body.contains(r#""sessions":"ok""#), "{body}");
    let printed = first.stdout.join("\n");
    assert!(printed.contains("created administrator 'admin' with one-time password"), "{printed}");
    let password_line = first.stdout.iter().position(|l| l.contains("one-time password")).unwrap() + 2;
    let password = first.stdout[password_line].trim().to_owned();
    assert_eq!(password.len(), 23, "four groups of five: {password}");
    let first_err = stop(first);
    assert!(first_err.contains("WARNING: generated a DEVELOPMENT key-encryption key"), "{first_err}");
    assert!(first_err.contains("WARNING: generated a DEVELOPMENT audit key"), "{first_err}");
    assert!(!first_err.contains(&password), "the password must never reach the log");

    let data = dir.path().join("data");
    for f in ["pramaan.db", "dev-key-encryption.key", "dev-audit.key"] {
        assert!(data.join(f).exists(), "{f} missing");
    }
    let kek = std::fs::read(data.join("dev-key-encryption.key")).unwrap();

    let second = serve(dir.path());
    assert_eq!(get(&second.url, "/readyz").0, 200);
    let printed = second.stdout.join("\n");
    assert!(!printed.contains("one-time password") && !printed.contains(&password), "{printed}");
    let second_err = stop(second);
    assert!(second_err.contains("WARNING: using a DEVELOPMENT key-encryption key"), "{second_err}");
    assert_eq!(std::fs::read(data.join("dev-key-encryption.key")).unwrap(), kek, "keys are reused");
}

#[test]
fn a_malformed_config_file_stops_the_binary_with_one_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pramaan.toml"), "[http\nlisten = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pramaan"))
        .args(["--config", "pramaan.toml", "serve"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: pramaan.toml: not valid TOML"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing may be created on bad config");
}

#[test]
fn json_logs_are_one_object_per_line_and_never_carry_query_strings() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        serve_with(dir.path(), &[("PRAMAAN__LOG__FORMAT", "json"), ("PRAMAAN__LOG__FILTER", "info")]);
    assert_eq!(get(&server.url, "/healthz?access_token=SECRET-IN-QUERY").0, 200);
    assert_eq!(get(&server.url, "/missing").0, 404);
    let err = stop(server);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!err.contains("SECRET-IN-QUERY"), "query strings must not be logged: {err}");
    let completed: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["message"] == "request completed").collect();
    assert_eq!(completed.len(), 2, "one line per request: {err}");
    assert_eq!(completed[0]["status"], 200);
    assert_eq!(completed[1]["status"], 404);
    assert!(err.contains("\"path\":\"/healthz\""), "{err}");
    assert!(lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("development key"))));
}
