//! Screening over the JSON API: the intake from the chart, the verdict with findings and
//! sources, signing with the medical director's acceptances, the re-check before a treatment
//! session, vital signs and liver tests, and the intake calculator.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::{json, Value};

http_tests!(
    a_complete_intake_gives_cautions_with_sources_and_a_signed_versioned_verdict,
    acceptance_is_for_the_medical_director_with_a_reason_and_never_for_an_absolute_contraindication,
    a_treatment_session_cannot_start_while_an_absolute_contraindication_stands,
    vital_signs_liver_tests_and_the_calculator_name_bad_fields,
    screening_routes_are_documented_and_guarded,
);

async fn add(s: &Session, pid: &str, kind: &str, fields: Value) -> Value {
    let r = s.post_json(&format!("/api/patients/{pid}/records"), &json!({"kind": kind, "fields": fields})).await;
    r.assert_status(201, &format!("add {kind}"));
    r.json()
}

/// A patient with a complete intake: GAD, two failed adequate trials, lamotrigine and
/// clonazepam, controlled hypertension, BP, liver tests, HAM-A, C-SSRS and PHQ-9.
async fn screened_patient(app: &TestApp, mrn: &str) -> String {
    let prescriber = app.login(Role::Prescriber).await;
    let pid = register(&prescriber, mrn, "Varga", "Matthias", "1979-09-30", "male").await;
    add(&prescriber, &pid, "diagnosis", json!({"choice": "gad"})).await;
    for (name, dose) in [("Lamotrigine", "100 mg twice daily"), ("Clonazepam", "0.5 mg at night")] {
        add(&prescriber, &pid, "medication", json!({"name": name, "dose": dose})).await;
    }
    for (name, b, f) in [("Sertraline", "27", "22"), ("Venlafaxine", "26", "21")] {
        add(&prescriber, &pid, "prior_treatment", json!({"treatment_kind": "pharmacological", "name": name, "weeks": "12", "adequate": "yes", "instrument": "hama", "baseline": b, "final": f})).await;
    }
    add(&prescriber, &pid, "condition", json!({"condition": "hypertension", "status": "present", "controlled": "yes"})).await;
    prescriber.post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": 84})).await.assert_status(201, "weight");
    prescriber.post_json(&format!("/api/patients/{pid}/heights"), &json!({"value": 180})).await.assert_status(201, "height");
    prescriber
        .post_json(&format!("/api/patients/{pid}/vitals"), &json!({"systolic": 136, "diastolic": 86, "heart_rate": 74}))
        .await
        .assert_status(201, "vitals");
    prescriber
        .post_json(&format!("/api/patients/{pid}/liver-tests"), &json!({"alt": 30, "ast": "25", "alp": 80, "bilirubin": 10}))
        .await
        .assert_status(201, "liver");
    let url = format!("/api/patients/{pid}/assessments");
    for (inst, items) in [("hama", "2,2,2,2,2,2,2,2,2,2,1,1,1,1"), ("cssrs_screener", "n,n,-,-,-,n,-"), ("phq9", "1,1,1,0,1,0,1,0,0")] {
        prescriber.post_json(&url, &json!({"instrument": inst, "items": items})).await.assert_status(201, inst);
    }
    pid
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_owned()).collect()
}

async fn a_complete_intake_gives_cautions_with_sources_and_a_signed_versioned_verdict(app: &TestApp) {
    let pid = screened_patient(app, "SC-0001").await;
    let nurse = app.login(Role::Nurse).await;
    let r = nurse.get(&format!("/api/patients/{pid}/screening")).await;
    r.assert_status(200, "GET screening");
    let v = r.json();
    assert_eq!(v["current"]["verdict"], "eligible_with_cautions", "{}", v["current"]);
    assert!(v["signed"].is_null());
    assert_eq!(v["session_may_start"], true);
    let c = codes(&v["current"]);
    for code in ["interaction:lamotrigine", "interaction:benzodiazepines", "condition:hypertension", "resistance:met", "inclusion:gad"] {
        assert!(c.contains(&code.to_owned()), "{code} in {c:?}");
    }
    assert!(!c.iter().any(|c| c.starts_with("missing:") || c.starts_with("unrecognised:")), "complete intake: {c:?}");
    let benzo = v["current"]["findings"].as_array().unwrap().iter().find(|f| f["code"] == "interaction:benzodiazepines").unwrap();
    assert_eq!(benzo["severity"], "caution");
    assert!(benzo["trigger"].as_str().unwrap().contains("Clonazepam 0.5 mg at night"), "{benzo}");
    assert!(benzo["source"].as_str().unwrap().contains("Andrashko"), "{benzo}");
    assert!(!benzo["effect"].as_str().unwrap().is_empty() && !benzo["action"].as_str().unwrap().is_empty());
    let trials = v["current"]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    let sertraline = trials.iter().find(|t| t["name"] == "Sertraline").unwrap();
    assert_eq!(sertraline["status"], "adequate_failure");
    assert_eq!(sertraline["reduction_percent"], "18.5", "(27 - 22) / 27");

    // Nurses do not sign; prescribers do; each signature is a new version.
    nurse.post_json(&format!("/api/patients/{pid}/screening/sign"), &json!({})).await.assert_status(403, "nurse signs");
    let prescriber = app.login(Role::Prescriber).await;
    let r = prescriber.post_json(&format!("/api/patients/{pid}/screening/sign"), &json!({"note": "reviewed with the patient"})).await;
    r.assert_status(201, "sign");
    let s = r.json();
    assert_eq!(s["signed"]["version"], 1);
    assert_eq!(s["signed"]["verdict"], "eligible_with_cautions");
    assert_eq!(s["signed"]["signed_by"], "pia.prescriber");
    assert_eq!(s["signed"]["note"], "reviewed with the patient");
    let again = prescriber.post_json(&format!("/api/patients/{pid}/screening/sign"), &json!({})).await;
    again.assert_status(409, "a signature that did not see version 1");
    let r = prescriber.post_json(&format!("/api/patients/{pid}/screening/sign"), &json!({"base_version": 1})).await;
    r.assert_status(201, "sign again");
    let rid = r.json()["signed"]["record_id"].as_str().unwrap().to_owned();
    let h = prescriber.get(&format!("/api/records/{rid}/history")).await;
    h.assert_status(200, "history");
    assert_eq!(h.json().as_array().unwrap().len(), 2, "both signatures are kept");

    // A new finding after signing shows as new since the signature.
    app.advance_minutes(5);
    prescriber
        .post_json(&format!("/api/patients/{pid}/vitals"), &json!({"systolic": 150, "diastolic": 95}))
        .await
        .assert_status(201, "vitals");
    let v = nurse.get(&format!("/api/patients/{pid}/screening")).await.json();
    assert_eq!(codes(&json!({"findings": v["new_since_signed"]})), vec!["bp:caution".to_owned()]);
}

async fn acceptance_is_for_the_medical_director_with_a_reason_and_never_for_an_absolute_contraindication(app: &TestApp) {
    let pid = screened_patient(app, "SC-0002").await;
    let prescriber = app.login(Role::Prescriber).await;
    add(&prescriber, &pid, "condition", json!({"condition": "bipolar_disorder"})).await;
    let url = format!("/api/patients/{pid}/screening/sign");
    let v = prescriber.get(&format!("/api/patients/{pid}/screening")).await.json();
    assert_eq!(v["current"]["verdict"], "needs_review");
    let accept = json!({"acceptances": [{"code": "condition:bipolar_disorder", "reason": "on lithium, euthymic for six years"}]});
    prescriber.post_json(&url, &accept).await.assert_status(403, "prescriber accepts");
    let director = app.login(Role::MedicalDirector).await;
    let r = director.post_json(&url, &json!({"acceptances": [{"code": "condition:bipolar_disorder", "reason": ""}]})).await;
    r.assert_status(422, "no reason");
    assert!(r.problem_fields().contains(&"reason.condition:bipolar_disorder".to_owned()), "{:?}", r.problem_fields());
    let r = director.post_json(&url, &json!({"acceptances": [{"code": "condition:nonsense", "reason": "whatever it is"}]})).await;
    r.assert_status(422, "unknown finding");
    let r = director.post_json(&url, &accept).await;
    r.assert_status(201, "director accepts");
    let v = r.json();
    assert_eq!(v["current"]["verdict"], "eligible_with_cautions");
    assert_eq!(v["signed"]["acceptances"][0]["reason"], "on lithium, euthymic for six years");
    assert!(v["current"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "condition:bipolar_disorder" && f["accepted"] == true));

    // An absolute contraindication cannot be accepted by anyone.
    add(&prescriber, &pid, "condition", json!({"condition": "psychosis"})).await;
    let r = director
        .post_json(
            &url,
            &json!({"base_version": 1, "acceptances": [{"code": "condition:psychosis", "reason": "the team would like to try"}]}),
        )
        .await;
    r.assert_status(422, "absolute");
    assert!(r.field_message("accept.condition:psychosis").contains("cannot be accepted by anyone"), "{}", r.text);
    let v = director.get(&format!("/api/patients/{pid}/screening")).await.json();
    assert_eq!(v["current"]["verdict"], "not_eligible");
    assert_eq!(v["signed"]["version"], 1, "nothing was signed by the refused request");
}

async fn a_treatment_session_cannot_start_while_an_absolute_contraindication_stands(app: &TestApp) {
    let pid = screened_patient(app, "SC-0003").await;
    let prescriber = app.login(Role::Prescriber).await;
    let session = json!({"kind": "encounter", "fields": {"encounter_kind": "treatment", "start": "2026-11-26T08:00", "reason_for_visit": "SC ketamine 0.25 mg/kg"}});
    add(&prescriber, &pid, "encounter", session["fields"].clone()).await;
    let preg = add(&prescriber, &pid, "condition", json!({"condition": "pre_eclampsia"})).await;
    let r = prescriber.post_json(&format!("/api/patients/{pid}/records"), &session).await;
    r.assert_status(422, "session with an absolute contraindication");
    assert!(
        r.field_message("encounter_kind").contains("cannot start while an absolute contraindication stands: Pre-eclampsia"),
        "{}",
        r.text
    );
    let chart = chart(&prescriber, &pid).await;
    let sessions = chart["records"].as_array().unwrap().iter().filter(|r| r["kind"] == "encounter").count();
    assert_eq!(sessions, 1, "nothing saved by the refused request");
    // Other visits are allowed (a review to discuss it); voiding the entry lets sessions start again.
    add(&prescriber, &pid, "encounter", json!({"encounter_kind": "follow_up", "start": "2026-11-26T08:30"})).await;
    let rid = preg["record_id"].as_str().unwrap();
    prescriber
        .post_json(&format!("/api/records/{rid}/void"), &json!({"base_version": 1, "reason": "entered in error: wrong patient"}))
        .await
        .assert_status(200, "void");
    prescriber.post_json(&format!("/api/patients/{pid}/records"), &session).await.assert_status(201, "session after the void");
    // A blood pressure above 180/100 also stops the next session.
    app.advance_minutes(5);
    prescriber
        .post_json(&format!("/api/patients/{pid}/vitals"), &json!({"systolic": 186, "diastolic": 104}))
        .await
        .assert_status(201, "vitals");
    let r = prescriber.post_json(&format!("/api/patients/{pid}/records"), &session).await;
    r.assert_status(422, "BP above 180/100");
    assert!(r.field_message("encounter_kind").contains("Blood pressure above 180/100 mmHg at rest"), "{}", r.text);
}

async fn vital_signs_liver_tests_and_the_calculator_name_bad_fields(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "SC-0004", "Okonkwo", "Imogen", "1984-04-12", "female").await;
    let r = nurse.post_json(&format!("/api/patients/{pid}/vitals"), &json!({"systolic": 80, "diastolic": 120, "heart_rate": 400})).await;
    r.assert_status(422, "swapped BP");
    assert!(r.field_message("diastolic").contains("are the two swapped"), "{}", r.text);
    assert!(r.field_message("heart_rate").contains("from 20 to 250"), "{}", r.text);
    let r = nurse.post_json(&format!("/api/patients/{pid}/vitals"), &json!({"systolic": "one-twenty"})).await;
    r.assert_status(422, "text BP");
    assert!(r.field_message("systolic").contains("must be a number from 50 to 300 mmHg"));
    assert!(r.field_message("diastolic").contains("is required"));
    let r = nurse.post_json(&format!("/api/patients/{pid}/liver-tests"), &json!({"alp": 80})).await;
    r.assert_status(422, "no ALT or AST");
    assert!(r.field_message("alt").contains("at least ALT or AST"));
    // A misspelt key is refused by name, never silently dropped.
    let r = nurse.post_json(&format!("/api/patients/{pid}/liver-tests"), &json!({"alt": 30, "alt_ul": 400})).await;
    r.assert_status(422, "unknown key");
    assert!(r.text.contains("unknown field") && r.text.contains("alt_ul"), "{}", r.text);
    let v = nurse.get(&format!("/api/patients/{pid}/screening")).await.json();
    let c = codes(&v["current"]);
    for code in [
        "missing:blood_pressure",
        "missing:liver_tests",
        "missing:anxiety_diagnosis",
        "missing:pregnancy_status",
        "missing:cssrs",
        "missing:phq9",
        "resistance:not_met",
    ] {
        assert!(c.contains(&code.to_owned()), "nothing half-written, each missing item named: {code} in {c:?}");
    }
    assert_eq!(v["current"]["verdict"], "needs_review");

    // The calculator: same rules, nothing stored.
    let intake = json!({"age_years": 40, "weight_kg": "176 lb", "conditions": ["schizophrenia"], "bp_systolic": 120});
    let r = nurse.post_json("/api/screening/evaluate", &intake).await;
    r.assert_status(422, "bad intake");
    assert!(r.field_message("weight_kg").contains("kilograms, not pounds"), "{}", r.text);
    assert!(r.field_message("bp_diastolic").contains("give both"), "{}", r.text);
    let r = nurse
        .post_json("/api/screening/evaluate", &json!({"age_years": 40, "conditions": ["schizophrenia"], "medications": ["Quibbelex"]}))
        .await;
    r.assert_status(200, "evaluate");
    let v = r.json();
    assert_eq!(v["verdict"], "not_eligible");
    assert!(codes(&v).contains(&"unrecognised:medicine:quibbelex".to_owned()));
    let r = nurse.post_json("/api/screening/evaluate", &json!({"age": 40})).await;
    r.assert_status(422, "unknown key");
    assert!(r.text.contains("unknown field"), "{}", r.text);
}

async fn screening_routes_are_documented_and_guarded(app: &TestApp) {
    let routes = ketacare_web::api::documented_routes();
    for (m, p) in [
        ("GET", "/api/patients/{id}/screening"),
        ("POST", "/api/patients/{id}/screening/sign"),
        ("POST", "/api/patients/{id}/vitals"),
        ("POST", "/api/patients/{id}/liver-tests"),
        ("POST", "/api/screening/evaluate"),
    ] {
        assert!(routes.iter().any(|(rm, rp)| rm == m && rp == p), "{m} {p} documented");
    }
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "SC-0005", "Delacroix", "Esme", "1975-06-21", "female").await;
    for role in [Role::Researcher, Role::Admin] {
        let s = app.login(role).await;
        s.get(&format!("/api/patients/{pid}/screening")).await.assert_status(403, &format!("{role:?} reads a screening"));
        s.post_json("/api/screening/evaluate", &json!({})).await.assert_status(403, &format!("{role:?} uses the calculator"));
        s.post_json(&format!("/api/patients/{pid}/vitals"), &json!({"systolic": 120, "diastolic": 80})).await.assert_status(403, "vitals");
    }
    nurse.get(&format!("/api/patients/{}/screening", random_uuid())).await.assert_status(404, "unknown patient");
    // Reads are audited.
    nurse.get(&format!("/api/patients/{pid}/screening")).await.assert_status(200, "nurse reads");
    let director = app.login(Role::MedicalDirector).await;
    let audit = director.get(&format!("/api/audit?patient={pid}&action=R")).await.json();
    assert!(audit.as_array().unwrap().iter().any(|e| e["username"] == "nina.nurse" && e["entity_type"] == "Record"), "{audit}");
}
