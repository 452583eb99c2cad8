//! Conversions between flat form fields (HTML forms and JSON objects of strings) and the
//! domain's raw input types, in both directions (for re-display and for amendment forms).

use ketacare_app::RecordInput;
use ketacare_domain::patient::DemographicsInput;
use ketacare_domain::record::*;
use std::collections::HashMap;

/// Form fields by name.
pub type Fields = HashMap<String, String>;

/// A field's value, or empty.
pub fn f(map: &Fields, k: &str) -> String {
    map.get(k).cloned().unwrap_or_default()
}

/// Builds demographics input from fields.
pub fn demographics(m: &Fields) -> DemographicsInput {
    DemographicsInput {
        mrn: f(m, "mrn"),
        family_name: f(m, "family_name"),
        given_name: f(m, "given_name"),
        date_of_birth: f(m, "date_of_birth"),
        sex: f(m, "sex"),
        phone: f(m, "phone"),
        email: f(m, "email"),
        address: f(m, "address"),
        emergency_name: f(m, "emergency_name"),
        emergency_relationship: f(m, "emergency_relationship"),
        emergency_phone: f(m, "emergency_phone"),
    }
}

/// Fields from demographics input.
pub fn demographics_fields(d: &DemographicsInput) -> Fields {
    [
        ("mrn", &d.mrn),
        ("family_name", &d.family_name),
        ("given_name", &d.given_name),
        ("date_of_birth", &d.date_of_birth),
        ("sex", &d.sex),
        ("phone", &d.phone),
        ("email", &d.email),
        ("address", &d.address),
        ("emergency_name", &d.emergency_name),
        ("emergency_relationship", &d.emergency_relationship),
        ("emergency_phone", &d.emergency_phone),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .collect()
}

/// Builds a record input of `kind` from fields.
pub fn record_input(kind: RecordKind, m: &Fields) -> RecordInput {
    match kind {
        RecordKind::Diagnosis => RecordInput::Diagnosis(DiagnosisInput {
            choice: f(m, "choice"),
            system: f(m, "system"),
            code: f(m, "code"),
            display: f(m, "display"),
            icd10: f(m, "icd10"),
            onset: f(m, "onset"),
            status: f(m, "status"),
            note: f(m, "note"),
        }),
        RecordKind::Medication => RecordInput::Medication(MedicationInput {
            name: f(m, "name"),
            rxnorm: f(m, "rxnorm"),
            dose: f(m, "dose"),
            start: f(m, "start"),
            stop: f(m, "stop"),
        }),
        RecordKind::Allergy => {
            RecordInput::Allergy(AllergyInput { substance: f(m, "substance"), reaction: f(m, "reaction"), severity: f(m, "severity") })
        }
        RecordKind::Encounter => RecordInput::Encounter(EncounterInput {
            kind: f(m, "encounter_kind"),
            start: f(m, "start"),
            end: f(m, "end"),
            reason: f(m, "reason_for_visit"),
            note: f(m, "note"),
        }),
        RecordKind::Assessment => RecordInput::Assessment(ketacare_domain::assessment::AssessmentInput {
            instrument: f(m, "instrument"),
            answers: ketacare_domain::assessment::AssessmentInput::answers_from_fields(m.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            taken_at: f(m, "taken_at"),
            session: f(m, "session"),
            timepoint: f(m, "timepoint"),
            note: f(m, "note"),
        }),
        RecordKind::PriorTreatment => RecordInput::PriorTreatment(ketacare_domain::screening::PriorTreatmentInput {
            kind: f(m, "treatment_kind"),
            name: f(m, "name"),
            dose: f(m, "dose"),
            weeks: f(m, "weeks"),
            adequate: f(m, "adequate"),
            instrument: f(m, "instrument"),
            baseline: f(m, "baseline"),
            final_score: f(m, "final"),
            stop_reason: f(m, "stop_reason"),
        }),
        RecordKind::Condition => RecordInput::Condition(ketacare_domain::screening::ConditionInput {
            condition: f(m, "condition"),
            other: f(m, "other"),
            status: f(m, "status"),
            controlled: f(m, "controlled"),
            note: f(m, "note"),
        }),
        RecordKind::Screening => RecordInput::Screening,
        RecordKind::TreatmentPlan => RecordInput::TreatmentPlan,
        RecordKind::DoseOrder => RecordInput::DoseOrder,
        RecordKind::LabResult | RecordKind::SafetyEvent | RecordKind::SafetyReview | RecordKind::CarePlan => {
            RecordInput::SafetyRecord(kind)
        }
        RecordKind::Observation => RecordInput::Observation(ObservationInput {
            code: f(m, "code"),
            system: f(m, "system"),
            display: f(m, "display"),
            value_type: f(m, "value_type"),
            value: f(m, "value"),
            unit: f(m, "unit"),
            effective: f(m, "effective"),
        }),
    }
}

fn yes_no(b: Option<bool>) -> String {
    match b {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => String::new(),
    }
}

fn date(d: Option<chrono::NaiveDate>) -> String {
    d.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

fn dt(d: chrono::DateTime<chrono::Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M").to_string()
}

/// Fields that reproduce a stored record (to pre-fill an amendment).
pub fn record_fields(r: &ClinicalRecord, catalogue: &[DiagnosisChoice]) -> Fields {
    let mut m = Fields::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_owned(), v);
    };
    match r {
        ClinicalRecord::Diagnosis(d) => {
            match catalogue.iter().find(|c| c.snomed == d.condition) {
                Some(c) => put("choice", c.key.clone()),
                None => {
                    put("choice", "other".into());
                    put("system", d.condition.system().uri().to_owned());
                    put("code", d.condition.code().to_owned());
                    put("display", d.condition.display().to_owned());
                    put("icd10", d.icd10.as_ref().map(|c| c.code().to_owned()).unwrap_or_default());
                }
            }
            put("onset", date(d.onset));
            put("status", d.status.code().into());
            put("note", d.note.clone().unwrap_or_default());
        }
        ClinicalRecord::Medication(x) => {
            put("name", x.name.clone());
            put("rxnorm", x.rxnorm.clone().unwrap_or_default());
            put("dose", x.dose.clone().unwrap_or_default());
            put("start", date(x.start));
            put("stop", date(x.stop));
        }
        ClinicalRecord::Allergy(a) => {
            put("substance", a.substance.clone());
            put("reaction", a.reaction.clone().unwrap_or_default());
            put("severity", a.severity.code().into());
        }
        ClinicalRecord::Encounter(e) => {
            put("encounter_kind", e.kind.code().into());
            put("start", dt(e.start));
            put("end", e.end.map(dt).unwrap_or_default());
            put("reason_for_visit", e.reason.clone().unwrap_or_default());
            put("note", e.note.clone().unwrap_or_default());
        }
        ClinicalRecord::Assessment(a) => {
            put("instrument", a.instrument.clone());
            put("taken_at", dt(a.taken_at));
            put("session", a.session.map(|s| s.to_string()).unwrap_or_default());
            put("timepoint", a.timepoint.clone().unwrap_or_default());
            put("note", a.note.clone().unwrap_or_default());
            for (n, v) in a.answers.iter().enumerate() {
                put(&format!("item_{}", n + 1), v.map(|v| v.to_string()).unwrap_or_default());
            }
        }
        ClinicalRecord::PriorTreatment(p) => {
            let t = &p.treatment;
            put("treatment_kind", t.kind.map(|k| k.code()).unwrap_or("").into());
            put("name", t.name.clone());
            put("dose", t.dose.clone().unwrap_or_default());
            put("weeks", t.weeks.map(|w| w.normalize().to_string()).unwrap_or_default());
            put("adequate", yes_no(t.adequate));
            put("instrument", t.instrument.clone().unwrap_or_default());
            put("baseline", t.baseline.map(|w| w.normalize().to_string()).unwrap_or_default());
            put("final", t.final_score.map(|w| w.normalize().to_string()).unwrap_or_default());
            put("stop_reason", t.stop_reason.clone().unwrap_or_default());
        }
        ClinicalRecord::Condition(c) => {
            put("condition", c.condition.clone());
            put("status", if c.present { "present" } else { "absent" }.into());
            put("controlled", yes_no(c.controlled));
            put("note", c.note.clone().unwrap_or_default());
        }
        ClinicalRecord::TreatmentPlan(x) => {
            put("protocol", x.protocol.clone());
            put("start", x.start.to_string());
            put("note", x.note.clone().unwrap_or_default());
        }
        ClinicalRecord::DoseOrder(x) => {
            // The dose itself only through the dosing views, which hide it from the checker.
            put("route", x.route.code().into());
            put("status", x.status.code().into());
        }
        ClinicalRecord::LabResult(_) | ClinicalRecord::SafetyEvent(_) | ClinicalRecord::SafetyReview(_) | ClinicalRecord::CarePlan(_) => {}
        ClinicalRecord::Screening(x) => {
            put("verdict", x.verdict.code().into());
            put("note", x.note.clone().unwrap_or_default());
        }
        ClinicalRecord::Observation(o) => {
            put("system", o.code.system().uri().to_owned());
            put("code", o.code.code().to_owned());
            put("display", o.code.display().to_owned());
            put("effective", dt(o.effective));
            match &o.value {
                ObservationValue::Quantity { value, unit } => {
                    put("value_type", "quantity".into());
                    put("value", value.normalize().to_string());
                    put("unit", unit.as_str().to_owned());
                }
                ObservationValue::Text(t) => {
                    put("value_type", "text".into());
                    put("value", t.clone());
                }
                ObservationValue::Boolean(b) => {
                    put("value_type", "boolean".into());
                    put("value", if *b { "yes" } else { "no" }.into());
                }
                ObservationValue::Coded(c) => {
                    put("value_type", "text".into());
                    put("value", c.display().to_owned());
                }
            }
        }
    }
    m
}
