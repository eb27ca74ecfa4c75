//! Client authentication at the token, introspection and revocation endpoints (RFC 6749
//! §2.3): `client_secret_basic`, `client_secret_post`, `private_key_jwt` (RFC 7523 §2.2) and,
//! for public clients, `none`.

use base64::Engine;

use super::error::OAuthError;
use super::form::Form;
use crate::crypto::{Digester, PublicJwk, VerifyingKey};
use crate::domain::{AuthMethod, Client, ClientId, ClientStatus};

/// Purpose label of client-secret digests.
pub const CLIENT_SECRET_PURPOSE: &str = "client_secret";

/// What the request presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Basic {
        id: String,
        secret: String,
    },
    Post {
        id: String,
        secret: String,
    },
    /// A public client: only its id.
    IdOnly {
        id: String,
    },
    /// A signed JWT assertion (RFC 7523); `id` is its (not yet verified) subject.
    Assertion {
        id: String,
        assertion: String,
    },
}

/// RFC 7523 §2.2: the only client assertion type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest an assertion may live: its jti is remembered this long.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 600;

/// Allowed clock difference between client and server.
const SKEW_SECS: i64 = 60;

impl Presented {
    pub fn client_id(&self) -> &str {
        match self {
            Self::Basic { id, .. }
            | Self::Post { id, .. }
            | Self::IdOnly { id }
            | Self::Assertion { id, .. } => id,
        }
    }

    fn method(&self) -> AuthMethod {
        match self {
            Self::Basic { .. } => AuthMethod::ClientSecretBasic,
            Self::Post { .. } => AuthMethod::ClientSecretPost,
            Self::IdOnly { .. } => AuthMethod::None,
            Self::Assertion { .. } => AuthMethod::PrivateKeyJwt,
        }
    }
}

/// Reads the credentials from the `Authorization` header and the form. Using more than one
/// method in one request is an error (§2.3), as is presenting none.
pub fn presented(authorization: Option<&str>, form: &Form) -> Result<Presented, OAuthError> {
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    if let Some(kind) = form.get("client_assertion_type") {
        if authorization.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request("Use one client authentication method, not two."));
        }
        if kind != JWT_BEARER {
            return Err(OAuthError::invalid_client());
        }
        let assertion = form.require("client_assertion", "client_assertion is required.")?;
        let subject = unverified_subject(assertion).ok_or_else(OAuthError::invalid_client)?;
        if body_id.is_some_and(|b| b != subject) {
            return Err(OAuthError::invalid_client());
        }
        return Ok(Presented::Assertion { id: subject, assertion: assertion.to_owned() });
    }
    if let Some(header) = authorization {
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request("Use one client authentication method, not two."));
        }
        let (id, secret) = parse_basic(header).ok_or_else(OAuthError::invalid_client)?;
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the authenticated client.",
            ));
        }
        return Ok(Presented::Basic { id, secret });
    }
    match (body_id, body_secret) {
        (Some(id), Some(secret)) => Ok(Presented::Post { id: id.to_owned(), secret: secret.to_owned() }),
        (Some(id), None) => Ok(Presented::IdOnly { id: id.to_owned() }),
        (None, _) => Err(OAuthError::invalid_client()),
    }
}

/// The `sub` of a JWT, read without verifying it: only to find whose keys verify it.
fn unverified_subject(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("sub")?.as_str().map(str::to_owned)
}

/// Checks a client assertion (RFC 7523 §3) against the client's registered keys: signature,
/// `iss` = `sub` = the client, `aud` exactly this server's issuer, unexpired with a bounded
/// lifetime, and a `jti`. Returns the jti and its expiry; the caller makes the jti single-use.
///
/// Only the issuer is accepted as audience, alone: accepting endpoint URLs or lists lets an
/// assertion a client made for another server that names our token endpoint be replayed here
/// (the audience-injection issue that the RFC 7523 update addresses).
pub fn verify_assertion(
    client: &Client,
    assertion: &str,
    issuer: &str,
    now: i64,
) -> Result<(String, i64), OAuthError> {
    let keys: Vec<VerifyingKey> = client
        .registration
        .jwks
        .as_ref()
        .and_then(|set| set.get("keys"))
        .and_then(|k| k.as_array())
        .map(|keys| keys.iter().filter_map(registered_key).collect())
        .unwrap_or_default();
    let claims =
        crate::crypto::verify_jwt(assertion, None, |kid| keys.iter().find(|k| k.kid() == kid).cloned())
            .map_err(|_| OAuthError::invalid_client())?;
    let text = |k: &str| claims.get(k).and_then(|v| v.as_str());
    let id = client.id.as_str();
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == issuer,
        Some(serde_json::Value::Array(list)) => list.len() == 1 && list[0].as_str() == Some(issuer),
        _ => false,
    };
    // Present but not a number is as bad as wrong (no "absent" by type confusion).
    for k in ["exp", "iat", "nbf"] {
        if claims.get(k).is_some_and(|v| !v.is_i64()) {
            return Err(OAuthError::invalid_client());
        }
    }
    let exp = claims.get("exp").and_then(serde_json::Value::as_i64).unwrap_or(0);
    let iat_ok =
        claims.get("iat").and_then(serde_json::Value::as_i64).is_none_or(|iat| iat <= now + SKEW_SECS);
    let nbf_ok =
        claims.get("nbf").and_then(serde_json::Value::as_i64).is_none_or(|nbf| nbf <= now + SKEW_SECS);
    let ok = text("iss") == Some(id)
        && text("sub") == Some(id)
        && aud_ok
        && exp + SKEW_SECS > now
        && exp <= now + MAX_ASSERTION_LIFETIME_SECS
        && iat_ok
        && nbf_ok;
    let jti = text("jti").filter(|j| !j.is_empty() && j.len() <= 256);
    match (ok, jti) {
        (true, Some(jti)) => Ok((jti.to_owned(), exp)),
        _ => Err(OAuthError::invalid_client()),
    }
}

/// A registered public JWK as a verifying key; keys must name `kid` and `alg` (checked at
/// registration), and `use` defaults to `sig`.
fn registered_key(jwk: &serde_json::Value) -> Option<VerifyingKey> {
    let mut jwk = jwk.clone();
    if let Some(o) = jwk.as_object_mut() {
        o.entry("use").or_insert_with(|| serde_json::Value::String("sig".into()));
    }
    let parsed: PublicJwk = serde_json::from_value(jwk).ok()?;
    if parsed.use_ != "sig" {
        return None;
    }
    VerifyingKey::from_jwk(&parsed).ok()
}

/// Whether a registered JWK is usable for `private_key_jwt` (for registration checks).
pub fn is_usable_client_key(jwk: &serde_json::Value) -> bool {
    registered_key(jwk).is_some()
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` — §2.3.1 form-encodes both parts
/// before base64, so they are decoded twice.
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let decode =
        |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    let (id, secret) = (decode(id)?, decode(secret)?);
    if id.is_empty() {
        return None;
    }
    Some((id, secret))
}

/// Decides whether `presented` authenticates `found` (the client looked up by the presented
/// id, with its secret digest). Every failure is the same `invalid_client`, and a digest is
/// computed even for an unknown client so the timing does not tell.
pub fn verify(
    digester: &Digester,
    presented: &Presented,
    found: Option<std::sync::Arc<(Client, Option<String>)>>,
) -> Result<AuthenticatedClient, OAuthError> {
    let secret = match presented {
        Presented::Basic { secret, .. } | Presented::Post { secret, .. } => Some(secret.as_str()),
        Presented::IdOnly { .. } | Presented::Assertion { .. } => None,
    };
    let Some(entry) = found else {
        if let Some(s) = secret {
            let _ = digester.digest(CLIENT_SECRET_PURPOSE, s.as_bytes());
        }
        return Err(OAuthError::invalid_client());
    };
    let (client, digest) = &*entry;
    let secret_ok = match (secret, digest) {
        (Some(s), Some(d)) => digester.verify(CLIENT_SECRET_PURPOSE, s.as_bytes(), d),
        (None, _) => true,
        (Some(s), None) => {
            let _ = digester.digest(CLIENT_SECRET_PURPOSE, s.as_bytes());
            false
        }
    };
    let method_ok = client.registration.token_endpoint_auth_method == presented.method();
    if !(secret_ok && method_ok) || client.status != ClientStatus::Active {
        return Err(OAuthError::invalid_client());
    }
    Ok(AuthenticatedClient(entry))
}

/// A client that authenticated this request: the cached entry itself, shared rather than
/// copied per request (the token endpoint's hot path).
#[derive(Debug, Clone)]
pub struct AuthenticatedClient(std::sync::Arc<(Client, Option<String>)>);

impl std::ops::Deref for AuthenticatedClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0.0
    }
}

/// The id to look up.
pub fn lookup_id(p: &Presented) -> ClientId {
    ClientId::from_string(p.client_id().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Form {
        Form::parse(form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish().as_bytes())
            .unwrap()
    }

    fn basic(id: &str, secret: &str) -> String {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
        )
    }

    #[test]
    fn basic_credentials_are_form_decoded_after_base64() {
        let p = presented(Some(&basic("my client", "s:e/c+r%t")), &form(&[])).unwrap();
        assert_eq!(p, Presented::Basic { id: "my client".into(), secret: "s:e/c+r%t".into() });
    }

    #[test]
    fn two_methods_at_once_or_none_at_all_are_refused() {
        let both = presented(Some(&basic("a", "b")), &form(&[("client_secret", "b")]));
        assert_eq!(both.unwrap_err().error, super::super::error::OAuthErrorCode::InvalidRequest);
        let mismatch = presented(Some(&basic("a", "b")), &form(&[("client_id", "other")]));
        assert!(mismatch.is_err());
        assert_eq!(presented(None, &form(&[])).unwrap_err(), OAuthError::invalid_client());
        for bad in ["Bearer x", "Basic !!!", "Basic Og==", "Basic"] {
            assert_eq!(presented(Some(bad), &form(&[])).unwrap_err(), OAuthError::invalid_client(), "{bad}");
        }
        assert_eq!(
            presented(None, &form(&[("client_id", "a"), ("client_secret", "b")])).unwrap(),
            Presented::Post { id: "a".into(), secret: "b".into() }
        );
    }

    const ISSUER: &str = "https://id.example";
    const NOW: i64 = 1_800_000_000;

    fn registered(method: AuthMethod, jwks: Option<serde_json::Value>) -> Client {
        use crate::domain::{ClientCategory, ClientRegistration, ClientType, GrantType, Scope};
        let t0 = chrono::DateTime::from_timestamp(0, 0).unwrap();
        Client {
            id: ClientId::from_string("partner".into()),
            registration: ClientRegistration {
                name: "Partner".into(),
                category: ClientCategory::Private,
                client_type: ClientType::Confidential,
                token_endpoint_auth_method: method,
                grant_types: vec![GrantType::ClientCredentials],
                scopes: Scope::parse_list("registry.read").unwrap(),
                redirect_uris: vec![],
                post_logout_redirect_uris: vec![],
                jwks,
                access_token_ttl_secs: 300,
                refresh_token_ttl_secs: 3600,
                first_party: false,
                can_introspect: false,
            },
            status: ClientStatus::Active,
            has_secret: method != AuthMethod::PrivateKeyJwt,
            secret_rotated_at: None,
            tokens_valid_after: t0,
            created_at: t0,
            updated_at: t0,
        }
    }

    fn signer() -> crate::crypto::signing::SigningKey {
        use crate::crypto::SigningAlg;
        use crate::crypto::signing::{SigningKey, generate_pkcs8};
        SigningKey::from_pkcs8(SigningAlg::ES256, &generate_pkcs8(SigningAlg::ES256, 2048).unwrap()).unwrap()
    }

    /// A client with `key` registered (as the CLI stores it: `use` may be absent).
    fn jwt_client(key: &crate::crypto::signing::SigningKey, use_: Option<&str>) -> Client {
        let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
        let o = jwk.as_object_mut().unwrap();
        o.remove("use");
        if let Some(u) = use_ {
            o.insert("use".into(), u.into());
        }
        registered(AuthMethod::PrivateKeyJwt, Some(serde_json::json!({ "keys": [jwk] })))
    }

    /// Good claims for `partner` at `NOW`, with `patch` applied (`null` removes a claim).
    fn claims(patch: serde_json::Value) -> serde_json::Value {
        let mut c = serde_json::json!({
            "iss": "partner", "sub": "partner", "aud": ISSUER,
            "iat": NOW, "exp": NOW + 120, "jti": "j-1",
        });
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn check(client: &Client, key: &crate::crypto::signing::SigningKey, patch: serde_json::Value) -> bool {
        let jwt = key.sign_jwt("JWT", &claims(patch)).unwrap();
        verify_assertion(client, &jwt, ISSUER, NOW).is_ok()
    }

    #[test]
    fn an_assertion_is_accepted_exactly_within_its_time_bounds() {
        let key = signer();
        let client = jwt_client(&key, None);
        let jwt = key.sign_jwt("JWT", &claims(serde_json::json!({}))).unwrap();
        assert_eq!(verify_assertion(&client, &jwt, ISSUER, NOW).unwrap(), ("j-1".to_owned(), NOW + 120));
        // Expired: up to SKEW_SECS late is tolerated, not one second more.
        assert!(check(&client, &key, serde_json::json!({"exp": NOW - SKEW_SECS + 1})));
        assert!(!check(&client, &key, serde_json::json!({"exp": NOW - SKEW_SECS})));
        // Lifetime: at most MAX_ASSERTION_LIFETIME_SECS ahead (its jti is kept that long).
        assert!(check(&client, &key, serde_json::json!({"exp": NOW + MAX_ASSERTION_LIFETIME_SECS})));
        assert!(!check(&client, &key, serde_json::json!({"exp": NOW + MAX_ASSERTION_LIFETIME_SECS + 1})));
        // Issued or valid from the future: SKEW_SECS of clock difference, no more.
        for claim in ["iat", "nbf"] {
            assert!(check(&client, &key, serde_json::json!({ claim: NOW + SKEW_SECS })), "{claim}");
            assert!(!check(&client, &key, serde_json::json!({ claim: NOW + SKEW_SECS + 1 })), "{claim}");
            assert!(check(&client, &key, serde_json::json!({ claim: null })), "{claim} is optional");
        }
        // exp is required; a time that is not an integer is refused, not ignored.
        assert!(!check(&client, &key, serde_json::json!({"exp": null})));
        for claim in ["exp", "iat", "nbf"] {
            assert!(!check(&client, &key, serde_json::json!({ claim: "soon" })), "{claim}");
            assert!(!check(&client, &key, serde_json::json!({ claim: (NOW as f64) + 0.5 })), "{claim}");
        }
    }

    #[test]
    fn an_assertion_names_the_client_twice_and_this_server_alone() {
        let key = signer();
        let client = jwt_client(&key, Some("sig"));
        assert!(check(&client, &key, serde_json::json!({"aud": [ISSUER]})));
        for patch in [
            serde_json::json!({"iss": "other"}),
            serde_json::json!({"sub": "other"}),
            serde_json::json!({"iss": null}),
            serde_json::json!({"aud": "https://other.example"}),
            serde_json::json!({"aud": format!("{ISSUER}/token")}),
            serde_json::json!({"aud": [ISSUER, "https://other.example"]}),
            serde_json::json!({"aud": ["https://other.example"]}),
            serde_json::json!({"aud": []}),
            serde_json::json!({"aud": null}),
            serde_json::json!({"jti": null}),
            serde_json::json!({"jti": ""}),
            serde_json::json!({"jti": "j".repeat(257)}),
        ] {
            assert!(!check(&client, &key, patch.clone()), "{patch}");
        }
        assert!(check(&client, &key, serde_json::json!({"jti": "j".repeat(256)})));
    }

    #[test]
    fn only_the_clients_own_signing_keys_verify_its_assertions() {
        let key = signer();
        assert!(!check(&jwt_client(&key, Some("enc")), &key, serde_json::json!({})), "an encryption key");
        assert!(!check(&jwt_client(&signer(), None), &key, serde_json::json!({})), "another key");
        assert!(!check(&registered(AuthMethod::PrivateKeyJwt, None), &key, serde_json::json!({})));
        assert!(is_usable_client_key(&serde_json::to_value(key.public_jwk()).unwrap()));
        let mut enc = serde_json::to_value(key.public_jwk()).unwrap();
        enc["use"] = "enc".into();
        assert!(!is_usable_client_key(&enc));
    }

    #[test]
    fn a_secret_authenticates_only_its_active_client_by_its_registered_method() {
        let digester = Digester::new([7; 32]);
        let entry = |method, status, digest: Option<&str>| {
            let mut c = registered(method, None);
            c.status = status;
            Some(std::sync::Arc::new((
                c,
                digest.map(|d| digester.digest(CLIENT_SECRET_PURPOSE, d.as_bytes())),
            )))
        };
        let basic = |secret: &str| Presented::Basic { id: "partner".into(), secret: secret.into() };
        let ok = |p: &Presented, found| verify(&digester, p, found).is_ok();
        assert!(ok(
            &basic("s3cret"),
            entry(AuthMethod::ClientSecretBasic, ClientStatus::Active, Some("s3cret"))
        ));
        assert!(!ok(
            &basic("wrong"),
            entry(AuthMethod::ClientSecretBasic, ClientStatus::Active, Some("s3cret"))
        ));
        assert!(!ok(&basic("s3cret"), None), "an unknown client");
        assert!(
            !ok(
                &basic("s3cret"),
                entry(AuthMethod::ClientSecretBasic, ClientStatus::Suspended, Some("s3cret"))
            ),
            "a suspended client"
        );
        assert!(
            !ok(&basic("s3cret"), entry(AuthMethod::ClientSecretPost, ClientStatus::Active, Some("s3cret"))),
            "registered for client_secret_post"
        );
        assert!(
            !ok(&basic("s3cret"), entry(AuthMethod::ClientSecretBasic, ClientStatus::Active, None)),
            "a client without a secret"
        );
        let post = Presented::Post { id: "partner".into(), secret: "s3cret".into() };
        assert!(ok(&post, entry(AuthMethod::ClientSecretPost, ClientStatus::Active, Some("s3cret"))));
        let id_only = Presented::IdOnly { id: "partner".into() };
        assert!(
            !ok(&id_only, entry(AuthMethod::ClientSecretBasic, ClientStatus::Active, Some("s3cret"))),
            "a confidential client's id alone"
        );
        assert!(ok(&id_only, entry(AuthMethod::None, ClientStatus::Active, None)), "a public client");
        assert_eq!(lookup_id(&post).as_str(), "partner");
    }

    #[test]
    fn an_assertion_is_read_from_the_form_with_its_subject_as_the_client() {
        let key = signer();
        let jwt = key.sign_jwt("JWT", &claims(serde_json::json!({}))).unwrap();
        let f = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("client_assertion_type", JWT_BEARER), ("client_assertion", jwt.as_str())];
            pairs.extend_from_slice(extra);
            presented(None, &form(&pairs))
        };
        assert_eq!(f(&[]).unwrap(), Presented::Assertion { id: "partner".into(), assertion: jwt.clone() });
        assert_eq!(f(&[("client_id", "partner")]).unwrap().client_id(), "partner");
        assert_eq!(f(&[("client_id", "other")]).unwrap_err(), OAuthError::invalid_client());
        assert!(f(&[("client_secret", "x")]).is_err());
        let wrong_type =
            presented(None, &form(&[("client_assertion_type", "urn:x"), ("client_assertion", &jwt)]));
        assert_eq!(wrong_type.unwrap_err(), OAuthError::invalid_client());
        let garbage =
            presented(None, &form(&[("client_assertion_type", JWT_BEARER), ("client_assertion", "a.b.c")]));
        assert_eq!(garbage.unwrap_err(), OAuthError::invalid_client());
    }
}
