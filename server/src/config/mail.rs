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
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            transport: MailTransport::File,
            from: "Pramaan <no-reply@localhost>".into(),
            organisation_name: "Pramaan".into(),
            smtp: SmtpSettings::default(),
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
        if !(1..=300).contains(&self.smtp.timeout_secs) {
            return Err(ConfigError::new("mail.smtp.timeout_secs", "must be between 1 and 300"));
        }
        Ok(())
    }
}
