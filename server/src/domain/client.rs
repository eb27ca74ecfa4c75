//! OAuth clients (partner apps, the registry, Pramaan's own console) and the values that
//! describe their registration (RFC 7591 names where they exist).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ClientId, Invalid};

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Result<Self, Invalid> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(Invalid::new(format!(
                        "unknown {} '{other}' (one of: {})",
                        stringify!($name),
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Who runs a client. The kill switch suspends by category; `internal` clients are
    /// excluded from "suspend all" unless named, so operators cannot lock themselves out.
    ClientCategory { Government = "government", Private = "private", Internal = "internal" }
);

string_enum!(
    /// Whether a client may obtain tokens.
    ClientStatus { Active = "active", Suspended = "suspended" }
);

string_enum!(
    /// RFC 6749 §2.1: confidential clients can keep a credential; public ones cannot.
    ClientType { Confidential = "confidential", Public = "public" }
);

string_enum!(
    /// How a client proves itself at the token endpoint (RFC 7591 §2, RFC 7523).
    AuthMethod {
        ClientSecretBasic = "client_secret_basic",
        ClientSecretPost = "client_secret_post",
        PrivateKeyJwt = "private_key_jwt",
        None = "none",
    }
);

string_enum!(
    /// The grants Pramaan implements. Implicit and password grants are deliberately absent.
    GrantType {
        AuthorizationCode = "authorization_code",
        RefreshToken = "refresh_token",
        ClientCredentials = "client_credentials",
    }
);

/// A scope token (RFC 6749 §3.3: `1*( %x21 / %x23-5B / %x5D-7E )`), at most 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = (1..=128).contains(&s.len())
            && s.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !ok {
            return Err(Invalid::new(format!("'{s}' is not a scope (RFC 6749 §3.3)")));
        }
        Ok(Self(s.to_owned()))
    }

    /// A space-separated list (the wire form), duplicates dropped, order kept.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, Invalid> {
        let mut out: Vec<Self> = Vec::new();
        for part in s.split(' ').filter(|p| !p.is_empty()) {
            let scope = Self::parse(part)?;
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        Ok(out)
    }

    pub fn join(scopes: &[Self]) -> String {
        scopes.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(" ")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Scope {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}
impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.0
    }
}

/// A registered redirect URI: absolute, no fragment (RFC 6749 §3.1.2), and https unless the
/// host is a loopback address (RFC 8252 §7.3, native apps). Compared by exact string match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let bad = |why: &str| Invalid::new(format!("redirect URI '{s}' {why}"));
        let u = url::Url::parse(s).map_err(|_| bad("is not an absolute URL"))?;
        if u.fragment().is_some() {
            return Err(bad("must not have a fragment (RFC 6749 §3.1.2)"));
        }
        if u.username() != "" || u.password().is_some() {
            return Err(bad("must not carry credentials"));
        }
        let loopback = match u.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match u.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => return Err(bad("must use https (http only for loopback addresses)")),
            _ => return Err(bad("must use https")),
        }
        if s.len() > 2000 {
            return Err(bad("is too long"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}
impl From<RedirectUri> for String {
    fn from(r: RedirectUri) -> String {
        r.0
    }
}

/// What a client is registered with (everything but its id, status and secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientRegistration {
    pub name: String,
    pub category: ClientCategory,
    pub client_type: ClientType,
    pub token_endpoint_auth_method: AuthMethod,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<Scope>,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// Public keys for `private_key_jwt` (a JWK Set).
    pub jwks: Option<serde_json::Value>,
    pub access_token_ttl_secs: i32,
    pub refresh_token_ttl_secs: i32,
    /// Skips the consent page.
    pub first_party: bool,
    /// May call the introspection endpoint.
    pub can_introspect: bool,
}

impl ClientRegistration {
    /// Checks the combination; each message says what to change.
    pub fn validate(&self) -> Result<(), Invalid> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(Invalid::new("a client name must be 1 to 200 characters on one line"));
        }
        if self.grant_types.is_empty() {
            return Err(Invalid::new("a client needs at least one grant type"));
        }
        let has = |g| self.grant_types.contains(&g);
        match (self.client_type, self.token_endpoint_auth_method) {
            (ClientType::Public, AuthMethod::None) => {}
            (ClientType::Public, m) => {
                return Err(Invalid::new(format!("a public client cannot use {m}; its auth method is none")));
            }
            (ClientType::Confidential, AuthMethod::None) => {
                return Err(Invalid::new("a confidential client needs an auth method other than none"));
            }
            (ClientType::Confidential, _) => {}
        }
        if self.can_introspect && self.client_type == ClientType::Public {
            // A public client authenticates with its id alone, which is no secret: anyone could
            // read any token's claims through it.
            return Err(Invalid::new("a public client cannot be allowed to introspect tokens"));
        }
        if self.client_type == ClientType::Public && has(GrantType::ClientCredentials) {
            return Err(Invalid::new("a public client cannot use client_credentials (RFC 6749 §4.4)"));
        }
        if has(GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            return Err(Invalid::new("authorization_code needs at least one --redirect-uri"));
        }
        if !has(GrantType::AuthorizationCode) && !self.redirect_uris.is_empty() {
            return Err(Invalid::new("redirect URIs are only for authorization_code clients"));
        }
        if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
            return Err(Invalid::new("refresh_token goes with authorization_code"));
        }
        match (self.token_endpoint_auth_method, &self.jwks) {
            (AuthMethod::PrivateKeyJwt, None) => {
                return Err(Invalid::new("private_key_jwt needs the client's public keys (--jwks-file)"));
            }
            (AuthMethod::PrivateKeyJwt, Some(set)) => {
                let keys = set.get("keys").and_then(|k| k.as_array());
                if !keys.is_some_and(|k| !k.is_empty() && k.iter().all(|k| k.get("kty").is_some())) {
                    return Err(Invalid::new("the JWK Set must hold a \"keys\" array of JWKs (RFC 7517 §5)"));
                }
                let private = ["d", "p", "q", "dp", "dq", "qi", "k"];
                if keys.into_iter().flatten().any(|k| private.iter().any(|f| k.get(f).is_some())) {
                    return Err(Invalid::new(
                        "the JWK Set holds private key material: register public keys only",
                    ));
                }
            }
            (_, Some(_)) => return Err(Invalid::new("a JWK Set is only for private_key_jwt clients")),
            (_, None) => {}
        }
        if !(60..=86_400).contains(&self.access_token_ttl_secs) {
            return Err(Invalid::new("access token lifetime must be 60 to 86400 seconds"));
        }
        if !(300..=7_776_000).contains(&self.refresh_token_ttl_secs) {
            return Err(Invalid::new("refresh token lifetime must be 300 seconds to 90 days"));
        }
        Ok(())
    }

    /// Whether this client authenticates with a server-issued secret.
    pub fn uses_secret(&self) -> bool {
        matches!(
            self.token_endpoint_auth_method,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }
}

/// An OAuth client as stored. The secret's digest stays in the store layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    #[serde(rename = "client_id")]
    pub id: ClientId,
    #[serde(flatten)]
    pub registration: ClientRegistration,
    pub status: ClientStatus,
    pub has_secret: bool,
    pub secret_rotated_at: Option<DateTime<Utc>>,
    /// Tokens issued before this instant are dead; set on suspension so that resuming never
    /// revives old tokens.
    pub tokens_valid_after: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> ClientRegistration {
        ClientRegistration {
            name: "Registry".into(),
            category: ClientCategory::Government,
            client_type: ClientType::Confidential,
            token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
            grant_types: vec![GrantType::ClientCredentials],
            scopes: Scope::parse_list("registry.read registry.write").unwrap(),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            jwks: None,
            access_token_ttl_secs: 300,
            refresh_token_ttl_secs: 28_800,
            first_party: false,
            can_introspect: false,
        }
    }

    #[test]
    fn scopes_follow_rfc_6749_and_lists_drop_duplicates() {
        assert_eq!(Scope::join(&Scope::parse_list("  a b  a c ").unwrap()), "a b c");
        for bad in ["", "a\"b", "a\\b", "é", "a\tb"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redirect_uris_are_https_except_loopback_and_have_no_fragment() {
        for good in [
            "https://app.example.org/cb",
            "http://127.0.0.1:8765/cb",
            "http://[::1]/cb",
            "http://localhost:3000/cb",
        ] {
            assert!(RedirectUri::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "http://app.example.org/cb",
            "https://app.example.org/cb#x",
            "/cb",
            "javascript:alert(1)",
            "https://u:p@x.org/cb",
            "custom:cb",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registrations_are_checked_as_a_whole() {
        assert!(reg().validate().is_ok());
        let mut r = reg();
        r.client_type = ClientType::Public;
        assert!(r.validate().unwrap_err().0.contains("public client cannot use client_secret_basic"));
        r.token_endpoint_auth_method = AuthMethod::None;
        assert!(r.validate().unwrap_err().0.contains("client_credentials"));
        r.grant_types = vec![GrantType::AuthorizationCode];
        assert!(r.validate().unwrap_err().0.contains("redirect-uri"));
        r.redirect_uris = vec![RedirectUri::parse("http://127.0.0.1/cb").unwrap()];
        assert!(r.validate().is_ok());
        let mut r = reg();
        r.token_endpoint_auth_method = AuthMethod::PrivateKeyJwt;
        assert!(r.validate().is_err());
        r.jwks = Some(
            serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "secret"}]}),
        );
        assert!(r.validate().unwrap_err().0.contains("private key material"));
        r.jwks = Some(serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}));
        assert!(r.validate().is_ok());
        let mut r = reg();
        r.access_token_ttl_secs = 10;
        assert!(r.validate().is_err());
    }
}
