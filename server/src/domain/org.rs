//! Organisation units: a tree (national → state → district → facility, any depth), each unit
//! named by a stable path of slugs such as `national/karnataka/bengaluru-urban/phc-12`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Invalid, OrgUnitId};

/// A validated org-unit path: slugs of `[a-z0-9-]` (1–63 chars, not starting or ending with
/// `-`) joined by `/`. The charset keeps paths safe inside SQL `LIKE` prefixes (no `%`, `_`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgPath(String);

impl OrgPath {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim().trim_matches('/');
        if s.is_empty() {
            return Err(Invalid::new("an org unit path must not be empty"));
        }
        if s.len() > 512 {
            return Err(Invalid::new("an org unit path must be at most 512 characters"));
        }
        for slug in s.split('/') {
            let ok = !slug.is_empty()
                && slug.len() <= 63
                && !slug.starts_with('-')
                && !slug.ends_with('-')
                && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(Invalid::new(format!(
                    "'{slug}' is not a valid path segment: use 1-63 lowercase letters, digits \
                     or '-', not starting or ending with '-'"
                )));
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parent's path; `None` for a root.
    pub fn parent(&self) -> Option<OrgPath> {
        self.0.rsplit_once('/').map(|(p, _)| OrgPath(p.to_owned()))
    }

    /// Number of segments: a root has depth 1.
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    /// True when `other` is this unit or inside its subtree.
    pub fn contains(&self, other: &OrgPath) -> bool {
        other.0 == self.0
            || (other.0.len() > self.0.len()
                && other.0.starts_with(&self.0)
                && other.0.as_bytes()[self.0.len()] == b'/')
    }
}

impl TryFrom<String> for OrgPath {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Invalid> {
        Self::parse(&s)
    }
}

impl From<OrgPath> for String {
    fn from(p: OrgPath) -> String {
        p.0
    }
}

impl std::fmt::Display for OrgPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An organisation unit as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgUnit {
    pub id: OrgUnitId,
    pub parent_id: Option<OrgUnitId>,
    pub path: OrgPath,
    pub name: String,
    /// A free label such as `national`, `state`, `district`, `facility`.
    pub kind: String,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_normalised_and_knows_its_parent() {
        let p = OrgPath::parse("/national/karnataka/phc-12/").unwrap();
        assert_eq!(p.as_str(), "national/karnataka/phc-12");
        assert_eq!(p.parent().unwrap().as_str(), "national/karnataka");
        assert_eq!(p.depth(), 3);
        assert!(OrgPath::parse("national").unwrap().parent().is_none());
    }

    #[test]
    fn bad_segments_are_rejected_with_the_segment_named() {
        for bad in ["", "/", "a//b", "Upper", "a/b_c", "a/-b", "a/%", "a/b c"] {
            let err = OrgPath::parse(bad).unwrap_err();
            assert!(!err.0.is_empty(), "{bad}");
        }
        assert!(OrgPath::parse("a/b_c").unwrap_err().0.contains("b_c"));
    }

    #[test]
    fn containment_respects_segment_boundaries() {
        let ka = OrgPath::parse("national/ka").unwrap();
        assert!(ka.contains(&OrgPath::parse("national/ka/blr").unwrap()));
        assert!(ka.contains(&ka));
        assert!(!ka.contains(&OrgPath::parse("national/kar").unwrap()));
        assert!(!ka.contains(&OrgPath::parse("national").unwrap()));
    }
}
