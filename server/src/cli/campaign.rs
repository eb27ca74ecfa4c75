//! `pramaan campaign …`: forced password-reset campaigns from the command line (the operator
//! on the server, acting as `cli:<user>`; the admin API asks the role policies instead).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use serde_json::json;

use super::{CliResult, Io, print_json};
use crate::campaigns::{self, AudienceSpec, LaunchRequest, Launched, Progress};
use crate::state::Core;
use crate::store::campaigns::CampaignKind;

#[derive(Debug, clap::Subcommand)]
pub enum CampaignCommand {
    /// Launch a campaign: every targeted account must set a new password, and every session and
    /// token it holds ends now; each gets a mail with a reset link.
    Start(StartArgs),
    /// Show a campaign's progress.
    Status {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop a campaign's further mail (what it revoked stays revoked).
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Go on with a launch that stopped half way (the process ended while it was launching).
    Resume {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// The latest campaigns, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Every active account.
    #[arg(long, conflicts_with_all = ["org", "role", "older_than", "users"])]
    all: bool,
    /// The accounts of an org-unit subtree, such as in/ka.
    #[arg(long, value_name = "PATH")]
    org: Option<String>,
    /// Holders of this role (repeat for several).
    #[arg(long, value_name = "ROLE")]
    role: Vec<String>,
    /// Accounts whose password is older than this many days.
    #[arg(long, value_name = "DAYS")]
    older_than: Option<u32>,
    /// A file of usernames, one per line.
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// Why; kept with the campaign and in the audit trail.
    #[arg(long)]
    reason: String,
    /// breach (the default) or onboarding (first passwords of accounts without one).
    #[arg(long, default_value = "breach", value_parser = ["breach", "onboarding"])]
    kind: String,
    /// Count and show a sample; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

pub async fn run(core: &Core, actor: &str, cmd: CampaignCommand, io: &mut Io) -> CliResult {
    match cmd {
        CampaignCommand::Start(args) => start(core, actor, args, io).await,
        CampaignCommand::Status { id, json } => {
            let i = id.clone();
            let p = core.db.run(move |c| campaigns::progress(c, &i)).await?;
            let p = p.ok_or_else(|| anyhow!("no campaign '{id}'"))?;
            show(io, &p, json)
        }
        CampaignCommand::Cancel { id, reason, json } => {
            let reason = reason.trim().to_owned();
            if reason.is_empty() || reason.chars().count() > 500 {
                bail!("--reason: 1 to 500 characters");
            }
            let p = campaigns::cancel(core, &id, actor, &reason).await?;
            show(io, &p, json)
        }
        CampaignCommand::Resume { id, json } => {
            let c = campaigns::resume(core, &id, actor).await.map_err(|e| match e {
                crate::store::DbError::NotFound => anyhow!("no campaign '{id}'"),
                other => anyhow!("{other}"),
            })?;
            let p = core.db.run(move |conn| campaigns::progress(conn, &c.id)).await?;
            show(io, &p.ok_or_else(|| anyhow!("the campaign vanished"))?, json)
        }
        CampaignCommand::List { json } => {
            let all = core.db.run(|c| crate::store::campaigns::list(c, 50)).await?;
            if json {
                let items: Vec<_> = all
                    .iter()
                    .map(|c| {
                        json!({ "id": c.id, "kind": c.kind, "state": c.state, "targeted": c.targeted,
                                "completed": c.completed, "launched_at": c.launched_at, "reason": c.reason })
                    })
                    .collect();
                return print_json(&mut io.stdout, &items);
            }
            for c in all {
                writeln!(
                    io.stdout,
                    "{}  {:<10} {:<9} {:>8} targeted {:>8} completed  {}  {}",
                    c.id,
                    c.kind.as_str(),
                    c.state,
                    c.targeted,
                    c.completed,
                    c.launched_at.format("%Y-%m-%d %H:%M"),
                    c.reason
                )?;
            }
            Ok(())
        }
    }
}

async fn start(core: &Core, actor: &str, a: StartArgs, io: &mut Io) -> CliResult {
    let usernames = match &a.users {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("--users: cannot read {}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    if a.users.is_some() && usernames.is_empty() {
        bail!("--users: the file lists no usernames");
    }
    let reason = a.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        bail!("--reason: 1 to 500 characters, on one line");
    }
    let spec =
        AudienceSpec { all: a.all, org: a.org, roles: a.role, older_than_days: a.older_than, usernames };
    let (audience, chain) = campaigns::audience(core, spec).await.map_err(|e| anyhow!("{e}"))?;
    let request = LaunchRequest {
        kind: CampaignKind::parse(&a.kind).unwrap_or(CampaignKind::Breach),
        audience,
        reason,
        dry_run: a.dry_run,
        launched_by: actor.to_owned(),
        org_unit_id: chain.as_ref().and_then(|c| c.first()).map(|u| u.id.to_string()),
        decision: json!("the command line (operator on the server)"),
    };
    match campaigns::launch(core, request).await? {
        Launched::DryRun { targeted, sample } => {
            if a.json {
                return print_json(
                    &mut io.stdout,
                    &json!({ "dry_run": true, "targeted": targeted, "sample": sample }),
                );
            }
            writeln!(io.stdout, "dry run: would target {targeted} account(s); nothing changed")?;
            for s in sample {
                writeln!(io.stdout, "  {s}")?;
            }
            Ok(())
        }
        Launched::Launched(c) => {
            let id = c.id.clone();
            let p = core.db.run(move |conn| campaigns::progress(conn, &id)).await?;
            let p = p.ok_or_else(|| anyhow!("the campaign vanished"))?;
            show(io, &p, a.json)
        }
    }
}

fn show(io: &mut Io, p: &Progress, json: bool) -> CliResult {
    if json {
        return print_json(&mut io.stdout, p);
    }
    writeln!(io.stdout, "campaign {} ({}, {})", p.id, p.kind.as_str(), p.state)?;
    writeln!(io.stdout, "  reason:        {}", p.reason)?;
    writeln!(io.stdout, "  launched:      {} by {}", p.launched_at.to_rfc3339(), p.launched_by)?;
    writeln!(io.stdout, "  targeted:      {}", p.targeted)?;
    writeln!(io.stdout, "  notified:      {}", p.notified)?;
    writeln!(io.stdout, "  mail queued:   {}", p.queued)?;
    writeln!(io.stdout, "  mail failed:   {}", p.mail_failed)?;
    writeln!(io.stdout, "  without email: {}", p.without_email)?;
    writeln!(io.stdout, "  completed:     {}", p.completed)?;
    writeln!(io.stdout, "  pending:       {}", p.pending)?;
    Ok(())
}
