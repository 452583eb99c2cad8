//! Acknowledgements: building the ACK^R01 answering an ORU^R01, and reading MSA-1/MSA-2 back.

use chrono::{DateTime, Utc};
use hl7_parser::message::Separators;
use hl7_parser::Message;

use crate::oru::OruMessage;
use crate::time::format_dtm_seconds;

/// MSH-3 of our ACKs when the original message named no receiving application (MSH-5).
pub const ACK_SENDING_APPLICATION: &str = "KETACARE";

/// HL7 version of an ACK when the original's version is unknown.
pub const DEFAULT_VERSION: &str = "2.6";

/// Longest MSA-3 text sent (HL7 v2.5 gives MSA-3 80 characters); ERR carries up to 250.
const MSA_TEXT_MAX: usize = 80;
const ERR_TEXT_MAX: usize = 250;

/// Acknowledgement code (MSA-1, original mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// `AA`: accepted and stored.
    Accept,
    /// `AE`: application error (content of a well-formed message, or failure to store it).
    Error,
    /// `AR`: rejected (not an ORU^R01 we process at all).
    Reject,
}

impl AckCode {
    /// The MSA-1 code: `AA`, `AE` or `AR`.
    pub fn code(&self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }

    /// HL7 table 0357 error code, name and ERR severity for a negative acknowledgement. The code
    /// is coarse (the ACK carries no finer reason); MSA-3 and ERR's text say precisely what is
    /// wrong.
    fn err_code(&self) -> (&'static str, &'static str) {
        match self {
            AckCode::Accept => ("0", "Message accepted"),
            AckCode::Error => ("207", "Application internal error"),
            AckCode::Reject => ("200", "Unsupported message type"),
        }
    }
}

/// Builds an ACK (MSH, MSA, and ERR when not AA) answering `original`, segments terminated by
/// `\r`.
///
/// - MSH-3/4 are the original's MSH-5/6 (MSH-3 falls back to [`ACK_SENDING_APPLICATION`]),
///   MSH-5/6 the original's MSH-3/4: sender and receiver swapped.
/// - MSH-7 is `now` as `YYYYMMDDHHMMSS+0000`; MSH-9 `ACK^R01^ACK`; MSH-10 `ACK` + the original
///   control id (or `ACK` + `now` to the millisecond when it is unknown); MSH-11 `P`; MSH-12 the
///   original's version, or [`DEFAULT_VERSION`] when unknown.
/// - MSA-1 is `code`, MSA-2 echoes `original_control_id` (empty when `None`), MSA-3 is `text`
///   (HL7-escaped, at most 80 characters).
/// - ERR (not for AA): for v2.5 and later ERR-3 (HL7 table 0357 code), ERR-4 `E` and ERR-8
///   `text` (at most 250 characters); for v2.3/2.4 ERR-1 (error code and location) with the code
///   only, MSA-3 carrying the text.
pub fn build_ack(
    original: Option<&OruMessage>,
    original_control_id: Option<&str>,
    code: AckCode,
    text: &str,
    now: DateTime<Utc>,
) -> String {
    let separators = Separators::default();
    let escape = |value: &str, max: usize| -> String {
        let clipped: String = value.chars().filter(|c| !c.is_control()).take(max).collect();
        separators.encode(&clipped).to_string()
    };

    let (our_app, our_facility, their_app, their_facility, version) = match original {
        Some(o) => (
            if o.receiving_application.is_empty() { ACK_SENDING_APPLICATION } else { &o.receiving_application },
            o.receiving_facility.as_str(),
            o.sending_application.as_str(),
            o.sending_facility.as_str(),
            if o.version.is_empty() { DEFAULT_VERSION } else { &o.version },
        ),
        None => (ACK_SENDING_APPLICATION, "", "", "", DEFAULT_VERSION),
    };
    let echoed_id = original_control_id.map(raw_field).unwrap_or_default();
    let ack_id = match original_control_id {
        Some(id) => format!("ACK{}", raw_field(id)),
        None => format!("ACK{}", now.format("%Y%m%d%H%M%S%3f")),
    };

    // MSH-9's third component (message structure) came with v2.3.1: a v2.3 receiver gets two.
    let message_type = if version == "2.3" { "ACK^R01" } else { "ACK^R01^ACK" };
    let mut ack = format!(
        "MSH|^~\\&|{}|{}|{}|{}|{}||{message_type}|{ack_id}|P|{}\r",
        raw_field(our_app),
        raw_field(our_facility),
        raw_field(their_app),
        raw_field(their_facility),
        format_dtm_seconds(now),
        raw_field(version),
    );
    ack.push_str(&format!("MSA|{}|{echoed_id}", code.code()));
    if !text.is_empty() {
        ack.push('|');
        ack.push_str(&escape(text, MSA_TEXT_MAX));
    }
    ack.push('\r');
    if code != AckCode::Accept {
        let (err_code, err_name) = code.err_code();
        if version.starts_with("2.3") || version.starts_with("2.4") {
            ack.push_str(&format!("ERR|^^^{err_code}&{err_name}&HL70357\r"));
        } else {
            ack.push_str(&format!("ERR|||{err_code}^{err_name}^HL70357|E||||{}\r", escape(text, ERR_TEXT_MAX)));
        }
    }
    ack
}

/// Reads MSA-1 (acknowledgement code) and MSA-2 (control id of the acknowledged message) from an
/// ACK; `None` when the text is not HL7 or has no MSA segment.
pub fn ack_code_of(ack: &str) -> Option<(String, String)> {
    let parsed = Message::parse_with_lenient_newlines(ack.trim_start(), true).ok()?;
    let msa = parsed.segment("MSA")?;
    let field = |n: usize| msa.field(n).map(|f| f.raw_value().to_owned()).unwrap_or_default();
    Some((field(1), field(2)))
}

/// A value copied from the original message into an ACK field: it is already HL7-encoded, so
/// it is echoed as is (a control id must come back byte for byte), except that characters that
/// would break the ACK's structure (field separator, line breaks) are escaped or dropped.
fn raw_field(value: &str) -> String {
    value.chars().filter(|c| *c != '\r' && *c != '\n').collect::<String>().replace('|', "\\F\\")
}
