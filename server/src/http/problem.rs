//! RFC 9457 problem details: the error body of the admin API and the fallback for any request
//! that fails before a handler runs (unknown path, body too large, malformed JSON or form).
//! `detail` is written for the caller and never carries internal error text.

use actix_web::error::{InternalError, JsonPayloadError, UrlencodedError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

/// A problem details object (RFC 9457 §3.1).
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Extension members (RFC 9457 §3.2).
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            // RFC 9457 §4.2.1: "about:blank" when the status code says it all.
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            extensions: serde_json::Map::new(),
        }
    }

    /// A problem of a type of our own (RFC 9457 §4): `kind` is its URI, `title` its summary.
    pub fn typed(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self { kind, title, ..Self::new(status, detail) }
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .content_type("application/problem+json")
            .insert_header(("cache-control", "no-store"))
            .json(self)
    }
}

/// Body limits and extractor error bodies for every route: a body over `max_body` is 413, a
/// body that does not parse is 400, a wrong content type 415 — each as problem+json, and none
/// echoing the parser's text (it can quote the body back).
pub fn configure(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(web::PayloadConfig::new(max_body))
        .app_data(web::JsonConfig::default().limit(max_body).error_handler(json_error))
        .app_data(web::FormConfig::default().limit(max_body).error_handler(form_error))
        .app_data(
            web::QueryConfig::default().error_handler(|_, _| {
                problem_error(StatusCode::BAD_REQUEST, "The query string is malformed.")
            }),
        );
}

fn problem_error(status: StatusCode, detail: &str) -> actix_web::Error {
    let response = Problem::new(status, detail).response();
    InternalError::from_response(detail.to_owned(), response).into()
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            problem_error(StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large.")
        }
        JsonPayloadError::ContentType => {
            problem_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Send the body as application/json.")
        }
        _ => problem_error(
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON of the expected shape.",
        ),
    }
}

fn form_error(err: UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    match err {
        UrlencodedError::Overflow { .. } => {
            problem_error(StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large.")
        }
        UrlencodedError::ContentType => problem_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the body as application/x-www-form-urlencoded.",
        ),
        _ => problem_error(StatusCode::BAD_REQUEST, "The form body is malformed."),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{App, test};
    use serde_json::Value;

    use super::*;

    async fn echo_json(body: web::Json<Value>) -> HttpResponse {
        HttpResponse::Ok().json(body.into_inner())
    }

    async fn echo_form(body: web::Form<std::collections::HashMap<String, String>>) -> HttpResponse {
        HttpResponse::Ok().json(body.into_inner())
    }

    async fn problem_of(resp: actix_web::dev::ServiceResponse) -> (u16, Value) {
        let status = resp.status().as_u16();
        assert_eq!(resp.headers().get("content-type").unwrap(), "application/problem+json");
        (status, test::read_body_json(resp).await)
    }

    #[actix_web::test]
    async fn oversized_malformed_and_mistyped_bodies_get_problem_json() {
        let app = test::init_service(
            App::new()
                .configure(|c| configure(c, 1024))
                .route("/json", web::post().to(echo_json))
                .route("/form", web::post().to(echo_form)),
        )
        .await;
        let ok = test::call_service(
            &app,
            test::TestRequest::post().uri("/json").set_json(serde_json::json!({"a": 1})).to_request(),
        )
        .await;
        assert_eq!(ok.status(), 200);

        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(2000));
        let req = test::TestRequest::post()
            .uri("/json")
            .insert_header(("content-type", "application/json"))
            .set_payload(big)
            .to_request();
        let (status, body) = problem_of(test::call_service(&app, req).await).await;
        assert_eq!((status, body["status"].as_u64()), (413, Some(413)));

        let req = test::TestRequest::post()
            .uri("/json")
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"secret-token\": ")
            .to_request();
        let (status, body) = problem_of(test::call_service(&app, req).await).await;
        assert_eq!(status, 400);
        assert!(!body.to_string().contains("secret-token"), "parser text must not echo the body: {body}");
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Bad Request");

        let req = test::TestRequest::post()
            .uri("/json")
            .insert_header(("content-type", "text/plain"))
            .set_payload("{}")
            .to_request();
        assert_eq!(problem_of(test::call_service(&app, req).await).await.0, 415);

        let req = test::TestRequest::post()
            .uri("/form")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(format!("a={}", "x".repeat(2000)))
            .to_request();
        assert_eq!(problem_of(test::call_service(&app, req).await).await.0, 413);
    }
}
