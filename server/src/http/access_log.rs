//! One log line per request, and the request's root span.
//!
//! The default span of `tracing-actix-web` records the whole target, query string included;
//! query strings can carry codes and tokens, so this span records the path only. Nor are
//! headers or bodies recorded: credentials travel there.

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

use super::client_ip::TrustedProxies;

pub struct AccessLog;

impl RootSpanBuilder for AccessLog {
    fn on_request_start(request: &ServiceRequest) -> Span {
        // With the log below `info` (the benchmarks, busy production nodes) the span would be
        // disabled anyway: skip formatting its fields on every request.
        if !tracing::span_enabled!(tracing::Level::INFO) {
            return Span::none();
        }
        let request_id = request.extensions().get::<RequestId>().map(ToString::to_string).unwrap_or_default();
        // X-Forwarded-For only from the proxies named in http.trusted_proxies.
        let forwarded: Vec<&str> =
            request.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect();
        let peer = request
            .app_data::<actix_web::web::Data<TrustedProxies>>()
            .and_then(|t| t.client_ip(request.peer_addr().map(|a| a.ip()), &forwarded))
            .or_else(|| request.peer_addr().map(|a| a.ip()))
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
        tracing::info_span!(
            "http",
            method = %request.method(),
            path = %request.path(),
            request_id = %request_id,
            peer = %peer,
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, actix_web::Error>) {
        let _entered = span.enter();
        match outcome {
            Ok(response) => {
                let status = response.status().as_u16();
                span.record("status", status);
                if response.status() == actix_web::http::StatusCode::TOO_MANY_REQUESTS
                    || response.response().extensions().get::<super::intake::Refused>().is_some()
                {
                    // A flood's refusals: the limiter and the intake log each address once per
                    // window and the trail counts them, so a flood cannot fill the disk.
                    tracing::debug!(status, "request refused");
                } else if response.status().is_server_error() {
                    // The cause is in the response's error, for logs only (Debug carries the chain).
                    let cause = response.response().error().map(|e| format!("{e:?}"));
                    tracing::error!(status, cause, "request failed");
                } else {
                    tracing::info!(status, "request completed");
                }
            }
            Err(e) => tracing::error!(error = ?e, "request failed before a response"),
        }
    }
}
