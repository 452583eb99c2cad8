//! Login protection: an account locks after consecutive failed logins, and an address that
//! keeps failing is held back for a while.
//!
//! The account lock lives in the database (every server sees it); the rule that updates it is
//! one atomic statement in the store, with the numbers from [`LoginProtection`]. The address
//! limit is kept in each server's memory by a [`SlidingWindowLimiter`] keyed by address, with
//! [`LoginProtection::address_limit`].

#[cfg(doc)]
use crate::limiter::SlidingWindowLimiter;
use crate::limiter::WindowLimit;
use chrono::{DateTime, Duration, Utc};

/// The numbers of login protection (configuration; defaults below).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginProtection {
    /// Consecutive failed logins after which an account locks.
    pub max_failures: u32,
    /// How long a locked account stays locked (an administrator can unlock it sooner).
    pub lock_for: Duration,
    /// Failed logins from one address within `address_window` after which further attempts
    /// from that address are refused before any password is checked.
    pub address_max_failures: u32,
    /// The sliding window of the address limit.
    pub address_window: Duration,
}

impl Default for LoginProtection {
    /// 10 consecutive failures lock an account for 15 minutes; 50 failures from one address
    /// within 15 minutes hold that address back until the oldest falls out of the window.
    fn default() -> Self {
        Self { max_failures: 10, lock_for: Duration::minutes(15), address_max_failures: 50, address_window: Duration::minutes(15) }
    }
}

impl LoginProtection {
    /// The address limit: `address_max_failures` failed logins within `address_window`.
    pub fn address_limit(&self) -> WindowLimit {
        WindowLimit { max: self.address_max_failures, window: self.address_window }
    }
}

/// An account's failed-login state as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AccountLock {
    /// Consecutive failed logins since the last success (or the last expired lock).
    pub failed: u32,
    /// Locked until this time, if locked.
    pub locked_until: Option<DateTime<Utc>>,
}

impl AccountLock {
    /// Whether the account is locked at `now`.
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }

    /// The state after one more failure at `now` (what the store's atomic update computes;
    /// kept here as the specification the conformance suite checks it against).
    pub fn after_failure(&self, now: DateTime<Utc>, policy: &LoginProtection) -> AccountLock {
        if self.is_locked(now) {
            return AccountLock { failed: self.failed.saturating_add(1), locked_until: self.locked_until };
        }
        let failed = if self.locked_until.is_some() { 1 } else { self.failed.saturating_add(1) };
        let locked_until = (failed >= policy.max_failures).then(|| now + policy.lock_for);
        AccountLock { failed, locked_until }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap() + Duration::minutes(min)
    }

    #[test]
    fn ten_failures_lock_for_fifteen_minutes_then_counting_starts_again() {
        let p = LoginProtection::default();
        let mut s = AccountLock::default();
        for i in 1..=9 {
            s = s.after_failure(t(0), &p);
            assert_eq!(s.failed, i);
            assert!(!s.is_locked(t(0)), "not locked after {i}");
        }
        s = s.after_failure(t(0), &p);
        assert_eq!(s, AccountLock { failed: 10, locked_until: Some(t(15)) });
        assert!(s.is_locked(t(14)));
        // Failures while locked are counted but do not extend the lock.
        s = s.after_failure(t(5), &p);
        assert_eq!(s, AccountLock { failed: 11, locked_until: Some(t(15)) });
        assert!(!s.is_locked(t(15)));
        // After the lock: the next failure is the first of a new run.
        s = s.after_failure(t(16), &p);
        assert_eq!(s, AccountLock { failed: 1, locked_until: None });
    }
}
