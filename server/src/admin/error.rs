//! The admin API's errors: RFC 9457 problem details, with the RFC 6750 `WWW-Authenticate`
//! challenge where the token is the problem, and the RFC 9470 step-up challenge where the
//! login is too old or too weak for the action.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::http::problem::Problem;
use crate::policy::Denied;

/// The login an action that needs a step-up must be made with: how recent (seconds), and
/// the `acr` that proves a one-time password.
pub const STEP_UP_MAX_AGE_SECS: i64 = 600;

/// Why an admin request failed. `Display` is safe to show.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// RFC 6750 §3.1: no token at all.
    #[error("an access token is required")]
    NoToken,
    /// RFC 6750 §3.1 `invalid_request`: the Authorization header is not a Bearer token.
    #[error("send the access token as Authorization: Bearer <token>")]
    BadAuthorization,
    /// RFC 6750 §3.1 `invalid_token`.
    #[error("the access token is invalid, expired or revoked")]
    InvalidToken,
    /// RFC 6750 §3.1 `insufficient_scope`.
    #[error("the access token lacks the {0} scope")]
    InsufficientScope(&'static str),
    /// The role policies refused the action.
    #[error("denied: {}", .0.verdict.reason())]
    Denied(Box<Denied>),
    /// The policies want a recent login with a one-time password (RFC 9470).
    #[error("a recent sign-in with a one-time password is required")]
    StepUp(Box<Denied>),
    #[error("{0}")]
    NotFound(String),
    /// The request is well formed but conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed or a value is invalid (400).
    #[error("{0}")]
    Invalid(String),
    /// Rows of an import: malformed (400) or refused by the policies (403), each with its line
    /// and reason; nothing was imported.
    #[error("{} row(s) cannot be imported", .rows.len())]
    Rows { forbidden: Option<crate::policy::Act>, rows: Vec<crate::cli::import::BadRow> },
    /// A candidate policy set that does not check (422), with every error.
    #[error("the policy set does not check")]
    InvalidPolicy(Vec<crate::policy::PolicyError>),
    /// 413: the body is larger than this route takes.
    #[error("{0}")]
    TooLarge(String),
    /// 415: the body is not of the type this route takes.
    #[error("{0}")]
    WrongType(String),
    #[error("the service is temporarily unavailable")]
    Unavailable,
}

impl ApiError {
    pub fn unexpected(e: &dyn std::fmt::Debug) -> Self {
        tracing::error!(error = ?e, "admin API request failed");
        Self::Unavailable
    }

    /// The denial behind a 403 or a step-up, for the audit trail.
    pub fn denial(&self) -> Option<&Denied> {
        match self {
            Self::Denied(d) | Self::StepUp(d) => Some(d),
            _ => None,
        }
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        if d.verdict.step_up { Self::StepUp(Box::new(d)) } else { Self::Denied(Box::new(d)) }
    }
}

fn bearer(error: Option<&str>, description: &str, extra: &str) -> String {
    match error {
        Some(e) => {
            format!(r#"Bearer realm="pramaan", error="{e}", error_description="{description}"{extra}"#)
        }
        None => r#"Bearer realm="pramaan""#.to_owned(),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NoToken | Self::InvalidToken | Self::StepUp(_) => StatusCode::UNAUTHORIZED,
            Self::BadAuthorization | Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Rows { forbidden: None, .. } => StatusCode::BAD_REQUEST,
            Self::Rows { forbidden: Some(_), .. } => StatusCode::FORBIDDEN,
            Self::InsufficientScope(_) | Self::Denied(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::WrongType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::InvalidPolicy(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = self.to_string();
        let (problem, challenge) = match self {
            Self::NoToken => (
                Problem::new(status, "Send an access token: Authorization: Bearer <token>."),
                Some(bearer(None, "", "")),
            ),
            Self::BadAuthorization => (
                Problem::new(status, "Send the access token as Authorization: Bearer <token>."),
                Some(bearer(Some("invalid_request"), "Use the Bearer scheme", "")),
            ),
            Self::InvalidToken => (
                Problem::new(status, "The access token is invalid, expired or revoked."),
                Some(bearer(Some("invalid_token"), "The access token is invalid, expired or revoked", "")),
            ),
            Self::InsufficientScope(scope) => (
                Problem::typed(
                    status,
                    "urn:pramaan:problem:insufficient-scope",
                    "Insufficient scope",
                    format!("The access token lacks the {scope} scope."),
                )
                .with("scope", json!(scope)),
                Some(bearer(
                    Some("insufficient_scope"),
                    "The access token lacks a scope",
                    &format!(r#", scope="{scope}""#),
                )),
            ),
            Self::Denied(d) => (
                Problem::typed(
                    status,
                    "urn:pramaan:problem:forbidden-by-policy",
                    "Forbidden by policy",
                    format!("The role policies do not allow {} here: {}.", d.act, d.verdict.reason()),
                )
                .with("action", json!(d.act.name()))
                .with("policies", json!(d.verdict.policies))
                .with("policy_version", json!(d.verdict.version)),
                None,
            ),
            Self::StepUp(d) => {
                let acr = crate::domain::Acr::Mfa.as_str();
                (
                    Problem::typed(
                        status,
                        "urn:pramaan:problem:step-up-required",
                        "Step-up authentication required",
                        format!(
                            "{} needs a sign-in within the last {} minutes that used a one-time password \
                             (an authenticator app). Sign in again through /authorize with max_age={} and \
                             acr_values={acr} (prompt=login forces a fresh sign-in), then repeat this request \
                             with the new access token.",
                            d.act,
                            STEP_UP_MAX_AGE_SECS / 60,
                            STEP_UP_MAX_AGE_SECS
                        ),
                    )
                    .with("action", json!(d.act.name()))
                    .with("max_age", json!(STEP_UP_MAX_AGE_SECS))
                    .with("acr_values", json!(acr))
                    .with("required_amr", json!(["otp"]))
                    .with("policies", json!(d.verdict.policies)),
                    // RFC 9470 §3: the challenge a client can act on.
                    Some(bearer(
                        Some("insufficient_user_authentication"),
                        "A recent sign-in with a one-time password is required",
                        &format!(r#", acr_values="{acr}", max_age={STEP_UP_MAX_AGE_SECS}"#),
                    )),
                )
            }
            Self::NotFound(_) => {
                (Problem::typed(status, "urn:pramaan:problem:not-found", "Not found", detail), None)
            }
            Self::Conflict(_) => {
                (Problem::typed(status, "urn:pramaan:problem:conflict", "Conflict", detail), None)
            }
            Self::Invalid(_) => (
                Problem::typed(status, "urn:pramaan:problem:invalid-request", "Invalid request", detail),
                None,
            ),
            Self::InvalidPolicy(errors) => (
                Problem::typed(
                    status,
                    "urn:pramaan:problem:invalid-policy-set",
                    "Invalid policy set",
                    format!("The policy set has {} problem(s); nothing was loaded.", errors.len()),
                )
                .with(
                    "errors",
                    json!(
                        errors
                            .iter()
                            .map(|e| json!({ "file": e.file, "line": e.line, "reason": e.reason }))
                            .collect::<Vec<_>>()
                    ),
                ),
                None,
            ),
            Self::Rows { forbidden, rows } => {
                let detail = format!("{} row(s) cannot be imported; nothing was imported.", rows.len());
                let rows: Vec<_> =
                    rows.iter().map(|r| json!({ "line": r.line, "reason": r.reason })).collect();
                let problem = match forbidden {
                    Some(act) => Problem::typed(
                        status,
                        "urn:pramaan:problem:forbidden-by-policy",
                        "Forbidden by policy",
                        detail,
                    )
                    .with("action", json!(act.name())),
                    None => {
                        Problem::typed(status, "urn:pramaan:problem:invalid-rows", "Invalid rows", detail)
                    }
                };
                (problem.with("rows", json!(rows)), None)
            }
            Self::TooLarge(_) | Self::WrongType(_) => (Problem::new(status, detail), None),
            Self::Unavailable => (Problem::new(status, "Try again shortly."), None),
        };
        let mut resp = problem.response();
        if let Some(c) = challenge
            && let Ok(v) = header::HeaderValue::from_str(&c)
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}
