//! The sign-in pages: askama templates, their words, and the headers every page carries.
//!
//! Every string a person reads comes from a [`Text`] catalogue, so a Hindi catalogue is one
//! more constant (the login pages are planned in Hindi as well as English). Pages carry a
//! strict CSP without inline script, are never cached, and cannot be framed.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

/// The words of the sign-in pages in one language.
#[derive(Debug)]
pub struct Text {
    pub lang: &'static str,
    pub sign_in: &'static str,
    pub to_continue_to: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub wrong_credentials: &'static str,
    pub change_password: &'static str,
    pub must_change: &'static str,
    pub new_password: &'static str,
    pub confirm_password: &'static str,
    pub rule_length: &'static str,
    pub rule_not_username: &'static str,
    pub rule_not_common: &'static str,
    pub rule_not_current: &'static str,
    pub allow_access: &'static str,
    pub wants_to: &'static str,
    pub signed_in_as: &'static str,
    pub allow: &'static str,
    pub deny: &'static str,
    pub sign_out: &'static str,
    pub sign_out_question: &'static str,
    pub signed_out: &'static str,
    pub signed_out_message: &'static str,
    pub problem: &'static str,
    pub expired_title: &'static str,
    pub expired_message: &'static str,
    pub unavailable_message: &'static str,
    pub form_expired: &'static str,
}

pub const EN: Text = Text {
    lang: "en",
    sign_in: "Sign in",
    to_continue_to: "to continue to",
    username: "Username",
    password: "Password",
    wrong_credentials: "The username or password is not right. Check them and try again; after several \
                        wrong tries the account is locked for a while.",
    change_password: "Change your password",
    must_change: "You must choose a new password before you continue.",
    new_password: "New password",
    confirm_password: "New password again",
    rule_length: "At least {n} characters.",
    rule_not_username: "Not your username.",
    rule_not_common: "Not one of the most common passwords.",
    rule_not_current: "Not your current password.",
    allow_access: "Allow access?",
    wants_to: "asks to receive:",
    signed_in_as: "Signed in as",
    allow: "Allow",
    deny: "Deny",
    sign_out: "Sign out",
    sign_out_question: "Do you want to sign out of Pramaan?",
    signed_out: "Signed out",
    signed_out_message: "You have signed out. You can close this page.",
    problem: "Something went wrong",
    expired_title: "Start again",
    expired_message: "This sign-in has expired or was already finished. Go back to the application you \
                      came from and start the sign-in again.",
    unavailable_message: "Sign-in is unavailable for a moment. Wait a minute and try again.",
    form_expired: "This page was open too long or was sent twice. It has been refreshed; try again.",
};

/// The catalogue for a request (only English so far; `Accept-Language` picks once Hindi
/// lands).
pub fn text(_req: Option<&HttpRequest>) -> &'static Text {
    &EN
}

/// The stylesheet served at `/static/login.css`.
pub const STYLESHEET: &str = include_str!("../../static/login.css");

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub t: &'a Text,
    pub csrf: &'a str,
    pub request: &'a str,
    pub client_name: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "password.html")]
pub struct PasswordPage<'a> {
    pub t: &'a Text,
    pub csrf: &'a str,
    pub request: &'a str,
    pub username: &'a str,
    pub min_length: usize,
    pub rule_length: String,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub t: &'a Text,
    pub csrf: &'a str,
    pub request: &'a str,
    pub client_name: &'a str,
    pub username: &'a str,
    pub scopes: Vec<&'a str>,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    pub t: &'a Text,
    pub csrf: &'a str,
    pub id_token_hint: Option<&'a str>,
    pub post_logout_redirect_uri: Option<&'a str>,
    pub state: Option<&'a str>,
    pub client_id: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub t: &'a Text,
    pub title: &'a str,
    pub message: &'a str,
}

/// The page's policy: only our own stylesheet and nothing else. `form-action` is left out on
/// purpose: browsers apply it to the redirects after a form post, and the last one goes to the
/// client's (registered, exactly matched) redirect URI.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                   base-uri 'none'";

/// An HTML response with the headers every sign-in page carries.
pub fn html(status: StatusCode, body: Result<String, askama::Error>) -> HttpResponse {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = ?e, "a page failed to render");
            return HttpResponse::InternalServerError()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .content_type("text/plain; charset=utf-8")
                .body("Sign-in is unavailable for a moment. Wait a minute and try again.");
        }
    };
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(body)
}

/// A page that says what went wrong and what to do.
pub fn message(status: StatusCode, title: &str, msg: &str) -> HttpResponse {
    html(status, MessagePage { t: text(None), title, message: msg }.render())
}

pub fn error_page(_req: &HttpRequest, status: StatusCode, msg: &str) -> HttpResponse {
    error_page_plain(status, msg)
}

pub fn error_page_plain(status: StatusCode, msg: &str) -> HttpResponse {
    message(status, text(None).problem, msg)
}

pub fn unavailable(_req: &HttpRequest) -> HttpResponse {
    unavailable_plain()
}

pub fn unavailable_plain() -> HttpResponse {
    let t = text(None);
    message(StatusCode::SERVICE_UNAVAILABLE, t.problem, t.unavailable_message)
}

pub fn expired(_req: &HttpRequest) -> HttpResponse {
    let t = text(None);
    message(StatusCode::BAD_REQUEST, t.expired_title, t.expired_message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_page_escapes_what_it_echoes_and_stays_small() {
        let page = LoginPage {
            t: &EN,
            csrf: "c",
            request: "r",
            client_name: "<script>x</script>",
            username: "\"><b>",
            error: Some(EN.wrong_credentials),
        }
        .render()
        .unwrap();
        assert!(!page.contains("<script>x"));
        assert!(!page.contains("\"><b>"));
        assert!(page.contains("role=\"alert\""));
        assert!(page.len() + STYLESHEET.len() < 30 * 1024, "a sign-in page weighs under 30 KB");
    }
}
