//! Audit events: what happened, who did it, to whom, and how it ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Invalid;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "success" => Ok(Self::Success),
            "failure" => Ok(Self::Failure),
            "denied" => Ok(Self::Denied),
            other => Err(Invalid::new(format!("unknown outcome '{other}'"))),
        }
    }
}

/// An event a feature wants recorded. `details` must never hold a secret, password, code or
/// token: only identifiers and counts.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// `user:<username>`, `client:<id>`, `cli`, `system`.
    pub actor: String,
    /// Dotted verb such as `user.create`, `login.password`, `audit.export`.
    pub action: String,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
}

impl AuditEvent {
    pub fn new(actor: impl Into<String>, action: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            target: None,
            outcome,
            client_ip: None,
            user_agent: None,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// An event as stored in the chain. `outcome` and `details` are kept as the exact text stored,
/// because that text is what the digest covers: a re-parsed value could hide an edit (or turn
/// an honest float into a false alarm).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// JSON text; exported as JSON when it parses, as a string when it does not.
    #[serde(serialize_with = "json_text")]
    pub details: String,
    /// Hex HMAC-SHA256 of the previous record (64 zeros for the first).
    pub prev_digest: String,
    pub digest: String,
}

impl AuditRecord {
    pub fn outcome(&self) -> Result<Outcome, Invalid> {
        Outcome::parse(&self.outcome)
    }

    pub fn details_json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.details).ok()
    }
}

fn json_text<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    match serde_json::value::RawValue::from_string(text.to_owned()) {
        Ok(raw) => raw.serialize(s),
        Err(_) => s.serialize_str(text),
    }
}
