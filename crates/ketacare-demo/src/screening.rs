//! Five new referrals awaiting or just through screening, each telling one story of the
//! screening rules, with everything entered through the application's own use cases and dated
//! when the clinic is seeded (so the findings do not age with the demo):
//!
//! - `KC-000065` eligible: two failed adequate SSRI/SNRI trials, HAM-A 24, normal blood pressure
//!   and liver tests, no suicide-risk flags; signed by the prescriber;
//! - `KC-000066` eligible with cautions, not yet signed: lamotrigine and clonazepam, controlled
//!   hypertension (BP 136/86), generalised and social anxiety;
//! - `KC-000067` needs review, not yet signed: bipolar disorder (a relative contraindication);
//! - `KC-000068` not eligible: schizophrenia (psychosis, absolute); signed by the medical director;
//! - `KC-000069` eligible with cautions after review: bladder symptoms accepted by the medical
//!   director with a reason (urology review normal), signed.
//!
//! `KC-000065` and `KC-000069` then start the SC ascending protocol on the day the clinic is
//! seeded: the first dose of `KC-000065` is ordered and double-checked, `KC-000069`'s waits for
//! the double check.

use ketacare_app::{App, AppError, CheckInput, LiverInput, MeasurementInput, OrderInput, Principal, RecordInput, SignInput, VitalsInput};
use ketacare_domain::assessment::AssessmentInput;
use ketacare_domain::dose::DoseInput;
use ketacare_domain::patient::DemographicsInput;
use ketacare_domain::record::{DiagnosisInput, MedicationInput};
use ketacare_domain::screening::{ConditionInput, PriorTreatmentInput};

/// Number of screening referrals added after the main clinic.
pub const REFERRALS: usize = 5;

/// Who signs and what they accept.
struct Signature {
    /// The medical director signs (else the prescriber).
    by_director: bool,
    /// Accepted findings: (code, reason).
    accept: &'static [(&'static str, &'static str)],
    /// Note.
    note: &'static str,
}

/// A prior trial: (kind, name, dose, weeks, baseline HAM-A, final HAM-A).
type Trial = (&'static str, &'static str, &'static str, &'static str, &'static str, &'static str);

struct Referral {
    mrn: &'static str,
    family: &'static str,
    given: &'static str,
    dob: &'static str,
    sex: &'static str,
    diagnoses: &'static [&'static str],
    /// (name, rxnorm, dose)
    medications: &'static [(&'static str, &'static str, &'static str)],
    /// (key, controlled)
    conditions: &'static [(&'static str, &'static str)],
    trials: &'static [Trial],
    bp: (&'static str, &'static str, &'static str),
    height_cm: &'static str,
    weight_kg: &'static str,
    /// HAM-A items (14) and, for social anxiety, LSAS (48 values).
    hama: [u32; 14],
    lsas: Option<u32>,
    sign: Option<Signature>,
}

const SSRI_SNRI: &[Trial] = &[
    ("pharmacological", "Sertraline", "150 mg daily", "12", "27", "22"),
    ("pharmacological", "Venlafaxine", "150 mg daily (modified release)", "10", "26", "21"),
];

const REFERRAL_LIST: [Referral; REFERRALS] = [
    Referral {
        mrn: "KC-000065",
        family: "Okonkwo",
        given: "Imogen",
        dob: "1984-04-12",
        sex: "female",
        diagnoses: &["gad"],
        medications: &[("Escitalopram", "321988", "20 mg once daily")],
        conditions: &[("pregnancy", "absent"), ("breastfeeding", "absent")],
        trials: SSRI_SNRI,
        bp: ("124", "78", "70"),
        height_cm: "167",
        weight_kg: "63.5",
        hama: [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1],
        lsas: None,
        sign: Some(Signature { by_director: false, accept: &[], note: "Two failed adequate trials; baseline HAM-A 24." }),
    },
    Referral {
        mrn: "KC-000066",
        family: "Varga",
        given: "Matthias",
        dob: "1979-09-30",
        sex: "male",
        diagnoses: &["gad", "sad"],
        medications: &[("Lamotrigine", "28439", "100 mg twice daily"), ("Clonazepam", "2598", "0.5 mg at night")],
        conditions: &[("hypertension", "yes")],
        trials: &[
            ("pharmacological", "Sertraline", "200 mg daily", "14", "28", "24"),
            ("pharmacological", "Duloxetine", "90 mg daily", "12", "27", "23"),
            ("psychotherapy", "CBT (16 sessions)", "weekly", "16", "26", "23"),
        ],
        bp: ("136", "86", "74"),
        height_cm: "181",
        weight_kg: "88.2",
        hama: [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1],
        lsas: Some(82),
        sign: None,
    },
    Referral {
        mrn: "KC-000067",
        family: "Lindqvist",
        given: "Noor",
        dob: "1991-02-17",
        sex: "male",
        diagnoses: &["gad"],
        medications: &[("Sertraline", "36437", "100 mg once daily")],
        conditions: &[("bipolar_disorder", "")],
        trials: SSRI_SNRI,
        bp: ("118", "76", "66"),
        height_cm: "176",
        weight_kg: "71",
        hama: [2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1],
        lsas: None,
        sign: None,
    },
    Referral {
        mrn: "KC-000068",
        family: "Abernethy",
        given: "Rowan",
        dob: "1988-11-05",
        sex: "male",
        diagnoses: &["sad"],
        medications: &[("Escitalopram", "321988", "10 mg once daily")],
        conditions: &[("psychosis", "")],
        trials: SSRI_SNRI,
        bp: ("122", "80", "72"),
        height_cm: "179",
        weight_kg: "80.4",
        hama: [2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1],
        lsas: Some(78),
        sign: Some(Signature {
            by_director: true,
            accept: &[],
            note: "Schizophrenia on record: referred back to the community mental health team.",
        }),
    },
    Referral {
        mrn: "KC-000069",
        family: "Delacroix",
        given: "Esme",
        dob: "1975-06-21",
        sex: "female",
        diagnoses: &["gad"],
        medications: &[("Fluoxetine", "4493", "40 mg once daily")],
        conditions: &[("bladder_symptoms", ""), ("pregnancy", "absent"), ("breastfeeding", "absent")],
        trials: SSRI_SNRI,
        bp: ("128", "82", "68"),
        height_cm: "163",
        weight_kg: "66.8",
        hama: [3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1],
        lsas: None,
        sign: Some(Signature {
            by_director: true,
            accept: &[(
                "condition:bladder_symptoms",
                "Mild frequency only (ICSI 3); urology review in October normal; ICSI at every maintenance review.",
            )],
            note: "Accepted bladder symptoms after urology review.",
        }),
    },
];

fn csv(xs: impl IntoIterator<Item = u32>) -> Vec<String> {
    xs.into_iter().map(|x| x.to_string()).collect()
}

/// Adds the referrals; returns how many patients were registered.
pub(crate) async fn seed_referrals(app: &App, director: &Principal, prescriber: &Principal, nurse: &Principal) -> Result<usize, AppError> {
    for r in &REFERRAL_LIST {
        let demographics = DemographicsInput {
            mrn: r.mrn.into(),
            family_name: r.family.into(),
            given_name: r.given.into(),
            date_of_birth: r.dob.into(),
            sex: r.sex.into(),
            phone: "+44 20 7946 0999".into(),
            ..Default::default()
        };
        let id = app.register_patient(nurse, &demographics).await?.patient_id;
        for d in r.diagnoses {
            let input = DiagnosisInput { choice: (*d).into(), status: "active".into(), ..Default::default() };
            app.add_record(prescriber, id, &RecordInput::Diagnosis(input)).await?;
        }
        for (name, rxnorm, dose) in r.medications {
            let input = MedicationInput { name: (*name).into(), rxnorm: (*rxnorm).into(), dose: (*dose).into(), ..Default::default() };
            app.add_record(prescriber, id, &RecordInput::Medication(input)).await?;
        }
        for (kind, name, dose, weeks, baseline, last) in r.trials {
            let input = PriorTreatmentInput {
                kind: (*kind).into(),
                name: (*name).into(),
                dose: (*dose).into(),
                weeks: (*weeks).into(),
                adequate: "yes".into(),
                instrument: "hama".into(),
                baseline: (*baseline).into(),
                final_score: (*last).into(),
                stop_reason: "Inadequate response".into(),
            };
            app.add_record(prescriber, id, &RecordInput::PriorTreatment(input)).await?;
        }
        for (key, state) in r.conditions {
            let (status, controlled) = match *state {
                "absent" => ("absent", ""),
                other => ("present", other),
            };
            let input =
                ConditionInput { condition: (*key).into(), status: status.into(), controlled: controlled.into(), ..Default::default() };
            app.add_record(nurse, id, &RecordInput::Condition(input)).await?;
        }
        app.record_height(nurse, id, &MeasurementInput { value: r.height_cm.into(), ..Default::default() }).await?;
        app.record_weight(nurse, id, &MeasurementInput { value: r.weight_kg.into(), ..Default::default() }).await?;
        let (s, d, hr) = r.bp;
        app.record_vitals(
            nurse,
            id,
            &VitalsInput { systolic: s.into(), diastolic: d.into(), heart_rate: hr.into(), measured_at: String::new() },
        )
        .await?;
        app.record_liver_tests(
            nurse,
            id,
            &LiverInput { alt: "24".into(), ast: "21".into(), alp: "78".into(), bilirubin: "9".into(), sampled_at: String::new() },
        )
        .await?;
        let scale =
            |instrument: &str, answers: Vec<String>| AssessmentInput { instrument: instrument.into(), answers, ..Default::default() };
        app.record_assessment(prescriber, id, &scale("hama", csv(r.hama))).await?;
        if let Some(total) = r.lsas {
            // Fear then avoidance, 48 values of 1 or 2 adding up to `total` (48 to 96).
            let twos = total.clamp(48, 96) - 48;
            let answers = (0..48u32).map(|i| if i < twos { 2 } else { 1 });
            app.record_assessment(prescriber, id, &scale("lsas", csv(answers))).await?;
        }
        let cssrs: Vec<String> = ["n", "n", "-", "-", "-", "n", "-"].iter().map(|s| (*s).to_owned()).collect();
        app.record_assessment(nurse, id, &scale("cssrs_screener", cssrs)).await?;
        app.record_assessment(nurse, id, &scale("phq9", csv([1, 1, 1, 0, 1, 0, 1, 0, 0]))).await?;
        if let Some(Signature { by_director, accept, note }) = &r.sign {
            let signer = if *by_director { director } else { prescriber };
            let input = SignInput {
                acceptances: accept.iter().map(|(c, why)| ((*c).to_owned(), (*why).to_owned())).collect(),
                note: (*note).into(),
                base_version: None,
            };
            app.sign_screening(signer, id, &input).await?;
        }
        // The two eligible referrals start the SC ascending protocol today: the first dose of
        // KC-000065 is ordered and double-checked; KC-000069's waits for the double check.
        if matches!(r.mrn, "KC-000065" | "KC-000069") {
            let today = app.clock().now().date_naive().to_string();
            let plan = app.plan_protocol(prescriber, id, "sc_ascending", &today, "", "Started after the screening was signed.").await?;
            let dose =
                DoseInput { route: "sc".into(), mg_per_kg: "0.25".into(), concentration_mg_per_ml: "50".into(), ..Default::default() };
            let order = OrderInput { dose, plan: plan.record_id.to_string(), step: "dose1".into(), override_reason: String::new() };
            let v = app.order_dose(prescriber, id, &order).await?;
            if r.mrn == "KC-000065" {
                if let ketacare_domain::record::ClinicalRecord::DoseOrder(o) = &v.record {
                    let check = CheckInput {
                        weight_kg: o.weight_kg.normalize().to_string(),
                        concentration_mg_per_ml: "50".into(),
                        dose_mg: o.dose_mg.normalize().to_string(),
                    };
                    app.double_check(nurse, v.record_id, v.version, &check).await?;
                }
            }
        }
    }
    Ok(REFERRALS)
}
