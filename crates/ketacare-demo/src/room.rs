//! The simulated treatment room of the demo clinic: three patients on monitored chairs, each
//! taken through the session workflow by the application's own use cases (booked with the
//! chair's monitor, checked in, baseline vitals, pre-dose checks, the double-checked SC dose,
//! given), so that the live board is alive when a new user opens it. The monitors themselves
//! (HL7 over MLLP, one reading set per second) are driven by the `ketacare demo` binary:
//! chair 1 stays calm, chair 2 has a hypertensive response, chair 3's monitor goes silent.

use ketacare_app::{
    App, AppError, BookingInput, CheckInput, ChecksInput, MeasurementInput, OrderInput, Principal, ReadingInput, RecordInput, SessionAction,
};
use ketacare_domain::dose::DoseInput;
use ketacare_domain::ids::RecordId;
use ketacare_domain::patient::DemographicsInput;
use ketacare_domain::record::{ClinicalRecord, DiagnosisInput};

/// One monitored chair of the demo room.
#[derive(Clone, Debug)]
pub struct RoomChair {
    /// Chair as the monitor names it in PV1-3.
    pub chair: &'static str,
    /// The monitor's EUI-64.
    pub device: &'static str,
    /// What its monitor does.
    pub story: Story,
    /// The session.
    pub session: RecordId,
}

/// What a demo monitor sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Story {
    /// Steady vitals near the baseline.
    Calm,
    /// Systolic climbs from about 130 to above 180 mmHg over a few minutes.
    Hypertensive,
    /// Sends for a while, then nothing (the stale-feed alarm).
    Silent,
}

/// (chair, device, MRN, given, family, date of birth, sex, weight kg, height cm, story)
type Seat =
    (&'static str, &'static str, &'static str, &'static str, &'static str, &'static str, &'static str, &'static str, &'static str, Story);

/// Number of patients in the demo's treatment room.
pub const ROOM: usize = SEATS.len();

const SEATS: [Seat; 3] = [
    ("ROOM1^CHAIR1", "00A0B1C2D3E4F501", "KC-000070", "Mira", "Okafor", "1979-03-14", "female", "64.5", "168", Story::Calm),
    ("ROOM1^CHAIR2", "00A0B1C2D3E4F502", "KC-000071", "Tomas", "Lindqvist", "1968-09-02", "male", "88", "181", Story::Hypertensive),
    ("ROOM1^CHAIR3", "00A0B1C2D3E4F503", "KC-000072", "Priya", "Raman", "1990-11-21", "female", "58", "162", Story::Silent),
];

/// Seats the three room patients and starts their doses now.
pub async fn seed_room(app: &App, prescriber: &Principal, nurse: &Principal) -> Result<Vec<RoomChair>, AppError> {
    let mut out = Vec::new();
    for (chair, device, mrn, given, family, dob, sex, kg, cm, story) in SEATS {
        let demographics = DemographicsInput {
            mrn: mrn.into(),
            family_name: family.into(),
            given_name: given.into(),
            date_of_birth: dob.into(),
            sex: sex.into(),
            ..Default::default()
        };
        let id = app.register_patient(nurse, &demographics).await?.patient_id;
        let gad = DiagnosisInput { choice: "gad".into(), status: "active".into(), ..Default::default() };
        app.add_record(prescriber, id, &RecordInput::Diagnosis(gad)).await?;
        app.record_height(nurse, id, &MeasurementInput { value: cm.into(), ..Default::default() }).await?;
        app.record_weight(nurse, id, &MeasurementInput { value: kg.into(), ..Default::default() }).await?;
        let dose = DoseInput { route: "sc".into(), mg_per_kg: "0.5".into(), concentration_mg_per_ml: "50".into(), ..Default::default() };
        let order = app.order_dose(prescriber, id, &OrderInput { dose, ..Default::default() }).await?;
        if let ClinicalRecord::DoseOrder(o) = &order.record {
            let check = CheckInput {
                weight_kg: o.weight_kg.normalize().to_string(),
                concentration_mg_per_ml: "50".into(),
                dose_mg: o.dose_mg.normalize().to_string(),
            };
            app.double_check(nurse, order.record_id, order.version, &check).await?;
        }
        let booking =
            BookingInput { chair: chair.into(), device_id: device.into(), order_id: order.record_id.to_string(), ..Default::default() };
        let s = app.book_session(nurse, id, &booking).await?;
        app.session_action(nurse, s.id, None, SessionAction::CheckIn).await?;
        app.session_action(nurse, s.id, None, SessionAction::StartChecks).await?;
        let reading = |vital: &str, value: &str| ReadingInput { vital: vital.into(), value: value.into(), observed_at: String::new() };
        let baseline = if story == Story::Hypertensive { ("132", "84") } else { ("118", "76") };
        app.manual_readings(nurse, s.id, &[reading("systolic", baseline.0), reading("diastolic", baseline.1), reading("heart_rate", "74")])
            .await?;
        let checks = ChecksInput {
            consent: "yes".into(),
            escort: "yes".into(),
            pregnancy_test: if sex == "female" { "negative".into() } else { "not_applicable".into() },
            gate_decision: String::new(),
        };
        app.session_action(nurse, s.id, None, SessionAction::Checks(checks)).await?;
        app.session_action(nurse, s.id, None, SessionAction::StartDose { at: String::new() }).await?;
        app.session_action(nurse, s.id, None, SessionAction::DoseGiven { site: "abdomen, left lower quadrant".into(), at: String::new() })
            .await?;
        out.push(RoomChair { chair, device, story, session: s.id });
    }
    Ok(out)
}
