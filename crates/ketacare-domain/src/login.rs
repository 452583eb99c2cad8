//! Login protection: an account locks after consecutive failed logins, and an address that
//! keeps failing is held back for a while.
//!
//! The account lock lives in the database (every server sees it); the rule that updates it is
//! one atomic statement in the store, with the numbers from [`LoginProtection`]. The address
//! limit is kept in each server's memory by [`AddressLimiter`], which is pure: the caller
//! passes the time.

use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, VecDeque};

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

/// Most addresses remembered at once; beyond it the oldest-failing addresses are forgotten.
const MAX_ADDRESSES: usize = 100_000;

/// Failed logins per client address over a sliding window.
#[derive(Debug, Default)]
pub struct AddressLimiter {
    failures: BTreeMap<String, VecDeque<DateTime<Utc>>>,
    /// The end of the hold already reported (audited) for an address: a held-back address
    /// sending thousands of requests leaves one audit entry per hold, not one per request.
    reported: BTreeMap<String, DateTime<Utc>>,
}

impl AddressLimiter {
    /// A limiter with nothing remembered.
    pub fn new() -> Self {
        Self::default()
    }

    /// When `addr` may try again, if it is held back at `now`.
    pub fn blocked_until(&mut self, addr: &str, now: DateTime<Utc>, policy: &LoginProtection) -> Option<DateTime<Utc>> {
        let q = self.failures.get_mut(addr)?;
        while q.front().is_some_and(|t| *t + policy.address_window <= now) {
            q.pop_front();
        }
        if q.is_empty() {
            self.failures.remove(addr);
            self.reported.remove(addr);
            return None;
        }
        if q.len() as u64 >= u64::from(policy.address_max_failures) {
            // Free again when enough of the oldest failures have left the window.
            let excess = q.len() - policy.address_max_failures as usize;
            return q.get(excess).map(|t| *t + policy.address_window);
        }
        None
    }

    /// Whether a refusal of `addr` held back until `until` is the first of that hold (the one
    /// to audit); later refusals of the same hold answer `false`.
    pub fn first_refusal(&mut self, addr: &str, until: DateTime<Utc>) -> bool {
        self.reported.insert(addr.to_owned(), until) != Some(until)
    }

    /// Counts a failed login from `addr` at `now`.
    pub fn record_failure(&mut self, addr: &str, now: DateTime<Utc>, policy: &LoginProtection) {
        if self.failures.len() >= MAX_ADDRESSES && !self.failures.contains_key(addr) {
            self.forget_stale(now, policy);
        }
        let q = self.failures.entry(addr.to_owned()).or_default();
        q.push_back(now);
        // Never keep more than the limit needs.
        while q.len() > policy.address_max_failures as usize {
            q.pop_front();
        }
    }

    /// Forgets addresses with no failure in the window; if still full, the least recent.
    fn forget_stale(&mut self, now: DateTime<Utc>, policy: &LoginProtection) {
        self.failures.retain(|_, q| q.back().is_some_and(|t| *t + policy.address_window > now));
        let failures = &self.failures;
        self.reported.retain(|a, _| failures.contains_key(a));
        if self.failures.len() >= MAX_ADDRESSES {
            let oldest = self.failures.iter().filter_map(|(a, q)| q.back().map(|t| (*t, a.clone()))).min();
            if let Some((_, a)) = oldest {
                self.failures.remove(&a);
                self.reported.remove(&a);
            }
        }
    }

    /// Takes back the latest failure counted for `addr` (the attempt turned out to succeed).
    pub fn forgive(&mut self, addr: &str) {
        if let Some(q) = self.failures.get_mut(addr) {
            q.pop_back();
            if q.is_empty() {
                self.failures.remove(addr);
            }
        }
    }

    /// Addresses currently remembered.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_back_address_is_reported_once_per_hold() {
        let policy = LoginProtection::default();
        let t0 = DateTime::parse_from_rfc3339("2026-11-26T09:00:00Z").unwrap().with_timezone(&Utc);
        let mut l = AddressLimiter::new();
        for i in 0..50 {
            l.record_failure("10.0.0.9", t0 + Duration::seconds(i), &policy);
        }
        let now = t0 + Duration::minutes(1);
        let until = l.blocked_until("10.0.0.9", now, &policy).expect("held back");
        assert!(l.first_refusal("10.0.0.9", until), "the first refusal is reported");
        for _ in 0..1000 {
            let u = l.blocked_until("10.0.0.9", now, &policy).expect("still held back");
            assert!(!l.first_refusal("10.0.0.9", u), "later refusals of the same hold are not");
        }
        assert!(l.first_refusal("10.0.0.7", until), "another address is its own");
        // After the hold, a new run of failures makes a new hold, reported again.
        let later = until + Duration::minutes(20);
        assert_eq!(l.blocked_until("10.0.0.9", later, &policy), None);
        for i in 0..50 {
            l.record_failure("10.0.0.9", later + Duration::seconds(i), &policy);
        }
        let again = l.blocked_until("10.0.0.9", later + Duration::minutes(1), &policy).expect("held back again");
        assert!(l.first_refusal("10.0.0.9", again));
    }
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

    #[test]
    fn an_address_is_held_back_after_its_limit_and_freed_as_the_window_slides() {
        let p = LoginProtection { address_max_failures: 3, address_window: Duration::minutes(10), ..LoginProtection::default() };
        let mut l = AddressLimiter::new();
        l.record_failure("10.0.0.1", t(0), &p);
        l.record_failure("10.0.0.1", t(1), &p);
        assert_eq!(l.blocked_until("10.0.0.1", t(2), &p), None);
        l.record_failure("10.0.0.1", t(2), &p);
        assert_eq!(l.blocked_until("10.0.0.1", t(3), &p), Some(t(10)));
        assert_eq!(l.blocked_until("10.0.0.2", t(3), &p), None, "other addresses are not affected");
        assert_eq!(l.blocked_until("10.0.0.1", t(10), &p), None);
        assert_eq!(l.blocked_until("10.0.0.1", t(30), &p), None);
        assert!(l.is_empty(), "stale addresses are forgotten");
        l.record_failure("10.0.0.3", t(40), &p);
        l.forgive("10.0.0.3");
        assert!(l.is_empty(), "a success gives its counted attempt back");
    }

    #[test]
    fn memory_is_bounded_per_address() {
        let p = LoginProtection { address_max_failures: 5, ..LoginProtection::default() };
        let mut l = AddressLimiter::new();
        for i in 0..1000 {
            l.record_failure("10.0.0.1", t(0) + Duration::seconds(i), &p);
        }
        assert_eq!(l.failures["10.0.0.1"].len(), 5);
        assert_eq!(l.blocked_until("10.0.0.1", t(0) + Duration::seconds(1000), &p), Some(t(0) + Duration::seconds(995) + p.address_window));
    }
}
