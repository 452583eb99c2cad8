//! The HL7 v2 ORU^R01 parser on arbitrary text: never panics; a refusal carries a reason, and
//! an accepted message has a control id to acknowledge.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match ketacare_hl7::parse_oru(&text) {
        Ok(m) => {
            // An accepted message can always be acknowledged.
            let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
            let ack = ketacare_hl7::build_ack(Some(&m), Some(&m.control_id), ketacare_hl7::AckCode::Accept, "ok", now);
            assert!(ack.starts_with("MSH|"), "an ACK is an HL7 message: {ack:?}");
        }
        Err(r) => assert!(!format!("{r:?}").is_empty()),
    }
});
