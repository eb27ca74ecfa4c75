//! `pramaan audit …`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};

use super::{CliResult, Io, print_json};
use crate::domain::{AuditEvent, Outcome};
use crate::state::Core;
use crate::store::audit_events::AuditFilter;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and name the first event that does not verify (exit 1 if any).
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Write events as JSON lines, in order.
    Export {
        /// Only events at or after this time (RFC 3339, such as 2026-11-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

pub async fn run(core: &Core, actor: &str, cmd: AuditCommand, io: &mut Io) -> CliResult {
    match cmd {
        AuditCommand::Verify { json } => {
            let report = core.audit.verify().await?;
            if json {
                print_json(&mut io.stdout, &report)?;
            } else if report.broken.is_none() {
                writeln!(io.stdout, "audit chain intact: {} events verified", report.verified)?;
                writeln!(io.stdout, "head digest: {}", report.head_digest)?;
            }
            if let Some(b) = report.broken {
                bail!(
                    "audit chain broken at event {}: {} ({} events before it verified)",
                    b.seq,
                    b.reason,
                    report.verified
                );
            }
            Ok(())
        }
        AuditCommand::Export { since, output } => {
            let since: Option<DateTime<Utc>> = since
                .as_deref()
                .map(|s| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)))
                .transpose()
                .map_err(|e| anyhow!("--since: not an RFC 3339 time ({e})"))?;
            let mut file;
            let out: &mut dyn Write = match &output {
                Some(p) => {
                    // The trail names people and actions: owner-only, and never over another file.
                    let mut opts = std::fs::OpenOptions::new();
                    opts.write(true).create_new(true);
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::OpenOptionsExt;
                        opts.mode(0o600);
                    }
                    file = std::io::BufWriter::new(
                        opts.open(p).with_context(|| format!("cannot create {}", p.display()))?,
                    );
                    &mut file
                }
                None => &mut io.stdout,
            };
            let mut filter = AuditFilter { since, ..Default::default() };
            let mut count = 0u64;
            loop {
                let page = core.audit.page(filter.clone(), 5000).await?;
                let Some(last) = page.last() else { break };
                filter.after_seq = Some(last.seq);
                for r in &page {
                    serde_json::to_writer(&mut *out, r)?;
                    writeln!(out)?;
                }
                count += page.len() as u64;
            }
            out.flush()?;
            // Reading the trail is itself an audited action.
            core.audit
                .append(
                    AuditEvent::new(actor, "audit.export", Outcome::Success).details(
                        serde_json::json!({"events": count, "since": since.map(|t| t.to_rfc3339())}),
                    ),
                )
                .await?;
            if output.is_some() {
                print_json(&mut io.stderr, &serde_json::json!({"exported": count}))?;
            }
            Ok(())
        }
    }
}
