//! Six patients on SC 1 mg/kg maintenance whose histories show the long-term safety signals, so
//! that the clinic safety board has something to say when a prescriber opens it. Each is
//! screened (history, height and weight, HAM-A, GAD-7, ICSI, a normal liver panel), has three
//! weekly ascending SC doses (0.25, 0.5, 1 mg/kg; treatment sessions with HAM-A and CADSS an hour
//! after) and then a maintenance plan from the `sc_maintenance` protocol, every maintenance dose
//! ordered by the prescriber against the day's weight and double-checked by the nurse, with
//! GAD-7 before (and for most an hour after) and CADSS an hour after. Their histories are dated
//! back from the day the clinic is seeded, so the signals do not age with the demo and nothing is
//! dated on that day itself: a second instance of the application over the same store, whose
//! clock the demo sets to each moment in turn, records the chart through its own use cases.
//!
//! - `KC-000073` Eleanor Whitcombe: ALT rising to 3.45 x ULN over maintenance (review level) and
//!   bladder symptoms rising (ICSI 2, 5, 9); a care plan (HAM-A target, back to choir on
//!   Thursdays, weekly integration sessions, CBT) and no benefit-risk review yet;
//! - `KC-000074` Joel Marchetti: maintenance at 0.7 mg/kg after marked dissociation at 1 mg/kg,
//!   raised to 1 mg/kg at his request without a better response, CADSS falling from 17 to 9,
//!   two requests for earlier sessions in the last four weeks;
//! - `KC-000075` Kasper Nyland: craving 6/10, a urine toxicology positive for ketamine between
//!   sessions and cannabinoids, non-prescribed ketamine reported, then a substance-use disorder
//!   diagnosed (SNOMED CT 66214007, substance abuse) and maintenance put on hold;
//! - `KC-000076` Amira Belkacem: the benefit lasting seven days after the first maintenance doses
//!   and three after the latest, sessions brought forward from weekly to every four or five days
//!   without a better response;
//! - `KC-000077` Dominic Ashworth: twice-weekly maintenance (every three days, as the protocol
//!   lays it out) at 96 kg, above the drug library's soft 7- and 28-day caps (each such order
//!   passed with a reason and the medical director's approval), then visible haematuria;
//! - `KC-000078` Saoirse Lindholm: stable on weekly maintenance, normal liver tests and bladder
//!   questionnaires, a signed benefit-risk review (continue) whose next review date has passed.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use ketacare_app::{App, AppError, CheckInput, Clock, MeasurementInput, OrderInput, Principal, RecordInput};
use ketacare_domain::assessment::AssessmentInput;
use ketacare_domain::dose::DoseInput;
use ketacare_domain::ids::{PatientId, RecordId};
use ketacare_domain::order::OrderStatus;
use ketacare_domain::patient::DemographicsInput;
use ketacare_domain::record::{ClinicalRecord, DiagnosisInput, EncounterInput, MedicationInput, RecordVersion};
use ketacare_domain::safety::{CarePlan, Goal, GoalKind, LabInput, SafetyEventInput, Therapy};
use std::sync::{Arc, Mutex, PoisonError};

/// Number of maintenance patients with safety stories.
pub const SAFETY_PATIENTS: usize = STORIES.len();

/// Date-time format of the application's inputs.
const DT: &str = "%Y-%m-%dT%H:%M";
const D: &str = "%Y-%m-%d";
/// Stock concentration for SC doses, mg/mL.
const CONCENTRATION: &str = "50";
/// The reporting laboratory of the liver panels.
const LAB: &str = "Riverside Pathology";
/// Small day-to-day changes of the weight, tenths of a kilogram.
const WEIGHT_WOBBLE: [i64; 8] = [0, 2, -1, 1, 3, 0, -2, 1];

/// A clock the demo sets to each moment of a patient's history in turn.
struct DemoClock(Mutex<DateTime<Utc>>);

impl DemoClock {
    fn set(&self, t: NaiveDateTime) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = t.and_utc();
    }
}

impl Clock for DemoClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One dose: days before the seeding day, mg/kg, GAD-7 before (maintenance only), the anxiety
/// rating an hour after (HAM-A at the ascending doses, GAD-7 at maintenance) and CADSS an hour
/// after.
#[derive(Clone, Copy)]
struct Dose {
    ago: i64,
    mg_per_kg: &'static str,
    pre: u32,
    post: u32,
    cadss: u32,
}

const fn dose(ago: i64, mg_per_kg: &'static str, pre: u32, post: u32, cadss: u32) -> Dose {
    Dose { ago, mg_per_kg, pre, post, cadss }
}

/// A liver panel: days ago, ALT, AST, ALP, GGT (U/L) and bilirubin (umol/L).
#[derive(Clone, Copy)]
struct Panel {
    ago: i64,
    alt: u32,
    ast: u32,
    alp: u32,
    ggt: u32,
    bilirubin: u32,
}

const fn panel(ago: i64, alt: u32, ast: u32, alp: u32, ggt: u32, bilirubin: u32) -> Panel {
    Panel { ago, alt, ast, alp, ggt, bilirubin }
}

/// Upper limits of normal of the reporting laboratory, in the order of [`Panel`].
const ULN: [(&str, &str, &str); 5] =
    [("alt", "40", "U/L"), ("ast", "40", "U/L"), ("alp", "130", "U/L"), ("ggt", "55", "U/L"), ("bilirubin", "21", "umol/L")];

/// A safety observation: days ago, hour, kind, craving score, result, substances, note.
struct Event {
    ago: i64,
    hour: u32,
    kind: &'static str,
    score: &'static str,
    result: &'static str,
    substances: &'static str,
    note: &'static str,
}

/// A signed benefit-risk review: days ago, days from the seeding day to the next review
/// (negative: already passed), reasons.
struct Review {
    ago: i64,
    next_in: i64,
    reasons: &'static str,
}

/// A diagnosis made during treatment: days ago, SNOMED CT code, display, note.
struct LateDiagnosis {
    ago: i64,
    snomed: &'static str,
    display: &'static str,
    note: &'static str,
}

/// One patient's history.
struct Story {
    mrn: &'static str,
    given: &'static str,
    family: &'static str,
    dob: &'static str,
    sex: &'static str,
    phone: &'static str,
    height_cm: &'static str,
    /// Weight at screening, tenths of a kilogram.
    weight_tenths: i64,
    diagnoses: &'static [&'static str],
    /// (name, RxNorm, dose, start)
    medication: (&'static str, &'static str, &'static str, &'static str),
    /// Days before the seeding day of the screening visit.
    screening: i64,
    /// Baseline HAM-A, GAD-7 and ICSI totals at screening.
    baseline: (u32, u32, u32),
    ascending: [Dose; 3],
    /// `weekly` or `twice_weekly`.
    variant: &'static str,
    plan_note: &'static str,
    maintenance: &'static [Dose],
    /// Whether GAD-7 is also taken an hour after each maintenance dose (the response the
    /// titration review reads); the protocol itself asks only for GAD-7 before the dose.
    rated_after: bool,
    /// GAD-7 forms between sessions: days ago, hour, total.
    forms: &'static [(i64, u32, u32)],
    /// ICSI after the baseline: days ago, total.
    icsi: &'static [(i64, u32)],
    /// Liver panels after the baseline panel at screening (normal).
    panels: &'static [Panel],
    events: &'static [Event],
    /// Reason given for an order above a soft limit (the medical director approves it).
    override_reason: &'static str,
    late_diagnosis: Option<LateDiagnosis>,
    review: Option<Review>,
    care_plan: bool,
}

const STORIES: [Story; 6] = [
    Story {
        mrn: "KC-000073",
        given: "Eleanor",
        family: "Whitcombe",
        dob: "1981-05-09",
        sex: "female",
        phone: "+44 20 7946 0731",
        height_cm: "165",
        weight_tenths: 684,
        diagnoses: &["gad"],
        medication: ("Sertraline", "36437", "100 mg once daily", "2024-03-01"),
        screening: 70,
        baseline: (26, 16, 2),
        ascending: [dose(56, "0.25", 26, 22, 6), dose(49, "0.5", 25, 14, 13), dose(42, "1", 22, 10, 21)],
        variant: "weekly",
        plan_note: "Responder at 0.5 and 1 mg/kg (HAM-A 26 to 10). Weekly maintenance; liver panel and ICSI at least monthly.",
        maintenance: &[
            dose(35, "1", 11, 6, 20),
            dose(28, "1", 10, 5, 18),
            dose(21, "1", 9, 5, 16),
            dose(14, "1", 9, 5, 14),
            dose(7, "1", 9, 5, 12),
        ],
        rated_after: true,
        forms: &[(5, 19, 5), (1, 19, 6)],
        icsi: &[(28, 5), (7, 9)],
        panels: &[panel(21, 71, 45, 96, 61, 12), panel(2, 138, 84, 104, 97, 15)],
        events: &[],
        override_reason: "",
        late_diagnosis: None,
        review: None,
        care_plan: true,
    },
    Story {
        mrn: "KC-000074",
        given: "Joel",
        family: "Marchetti",
        dob: "1987-02-23",
        sex: "male",
        phone: "+44 20 7946 0742",
        height_cm: "178",
        weight_tenths: 810,
        diagnoses: &["gad", "sad"],
        medication: ("Escitalopram", "321988", "20 mg once daily", "2023-09-15"),
        screening: 66,
        baseline: (25, 17, 1),
        ascending: [dose(45, "0.25", 25, 21, 7), dose(38, "0.5", 24, 15, 15), dose(31, "1", 23, 11, 29)],
        variant: "weekly",
        plan_note: "Responder at 1 mg/kg, but distressing dissociation (CADSS 29): maintenance at 0.7 mg/kg.",
        maintenance: &[
            dose(24, "0.7", 12, 9, 17),
            dose(17, "0.7", 13, 10, 14),
            dose(10, "1", 13, 10, 10),
            dose(3, "1", 14, 11, 9),
        ],
        rated_after: true,
        forms: &[(21, 19, 12), (7, 19, 13)],
        icsi: &[(10, 2)],
        panels: &[],
        events: &[
            Event {
                ago: 20,
                hour: 15,
                kind: "dose_increase_request",
                score: "",
                result: "",
                substances: "",
                note: "Asks to go back to 1 mg/kg: \"0.7 doesn't touch it any more.\"",
            },
            Event {
                ago: 14,
                hour: 11,
                kind: "early_session_request",
                score: "",
                result: "",
                substances: "",
                note: "Telephoned asking to come in on Friday instead of next Wednesday.",
            },
            Event {
                ago: 6,
                hour: 16,
                kind: "early_session_request",
                score: "",
                result: "",
                substances: "",
                note: "Asked for an extra session this week; declined, next session kept.",
            },
        ],
        override_reason: "",
        late_diagnosis: None,
        review: None,
        care_plan: false,
    },
    Story {
        mrn: "KC-000075",
        given: "Kasper",
        family: "Nyland",
        dob: "1993-08-14",
        sex: "male",
        phone: "+44 20 7946 0753",
        height_cm: "184",
        weight_tenths: 772,
        diagnoses: &["sad"],
        medication: ("Venlafaxine", "39786", "150 mg once daily (modified release)", "2024-06-10"),
        screening: 68,
        baseline: (22, 15, 1),
        ascending: [dose(49, "0.25", 22, 18, 8), dose(42, "0.5", 21, 12, 16), dose(35, "1", 20, 9, 24)],
        variant: "weekly",
        plan_note: "Responder at 0.5 and 1 mg/kg. Weekly maintenance.",
        maintenance: &[dose(28, "1", 9, 5, 22), dose(21, "1", 9, 5, 19), dose(14, "1", 8, 4, 17), dose(7, "1", 8, 4, 15)],
        rated_after: true,
        forms: &[(5, 20, 5), (1, 20, 6)],
        icsi: &[(14, 2)],
        panels: &[],
        events: &[
            Event {
                ago: 3,
                hour: 14,
                kind: "craving",
                score: "6",
                result: "",
                substances: "",
                note: "Thinks about the next session most days.",
            },
            Event {
                ago: 3,
                hour: 14,
                kind: "substance_use",
                score: "",
                result: "",
                substances: "ketamine (not prescribed, bought online); cannabis",
                note: "Reports using ketamine twice since the last session.",
            },
            Event {
                ago: 3,
                hour: 15,
                kind: "urine_toxicology",
                score: "",
                result: "positive",
                substances: "ketamine and norketamine; cannabinoids (THC)",
                note: "Ketamine four days after the last clinic dose.",
            },
        ],
        override_reason: "",
        late_diagnosis: Some(LateDiagnosis {
            ago: 1,
            snomed: "66214007",
            display: "Substance abuse",
            note: "Ketamine use outside the clinic and cannabis; referred to addiction medicine. Maintenance on hold.",
        }),
        review: None,
        care_plan: false,
    },
    Story {
        mrn: "KC-000076",
        given: "Amira",
        family: "Belkacem",
        dob: "1976-11-02",
        sex: "female",
        phone: "+44 20 7946 0764",
        height_cm: "160",
        weight_tenths: 620,
        diagnoses: &["gad", "panic"],
        medication: ("Pregabalin", "187832", "150 mg twice daily", "2024-01-20"),
        screening: 76,
        baseline: (28, 17, 2),
        ascending: [dose(61, "0.25", 28, 24, 6), dose(54, "0.5", 27, 15, 14), dose(47, "1", 25, 11, 22)],
        variant: "weekly",
        plan_note: "Responder at 0.5 and 1 mg/kg. Weekly maintenance.",
        maintenance: &[
            dose(40, "1", 9, 6, 21),
            dose(33, "1", 9, 6, 19),
            dose(26, "1", 10, 7, 18),
            dose(19, "1", 11, 7, 17),
            dose(15, "1", 12, 8, 16),
            dose(10, "1", 13, 8, 15),
            dose(6, "1", 13, 8, 15),
        ],
        rated_after: true,
        forms: &[
            (37, 19, 6),
            (35, 19, 7),
            (30, 19, 7),
            (28, 19, 8),
            (23, 19, 8),
            (21, 19, 9),
            (17, 19, 8),
            (16, 19, 12),
            (13, 19, 8),
            (12, 19, 13),
            (5, 19, 8),
            (3, 19, 8),
            (2, 19, 13),
            (1, 19, 14),
        ],
        icsi: &[(15, 3)],
        panels: &[],
        events: &[Event {
            ago: 23,
            hour: 10,
            kind: "early_session_request",
            score: "",
            result: "",
            substances: "",
            note: "Anxiety back by the fourth day; asks for sessions closer together.",
        }],
        override_reason: "",
        late_diagnosis: None,
        review: None,
        care_plan: false,
    },
    Story {
        mrn: "KC-000077",
        given: "Dominic",
        family: "Ashworth",
        dob: "1970-04-18",
        sex: "male",
        phone: "+44 20 7946 0775",
        height_cm: "183",
        weight_tenths: 960,
        diagnoses: &["gad"],
        medication: ("Duloxetine", "72625", "60 mg once daily", "2023-11-02"),
        screening: 60,
        baseline: (27, 16, 1),
        ascending: [dose(48, "0.25", 27, 23, 5), dose(41, "0.5", 26, 16, 12), dose(34, "1", 24, 11, 19)],
        variant: "twice_weekly",
        plan_note: "Responder at 1 mg/kg; benefit lasts three days. Twice-weekly maintenance.",
        maintenance: &[
            dose(27, "1", 9, 5, 18),
            dose(24, "1", 8, 5, 15),
            dose(21, "1", 8, 4, 15),
            dose(18, "1", 8, 4, 14),
            dose(15, "1", 8, 4, 14),
            dose(12, "1", 8, 4, 13),
            dose(9, "1", 8, 4, 13),
            dose(6, "1", 8, 4, 12),
            dose(3, "1", 8, 4, 12),
        ],
        rated_after: false,
        forms: &[(2, 19, 5), (1, 19, 6)],
        icsi: &[(15, 3)],
        panels: &[panel(8, 27, 24, 88, 41, 10)],
        events: &[Event {
            ago: 1,
            hour: 9,
            kind: "haematuria",
            score: "",
            result: "positive",
            substances: "",
            note: "Visible blood in the urine since yesterday; dipstick blood 3+. Urine culture sent, urology referral; next session on hold.",
        }],
        override_reason: "Twice-weekly maintenance as the protocol lays it out (1 mg/kg every 3 days at 96 kg); benefit lasts 3 days.",
        late_diagnosis: None,
        review: None,
        care_plan: false,
    },
    Story {
        mrn: "KC-000078",
        given: "Saoirse",
        family: "Lindholm",
        dob: "1985-07-30",
        sex: "female",
        phone: "+44 20 7946 0786",
        height_cm: "170",
        weight_tenths: 710,
        diagnoses: &["gad"],
        medication: ("Sertraline", "36437", "150 mg once daily", "2023-05-12"),
        screening: 66,
        baseline: (24, 16, 1),
        ascending: [dose(56, "0.25", 24, 20, 6), dose(49, "0.5", 22, 11, 14), dose(42, "1", 19, 8, 20)],
        variant: "weekly",
        plan_note: "Responder at 0.5 and 1 mg/kg (HAM-A 24 to 8). Weekly maintenance.",
        maintenance: &[
            dose(35, "1", 8, 5, 19),
            dose(28, "1", 7, 4, 16),
            dose(21, "1", 6, 3, 12),
            dose(14, "1", 5, 3, 10),
            dose(7, "1", 5, 3, 9),
        ],
        rated_after: true,
        forms: &[(4, 19, 4), (1, 19, 5)],
        icsi: &[(31, 1), (7, 2)],
        panels: &[panel(31, 22, 20, 74, 24, 9)],
        events: &[],
        override_reason: "",
        late_diagnosis: None,
        review: Some(Review {
            ago: 30,
            next_in: -4,
            reasons: "First review on maintenance: sustained response since the ascending doses (HAM-A 24 to 8, GAD-7 16 to 5); no misuse, bladder or liver signals. Continue weekly maintenance; review again in four weeks.",
        }),
        care_plan: false,
    },
];

fn bad(what: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("demo safety patients: {what}"))
}

/// The application with the demo's clock, and who does what.
struct Seeder<'a> {
    app: App,
    clock: Arc<DemoClock>,
    today: NaiveDate,
    prescriber: &'a Principal,
    nurse: &'a Principal,
    director: &'a Principal,
}

impl Seeder<'_> {
    /// `ago` days before the seeding day at `hh:mm`.
    fn at(&self, ago: i64, hh: u32, mm: u32) -> Result<NaiveDateTime, AppError> {
        let t = NaiveTime::from_hms_opt(hh, mm, 0).ok_or_else(|| bad("bad time"))?;
        Ok((self.today - Duration::days(ago)).and_time(t))
    }

    /// Sets the clock to `ago` days before the seeding day at `hh:mm`.
    fn set(&self, ago: i64, hh: u32, mm: u32) -> Result<NaiveDateTime, AppError> {
        let t = self.at(ago, hh, mm)?;
        self.clock.set(t);
        Ok(t)
    }

    /// Answers for `instrument` adding up to `total`: each item in turn one allowed answer higher.
    fn answers(&self, instrument: &str, total: u32) -> Result<Vec<String>, AppError> {
        let inst = self.app.knowledge().instrument(instrument).ok_or_else(|| bad(format!("no instrument {instrument}")))?;
        let mut values: Vec<Option<u32>> =
            inst.items.iter().map(|i| i.scored.then(|| i.choices().first().copied().unwrap_or(i.min))).collect();
        let mut sum: u32 = values.iter().flatten().sum();
        while sum < total {
            let before = sum;
            for (v, item) in values.iter_mut().zip(&inst.items) {
                let Some(cur) = v else { continue };
                if let Some(next) = item.choices().into_iter().find(|c| *c > *cur) {
                    if sum + next - *cur <= total {
                        sum += next - *cur;
                        *v = Some(next);
                    }
                }
                if sum == total {
                    break;
                }
            }
            if sum == before {
                return Err(bad(format!("{instrument} cannot add up to {total}")));
            }
        }
        Ok(values.into_iter().map(|v| v.map(|x| x.to_string()).unwrap_or_default()).collect())
    }

    /// Records a rating scale taken at `taken` (relative to `session` at `timepoint`, if given).
    async fn rate(
        &self,
        who: &Principal,
        patient: PatientId,
        instrument: &str,
        total: u32,
        taken: NaiveDateTime,
        session: Option<(RecordId, &str)>,
    ) -> Result<usize, AppError> {
        let input = AssessmentInput {
            instrument: instrument.into(),
            answers: self.answers(instrument, total)?,
            taken_at: taken.format(DT).to_string(),
            session: session.map(|s| s.0.to_string()).unwrap_or_default(),
            timepoint: session.map(|s| s.1.to_owned()).unwrap_or_default(),
            note: String::new(),
        };
        Ok(self.app.record_assessment(who, patient, &input).await?.2.len())
    }

    /// A liver panel sampled in the morning and entered in the afternoon.
    async fn panel(&self, patient: PatientId, p: &Panel) -> Result<(), AppError> {
        let sampled = self.at(p.ago, 8, 40)?.format(DT).to_string();
        self.set(p.ago, 16, 30)?;
        for ((test, uln, unit), value) in ULN.into_iter().zip([p.alt, p.ast, p.alp, p.ggt, p.bilirubin]) {
            let input = LabInput { test: test.into(), value: value.to_string(), unit: unit.into(), uln: uln.into(), lab: LAB.into() };
            self.app.add_lab_result(self.nurse, patient, &input, &sampled).await?;
        }
        Ok(())
    }

    /// Registers the patient on the day of the screening visit.
    async fn register(&self, s: &Story) -> Result<PatientId, AppError> {
        self.set(s.screening, 8, 45)?;
        let demographics = DemographicsInput {
            mrn: s.mrn.into(),
            family_name: s.family.into(),
            given_name: s.given.into(),
            date_of_birth: s.dob.into(),
            sex: s.sex.into(),
            phone: s.phone.into(),
            ..Default::default()
        };
        Ok(self.app.register_patient(self.nurse, &demographics).await?.patient_id)
    }

    /// History, height, weight, baseline ratings and liver panel at screening.
    async fn screen(&self, s: &Story, id: PatientId) -> Result<usize, AppError> {
        let day = s.screening;
        self.set(day, 9, 5)?;
        let (name, rxnorm, med_dose, start) = s.medication;
        let medication =
            MedicationInput { name: name.into(), rxnorm: rxnorm.into(), dose: med_dose.into(), start: start.into(), stop: String::new() };
        self.app.add_record(self.prescriber, id, &RecordInput::Medication(medication)).await?;
        for (i, d) in s.diagnoses.iter().enumerate() {
            let note = if i == 0 { "Referred for ketamine after two adequate antidepressant trials without remission." } else { "" };
            let input = DiagnosisInput { choice: (*d).into(), status: "active".into(), note: note.into(), ..Default::default() };
            self.app.add_record(self.prescriber, id, &RecordInput::Diagnosis(input)).await?;
        }
        self.set(day, 9, 15)?;
        self.app.record_height(self.nurse, id, &MeasurementInput { value: s.height_cm.into(), ..Default::default() }).await?;
        self.app.record_weight(self.nurse, id, &MeasurementInput { value: tenths(s.weight_tenths), ..Default::default() }).await?;
        self.set(day, 10, 5)?;
        let encounter = EncounterInput {
            kind: "screening".into(),
            start: self.at(day, 9, 0)?.format(DT).to_string(),
            end: self.at(day, 10, 0)?.format(DT).to_string(),
            reason: "Screening and eligibility assessment".into(),
            note: String::new(),
        };
        self.app.add_record(self.prescriber, id, &RecordInput::Encounter(encounter)).await?;
        let (hama, gad7, icsi) = s.baseline;
        let mut alerts = self.rate(self.prescriber, id, "hama", hama, self.at(day, 9, 20)?, None).await?;
        alerts += self.rate(self.nurse, id, "gad7", gad7, self.at(day, 9, 35)?, None).await?;
        alerts += self.rate(self.nurse, id, "icsi", icsi, self.at(day, 9, 35)?, None).await?;
        self.panel(id, &panel(day, 22, 19, 78, 26, 9)).await?;
        Ok(alerts)
    }

    /// Plans the protocol on the day of its first dose.
    async fn plan(&self, patient: PatientId, protocol: &str, ago: i64, variant: &str, note: &str) -> Result<RecordId, AppError> {
        let start = self.set(ago, 9, 20)?.date().format(D).to_string();
        Ok(self.app.plan_protocol(self.prescriber, patient, protocol, &start, variant, note).await?.record_id)
    }

    /// A maintenance dosing day: weight, order (with the medical director's approval above a
    /// soft limit), double check, the treatment session and its ratings.
    async fn dose(&self, s: &Story, patient: PatientId, plan: RecordId, step: &str, d: &Dose, k: usize) -> Result<usize, AppError> {
        self.set(d.ago, 9, 30)?;
        let weight = s.weight_tenths + WEIGHT_WOBBLE[k % WEIGHT_WOBBLE.len()];
        self.app.record_weight(self.nurse, patient, &MeasurementInput { value: tenths(weight), ..Default::default() }).await?;
        self.set(d.ago, 9, 35)?;
        let order = OrderInput {
            dose: DoseInput {
                route: "sc".into(),
                mg_per_kg: d.mg_per_kg.into(),
                concentration_mg_per_ml: CONCENTRATION.into(),
                ..Default::default()
            },
            plan: plan.to_string(),
            step: step.into(),
            override_reason: s.override_reason.into(),
        };
        let mut v = self.app.order_dose(self.prescriber, patient, &order).await?;
        if status(&v)? == OrderStatus::AwaitingOverride {
            self.set(d.ago, 9, 38)?;
            v = self.app.approve_override(self.director, v.record_id, v.version).await?;
        }
        self.set(d.ago, 9, 45)?;
        let ClinicalRecord::DoseOrder(o) = &v.record else { return Err(bad("not a dose order")) };
        let check = CheckInput {
            weight_kg: o.weight_kg.normalize().to_string(),
            concentration_mg_per_ml: CONCENTRATION.into(),
            dose_mg: o.dose_mg.normalize().to_string(),
        };
        let checked = self.app.double_check(self.nurse, v.record_id, v.version, &check).await?;
        if status(&checked)? != OrderStatus::Checked {
            return Err(bad(format!("{}: the order was not checked", s.mrn)));
        }
        let reason =
            format!("SC ketamine {} mg/kg (maintenance, {})", d.mg_per_kg, if step == "weekly" { "weekly" } else { "twice weekly" });
        let session = self.session(patient, d.ago, reason).await?;
        let (pre, post) = (self.at(d.ago, 9, 50)?, self.at(d.ago, 11, 0)?);
        let mut alerts = self.rate(self.nurse, patient, "gad7", d.pre, pre, Some((session, "pre"))).await?;
        if s.rated_after {
            alerts += self.rate(self.nurse, patient, "gad7", d.post, post, Some((session, "1h"))).await?;
        }
        alerts += self.rate(self.prescriber, patient, "cadss", d.cadss, post, Some((session, "1h"))).await?;
        Ok(alerts)
    }

    /// The treatment session from 10:00 to 12:00, entered after it.
    async fn session(&self, patient: PatientId, ago: i64, reason: String) -> Result<RecordId, AppError> {
        self.set(ago, 12, 10)?;
        let encounter = EncounterInput {
            kind: "treatment".into(),
            start: self.at(ago, 10, 0)?.format(DT).to_string(),
            end: self.at(ago, 12, 0)?.format(DT).to_string(),
            reason,
            note: String::new(),
        };
        Ok(self.app.add_record(self.prescriber, patient, &RecordInput::Encounter(encounter)).await?.record_id)
    }

    /// An ascending dose before maintenance (given before the clinic ordered doses in Ketacare,
    /// so a treatment session with its ratings: HAM-A and CADSS an hour after).
    async fn ascending(&self, patient: PatientId, step: usize, d: &Dose) -> Result<usize, AppError> {
        let reason = format!("SC ketamine {} mg/kg (ascending dose {} of 3)", d.mg_per_kg, step + 1);
        let session = self.session(patient, d.ago, reason).await?;
        let post = self.at(d.ago, 11, 0)?;
        let mut alerts = self.rate(self.prescriber, patient, "hama", d.post, post, Some((session, "1h"))).await?;
        alerts += self.rate(self.prescriber, patient, "cadss", d.cadss, post, Some((session, "1h"))).await?;
        Ok(alerts)
    }

    /// One patient's whole history, in the order it happened; returns the alerts raised.
    async fn story(&self, s: &Story, id: PatientId) -> Result<usize, AppError> {
        let mut alerts = self.screen(s, id).await?;
        for (i, d) in s.ascending.iter().enumerate() {
            alerts += self.ascending(id, i, d).await?;
        }
        let first = s.maintenance.first().ok_or_else(|| bad("no maintenance dose"))?;
        let maintenance = self.plan(id, "sc_maintenance", first.ago, s.variant, s.plan_note).await?;
        // Everything after the first maintenance dose, in the order it happened.
        let mut todo: Vec<(NaiveDateTime, Step)> = Vec::new();
        for (k, d) in s.maintenance.iter().enumerate() {
            todo.push((self.at(d.ago, 9, 30)?, Step::Dose(k)));
        }
        for (k, f) in s.forms.iter().enumerate() {
            todo.push((self.at(f.0, f.1, 0)?, Step::Form(k)));
        }
        for (k, (ago, _)) in s.icsi.iter().enumerate() {
            todo.push((self.at(*ago, 12, 15)?, Step::Icsi(k)));
        }
        for (k, p) in s.panels.iter().enumerate() {
            todo.push((self.at(p.ago, 16, 30)?, Step::Panel(k)));
        }
        for (k, e) in s.events.iter().enumerate() {
            todo.push((self.at(e.ago, e.hour, 0)?, Step::Event(k)));
        }
        if let Some(l) = &s.late_diagnosis {
            todo.push((self.at(l.ago, 11, 0)?, Step::Diagnosis));
        }
        if let Some(r) = &s.review {
            todo.push((self.at(r.ago, 14, 0)?, Step::Review));
        }
        if s.care_plan {
            todo.push((self.at(first.ago, 12, 30)?, Step::CarePlan));
        }
        todo.sort_by_key(|t| t.0);
        for (_, step) in todo {
            match step {
                Step::Dose(k) => {
                    alerts += self.dose(s, id, maintenance, s.variant, &s.maintenance[k], k).await?;
                }
                Step::Form(k) => {
                    let (ago, hour, total) = s.forms[k];
                    let taken = self.set(ago, hour, 5)? - Duration::minutes(5);
                    alerts += self.rate(self.nurse, id, "gad7", total, taken, None).await?;
                }
                Step::Icsi(k) => {
                    let (ago, total) = s.icsi[k];
                    self.set(ago, 12, 15)?;
                    alerts += self.rate(self.nurse, id, "icsi", total, self.at(ago, 9, 52)?, None).await?;
                }
                Step::Panel(k) => self.panel(id, &s.panels[k]).await?,
                Step::Event(k) => {
                    let e = &s.events[k];
                    let at = self.set(e.ago, e.hour, 0)?.format(DT).to_string();
                    let input = SafetyEventInput {
                        kind: e.kind.into(),
                        score: e.score.into(),
                        result: e.result.into(),
                        substances: e.substances.into(),
                        note: e.note.into(),
                    };
                    self.app.add_safety_event(self.prescriber, id, &input, &at).await?;
                }
                Step::Diagnosis => {
                    let Some(l) = &s.late_diagnosis else { continue };
                    let onset = self.set(l.ago, 11, 0)?.date().format(D).to_string();
                    let dx = DiagnosisInput {
                        choice: "other".into(),
                        system: "snomed".into(),
                        code: l.snomed.into(),
                        display: l.display.into(),
                        onset,
                        status: "active".into(),
                        note: l.note.into(),
                        ..Default::default()
                    };
                    self.app.add_record(self.prescriber, id, &RecordInput::Diagnosis(dx)).await?;
                }
                Step::CarePlan => {
                    self.set(first.ago, 12, 30)?;
                    self.app.save_care_plan(self.prescriber, id, care_plan(self.today, first.ago)?, None, "").await?;
                }
                Step::Review => {
                    let Some(r) = &s.review else { continue };
                    self.set(r.ago, 14, 0)?;
                    let next = (self.today + Duration::days(r.next_in)).format(D).to_string();
                    self.app.sign_review(self.prescriber, id, "continue", r.reasons, &next).await?;
                }
            }
        }
        Ok(alerts)
    }
}

/// What happens after the first maintenance dose, sorted by time.
#[derive(Clone, Copy)]
enum Step {
    Dose(usize),
    Form(usize),
    Icsi(usize),
    Panel(usize),
    Event(usize),
    Diagnosis,
    Review,
    CarePlan,
}

fn status(v: &RecordVersion) -> Result<OrderStatus, AppError> {
    match &v.record {
        ClinicalRecord::DoseOrder(o) => Ok(o.status),
        _ => Err(bad("not a dose order")),
    }
}

fn tenths(v: i64) -> String {
    format!("{}.{}", v / 10, v % 10)
}

/// The first patient's care plan, written at the first maintenance dose.
fn care_plan(today: NaiveDate, maintenance_ago: i64) -> Result<CarePlan, AppError> {
    let day = |ago: i64| today - Duration::days(ago);
    let weekly: Vec<(NaiveDate, bool)> = [33, 26, 19, 12, 5].into_iter().map(|ago| (day(ago), ago != 26 && ago != 12)).collect();
    Ok(CarePlan {
        goals: vec![
            Goal {
                kind: GoalKind::Score,
                text: "HAM-A 10 or less (mild anxiety at most)".into(),
                instrument: Some("hama".into()),
                target: Some("10".parse().map_err(|_| bad("target"))?),
            },
            Goal { kind: GoalKind::Functional, text: "Go back to choir on Thursdays".into(), instrument: None, target: None },
            Goal {
                kind: GoalKind::Functional,
                text: "Take the bus to work again instead of walking an hour".into(),
                instrument: None,
                target: None,
            },
        ],
        therapies: vec![
            Therapy {
                kind: "integration".into(),
                description: "Integration sessions after ketamine".into(),
                who: "Fenella Ashdown, integration therapist".into(),
                frequency: "Weekly, two days after the session".into(),
                attendance: weekly,
            },
            Therapy {
                kind: "cbt".into(),
                description: "CBT for generalised anxiety (worry exposure, behavioural experiments)".into(),
                who: "Dr Priyanka Sood, clinical psychologist".into(),
                frequency: "Fortnightly".into(),
                attendance: [31, 17, 3].into_iter().map(|ago| (day(ago), true)).collect(),
            },
        ],
        responsible: vec![
            "Dr Tomas Lindgren, prescriber".into(),
            "Grace Oduya, RN, nurse".into(),
            "Dr Miriam Achebe, medical director".into(),
        ],
        next_review: Some(day(maintenance_ago) + Duration::days(84)),
        notes: Some("Liver panel and ICSI at least monthly on maintenance; urine dipstick if bladder symptoms rise.".into()),
    })
}

/// Adds the six maintenance patients through a second instance of the application over the same
/// store, whose clock the demo moves through their histories. Returns (patients, alerts raised).
pub(crate) async fn seed_safety(
    app: &App,
    director: &Principal,
    prescriber: &Principal,
    nurse: &Principal,
) -> Result<(usize, usize), AppError> {
    let now = app.clock().now();
    let clock = Arc::new(DemoClock(Mutex::new(now)));
    let seeder = Seeder {
        app: App::new(app.store().clone(), clock.clone(), Arc::new(app.knowledge().clone()), app.settings().clone()),
        clock,
        today: now.date_naive(),
        prescriber,
        nurse,
        director,
    };
    let mut alerts = 0;
    for s in &STORIES {
        let id = seeder.register(s).await?;
        alerts += seeder.story(s, id).await?;
    }
    Ok((STORIES.len(), alerts))
}
