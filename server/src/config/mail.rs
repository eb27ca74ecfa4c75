//! `[mail]`: how outgoing mail leaves — `.eml` files under the data folder (the embedded
//! default) or an SMTP server.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Each message as `<data_dir>/mail/<id>.eml` (development; nothing is sent).
    File,
    /// Through `[mail.smtp]`.
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailSecurity {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same host or a test sink.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: MailSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Seconds for connecting and for each command.
    pub timeout_secs: u64,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 587,
            security: MailSecurity::Starttls,
            username: None,
            password: None,
            timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    pub transport: MailTransport,
    /// The sender, such as `Vaccination Programme <no-reply@example.gov.in>`.
    pub from: String,
    /// The organisation's name as messages show it.
    pub organisation_name: String,
    pub smtp: SmtpSettings,
    pub outbox: OutboxSettings,
}

/// `[mail.outbox]`: how the worker sends what is queued.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Messages claimed at a time.
    pub batch: i64,
    /// At most this many messages a second per worker.
    pub rate_per_sec: u32,
    /// Attempts before a message is given up.
    pub max_attempts: i32,
    /// Wait before the second attempt; doubled for each further one (at most an hour).
    pub retry_base_secs: u64,
    /// How long a claimed batch is a worker's; a row still sending after it is settled as
    /// unconfirmed, never sent again.
    pub lease_secs: u64,
    /// Seconds between looks for due messages.
    pub poll_secs: u64,
    /// Whether this instance runs a worker (every instance may: they never send a row twice).
    pub worker: bool,
    /// Messages a worker sends at once, each on its own SMTP connection.
    pub concurrency: usize,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            batch: 50,
            rate_per_sec: 20,
            max_attempts: 5,
            retry_base_secs: 30,
            lease_secs: 300,
            poll_secs: 2,
            worker: true,
            concurrency: 8,
        }
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            transport: MailTransport::File,
            from: "Pramaan <no-reply@localhost>".into(),
            organisation_name: "Pramaan".into(),
            smtp: SmtpSettings::default(),
            outbox: OutboxSettings::default(),
        }
    }
}

impl MailSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| ConfigError::new("mail.from", format!("not an address: {e}")))?;
        if self.organisation_name.trim().is_empty() || self.organisation_name.len() > 100 {
            return Err(ConfigError::new("mail.organisation_name", "must be 1 to 100 characters"));
        }
        if self.transport == MailTransport::Smtp {
            if self.smtp.host.trim().is_empty() {
                return Err(ConfigError::new("mail.smtp.host", "is required when mail.transport = \"smtp\""));
            }
            if self.smtp.username.is_some() != self.smtp.password.is_some() {
                return Err(ConfigError::new("mail.smtp.password", "username and password go together"));
            }
            if self.smtp.password.is_some() && self.smtp.security == MailSecurity::None {
                return Err(ConfigError::new("mail.smtp.security", "a password is never sent without TLS"));
            }
        }
        let o = &self.outbox;
        if !(1..=1000).contains(&o.batch)
            || o.rate_per_sec == 0
            || !(1..=50).contains(&o.max_attempts)
            || !(1..=64).contains(&o.concurrency)
        {
            return Err(ConfigError::new(
                "mail.outbox",
                "batch 1..1000, rate_per_sec at least 1, max_attempts 1..50, concurrency 1..64",
            ));
        }
        // A lease shorter than a send could take would settle rows still being sent.
        if o.lease_secs < 3 * self.smtp.timeout_secs || o.retry_base_secs == 0 || o.poll_secs == 0 {
            return Err(ConfigError::new(
                "mail.outbox.lease_secs",
                "must be at least three SMTP timeouts; retry_base_secs and poll_secs at least 1",
            ));
        }
        if !(1..=300).contains(&self.smtp.timeout_secs) {
            return Err(ConfigError::new("mail.smtp.timeout_secs", "must be between 1 and 300"));
        }
        Ok(())
    }
}
