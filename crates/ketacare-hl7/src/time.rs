//! HL7 DTM timestamps: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`.
//!
//! The digits are read by `hl7_parser::datetime::parse_timestamp`; the conversion to UTC is done
//! here rather than with hl7-parser's `chrono` feature, because hl7-parser 0.3.0 gets negative
//! offsets with minutes wrong (`-0330` becomes -02:30, and `-0030` loses its sign).
//!
//! Rules:
//! - with an offset, the time is converted to UTC;
//! - without an offset, the time is taken as UTC (IHE PCD-01 devices are expected to send an
//!   offset; a local time without one cannot be placed reliably, and UTC is the documented
//!   assumption);
//! - missing trailing parts default to the start of the period (month and day 1, time 00:00:00);
//! - at most 4 fractional-second digits, as the standard allows;
//! - an offset must be a sign and exactly 4 digits, hours at most 14 and minutes below 60.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

/// A DTM value that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadTimestamp;

/// Parses an HL7 DTM. An empty (or blank) value is `Ok(None)`.
pub(crate) fn parse_dtm(raw: &str) -> Result<Option<DateTime<Utc>>, BadTimestamp> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let ts = hl7_parser::datetime::parse_timestamp(text, false).map_err(|_| BadTimestamp)?;

    let sign = if text.contains('-') {
        Some(-1)
    } else if text.contains('+') {
        Some(1)
    } else {
        None
    };
    let offset_seconds: i64 = match (sign, ts.offset) {
        (None, None) => 0,
        (Some(sign), Some(offset)) => {
            let hours = i64::from(offset.hours.unsigned_abs());
            let minutes = i64::from(offset.minutes);
            if hours > 14 || minutes >= 60 {
                return Err(BadTimestamp);
            }
            sign * (hours * 3600 + minutes * 60)
        }
        // A sign without four offset digits, which hl7-parser lets through silently.
        _ => return Err(BadTimestamp),
    };

    let date = NaiveDate::from_ymd_opt(i32::from(ts.year), u32::from(ts.month.unwrap_or(1)), u32::from(ts.day.unwrap_or(1)))
        .ok_or(BadTimestamp)?;
    let time = NaiveTime::from_hms_micro_opt(
        u32::from(ts.hour.unwrap_or(0)),
        u32::from(ts.minute.unwrap_or(0)),
        u32::from(ts.second.unwrap_or(0)),
        ts.microsecond.unwrap_or(0),
    )
    .ok_or(BadTimestamp)?;
    let local = NaiveDateTime::new(date, time);
    let utc = local.checked_sub_signed(TimeDelta::seconds(offset_seconds)).ok_or(BadTimestamp)?;
    Ok(Some(utc.and_utc()))
}

/// Formats a UTC instant as HL7 DTM with an explicit `+0000` offset: `YYYYMMDDHHMMSS+0000`, or
/// `YYYYMMDDHHMMSS.mmm+0000` when the instant has a sub-second part (truncated to milliseconds).
pub(crate) fn format_dtm(at: DateTime<Utc>) -> String {
    let millis = at.timestamp_subsec_millis();
    if millis == 0 {
        at.format("%Y%m%d%H%M%S+0000").to_string()
    } else {
        format!("{}.{millis:03}+0000", at.format("%Y%m%d%H%M%S"))
    }
}

/// Formats a UTC instant as HL7 DTM to the second, `YYYYMMDDHHMMSS+0000` (the ACK's MSH-7).
pub(crate) fn format_dtm_seconds(at: DateTime<Utc>) -> String {
    at.format("%Y%m%d%H%M%S+0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        assert_eq!(parse_dtm("20240301120000+0000"), Ok(Some(utc(2024, 3, 1, 12, 0, 0))));
        assert_eq!(parse_dtm("20240301120000+0100"), Ok(Some(utc(2024, 3, 1, 11, 0, 0))));
        assert_eq!(parse_dtm("20240301120000-0700"), Ok(Some(utc(2024, 3, 1, 19, 0, 0))));
        // The cases hl7-parser's own chrono conversion gets wrong.
        assert_eq!(parse_dtm("20240301120000-0330"), Ok(Some(utc(2024, 3, 1, 15, 30, 0))));
        assert_eq!(parse_dtm("20240301120000-0030"), Ok(Some(utc(2024, 3, 1, 12, 30, 0))));
        assert_eq!(parse_dtm("20240301120000+0530"), Ok(Some(utc(2024, 3, 1, 6, 30, 0))));
    }

    #[test]
    fn no_offset_is_utc_and_short_forms_default_to_period_start() {
        assert_eq!(parse_dtm("20240301120005"), Ok(Some(utc(2024, 3, 1, 12, 0, 5))));
        assert_eq!(parse_dtm("202403011200"), Ok(Some(utc(2024, 3, 1, 12, 0, 0))));
        assert_eq!(parse_dtm("20240301"), Ok(Some(utc(2024, 3, 1, 0, 0, 0))));
        assert_eq!(parse_dtm("2024"), Ok(Some(utc(2024, 1, 1, 0, 0, 0))));
        let frac = parse_dtm("20240301120005.25+0000").unwrap().unwrap();
        assert_eq!(frac, utc(2024, 3, 1, 12, 0, 5) + TimeDelta::milliseconds(250));
    }

    #[test]
    fn empty_is_none_and_garbage_is_an_error() {
        assert_eq!(parse_dtm(""), Ok(None));
        assert_eq!(parse_dtm("   "), Ok(None));
        for bad in [
            "yesterday",
            "2024-03-01T12:00:00Z",
            "20241301120000",       // month 13
            "20240230120000",       // 30 February
            "20240301250000",       // hour 25
            "20240301120000+",      // sign without offset
            "20240301120000+01",    // 2-digit offset
            "20240301120000+2500",  // offset hours out of range
            "20240301120000+0160",  // offset minutes out of range
            "20240301120000.12345", // 5 fractional digits
            "20240301120000Z",
        ] {
            assert_eq!(parse_dtm(bad), Err(BadTimestamp), "{bad}");
        }
    }

    #[test]
    fn format_round_trips() {
        let at = utc(2024, 3, 1, 12, 0, 5);
        assert_eq!(format_dtm(at), "20240301120005+0000");
        assert_eq!(format_dtm_seconds(at), "20240301120005+0000");
        let at_ms = at + TimeDelta::milliseconds(7);
        assert_eq!(format_dtm(at_ms), "20240301120005.007+0000");
        assert_eq!(format_dtm_seconds(at_ms), "20240301120005+0000");
        assert_eq!(parse_dtm(&format_dtm(at_ms)), Ok(Some(at_ms)));
    }
}
