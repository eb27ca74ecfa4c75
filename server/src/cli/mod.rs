//! The `pramaan` command line. Every command is a function over [`Core`] with its input and
//! output passed in ([`Io`]), so the tests run commands in-process exactly as the binary does.

mod audit;
mod campaign;
pub mod client;
pub mod import;
mod keys;
mod org;
mod policy;
mod serve;
mod user;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::state::{Core, InitMode};

/// Pramaan: OpenID Connect provider and identity server.
#[derive(Debug, Parser)]
#[command(name = "pramaan", version, about, propagate_version = true)]
pub struct Cli {
    /// TOML settings file (see pramaan.example.toml); PRAMAAN__SECTION__KEY variables override it.
    #[arg(long, short, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (applies migrations; on first run creates keys and the first admin).
    Serve(serve::ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect the settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage user accounts.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage organisation units.
    #[command(subcommand)]
    Org(org::OrgCommand),
    /// Check and export the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Manage token signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Register and manage OAuth clients.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Check the role policies (Cedar) and run their test cases.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Forced password-reset campaigns: launch, watch, cancel.
    #[command(subcommand)]
    Campaign(campaign::CampaignCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings (secrets and URL passwords redacted).
    Show,
}

/// Where a command reads and writes. `process()` for the binary, `captured()` for tests.
pub struct Io {
    pub stdin: Box<dyn Read + Send>,
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
}

/// The output of a captured run.
#[derive(Clone, Default)]
pub struct Captured {
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Captured {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Io {
    pub fn process() -> Self {
        Self {
            stdin: Box::new(std::io::stdin()),
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
        }
    }

    pub fn captured(stdin: &[u8]) -> (Self, Captured) {
        let cap = Captured::default();
        let io = Self {
            stdin: Box::new(std::io::Cursor::new(stdin.to_vec())),
            stdout: Box::new(SharedBuf(cap.stdout.clone())),
            stderr: Box::new(SharedBuf(cap.stderr.clone())),
        };
        (io, cap)
    }
}

/// A command's failure: printed as `error: …` and turned into exit code 1.
pub type CliResult = anyhow::Result<()>;

/// Runs one command line. `env` is the process environment (only `PRAMAAN__…` entries and
/// `USER` are read).
pub async fn main(args: Vec<OsString>, env: Vec<(String, String)>, mut io: Io) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            let rendered = e.render().to_string();
            let out = if code == 0 { &mut io.stdout } else { &mut io.stderr };
            let _ = write!(out, "{rendered}");
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    match run(cli, env, &mut io).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io.stderr, "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, env: Vec<(String, String)>, io: &mut Io) -> CliResult {
    let actor = match env.iter().find(|(k, _)| k == "USER") {
        Some((_, u)) if !u.is_empty() => format!("cli:{u}"),
        _ => "cli".to_owned(),
    };
    let settings = crate::config::load(cli.config.as_deref(), env)?;
    let core = || Core::init(settings.clone(), Arc::new(SystemClock), InitMode::Command);
    match cli.command {
        Command::Serve(args) => serve::run(settings, args, io).await,
        Command::Migrate => {
            let url = settings.database_url();
            let db = crate::store::Database::connect(
                url.expose(),
                1,
                std::time::Duration::from_secs(settings.database.connect_timeout_secs),
            )
            .map_err(|e| anyhow::anyhow!("database.url ({}): {e}", url.redacted()))?;
            let applied = db.migrate()?;
            if applied.is_empty() {
                writeln!(io.stdout, "database is up to date")?;
            }
            for m in applied {
                writeln!(io.stdout, "applied {m}")?;
            }
            Ok(())
        }
        Command::Config(ConfigCommand::Show) => {
            write!(io.stdout, "{}", settings.to_redacted_toml())?;
            Ok(())
        }
        Command::User(cmd) => user::run(&core()?, &actor, cmd, io).await,
        Command::Org(cmd) => org::run(&core()?, &actor, cmd, io).await,
        Command::Audit(cmd) => audit::run(&core()?, &actor, cmd, io).await,
        Command::Keys(cmd) => keys::run(&core()?, &actor, cmd, io).await,
        Command::Client(cmd) => client::run(&core()?, &actor, cmd, io).await,
        Command::Campaign(cmd) => campaign::run(&core()?, &actor, cmd, io).await,
        Command::Policy(cmd) if cmd.needs_database() => policy::run_stored(&core()?, &actor, cmd, io).await,
        Command::Policy(cmd) => policy::run(cmd, io),
    }
}

/// Prints `value` as pretty JSON followed by a newline.
pub(crate) fn print_json(out: &mut dyn Write, value: &impl serde::Serialize) -> CliResult {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}
