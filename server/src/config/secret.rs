//! Setting values that must never be printed: secrets, and URLs that may carry a password.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret setting. `Debug` and `Serialize` (so `config show`) print `[redacted]`.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(SecretString::from(s))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn as_secret_string(&self) -> &SecretString {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// A URL setting whose password, if any, is redacted in `Debug` and `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct UrlWithPassword(String);

impl UrlWithPassword {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`: in the userinfo, or in a query parameter
    /// whose name contains `pass` (libpq's `password=`, redis+unix's `pass=`). Unparseable
    /// input is hidden entirely past its scheme, since it might be a password pasted into the
    /// wrong place.
    pub fn redacted(&self) -> String {
        const HIDDEN: &str = "***";
        let Ok(mut u) = url::Url::parse(&self.0) else {
            return match self.0.split_once(':') {
                Some((scheme, _))
                    if !scheme.is_empty()
                        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') =>
                {
                    format!("{scheme}:{HIDDEN}")
                }
                _ => HIDDEN.into(),
            };
        };
        if u.password().is_some() && u.set_password(Some(HIDDEN)).is_err() {
            return HIDDEN.into();
        }
        if u.query().is_some() {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v =
                        if k.to_ascii_lowercase().contains("pass") { HIDDEN.into() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        u.to_string()
    }
}

impl std::fmt::Debug for UrlWithPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for UrlWithPassword {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for UrlWithPassword {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted_everywhere_they_hide() {
        let u = UrlWithPassword::new("postgres://app:hunter2@db:5432/pramaan");
        assert_eq!(u.redacted(), "postgres://app:***@db:5432/pramaan");
        assert!(!format!("{u:?}").contains("hunter2"));
        let q = UrlWithPassword::new("postgres://db/pramaan?user=app&password=hunter2");
        assert!(!q.redacted().contains("hunter2"));
        assert_eq!(UrlWithPassword::new("redis://127.0.0.1:6379").redacted(), "redis://127.0.0.1:6379");
        assert_eq!(UrlWithPassword::new("sqlite:./x.db").redacted(), "sqlite:./x.db");
        assert_eq!(
            UrlWithPassword::new("redis+unix:///run/redis.sock?db=1&pass=hunter2").redacted(),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(
            UrlWithPassword::new("rediss://:hunter2@cache.internal").redacted(),
            "rediss://:***@cache.internal"
        );
        assert_eq!(UrlWithPassword::new("not a url hunter2").redacted(), "***");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("top".into());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        assert_eq!(s.expose(), "top");
    }
}
