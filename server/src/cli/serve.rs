//! `pramaan serve`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::ExposeSecret;

use super::{CliResult, Io};
use crate::clock::SystemClock;
use crate::config::{LogFormat, Settings};
use crate::crypto::KeySource;
use crate::http::Application;
use crate::state::{AppState, Core, InitMode, connect_sessions};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides http.listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data folder (overrides data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

pub async fn run(mut settings: Settings, args: ServeArgs, io: &mut Io) -> CliResult {
    if let Some(l) = args.listen {
        settings.http.listen = l;
    }
    if let Some(d) = args.data_dir {
        settings.data_dir = d;
    }
    settings.validate()?;
    // Held to the end of serve: dropping it flushes the last log lines.
    let _log_guard = crate::telemetry::init(&settings.log);
    // Connect the session store before writing anything: an unreachable Redis must stop the
    // start with nothing done (no keys generated, no admin whose password nobody saw).
    let sessions = connect_sessions(&settings.sessions).await?;
    let core = Core::init(settings, Arc::new(SystemClock), InitMode::Serve)?;
    warn_about_development_keys(&core, io)?;
    // Bind before creating the first admin, so a port in use fails before a password is made.
    let app = Application::build(AppState::new(core.clone(), sessions))?;
    if let Some(admin) = crate::bootstrap::ensure_admin(&core).await? {
        // Printed once to the console, never through the logger.
        writeln!(
            io.stdout,
            "\n  First run: created administrator '{}' with one-time password\n\n      {}\n\n  \
             It is shown only now and must be changed at first login.\n",
            admin.username,
            admin.one_time_password.expose_secret()
        )?;
    }
    writeln!(io.stdout, "Pramaan is listening on {}", app.url())?;
    io.stdout.flush()?;
    tracing::info!(url = app.url(), "listening");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

fn warn_about_development_keys(core: &Core, io: &mut Io) -> CliResult {
    for (what, source) in
        [("key-encryption key", &core.keys.kek_source), ("audit key", &core.keys.audit_source)]
    {
        if let KeySource::DevelopmentFile { path, created } = source {
            let verb = if *created { "generated" } else { "using" };
            tracing::warn!(key = what, path = %path.display(), "development key in use; production must supply its own");
            // A banner a person cannot miss; with JSON logs the line above is what shippers see.
            if core.settings.log.format == LogFormat::Human {
                writeln!(
                    io.stderr,
                    "WARNING: {verb} a DEVELOPMENT {what} in {}. Production must supply its own \
                     (crypto.key_encryption_key / crypto.audit_key, or PRAMAAN__CRYPTO__…_FILE): \
                     anyone who can read this file can open sealed secrets or forge the audit trail.",
                    path.display()
                )?;
            }
        }
    }
    Ok(())
}
