//! Mail through a real SMTP conversation: the server's SMTP transport (lettre) against the
//! tests' SMTP sink, and the file transport of the embedded default.

use pramaan_integration_tests::smtp_sink::SmtpSink;
use pramaan_server::config::{MailSecurity, MailSettings, MailTransport};
use pramaan_server::mail::{Email, Mailer, SmtpMailer, mailer};

fn smtp_settings(port: u16) -> MailSettings {
    let mut s = MailSettings { transport: MailTransport::Smtp, ..MailSettings::default() };
    s.from = "Vaccination Programme <no-reply@example.gov.in>".into();
    s.smtp.host = "127.0.0.1".into();
    s.smtp.port = port;
    s.smtp.security = MailSecurity::None;
    s.smtp.timeout_secs = 5;
    s
}

fn email() -> Email {
    Email {
        to: "asha@example.org".into(),
        subject: "Set a new password".into(),
        text: "Open https://pramaan.example/reset/abc to set a new password.".into(),
        html: "<p>Open <a href=\"https://pramaan.example/reset/abc\">the link</a> to set a new password.</p>"
            .into(),
    }
}

#[tokio::test]
async fn a_message_goes_through_smtp_as_multipart_text_and_html() {
    let sink = SmtpSink::start().await;
    let m = SmtpMailer::new(smtp_settings(sink.port)).unwrap();
    m.send(&email(), "campaign-1-user-7").await.unwrap();
    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from, "<no-reply@example.gov.in>");
    assert_eq!(got[0].to, ["<asha@example.org>"]);
    let data = &got[0].data;
    assert!(data.contains("Message-ID: <campaign-1-user-7@example.gov.in>"), "{data}");
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("text/plain") && data.contains("text/html"), "{data}");
    assert!(data.contains("Subject: Set a new password"), "{data}");
}

#[tokio::test]
async fn a_refused_recipient_is_permanent_and_an_absent_server_is_temporary() {
    let sink = SmtpSink::start().await;
    sink.refuse_recipients();
    let m = SmtpMailer::new(smtp_settings(sink.port)).unwrap();
    let e = m.send(&email(), "x").await.unwrap_err();
    assert!(!e.is_temporary(), "550 is for good: {e}");
    assert!(sink.received().is_empty());
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let m = SmtpMailer::new(smtp_settings(closed)).unwrap();
    let e = m.send(&email(), "y").await.unwrap_err();
    assert!(e.is_temporary(), "try again later: {e}");
}

#[tokio::test]
async fn the_embedded_default_writes_eml_files_under_the_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let m = mailer(&MailSettings::default(), dir.path()).unwrap();
    m.send(&email(), "z").await.unwrap();
    let files: Vec<_> =
        std::fs::read_dir(dir.path().join("mail")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
}

#[test]
fn a_password_is_never_configured_without_tls() {
    let mut s = pramaan_server::config::Settings { mail: smtp_settings(25), ..Default::default() };
    s.mail.smtp.username = Some("pramaan".into());
    s.mail.smtp.password = Some(pramaan_server::config::Secret::new("hunter2".into()));
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("mail.smtp.security"), "{e}");
    assert!(!e.contains("hunter2"));
}
