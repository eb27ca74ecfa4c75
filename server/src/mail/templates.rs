//! The messages Pramaan writes: askama templates (plain text and HTML) with the organisation's
//! name from `[mail] organisation_name`.

use askama::Template;

use super::Email;

/// What a reset-link message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The person asked for it (forgot password).
    Reset,
    /// A campaign after a breach.
    Breach,
    /// A campaign for imported accounts: their first password.
    Onboarding,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::Breach => "breach",
            Self::Onboarding => "onboarding",
        }
    }
}

#[derive(Template)]
#[template(path = "mail/reset.txt")]
struct ResetText<'a> {
    purpose: &'a str,
    organisation: &'a str,
    display_name: &'a str,
    username: &'a str,
    link: &'a str,
    minutes: u64,
}

#[derive(Template)]
#[template(path = "mail/reset.html")]
struct ResetHtml<'a> {
    purpose: &'a str,
    subject: &'a str,
    organisation: &'a str,
    display_name: &'a str,
    username: &'a str,
    link: &'a str,
    minutes: u64,
}

/// A reset-link message to `to`.
pub struct ResetMail<'a> {
    pub purpose: Purpose,
    pub organisation: &'a str,
    pub to: &'a str,
    pub display_name: &'a str,
    pub username: &'a str,
    pub link: &'a str,
    pub ttl_secs: u64,
}

impl ResetMail<'_> {
    pub fn subject(&self) -> String {
        match self.purpose {
            Purpose::Reset => format!("{}: reset your password", self.organisation),
            Purpose::Breach => format!("{}: set a new password now", self.organisation),
            Purpose::Onboarding => format!("Welcome to {}: choose your password", self.organisation),
        }
    }

    pub fn render(&self) -> Result<Email, askama::Error> {
        let subject = self.subject();
        let minutes = self.ttl_secs.div_ceil(60);
        let purpose = self.purpose.as_str();
        let text = ResetText {
            purpose,
            organisation: self.organisation,
            display_name: self.display_name,
            username: self.username,
            link: self.link,
            minutes,
        }
        .render()?;
        let html = ResetHtml {
            purpose,
            subject: &subject,
            organisation: self.organisation,
            display_name: self.display_name,
            username: self.username,
            link: self.link,
            minutes,
        }
        .render()?;
        Ok(Email { to: self.to.to_owned(), subject, text, html })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(purpose: Purpose) -> Email {
        ResetMail {
            purpose,
            organisation: "Karnataka <Health>",
            to: "asha@example.org",
            display_name: "Asha & Co",
            username: "asha",
            link: "https://id.example/password/reset?token=abc",
            ttl_secs: 1800,
        }
        .render()
        .unwrap()
    }

    #[test]
    fn each_purpose_has_its_own_words_and_carries_the_link_and_the_organisation() {
        let breach = mail(Purpose::Breach);
        assert!(breach.subject.contains("set a new password now"));
        assert!(breach.text.contains("security measure"));
        assert!(breach.text.contains("https://id.example/password/reset?token=abc"));
        assert!(breach.text.contains("30 minutes"));
        assert!(!breach.text.contains("did not ask"));
        let onboarding = mail(Purpose::Onboarding);
        assert!(onboarding.subject.starts_with("Welcome to Karnataka <Health>"));
        assert!(onboarding.text.contains("An account has been made for you: asha"));
        let reset = mail(Purpose::Reset);
        assert!(reset.text.contains("If you did not ask for this"));
    }

    #[test]
    fn the_html_part_escapes_what_it_is_given_and_the_text_part_does_not() {
        let m = mail(Purpose::Breach);
        assert!(m.html.contains("Karnataka &#60;Health&#62;") || m.html.contains("Karnataka &lt;Health&gt;"));
        assert!(m.html.contains("Asha &#38; Co") || m.html.contains("Asha &amp; Co"));
        assert!(!m.html.contains("<Health>"));
        assert!(m.text.contains("Dear Asha & Co"));
        assert!(m.html.contains("href=\"https://id.example/password/reset?token=abc\""));
    }
}
