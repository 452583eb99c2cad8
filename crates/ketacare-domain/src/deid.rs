//! De-identification for research: what a researcher sees of a patient. Direct identifiers
//! (name, MRN, contact details, free-text identifiers) are never carried; dates are shifted by
//! a per-patient offset, so intervals within a patient stay true while calendar dates do not
//! identify; ages above 89 are grouped (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)(C)).
//!
//! The offset comes from a keyed digest of the patient id (the caller supplies the digest; the
//! key never reaches the domain), so the same patient gets the same offset in every export of
//! the same clinic, and nobody without the key can undo it.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Largest date shift, days, either way (a year: seasons are kept roughly, the day is not).
pub const MAX_SHIFT_DAYS: i64 = 365;

/// Oldest age reported as itself; older ages are reported as [`OLDEST_GROUP`].
pub const OLDEST_EXACT_AGE: u32 = 89;

/// The group of ages above [`OLDEST_EXACT_AGE`].
pub const OLDEST_GROUP: &str = "90+";

/// A patient's date shift, from a keyed digest of their id: never zero, within
/// ±[`MAX_SHIFT_DAYS`].
pub fn shift_days(digest: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    for (i, x) in digest.iter().take(8).enumerate() {
        b[i] = *x;
    }
    let v = u64::from_be_bytes(b);
    let magnitude = i64::try_from(v % u64::try_from(MAX_SHIFT_DAYS).unwrap_or(365)).unwrap_or(0) + 1;
    if v >> 63 == 1 {
        -magnitude
    } else {
        magnitude
    }
}

/// The de-identified form of one patient's dates and age.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateShift {
    /// Days added to every date of the patient.
    pub days: i64,
}

impl DateShift {
    /// The shift for a keyed digest of the patient id.
    pub fn from_digest(digest: &[u8]) -> Self {
        Self { days: shift_days(digest) }
    }
    /// A shifted date.
    pub fn date(self, d: NaiveDate) -> NaiveDate {
        d.checked_add_signed(Duration::days(self.days)).unwrap_or(d)
    }
    /// A shifted instant.
    pub fn instant(self, t: DateTime<Utc>) -> DateTime<Utc> {
        t.checked_add_signed(Duration::days(self.days)).unwrap_or(t)
    }
}

/// Age as a researcher sees it: whole years, or `90+`.
pub fn age_group(age_years: u32) -> String {
    if age_years > OLDEST_EXACT_AGE {
        OLDEST_GROUP.to_owned()
    } else {
        age_years.to_string()
    }
}

/// Age in whole years on a date.
pub fn age_on(date_of_birth: NaiveDate, on: NaiveDate) -> u32 {
    use chrono::Datelike;
    let mut years = on.year() - date_of_birth.year();
    if (on.month(), on.day()) < (date_of_birth.month(), date_of_birth.day()) {
        years -= 1;
    }
    u32::try_from(years.max(0)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_are_never_zero_and_stay_within_a_year() {
        for i in 0u32..5000 {
            let digest: Vec<u8> = (0..8).map(|k| (i.wrapping_mul(2_654_435_761).rotate_left(k * 4) & 0xFF) as u8).collect();
            let s = shift_days(&digest);
            assert!(s != 0 && s.abs() <= MAX_SHIFT_DAYS, "shift {s}");
        }
        assert_eq!(shift_days(&[0; 32]), 1);
        assert_eq!(shift_days(&[0xFF; 32]), -(i64::try_from(u64::MAX % 365).unwrap() + 1));
    }

    #[test]
    fn a_shift_keeps_intervals_within_the_patient() {
        let s = DateShift { days: -200 };
        let a = NaiveDate::from_ymd_opt(2026, 1, 10).unwrap();
        let b = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!((s.date(b) - s.date(a)).num_days(), (b - a).num_days());
        assert_eq!(s.date(a), NaiveDate::from_ymd_opt(2025, 6, 24).unwrap());
    }

    #[test]
    fn ages_above_89_are_grouped() {
        assert_eq!(age_group(89), "89");
        assert_eq!(age_group(90), "90+");
        assert_eq!(age_group(104), "90+");
        let dob = NaiveDate::from_ymd_opt(1936, 12, 7).unwrap();
        assert_eq!(age_on(dob, NaiveDate::from_ymd_opt(2026, 12, 6).unwrap()), 89);
        assert_eq!(age_on(dob, NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()), 90);
    }
}
