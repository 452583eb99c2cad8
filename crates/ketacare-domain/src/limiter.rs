//! A sliding-window limit kept in one server's memory: at most `max` events per key within
//! `window`, then the key is held back until enough of its oldest events have left the window.
//! Pure: the caller passes the time. Used for failed logins per client address
//! ([`crate::login::LoginProtection::address_limit`]) and for names shown outside a
//! clinician's care teams ([`crate::access::outside_lookup_limit`]). Each hold is reported
//! once ([`SlidingWindowLimiter::first_refusal`]), so a flood leaves one audit entry, not one
//! per request.

use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, VecDeque};

/// A limit: at most `max` events within `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowLimit {
    /// Events allowed within the window.
    pub max: u32,
    /// The sliding window.
    pub window: Duration,
}

/// Most keys remembered at once; beyond it the least recently counted are forgotten.
const MAX_KEYS: usize = 100_000;

/// Events per key over a sliding window.
#[derive(Debug, Default)]
pub struct SlidingWindowLimiter {
    events: BTreeMap<String, VecDeque<DateTime<Utc>>>,
    /// The end of the hold already reported (audited) for a key: a held-back key
    /// sending thousands of requests leaves one audit entry per hold, not one per request.
    reported: BTreeMap<String, DateTime<Utc>>,
}

impl SlidingWindowLimiter {
    /// A limiter with nothing remembered.
    pub fn new() -> Self {
        Self::default()
    }

    /// When `key` may try again, if it is held back at `now`.
    pub fn blocked_until(&mut self, key: &str, now: DateTime<Utc>, limit: &WindowLimit) -> Option<DateTime<Utc>> {
        let q = self.events.get_mut(key)?;
        while q.front().is_some_and(|t| *t + limit.window <= now) {
            q.pop_front();
        }
        if q.is_empty() {
            self.events.remove(key);
            self.reported.remove(key);
            return None;
        }
        if q.len() as u64 >= u64::from(limit.max) {
            // Free again when enough of the oldest events have left the window.
            let excess = q.len() - limit.max as usize;
            return q.get(excess).map(|t| *t + limit.window);
        }
        None
    }

    /// Whether a refusal of `key` held back until `until` is the first of that hold (the one
    /// to audit); later refusals of the same hold answer `false`.
    pub fn first_refusal(&mut self, key: &str, until: DateTime<Utc>) -> bool {
        self.reported.insert(key.to_owned(), until) != Some(until)
    }

    /// Counts one event (a failed login, a name shown) for `key` at `now`.
    pub fn record(&mut self, key: &str, now: DateTime<Utc>, limit: &WindowLimit) {
        if self.events.len() >= MAX_KEYS && !self.events.contains_key(key) {
            self.forget_stale(now, limit);
        }
        let q = self.events.entry(key.to_owned()).or_default();
        q.push_back(now);
        // Never keep more than the limit needs.
        while q.len() > limit.max as usize {
            q.pop_front();
        }
    }

    /// Forgets keys with no event in the window; if still full, the least recent.
    fn forget_stale(&mut self, now: DateTime<Utc>, limit: &WindowLimit) {
        self.events.retain(|_, q| q.back().is_some_and(|t| *t + limit.window > now));
        let events = &self.events;
        self.reported.retain(|a, _| events.contains_key(a));
        if self.events.len() >= MAX_KEYS {
            let oldest = self.events.iter().filter_map(|(a, q)| q.back().map(|t| (*t, a.clone()))).min();
            if let Some((_, a)) = oldest {
                self.events.remove(&a);
                self.reported.remove(&a);
            }
        }
    }

    /// Takes back the latest event counted for `key` (a login attempt turned out to succeed).
    pub fn forgive(&mut self, key: &str) {
        if let Some(q) = self.events.get_mut(key) {
            q.pop_back();
            if q.is_empty() {
                self.events.remove(key);
            }
        }
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
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
    fn a_held_back_address_is_reported_once_per_hold() {
        let policy = crate::login::LoginProtection::default().address_limit();
        let t0 = DateTime::parse_from_rfc3339("2026-11-26T09:00:00Z").unwrap().with_timezone(&Utc);
        let mut l = SlidingWindowLimiter::new();
        for i in 0..50 {
            l.record("10.0.0.9", t0 + Duration::seconds(i), &policy);
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
            l.record("10.0.0.9", later + Duration::seconds(i), &policy);
        }
        let again = l.blocked_until("10.0.0.9", later + Duration::minutes(1), &policy).expect("held back again");
        assert!(l.first_refusal("10.0.0.9", again));
    }
    #[test]
    fn an_address_is_held_back_after_its_limit_and_freed_as_the_window_slides() {
        let p = WindowLimit { max: 3, window: Duration::minutes(10) };
        let mut l = SlidingWindowLimiter::new();
        l.record("10.0.0.1", t(0), &p);
        l.record("10.0.0.1", t(1), &p);
        assert_eq!(l.blocked_until("10.0.0.1", t(2), &p), None);
        l.record("10.0.0.1", t(2), &p);
        assert_eq!(l.blocked_until("10.0.0.1", t(3), &p), Some(t(10)));
        assert_eq!(l.blocked_until("10.0.0.2", t(3), &p), None, "other addresses are not affected");
        assert_eq!(l.blocked_until("10.0.0.1", t(10), &p), None);
        assert_eq!(l.blocked_until("10.0.0.1", t(30), &p), None);
        assert!(l.is_empty(), "stale addresses are forgotten");
        l.record("10.0.0.3", t(40), &p);
        l.forgive("10.0.0.3");
        assert!(l.is_empty(), "a success gives its counted attempt back");
    }

    #[test]
    fn memory_is_bounded_per_address() {
        let p = WindowLimit { max: 5, window: Duration::minutes(15) };
        let mut l = SlidingWindowLimiter::new();
        for i in 0..1000 {
            l.record("10.0.0.1", t(0) + Duration::seconds(i), &p);
        }
        assert_eq!(l.events["10.0.0.1"].len(), 5);
        assert_eq!(l.blocked_until("10.0.0.1", t(0) + Duration::seconds(1000), &p), Some(t(0) + Duration::seconds(995) + p.window));
    }
}
