//! `pramaan policy validate|test`: check the role policies in `policies/` against their schema,
//! and run their test cases. Neither needs the database.

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
}

pub fn run(cmd: PolicyCommand, io: &mut Io) -> CliResult {
    let (dir, run_cases) = match cmd {
        PolicyCommand::Validate { dir } => (dir, false),
        PolicyCommand::Test { dir } => (dir, true),
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
