//! `GET /jwks`: the published signing keys (RFC 7517 §5), served from the key ring's
//! pre-serialised document with caching headers.

use actix_web::http::header::{self, EntityTag, IfNoneMatch};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use crate::state::AppState;

/// Where the JWKS is served; discovery advertises `<public_url>/jwks` as `jwks_uri`.
pub const JWKS_PATH: &str = "/jwks";

/// The `jwks_uri` for an issuer whose base URL is `public_url` (no trailing slash).
pub fn jwks_uri(public_url: &str) -> String {
    format!("{public_url}{JWKS_PATH}")
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(JWKS_PATH, web::get().to(jwks));
}

/// RFC 7517 §8.5.1 registers `application/jwk-set+json`.
const CONTENT_TYPE: &str = "application/jwk-set+json";

#[tracing::instrument(skip_all)]
async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let doc = state.core.keyring.jwks();
    let cache = format!("public, max-age={}", state.core.settings.tokens.jwks_max_age_secs);
    if not_modified(req.get_header::<IfNoneMatch>(), &doc.etag) {
        // RFC 9110 §15.4.5: a 304 repeats ETag and Cache-Control.
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, doc.etag.as_str()))
            .insert_header((header::CACHE_CONTROL, cache))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .insert_header((header::ETAG, doc.etag.as_str()))
        .insert_header((header::CACHE_CONTROL, cache))
        .body(web::Bytes::from_owner(doc.body.clone()))
}

/// RFC 9110 §13.1.2: If-None-Match uses the weak comparison; `*` matches any current body.
/// `etag` is ours, strong (`"…"`) or weak (`W/"…"`).
pub(super) fn not_modified(header: Option<IfNoneMatch>, etag: &str) -> bool {
    let tag = etag.strip_prefix("W/").unwrap_or(etag);
    let Some(ours) = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else { return false };
    let ours = EntityTag::new_strong(ours.to_owned());
    match header {
        Some(IfNoneMatch::Any) => true,
        Some(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&ours)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_accepts_a_star() {
        let tag = "\"abc\"";
        let items = |v: Vec<EntityTag>| Some(IfNoneMatch::Items(v));
        assert!(not_modified(items(vec![EntityTag::new_strong("abc".into())]), tag));
        assert!(not_modified(items(vec![EntityTag::new_weak("abc".into())]), tag));
        assert!(not_modified(
            items(vec![EntityTag::new_strong("x".into()), EntityTag::new_strong("abc".into())]),
            tag
        ));
        assert!(not_modified(Some(IfNoneMatch::Any), tag));
        assert!(!not_modified(items(vec![EntityTag::new_strong("abd".into())]), tag));
        assert!(!not_modified(None, tag));
        // Our own tag may be weak: the comparison is weak either way.
        assert!(not_modified(items(vec![EntityTag::new_weak("abc".into())]), "W/\"abc\""));
        assert!(not_modified(items(vec![EntityTag::new_strong("abc".into())]), "W/\"abc\""));
        assert!(!not_modified(items(vec![EntityTag::new_strong("abd".into())]), "W/\"abc\""));
    }
}
