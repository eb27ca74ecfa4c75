//! Outgoing mail (issue 6): a message of plain text and HTML, and the transports that deliver
//! it — SMTP through lettre (STARTTLS, implicit TLS, or plain for a local sink) in production,
//! and `.eml` files under the data folder as the embedded default. Every message carries a
//! Message-ID chosen by the caller, so a message sent twice is recognisable as one.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub mod outbox;
pub mod templates;

use crate::config::{MailSecurity, MailSettings, MailTransport};

/// A message to one recipient, in plain text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Why a message was not handed over. `Display` names no secret.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The message itself is wrong (an address that does not parse): sending again will not help.
    #[error("the message is malformed: {0}")]
    Malformed(String),
    /// The server refused it for good (5xx).
    #[error("the mail server refused the message: {0}")]
    Rejected(String),
    /// Try again later: unreachable, timed out, or a temporary (4xx) refusal.
    #[error("the mail server could not take the message now: {0}")]
    Temporary(String),
}

impl MailError {
    /// Whether sending again later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Temporary(_))
    }
}

#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Hands `email` over with the Message-ID `<message_id@domain>`; `Ok` once the server (or
    /// the file) has it.
    async fn send(&self, email: &Email, message_id: &str) -> Result<(), MailError>;
}

/// Builds the RFC 5322 message: multipart/alternative, text first.
pub fn build(settings: &MailSettings, email: &Email, message_id: &str) -> Result<Message, MailError> {
    let from: Mailbox = settings.from.parse().map_err(|e| MailError::Malformed(format!("mail.from: {e}")))?;
    let to: Mailbox = email.to.parse().map_err(|e| MailError::Malformed(format!("recipient: {e}")))?;
    let domain = from.email.domain().to_owned();
    Message::builder()
        .from(from)
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{message_id}@{domain}>")))
        .multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
        .map_err(|e| MailError::Malformed(e.to_string()))
}

/// Writes each message to a `.eml` file in `dir` (the embedded default; development).
pub struct FileMailer {
    settings: MailSettings,
    transport: AsyncFileTransport<Tokio1Executor>,
    pub dir: PathBuf,
}

impl FileMailer {
    pub fn new(settings: MailSettings, dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { settings, transport: AsyncFileTransport::new(&dir), dir })
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, email: &Email, message_id: &str) -> Result<(), MailError> {
        let message = build(&self.settings, email, message_id)?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| MailError::Temporary(e.to_string()))
    }
}

/// Sends through an SMTP server (`[mail.smtp]`).
pub struct SmtpMailer {
    settings: MailSettings,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMailer {
    pub fn new(settings: MailSettings) -> Result<Self, MailError> {
        let s = &settings.smtp;
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned())
                .map_err(|e| MailError::Malformed(format!("mail.smtp.host: {e}")))
        };
        let tls = match s.security {
            MailSecurity::Starttls => Tls::Required(tls(&s.host)?),
            MailSecurity::Tls => Tls::Wrapper(tls(&s.host)?),
            MailSecurity::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(s.timeout_secs)))
            // One connection per message the outbox worker sends at once.
            .pool_config(
                lettre::transport::smtp::PoolConfig::new()
                    .max_size(u32::try_from(settings.outbox.concurrency).unwrap_or(8)),
            );
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self { transport: builder.build(), settings })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email, message_id: &str) -> Result<(), MailError> {
        let message = build(&self.settings, email, message_id)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Rejected(e.to_string())),
            Err(e) => Err(MailError::Temporary(e.to_string())),
        }
    }
}

/// The configured transport.
pub fn mailer(
    settings: &MailSettings,
    data_dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn Mailer>, String> {
    match settings.transport {
        MailTransport::File => FileMailer::new(settings.clone(), data_dir.join("mail"))
            .map(|m| std::sync::Arc::new(m) as std::sync::Arc<dyn Mailer>)
            .map_err(|e| format!("mail: cannot create {}: {e}", data_dir.join("mail").display())),
        MailTransport::Smtp => SmtpMailer::new(settings.clone())
            .map(|m| std::sync::Arc::new(m) as std::sync::Arc<dyn Mailer>)
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            to: "Asha Rao <asha@example.org>".into(),
            subject: "Set a new password".into(),
            text: "Open the link to set a new password.".into(),
            html: "<p>Open the link to set a new password.</p>".into(),
        }
    }

    #[test]
    fn a_message_is_multipart_text_then_html_with_our_message_id() {
        let m = build(&MailSettings::default(), &email(), "abc123").unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <abc123@localhost>"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        let text = raw.find("text/plain").unwrap();
        let html = raw.find("text/html").unwrap();
        assert!(text < html, "the plain part first (RFC 2046 §5.1.4: the preferred last)");
        assert!(raw.contains("Subject: Set a new password"));
    }

    #[test]
    fn a_bad_recipient_is_malformed_not_temporary() {
        let e = build(&MailSettings::default(), &Email { to: "not an address".into(), ..email() }, "x")
            .unwrap_err();
        assert!(!e.is_temporary(), "{e}");
    }

    #[tokio::test]
    async fn the_file_transport_writes_one_eml_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let m = FileMailer::new(MailSettings::default(), dir.path().join("mail")).unwrap();
        m.send(&email(), "id-1").await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("mail")).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert!(text.contains("<id-1@localhost>") && text.contains("text/html"), "{text}");
    }
}
