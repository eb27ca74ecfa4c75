//! `pramaan org …`.

use std::io::Write;

use anyhow::anyhow;

use super::{CliResult, Io, print_json};
use crate::domain::{AuditEvent, OrgPath, Outcome};
use crate::state::Core;
use crate::store::{DbError, org_units, write_transaction};

#[derive(Debug, clap::Subcommand)]
pub enum OrgCommand {
    /// Create an organisation unit; its parent path must exist.
    Create {
        /// Path of slugs, such as national/karnataka/bengaluru-urban.
        path: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Label such as national, state, district, facility.
        #[arg(long, default_value = "unit")]
        kind: String,
        #[arg(long)]
        json: bool,
    },
    /// List organisation units by path.
    List {
        /// Only this unit and its subtree.
        #[arg(long, value_name = "PATH")]
        under: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(core: &Core, actor: &str, cmd: OrgCommand, io: &mut Io) -> CliResult {
    match cmd {
        OrgCommand::Create { path, name, kind, json } => {
            let path = OrgPath::parse(&path).map_err(|e| anyhow!("path: {e}"))?;
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 200 {
                return Err(anyhow!("--name must be 1 to 200 characters"));
            }
            let kind = crate::domain::RoleName::parse(&kind)
                .map_err(|_| anyhow!("--kind must be lowercase letters, digits and '_'"))?
                .to_string();
            let now = core.clock.now();
            let audit = core.audit.clone();
            let actor = actor.to_owned();
            let unit = core
                .db
                .run(move |c| {
                    write_transaction(c, |c| {
                        let unit = org_units::create(c, &path, &name, &kind, now)?;
                        audit.append_with(
                            c,
                            vec![
                                AuditEvent::new(actor, "org.create", Outcome::Success)
                                    .target(format!("org:{path}")),
                            ],
                        )?;
                        Ok(unit)
                    })
                })
                .await
                .map_err(|e| match e {
                    DbError::Conflict(m) => anyhow!(m),
                    other => other.into(),
                })?;
            if json {
                return print_json(&mut io.stdout, &unit);
            }
            writeln!(io.stdout, "created {} ({})", unit.path, unit.name)?;
            Ok(())
        }
        OrgCommand::List { under, json } => {
            let under =
                under.as_deref().map(OrgPath::parse).transpose().map_err(|e| anyhow!("--under: {e}"))?;
            let units = core.db.run(move |c| org_units::list(c, under.as_ref())).await?;
            if json {
                return print_json(&mut io.stdout, &units);
            }
            for u in units {
                writeln!(io.stdout, "{:<48} {:<10} {}", u.path, u.kind, u.name)?;
            }
            Ok(())
        }
    }
}
