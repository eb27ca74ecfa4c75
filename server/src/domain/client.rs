//! OAuth clients (partner apps, the registry, Pramaan's own console).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ClientId, Invalid};

/// Who runs a client. The kill switch suspends by category; `internal` clients are excluded
/// from "suspend all" unless named, so operators cannot lock themselves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCategory {
    Government,
    Private,
    Internal,
}

impl ClientCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Government => "government",
            Self::Private => "private",
            Self::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "government" => Ok(Self::Government),
            "private" => Ok(Self::Private),
            "internal" => Ok(Self::Internal),
            other => Err(Invalid::new(format!(
                "unknown client category '{other}' (government, private or internal)"
            ))),
        }
    }
}

/// Whether a client may obtain tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    Active,
    Suspended,
}

impl ClientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            other => Err(Invalid::new(format!("unknown client status '{other}'"))),
        }
    }
}

/// An OAuth client as stored. The OIDC issue adds grant types, redirect URIs, secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub category: ClientCategory,
    pub status: ClientStatus,
    /// Tokens issued before this instant are dead; set on suspension so that resuming never
    /// revives old tokens.
    pub tokens_valid_after: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
