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
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]), "plain is not offered");
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
}

#[tokio::test]
async fn the_openid_configuration_has_every_required_field_and_each_endpoint_answers() {
    let app = spawn_app().await;
    let resp = app.get("/.well-known/openid-configuration").await;
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    // OIDC Discovery 1.0 §3: REQUIRED metadata.
    for required in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(doc.get(required).is_some(), "{required} missing: {doc}");
    }
    assert_eq!(doc["issuer"], app.address.as_str());
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
    // §3: RS256 must be included; request objects are not supported and must say so.
    assert_eq!(doc["request_uri_parameter_supported"], false);
    assert_eq!(doc["request_parameter_supported"], false);
    let scopes = doc["scopes_supported"].as_array().unwrap();
    assert!(scopes.contains(&Value::from("openid")));
    // Browser endpoints answer GET (an error page or 401, never a 404 or 5xx).
    for (field, want) in
        [("authorization_endpoint", 400), ("userinfo_endpoint", 401), ("end_session_endpoint", 200)]
    {
        let url = doc[field].as_str().unwrap();
        assert!(url.starts_with(&app.address), "{field}: {url}");
        assert_eq!(app.client.get(url).send().await.unwrap().status(), want, "{field}");
    }
}
