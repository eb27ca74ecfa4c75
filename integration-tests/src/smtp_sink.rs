//! A small SMTP server for tests (RFC 5321: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, no TLS):
//! it keeps every message it accepts, and can be told to refuse recipients.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A message as the sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The DATA, dot-unstuffed, with CRLF line ends.
    pub data: String,
}

impl Received {
    /// The message with its parts' transfer encodings undone: quoted-printable (soft line
    /// breaks, `=XX`) everywhere, and the lines of base64 parts decoded.
    pub fn decoded(&self) -> String {
        use base64::Engine;
        let mut out = String::new();
        let mut base64_part = false;
        let mut block = String::new();
        for line in self.data.split("\r\n") {
            if line.to_ascii_lowercase().starts_with("content-transfer-encoding: base64") {
                base64_part = true;
            } else if line.starts_with("--") {
                base64_part = false;
            }
            if base64_part && !line.is_empty() && !line.contains(':') {
                block.push_str(line);
                continue;
            }
            if !block.is_empty() {
                let bytes = base64::engine::general_purpose::STANDARD.decode(&block).unwrap_or_default();
                out.push_str(&String::from_utf8_lossy(&bytes));
                out.push_str("\r\n");
                block.clear();
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        quoted_printable(&out)
    }

    /// The first reset link (`…/password/reset?token=…`) in the message.
    pub fn reset_link(&self) -> Option<String> {
        let text = self.decoded();
        let at = text.find("http")?;
        let rest = &text[at..];
        let start = rest.find("/password/reset?token=")?;
        let end = start
            + "/password/reset?token=".len()
            + rest[start + "/password/reset?token=".len()..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(0);
        Some(rest[..end].to_owned())
    }
}

fn quoted_printable(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            if let (Some(h), Some(l)) = (b.get(i + 1), b.get(i + 2))
                && let Ok(v) = u8::from_str_radix(&format!("{}{}", *h as char, *l as char), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `[mail]` settings that send through a sink on `port`, quickly, with no background worker
/// (the test runs [`worker`] itself, so it knows what went).
pub fn smtp_settings(port: u16) -> pramaan_server::config::MailSettings {
    use pramaan_server::config::{MailSecurity, MailSettings, MailTransport};
    let mut s = MailSettings { transport: MailTransport::Smtp, ..MailSettings::default() };
    s.smtp.host = "127.0.0.1".into();
    s.smtp.port = port;
    s.smtp.security = MailSecurity::None;
    s.smtp.timeout_secs = 5;
    s.outbox.rate_per_sec = 1000;
    s.outbox.lease_secs = 60;
    s.outbox.worker = false;
    s
}

/// An outbox worker of `app`, through its configured SMTP server.
pub fn worker(app: &crate::TestApp) -> pramaan_server::mail::outbox::OutboxWorker {
    use pramaan_server::mail::{Mailer, SmtpMailer};
    let mailer: Arc<dyn Mailer> = Arc::new(SmtpMailer::new(app.core.settings.mail.clone()).unwrap());
    pramaan_server::mail::outbox::OutboxWorker::new(app.core.clone(), mailer, &app.address)
}

/// A running sink; stops with the test's runtime.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    refuse_rcpt: Arc<Mutex<bool>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = Self { port, received: Arc::default(), refuse_rcpt: Arc::default() };
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.serve(stream).await;
                });
            }
        });
        sink
    }

    /// Messages accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// From now on, answer every RCPT with 550 (a permanent refusal).
    pub fn refuse_recipients(&self) {
        *self.refuse_rcpt.lock().unwrap() = true;
    }

    async fn serve(&self, stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 sink ESMTP\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                b"250-sink\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                from = line[10..].trim().to_owned();
                to.clear();
                b"250 OK\r\n"
            } else if upper.starts_with("RCPT TO:") {
                if *self.refuse_rcpt.lock().unwrap() {
                    b"550 5.1.1 no such mailbox\r\n"
                } else {
                    to.push(line[8..].trim().to_owned());
                    b"250 OK\r\n"
                }
            } else if upper.starts_with("DATA") {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                self.received.lock().unwrap().push(Received { from: from.clone(), to: to.clone(), data });
                b"250 OK queued\r\n"
            } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
                b"250 OK\r\n"
            } else if upper.starts_with("QUIT") {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                b"502 not implemented\r\n"
            };
            write.write_all(reply).await?;
        }
    }
}
