//! Sending a text message: the [`SmsGateway`] trait and its two implementations, [`LogGateway`]
//! (the embedded default: lines in `<data_dir>/sms.log`) and [`HttpGateway`] (a configured HTTP
//! request with timeouts and retries). Neither ever writes a message to the server log: it
//! carries a code.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{BodyEncoding, HttpGatewaySettings};
use crate::domain::Phone;

/// Why a message was not sent. `Display` is for logs and the audit trail; it never holds
/// the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    #[error("the gateway answered {0}")]
    Status(u16),
    #[error("the gateway could not be reached: {0}")]
    Unreachable(String),
    /// Sent, but no answer in time: the message may still arrive.
    #[error("the gateway did not answer in time")]
    TimedOut,
    #[error("the message could not be written: {0}")]
    Io(String),
}

#[async_trait]
pub trait SmsGateway: Send + Sync + 'static {
    /// Sends `message` to `to`; `Ok` once the gateway has accepted it.
    async fn send(&self, to: &Phone, message: &str) -> Result<(), SmsError>;
}

/// `+919812345678` → `+91******5678`: the last four digits of a long number, the last two of a
/// short one.
pub fn mask(phone: &Phone) -> String {
    let s = phone.as_str();
    let digits = s.len().saturating_sub(1);
    let shown = if digits >= 10 { 4 } else { 2 };
    // "+91" (a country code) of a long number, only "+" of a short one.
    let keep_front = if digits >= 10 { 3 } else { 1 };
    let hidden = s.len().saturating_sub(keep_front + shown);
    format!("{}{}{}", &s[..keep_front], "*".repeat(hidden), &s[s.len() - shown..])
}

/// Appends `<time> <phone> <message>` lines to a file: how a developer on the embedded
/// default reads the codes.
pub struct LogGateway {
    path: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl LogGateway {
    pub fn new(path: PathBuf) -> Self {
        Self { path, lock: tokio::sync::Mutex::new(()) }
    }
}

#[async_trait]
impl SmsGateway for LogGateway {
    async fn send(&self, to: &Phone, message: &str) -> Result<(), SmsError> {
        use std::io::Write;
        let _guard = self.lock.lock().await;
        let line = format!(
            "{}\t{}\t{}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            to.as_str(),
            message.replace(['\n', '\r'], " ")
        );
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Owner-only: the lines hold live codes.
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&path)?;
            f.write_all(line.as_bytes())
        })
        .await
        .map_err(|e| SmsError::Io(e.to_string()))?
        .map_err(|e| SmsError::Io(e.to_string()))?;
        tracing::debug!(to = %mask(to), file = %self.path.display(), "SMS written to the log gateway's file");
        Ok(())
    }
}

/// A configured HTTP request per message.
pub struct HttpGateway {
    settings: HttpGatewaySettings,
    /// `Err` if the HTTP client could not be built (its TLS setup failed): every send fails
    /// with that reason, audited, rather than the server refusing to start over SMS.
    http: Result<reqwest::Client, String>,
}

impl HttpGateway {
    pub fn new(settings: HttpGatewaySettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs))
            .connect_timeout(Duration::from_secs(settings.timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string());
        if let Err(e) = &http {
            tracing::error!(error = %e, "the SMS gateway's HTTP client could not be built");
        }
        Self { settings, http }
    }

    fn request(&self, to: &Phone, message: &str) -> Result<reqwest::RequestBuilder, SmsError> {
        let s = &self.settings;
        let url =
            fill(&s.url, to.as_str(), message, |v| form_urlencoded::byte_serialize(v.as_bytes()).collect());
        let method = reqwest::Method::from_bytes(s.method.as_bytes())
            .map_err(|_| SmsError::Unreachable("bad method".into()))?;
        let http = self.http.as_ref().map_err(|e| SmsError::Unreachable(e.clone()))?;
        let mut req = http.request(method, url);
        if s.method != "GET" {
            let (body, content_type) = match s.body_encoding {
                BodyEncoding::Json => (fill(&s.body, to.as_str(), message, json_escape), "application/json"),
                BodyEncoding::Form => (
                    fill(&s.body, to.as_str(), message, |v| {
                        form_urlencoded::byte_serialize(v.as_bytes()).collect()
                    }),
                    "application/x-www-form-urlencoded",
                ),
                BodyEncoding::Raw => {
                    (fill(&s.body, to.as_str(), message, str::to_owned), "text/plain; charset=utf-8")
                }
            };
            req = req.header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        }
        for (name, value) in &s.headers {
            req = req.header(name.as_str(), value.expose());
        }
        Ok(req)
    }

    fn accepted(&self, status: u16) -> bool {
        match self.settings.success_status {
            Some(s) => status == s,
            None => (200..=299).contains(&status),
        }
    }
}

/// A failure worth another attempt: no answer, too many requests, or a server error.
fn retryable(e: &SmsError) -> bool {
    match e {
        SmsError::Unreachable(_) => true,
        SmsError::Status(s) => *s == 429 || *s >= 500,
        // Another attempt could send the message twice.
        SmsError::TimedOut | SmsError::Io(_) => false,
    }
}

#[async_trait]
impl SmsGateway for HttpGateway {
    async fn send(&self, to: &Phone, message: &str) -> Result<(), SmsError> {
        let mut wait = Duration::from_millis(self.settings.retry_backoff_ms);
        let mut attempt = 0;
        loop {
            let outcome = match self.request(to, message)?.send().await {
                Ok(resp) if self.accepted(resp.status().as_u16()) => Ok(()),
                Ok(resp) => Err(SmsError::Status(resp.status().as_u16())),
                // Without the URL: it may carry the gateway's API key.
                Err(e) if e.is_timeout() && !e.is_connect() => Err(SmsError::TimedOut),
                Err(e) => Err(SmsError::Unreachable(e.without_url().to_string())),
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(e) if attempt < self.settings.retries && retryable(&e) => {
                    tracing::warn!(to = %mask(to), error = %e, attempt, "SMS gateway failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// `template` with `{phone}` and `{message}` replaced by their escaped values, in one pass (a
/// message that itself holds "{phone}" is not expanded again).
fn fill(template: &str, phone: &str, message: &str, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + message.len() * 2);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{phone}") {
            out.push_str(&escape(phone));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{message}") {
            out.push_str(&escape(message));
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn json_escape(v: &str) -> String {
    let quoted = serde_json::Value::String(v.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked_to_their_last_digits() {
        assert_eq!(mask(&Phone::parse("+919812345678").unwrap()), "+91******5678");
        assert_eq!(mask(&Phone::parse("+4512345678").unwrap()), "+45****5678");
        assert_eq!(mask(&Phone::parse("+3851234").unwrap()), "+*****34");
    }

    #[test]
    fn templates_escape_for_their_encoding_and_expand_once() {
        let json = fill(r#"{"to":"{phone}","text":"{message}"}"#, "+91", "a \"b\"\n{phone}", json_escape);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["text"], "a \"b\"\n{phone}");
        assert_eq!(v["to"], "+91");
        let form = fill("to={phone}&m={message}", "+91 1", "a&b=c", |v| {
            form_urlencoded::byte_serialize(v.as_bytes()).collect()
        });
        assert_eq!(form, "to=%2B91+1&m=a%26b%3Dc");
        assert_eq!(fill("{x} {phone", "p", "m", str::to_owned), "{x} {phone");
    }
}
