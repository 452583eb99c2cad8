//! Parsing ORU^R01 (IHE PCD-01) messages into [`OruMessage`] with their raw [`RawObservation`]s.

use std::fmt;

use chrono::{DateTime, Utc};
use hl7_parser::message::{Field, Segment};
use hl7_parser::Message;

use crate::ack::AckCode;
use crate::error::{echo, Hl7Error};
use crate::time::parse_dtm;

/// HL7 versions (MSH-12, first component) accepted by [`parse_oru`]; others are rejected (AR).
pub const SUPPORTED_VERSIONS: &[&str] = &["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6"];

/// One observation row (OBX), raw: mapping codes to vital signs and judging values is the
/// caller's job.
///
/// Text values are as sent: HL7 escape sequences (`\F\`, `\S\`, ...) are not decoded, and
/// components are joined with `^` (subcomponents with `&`) whatever separators the sender
/// declared in MSH-2.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawObservation {
    /// OBX-1 set id, `None` when empty.
    pub set_id: Option<String>,
    /// OBX-2 value type (`NM`, `ST`, `NA`, ...), may be empty on device-hierarchy rows.
    pub value_type: String,
    /// OBX-3 as sent, components joined with `^`, e.g. `150021^MDC_PRESS_BLD_NONINV_SYS^MDC`.
    pub observation_id: String,
    /// OBX-5 as sent (first repetition); may be `""` or a "no value" marker such as `-100`.
    pub value: String,
    /// OBX-6 first component, e.g. `266016`.
    pub unit: String,
    /// OBX-6 as sent, e.g. `266016^MDC_DIM_MMHG^MDC`.
    pub unit_text: String,
    /// OBX-11 observation result status (`R`, `F`, `X`, ...).
    pub status: String,
    /// When the value was observed, in UTC: OBX-14 when present, else OBR-7 of the nearest OBR
    /// above this OBX, else MSH-7; `None` when all three are empty.
    pub observed_at: Option<DateTime<Utc>>,
    /// OBX-18 (equipment instance identifier) first repetition, first component, e.g. an EUI-64.
    pub equipment: Option<String>,
}

/// A parsed ORU^R01 message: the header fields the intake needs and the raw observations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OruMessage {
    /// MSH-10 message control id, echoed in the ACK's MSA-2.
    pub control_id: String,
    /// MSH-3 sending application as sent, e.g. `MONITOR^0123456789ABCDEF^EUI-64`.
    pub sending_application: String,
    /// MSH-4 sending facility as sent (the ACK's receiving facility).
    pub sending_facility: String,
    /// MSH-5 receiving application as sent (the ACK's sending application).
    pub receiving_application: String,
    /// MSH-6 receiving facility as sent (the ACK's sending facility).
    pub receiving_facility: String,
    /// Best device identity: OBX-18 of the first OBX that has one, else the second component of
    /// MSH-3 (EUI-64), else the first component of MSH-3; `None` when all are empty.
    pub device_id: Option<String>,
    /// PV1-3 assigned location as sent, components joined by `^`, trailing empty components
    /// trimmed (`ROOM1^CHAIR2`, `^^CHAIR2`); `None` when absent or empty.
    pub location: Option<String>,
    /// PID-3 (first repetition) first component; `None` when absent or empty.
    pub patient_id: Option<String>,
    /// MSH-7 date/time of message, in UTC.
    pub message_time: Option<DateTime<Utc>>,
    /// MSH-12 version id (first component), one of [`SUPPORTED_VERSIONS`].
    pub version: String,
    /// The OBX rows in message order.
    pub observations: Vec<RawObservation>,
}

/// Why a message is not accepted: `AR` for messages that cannot or will not be processed at all
/// (not HL7, no MSH, wrong message type such as ADT, unsupported version or processing id, no
/// control id, oversize frame), `AE` for a well-formed ORU^R01 with a content error (no OBX,
/// unparseable timestamp, broken segment, several patients).
///
/// `text` is short and carries no patient data: it is safe for MSA-3 / ERR-8 and for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `AckCode::Reject` (AR) or `AckCode::Error` (AE).
    pub code: AckCode,
    /// MSH-10 when it could be read.
    pub control_id: Option<String>,
    /// Human-readable reason, safe to send back and to log.
    pub text: String,
}

impl Rejection {
    /// The rejection answering `error`, for the message with `control_id` (when readable).
    pub fn from_error(error: &Hl7Error, control_id: Option<String>) -> Self {
        Rejection { code: error.ack_code(), control_id, text: error.to_string() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.code(), self.text)
    }
}

impl std::error::Error for Rejection {}

/// Parses one HL7 v2 ORU^R01 message (IHE PCD-01 shape).
///
/// Segments may be separated by `\r`, `\n` or `\r\n`; blank lines and a leading byte-order mark
/// are ignored. The structure is read with `hl7-parser`; this function checks the header
/// (MSH-2, MSH-9 = `ORU^R01`, MSH-10 present, MSH-11 = `P` or empty, MSH-12 in
/// [`SUPPORTED_VERSIONS`]) and the content (every segment parses, at most one PID and one PV1,
/// at least one OBX, every OBX has OBX-3, every timestamp parses).
///
/// # Errors
///
/// A [`Rejection`] with `AR` or `AE` as described on [`Rejection`] and [`Hl7Error::ack_code`].
pub fn parse_oru(message: &str) -> Result<OruMessage, Rejection> {
    let text = normalize(message);
    if !text.starts_with("MSH") {
        return Err(Rejection::from_error(&Hl7Error::NotHl7, None));
    }
    let parsed = Message::parse(&text).map_err(|_| Rejection::from_error(&Hl7Error::BadMsh, None))?;
    let Some(msh) = parsed.segments.first() else {
        return Err(Rejection::from_error(&Hl7Error::BadMsh, None));
    };
    // hl7-parser reads MSH-2 as exactly 4 characters; a 5th (v2.7 truncation character) would
    // silently shift every MSH field by one, so not even MSH-10 can be trusted then.
    let bytes = text.as_bytes();
    if bytes.get(8).is_some_and(|&b| Some(&b) != bytes.get(3) && b != b'\r') {
        return Err(Rejection::from_error(&Hl7Error::EncodingCharacters, None));
    }
    let control_id = Some(field_text(msh, 10)).filter(|id| !id.trim().is_empty());
    let reject = |error: Hl7Error| Rejection::from_error(&error, control_id.clone());

    let message_type = (component_text(msh, 9, 1), component_text(msh, 9, 2));
    if message_type.0 != "ORU" || message_type.1 != "R01" {
        return Err(reject(Hl7Error::UnsupportedMessageType { found: echo(&field_text(msh, 9)) }));
    }
    let version = component_text(msh, 12, 1);
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(reject(Hl7Error::UnsupportedVersion { found: echo(&version) }));
    }
    let processing_id = component_text(msh, 11, 1);
    if !(processing_id.is_empty() || processing_id == "P") {
        return Err(reject(Hl7Error::UnsupportedProcessingId { found: echo(&processing_id) }));
    }
    let Some(control_id_text) = control_id.clone() else {
        return Err(reject(Hl7Error::MissingControlId));
    };

    // `Message::parse` stops quietly at the first segment it cannot read; never lose the rest.
    if parsed.raw_value().len() != text.len() {
        return Err(reject(Hl7Error::BadSegment { index: parsed.segments.len() + 1 }));
    }

    let message_time = parse_dtm(&component_text(msh, 7, 1)).map_err(|_| reject(Hl7Error::BadTimestamp { field: "MSH-7".to_owned() }))?;

    for segment in ["PID", "PV1"] {
        if parsed.segment_count(segment) > 1 {
            return Err(reject(Hl7Error::MultiplePatients { segment }));
        }
    }
    let patient_id = parsed.segment("PID").map(|pid| component_text(pid, 3, 1)).filter(|id| !id.is_empty());
    let location = parsed.segment("PV1").and_then(|pv1| {
        let mut components = components(pv1.field(3));
        while components.last().is_some_and(String::is_empty) {
            components.pop();
        }
        Some(components.join("^")).filter(|l| !l.is_empty())
    });

    let mut observations = Vec::new();
    let mut obr_count = 0;
    let mut obr_time = None;
    for segment in parsed.segments.iter().skip(1) {
        match segment.name {
            "OBR" => {
                obr_count += 1;
                obr_time = parse_dtm(&component_text(segment, 7, 1))
                    .map_err(|_| reject(Hl7Error::BadTimestamp { field: format!("OBR-7 of OBR {obr_count}") }))?;
            }
            "OBX" => {
                let index = observations.len() + 1;
                let observation_id = field_text(segment, 3);
                if observation_id.trim_matches('^').is_empty() {
                    return Err(reject(Hl7Error::MissingObservationId { index }));
                }
                let own_time = parse_dtm(&component_text(segment, 14, 1))
                    .map_err(|_| reject(Hl7Error::BadTimestamp { field: format!("OBX-14 of observation {index}") }))?;
                observations.push(RawObservation {
                    set_id: Some(field_text(segment, 1)).filter(|s| !s.is_empty()),
                    value_type: field_text(segment, 2),
                    observation_id,
                    value: field_text(segment, 5),
                    unit: component_text(segment, 6, 1),
                    unit_text: field_text(segment, 6),
                    status: field_text(segment, 11),
                    observed_at: own_time.or(obr_time).or(message_time),
                    equipment: Some(component_text(segment, 18, 1)).filter(|e| !e.is_empty()),
                });
            }
            _ => {}
        }
    }
    if observations.is_empty() {
        return Err(reject(Hl7Error::NoObservations));
    }

    let device_id = observations
        .iter()
        .find_map(|o| o.equipment.clone())
        .or_else(|| Some(component_text(msh, 3, 2)).filter(|d| !d.is_empty()))
        .or_else(|| Some(component_text(msh, 3, 1)).filter(|d| !d.is_empty()));

    Ok(OruMessage {
        control_id: control_id_text,
        sending_application: field_text(msh, 3),
        sending_facility: field_text(msh, 4),
        receiving_application: field_text(msh, 5),
        receiving_facility: field_text(msh, 6),
        device_id,
        location,
        patient_id,
        message_time,
        version,
        observations,
    })
}

/// Reads MSH-10 from the first segment of `text` when it is an MSH that parses, e.g. from the
/// head of an oversize frame, so that even a rejected message's ACK can echo its control id.
pub(crate) fn control_id_of(text: &str) -> Option<String> {
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let first_line = text.split(['\r', '\n']).next()?;
    let bytes = first_line.as_bytes();
    if !first_line.starts_with("MSH") || bytes.get(8).is_some_and(|b| Some(b) != bytes.get(3)) {
        return None;
    }
    let parsed = Message::parse(first_line).ok()?;
    Some(field_text(parsed.segments.first()?, 10)).filter(|id| !id.trim().is_empty())
}

/// Segment separators `\r`, `\n` and `\r\n` all become `\r`; blank lines, a leading BOM and
/// leading whitespace are dropped; a bare segment name gets its field separator.
fn normalize(message: &str) -> String {
    let message = message.trim_start_matches('\u{feff}').trim_start();
    let field_separator = message.strip_prefix("MSH").and_then(|rest| rest.chars().next()).unwrap_or('|');
    let mut out = String::with_capacity(message.len());
    for line in message.split(['\r', '\n']).filter(|line| !line.trim().is_empty()) {
        if !out.is_empty() {
            out.push('\r');
        }
        let line = line.trim_start();
        out.push_str(line);
        // A segment with no fields written as its bare name ("PID"): hl7-parser needs the
        // field separator after the name.
        if line.len() == 3 && line != "MSH" && line.chars().all(|c| c.is_ascii_alphanumeric()) {
            out.push(field_separator);
        }
    }
    out
}

/// The components of a field's first repetition, each with its subcomponents joined by `&`.
fn components(field: Option<&Field<'_>>) -> Vec<String> {
    field
        .and_then(|f| f.repeat(1))
        .map(|repeat| repeat.components().map(|c| c.subcomponents().map(|s| s.value).collect::<Vec<_>>().join("&")).collect())
        .unwrap_or_default()
}

/// A field's first repetition as text, components joined by `^` (empty when absent).
fn field_text(segment: &Segment<'_>, number: usize) -> String {
    components(segment.field(number)).join("^")
}

/// One component (1-based) of a field's first repetition (empty when absent).
fn component_text(segment: &Segment<'_>, field: usize, component: usize) -> String {
    components(segment.field(field)).into_iter().nth(component - 1).unwrap_or_default()
}
