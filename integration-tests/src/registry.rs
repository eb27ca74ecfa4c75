//! A resource server as the registry would run one: it validates Pramaan's access tokens
//! locally (JWKS, `typ`, `iss`, `aud`, `exp`) and checks each token's bit in the status list it
//! names, caching every list for the list's own `ttl` and revalidating with its `ETag`.
//!
//! It holds no client credentials, so it cannot call introspection: whatever it rejects, it
//! rejects from the token and the lists alone. It is written against the draft
//! (draft-ietf-oauth-status-list) with `jsonwebtoken` and `flate2`, not with Pramaan's code,
//! so a mistake in Pramaan's encoding fails here.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// A list as the registry holds it.
#[derive(Clone)]
struct Cached {
    bytes: Vec<u8>,
    fetched: Instant,
    ttl: Duration,
    etag: Option<String>,
    /// The list token's `exp`: past it, the copy is unusable whatever a 304 says.
    exp: i64,
}

pub struct Registry {
    http: reqwest::Client,
    issuer: String,
    audience: String,
    jwks: JwkSet,
    lists: Mutex<HashMap<String, Cached>>,
    /// Requests made for lists (200 and 304 alike).
    pub list_requests: AtomicUsize,
    /// Of those, answered 304 Not Modified.
    pub not_modified: AtomicUsize,
}

impl Registry {
    /// A registry trusting `issuer` (whose JWKS it fetches now) for tokens meant for `audience`.
    pub async fn new(issuer: &str, audience: &str) -> Self {
        let http = reqwest::Client::new();
        let jwks = http.get(format!("{issuer}/jwks")).send().await.unwrap().json().await.unwrap();
        Self {
            http,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            jwks,
            lists: Mutex::default(),
            list_requests: AtomicUsize::new(0),
            not_modified: AtomicUsize::new(0),
        }
    }

    fn key(&self, token: &str, typ: &str) -> Result<DecodingKey, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        if header.typ.as_deref() != Some(typ) {
            return Err(format!("typ {:?}, not {typ}", header.typ));
        }
        if header.alg != Algorithm::ES256 {
            return Err(format!("alg {:?}", header.alg));
        }
        let kid = header.kid.ok_or("no kid")?;
        let jwk = self.jwks.find(&kid).ok_or("unknown kid")?;
        DecodingKey::from_jwk(jwk).map_err(|e| format!("jwk: {e}"))
    }

    /// Accepts `token` (its claims) or says why not.
    pub async fn check(&self, token: &str) -> Result<Value, String> {
        let key = self.key(token, "at+jwt")?;
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[self.issuer.as_str()]);
        v.set_audience(&[self.audience.as_str()]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let claims =
            jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| format!("token: {e}"))?.claims;
        let status = &claims["status"]["status_list"];
        let idx = status["idx"].as_u64().ok_or("no status index")?;
        let uri = status["uri"].as_str().ok_or("no status list uri")?;
        // Only lists of the token's own issuer: a token cannot point at a list it chose.
        if !uri.starts_with(&format!("{}/", self.issuer)) {
            return Err(format!("status list {uri} is not the issuer's"));
        }
        let bytes = self.list(uri).await?;
        let idx = usize::try_from(idx).map_err(|_| "index too large")?;
        let byte = bytes.get(idx / 8).ok_or("index beyond the list")?;
        if byte & (1 << (idx % 8)) != 0 {
            return Err("revoked (status list)".into());
        }
        Ok(claims)
    }

    async fn list(&self, uri: &str) -> Result<Vec<u8>, String> {
        let cached = self.lists.lock().unwrap().get(uri).cloned();
        let now = chrono::Utc::now().timestamp();
        let cached = cached.filter(|c| c.exp > now);
        if let Some(c) = &cached
            && c.fetched.elapsed() < c.ttl
        {
            return Ok(c.bytes.clone());
        }
        self.list_requests.fetch_add(1, Ordering::SeqCst);
        let mut req = self.http.get(uri).header("accept", "application/statuslist+jwt");
        if let Some(tag) = cached.as_ref().and_then(|c| c.etag.clone()) {
            req = req.header("if-none-match", tag);
        }
        let resp = req.send().await.map_err(|e| format!("fetching {uri}: {e}"))?;
        if resp.status() == 304
            && let Some(mut c) = cached
        {
            self.not_modified.fetch_add(1, Ordering::SeqCst);
            c.fetched = Instant::now();
            self.lists.lock().unwrap().insert(uri.to_owned(), c.clone());
            return Ok(c.bytes);
        }
        if resp.status() != 200 {
            return Err(format!("status list {uri}: {}", resp.status()));
        }
        let ctype = resp.headers().get("content-type").and_then(|h| h.to_str().ok()).unwrap_or("").to_owned();
        if ctype != "application/statuslist+jwt" {
            return Err(format!("status list content type {ctype}"));
        }
        let etag = resp.headers().get("etag").and_then(|h| h.to_str().ok()).map(str::to_owned);
        let jwt = resp.text().await.map_err(|e| e.to_string())?;
        let key = self.key(&jwt, "statuslist+jwt")?;
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_aud = false;
        v.set_required_spec_claims(&["sub", "iat", "exp"]);
        v.sub = Some(uri.to_owned());
        let claims = jsonwebtoken::decode::<Value>(&jwt, &key, &v).map_err(|e| format!("list: {e}"))?.claims;
        let list = &claims["status_list"];
        if list["bits"] != 1 {
            return Err(format!("bits {}", list["bits"]));
        }
        let lst = list["lst"].as_str().ok_or("no lst")?;
        let compressed = URL_SAFE_NO_PAD.decode(lst).map_err(|e| format!("lst: {e}"))?;
        let mut bytes = Vec::new();
        flate2::read::ZlibDecoder::new(compressed.as_slice())
            .take(16 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("lst: {e}"))?;
        let ttl = Duration::from_secs(claims["ttl"].as_u64().ok_or("no ttl")?);
        let exp = claims["exp"].as_i64().ok_or("no exp")?;
        let c = Cached { bytes: bytes.clone(), fetched: Instant::now(), ttl, etag, exp };
        self.lists.lock().unwrap().insert(uri.to_owned(), c);
        Ok(bytes)
    }
}
