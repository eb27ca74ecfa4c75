//! Running `pramaan` commands in-process, exactly as the binary parses and runs them.

use std::process::ExitCode;

use pramaan_server::cli::{Io, main};

/// What a command printed and how it ended.
pub struct CliRun {
    pub code: ExitCode,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    pub fn ok(&self) -> bool {
        self.code == ExitCode::SUCCESS
    }
}

/// Runs `pramaan <args>` with `env` as the whole environment and `stdin` as input.
pub async fn run_cli(args: &[&str], env: &[(String, String)], stdin: &str) -> CliRun {
    let (io, captured) = Io::captured(stdin.as_bytes());
    let mut argv = vec!["pramaan".into()];
    argv.extend(args.iter().map(Into::into));
    let code = main(argv, env.to_vec(), io).await;
    CliRun { code, stdout: captured.stdout(), stderr: captured.stderr() }
}

/// Keys the tests configure, as production would (base64 of 32 bytes). Commands refuse to
/// invent keys, so the in-process server and every CLI run of a test share these.
pub const TEST_KEK: &str = "dGVzdC1rZXktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM=";
pub const TEST_AUDIT_KEY: &str = "dGVzdC1hdWRpdC1rZXktMzItYnl0ZXMtbG9uZy4uLi4=";

/// The environment that points a command at a test database and data folder.
pub fn env_for(db_url: &str, data_dir: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("PRAMAAN__DATABASE__URL".into(), db_url.into()),
        ("PRAMAAN__DATA_DIR".into(), data_dir.display().to_string()),
        ("PRAMAAN__CRYPTO__KEY_ENCRYPTION_KEY".into(), TEST_KEK.into()),
        ("PRAMAAN__CRYPTO__AUDIT_KEY".into(), TEST_AUDIT_KEY.into()),
        ("USER".into(), "tester".into()),
    ]
}

/// [`env_for`], after running `pramaan migrate` against that database.
pub async fn migrated_env(db_url: &str, data_dir: &std::path::Path) -> Vec<(String, String)> {
    let env = env_for(db_url, data_dir);
    let run = run_cli(&["migrate"], &env, "").await;
    assert!(run.ok(), "migrate failed: {}", run.stderr);
    env
}
