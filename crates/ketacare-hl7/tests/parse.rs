//! parse_oru, build_oru and build_ack against realistic PCD-01 messages.

mod common;

use chrono::TimeDelta;
use common::{minimal, utc, SAMPLE};
use ketacare_hl7::{ack_code_of, build_ack, build_oru, parse_oru, AckCode, Reading, Rejection};

#[test]
fn realistic_pcd01_message_is_read_field_by_field() {
    let msg = parse_oru(SAMPLE).expect("sample parses");
    assert_eq!(msg.control_id, "MSG00042");
    assert_eq!(msg.sending_application, "MONITOR^0123456789ABCDEF^EUI-64");
    assert_eq!(msg.sending_facility, "WARD3");
    assert_eq!(msg.receiving_application, "KETACARE");
    assert_eq!(msg.receiving_facility, "CLINIC");
    assert_eq!(msg.device_id.as_deref(), Some("0123456789ABCDEF"));
    assert_eq!(msg.location.as_deref(), Some("ROOM1^CHAIR2"));
    assert_eq!(msg.patient_id.as_deref(), Some("PAT123"));
    assert_eq!(msg.message_time, Some(utc(2024, 3, 1, 11, 0, 0)));
    assert_eq!(msg.version, "2.6");
    assert_eq!(msg.observations.len(), 5);

    let mds = &msg.observations[0];
    assert_eq!(mds.set_id.as_deref(), Some("1"));
    assert_eq!(mds.value_type, "");
    assert_eq!(mds.observation_id, "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC");
    assert_eq!(mds.value, "");
    assert_eq!(mds.unit, "");
    assert_eq!(mds.unit_text, "");
    assert_eq!(mds.status, "X");
    assert_eq!(mds.observed_at, Some(utc(2024, 3, 1, 10, 59, 0)), "no OBX-14: OBR-7");
    assert_eq!(mds.equipment.as_deref(), Some("0123456789ABCDEF"));

    let sys = &msg.observations[1];
    assert_eq!(sys.set_id.as_deref(), Some("2"));
    assert_eq!(sys.value_type, "NM");
    assert_eq!(sys.observation_id, "150021^MDC_PRESS_BLD_NONINV_SYS^MDC");
    assert_eq!(sys.value, "120");
    assert_eq!(sys.unit, "266016");
    assert_eq!(sys.unit_text, "266016^MDC_DIM_MMHG^MDC");
    assert_eq!(sys.status, "R");
    assert_eq!(sys.observed_at, Some(utc(2024, 3, 1, 10, 58, 30)));
    assert_eq!(sys.equipment.as_deref(), Some("0123456789ABCDEF"));

    let dia = &msg.observations[2];
    assert_eq!(dia.observation_id, "150022^MDC_PRESS_BLD_NONINV_DIA^MDC");
    assert_eq!(dia.value, "80");
    assert_eq!(dia.unit, "266016");

    let spo2 = &msg.observations[3];
    assert_eq!(spo2.observation_id, "150456^MDC_PULS_OXIM_SAT_O2^MDC");
    assert_eq!(spo2.value, "-100");
    assert_eq!(spo2.unit, "262688");
    assert_eq!(spo2.unit_text, "262688^MDC_DIM_PERCENT^MDC");
    // -0330: 11:59:55 local is 15:29:55 UTC (hl7-parser's own chrono conversion says 14:29:55).
    assert_eq!(spo2.observed_at, Some(utc(2024, 3, 1, 15, 29, 55)));

    let pulse = &msg.observations[4];
    assert_eq!(pulse.observation_id, "149530^MDC_PULS_OXIM_PULS_RATE^MDC");
    assert_eq!(pulse.value, "72");
    assert_eq!(pulse.unit, "264864");
    assert_eq!(pulse.status, "R");
    assert_eq!(pulse.observed_at, Some(utc(2024, 3, 1, 10, 59, 0)), "no OBX-14: OBR-7");
    assert_eq!(pulse.equipment.as_deref(), Some("FEDCBA9876543210"));
}

#[test]
fn newline_and_crlf_separators_and_blank_lines_are_accepted() {
    let expected = parse_oru(SAMPLE).unwrap();
    for separator in ["\n", "\r\n", "\r\n\r\n", "\n\n\r"] {
        let text = SAMPLE.replace('\r', separator);
        assert_eq!(parse_oru(&text).as_ref(), Ok(&expected), "separator {separator:?}");
    }
    let with_bom = format!("\u{feff}\r\n{SAMPLE}\r\n");
    assert_eq!(parse_oru(&with_bom), Ok(expected));
}

#[test]
fn fallbacks_device_from_msh3_time_from_msh7_location_trimmed_no_patient() {
    let text = concat!(
        "MSH|^~\\&|MONITOR^0123456789ABCDEF^EUI-64|||KETACARE|20240301120000+0000||ORU^R01^ORU_R01|A1|P|2.5\r",
        "PV1||I|^^CHAIR2^^\r",
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||F\r",
    );
    let msg = parse_oru(text).unwrap();
    assert_eq!(msg.device_id.as_deref(), Some("0123456789ABCDEF"), "MSH-3 second component");
    assert_eq!(msg.location.as_deref(), Some("^^CHAIR2"), "leading empties kept, trailing trimmed");
    assert_eq!(msg.patient_id, None);
    assert_eq!(msg.version, "2.5");
    assert_eq!(msg.observations[0].observed_at, Some(utc(2024, 3, 1, 12, 0, 0)), "no OBX-14, no OBR: MSH-7");
    assert_eq!(msg.observations[0].equipment, None);
    assert_eq!(msg.observations[0].status, "F");

    let plain = "MSH|^~\\&|GATEWAY||||||ORU^R01|A2|P|2.3.1\rPID\rPV1||I|\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97\r";
    let msg = parse_oru(plain).unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(msg.device_id.as_deref(), Some("GATEWAY"), "MSH-3 first component");
    assert_eq!(msg.location, None);
    assert_eq!(msg.patient_id, None);
    assert_eq!(msg.message_time, None);
    assert_eq!(msg.observations[0].observed_at, None);
    assert_eq!(msg.observations[0].set_id.as_deref(), Some("1"));
}

#[test]
fn build_oru_round_trips_through_parse_oru() {
    let at = utc(2024, 5, 17, 9, 30, 15) + TimeDelta::milliseconds(250);
    let readings = vec![
        Reading { mdc: "150021^MDC_PRESS_BLD_NONINV_SYS^MDC", value: "128".into(), unit: "266016^MDC_DIM_MMHG^MDC" },
        Reading { mdc: "150022^MDC_PRESS_BLD_NONINV_DIA^MDC", value: "84".into(), unit: "266016^MDC_DIM_MMHG^MDC" },
        Reading { mdc: "150456^MDC_PULS_OXIM_SAT_O2^MDC", value: "-100".into(), unit: "262688^MDC_DIM_PERCENT^MDC" },
        Reading { mdc: "149530^MDC_PULS_OXIM_PULS_RATE^MDC", value: "61.5".into(), unit: "264864^MDC_DIM_BEAT_PER_MIN^MDC" },
    ];
    let text = build_oru("CTRL-7", "0123456789ABCDEF", "ROOM1^CHAIR2", at, &readings);
    let msg = parse_oru(&text).unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(msg.control_id, "CTRL-7");
    assert_eq!(msg.device_id.as_deref(), Some("0123456789ABCDEF"));
    assert_eq!(msg.location.as_deref(), Some("ROOM1^CHAIR2"));
    assert_eq!(msg.patient_id, None);
    assert_eq!(msg.message_time, Some(at));
    assert_eq!(msg.version, "2.6");
    assert_eq!(msg.sending_application, "KETACARE_SIM^0123456789ABCDEF^EUI-64");
    assert_eq!(msg.observations.len(), readings.len());
    for (n, (obs, reading)) in msg.observations.iter().zip(&readings).enumerate() {
        assert_eq!(obs.set_id, Some((n + 1).to_string()));
        assert_eq!(obs.value_type, "NM");
        assert_eq!(obs.observation_id, reading.mdc);
        assert_eq!(obs.value, reading.value);
        assert_eq!(obs.unit_text, reading.unit);
        assert_eq!(obs.unit, reading.unit.split('^').next().unwrap());
        assert_eq!(obs.status, "R");
        assert_eq!(obs.observed_at, Some(at));
        assert_eq!(obs.equipment.as_deref(), Some("0123456789ABCDEF"));
    }
    // The shape the brief asks for: profile, OBR-4, containment.
    let parsed = hl7_parser::Message::parse(&text).unwrap();
    assert_eq!(parsed.query("MSH.21").unwrap().raw_value(), ketacare_hl7::PCD01_PROFILE);
    assert_eq!(parsed.query("OBR.4").unwrap().raw_value(), "182777000^monitoring of patient^SCT");
    assert_eq!(parsed.query("OBX[3].4").unwrap().raw_value(), "1.1.1.3");
    assert_eq!(parsed.query("OBX[3].18").unwrap().raw_value(), "0123456789ABCDEF^EUI-64");
}

fn rejected(text: &str) -> Rejection {
    match parse_oru(text) {
        Ok(msg) => panic!("expected a rejection, parsed {} observations", msg.observations.len()),
        Err(r) => r,
    }
}

#[test]
fn text_that_is_not_hl7_is_rejected_ar() {
    for text in ["", "hello world", "{\"spo2\": 97}", "PID|||123\rOBX|1|NM|x||1", "MSH", "MSH|^"] {
        let r = rejected(text);
        assert_eq!(r.code, AckCode::Reject, "{text:?}");
        assert_eq!(r.control_id, None, "{text:?}");
        assert!(!r.text.is_empty());
    }
}

#[test]
fn adt_is_rejected_ar_with_its_control_id() {
    let adt = "MSH|^~\\&|EPIC|EPICADT|SMS|SMSADT|199912271408|CHARRIS|ADT^A01|1817457|P|2.5\rPID||0493575^^^2^ID 1|454721||DOE^JOHN\r";
    let r = rejected(adt);
    assert_eq!(r.code, AckCode::Reject);
    assert_eq!(r.control_id.as_deref(), Some("1817457"));
    assert_eq!(r.text, "message type ADT^A01 is not accepted; only ORU^R01");
    assert!(!r.text.contains("DOE"), "no patient data in the text");
}

#[test]
fn unsupported_version_and_processing_id_are_rejected_ar() {
    let v22 = minimal("V22").replace("|P|2.6", "|P|2.2");
    let r = rejected(&v22);
    assert_eq!((r.code, r.control_id.as_deref()), (AckCode::Reject, Some("V22")));
    assert!(r.text.contains("2.2"), "{}", r.text);

    let training = minimal("T1").replace("|P|2.6", "|T|2.6");
    let r = rejected(&training);
    assert_eq!((r.code, r.control_id.as_deref()), (AckCode::Reject, Some("T1")));
    assert!(r.text.contains("processing id T"), "{}", r.text);

    let truncation_char = minimal("X").replace("MSH|^~\\&|", "MSH|^~\\&#|");
    assert_eq!(rejected(&truncation_char).code, AckCode::Reject);
}

#[test]
fn missing_control_id_is_rejected_ar_without_id() {
    let text = minimal("").to_string();
    let r = rejected(&text);
    assert_eq!(r.code, AckCode::Reject);
    assert_eq!(r.control_id, None);
    assert_eq!(r.text, "MSH-10 (message control id) is missing");
    let ack = build_ack(None, r.control_id.as_deref(), r.code, &r.text, utc(2024, 3, 1, 12, 0, 0));
    assert_eq!(ack_code_of(&ack), Some(("AR".to_owned(), String::new())));
}

#[test]
fn oru_without_obx_is_an_error_ae() {
    let text = "MSH|^~\\&|MON|||KETACARE|20240301120000+0000||ORU^R01^ORU_R01|NOOBX|P|2.6\rPID|||PAT1\rPV1||I|ROOM1^CHAIR2\rOBR|1|||182777000^monitoring of patient^SCT\r";
    let r = rejected(text);
    assert_eq!(r.code, AckCode::Error);
    assert_eq!(r.control_id.as_deref(), Some("NOOBX"));
    assert_eq!(r.text, "the message has no OBX (observation) segment");
}

#[test]
fn bad_timestamps_are_errors_ae_naming_the_field() {
    let bad_obx14 =
        SAMPLE.replace("20240301115830+0100||||0123456789ABCDEF^EUI-64\rOBX|3", "2024-03-01 11:58||||0123456789ABCDEF^EUI-64\rOBX|3");
    assert_ne!(bad_obx14, SAMPLE);
    let r = rejected(&bad_obx14);
    assert_eq!(r.code, AckCode::Error);
    assert_eq!(r.control_id.as_deref(), Some("MSG00042"));
    assert_eq!(r.text, "OBX-14 of observation 2 is not an HL7 timestamp (YYYYMMDDHHMMSS[+/-ZZZZ])");

    let bad_obr7 = SAMPLE.replace("|||20240301115900+0100", "|||20241301115900+0100");
    assert_eq!(rejected(&bad_obr7).text, "OBR-7 of OBR 1 is not an HL7 timestamp (YYYYMMDDHHMMSS[+/-ZZZZ])");

    let bad_msh7 = SAMPLE.replace("|20240301120000+0100|", "|20240301120000+01|");
    let r = rejected(&bad_msh7);
    assert_eq!((r.code, r.text.as_str()), (AckCode::Error, "MSH-7 is not an HL7 timestamp (YYYYMMDDHHMMSS[+/-ZZZZ])"));
}

#[test]
fn broken_segments_several_patients_and_empty_obx3_are_errors_ae() {
    // hl7-parser stops at a segment it cannot read; the rest must not be silently dropped.
    let broken = SAMPLE.replace("OBX|4|", "OB|4|");
    let r = rejected(&broken);
    assert_eq!((r.code, r.text.as_str()), (AckCode::Error, "segment 8 is not a valid HL7 segment"));

    let two_patients = format!("{SAMPLE}PID|||OTHER\rOBX|6|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||95\r");
    let r = rejected(&two_patients);
    assert_eq!(r.code, AckCode::Error);
    assert!(r.text.contains("one patient per message"), "{}", r.text);
    assert!(!r.text.contains("OTHER"));

    let no_obx3 = minimal("E3").replace("|150456^MDC_PULS_OXIM_SAT_O2^MDC|", "||");
    assert_eq!(rejected(&no_obx3).text, "OBX-3 of observation 1 is empty");
}

#[test]
fn ack_answers_with_echoed_id_swapped_parties_and_err_when_negative() {
    let now = utc(2024, 3, 1, 12, 34, 56);
    let original = parse_oru(SAMPLE).unwrap();

    let ack = build_ack(Some(&original), Some("MSG00042"), AckCode::Accept, "", now);
    assert_eq!(ack_code_of(&ack), Some(("AA".to_owned(), "MSG00042".to_owned())));
    let parsed = hl7_parser::Message::parse(&ack).expect("ACK parses with hl7-parser");
    assert_eq!(parsed.segments.len(), 2, "no ERR on AA: {ack:?}");
    assert_eq!(parsed.query("MSH.3").unwrap().raw_value(), "KETACARE");
    assert_eq!(parsed.query("MSH.4").unwrap().raw_value(), "CLINIC");
    assert_eq!(parsed.query("MSH.5").unwrap().raw_value(), "MONITOR^0123456789ABCDEF^EUI-64");
    assert_eq!(parsed.query("MSH.6").unwrap().raw_value(), "WARD3");
    assert_eq!(parsed.query("MSH.7").unwrap().raw_value(), "20240301123456+0000");
    assert_eq!(parsed.query("MSH.9").unwrap().raw_value(), "ACK^R01^ACK");
    assert_eq!(parsed.query("MSH.10").unwrap().raw_value(), "ACKMSG00042");
    assert_eq!(parsed.query("MSH.11").unwrap().raw_value(), "P");
    assert_eq!(parsed.query("MSH.12").unwrap().raw_value(), "2.6");
    assert!(ack.ends_with('\r'));

    for (code, msa1) in [(AckCode::Error, "AE"), (AckCode::Reject, "AR")] {
        let ack = build_ack(Some(&original), Some("MSG00042"), code, "storage | unavailable", now);
        assert_eq!(ack_code_of(&ack), Some((msa1.to_owned(), "MSG00042".to_owned())));
        let parsed = hl7_parser::Message::parse(&ack).expect("ACK parses with hl7-parser");
        assert_eq!(parsed.segments.len(), 3);
        let err = parsed.segment("ERR").expect("ERR present");
        assert_eq!(err.field(4).unwrap().raw_value(), "E");
        assert_eq!(err.field(3).unwrap().component(3).unwrap().raw_value(), "HL70357");
        // The text's separator is escaped, so it cannot break the ACK's structure.
        assert_eq!(err.field(8).unwrap().raw_value(), "storage \\F\\ unavailable");
        assert_eq!(parsed.query("MSA.3").unwrap().raw_value(), "storage \\F\\ unavailable");
    }

    // Unknown original: default version, our own name, fresh id from the clock, empty MSA-2.
    let ack = build_ack(None, None, AckCode::Reject, "not an HL7 v2 message", now);
    let parsed = hl7_parser::Message::parse(&ack).unwrap();
    assert_eq!(parsed.query("MSH.12").unwrap().raw_value(), "2.6");
    assert_eq!(parsed.query("MSH.3").unwrap().raw_value(), "KETACARE");
    assert_eq!(parsed.query("MSH.10").unwrap().raw_value(), "ACK20240301123456000");
    assert_eq!(ack_code_of(&ack), Some(("AR".to_owned(), String::new())));
    assert!(parsed.segment("ERR").is_some());

    // v2.3.1 original: same version, ERR-1 style error.
    let old = parse_oru(&minimal("OLD1").replace("|P|2.6", "|P|2.3.1")).unwrap();
    let ack = build_ack(Some(&old), Some("OLD1"), AckCode::Error, "bad", now);
    let parsed = hl7_parser::Message::parse(&ack).unwrap();
    assert_eq!(parsed.query("MSH.12").unwrap().raw_value(), "2.3.1");
    assert_eq!(parsed.query("ERR.1.4").unwrap().raw_value(), "207&Application internal error&HL70357");
}

#[test]
fn ack_code_of_is_none_for_non_acks() {
    assert_eq!(ack_code_of("garbage"), None);
    assert_eq!(ack_code_of(SAMPLE), None);
}

proptest::proptest! {
    #[test]
    fn parse_oru_never_panics(tail in ".{0,400}", head in proptest::sample::select(vec!["", "MSH|^~\\&|", "MSH|^~\\&|M|||K|2024||ORU^R01|1|P|2.6\r"])) {
        let _ = parse_oru(&format!("{head}{tail}"));
    }

    #[test]
    fn sample_with_any_one_byte_removed_never_panics(cut in 0usize..1200) {
        let cut = cut.min(SAMPLE.len() - 1);
        let mut text = SAMPLE.to_owned();
        if text.is_char_boundary(cut) {
            text.remove(cut);
        }
        let _ = parse_oru(&text);
    }
}

#[test]
fn an_ack_to_a_v2_3_message_has_the_two_part_message_type_of_v2_3() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z").unwrap().with_timezone(&chrono::Utc);
    let original = ketacare_hl7::OruMessage { control_id: "C1".into(), version: "2.3".into(), ..Default::default() };
    let ack = ketacare_hl7::build_ack(Some(&original), Some("C1"), ketacare_hl7::AckCode::Accept, "stored 1", now);
    assert!(ack.contains("||ACK^R01|ACKC1|P|2.3"), "{ack}");
    let newer = ketacare_hl7::OruMessage { control_id: "C2".into(), version: "2.3.1".into(), ..Default::default() };
    let ack = ketacare_hl7::build_ack(Some(&newer), Some("C2"), ketacare_hl7::AckCode::Accept, "stored 1", now);
    assert!(ack.contains("||ACK^R01^ACK|ACKC2|P|2.3.1"), "{ack}");
}
