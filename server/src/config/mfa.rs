//! Settings of the second step of a login: which roles need which factor (`[mfa]`) and how
//! SMS codes are sent and limited (`[sms]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

/// `[mfa]`: how the second step of a login behaves. Who needs a second factor, and which kinds
/// they may use, is the role policies' decision (`factor.require`, `factor.use`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaSettings {
    /// The name authenticator apps show beside the account.
    pub issuer_name: String,
    /// Wrong codes in one login before it must start again from the password.
    pub max_tries: u32,
}

impl Default for MfaSettings {
    fn default() -> Self {
        Self { issuer_name: "Pramaan".into(), max_tries: 5 }
    }
}

impl MfaSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.issuer_name.trim().is_empty() || self.issuer_name.len() > 64 {
            return Err(ConfigError::new("mfa.issuer_name", "must be 1 to 64 characters"));
        }
        if !(1..=20).contains(&self.max_tries) {
            return Err(ConfigError::new("mfa.max_tries", "must be between 1 and 20"));
        }
        Ok(())
    }
}

/// Which SMS gateway sends codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsGatewayKind {
    /// Appends each message to `<data_dir>/sms.log` (the embedded default; development).
    Log,
    /// A configured HTTP request (`[sms.http]`).
    Http,
}

/// `[sms]`: one-time codes by text message, and the limits that keep SMS pumping expensive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsSettings {
    pub gateway: SmsGatewayKind,
    /// How long a sent code may be used.
    pub code_ttl_secs: u64,
    /// Wait before another code may be sent in the same login.
    pub resend_cooldown_secs: u64,
    /// Codes per account per clock hour.
    pub per_user_hourly: u64,
    /// Codes per phone number per clock hour (several accounts may share a phone).
    pub per_phone_hourly: u64,
    /// Codes per client address per clock hour.
    pub per_ip_hourly: u64,
    pub http: HttpGatewaySettings,
}

impl Default for SmsSettings {
    fn default() -> Self {
        Self {
            gateway: SmsGatewayKind::Log,
            code_ttl_secs: 300,
            resend_cooldown_secs: 30,
            per_user_hourly: 5,
            per_phone_hourly: 5,
            per_ip_hourly: 50,
            http: HttpGatewaySettings::default(),
        }
    }
}

/// How `{phone}` and `{message}` are escaped when put into the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    /// Inside a JSON string; `Content-Type: application/json`.
    Json,
    /// As a form value; `Content-Type: application/x-www-form-urlencoded`.
    Form,
    /// As is; `Content-Type: text/plain`.
    Raw,
}

/// `[sms.http]`: the request that sends one message. `{phone}` (E.164) and `{message}` are
/// replaced in `url` (URL-encoded) and `body` (escaped per `body_encoding`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpGatewaySettings {
    pub url: String,
    pub method: String,
    /// Extra headers, such as an API key (values are secrets: never printed).
    pub headers: BTreeMap<String, Secret>,
    pub body: String,
    pub body_encoding: BodyEncoding,
    /// The status that means "sent"; unset, any 2xx.
    pub success_status: Option<u16>,
    /// Per attempt.
    pub timeout_secs: u64,
    /// Further attempts after a failure that may pass (no answer, 429, 5xx).
    pub retries: u32,
    /// The first wait before a retry; it doubles for each further one.
    pub retry_backoff_ms: u64,
}

impl Default for HttpGatewaySettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            method: "POST".into(),
            headers: BTreeMap::new(),
            body: r#"{"to":"{phone}","text":"{message}"}"#.into(),
            body_encoding: BodyEncoding::Json,
            success_status: None,
            timeout_secs: 5,
            retries: 2,
            retry_backoff_ms: 500,
        }
    }
}

impl SmsSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(60..=900).contains(&self.code_ttl_secs) {
            return Err(ConfigError::new("sms.code_ttl_secs", "must be between 60 and 900"));
        }
        if self.resend_cooldown_secs > 300 {
            return Err(ConfigError::new("sms.resend_cooldown_secs", "must be at most 300"));
        }
        if self.per_user_hourly == 0 || self.per_phone_hourly == 0 || self.per_ip_hourly == 0 {
            return Err(ConfigError::new("sms.per_user_hourly", "the hourly caps must be at least 1"));
        }
        if self.gateway == SmsGatewayKind::Http {
            let h = &self.http;
            let url = url::Url::parse(&h.url.replace("{phone}", "x").replace("{message}", "x"))
                .map_err(|_| ConfigError::new("sms.http.url", "must be an http(s) URL"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::new("sms.http.url", "must be an http(s) URL"));
            }
            if !matches!(h.method.as_str(), "POST" | "PUT" | "GET") {
                return Err(ConfigError::new("sms.http.method", "must be POST, PUT or GET"));
            }
            if !(1..=60).contains(&h.timeout_secs) {
                return Err(ConfigError::new("sms.http.timeout_secs", "must be between 1 and 60"));
            }
            if h.retries > 5 {
                return Err(ConfigError::new("sms.http.retries", "must be at most 5"));
            }
            if h.success_status.is_some_and(|s| !(200..=299).contains(&s)) {
                return Err(ConfigError::new("sms.http.success_status", "must be a 2xx status"));
            }
            if !h.body.contains("{message}") && !h.url.contains("{message}") {
                return Err(ConfigError::new("sms.http.body", "must hold {message} (or the URL must)"));
            }
        }
        Ok(())
    }
}
