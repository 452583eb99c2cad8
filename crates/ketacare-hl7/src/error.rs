//! The crate's one error type: every reason a message is not accepted.
//!
//! Each message text is short, names only HL7 field positions and protocol values (message
//! type, version, processing id, sizes), and never carries patient data, so it is safe to send
//! back in MSA-3 / ERR-8 and to log.

use crate::ack::AckCode;

/// Why an HL7 message (or MLLP frame) is not accepted.
///
/// [`Hl7Error::ack_code`] tells which negative acknowledgement answers it: `AR` (reject) for
/// messages that cannot or will not be processed at all, `AE` (error) for a well-formed
/// ORU^R01 whose content is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Hl7Error {
    /// The text does not start with an MSH segment.
    #[error("not an HL7 v2 message (it does not start with an MSH segment)")]
    NotHl7,
    /// The MSH segment does not parse (too short, bad separators).
    #[error("the MSH segment could not be parsed")]
    BadMsh,
    /// MSH-2 does not hold exactly four encoding characters (the v2.7+ truncation character is
    /// not supported, it would shift every MSH field).
    #[error("MSH-2 must hold exactly four encoding characters (^~\\&)")]
    EncodingCharacters,
    /// MSH-9 is not ORU^R01.
    #[error("message type {found} is not accepted; only ORU^R01")]
    UnsupportedMessageType {
        /// MSH-9 as sent, reduced to safe characters.
        found: String,
    },
    /// MSH-12 names a version this crate does not read.
    #[error("HL7 version {found} is not supported (2.3 to 2.6)")]
    UnsupportedVersion {
        /// MSH-12 as sent, reduced to safe characters.
        found: String,
    },
    /// MSH-11 is not P (production): training and debug messages never reach a patient record.
    #[error("processing id {found} is not accepted; only P (production)")]
    UnsupportedProcessingId {
        /// MSH-11 as sent, reduced to safe characters.
        found: String,
    },
    /// MSH-10 is empty, so no acknowledgement can be matched to the message.
    #[error("MSH-10 (message control id) is missing")]
    MissingControlId,
    /// A segment after MSH does not parse (bad name, no field separator).
    #[error("segment {index} is not a valid HL7 segment")]
    BadSegment {
        /// 1-based position of the segment in the message (MSH is 1).
        index: usize,
    },
    /// More than one PID (or PV1): one patient per message is supported, so that no reading is
    /// ever filed under the wrong patient.
    #[error("more than one {segment} segment; one patient per message is supported")]
    MultiplePatients {
        /// `PID` or `PV1`.
        segment: &'static str,
    },
    /// An ORU^R01 without any OBX segment.
    #[error("the message has no OBX (observation) segment")]
    NoObservations,
    /// An OBX without an observation identifier (OBX-3).
    #[error("OBX-3 of observation {index} is empty")]
    MissingObservationId {
        /// 1-based position of the OBX among the message's OBX segments.
        index: usize,
    },
    /// A timestamp field that does not parse as HL7 DTM.
    #[error("{field} is not an HL7 timestamp (YYYYMMDDHHMMSS[+/-ZZZZ])")]
    BadTimestamp {
        /// Which field, e.g. `MSH-7`, `OBR-7 of OBR 1`, `OBX-14 of observation 3`.
        field: String,
    },
    /// An MLLP frame larger than the configured maximum; its content was discarded.
    #[error("message of {size} bytes exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// Size of the discarded frame content in bytes.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
}

impl Hl7Error {
    /// The acknowledgement code answering this error: `AE` for content errors in a well-formed
    /// ORU^R01, `AR` for everything that is not processed at all.
    pub fn ack_code(&self) -> AckCode {
        match self {
            Hl7Error::NotHl7
            | Hl7Error::BadMsh
            | Hl7Error::EncodingCharacters
            | Hl7Error::UnsupportedMessageType { .. }
            | Hl7Error::UnsupportedVersion { .. }
            | Hl7Error::UnsupportedProcessingId { .. }
            | Hl7Error::MissingControlId
            | Hl7Error::FrameTooLarge { .. } => AckCode::Reject,
            Hl7Error::BadSegment { .. }
            | Hl7Error::MultiplePatients { .. }
            | Hl7Error::NoObservations
            | Hl7Error::MissingObservationId { .. }
            | Hl7Error::BadTimestamp { .. } => AckCode::Error,
        }
    }

    /// A short machine-readable name of the error kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Hl7Error::NotHl7 => "not_hl7",
            Hl7Error::BadMsh => "bad_msh",
            Hl7Error::EncodingCharacters => "encoding_characters",
            Hl7Error::UnsupportedMessageType { .. } => "unsupported_message_type",
            Hl7Error::UnsupportedVersion { .. } => "unsupported_version",
            Hl7Error::UnsupportedProcessingId { .. } => "unsupported_processing_id",
            Hl7Error::MissingControlId => "missing_control_id",
            Hl7Error::BadSegment { .. } => "bad_segment",
            Hl7Error::MultiplePatients { .. } => "multiple_patients",
            Hl7Error::NoObservations => "no_observations",
            Hl7Error::MissingObservationId { .. } => "missing_observation_id",
            Hl7Error::BadTimestamp { .. } => "bad_timestamp",
            Hl7Error::FrameTooLarge { .. } => "frame_too_large",
        }
    }
}

/// Reduces a protocol value echoed into an error text (message type, version, processing id)
/// to at most 20 safe characters, so that an error text can never carry arbitrary content.
pub(crate) fn echo(value: &str) -> String {
    let cleaned: String = value.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '^' | '-')).take(20).collect();
    if cleaned.is_empty() {
        "(empty)".to_owned()
    } else {
        cleaned
    }
}
