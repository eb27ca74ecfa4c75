//! `pramaan keys …`: list and rotate the token signing keys. A running server sees a rotation
//! at its next key refresh (`tokens.key_refresh_secs`).

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{CliResult, Io, print_json};
use crate::crypto::SigningAlg;
use crate::oidc::keyring::{KeyInfo, KeyState, Rotation};
use crate::state::Core;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// List the published signing keys and where each is in its life.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a new key that is published now and signs after the pre-publication period; the
    /// current key signs until then and stays published until its tokens have expired.
    Rotate {
        /// Which algorithm's key to rotate.
        #[arg(long, value_enum, ignore_case = true, default_value = "all")]
        alg: AlgChoice,
        /// Seconds the new key is published before it signs (default: tokens.key_prepublish_secs).
        #[arg(long, value_name = "DURATION_SECS")]
        prepublish: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlgChoice {
    #[value(name = "ES256")]
    Es256,
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "EdDSA")]
    EdDsa,
    All,
}

impl AlgChoice {
    fn algs(self) -> Vec<SigningAlg> {
        match self {
            Self::Es256 => vec![SigningAlg::ES256],
            Self::Rs256 => vec![SigningAlg::RS256],
            Self::EdDsa => vec![SigningAlg::EdDSA],
            Self::All => SigningAlg::ALL.to_vec(),
        }
    }
}

#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    info: KeyInfo,
    state: KeyState,
    /// The key that signs for its algorithm now.
    in_use: bool,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub async fn run(core: &Core, actor: &str, cmd: KeysCommand, io: &mut Io) -> CliResult {
    match cmd {
        KeysCommand::List { json } => {
            let now = core.clock.now();
            let listed: Vec<Listed> = core
                .keyring
                .keys()
                .into_iter()
                .map(|info| {
                    let in_use = core.keyring.signing_key(info.alg).is_some_and(|k| k.kid() == info.kid);
                    Listed { state: info.state(now), in_use, info }
                })
                .collect();
            if json {
                return print_json(&mut io.stdout, &listed);
            }
            if listed.is_empty() {
                writeln!(io.stdout, "no signing keys yet: `pramaan serve` creates them at first start")?;
            }
            for k in listed {
                let mark = if k.in_use { "*" } else { " " };
                write!(
                    io.stdout,
                    "{mark} {:<22} {:<5} {:<9} signs from {}",
                    k.info.kid,
                    k.info.alg.as_str(),
                    k.state.as_str(),
                    time(k.info.signs_from)
                )?;
                if let Some(r) = k.info.retired_at {
                    write!(io.stdout, ", retired {}", time(r))?;
                }
                if let Some(u) = k.info.unpublish_at {
                    write!(io.stdout, ", unpublished {}", time(u))?;
                }
                writeln!(io.stdout)?;
            }
            Ok(())
        }
        KeysCommand::Rotate { alg, prepublish, json } => {
            let t = &core.settings.tokens;
            let prepublish = prepublish.unwrap_or(t.key_prepublish_secs);
            if prepublish < t.jwks_max_age_secs + t.key_refresh_secs {
                writeln!(
                    io.stderr,
                    "warning: --prepublish {prepublish} is shorter than tokens.jwks_max_age_secs + \
                     tokens.key_refresh_secs ({}); relying parties with a cached JWKS may reject \
                     tokens from the new key until their cache expires",
                    t.jwks_max_age_secs + t.key_refresh_secs
                )?;
            }
            let mut done: Vec<Rotation> = Vec::new();
            for alg in alg.algs() {
                let r = core
                    .keyring
                    .rotate(
                        alg,
                        Duration::from_secs(prepublish),
                        Duration::from_secs(t.max_token_lifetime_secs),
                        actor,
                    )
                    .await?;
                done.push(r);
            }
            if json {
                return print_json(&mut io.stdout, &done);
            }
            for r in done {
                writeln!(
                    io.stdout,
                    "{}: new key {} is published now and signs from {}",
                    r.created.alg,
                    r.created.kid,
                    time(r.created.signs_from)
                )?;
                for old in r.retired {
                    writeln!(
                        io.stdout,
                        "{}: key {} signs until {} and leaves the JWKS at {}",
                        old.alg,
                        old.kid,
                        old.retired_at.map(time).unwrap_or_default(),
                        old.unpublish_at.map(time).unwrap_or_default()
                    )?;
                }
            }
            Ok(())
        }
    }
}
