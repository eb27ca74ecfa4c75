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
    pub too_many_title: &'static str,
    /// `{minutes}`: how long until the address may try again.
    pub too_many_message: &'static str,
    pub form_expired: &'static str,
    // The second step.
    pub second_step: &'static str,
    pub totp_prompt: &'static str,
    pub sms_prompt: &'static str,
    pub sms_sent: &'static str,
    pub send_code: &'static str,
    pub resend_code: &'static str,
    pub recovery_prompt: &'static str,
    pub code_label: &'static str,
    pub recovery_label: &'static str,
    pub verify: &'static str,
    pub use_totp: &'static str,
    pub use_sms: &'static str,
    pub use_recovery: &'static str,
    pub wrong_code: &'static str,
    pub tries_left: &'static str,
    pub code_expired: &'static str,
    pub no_code_sent: &'static str,
    pub too_many_tries: &'static str,
    pub sms_cooldown: &'static str,
    pub sms_capped: &'static str,
    pub sms_failed: &'static str,
    pub locked: &'static str,
    pub no_factor: &'static str,
    pub enroll_title: &'static str,
    pub enroll_intro: &'static str,
    pub enroll_manual: &'static str,
    pub enroll_open_app: &'static str,
    pub enroll_wrong: &'static str,
    pub qr_alt: &'static str,
    pub recovery_title: &'static str,
    pub recovery_intro: &'static str,
    pub recovery_used: &'static str,
    pub continue_: &'static str,
    pub sign_in_again: &'static str,
    pub your_account: &'static str,
    pub enroll_conflict: &'static str,
    // The account page.
    pub account_title: &'static str,
    pub account_factors: &'static str,
    pub account_app: &'static str,
    pub account_app_since: &'static str,
    pub account_app_none: &'static str,
    pub account_new_app: &'static str,
    pub account_set_up_app: &'static str,
    pub account_prove: &'static str,
    pub account_phone: &'static str,
    pub account_phone_none: &'static str,
    pub account_recovery: &'static str,
    pub account_new_codes: &'static str,
    pub account_password: &'static str,
    pub account_current_password: &'static str,
    pub account_password_changed: &'static str,
    pub account_wrong_password: &'static str,
    pub account_sessions: &'static str,
    pub account_session_since: &'static str,
    pub account_this_browser: &'static str,
    pub account_end: &'static str,
    pub account_end_others: &'static str,
    pub account_ended: &'static str,
    pub account_app_replaced: &'static str,
    pub account_codes_replaced: &'static str,
    pub account_wrong_code: &'static str,
    pub account_needs_factor: &'static str,
    /// The forgotten-password pages.
    pub reset: &'static ResetText,
}

/// The words of the forgotten-password and reset pages.
#[derive(Debug)]
pub struct ResetText {
    pub forgot_link: &'static str,
    pub forgot_title: &'static str,
    pub forgot_intro: &'static str,
    pub send_link: &'static str,
    pub sent_title: &'static str,
    pub sent_message: &'static str,
    pub code_intro: &'static str,
    pub code_label: &'static str,
    pub use_code: &'static str,
    pub wrong_code: &'static str,
    pub title: &'static str,
    pub for_account: &'static str,
    pub factor_intro: &'static str,
    pub set_password: &'static str,
    pub done_title: &'static str,
    pub done_message: &'static str,
    pub link_dead_title: &'static str,
    pub link_dead_message: &'static str,
    pub ask_again: &'static str,
}

pub const RESET_EN: ResetText = ResetText {
    forgot_link: "Forgot your password?",
    forgot_title: "Reset your password",
    forgot_intro: "Enter your username. We will send a reset link to the email address of the account, \
                   or a code to its phone if it has no email address.",
    send_link: "Send",
    sent_title: "Check your email or phone",
    sent_message: "If an account with that username exists, a reset link is on its way to its email \
                   address, or a code to its phone. The link works for 30 minutes and only once.",
    code_intro: "Got a code by text message? Enter it here.",
    code_label: "Code from the text message",
    use_code: "Continue",
    wrong_code: "That code is not right or no longer works. Check it, or ask for a new one.",
    title: "Set a new password",
    for_account: "For the account",
    factor_intro: "Your account has a second factor. Prove it before you choose a new password.",
    set_password: "Set the new password",
    done_title: "Your password is set",
    done_message: "Your new password works now. Every other sign-in of your account has been ended; \
                   sign in again with the new password.",
    link_dead_title: "This link no longer works",
    link_dead_message: "The link was already used, has expired, or is not complete. Ask for a new one.",
    ask_again: "Ask for a new link",
};

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
    too_many_title: "Too many attempts",
    too_many_message: "Too many attempts have come from your network in a short time. Wait {minutes} \
                       minute(s), then try again. Nothing you typed was checked or sent.",
    form_expired: "This page was open too long or was sent twice. It has been refreshed; try again.",
    second_step: "Confirm it is you",
    totp_prompt: "Enter the 6-digit code your authenticator app shows now.",
    sms_prompt: "We can send a 6-digit code by text message to {phone}.",
    sms_sent: "We sent a code to {phone}. It works for {n} minutes.",
    send_code: "Text me a code",
    resend_code: "Send a new code",
    recovery_prompt: "Enter one of your recovery codes. Each one works once.",
    code_label: "Code",
    recovery_label: "Recovery code",
    verify: "Continue",
    use_totp: "Use my authenticator app",
    use_sms: "Get a code by text message",
    use_recovery: "Use a recovery code",
    wrong_code: "That code is not right. Check it and try again; after several wrong tries you must sign in \
                 again.",
    tries_left: "Tries left: {n}.",
    code_expired: "That code has expired. Send a new one.",
    no_code_sent: "Ask for a code first, then enter it here.",
    too_many_tries: "Too many wrong codes. For your safety, sign in again from the start.",
    sms_cooldown: "A code was sent a moment ago. Wait {n} seconds before asking for another.",
    sms_capped: "Too many codes were sent to this number. Try again in an hour, or use another way to \
                 sign in.",
    sms_failed: "The text message could not be sent. Try again in a minute, or use another way to sign in. \
                 Nothing was counted against you.",
    locked: "This account is locked for a while after several wrong tries. Wait a few minutes and sign in \
             again.",
    no_factor: "Your account needs a registered mobile number for sign-in codes. Ask your administrator to \
                add it, then sign in again.",
    enroll_title: "Set up your authenticator app",
    enroll_intro: "Your account needs an authenticator app. Scan this code with the app (such as FreeOTP, \
                   Google Authenticator or Microsoft Authenticator), then enter the 6-digit code it shows.",
    enroll_manual: "Cannot scan? Enter this key in the app:",
    enroll_open_app: "On this phone? Open the authenticator app",
    enroll_wrong: "That code is not right. Check that the phone sets its time automatically, and enter the \
                   newest code.",
    qr_alt: "QR code to scan with your authenticator app",
    recovery_title: "Save your recovery codes",
    recovery_intro: "If you lose your phone, each of these codes lets you sign in once. Write them down or \
                     print them, and keep them somewhere safe. They will not be shown again.",
    recovery_used: "You signed in with a recovery code; {n} are left. If you lost your phone, set up your \
                    authenticator app again from your account page.",
    continue_: "Continue",
    sign_in_again: "Sign in again",
    your_account: "your Pramaan account",
    enroll_conflict: "An authenticator app was set up for this account meanwhile. Sign in again and use it.",
    account_title: "Your account",
    account_factors: "Second factors",
    account_app: "Authenticator app",
    account_app_since: "Set up on {date}.",
    account_app_none: "Not set up.",
    account_new_app: "Set up a new app",
    account_set_up_app: "Set up an app",
    account_prove: "Code from your current app, or a recovery code",
    account_phone: "Codes by text message go to {phone}.",
    account_phone_none: "No phone number is registered for codes by text message.",
    account_recovery: "Recovery codes left: {n}.",
    account_new_codes: "Make new recovery codes",
    account_password: "Change your password",
    account_current_password: "Current password",
    account_password_changed: "Your password was changed. Every other sign-in of yours was ended.",
    account_wrong_password: "The current password is not right.",
    account_sessions: "Where you are signed in",
    account_session_since: "Signed in at {time} (UTC).",
    account_this_browser: "This browser",
    account_end: "End",
    account_end_others: "End every other sign-in",
    account_ended: "Signed out there. Its tokens no longer work.",
    account_app_replaced: "Your new authenticator app is set up; the old one no longer works.",
    account_codes_replaced: "Your new recovery codes are below; the old ones no longer work.",
    account_wrong_code: "That code is not right. Enter the code your current app shows now, or a recovery code.",
    account_needs_factor: "To set up an app here, sign in with a second factor (such as a code by text message) \
                           within the last ten minutes. If your account has no second factor, ask your \
                           administrator.",
    reset: &RESET_EN,
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
#[template(path = "forgot.html")]
pub struct ForgotPage<'a> {
    pub t: &'a Text,
    pub csrf: &'a str,
    /// After a request: the "check your email or phone" page with the code form.
    pub sent: bool,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "reset.html")]
pub struct ResetPage<'a> {
    pub t: &'a Text,
    pub csrf: &'a str,
    pub username: &'a str,
    /// `factor` or `password`.
    pub step: &'a str,
    /// On the factor step: `totp`, `sms` or `recovery`.
    pub method: &'a str,
    pub prompt: String,
    pub others: Vec<MethodLink<'a>>,
    pub code_sent: bool,
    pub min_length: usize,
    pub rule_length: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub t: &'a Text,
    pub title: &'a str,
    pub message: &'a str,
    /// A way on: (href, words).
    pub link: Option<(&'a str, &'a str)>,
}

/// One of the person's logins on the account page.
pub struct SessionRow {
    pub sid: String,
    pub since: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    pub t: &'a Text,
    pub csrf: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    pub has_app: bool,
    pub app_status: String,
    pub recovery_status: String,
    pub phone_status: String,
    pub min_length: usize,
    pub sessions: Vec<SessionRow>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// A second-factor method offered on the page.
pub struct MethodLink<'a> {
    pub method: &'a str,
    pub label: &'a str,
}

#[derive(Template)]
#[template(path = "factor.html")]
pub struct FactorPage<'a> {
    pub t: &'a Text,
    pub csrf: &'a str,
    pub request: &'a str,
    /// `totp`, `sms` or `recovery`.
    pub method: &'a str,
    pub prompt: String,
    pub others: Vec<MethodLink<'a>>,
    /// SMS: a code was sent and may be entered.
    pub code_sent: bool,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "enroll.html")]
pub struct EnrollPage<'a> {
    pub t: &'a Text,
    /// Where the form posts.
    pub action: &'a str,
    pub csrf: &'a str,
    pub request: &'a str,
    pub qr_data_uri: String,
    /// The `otpauth://` URI, as a link for an authenticator app on the same phone.
    pub otpauth_uri: &'a str,
    pub manual_key: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage<'a> {
    pub t: &'a Text,
    /// Where "Continue" goes.
    pub next: &'a str,
    /// Shown once, after an enrollment.
    pub codes: &'a [String],
    /// After a recovery code was used: the notice with how many are left.
    pub notice: Option<String>,
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
    html(status, MessagePage { t: text(None), title, message: msg, link: None }.render())
}

/// [`message`] with a way on.
pub fn message_with_link(
    status: StatusCode,
    title: &str,
    msg: &str,
    href: &str,
    words: &str,
) -> HttpResponse {
    html(status, MessagePage { t: text(None), title, message: msg, link: Some((href, words)) }.render())
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

/// A rate limit refused the request: when to try again, with `Retry-After` (RFC 6585 §4).
pub fn too_many(refused: crate::limits::Refused) -> HttpResponse {
    let t = text(None);
    let secs = refused.retry_after_secs();
    let msg = t.too_many_message.replace("{minutes}", &secs.div_ceil(60).max(1).to_string());
    let mut resp = message(StatusCode::TOO_MANY_REQUESTS, t.too_many_title, &msg);
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(actix_web::http::header::RETRY_AFTER, v);
    }
    resp
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
