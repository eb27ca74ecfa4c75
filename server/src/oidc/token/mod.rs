//! The token endpoint (RFC 6749 §3.2). The body is parsed into [`TokenRequest`] and matched
//! exhaustively; each grant has its own file. Every response, success or error, carries
//! `Cache-Control: no-store` (§5.1).

mod authorization_code;
mod client_credentials;
mod refresh_token;

pub use authorization_code::pkce_s256_matches;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::Issuer;
use super::client_auth::{self, Presented};
use super::error::{OAuthError, OAuthErrorCode};
use super::form::Form;
use crate::limits::Limit;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/token", web::post().to(token));
}

/// A token request, by grant. Unknown grants never get this far: they are
/// `unsupported_grant_type` at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    AuthorizationCode { code: String, redirect_uri: Option<String>, code_verifier: Option<String> },
    RefreshToken { refresh_token: String, scope: Option<String> },
    ClientCredentials { scope: Option<String> },
}

impl TokenRequest {
    pub fn parse(form: &Form) -> Result<Self, OAuthError> {
        let grant = form.require("grant_type", "grant_type is required.")?;
        match grant {
            "authorization_code" => Ok(Self::AuthorizationCode {
                code: form.require("code", "code is required.")?.to_owned(),
                redirect_uri: form.get("redirect_uri").map(str::to_owned),
                code_verifier: form.get("code_verifier").map(str::to_owned),
            }),
            "refresh_token" => Ok(Self::RefreshToken {
                refresh_token: form.require("refresh_token", "refresh_token is required.")?.to_owned(),
                scope: form.get("scope").map(str::to_owned),
            }),
            "client_credentials" => {
                Ok(Self::ClientCredentials { scope: form.get("scope").map(str::to_owned) })
            }
            _ => Err(OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                "This grant type is not supported.",
            )),
        }
    }
}

/// A successful token response (§5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

#[tracing::instrument(skip_all, fields(client_id = tracing::field::Empty, grant = tracing::field::Empty))]
async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, OAuthError> {
    let (form, client) = authenticated_form(&req, payload, &state, &issuer).await?;
    let request = TokenRequest::parse(&form)?;
    let span = tracing::Span::current();
    let response = match request {
        TokenRequest::ClientCredentials { scope } => {
            span.record("grant", "client_credentials");
            let scope = client_credentials::check(&state.core, &client, scope.as_deref())?;
            let (status, _, at) =
                state.status_lists.assign(&state.core, &issuer.issuer, &client).await.map_err(|e| {
                    tracing::error!(error = ?e, "no status-list index");
                    OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "Try again shortly.")
                })?;
            let response = client_credentials::grant(&state.core, &issuer, &client, scope, Some(status), at)?;
            state.issuance.record(client.id.as_str(), response.scope.as_deref(), state.core.clock.now());
            response
        }
        TokenRequest::AuthorizationCode { code, redirect_uri, code_verifier } => {
            span.record("grant", "authorization_code");
            authorization_code::grant(
                &state,
                &issuer,
                &client,
                &code,
                redirect_uri.as_deref(),
                code_verifier.as_deref(),
            )
            .await?
        }
        TokenRequest::RefreshToken { refresh_token, scope } => {
            span.record("grant", "refresh_token");
            refresh_token::grant(&state, &issuer, &client, &refresh_token, scope.as_deref()).await?
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .insert_header(("pragma", "no-cache"))
        .json(response))
}

/// The form body of an OAuth endpoint; any other content type is `invalid_request`.
pub fn form_body(req: &HttpRequest, body: &[u8]) -> Result<Form, OAuthError> {
    let is_form = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    if !is_form {
        return Err(OAuthError::invalid_request("Send the request as application/x-www-form-urlencoded."));
    }
    Form::parse(body)
}

/// The `Authorization` header, if any (an unreadable one counts as present and wrong).
pub fn authorization(req: &HttpRequest) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""))
}

/// The common start of the token, introspection and revocation endpoints: the strict form
/// body and the client it authenticates (recorded on the request's span).
pub async fn authenticated_form(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    issuer: &Issuer,
) -> Result<(Form, client_auth::AuthenticatedClient), OAuthError> {
    // Read here rather than by the Bytes extractor, whose overflow answer is plain text: an
    // OAuth client must get an RFC 6749 JSON body for every failure.
    let body = match payload.to_bytes_limited(state.core.settings.http.max_body_bytes).await {
        Ok(Ok(bytes)) => bytes,
        // Over our limit, or over the declared length's limit as the stream reports it.
        Err(_) => return Err(too_large()),
        Ok(Err(e))
            if matches!(
                e.as_error::<actix_web::error::PayloadError>(),
                Some(actix_web::error::PayloadError::Overflow)
            ) =>
        {
            return Err(too_large());
        }
        Ok(Err(_)) => return Err(OAuthError::invalid_request("The request body could not be read.")),
    };
    let form = form_body(req, &body)?;
    let presented = client_auth::presented(authorization(req), &form)?;
    // An address past its limit of failed authentications of this client is refused before
    // any check: a guesser must not learn from a right secret sent among the wrong ones.
    let ip = crate::http::client_ip::of_request(req);
    let named = presented.client_id();
    if let Some(refused) = state.limits.refusing(Limit::ClientAuthFailure, ip, Some(named)) {
        return Err(OAuthError::too_many(refused));
    }
    let client = match authenticate(state, issuer, &presented).await {
        Ok(c) => c,
        Err(e) if e.error == OAuthErrorCode::InvalidClient => {
            charge_failed_authentication(state, ip, &presented).await;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    tracing::Span::current().record("client_id", client.id.as_str());
    Ok((form, client))
}

/// Counts a failed client authentication against its address: a wrong secret or assertion
/// of a client that holds one against that client (its secret lives on a server, so refusing
/// it at an address never shuts out field staff there), a client that does not exist as an
/// unknown lookup. A public client presenting no credential has nothing to guess.
async fn charge_failed_authentication(state: &AppState, ip: Option<std::net::IpAddr>, presented: &Presented) {
    let id = client_auth::lookup_id(presented);
    match state.clients.get(&id).await {
        Ok(None) => state.limits.charge_failure(Limit::UnknownLookup, ip, None).await,
        Ok(Some(e)) if e.0.registration.token_endpoint_auth_method != crate::domain::AuthMethod::None => {
            state.limits.charge_failure(Limit::ClientAuthFailure, ip, Some(id.as_str())).await;
        }
        Ok(Some(_)) => {}
        Err(e) => tracing::warn!(error = ?e, "could not count a failed client authentication"),
    }
}

fn too_large() -> OAuthError {
    OAuthError::invalid_request("The request body is too large.")
        .with_status(actix_web::http::StatusCode::PAYLOAD_TOO_LARGE)
}

/// Authenticates the client of a token, introspection or revocation request.
pub async fn authenticate(
    state: &AppState,
    issuer: &Issuer,
    presented: &Presented,
) -> Result<client_auth::AuthenticatedClient, OAuthError> {
    let id = client_auth::lookup_id(presented);
    let found = state.clients.get(&id).await.map_err(|e| {
        tracing::error!(error = ?e, "client lookup failed");
        OAuthError::server_error()
    })?;
    let client = client_auth::verify(&state.core.keys.digester, presented, found)?;
    if let Presented::Assertion { assertion, .. } = presented {
        let now = state.core.clock.now().timestamp();
        let (jti, exp) = client_auth::verify_assertion(&client, assertion, &issuer.issuer, now)?;
        let ttl = assertion_jti_ttl(exp, now);
        let key = format!("assertion-jti:{}:{jti}", client.id);
        let fresh = state.sessions.put_if_absent(&key, b"1", ttl).await.map_err(|e| {
            tracing::error!(error = ?e, "cannot record an assertion jti");
            OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, "Try again shortly.")
        })?;
        if !fresh {
            tracing::warn!(client_id = %client.id, "replayed client assertion refused");
            return Err(OAuthError::invalid_client());
        }
    }
    Ok(client)
}

/// RFC 7523 §3 item 7: a jti is accepted once, so it is remembered for as long as its
/// assertion could still be accepted (its `exp` plus the allowed clock skew), with a margin.
fn assertion_jti_ttl(exp: i64, now: i64) -> std::time::Duration {
    std::time::Duration::from_secs(u64::try_from(exp - now + 120).unwrap_or(120))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assertions_jti_outlives_every_instant_it_could_be_accepted_at() {
        let now = 1_800_000_000;
        let longest = client_auth::MAX_ASSERTION_LIFETIME_SECS;
        for exp in [now - 59, now, now + 120, now + longest] {
            let ttl = assertion_jti_ttl(exp, now).as_secs();
            // verify_assertion accepts until exp + 60 s of skew.
            assert!(ttl > u64::try_from(exp + 60 - now).unwrap(), "exp {exp}: {ttl}");
            assert!(ttl <= u64::try_from(exp + 120 - now).unwrap(), "exp {exp}: kept no longer than needed");
        }
    }

    fn form(s: &str) -> Form {
        Form::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn requests_parse_by_grant_and_unknown_grants_are_unsupported() {
        assert_eq!(
            TokenRequest::parse(&form("grant_type=client_credentials&scope=a+b")).unwrap(),
            TokenRequest::ClientCredentials { scope: Some("a b".into()) }
        );
        assert_eq!(
            TokenRequest::parse(&form("grant_type=password&username=x")).unwrap_err().error,
            OAuthErrorCode::UnsupportedGrantType
        );
        assert_eq!(TokenRequest::parse(&form("scope=a")).unwrap_err().error, OAuthErrorCode::InvalidRequest);
        assert_eq!(
            TokenRequest::parse(&form("grant_type=authorization_code")).unwrap_err().error,
            OAuthErrorCode::InvalidRequest
        );
    }
}
