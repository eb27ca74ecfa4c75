//! The UserInfo endpoint (OIDC Core §5.3), GET and POST, with a Bearer access token
//! (RFC 6750). The token must be active by the same rules as introspection (revocation,
//! login, account, client), belong to a person, and carry `openid`. Claims follow the scopes
//! (§5.4).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::Issuer;
use super::introspect::active_claims;
use crate::domain::UserId;
use crate::state::AppState;
use crate::store::users;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/userinfo", web::get().to(userinfo)).route("/userinfo", web::post().to(userinfo));
}

/// An RFC 6750 §3 error: the code goes in `WWW-Authenticate` (and, for tooling, the body).
fn bearer_error(status: StatusCode, error: Option<&str>, description: &str) -> HttpResponse {
    let challenge = match error {
        Some(e) => format!(r#"Bearer realm="pramaan", error="{e}", error_description="{description}""#),
        // §3.1: a request without any token gets no error code.
        None => r#"Bearer realm="pramaan""#.to_owned(),
    };
    let mut b = HttpResponse::build(status);
    b.insert_header((header::WWW_AUTHENTICATE, challenge)).insert_header((header::CACHE_CONTROL, "no-store"));
    match error {
        Some(e) => b.json(json!({ "error": e, "error_description": description })),
        None => b.finish(),
    }
}

/// The token from `Authorization: Bearer` (§2.1) or, for a form POST, `access_token` (§2.2).
/// Two ways at once is `invalid_request` (§2).
// The error is the page to answer with; it is built once and returned at once.
#[allow(clippy::result_large_err)]
fn bearer_token(req: &HttpRequest, body: &[u8]) -> Result<Option<String>, HttpResponse> {
    let from_header = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().unwrap_or("");
            match v.split_once(' ') {
                Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
                    Some(t.trim().to_owned())
                }
                _ => {
                    return Err(bearer_error(
                        StatusCode::BAD_REQUEST,
                        Some("invalid_request"),
                        "Send the access token as Authorization: Bearer <token>.",
                    ));
                }
            }
        }
    };
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let from_body = if req.method() == actix_web::http::Method::POST && is_form {
        form_urlencoded::parse(body).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned())
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(bearer_error(
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "Send the access token one way only.",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

#[tracing::instrument(skip_all)]
async fn userinfo(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
) -> HttpResponse {
    let token = match bearer_token(&req, &body) {
        Ok(Some(t)) => t,
        Ok(None) => return bearer_error(StatusCode::UNAUTHORIZED, None, ""),
        Err(resp) => return resp,
    };
    let invalid = || {
        bearer_error(
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "The access token is invalid, expired or revoked.",
        )
    };
    let claims = match active_claims(&state, &issuer, &token).await {
        Ok(Some(c)) => c,
        Ok(None) => return invalid(),
        Err(_) => {
            return bearer_error(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("temporarily_unavailable"),
                "Try again shortly.",
            );
        }
    };
    // A client's own token (client credentials) has no person behind it.
    if claims.sid.is_none() {
        return invalid();
    }
    let scopes: Vec<&str> = claims.scope.as_deref().unwrap_or("").split(' ').collect();
    if !scopes.contains(&"openid") {
        return bearer_error(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "The token lacks the openid scope.",
        );
    }
    let uid = UserId::from_string(claims.sub.clone());
    let user = match state.core.db.run(move |c| users::find(c, &uid)).await {
        Ok(Some(u)) => u,
        Ok(None) => return invalid(),
        Err(e) => {
            tracing::error!(error = ?e, "user lookup failed");
            return bearer_error(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("temporarily_unavailable"),
                "Try again shortly.",
            );
        }
    };
    let mut out = Map::new();
    out.insert("sub".into(), Value::String(user.id.to_string()));
    if scopes.contains(&"profile") {
        out.insert("name".into(), Value::String(user.display_name.clone()));
        out.insert("preferred_username".into(), Value::String(user.username.to_string()));
        out.insert("updated_at".into(), json!(user.updated_at.timestamp()));
    }
    if scopes.contains(&"email")
        && let Some(e) = &user.email
    {
        out.insert("email".into(), Value::String(e.as_str().to_owned()));
        // Nothing here proves the address reaches the person.
        out.insert("email_verified".into(), Value::Bool(false));
    }
    if scopes.contains(&"phone")
        && let Some(p) = &user.phone
    {
        out.insert("phone_number".into(), Value::String(p.as_str().to_owned()));
        out.insert("phone_number_verified".into(), Value::Bool(false));
    }
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(Value::Object(out))
}
