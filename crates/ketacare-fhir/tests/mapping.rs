//! The mapping both ways, on the clinic's real knowledge files: records become resources with
//! the codes, units and profiles FHIR expects; a transaction Bundle made of those resources is
//! read back into the same records; every bad resource of a Bundle is reported.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use ketacare_domain::assessment::{Assessment, FilledBy};
use ketacare_domain::coding::{CodeSystem, Coding};
use ketacare_domain::deid::DateShift;
use ketacare_domain::dose::{Route, WeightBasis};
use ketacare_domain::ids::{PatientId, RecordId, UserId, VersionId};
use ketacare_domain::order::{DoseOrderRecord, OrderStatus};
use ketacare_domain::patient::DemographicsInput;
use ketacare_domain::record::*;
use ketacare_domain::session::{Phase, Vital};
use ketacare_fhir::import::{self, ImportContext, Outcome};
use ketacare_fhir::resources::{patient_resources, resource_type, PatientData, Reading, SessionData};
use ketacare_fhir::{json, Catalog, Value, View};
use ketacare_knowledge::Knowledge;
use rust_decimal::Decimal;
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
}

fn catalog(k: &Knowledge) -> Catalog<'_> {
    Catalog::from_knowledge(k)
}

fn provenance() -> Provenance {
    Provenance { user_id: UserId::from_uuid(Uuid::new_v4()), username: "pia.prescriber".into(), recorded_at: now() }
}

fn version(patient: PatientId, record: ClinicalRecord) -> RecordVersion {
    RecordVersion {
        record_id: RecordId::from_uuid(Uuid::new_v4()),
        version_id: VersionId::from_uuid(Uuid::new_v4()),
        version: 1,
        supersedes: None,
        patient_id: patient,
        action: VersionAction::Create,
        record,
        reason: None,
        provenance: provenance(),
    }
}

fn quantity_obs(code: &str, display: &str, value: &str, unit: &str, at: DateTime<Utc>) -> ClinicalRecord {
    ClinicalRecord::Observation(Observation {
        code: Coding::new(CodeSystem::Loinc, code, display).unwrap(),
        value: ObservationValue::Quantity { value: Decimal::from_str(value).unwrap(), unit: UcumUnit::parse(unit).unwrap() },
        effective: at,
        acknowledged_warnings: vec![],
    })
}

fn order(status: OrderStatus) -> ClinicalRecord {
    let d = |s: &str| Decimal::from_str(s).unwrap();
    ClinicalRecord::DoseOrder(Box::new(DoseOrderRecord {
        plan: None,
        step: None,
        route: Route::Sc,
        basis: WeightBasis::Actual,
        mg_per_kg: Some(d("0.25")),
        fixed_mg: None,
        concentration_mg_per_ml: Some(d("50")),
        final_volume_ml: None,
        minutes: None,
        weight_kg: d("72.4"),
        weight_measured_at: now(),
        weight_measured_by: "nina.nurse".into(),
        weight_used_kg: d("72.4"),
        dose_mg: d("18"),
        dose_requested_mg: d("18.1"),
        drug_volume_ml: Some(d("0.36")),
        rate_ml_per_h: None,
        steps: vec![],
        breaches: vec![],
        status,
        override_reason: None,
        override_approved_by: None,
        check: None,
    }))
}

/// A patient with a diagnosis, a medication, a weight and height, a blood pressure taken
/// together, a GAD-7, a checked dose order and a session with vital signs.
fn data(k: &Knowledge) -> PatientData {
    let pid = PatientId::from_uuid(Uuid::new_v4());
    let demographics = DemographicsInput {
        mrn: "KC-000123".into(),
        family_name: "Rivera".into(),
        given_name: "Ana Maria".into(),
        date_of_birth: "1984-03-27".into(),
        sex: "female".into(),
        phone: "+44 20 7946 0000".into(),
        ..Default::default()
    }
    .validate(now().date_naive(), k.age_limits)
    .unwrap();
    let patient = PatientVersion {
        patient_id: pid,
        version_id: VersionId::from_uuid(Uuid::new_v4()),
        version: 1,
        action: VersionAction::Create,
        demographics,
        reason: None,
        provenance: provenance(),
    };
    let gad = k.diagnoses.iter().find(|d| d.key == "gad").unwrap();
    let earlier = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
    let records = vec![
        version(
            pid,
            ClinicalRecord::Diagnosis(Diagnosis {
                condition: gad.snomed.clone(),
                icd10: gad.icd10.clone(),
                onset: NaiveDate::from_ymd_opt(2019, 5, 1),
                status: ClinicalStatus::Active,
                note: None,
            }),
        ),
        version(
            pid,
            ClinicalRecord::Medication(Medication {
                name: "Sertraline".into(),
                rxnorm: Some("36437".into()),
                dose: Some("50 mg once daily".into()),
                start: NaiveDate::from_ymd_opt(2026, 1, 10),
                stop: None,
            }),
        ),
        version(pid, quantity_obs("29463-7", "Body weight", "72.4", "kg", now())),
        version(pid, quantity_obs("8302-2", "Body height", "168", "cm", now())),
        version(pid, quantity_obs("8480-6", "Systolic blood pressure", "128", "mm[Hg]", earlier)),
        version(pid, quantity_obs("8462-4", "Diastolic blood pressure", "82", "mm[Hg]", earlier)),
        version(
            pid,
            ClinicalRecord::Assessment(Assessment {
                instrument: "gad7".into(),
                instrument_version: k.instrument("gad7").unwrap().version.clone(),
                answers: vec![Some(2), Some(2), Some(3), Some(2), Some(1), Some(2), Some(2)],
                taken_at: earlier,
                filled_by: FilledBy::Patient,
                session: None,
                timepoint: None,
                request: None,
                note: None,
            }),
        ),
        version(pid, order(OrderStatus::Checked)),
        version(pid, order(OrderStatus::AwaitingCheck)),
    ];
    let session = SessionData {
        id: RecordId::from_uuid(Uuid::new_v4()),
        phase: Phase::Monitoring,
        scheduled_at: now(),
        dose_started_at: None,
        dose_ended_at: None,
        signed_at: None,
        order_id: None,
        stopped_early: false,
        chair: "ROOM1^CHAIR1".into(),
        readings: [(Vital::Systolic, "131"), (Vital::Diastolic, "84"), (Vital::Spo2, "97"), (Vital::HeartRate, "72")]
            .into_iter()
            .map(|(vital, v)| Reading {
                id: Uuid::new_v4(),
                vital,
                value: Decimal::from_str(v).unwrap(),
                observed_at: now(),
                device_id: Some("00A0B1C2D3E4F501".into()),
            })
            .collect(),
        adverse_events: vec![],
    };
    PatientData { patient, records, sessions: vec![session], now: now() }
}

fn find<'a>(all: &'a [Value], t: &str, code: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|r| resource_type(r) == t && r["code"]["coding"].as_array().is_some_and(|c| c.iter().any(|x| x["code"] == code)))
        .collect()
}

#[test]
fn vital_signs_have_their_profile_codes_and_ucum_units() {
    let k = Knowledge::load().unwrap();
    let all = patient_resources(&data(&k), &catalog(&k), &View::Identified);
    let w = find(&all, "Observation", "29463-7")[0];
    assert_eq!(w["category"][0]["coding"][0]["code"], "vital-signs");
    assert_eq!(w["valueQuantity"], json!({"value": 72.4, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}));
    // The chart's systolic and diastolic taken together, and the session's, become panels.
    let panels = find(&all, "Observation", "85354-9");
    assert_eq!(panels.len(), 2);
    for p in &panels {
        let comps: Vec<(&str, &Value)> = p["component"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["code"]["coding"][0]["code"].as_str().unwrap(), &c["valueQuantity"]["code"]))
            .collect();
        assert_eq!(comps, vec![("8480-6", &json!("mm[Hg]")), ("8462-4", &json!("mm[Hg]"))]);
        assert!(p.get("valueQuantity").is_none());
    }
    assert!(find(&all, "Observation", "8480-6").is_empty(), "no loose systolic readings");
    let spo2 = find(&all, "Observation", "59408-5")[0];
    assert!(spo2["code"]["coding"].as_array().unwrap().iter().any(|c| c["code"] == "2708-6"), "the R4 oxygensat code too");
    assert_eq!(spo2["valueQuantity"]["code"], "%");
    assert_eq!(find(&all, "Observation", "8867-4")[0]["valueQuantity"]["code"], "/min");
    assert_eq!(find(&all, "Observation", "8867-4")[0]["device"]["display"], "00A0B1C2D3E4F501");
    // The score is derived from the answers.
    let total = find(&all, "Observation", "70274-6")[0];
    assert_eq!((total["valueQuantity"]["value"].as_i64(), total["valueQuantity"]["code"].as_str()), (Some(14), Some("{score}")));
    let qr = all.iter().find(|r| resource_type(r) == "QuestionnaireResponse").unwrap();
    assert_eq!(total["derivedFrom"][0]["reference"], format!("QuestionnaireResponse/{}", qr["id"].as_str().unwrap()));
    // The dose of the order awaiting its check is not shown.
    let orders: Vec<&Value> = all.iter().filter(|r| resource_type(r) == "MedicationRequest").collect();
    assert_eq!(orders.iter().filter(|o| o.get("dosageInstruction").is_some()).count(), 1);
    assert!(orders.iter().all(|o| o["medicationCodeableConcept"]["coding"][0]["code"] == k.drug_library.rxnorm.0.as_str()));
}

#[test]
fn the_research_view_has_no_identifiers_and_shifted_dates() {
    let k = Knowledge::load().unwrap();
    let d = data(&k);
    let view = View::Deidentified {
        research_id: "R-0A1B2C3D4E".into(),
        shift: DateShift { days: -40 },
        over_89: false,
        pseudonym: Arc::new(|s: &str| format!("x{}", &s.replace('-', "")[..12])),
    };
    let all = patient_resources(&d, &catalog(&k), &view);
    let text = serde_json::to_string(&all).unwrap();
    for secret in ["Rivera", "Ana Maria", "KC-000123", "7946", "1984-03-27", "pia.prescriber", "00A0B1C2D3E4F501", "ROOM1"] {
        assert!(!text.contains(secret), "{secret} in the research view");
    }
    assert!(!text.contains(&d.patient.patient_id.to_string()));
    assert!(all.iter().all(|r| resource_type(r) != "Provenance"));
    let p = &all[0];
    assert_eq!((p["id"].as_str(), p["birthDate"].as_str()), (Some("R-0A1B2C3D4E"), Some("1984")));
    let w = find(&all, "Observation", "29463-7")[0];
    assert_eq!(w["effectiveDateTime"], "2026-10-17T09:00:00Z", "40 days earlier");
    assert_eq!(w["subject"]["reference"], "Patient/R-0A1B2C3D4E");
}

/// What an export becomes as a transaction Bundle (the types the importer takes).
fn as_transaction(all: &[Value]) -> Value {
    let kinds =
        ["Patient", "Condition", "MedicationStatement", "MedicationRequest", "Observation", "QuestionnaireResponse", "AllergyIntolerance"];
    let entries: Vec<Value> = all
        .iter()
        .filter(|r| kinds.contains(&resource_type(r)))
        .map(|r| json!({"fullUrl": format!("http://example.org/fhir/{}/{}", resource_type(r), r["id"].as_str().unwrap()), "resource": r, "request": {"method": "POST", "url": resource_type(r)}}))
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn records(imported: &import::Imported) -> Vec<ClinicalRecord> {
    imported.entries.iter().flat_map(|o| if let Outcome::Records(r) = o { r.clone() } else { vec![] }).collect()
}

#[test]
fn an_exported_chart_reads_back_into_the_same_records() {
    let k = Knowledge::load().unwrap();
    let d = data(&k);
    let all = patient_resources(&d, &catalog(&k), &View::Identified);
    let ctx = ImportContext { catalog: catalog(&k), now: now(), chart_weights: vec![], chart_heights: vec![], acknowledged: &[] };
    let imported = import::parse(&as_transaction(&all), &ctx).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(imported.demographics, d.patient.demographics);
    let got = records(&imported);
    for original in d.records.iter().map(|v| &v.record).filter(|r| !matches!(r, ClinicalRecord::DoseOrder(_))) {
        assert!(got.contains(original), "{original:?} did not come back: {got:#?}");
    }
    // The checked order comes back as a medication taken (never as an order); the other is skipped.
    let ketamine: Vec<&ClinicalRecord> =
        got.iter().filter(|r| matches!(r, ClinicalRecord::Medication(m) if m.rxnorm.as_deref() == Some("6130"))).collect();
    assert_eq!(ketamine.len(), 1);
    assert!(matches!(ketamine[0], ClinicalRecord::Medication(m) if m.dose.as_deref() == Some("18 mg SC (0.25 mg/kg)")));
    let skipped: Vec<&String> = imported.entries.iter().filter_map(|o| if let Outcome::Skipped(w) = o { Some(w) } else { None }).collect();
    assert!(skipped.iter().any(|w| w.contains("draft")) && skipped.iter().any(|w| w.contains("recomputed")), "{skipped:?}");
}

fn bundle(entries: Vec<Value>) -> Value {
    let e: Vec<Value> = entries
        .into_iter()
        .enumerate()
        .map(|(i, r)| json!({"fullUrl": format!("urn:uuid:p{i}"), "resource": r, "request": {"method": "POST", "url": r["resourceType"]}}))
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": e})
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": "ext-0042"}],
        "name": [{"family": "Lind", "given": ["Eva"]}], "gender": "female", "birthDate": "1990-07-14"})
}

fn weight(kg: Value, unit: &str, at: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final", "subject": {"reference": "urn:uuid:p0"}, "effectiveDateTime": at,
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "valueQuantity": {"value": kg, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}})
}

#[test]
fn every_bad_resource_is_reported_with_entry_type_and_path() {
    let k = Knowledge::load().unwrap();
    let ctx = ImportContext { catalog: catalog(&k), now: now(), chart_weights: vec![], chart_heights: vec![], acknowledged: &[] };
    let b = bundle(vec![
        patient(),
        weight(json!(170), "[lb_av]", "2026-11-01T08:00:00Z"),
        json!({"resourceType": "Condition", "subject": {"reference": "urn:uuid:p0"}, "code": {"coding": [{"system": "urn:ketacare:comorbidity", "code": "gout"}]}}),
        json!({"resourceType": "QuestionnaireResponse", "status": "completed", "subject": {"reference": "urn:uuid:p0"}, "authored": "2026-11-01T08:00:00Z",
            "questionnaire": "urn:ketacare:questionnaire:gad7", "item": [{"linkId": "q1", "answer": [{"valueInteger": 7}]}, {"linkId": "q99"}]}),
        weight(json!(70), "kg", "2027-01-01T08:00:00Z"),
        json!({"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/other"}, "effectiveDateTime": "2026-11-01",
            "code": {"coding": [{"system": "http://loinc.org", "code": "70274-6"}]}, "valueQuantity": {"value": 30, "unit": "{score}"}}),
    ]);
    let p = import::parse(&b, &ctx).unwrap_err();
    let got: Vec<(Option<usize>, &str, &str)> = p.iter().map(|x| (x.entry, x.resource_type.as_str(), x.path.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (Some(1), "Observation", "valueQuantity.code"),
            (Some(2), "Condition", "code.coding"),
            (Some(3), "QuestionnaireResponse", "item[0].answer[0]"),
            (Some(3), "QuestionnaireResponse", "item[1].linkId"),
            (Some(4), "Observation", "effectiveDateTime"),
            (Some(5), "Observation", "subject.reference"),
            (Some(5), "Observation", "valueQuantity.value"),
        ]
    );
    assert!(p[1].message.contains("hypertension"), "the accepted keys are listed: {}", p[1].message);
    assert!(p[2].message.contains("LOINC answers LA6568-5"), "{}", p[2].message);
    assert!(p[6].message.contains("0") && p[6].message.contains("21"), "the GAD-7 range: {}", p[6].message);
    assert_eq!(p[0].expression(), "Bundle.entry[1].resource.valueQuantity.code");
}

#[test]
fn a_suspicious_weight_needs_confirmation_and_a_derived_score_must_agree() {
    let k = Knowledge::load().unwrap();
    let b = bundle(vec![patient(), weight(json!(70), "kg", "2026-10-01T08:00:00Z"), weight(json!(154.3), "kg", "2026-11-01T08:00:00Z")]);
    let ctx = ImportContext { catalog: catalog(&k), now: now(), chart_weights: vec![], chart_heights: vec![], acknowledged: &[] };
    let p = import::parse(&b, &ctx).unwrap_err();
    assert_eq!(p.len(), 1);
    assert!(p[0].message.contains("possible_pounds") && p[0].message.contains("?acknowledge=possible_pounds"), "{}", p[0].message);
    let ack = vec!["possible_pounds".to_owned()];
    let ctx = ImportContext { acknowledged: &ack, ..ctx };
    let ok = import::parse(&b, &ctx).unwrap();
    assert!(records(&ok).iter().any(|r| matches!(r, ClinicalRecord::Observation(o) if o.acknowledged_warnings == ack)));

    let qr = json!({"resourceType": "QuestionnaireResponse", "id": "qr1", "status": "completed", "subject": {"reference": "urn:uuid:p0"},
        "authored": "2026-11-01T08:00:00Z", "questionnaire": "http://loinc.org/q/69737-5",
        "item": (1..=7).map(|i| json!({"linkId": format!("q{i}"), "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6570-1"}}]})).collect::<Vec<_>>()});
    let score = |v: i64| {
        json!({"resourceType": "Observation", "status": "final", "subject": {"reference": "urn:uuid:p0"}, "effectiveDateTime": "2026-11-01T08:00:00Z",
        "code": {"coding": [{"system": "http://loinc.org", "code": "70274-6"}]}, "valueQuantity": {"value": v, "unit": "{score}"},
        "derivedFrom": [{"reference": "QuestionnaireResponse/qr1"}]})
    };
    let p = import::parse(&bundle(vec![patient(), qr.clone(), score(13)]), &ctx).unwrap_err();
    assert!(p[0].message.contains("give 14"), "seven answers of 2: {}", p[0].message);
    let ok = import::parse(&bundle(vec![patient(), qr, score(14)]), &ctx).unwrap();
    assert!(matches!(&ok.entries[2], Outcome::Skipped(w) if w.contains("recomputed")));
    assert!(
        matches!(&records(&ok)[0], ClinicalRecord::Assessment(a) if a.answers == vec![Some(2); 7] && a.filled_by == FilledBy::Clinician)
    );
}
