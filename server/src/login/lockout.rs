//! Lockout with a growing delay: after `threshold` wrong passwords in a row the account is
//! locked for `base`, and each further failure doubles the lock up to `max`. A successful
//! login clears the count. While locked, even the right password is refused with the same
//! message as a wrong one, and attempts do not count (so guessing cannot extend the lock
//! forever).

use std::time::Duration;

use crate::config::LoginSettings;

/// How long to lock after the `failures`-th failure in a row, if at all.
pub fn lock_for(failures: u32, s: &LoginSettings) -> Option<Duration> {
    if failures < s.lockout_threshold {
        return None;
    }
    let doublings = (failures - s.lockout_threshold).min(30);
    let secs = s.lockout_base_secs.saturating_mul(1u64 << doublings).min(s.lockout_max_secs);
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_starts_at_the_threshold_and_doubles_up_to_the_cap() {
        let s = LoginSettings::default();
        assert_eq!(s.lockout_threshold, 5);
        assert_eq!(lock_for(4, &s), None);
        assert_eq!(lock_for(5, &s), Some(Duration::from_secs(30)));
        assert_eq!(lock_for(6, &s), Some(Duration::from_secs(60)));
        assert_eq!(lock_for(7, &s), Some(Duration::from_secs(120)));
        assert_eq!(lock_for(50, &s), Some(Duration::from_secs(900)));
        assert_eq!(lock_for(u32::MAX, &s), Some(Duration::from_secs(900)));
    }
}
