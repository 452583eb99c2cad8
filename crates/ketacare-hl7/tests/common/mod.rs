//! Shared fixtures of the integration tests.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};

/// A realistic IHE PCD-01 ORU^R01 as a multi-parameter monitor sends it: an MDS row with
/// status X and no value, NIBP systolic/diastolic, an SpO2 "no value" (-100) and a pulse rate
/// without OBX-14 (falls back to OBR-7) from a second device (OBX-18).
pub const SAMPLE: &str = concat!(
    "MSH|^~\\&|MONITOR^0123456789ABCDEF^EUI-64|WARD3|KETACARE|CLINIC|20240301120000+0100||ORU^R01^ORU_R01|MSG00042|P|2.6|||AL|NE||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r",
    "PID|||PAT123^^^HOSP^PI||DOE^JANE^^^^^L\r",
    "PV1||I|ROOM1^CHAIR2\r",
    "OBR|1|MSG00042^MONITOR^0123456789ABCDEF^EUI-64|MSG00042^MONITOR^0123456789ABCDEF^EUI-64|182777000^monitoring of patient^SCT|||20240301115900+0100\r",
    "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1|||||||X|||||||0123456789ABCDEF^EUI-64\r",
    "OBX|2|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.6.1.1|120|266016^MDC_DIM_MMHG^MDC|||||R|||20240301115830+0100||||0123456789ABCDEF^EUI-64\r",
    "OBX|3|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.6.1.2|80|266016^MDC_DIM_MMHG^MDC|||||R|||20240301115830+0100||||0123456789ABCDEF^EUI-64\r",
    "OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|-100|262688^MDC_DIM_PERCENT^MDC|||||R|||20240301115955-0330||||0123456789ABCDEF^EUI-64\r",
    "OBX|5|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.2.1.2|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||||||FEDCBA9876543210^EUI-64\r",
);

/// A minimal well-formed ORU^R01 with the given control id.
pub fn minimal(control_id: &str) -> String {
    format!(
        "MSH|^~\\&|MON^0011223344556677^EUI-64|||KETACARE|20240301120000+0000||ORU^R01^ORU_R01|{control_id}|P|2.6\r\
         OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R\r"
    )
}

pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}
