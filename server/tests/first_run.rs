//! The README's run command on a fresh machine, as a newcomer meets it: the real binary in an
//! empty folder with no config and no services.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::zombie_processes,
    reason = "test helpers: a broken assumption is a failed test; children are reaped in stop()"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Server {
    child: Child,
    url: String,
    stdout: Vec<String>,
}

/// Starts `pramaan serve` in `dir` and waits for its "listening" line.
fn serve(dir: &Path) -> Server {
    serve_with(dir, &[("RUST_LOG", "warn")])
}

fn serve_with(dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pramaan"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdout = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let url = line.strip_prefix("Pramaan is listening on ").map(str::to_owned);
                stdout.push(line);
                if let Some(url) = url {
                    return Server { child, url, stdout };
                }
            }
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                panic!("no 'listening' line; stdout: {stdout:?}; stderr: {err}");
            }
        }
    }
}

fn get(url: &str, path: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// SIGTERM, and the server must stop on its own, successfully.
fn stop(mut server: Server) -> String {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    for _ in 0..100 {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "SIGTERM must end the server cleanly, got {status}");
            let mut err = String::new();
            server.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return err;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    server.child.kill().unwrap();
    panic!("the server did not stop within 10 s of SIGTERM");
}

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
