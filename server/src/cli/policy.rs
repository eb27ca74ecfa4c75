//! `pramaan policy validate|test`: check the role policies in `policies/` against their schema,
//! and run their test cases (neither needs the database); `policy reload`: load a set into the
//! database for every running instance; `policy show`: what runs.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;

use super::{CliResult, Io};

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Check every policy against the schema; errors name the file and line.
    Validate {
        /// The policy folder.
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
    },
    /// Validate, then run the cases in `<dir>/tests/*.json`.
    Test {
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
    },
    /// Check a set and load it into the database: every running instance switches to it within
    /// a second. A set that does not check changes nothing.
    Reload {
        /// The policy folder to load.
        #[arg(long, conflicts_with = "built_in", required_unless_present = "built_in")]
        dir: Option<PathBuf>,
        /// Load the set compiled into this binary instead.
        #[arg(long)]
        built_in: bool,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// The set in force: its version and where it came from.
    Show {
        #[arg(long)]
        json: bool,
    },
}

impl PolicyCommand {
    /// Whether the command needs the database.
    pub fn needs_database(&self) -> bool {
        matches!(self, Self::Reload { .. } | Self::Show { .. })
    }
}

/// `policy reload` and `policy show`.
pub async fn run_stored(
    core: &crate::state::Core,
    actor: &str,
    cmd: PolicyCommand,
    io: &mut Io,
) -> CliResult {
    use crate::policy::reload::{check_candidate, store};
    match cmd {
        PolicyCommand::Reload { dir, built_in, reason, json } => {
            let reason = reason.trim().to_owned();
            if reason.is_empty() || reason.chars().count() > 500 {
                bail!("--reason: say why, in at most 500 characters");
            }
            let (files, label) = match (dir, built_in) {
                (Some(d), _) => (
                    crate::policy::read_dir(&d)
                        .map_err(|errors| report(io, &d.display().to_string(), &errors))?,
                    d.display().to_string(),
                ),
                (None, _) => (crate::policy::builtin_sources(), "the built-in set".to_owned()),
            };
            let policies = check_candidate(files).map_err(|errors| report(io, &label, &errors))?;
            let (version, count) = (policies.version(), policies.len());
            let seq = store(core, policies, actor, &reason).await?;
            if json {
                return super::print_json(
                    &mut io.stdout,
                    &serde_json::json!({ "seq": seq, "version": version, "policies": count }),
                );
            }
            writeln!(
                io.stdout,
                "Loaded {count} policies from {label} as set {seq} (version {version}); every instance runs it within a second."
            )?;
            Ok(())
        }
        PolicyCommand::Show { json } => {
            let set = core.policy.current();
            if json {
                return super::print_json(
                    &mut io.stdout,
                    &serde_json::json!({ "version": set.version, "policies": set.policies.len(), "origin": set.origin }),
                );
            }
            writeln!(
                io.stdout,
                "version {} ({} policies), from {:?}",
                set.version,
                set.policies.len(),
                set.origin
            )?;
            Ok(())
        }
        other => run(other, io),
    }
}

fn report(io: &mut Io, label: &str, errors: &[crate::policy::PolicyError]) -> anyhow::Error {
    for e in errors {
        let _ = writeln!(io.stderr, "{label}: {e}");
    }
    anyhow::anyhow!("{} problem(s) in the policies of {label}; nothing was loaded", errors.len())
}

pub fn run(cmd: PolicyCommand, io: &mut Io) -> CliResult {
    let (dir, run_cases) = match cmd {
        PolicyCommand::Validate { dir } => (dir, false),
        PolicyCommand::Test { dir } => (dir, true),
        PolicyCommand::Reload { .. } | PolicyCommand::Show { .. } => {
            bail!("this command needs the database")
        }
    };
    let policies = match crate::policy::load_valid(&dir) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                writeln!(io.stderr, "{}: {e}", dir.display())?;
            }
            bail!("{} problem(s) in the policies of {}", errors.len(), dir.display());
        }
    };
    writeln!(io.stdout, "{} policies in {} are valid against the schema", policies.len(), dir.display())?;
    if !run_cases {
        return Ok(());
    }
    let report = match crate::policy::run_tests(&policies) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                writeln!(io.stderr, "{}: {e}", dir.display())?;
            }
            bail!("the test cases could not be read");
        }
    };
    for f in &report.failures {
        writeln!(io.stderr, "FAILED {f}")?;
    }
    writeln!(io.stdout, "{} cases passed, {} failed", report.passed, report.failures.len())?;
    if !report.failures.is_empty() {
        bail!("{} policy case(s) failed", report.failures.len());
    }
    Ok(())
}
