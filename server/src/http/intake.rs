//! What a request must pass before any handler sees it: a connection cap per client address, a
//! body read within a time limit and a size limit, and no NUL byte anywhere an identifier can
//! travel (PostgreSQL refuses NUL in text, SQLite stores it: refusing it here makes both
//! backends answer alike, and no bad input reaches either).
//!
//! - A connection beyond `http.max_connections_per_address` from one address (IPv6: one /64;
//!   trusted proxies count only against the global cap) is answered 503 and closed as soon as
//!   its request head arrives, so one address cannot hold every socket the process may open.
//! - A declared `Content-Length` over `http.max_body_bytes` is 413 before a byte is read; a
//!   body that does not arrive within `http.body_read_timeout_secs` is 408; both close the
//!   connection (the rest of the body is never read).
//! - A NUL byte in the path, the query or the body (raw, `%00` in a form, `\u0000` in JSON) is
//!   400.
//!
//! Errors take the shape of the endpoint: RFC 6749 §5.2 JSON on the OAuth endpoints, RFC 9457
//! problem+json elsewhere.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{ConnectionType, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, web};
use futures_util::StreamExt;

use super::problem::Problem;
use crate::domain::network_of;

/// Marks a response this layer refused, so the access log does not write a line per refusal
/// of a flood.
#[derive(Debug, Clone, Copy)]
pub struct Refused;

/// The limits this layer enforces (from `[http]`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
}

/// Live connections per client network, shared by every worker of one server.
#[derive(Debug, Clone)]
pub struct ConnectionTracker {
    inner: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_address: usize,
    exempt: Arc<Vec<IpAddr>>,
}

/// Held in a connection's data for its whole life; dropping it gives the slot back.
#[derive(Debug)]
pub struct ConnectionSlot {
    tracker: ConnectionTracker,
    network: IpAddr,
    /// This connection is one too many for its address: its requests get 503 and it closes.
    pub over: bool,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = self.tracker.lock();
        if let Some(n) = map.get_mut(&self.network) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.network);
            }
        }
    }
}

impl ConnectionTracker {
    /// `exempt`: the trusted proxies, whose connections carry many people's requests.
    pub fn new(per_address: usize, exempt: Vec<IpAddr>) -> Self {
        Self { inner: Arc::new(Mutex::new(HashMap::new())), per_address, exempt: Arc::new(exempt) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // The map is consistent after every statement: a poisoned lock still guards good data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection from `peer`; `None` for an exempt peer.
    pub fn enter(&self, peer: IpAddr) -> Option<ConnectionSlot> {
        let peer = peer.to_canonical();
        if self.exempt.contains(&peer) {
            return None;
        }
        let network = network_of(peer);
        let mut map = self.lock();
        let n = map.entry(network).or_insert(0);
        *n += 1;
        let over = *n > self.per_address;
        if *n == self.per_address + 1 {
            // Once as the address goes over, not once per refused connection.
            tracing::warn!(network = %network, cap = self.per_address, "connections per address reached; refusing more");
        }
        drop(map);
        Some(ConnectionSlot { tracker: self.clone(), network, over })
    }

    /// Live connections from the network of `peer` (for tests and metrics).
    pub fn count(&self, peer: IpAddr) -> usize {
        self.lock().get(&network_of(peer.to_canonical())).copied().unwrap_or(0)
    }

    /// The `on_connect` hook: records the connection's slot in its data.
    pub fn on_connect(&self, conn: &dyn std::any::Any, data: &mut Extensions) {
        type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
        let peer = if let Some(sock) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            sock.peer_addr().ok()
        } else if let Some(tls) = conn.downcast_ref::<Tls>() {
            tls.get_ref().0.peer_addr().ok()
        } else {
            None
        };
        if let Some(slot) = peer.and_then(|p| self.enter(p.ip())) {
            data.insert(slot);
        }
    }
}

/// The endpoints whose errors are RFC 6749 §5.2 JSON (and RFC 7662's, RFC 7009's).
fn is_oauth_path(path: &str) -> bool {
    matches!(path, "/token" | "/introspect" | "/revoke" | "/userinfo")
}

fn refuse(
    req: ServiceRequest,
    status: StatusCode,
    code: &'static str,
    detail: &'static str,
) -> ServiceResponse {
    let mut resp = if is_oauth_path(req.path()) {
        HttpResponse::build(status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({ "error": code, "error_description": detail }))
    } else {
        Problem::new(status, detail).response()
    };
    if status != StatusCode::BAD_REQUEST {
        // The rest of the body is never read: the connection cannot carry another request.
        resp.head_mut().set_connection_type(ConnectionType::Close);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp.extensions_mut().insert(Refused);
    req.into_response(resp)
}

/// Whether `bytes` holds a NUL byte in any spelling the body's type decodes to one.
fn has_nul(bytes: &[u8], content_type: &str) -> bool {
    if bytes.contains(&0) {
        return true;
    }
    let lower = |w: &[u8], pat: &[u8]| w.iter().zip(pat).all(|(a, b)| a.to_ascii_lowercase() == *b);
    if content_type.starts_with("application/json") || content_type.ends_with("+json") {
        // `\u0000`; an escaped backslash before it (`\\u0000`) is the text "\u0000", which is
        // refused too: nothing legitimate sends it, and telling the cases apart needs a parser.
        return bytes.windows(6).any(|w| lower(w, b"\\u0000"));
    }
    // Any other body may be read as a form whatever it claims to be (the pages parse theirs
    // without asking), so `%00` counts everywhere but in JSON, where it is only text.
    bytes.windows(3).any(|w| w == b"%00")
}

/// The middleware: see the module head.
pub async fn intake(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if req.conn_data::<ConnectionSlot>().is_some_and(|s| s.over) {
        return Ok(refuse(
            req,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "Too many connections from this address.",
        ));
    }
    let uri = req.uri();
    if uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00")) {
        return Ok(refuse(
            req,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request holds a NUL character.",
        ));
    }
    let Some(limits) = req.app_data::<web::Data<Limits>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = req
        .headers()
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Ok(refuse(
            req,
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "The request body is too large.",
        ));
    }
    if declared.unwrap_or(0) == 0 && !chunked {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    // Read the whole body now, against one deadline; the handler then reads it from memory.
    let capacity = usize::try_from(declared.unwrap_or(0)).unwrap_or(0).min(limits.max_body_bytes);
    let mut body = web::BytesMut::with_capacity(capacity);
    let mut payload = req.take_payload();
    let deadline = tokio::time::Instant::now() + limits.body_read_timeout;
    loop {
        match tokio::time::timeout_at(deadline, payload.next()).await {
            Err(_) => {
                return Ok(refuse(
                    req,
                    StatusCode::REQUEST_TIMEOUT,
                    "invalid_request",
                    "The request body did not arrive in time.",
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Ok(refuse(
                    req,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "The request body is malformed.",
                ));
            }
            Ok(Some(Ok(chunk))) => {
                if body.len() + chunk.len() > limits.max_body_bytes {
                    return Ok(refuse(
                        req,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "invalid_request",
                        "The request body is too large.",
                    ));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if has_nul(&body, &content_type) {
        return Ok(refuse(
            req,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request holds a NUL character.",
        ));
    }
    req.set_payload(Payload::from(body.freeze()));
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nul_bytes_are_found_in_every_spelling_the_body_decodes() {
        let form = "application/x-www-form-urlencoded";
        assert!(has_nul(b"client_id=a%00b", form));
        assert!(has_nul(b"client_id=a\0b", form));
        assert!(!has_nul(b"client_id=a%2500b&x=%20", form), "%25 is a literal percent sign");
        assert!(has_nul(br#"{"name":"a\u0000"}"#, "application/json"));
        assert!(has_nul(br#"{"name":"a\U0000"}"#, "application/json; charset=utf-8"));
        assert!(!has_nul(br#"{"name":"100%00"}"#, "application/json"), "%00 is text in JSON");
        assert!(has_nul(b"a,b\0", "text/csv"));
        assert!(!has_nul(b"a,b", "text/csv"));
        assert!(has_nul(b"username=a%00b", "text/plain"), "a page reads a form whatever its type");
    }

    #[test]
    fn connections_are_counted_per_address_and_per_ipv6_64() {
        let t = ConnectionTracker::new(2, vec![ip("10.0.0.1")]);
        let a = t.enter(ip("192.0.2.1")).unwrap();
        let b = t.enter(ip("192.0.2.1")).unwrap();
        let c = t.enter(ip("192.0.2.1")).unwrap();
        assert!(!a.over && !b.over && c.over);
        assert!(!t.enter(ip("192.0.2.2")).unwrap().over, "another address has its own count");
        drop(c);
        assert_eq!(t.count(ip("192.0.2.1")), 2);
        let d = t.enter(ip("2001:db8:1:2::1")).unwrap();
        let e = t.enter(ip("2001:db8:1:2:ffff::9")).unwrap();
        let f = t.enter(ip("2001:db8:1:2::7")).unwrap();
        assert!(!d.over && !e.over && f.over, "one /64 is one subscriber");
        assert!(t.enter(ip("10.0.0.1")).is_none(), "a trusted proxy carries many people");
        assert_eq!(t.count(ip("::ffff:192.0.2.1")), 2, "a mapped IPv4 address is that address");
        drop((a, b, d, e, f));
        assert_eq!(t.count(ip("192.0.2.1")), 0);
        assert!(t.lock().is_empty(), "no entry outlives its connections");
    }
}
