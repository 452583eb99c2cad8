//! Building realistic IHE PCD-01 ORU^R01 messages, for the demo, tests and benchmarks.

use chrono::{DateTime, Utc};
use hl7_parser::message::Separators;

use crate::time::format_dtm;

/// MSH-21 message profile identifier of IHE PCD-01 (Device Enterprise Communication).
pub const PCD01_PROFILE: &str = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO";

/// One numeric reading to put in an OBX row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// OBX-3, e.g. `150021^MDC_PRESS_BLD_NONINV_SYS^MDC`.
    pub mdc: &'static str,
    /// OBX-5, e.g. `120` (HL7-escaped when it holds separator characters).
    pub value: String,
    /// OBX-6, e.g. `266016^MDC_DIM_MMHG^MDC`.
    pub unit: &'static str,
}

/// Builds an ORU^R01 in IHE PCD-01 shape, segments terminated by `\r`:
///
/// - MSH: MSH-3 `KETACARE_SIM^<eui>^EUI-64`, MSH-5 `KETACARE`, MSH-7 `at`, MSH-9
///   `ORU^R01^ORU_R01`, MSH-10 `control_id`, MSH-11 `P`, MSH-12 `2.6`, MSH-15 `AL`, MSH-16 `NE`,
///   MSH-18 `UNICODE UTF-8`, MSH-21 [`PCD01_PROFILE`];
/// - an empty PID; PV1 with PV1-2 `I` and PV1-3 `location` (components as given, e.g.
///   `ROOM1^CHAIR2`);
/// - OBR with OBR-1 `1`, OBR-2/3 placer and filler order numbers, OBR-4
///   `182777000^monitoring of patient^SCT` and OBR-7 `at`;
/// - one OBX per reading: OBX-1 `N`, OBX-2 `NM`, OBX-3 `mdc`, OBX-4 `1.1.1.N`, OBX-5 `value`,
///   OBX-6 `unit`, OBX-11 `R`, OBX-14 `at`, OBX-18 `<eui>^EUI-64`.
///
/// Times are written in UTC with a `+0000` offset, to the millisecond when `at` has a sub-second
/// part.
pub fn build_oru(control_id: &str, device_eui64: &str, location: &str, at: DateTime<Utc>, readings: &[Reading]) -> String {
    let separators = Separators::default();
    let esc = |value: &str| separators.encode(value).to_string();
    let id = esc(control_id);
    let eui = esc(device_eui64);
    let ts = format_dtm(at);
    let mut message = format!(
        "MSH|^~\\&|KETACARE_SIM^{eui}^EUI-64||KETACARE||{ts}||ORU^R01^ORU_R01|{id}|P|2.6|||AL|NE||UNICODE UTF-8|||{PCD01_PROFILE}\r\
         PID|||\r\
         PV1||I|{location}\r\
         OBR|1|{id}^KETACARE_SIM^{eui}^EUI-64|{id}^KETACARE_SIM^{eui}^EUI-64|182777000^monitoring of patient^SCT|||{ts}\r"
    );
    for (n, reading) in readings.iter().enumerate() {
        let n = n + 1;
        message.push_str(&format!(
            "OBX|{n}|NM|{}|1.1.1.{n}|{}|{}|||||R|||{ts}||||{eui}^EUI-64\r",
            reading.mdc,
            esc(&reading.value),
            reading.unit,
        ));
    }
    message
}
