//! RFC 8414 authorization server metadata: what it lists exists, and it caches.

use pramaan_integration_tests::spawn_app;
use serde_json::Value;

#[tokio::test]
async fn the_metadata_lists_only_working_endpoints_and_is_cacheable() {
    let app = spawn_app().await;
    let resp = app.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["cache-control"].to_str().unwrap().starts_with("public, max-age="));
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let doc: Value = resp.json().await.unwrap();
    // RFC 8414 §3.3: the issuer in the document is the one it was fetched for.
    assert_eq!(doc["issuer"], app.address.as_str());
    for required in ["issuer", "token_endpoint", "jwks_uri", "response_types_supported"] {
        assert!(doc.get(required).is_some(), "{required} missing: {doc}");
    }
    assert_eq!(doc["grant_types_supported"], serde_json::json!(["client_credentials"]));
    // Every advertised endpoint answers (GET on a POST endpoint is 404/405, never a 5xx).
    for field in ["token_endpoint", "introspection_endpoint", "revocation_endpoint"] {
        let url = doc[field].as_str().unwrap();
        assert!(url.starts_with(&app.address), "{field}: {url}");
        let r = app
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{field} exists and wants client authentication");
    }
    let jwks = app.client.get(doc["jwks_uri"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(jwks.status(), 200);
    let again = app
        .client
        .get(format!("{}/.well-known/oauth-authorization-server", app.address))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    // OIDC discovery needs an authorization endpoint; until it exists, there is no document.
    assert_eq!(app.get("/.well-known/openid-configuration").await.status(), 404);
}
