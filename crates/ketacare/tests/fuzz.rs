//! Property-based fuzzing of the parsers that take outside input, bounded in time so CI runs it
//! on every change: the FHIR transaction-Bundle importer, the screening intake document and
//! questionnaire answers for every rating scale. Inputs are random but shaped like the real
//! thing (FHIR element names and resource types, the intake's field names, answers around each
//! item's range), so they reach deep into the parsers. The property: no panic, and every
//! refusal says what is wrong. (The HL7 v2 parser and the MLLP decoder have their own
//! arbitrary-bytes properties in `ketacare-hl7`.) Cases per property: `PROPTEST_CASES`,
//! default 5,000 (about 2 s; 30,000 found nothing either).

use chrono::{TimeZone, Utc};
use ketacare_fhir::import::{self, ImportContext};
use ketacare_knowledge::Knowledge;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

fn knowledge() -> &'static Knowledge {
    static K: OnceLock<Knowledge> = OnceLock::new();
    K.get_or_init(|| Knowledge::load().expect("knowledge"))
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(5000), ..ProptestConfig::default() }
}

/// A leaf value: the kinds of scalar FHIR and the intake carry, including awkward ones.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        Just(json!(1e308)),
        Just(json!(-0.0)),
        "[a-zA-Z0-9 :./-]{0,24}".prop_map(Value::String),
        prop::sample::select(vec![
            "2026-11-26",
            "2026-11-26T09:00:00Z",
            "1980-02-30",
            "9999-99-99",
            "kg",
            "[lb_av]",
            "mg",
            "mg/kg",
            "http://loinc.org",
            "29463-7",
            "8302-2",
            "F32.1",
            "F41.1",
            "male",
            "female",
            "unknown",
            "final",
            "active",
            "urn:uuid:x",
            "Patient/1",
            "",
        ])
        .prop_map(|s| json!(s)),
    ]
}

const KEYS: &[&str] = &[
    "resourceType",
    "id",
    "fullUrl",
    "resource",
    "request",
    "method",
    "url",
    "identifier",
    "system",
    "value",
    "name",
    "family",
    "given",
    "birthDate",
    "gender",
    "code",
    "coding",
    "display",
    "text",
    "subject",
    "reference",
    "status",
    "category",
    "effectiveDateTime",
    "valueQuantity",
    "unit",
    "valueInteger",
    "component",
    "clinicalStatus",
    "verificationStatus",
    "onsetDateTime",
    "medicationCodeableConcept",
    "dosage",
    "effectivePeriod",
    "start",
    "end",
    "entry",
    "type",
    "note",
];

const TYPES: &[&str] =
    &["Patient", "Condition", "Observation", "MedicationStatement", "MedicationRequest", "Encounter", "Bundle", "Nonsense"];

/// JSON shaped like FHIR: objects with FHIR element names, nested a few levels.
fn fhirish() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())),
        ]
    })
}

/// A transaction Bundle whose entries are FHIR-shaped resources of the importer's types.
fn bundle() -> impl Strategy<Value = Value> {
    let resource =
        (prop::sample::select(TYPES), prop::collection::vec((prop::sample::select(KEYS), fhirish()), 0..8)).prop_map(|(t, kv)| {
            let mut m: Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            m.insert("resourceType".into(), json!(t));
            Value::Object(m)
        });
    let entry = (resource, any::<bool>()).prop_map(|(r, with_request)| {
        if with_request {
            json!({"fullUrl": "urn:uuid:1", "resource": r, "request": {"method": "POST", "url": r["resourceType"].clone()}})
        } else {
            json!({"resource": r})
        }
    });
    (prop::collection::vec(entry, 0..6), prop::sample::select(vec!["transaction", "batch", "collection", ""]))
        .prop_map(|(entries, t)| json!({"resourceType": "Bundle", "type": t, "entry": entries}))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_fhir_importer_never_panics_and_names_every_problem(b in prop_oneof![bundle(), fhirish()]) {
        let k = knowledge();
        let ctx = ImportContext {
            catalog: ketacare_app::fhir::catalog(k),
            now: Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap(),
            chart_weights: Vec::new(),
            chart_heights: Vec::new(),
            acknowledged: &[],
        };
        if let Err(problems) = import::parse(&b, &ctx) {
            prop_assert!(!problems.is_empty());
            for p in problems {
                prop_assert!(p.message.len() >= 5, "a problem without a message: {p:?}");
            }
        }
    }

    #[test]
    fn the_intake_document_never_panics_and_names_every_field(
        fields in prop::collection::vec((prop::sample::select(vec![
            "age_years", "sex", "weight_kg", "height_cm", "diagnoses", "prior_treatments", "medications", "conditions",
            "bp_systolic", "bp_diastolic", "bp_age_days", "heart_rate", "pregnant", "breastfeeding", "baseline_ratings",
            "liver_tests", "cssrs_triage", "phq9_item9", "unknown_field",
        ]), fhirish()), 0..12),
        raw in "[ -~]{0,40}",
        use_raw in proptest::bool::weighted(0.1),
    ) {
        let text = if use_raw {
            raw
        } else {
            Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).to_string()
        };
        if let Err(e) = ketacare_web::screening_doc::parse_intake_json(&text, knowledge()) {
            prop_assert!(!e.is_empty(), "a refusal that names no field");
        }
    }

    #[test]
    fn answers_to_every_rating_scale_never_panic(
        which in any::<prop::sample::Index>(),
        answers in prop::collection::vec(prop::option::weighted(0.9, prop_oneof![0u32..8, any::<u32>()]), 0..60),
    ) {
        let k = knowledge();
        let inst = &k.instruments[which.index(k.instruments.len())];
        let valid = inst.validate(&answers);
        let scored = inst.score(&answers, None);
        prop_assert_eq!(valid.is_ok(), scored.is_ok(), "validation and scoring agree for {}", inst.key);
        if let Err(e) = valid {
            prop_assert!(!e.is_empty());
        }
    }
}
