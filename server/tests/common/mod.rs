//! Running the real `pramaan` binary from a test: start it in a folder, wait for its
//! "listening" line, talk plain HTTP/1.1 to it, stop it with SIGTERM.
#![allow(dead_code, reason = "each test file uses the helpers it needs")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Server {
    pub child: Child,
    pub url: String,
    pub stdout: Vec<String>,
}

/// Starts `pramaan serve` in `dir` and waits for its "listening" line.
pub fn serve(dir: &Path) -> Server {
    serve_with(dir, &[("RUST_LOG", "warn")])
}

pub fn serve_with(dir: &Path, env: &[(&str, &str)]) -> Server {
    start(Command::new(env!("CARGO_BIN_EXE_pramaan")).args(["serve", "--listen", "127.0.0.1:0"]), dir, env)
}

/// [`serve_with`] under a soft limit of `open_files` open files (`ulimit -n`), as a small
/// container or a default systemd unit would run it.
pub fn serve_limited(dir: &Path, env: &[(&str, &str)], open_files: u32) -> Server {
    let script = format!("ulimit -n {open_files} && exec \"$0\" serve --listen 127.0.0.1:0");
    start(Command::new("sh").args(["-c", &script, env!("CARGO_BIN_EXE_pramaan")]), dir, env)
}

fn start(command: &mut Command, dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut child = command
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

pub fn get(url: &str, path: &str) -> (u16, String) {
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
pub fn stop(mut server: Server) -> String {
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
