//! OAuth 2.0 error responses (RFC 6749 §5.2): a JSON body with `error` and an optional
//! `error_description`, `Cache-Control: no-store`, and for a failed client authentication
//! 401 with `WWW-Authenticate`. Descriptions are fixed sentences for the developer of the
//! client; they never carry internal error text or reveal whether a client id exists.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The error codes of RFC 6749 §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// Not in §5.2, but the registered code for an unexpected failure (§4.1.2.1); we answer
    /// it with 500 so clients retry later.
    ServerError,
    TemporarilyUnavailable,
}

/// An OAuth error as sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{error:?}: {error_description}")]
pub struct OAuthError {
    pub error: OAuthErrorCode,
    pub error_description: &'static str,
    /// A status other than the code's usual one (403 for a client that may not introspect).
    #[serde(skip)]
    pub status: Option<u16>,
    /// Seconds for `Retry-After` (a rate limit's refusal).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(error: OAuthErrorCode, error_description: &'static str) -> Self {
        Self { error, error_description, status: None, retry_after: None }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status.as_u16());
        self
    }

    pub fn invalid_request(d: &'static str) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, d)
    }

    /// One answer for an unknown client, a wrong secret, a wrong method and a suspended
    /// client: telling them apart would let anyone probe which client ids exist.
    pub fn invalid_client() -> Self {
        Self::new(OAuthErrorCode::InvalidClient, "Client authentication failed.")
    }

    /// A rate limit refused the request: 429 with `Retry-After` (RFC 6585 §4), and the code
    /// RFC 6749 registers for "try again later".
    pub fn too_many(refused: crate::limits::Refused) -> Self {
        let mut e = Self::new(
            OAuthErrorCode::TemporarilyUnavailable,
            "Too many failed attempts from this address; retry after the time in Retry-After.",
        )
        .with_status(StatusCode::TOO_MANY_REQUESTS);
        e.retry_after = Some(refused.retry_after_secs());
        e
    }

    pub fn server_error() -> Self {
        Self::new(OAuthErrorCode::ServerError, "The server could not handle the request; try again later.")
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        if let Some(s) = self.status.and_then(|s| StatusCode::from_u16(s).ok()) {
            return s;
        }
        match self.error {
            // §5.2: 401 for a failed client authentication (and WWW-Authenticate below).
            OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header(("cache-control", "no-store")).insert_header(("pragma", "no-cache"));
        if let Some(secs) = self.retry_after {
            resp.insert_header(("retry-after", secs.to_string()));
        }
        if self.error == OAuthErrorCode::InvalidClient {
            resp.insert_header(("www-authenticate", r#"Basic realm="pramaan", charset="UTF-8""#));
        }
        resp.json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialise_as_rfc_6749_bodies() {
        let e = OAuthError::new(OAuthErrorCode::UnsupportedGrantType, "x");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"error": "unsupported_grant_type", "error_description": "x"})
        );
        assert_eq!(e.status_code(), 400);
        let c = OAuthError::invalid_client();
        assert_eq!(c.status_code(), 401);
        let r = c.error_response();
        assert!(r.headers().get("www-authenticate").is_some());
        assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    }
}
