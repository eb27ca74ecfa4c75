//! `[limits]`: rate limits per client address (an IPv6 /64 counts as one), kept in the session
//! store so every instance shares them (Redis in production).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Each limit is a sustained rate with the same number as burst: `N per minute` lets N pass at
/// once, then one every 60/N seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Off only to measure what the limits cost; never in production.
    pub enabled: bool,
    /// Password attempts on the sign-in page, and reset codes typed, from one address per
    /// minute, whichever accounts they name. A password costs an argon2 hash.
    pub password_attempts_per_minute: u32,
    /// Failed client authentications (unknown client, wrong secret or assertion) at `/token`,
    /// `/introspect` and `/revoke` from one address per minute. Past it, every request from
    /// there is refused without a check until the rate falls.
    pub client_auth_failures_per_minute: u32,
    /// Forgotten-password requests (each may send a mail or an SMS) from one address per hour.
    pub reset_requests_per_hour: u32,
    /// Lookups of things that do not exist (unknown clients at `/authorize` and
    /// `/statuslists`) from one address per minute.
    pub unknown_lookups_per_minute: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            // Generous: a carrier-grade NAT puts many field staff behind one address, and the
            // start of a shift is a burst of sign-ins. One attacker address is still held to
            // 2 guesses a second instead of the thousands a minute the CPU allows.
            password_attempts_per_minute: 120,
            client_auth_failures_per_minute: 60,
            reset_requests_per_hour: 30,
            unknown_lookups_per_minute: 300,
        }
    }
}

impl LimitSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let all = [
            ("limits.password_attempts_per_minute", self.password_attempts_per_minute),
            ("limits.client_auth_failures_per_minute", self.client_auth_failures_per_minute),
            ("limits.reset_requests_per_hour", self.reset_requests_per_hour),
            ("limits.unknown_lookups_per_minute", self.unknown_lookups_per_minute),
        ];
        if let Some((name, _)) = all.iter().find(|(_, n)| *n == 0) {
            return Err(ConfigError::new(
                *name,
                "must be at least 1 (set limits.enabled = false to measure without)",
            ));
        }
        Ok(())
    }
}
