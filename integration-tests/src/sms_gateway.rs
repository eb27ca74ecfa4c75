//! A real HTTP SMS gateway for the tests: an actix-web server on a random port that takes the
//! JSON requests Pramaan's `http` gateway sends (`{"to": …, "text": …}` with an API key
//! header), keeps them, and answers as told — accepting, or failing with a status.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

/// The API key the stub requires in `X-Api-Key`.
pub const API_KEY: &str = "test-sms-api-key";

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: String,
    pub text: String,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Requests answered with `fail_with` (failures are not kept as messages).
    failed: usize,
    fail_with: Option<u16>,
}

pub struct SmsStub {
    /// The URL to put in `sms.http.url`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(req: HttpRequest, body: web::Bytes, inner: web::Data<Arc<Mutex<Inner>>>) -> HttpResponse {
    let key_ok = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY);
    let json_ok = req.headers().get("content-type").and_then(|v| v.to_str().ok()) == Some("application/json");
    let mut inner = inner.lock().unwrap();
    if let Some(status) = inner.fail_with {
        inner.failed += 1;
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish();
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else { return HttpResponse::BadRequest().finish() };
    if !key_ok || !json_ok {
        return HttpResponse::Unauthorized().finish();
    }
    inner.received.push(Received {
        to: v["to"].as_str().unwrap_or_default().to_owned(),
        text: v["text"].as_str().unwrap_or_default().to_owned(),
    });
    HttpResponse::Accepted().json(serde_json::json!({ "status": "queued" }))
}

impl SmsStub {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let data = web::Data::new(inner.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).route("/send", web::post().to(receive))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("the SMS stub binds");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { url: format!("http://127.0.0.1:{port}/send"), inner, handle }
    }

    /// Settings that send through this stub, with quick retries.
    pub fn configure(&self, s: &mut pramaan_server::config::Settings) {
        use pramaan_server::config::{Secret, SmsGatewayKind};
        s.sms.gateway = SmsGatewayKind::Http;
        s.sms.http.url = self.url.clone();
        s.sms.http.headers.insert("X-Api-Key".into(), Secret::new(API_KEY.into()));
        s.sms.http.retries = 1;
        s.sms.http.retry_backoff_ms = 10;
        s.sms.http.timeout_secs = 5;
    }

    /// From now on, answer every request with `status` (`None`: accept again).
    pub fn fail_with(&self, status: Option<u16>) {
        self.inner.lock().unwrap().fail_with = status;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    pub fn failed_requests(&self) -> usize {
        self.inner.lock().unwrap().failed
    }

    /// The six-digit code in the newest message.
    pub fn last_code(&self) -> String {
        let last = self.received().pop().expect("a message was sent");
        last.text.chars().take(6).collect()
    }
}

impl Drop for SmsStub {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
