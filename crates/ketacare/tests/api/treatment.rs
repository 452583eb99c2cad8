//! The treatment session over HTTP and MLLP: a whole session from booking to the signed note,
//! the pre-dose gate, vital signs typed in, from a device gateway (JSON, API token) and from a
//! monitor (HL7 v2 ORU^R01 over MLLP), alarms with acknowledgement, a silent monitor, the live
//! board and its room display.

use crate::helpers::*;
use chrono::Duration;
use ketacare_domain::access::Role;
use serde_json::{json, Value};

http_tests!(
    a_nurse_runs_a_session_from_booking_to_a_signed_locked_note,
    the_pre_dose_gate_needs_every_check_and_a_prescriber_above_the_blood_pressure_gate,
    typed_vitals_are_checked_and_implausible_values_are_never_stored,
    a_device_gateway_sends_json_with_an_api_token,
    the_mllp_listener_acks_files_readings_and_survives_bad_clients,
    a_silent_monitor_raises_the_stale_feed_alarm_and_nobody_acknowledging_escalates_it,
    the_board_shows_every_chair_and_the_room_display_shows_no_patient_details,
    a_second_server_on_the_same_postgresql_database_shows_the_alarm_on_its_board,
);

const DEVICE: &str = "00A0B1C2D3E4F5AA";
const CHAIR: &str = "ROOM1^CHAIR7";

async fn weigh(s: &Session, pid: &str, kg: &str) {
    s.post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": kg})).await.assert_status(201, "weight");
}

/// A patient weighed today with a double-checked SC order; returns (patient, order).
async fn ready_patient(app: &TestApp, mrn: &str, sex: &str) -> (String, String) {
    let prescriber = app.login(Role::Prescriber).await;
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&prescriber, mrn, "Hale", "Ruth", "1980-01-01", sex).await;
    weigh(&nurse, &pid, "70").await;
    let o = prescriber
        .post_json(&format!("/api/patients/{pid}/orders"), &json!({"route": "sc", "mg_per_kg": "0.5", "concentration_mg_per_ml": 50}))
        .await;
    o.assert_status(201, "order");
    let o = o.json();
    let oid = o["record_id"].as_str().unwrap().to_owned();
    nurse
        .post_json(
            &format!("/api/orders/{oid}/double-check"),
            &json!({"base_version": 1, "weight_kg": "70", "concentration_mg_per_ml": "50", "dose_mg": o["dose_mg"]}),
        )
        .await
        .assert_status(200, "double check");
    (pid, oid)
}

async fn act(s: &Session, sid: &str, body: Value) -> Resp {
    s.post_json(&format!("/api/sessions/{sid}/actions"), &body).await
}

async fn step(s: &Session, sid: &str, action: &str) -> Value {
    let r = act(s, sid, json!({"action": action})).await;
    r.assert_status(200, action);
    r.json()
}

async fn vitals(s: &Session, sid: &str, readings: Value) -> Resp {
    s.post_json(&format!("/api/sessions/{sid}/readings"), &json!({ "readings": readings })).await
}

fn bp(sys: &str, dia: &str) -> Value {
    json!([{"vital": "systolic", "value": sys}, {"vital": "diastolic", "value": dia}, {"vital": "heart_rate", "value": 74}])
}

/// Books and brings a session to monitoring; returns its id.
async fn monitoring_session(app: &TestApp, mrn: &str, device: &str, chair: &str) -> String {
    let nurse = app.login(Role::Nurse).await;
    let (pid, oid) = ready_patient(app, mrn, "male").await;
    let r = nurse.post_json(&format!("/api/patients/{pid}/sessions"), &json!({"chair": chair, "device_id": device, "order_id": oid})).await;
    r.assert_status(201, "book");
    let sid = r.json()["id"].as_str().unwrap().to_owned();
    step(&nurse, &sid, "check_in").await;
    step(&nurse, &sid, "start_checks").await;
    vitals(&nurse, &sid, bp("124", "78")).await.assert_status(200, "baseline");
    act(&nurse, &sid, json!({"action": "checks", "consent": "yes", "escort": "yes", "pregnancy_test": "not_applicable"}))
        .await
        .assert_status(200, "checks");
    step(&nurse, &sid, "start_dose").await;
    act(&nurse, &sid, json!({"action": "dose_given", "site": "abdomen"})).await.assert_status(200, "dose given");
    sid
}

/// An ORU^R01 in IHE PCD-01 shape with systolic/diastolic (and heart rate) now.
fn oru(app: &TestApp, control: &str, device: &str, location: &str, sys: &str, dia: &str) -> String {
    let r = |mdc, value: &str, unit| ketacare_hl7::Reading { mdc, value: value.to_owned(), unit };
    ketacare_hl7::build_oru(
        control,
        device,
        location,
        app.app.now(),
        &[
            r("150021^MDC_PRESS_BLD_NONINV_SYS^MDC", sys, "266016^MDC_DIM_MMHG^MDC"),
            r("150022^MDC_PRESS_BLD_NONINV_DIA^MDC", dia, "266016^MDC_DIM_MMHG^MDC"),
            r("147842^MDC_ECG_HEART_RATE^MDC", "76", "264864^MDC_DIM_BEAT_PER_MIN^MDC"),
        ],
    )
}

async fn send_hl7(app: &TestApp, msg: &str) -> (String, String, String) {
    let mut s = tokio::net::TcpStream::connect(app.mllp).await.expect("connect MLLP");
    let ack = ketacare_hl7::send(&mut s, msg).await.expect("ACK");
    let (code, id) = ketacare_hl7::ack_code_of(&ack).expect("an ACK with MSA");
    (code, id, ack)
}

async fn session(s: &Session, sid: &str) -> Value {
    let r = s.get(&format!("/api/sessions/{sid}")).await;
    r.assert_status(200, "session");
    r.json()
}

async fn a_nurse_runs_a_session_from_booking_to_a_signed_locked_note(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let (pid, oid) = ready_patient(app, "TS-0001", "female").await;
    let r = nurse.post_json(&format!("/api/patients/{pid}/sessions"), &json!({"chair": CHAIR, "device_id": DEVICE, "order_id": oid})).await;
    r.assert_status(201, "book");
    let s = r.json();
    let sid = s["id"].as_str().unwrap().to_owned();
    assert_eq!((s["phase"].as_str(), s["seq"].as_i64()), (Some("scheduled"), Some(1)));
    // The chair is taken until this session ends.
    let (other, _) = ready_patient(app, "TS-0002", "male").await;
    let r = nurse.post_json(&format!("/api/patients/{other}/sessions"), &json!({"chair": CHAIR})).await;
    r.assert_status(422, "chair in use");
    assert!(r.field_message("chair").contains("active session"), "{}", r.text);

    // Out of order: refused with a sentence, nothing changes.
    let r = act(&nurse, &sid, json!({"action": "start_dose"})).await;
    r.assert_status(422, "dose before check-in");
    assert!(r.field_message("step").contains("cannot start the dose while the session is scheduled"), "{}", r.text);
    let s = step(&nurse, &sid, "check_in").await;
    // A second click from an older page is a conflict, not a second step.
    act(&nurse, &sid, json!({"action": "start_checks", "seq": 1})).await.assert_status(409, "stale seq");
    assert_eq!(s["seq"], 2);
    step(&nurse, &sid, "start_checks").await;
    let r = act(&nurse, &sid, json!({"action": "start_dose"})).await;
    r.assert_status(422, "checks not met");
    let msg = r.field_message("checks");
    for missing in ["Consent not confirmed", "Escort home not confirmed", "Pregnancy test required", "Baseline blood pressure not recorded"]
    {
        assert!(msg.contains(missing), "{missing}: {msg}");
    }
    vitals(&nurse, &sid, bp("124", "78")).await.assert_status(200, "baseline");
    act(&nurse, &sid, json!({"action": "checks", "consent": "yes", "escort": "yes", "pregnancy_test": "negative"}))
        .await
        .assert_status(200, "checks");
    assert!(session(&nurse, &sid).await["gate_unmet"].as_array().unwrap().is_empty(), "every check met");
    let s = act(&nurse, &sid, json!({"action": "start_dose"})).await;
    s.assert_status(200, "start dose");
    assert_eq!(s.json()["baseline"], "124/78", "the baseline is frozen at the dose start");
    let r = act(&nurse, &sid, json!({"action": "dose_given"})).await;
    r.assert_status(422, "an SC injection needs its site");
    assert!(r.field_message("site").contains("injection site"));
    act(&nurse, &sid, json!({"action": "dose_given", "site": "abdomen, left lower quadrant"})).await.assert_status(200, "given");

    // The monitor sends a hypertensive reading over MLLP: stored before the ACK, alarm raised.
    let (code, id, _) = send_hl7(app, &oru(app, "MSG-0001", DEVICE, CHAIR, "186", "96")).await;
    assert_eq!((code.as_str(), id.as_str()), ("AA", "MSG-0001"));
    let v = session(&nurse, &sid).await;
    let mut rules: Vec<&str> = v["alarms"].as_array().unwrap().iter().map(|a| a["rule"].as_str().unwrap()).collect();
    rules.sort_unstable();
    assert_eq!(rules, vec!["sbp_above", "sbp_rise"], "above 180 and a rise of 62 from 124");
    let sbp = v["readings"].as_array().unwrap().iter().find(|r| r["value"] == "186").expect("stored");
    assert_eq!((sbp["loinc"].as_str(), sbp["source"].as_str(), sbp["device_id"].as_str()), (Some("8480-6"), Some("hl7"), Some(DEVICE)));
    // The same reading again: no second alarm while the first is open.
    let (code, ..) = send_hl7(app, &oru(app, "MSG-0002", DEVICE, CHAIR, "188", "97")).await;
    assert_eq!(code, "AA");
    assert_eq!(session(&nurse, &sid).await["alarms"].as_array().unwrap().len(), 2);

    // Recovery and discharge: refused while criteria are unmet, naming each.
    step(&nurse, &sid, "start_recovery").await;
    let r = act(&nurse, &sid, json!({"action": "discharge", "escort_present": "yes"})).await;
    r.assert_status(422, "too early");
    let msg = r.field_message("discharge");
    for unmet in ["at least 120 min needed", "not within 20 of the baseline", "No MOAA/S", "alarm(s) not acknowledged"] {
        assert!(msg.contains(unmet), "{unmet}: {msg}");
    }
    for a in v["alarms"].as_array().unwrap() {
        let r = nurse
            .post_json(
                &format!("/api/sessions/{sid}/alarms/{}/acknowledge", a["id"].as_str().unwrap()),
                &json!({"action": "cuff repeated; prescriber informed"}),
            )
            .await;
        r.assert_status(200, "ack");
        assert_eq!(r.json()["acknowledged_by"], "Nina Nurse, RN");
    }
    let again = nurse
        .post_json(
            &format!("/api/sessions/{sid}/alarms/{}/acknowledge", v["alarms"][0]["id"].as_str().unwrap()),
            &json!({"action": "again"}),
        )
        .await;
    again.assert_status(409, "acknowledged once");
    app.advance_minutes(125);
    // The login timed out while the patient recovered; the nurse logs in again.
    act(&nurse, &sid, json!({"action": "discharge", "escort_present": "yes"})).await.assert_status(401, "idle timeout");
    let nurse = app.login(Role::Nurse).await;
    // The monitor sent nothing while the clock moved on: the engine's clock raises the
    // stale-feed alarm (the server ticks every second; the test ticks once more to be sure).
    app.app.tick_sessions().await.unwrap();
    let stale: Vec<String> = session(&nurse, &sid).await["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "stale_feed" && a["acknowledged_at"].is_null())
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stale.len(), 1, "the silent monitor was noticed");
    nurse
        .post_json(&format!("/api/sessions/{sid}/alarms/{}/acknowledge", stale[0]), &json!({"action": "probe re-seated; cuff restarted"}))
        .await
        .assert_status(200, "ack stale");
    let (code, ..) = send_hl7(app, &oru(app, "MSG-0003", DEVICE, CHAIR, "131", "80")).await;
    assert_eq!(code, "AA", "recovery vitals from the monitor");
    // Sedation: an acknowledged MOAA/S 2 does not hide a MOAA/S 0.
    let r = nurse.post_json(&format!("/api/sessions/{sid}/ratings"), &json!({"instrument": "moaas", "answers": ["2"]})).await;
    r.assert_status(200, "MOAA/S 2");
    let low = r.json()[0].clone();
    assert_eq!((low["rule"].as_str(), low["level"].as_str()), (Some("moaas_low"), Some("warning")));
    nurse
        .post_json(
            &format!("/api/sessions/{sid}/alarms/{}/acknowledge", low["id"].as_str().unwrap()),
            &json!({"action": "stimulated; airway checked"}),
        )
        .await
        .assert_status(200, "ack MOAA/S 2");
    let r = nurse.post_json(&format!("/api/sessions/{sid}/ratings"), &json!({"instrument": "moaas", "answers": ["0"]})).await;
    assert_eq!((r.json()[0]["rule"].as_str(), r.json()[0]["level"].as_str()), (Some("moaas_low"), Some("critical")), "{}", r.text);
    nurse
        .post_json(
            &format!("/api/sessions/{sid}/alarms/{}/acknowledge", r.json()[0]["id"].as_str().unwrap()),
            &json!({"action": "responded to trapezius squeeze; prescriber at bedside"}),
        )
        .await
        .assert_status(200, "ack MOAA/S 0");
    let r = nurse.post_json(&format!("/api/sessions/{sid}/ratings"), &json!({"instrument": "moaas", "answers": ["5"]})).await;
    r.assert_status(200, "MOAA/S");
    let r = act(&nurse, &sid, json!({"action": "discharge", "escort_present": "no"})).await;
    r.assert_status(422, "no escort");
    assert!(r.field_message("discharge").contains("Escort not present"));
    let s = act(&nurse, &sid, json!({"action": "discharge", "escort_present": "yes", "note": "Well; home with partner."})).await;
    s.assert_status(200, "discharge");
    let s = s.json();
    assert_eq!((s["phase"].as_str(), s["signed_by"].as_str()), (Some("discharged"), Some("Nina Nurse, RN")));

    // Locked: only addenda.
    let r = act(&nurse, &sid, json!({"action": "adverse_event", "adverse_event": {"kind": "nausea", "grade": "1", "serious": "no", "action": "none", "outcome": "resolved"}})).await;
    r.assert_status(422, "locked");
    assert!(r.field_message("action").contains("locked"));
    act(&nurse, &sid, json!({"action": "addendum", "text": "Phoned next day: well, no nausea."})).await.assert_status(200, "addendum");
    let v = session(&nurse, &sid).await;
    let kinds: Vec<&str> = v["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.last(), Some(&"addendum"));
    assert!(kinds.contains(&"signed") && kinds.iter().filter(|k| **k == "alarm_ack").count() == 5, "{kinds:?}");
    // The chair is free again.
    nurse.post_json(&format!("/api/patients/{other}/sessions"), &json!({"chair": CHAIR})).await.assert_status(201, "chair free");
    // The order was given: a new session cannot give it again.
    let r = nurse.post_json(&format!("/api/patients/{pid}/sessions"), &json!({"chair": "ROOM1^CHAIR8", "order_id": oid})).await;
    r.assert_status(201, "next session booked");
    let again = r.json()["id"].as_str().unwrap().to_owned();
    step(&nurse, &again, "check_in").await;
    step(&nurse, &again, "start_checks").await;
    vitals(&nurse, &again, bp("122", "76")).await.assert_status(200, "baseline");
    act(&nurse, &again, json!({"action": "checks", "consent": "yes", "escort": "yes", "pregnancy_test": "negative"}))
        .await
        .assert_status(200, "checks");
    let r = act(&nurse, &again, json!({"action": "start_dose"})).await;
    r.assert_status(422, "order already given");
    assert!(r.field_message("order_id").contains("was given in the session of"), "{}", r.text);

    // The printable note carries the alarm, who acknowledged it and what was done.
    let note = nurse.get(&format!("/sessions/{sid}/note")).await;
    note.assert_status(200, "note");
    for want in [
        "Signed by",
        "Nina Nurse, RN",
        "Systolic BP 186 mmHg is above 180",
        "cuff repeated; prescriber informed",
        "Phoned next day",
        "Monitoring form",
    ] {
        assert!(note.text.contains(want), "note lacks {want}");
    }
}

async fn the_pre_dose_gate_needs_every_check_and_a_prescriber_above_the_blood_pressure_gate(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let prescriber = app.login(Role::Prescriber).await;
    let (pid, oid) = ready_patient(app, "TS-0003", "male").await;
    let sid = nurse.post_json(&format!("/api/patients/{pid}/sessions"), &json!({"chair": "ROOM2^CHAIR1", "order_id": oid})).await.json()
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    step(&nurse, &sid, "check_in").await;
    step(&nurse, &sid, "start_checks").await;
    vitals(&nurse, &sid, bp("152", "88")).await.assert_status(200, "baseline above the gate");
    act(&nurse, &sid, json!({"action": "checks", "consent": "yes", "escort": "yes", "pregnancy_test": "not_applicable"}))
        .await
        .assert_status(200, "checks");
    let r = act(&nurse, &sid, json!({"action": "start_dose"})).await;
    r.assert_status(422, "above 140/90");
    assert!(r.field_message("checks").contains("a prescriber must decide"), "{}", r.text);
    // A nurse cannot take the prescriber's decision.
    let r = act(
        &nurse,
        &sid,
        json!({"action": "checks", "consent": "yes", "escort": "yes", "pregnancy_test": "not_applicable", "gate_decision": "fine"}),
    )
    .await;
    r.assert_status(422, "nurse decides");
    assert!(r.field_message("gate_decision").contains("only a prescriber"));
    act(&prescriber, &sid, json!({"action": "checks", "consent": "yes", "escort": "yes", "pregnancy_test": "not_applicable", "gate_decision": "White-coat pattern; home readings 130s"}))
        .await
        .assert_status(200, "prescriber decides");
    // Above the hard ceiling nobody can go ahead.
    app.clock.advance(Duration::minutes(5));
    vitals(&nurse, &sid, bp("184", "96")).await.assert_status(200, "repeat");
    let r = act(&prescriber, &sid, json!({"action": "start_dose"})).await;
    r.assert_status(422, "hard ceiling");
    assert!(r.field_message("checks").contains("no dose today, for anyone"), "{}", r.text);
    app.clock.advance(Duration::minutes(5));
    vitals(&nurse, &sid, bp("138", "86")).await.assert_status(200, "repeat");
    act(&nurse, &sid, json!({"action": "start_dose"})).await.assert_status(200, "now within the gate");
    // Cancel is for before the dose; afterwards the dose is stopped early, with a reason.
    let r = act(&nurse, &sid, json!({"action": "cancel", "reason": "patient unwell"})).await;
    r.assert_status(422, "cancel after dose");
    assert!(r.field_message("step").contains("stop early instead"));
    act(&nurse, &sid, json!({"action": "stop"})).await.assert_status(422, "stop needs a reason");
    act(&nurse, &sid, json!({"action": "pause"})).await.assert_status(422, "pause needs a reason");
    let s = act(&nurse, &sid, json!({"action": "pause", "reason": "patient asked for a break"})).await;
    assert_eq!(s.json()["phase"], "paused_dosing");
}

async fn typed_vitals_are_checked_and_implausible_values_are_never_stored(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let sid = monitoring_session(app, "TS-0004", "00A0B1C2D3E4F5AB", "ROOM2^CHAIR2").await;
    let before = session(&nurse, &sid).await["readings"].as_array().unwrap().len();
    let r = vitals(&nurse, &sid, json!([{"vital": "systolic", "value": 400}, {"vital": "diastolic", "value": 80}])).await;
    r.assert_status(422, "implausible");
    assert!(r.field_message("systolic").contains("measure again"), "{}", r.text);
    let r = vitals(&nurse, &sid, json!([{"vital": "heart_rate", "value": "seventy"}])).await;
    r.assert_status(422, "not a number");
    assert!(r.field_message("heart_rate").contains("a number in /min"), "{}", r.text);
    let r = vitals(&nurse, &sid, json!([{"vital": "pulse", "value": 70}])).await;
    r.assert_status(422, "unknown vital");
    assert!(r.field_message("pulse").contains("one of systolic"), "{}", r.text);
    let r = vitals(&nurse, &sid, json!([{"vital": "spo2", "value": 97, "observed_at": "2026-11-26T10:30"}])).await;
    r.assert_status(422, "future");
    assert!(r.field_message("observed_at").contains("future"));
    let r = nurse
        .post_json(&format!("/api/sessions/{sid}/readings"), &json!({"readings": [{"vital": "spo2", "value": 97, "site": "x"}]}))
        .await;
    r.assert_status(422, "unknown key");
    assert_eq!(session(&nurse, &sid).await["readings"].as_array().unwrap().len(), before, "nothing half-written");
    // A low SpO2 typed in raises its alarm like a monitor's.
    let r = vitals(&nurse, &sid, json!([{"vital": "spo2", "value": 89}])).await;
    r.assert_status(200, "low SpO2");
    assert_eq!(r.json()["alarms"][0]["rule"], "spo2_below");
    let researcher = app.login(Role::Researcher).await;
    researcher.get(&format!("/api/sessions/{sid}")).await.assert_status(403, "researchers see no sessions");
    researcher.get("/api/board").await.assert_status(403, "nor the board");
}

async fn a_device_gateway_sends_json_with_an_api_token(app: &TestApp) {
    let sid = monitoring_session(app, "TS-0005", "00A0B1C2D3E4F5AC", "ROOM2^CHAIR3").await;
    let admin = app.login(Role::Admin).await;
    let nurse_id = app.user(Role::Nurse).id.clone();
    let r = admin.post_json("/api/admin/tokens", &json!({"user_id": nurse_id, "label": "monitor gateway room 2"})).await;
    r.assert_status(201, "token");
    let gw = app.with_bearer(r.json()["secret"].as_str().unwrap());
    let t = (app.app.now() - Duration::seconds(5)).to_rfc3339();
    let body = json!({"device_id": "00A0B1C2D3E4F5AC", "message_id": "gw-1", "readings": [
        {"vital": "heart_rate", "value": 131, "observed_at": t},
        {"vital": "spo2", "value": "-100", "observed_at": t},
        {"vital": "respiratory_rate", "value": 90, "observed_at": t},
    ]});
    let r = gw.post_json("/api/device/readings", &body).await;
    r.assert_status(200, "gateway");
    let v = r.json();
    assert_eq!(v["stored"], 1, "{v}");
    let rejected: Vec<&str> = v["rejected"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    assert!(rejected.iter().any(|x| x.contains("no value")) && rejected.iter().any(|x| x.contains("implausible")), "{rejected:?}");
    assert_eq!(v["alarms"][0]["rule"], "hr_above");
    // Resent (the gateway lost our answer): stored once.
    assert_eq!(gw.post_json("/api/device/readings", &body).await.json()["stored"], 0);
    // By location when the device is not bound by id.
    let r =
        gw.post_json("/api/device/readings", &json!({"location": "ROOM2^CHAIR3", "readings": [{"vital": "systolic", "value": 120}]})).await;
    assert_eq!(r.json()["stored"], 1, "{}", r.text);
    let r = gw.post_json("/api/device/readings", &json!({"device_id": "FFFF", "readings": [{"vital": "systolic", "value": 120}]})).await;
    r.assert_status(422, "unbound device");
    assert!(r.field_message("device_id").contains("no active treatment session"));
    let r = gw
        .post_json(
            "/api/device/readings",
            &json!({"device_id": "00A0B1C2D3E4F5AC", "readings": [{"vital": "systolic", "value": 120, "observed_at": "yesterday"}]}),
        )
        .await;
    r.assert_status(422, "bad time");
    assert!(r.field_message("readings[0].observed_at").contains("RFC 3339"));
    app.anon().post_json("/api/device/readings", &body).await.assert_status(401, "no token");
    let nurse = app.login(Role::Nurse).await;
    let n = session(&nurse, &sid).await["readings"].as_array().unwrap().iter().filter(|r| r["source"] == "device").count();
    assert_eq!(n, 2);
}

async fn the_mllp_listener_acks_files_readings_and_survives_bad_clients(app: &TestApp) {
    use tokio::io::AsyncWriteExt;
    let sid = monitoring_session(app, "TS-0006", "00A0B1C2D3E4F5AD", "ROOM3^CHAIR1").await;
    let nurse = app.login(Role::Nurse).await;
    // Malformed and unsupported messages are answered, and the same connection goes on.
    let mut conn = tokio::net::TcpStream::connect(app.mllp).await.unwrap();
    let adt = "MSH|^~\\&|ADT|H|KETACARE|C|20261126090000||ADT^A01|ADT-1|P|2.6\rPID|||123";
    let ack = ketacare_hl7::send(&mut conn, adt).await.unwrap();
    assert_eq!(ketacare_hl7::ack_code_of(&ack), Some(("AR".into(), "ADT-1".into())));
    let ack = ketacare_hl7::send(&mut conn, "this is not HL7").await.unwrap();
    assert_eq!(ketacare_hl7::ack_code_of(&ack).unwrap().0, "AR");
    let no_obx = "MSH|^~\\&|MON^00A0B1C2D3E4F5AD^EUI-64|H|KETACARE|C|20261126090000||ORU^R01^ORU_R01|NOOBX-1|P|2.6\rPV1||I|ROOM3^CHAIR1";
    let ack = ketacare_hl7::send(&mut conn, no_obx).await.unwrap();
    assert_eq!(ketacare_hl7::ack_code_of(&ack), Some(("AE".into(), "NOOBX-1".into())));
    let ack = ketacare_hl7::send(&mut conn, &oru(app, "OK-1", "00A0B1C2D3E4F5AD", "ROOM3^CHAIR1", "126", "79")).await.unwrap();
    assert_eq!(ketacare_hl7::ack_code_of(&ack), Some(("AA".into(), "OK-1".into())));
    // A monitor that is bound to no session gets AE, and nothing is stored.
    let (code, id, ack) = send_hl7(app, &oru(app, "LOST-1", "0000000000000001", "NOWHERE", "126", "79")).await;
    assert_eq!((code.as_str(), id.as_str()), ("AE", "LOST-1"));
    assert!(ack.contains("no active treatment session"), "{ack}");
    // A client that leaves mid-message does not stop the listener.
    let mut half = tokio::net::TcpStream::connect(app.mllp).await.unwrap();
    let framed = ketacare_hl7::mllp::frame(&oru(app, "HALF-1", "00A0B1C2D3E4F5AD", "ROOM3^CHAIR1", "127", "79"));
    half.write_all(&framed[..framed.len() / 2]).await.unwrap();
    drop(half);
    // Another monitor that names the chair is not this patient's: refused, never filed there.
    app.clock.advance(Duration::seconds(1));
    let (code, _, ack) = send_hl7(app, &oru(app, "LOC-1", "FFFFFFFFFFFFFFFF", "ROOM3^CHAIR1", "128", "80")).await;
    assert_eq!(code, "AE");
    assert!(ack.contains("not the one bound"), "{ack}");
    let v = session(&nurse, &sid).await;
    let hl7: Vec<&str> = v["readings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "hl7" && r["vital"] == "systolic")
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(hl7, vec!["126"], "neither the half message nor the other monitor's reading was stored");
    // An extreme value is not a reading, but the bedside must look now; apnoea is a reading.
    app.clock.advance(Duration::seconds(1));
    let r = |mdc, value: &str, unit| ketacare_hl7::Reading { mdc, value: value.to_owned(), unit };
    let msg = ketacare_hl7::build_oru(
        "EXT-1",
        "00A0B1C2D3E4F5AD",
        "ROOM3^CHAIR1",
        app.app.now(),
        &[
            r("150456^MDC_PULS_OXIM_SAT_O2^MDC", "12", "262688^MDC_DIM_PERCENT^MDC"),
            r("151562^MDC_RESP_RATE^MDC", "0", "264928^MDC_DIM_RESP_PER_MIN^MDC"),
        ],
    );
    let (code, _, ack) = send_hl7(app, &msg).await;
    assert_eq!(code, "AA");
    assert!(ack.contains("stored 1; 1 values were not readings"), "{ack}");
    let v = session(&nurse, &sid).await;
    let rules: Vec<(&str, &str)> =
        v["alarms"].as_array().unwrap().iter().map(|a| (a["rule"].as_str().unwrap(), a["level"].as_str().unwrap())).collect();
    assert!(rules.contains(&("extreme_value", "critical")) && rules.contains(&("rr_below", "critical")), "{rules:?}");
    assert!(!v["readings"].as_array().unwrap().iter().any(|r| r["vital"] == "spo2" && r["value"] == "12"), "never stored");
    // A resend of the same message (its ACK was lost) is stored once.
    app.clock.advance(Duration::seconds(1));
    let msg = oru(app, "OK-1", "00A0B1C2D3E4F5AD", "ROOM3^CHAIR1", "126", "79");
    let _ = send_hl7(app, &msg).await;
    let n = session(&nurse, &sid).await["readings"].as_array().unwrap().len();
    let _ = send_hl7(app, &msg).await;
    assert_eq!(session(&nurse, &sid).await["readings"].as_array().unwrap().len(), n);
}

async fn a_silent_monitor_raises_the_stale_feed_alarm_and_nobody_acknowledging_escalates_it(app: &TestApp) {
    let sid = monitoring_session(app, "TS-0007", "00A0B1C2D3E4F5AE", "ROOM3^CHAIR2").await;
    let nurse = app.login(Role::Nurse).await;
    let (code, ..) = send_hl7(app, &oru(app, "S-1", "00A0B1C2D3E4F5AE", "ROOM3^CHAIR2", "122", "78")).await;
    assert_eq!(code, "AA");
    app.clock.advance(Duration::seconds(59));
    app.app.tick_sessions().await.unwrap();
    assert!(session(&nurse, &sid).await["alarms"].as_array().unwrap().is_empty(), "59 s is not yet stale");
    app.clock.advance(Duration::seconds(2));
    app.app.tick_sessions().await.unwrap();
    let v = session(&nurse, &sid).await;
    let a = &v["alarms"][0];
    assert_eq!((a["rule"].as_str(), a["level"].as_str()), (Some("stale_feed"), Some("critical")), "{v}");
    // Several servers ticking at once raise it once.
    app.app.tick_sessions().await.unwrap();
    assert_eq!(session(&nurse, &sid).await["alarms"].as_array().unwrap().len(), 1);
    // On the board it stays critical; a warning nobody acknowledges escalates.
    let r = vitals(&nurse, &sid, json!([{"vital": "heart_rate", "value": 130}])).await;
    assert_eq!(r.json()["alarms"][0]["level"], "warning");
    app.clock.advance(Duration::seconds(121));
    let board = nurse.get("/api/board").await.json();
    let chair = board["chairs"].as_array().unwrap().iter().find(|c| c["chair"] == "ROOM3^CHAIR2").unwrap().clone();
    let hr = chair["alarms"].as_array().unwrap().iter().find(|a| a["rule"] == "hr_above").unwrap();
    assert_eq!((hr["level"].as_str(), hr["escalated"].as_bool()), (Some("critical"), Some(true)), "{chair}");
}

async fn the_board_shows_every_chair_and_the_room_display_shows_no_patient_details(app: &TestApp) {
    let sid = monitoring_session(app, "TS-0008", "00A0B1C2D3E4F5AF", "ROOM4^CHAIR1").await;
    let nurse = app.login(Role::Nurse).await;
    let board = nurse.get("/api/board").await.json();
    let c = &board["chairs"][0];
    assert_eq!(
        (c["chair"].as_str(), c["initials"].as_str(), c["phase"].as_str()),
        (Some("ROOM4^CHAIR1"), Some("R. H."), Some("monitoring"))
    );
    assert_eq!(c["session_id"], sid.as_str());
    assert!(c["latest"].as_array().unwrap().iter().any(|l| l["vital"] == "systolic" && l["value"] == "124"));
    nurse.get("/board").await.assert_status(200, "board page");

    // The room display: its own token, no patient details, no API.
    let r = nurse.post_form("/board", "/board/room-display", &[]).await;
    r.assert_status(303, "room display");
    let cookie = r.set_cookies().into_iter().find(|c| c.starts_with("ketacare_room=")).expect("room cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("Path=/room"), "{cookie}");
    let token = cookie.split(';').next().unwrap().trim_start_matches("ketacare_room=").to_owned();
    let room = app.anon();
    let page = room.send(room.request(reqwest::Method::GET, "/room").header("cookie", format!("ketacare_room={token}"))).await;
    page.assert_status(200, "room page");
    assert!(!page.text.contains("Hale") && !page.text.contains("TS-0008"));
    let events =
        room.request(reqwest::Method::GET, "/room/events").header("cookie", format!("ketacare_room={token}")).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let mut events = events;
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), events.chunk()).await.unwrap().unwrap().unwrap();
    let text = String::from_utf8_lossy(&first).to_string();
    assert!(text.contains("event: board") && text.contains("ROOM4^CHAIR1"), "{text}");
    assert!(!text.contains("R. H.") && !text.contains(&sid), "no initials, no session id: {text}");
    // The room display keeps going when the staff login ends; its token opens nothing else.
    nurse.post_form("/board", "/logout", &[]).await;
    let again = room.send(room.request(reqwest::Method::GET, "/room").header("cookie", format!("ketacare_room={token}"))).await;
    again.assert_status(200, "room display after the staff logout");
    // Nor does a lockout of the account that opened it stop the alarms on the wall.
    let nurse_name = app.user(Role::Nurse).username.clone();
    for _ in 0..10 {
        app.try_login(&nurse_name, "violet lantern harbour 2025").await.assert_status(401, "wrong password");
    }
    app.try_login(&nurse_name, PASSWORD).await.assert_status(401, "the nurse is locked out");
    let locked = room.send(room.request(reqwest::Method::GET, "/room").header("cookie", format!("ketacare_room={token}"))).await;
    locked.assert_status(200, "room display while its nurse is locked out");
    let mut events =
        room.request(reqwest::Method::GET, "/room/events").header("cookie", format!("ketacare_room={token}")).send().await.unwrap();
    assert_eq!(events.status().as_u16(), 200, "the room's live events while its nurse is locked out");
    assert!(wait_for_event(&mut events, "ROOM4^CHAIR1", std::time::Duration::from_secs(10)).await.is_some(), "the board still streams");
    app.with_bearer(&token).get("/api/board").await.assert_status(401, "a room token is not an API token");
    let r = app.anon().get("/room").await;
    r.assert_status(303, "no token: to the login page");
}

/// Reads server-sent events from `resp` until one contains `needle` (or `within` runs out).
async fn wait_for_event(resp: &mut reqwest::Response, needle: &str, within: std::time::Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = String::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, resp.chunk()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if event.contains(needle) {
                return Some(event);
            }
        }
    }
    None
}

async fn a_second_server_on_the_same_postgresql_database_shows_the_alarm_on_its_board(app: &TestApp) {
    if app.backend != Backend::Postgres {
        return; // one server per SQLite database
    }
    let sid = monitoring_session(app, "TS-0009", "00A0B1C2D3E4F5B0", "ROOM5^CHAIR1").await;
    // Server B: same database, its own clock, no MLLP listener.
    let config = ketacare::Config {
        database_url: app.database_url().to_owned(),
        listen: "127.0.0.1:0".into(),
        secure_cookies: false,
        ..ketacare::Config::default()
    };
    let clock: std::sync::Arc<dyn ketacare_app::Clock> = app.clock.clone();
    let b = ketacare::Server::start(&config, Some(clock)).await.expect("second server");
    // Logins live in the database: the nurse's cookie works on server B too.
    let nurse = app.login(Role::Nurse).await;
    let cookie = nurse.cookie.clone().expect("cookie");
    let mut events = reqwest::Client::new().get(format!("http://{}/board/events", b.addr)).header("cookie", cookie).send().await.unwrap();
    assert_eq!(events.status(), 200);
    assert!(wait_for_event(&mut events, "ROOM5^CHAIR1", std::time::Duration::from_secs(5)).await.is_some(), "B's board shows the chair");
    // The monitor talks to server A; server B's board hears it through PostgreSQL.
    let sent = std::time::Instant::now();
    let (code, ..) = send_hl7(app, &oru(app, "PG-1", "00A0B1C2D3E4F5B0", "ROOM5^CHAIR1", "191", "99")).await;
    assert_eq!(code, "AA");
    let got = wait_for_event(&mut events, "sbp_above", std::time::Duration::from_secs(5)).await;
    let took = sent.elapsed();
    assert!(got.is_some_and(|e| e.contains(&sid)), "server B's board shows the alarm raised on server A");
    assert!(took < std::time::Duration::from_secs(1), "within a second: {took:?}");
    // A server stops even while a live board is connected to it.
    tokio::time::timeout(std::time::Duration::from_secs(10), b.stop()).await.expect("server B stops with a board open");
    drop(events);
}
