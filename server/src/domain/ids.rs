//! Identifier newtypes: a user id can never be passed where a client id is meant.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random (UUIDv4) identifier.
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            /// Wraps an identifier read from storage or a trusted caller.
            pub fn from_string(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Whether a database can hold and look up this identifier: PostgreSQL refuses a
            /// NUL in text (an error, not "not found"), and no identifier we issue has one or
            /// is longer than 255 bytes.
            pub fn is_storable(&self) -> bool {
                self.0.len() <= 255 && !self.0.contains('\0')
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// Identifies a user account.
    UserId
);
id_type!(
    /// Identifies an organisation unit.
    OrgUnitId
);
id_type!(
    /// An OAuth `client_id`.
    ClientId
);
