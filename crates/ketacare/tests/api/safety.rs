//! Long-term safety over the JSON API: liver tests typed and as FHIR Observations with the
//! laboratory's ULN, bladder questionnaires, safety observations, the signals they raise, signed
//! benefit-risk reviews, the care plan and its versions, and the clinic safety board.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::{json, Value};

http_tests!(
    rising_alt_and_new_urinary_symptoms_raise_review_signals_with_their_evidence,
    lab_results_come_typed_or_as_fhir_observations_and_bad_ones_name_the_field,
    craving_and_toxicology_are_safety_observations,
    a_signed_review_freezes_its_evidence_and_appears_beside_the_care_plan,
    the_care_plan_is_versioned_and_never_overwritten,
    the_safety_board_lists_patients_with_open_signals,
);

fn signal<'a>(v: &'a Value, code: &str) -> Option<&'a Value> {
    v["signals"].as_array().unwrap().iter().find(|s| s["code"] == code)
}

async fn patient_with_alt_and_icsi(app: &TestApp, mrn: &str) -> String {
    let s = app.login(Role::Nurse).await;
    let pid = register(&s, mrn, "Harrow", "Lena", "1979-03-02", "female").await;
    for (alt, at) in [(32, "2026-08-20T08:00"), (78, "2026-10-20T08:00"), (135, "2026-11-24T08:00")] {
        s.post_json(
            &format!("/api/patients/{pid}/labs"),
            &json!({"test": "alt", "value": alt, "unit": "U/L", "uln": 40, "sampled_at": at, "lab": "City lab"}),
        )
        .await
        .assert_status(201, "ALT");
    }
    let url = format!("/api/patients/{pid}/assessments");
    s.post_json(&url, &json!({"instrument": "icsi", "items": "0,1,1,0", "taken_at": "2026-08-20T09:00"}))
        .await
        .assert_status(201, "ICSI baseline");
    s.post_json(&url, &json!({"instrument": "icsi", "items": "3,2,2,2", "taken_at": "2026-11-24T09:00"}))
        .await
        .assert_status(201, "ICSI now");
    pid
}

async fn rising_alt_and_new_urinary_symptoms_raise_review_signals_with_their_evidence(app: &TestApp) {
    let pid = patient_with_alt_and_icsi(app, "SAF-1").await;
    let v = app.login(Role::Prescriber).await.get(&format!("/api/patients/{pid}/safety")).await.json();
    let liver = signal(&v, "liver_tests").unwrap_or_else(|| panic!("{v}"));
    assert_eq!(liver["level"], "review");
    let data = liver["data"].to_string();
    assert!(data.contains("3.38 x ULN") && data.contains("ALT rising"), "{data}");
    assert!(liver["source"].as_str().unwrap().contains("UNVERIFIED"), "the local-policy threshold says so");
    let bladder = signal(&v, "urinary_symptoms").unwrap();
    assert!(
        bladder["data"][0].as_str().unwrap().contains("ICSI 9") && bladder["action"].as_str().unwrap().contains("refer to urology"),
        "{bladder}"
    );
    // The abnormal panel brings the repeat forward (14 days after 24 November).
    assert_eq!(v["labs_due"], "2026-12-08");
    assert_eq!(v["labs"].as_array().unwrap().len(), 3);
    assert_eq!(v["labs"][2]["multiple_of_uln"], "3.38");
}

async fn lab_results_come_typed_or_as_fhir_observations_and_bad_ones_name_the_field(app: &TestApp) {
    let s = app.login(Role::Nurse).await;
    let pid = register(&s, "SAF-2", "Okafor", "Ben", "1988-07-14", "male").await;
    let url = format!("/api/patients/{pid}/labs");
    for (body, field, hint) in [
        (json!({"test": "alt", "value": 50, "unit": "U/L", "uln": 0}), "uln", "upper limit of normal"),
        (json!({"test": "alt", "value": "fifty", "unit": "U/L", "uln": 40}), "value", "not a number"),
        (json!({"test": "alt", "value": 50, "unit": "mg/dL", "uln": 40}), "unit", "U/L"),
        (json!({"test": "ldh", "value": 50, "unit": "U/L", "uln": 40}), "test", "alt, ast, alp, ggt, bilirubin"),
        (json!({"test": "alt", "value": 50, "unit": "U/L", "uln": 40, "sampled_at": "2027-01-01T00:00"}), "sampled_at", "future"),
    ] {
        let r = s.post_json(&url, &body).await;
        r.assert_status(422, field);
        assert!(r.field_message(field).contains(hint), "{field}: {}", r.text);
    }
    let obs = json!({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "6768-6", "display": "Alkaline phosphatase"}]},
        "effectiveDateTime": "2026-11-25T07:45:00Z",
        "valueQuantity": {"value": 290, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"},
        "referenceRange": [{"high": {"value": 130, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}}],
        "performer": [{"display": "Northside laboratory"}]
    });
    let r = s.post_json(&format!("{url}/fhir"), &obs).await;
    r.assert_status(201, "FHIR Observation");
    assert!(r.json()["summary"].as_str().unwrap().contains("ALP 290 U/L (2.23 x ULN)"), "{}", r.text);
    let mut bad = obs.clone();
    bad["code"]["coding"][0]["code"] = json!("2345-7");
    bad["referenceRange"][0]["high"]["code"] = json!("mmol/L");
    let r = s.post_json(&format!("{url}/fhir"), &bad).await;
    r.assert_status(422, "bad FHIR Observation");
    assert!(r.field_message("code.coding").contains("1742-6"));
    assert!(r.field_message("referenceRange[0].high").contains("same unit"));
    let v = s.get(&format!("/api/patients/{pid}/safety")).await.json();
    assert_eq!(signal(&v, "liver_tests").unwrap()["level"], "review", "ALP above 2 x ULN: {v}");
}

async fn craving_and_toxicology_are_safety_observations(app: &TestApp) {
    let s = app.login(Role::Nurse).await;
    let pid = register(&s, "SAF-3", "Lind", "Maja", "1990-01-09", "female").await;
    let url = format!("/api/patients/{pid}/safety-events");
    let r = s.post_json(&url, &json!({"kind": "urine_toxicology", "result": "positive"})).await;
    r.assert_status(422, "positive without substances");
    assert!(r.field_message("substances").contains("name what was found"));
    s.post_json(&url, &json!({"kind": "craving", "score": 11})).await.assert_status(422, "craving out of range");
    s.post_json(&url, &json!({"kind": "craving", "score": 6, "at": "2026-11-20T10:00"})).await.assert_status(201, "craving");
    s.post_json(&url, &json!({"kind": "urine_toxicology", "result": "positive", "substances": "cocaine"})).await.assert_status(201, "tox");
    let v = s.get(&format!("/api/patients/{pid}/safety")).await.json();
    assert!(signal(&v, "craving_or_substance_use").unwrap()["data"][0].as_str().unwrap().contains("craving 6/10"));
    assert!(signal(&v, "positive_urine_toxicology").unwrap()["data"][0].as_str().unwrap().contains("cocaine"));
}

async fn a_signed_review_freezes_its_evidence_and_appears_beside_the_care_plan(app: &TestApp) {
    let pid = patient_with_alt_and_icsi(app, "SAF-4").await;
    let url = format!("/api/patients/{pid}/safety-reviews");
    let body = json!({"decision": "change", "reasons": "ALT above 3 x ULN and new urinary symptoms: hold ketamine, repeat LFTs in a week, urology referral", "next_review": "2026-12-10"});
    app.login(Role::Nurse).await.post_json(&url, &body).await.assert_status(403, "nurses do not sign reviews");
    let s = app.login(Role::Prescriber).await;
    let r = s.post_json(&url, &json!({"decision": "pause", "reasons": ""})).await;
    r.assert_status(422, "bad review");
    assert!(r.field_message("decision").contains("continue, change, taper or stop"));
    assert!(!r.field_message("reasons").is_empty());
    s.post_json(&url, &json!({"decision": "stop", "reasons": "x", "next_review": "2020-01-01"}))
        .await
        .assert_status(422, "past next review");
    s.post_json(&url, &body).await.assert_status(201, "signed");
    let v = s.get(&format!("/api/patients/{pid}/safety")).await.json();
    let review = &v["last_review"];
    assert_eq!((review["decision"].as_str(), review["next_review"].as_str()), (Some("change"), Some("2026-12-10")));
    assert!(review["signals"].as_array().unwrap().iter().any(|s| s == "liver_tests"));
    assert!(review["evidence"].to_string().contains("ALT 135 U/L (3.38 x ULN)"), "{review}");
    let plan = s.get(&format!("/api/patients/{pid}/care-plan")).await.json();
    assert_eq!(plan["latest_review"]["decision"], "change", "{plan}");
    assert!(plan["latest_review"]["reasons"].as_str().unwrap().contains("urology referral"));
}

fn plan_body() -> Value {
    json!({
        "goals": [
            {"kind": "score", "text": "HAM-A 10 or below", "instrument": "hama", "target": "10"},
            {"kind": "functional", "text": "Go back to choir on Thursdays"}
        ],
        "therapies": [{"kind": "integration", "description": "Integration session after each dose", "who": "R. Imani, psychotherapist", "frequency": "weekly",
                       "attendance": [{"date": "2026-11-03", "attended": true}, {"date": "2026-11-10", "attended": false}]}],
        "responsible": ["Dr P. Prescriber (prescriber)", "N. Nurse (key nurse)"],
        "next_review": "2027-02-26"
    })
}

async fn the_care_plan_is_versioned_and_never_overwritten(app: &TestApp) {
    let s = app.login(Role::Prescriber).await;
    let pid = register(&s, "SAF-5", "Moss", "Ada", "1985-05-05", "female").await;
    let url = format!("/api/patients/{pid}/care-plan");
    let r = s
        .post_json(
            &url,
            &json!({"goals": [], "therapies": [{"kind": "yoga", "description": "", "who": "", "frequency": ""}], "responsible": []}),
        )
        .await;
    r.assert_status(422, "empty plan");
    for f in ["goals", "therapies[0].kind", "therapies[0].who", "responsible"] {
        assert!(!r.field_message(f).is_empty(), "{f}");
    }
    let r = s.post_json(&url, &plan_body()).await;
    r.assert_status(201, "created");
    let record_id = r.json()["record_id"].as_str().unwrap().to_owned();
    s.post_json(&url, &plan_body()).await.assert_status(409, "a second plan is refused");
    let mut change = plan_body();
    change["goals"][1]["text"] = json!("Sing at the Christmas concert");
    change["record_id"] = json!(record_id);
    change["base_version"] = json!(1);
    let r = s.post_json(&url, &change).await;
    r.assert_status(422, "a change needs a reason");
    change["reason"] = json!("new goal agreed with the patient");
    s.post_json(&url, &change).await.assert_status(201, "version 2");
    s.post_json(&url, &change).await.assert_status(409, "stale version");
    let v = s.get(&url).await.json();
    assert_eq!(v["care_plan"]["base_version"], 2);
    assert_eq!(v["care_plan"]["goals"][1]["text"], "Sing at the Christmas concert");
    assert_eq!(v["care_plan"]["therapies"][0]["attendance"][1]["attended"], false);
    let h = s.get(&format!("/api/records/{record_id}/history")).await.json();
    assert_eq!(h.as_array().unwrap().len(), 2, "both versions are kept: {h}");
}

async fn the_safety_board_lists_patients_with_open_signals(app: &TestApp) {
    let pid = patient_with_alt_and_icsi(app, "SAF-6").await;
    let quiet = register(&app.login(Role::Nurse).await, "SAF-7", "Quiet", "Sam", "1970-02-02", "male").await;
    let v = app.login(Role::Prescriber).await.get("/api/safety/board").await;
    v.assert_status(200, "board");
    let rows = v.json();
    let row = rows.as_array().unwrap().iter().find(|r| r["patient_id"] == pid.as_str()).unwrap_or_else(|| panic!("{rows}"));
    let codes: Vec<&str> = row["signals"].as_array().unwrap().iter().map(|s| s["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"liver_tests") && codes.contains(&"urinary_symptoms"), "{codes:?}");
    assert!(!rows.to_string().contains(&quiet), "a patient without signals is not listed");
    app.login(Role::Researcher).await.get("/api/safety/board").await.assert_status(403, "researchers see no patients");
}
