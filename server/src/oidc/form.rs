//! `application/x-www-form-urlencoded` bodies of the OAuth endpoints, parsed strictly:
//! RFC 6749 §3.1/§3.2 — parameters must not repeat, and empty values count as absent.

use std::collections::HashMap;

use super::error::OAuthError;

/// A parsed form body.
#[derive(Debug, Clone, Default)]
pub struct Form(HashMap<String, String>);

impl Form {
    /// Parses a body. A repeated parameter is `invalid_request`, also when one copy is empty;
    /// a parameter sent empty is then treated as omitted (§3.1).
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut seen = std::collections::HashSet::new();
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if !seen.insert(k.clone()) {
                return Err(OAuthError::invalid_request("A parameter was sent more than once."));
            }
            if !v.is_empty() {
                map.insert(k.into_owned(), v.into_owned());
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A required parameter, or `invalid_request` naming it.
    pub fn require(&self, key: &str, missing: &'static str) -> Result<&str, OAuthError> {
        self.get(key).ok_or_else(|| OAuthError::invalid_request(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_ignored() {
        assert!(Form::parse(b"grant_type=a&grant_type=b").is_err());
        assert!(Form::parse(b"scope=&scope=x").is_err(), "an empty copy is still a copy");
        let f = Form::parse(b"scope=&grant_type=client_credentials").unwrap();
        assert_eq!(f.get("scope"), None);
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
        assert_eq!(Form::parse(b"a=%20b+c").unwrap().get("a"), Some(" b c"));
    }
}
