//! HL7 v2 intake of bedside monitors for Ketacare: ORU^R01 messages in IHE PCD-01 shape.
//!
//! - [`parse_oru`] reads one message (structure by the `hl7-parser` crate) into an
//!   [`OruMessage`] with raw [`RawObservation`]s, or a [`Rejection`] saying whether to answer
//!   `AR` (not processed at all) or `AE` (content error), with a text free of patient data.
//!   Mapping MDC codes to vital signs and judging values is the caller's job.
//! - [`build_ack`] builds the ACK^R01 (MSH, MSA, ERR) answering a message; [`ack_code_of`] reads
//!   MSA-1/MSA-2 back.
//! - [`mllp`] frames messages (`0x0B` … `0x1C 0x0D`), decodes frames from a byte stream and
//!   serves an MLLP listener ([`mllp::serve`]) that hands each accepted message to an
//!   [`mllp::OruHandler`] and answers with its ACK; [`mllp::send`] is a client helper.
//! - [`build_oru`] builds realistic PCD-01 messages for the demo, tests and benchmarks.
//!
//! Timestamps (HL7 DTM) are converted to UTC; a timestamp without an offset is taken as UTC.
//! Nothing in this crate logs message content or patient fields: logs carry control ids, sizes,
//! peer addresses, ACK codes and error kinds only.

mod ack;
mod builder;
mod error;
pub mod mllp;
mod oru;
mod time;

pub use ack::{ack_code_of, build_ack, AckCode, ACK_SENDING_APPLICATION, DEFAULT_VERSION};
pub use builder::{build_oru, Reading, PCD01_PROFILE};
pub use error::Hl7Error;
pub use mllp::{send, serve, ListenerConfig, OruHandler};
pub use oru::{parse_oru, OruMessage, RawObservation, Rejection, SUPPORTED_VERSIONS};
