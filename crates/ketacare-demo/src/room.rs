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

/// One patient to seat on a monitored chair.
#[derive(Clone, Copy, Debug)]
pub struct SeatSpec<'a> {
    /// Chair as the monitor names it in PV1-3.
    pub chair: &'a str,
    /// The monitor's EUI-64.
    pub device: &'a str,
    /// MRN, given and family name, date of birth, sex (registration).
    pub mrn: &'a str,
    /// Given name.
    pub given: &'a str,
    /// Family name.
    pub family: &'a str,
    /// Date of birth, `YYYY-MM-DD`.
    pub dob: &'a str,
    /// `female`, `male`, ...
    pub sex: &'a str,
    /// Today's weight, kg.
    pub weight_kg: &'a str,
    /// Height, cm.
    pub height_cm: &'a str,
    /// Baseline systolic and diastolic.
    pub baseline: (&'a str, &'a str),
    /// The time the session is booked for (blank: now).
    pub scheduled_at: &'a str,
}

/// Takes one patient through the workflow to Monitoring on a monitored chair, by the
/// application's own use cases: registration, a diagnosis, height and today's weight, a
/// double-checked SC order, a booking with the monitor, check-in, baseline vitals, pre-dose
/// checks, dose started and given. Returns the session.
pub async fn seat(app: &App, prescriber: &Principal, nurse: &Principal, spec: &SeatSpec<'_>) -> Result<RecordId, AppError> {
    let demographics = DemographicsInput {
        mrn: spec.mrn.into(),
        family_name: spec.family.into(),
        given_name: spec.given.into(),
        date_of_birth: spec.dob.into(),
        sex: spec.sex.into(),
        ..Default::default()
    };
    let id = app.register_patient(nurse, &demographics).await?.patient_id;
    let gad = DiagnosisInput { choice: "gad".into(), status: "active".into(), ..Default::default() };
    app.add_record(prescriber, id, &RecordInput::Diagnosis(gad)).await?;
    app.record_height(nurse, id, &MeasurementInput { value: spec.height_cm.into(), ..Default::default() }).await?;
    app.record_weight(nurse, id, &MeasurementInput { value: spec.weight_kg.into(), ..Default::default() }).await?;
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
    let booking = BookingInput {
        chair: spec.chair.into(),
        device_id: spec.device.into(),
        order_id: order.record_id.to_string(),
        scheduled_at: spec.scheduled_at.into(),
    };
    let s = app.book_session(nurse, id, &booking).await?;
    app.session_action(nurse, s.id, None, SessionAction::CheckIn).await?;
    app.session_action(nurse, s.id, None, SessionAction::StartChecks).await?;
    let reading = |vital: &str, value: &str| ReadingInput { vital: vital.into(), value: value.into(), observed_at: String::new() };
    let (sys, dia) = spec.baseline;
    app.manual_readings(nurse, s.id, &[reading("systolic", sys), reading("diastolic", dia), reading("heart_rate", "74")]).await?;
    let checks = ChecksInput {
        consent: "yes".into(),
        escort: "yes".into(),
        pregnancy_test: if spec.sex == "female" { "negative".into() } else { "not_applicable".into() },
        gate_decision: String::new(),
    };
    app.session_action(nurse, s.id, None, SessionAction::Checks(checks)).await?;
    app.session_action(nurse, s.id, None, SessionAction::StartDose { at: String::new() }).await?;
    app.session_action(nurse, s.id, None, SessionAction::DoseGiven { site: "abdomen, left lower quadrant".into(), at: String::new() })
        .await?;
    Ok(s.id)
}

/// Seats the three room patients and starts their doses now.
pub async fn seed_room(app: &App, prescriber: &Principal, nurse: &Principal) -> Result<Vec<RoomChair>, AppError> {
    let mut out = Vec::new();
    for (chair, device, mrn, given, family, dob, sex, weight_kg, height_cm, story) in SEATS {
        let baseline = if story == Story::Hypertensive { ("132", "84") } else { ("118", "76") };
        let spec = SeatSpec { chair, device, mrn, given, family, dob, sex, weight_kg, height_cm, baseline, scheduled_at: "" };
        let session = seat(app, prescriber, nurse, &spec).await?;
        out.push(RoomChair { chair, device, story, session });
    }
    Ok(out)
}
