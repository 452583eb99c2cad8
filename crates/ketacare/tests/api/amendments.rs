//! Append-only changes: amendments keep every version, stale edits conflict, voids keep history.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::{json, Value};

http_tests!(
    amending_demographics_keeps_both_versions_in_the_history,
    amending_demographics_from_a_stale_version_is_a_conflict,
    amendments_need_a_reason,
    amending_a_medication_keeps_its_history_and_voiding_moves_it_to_voided,
    amending_a_weight_goes_through_the_same_checks,
    voiding_a_patient_hides_the_chart_but_keeps_the_history,
);

fn demographics(family: &str) -> Value {
    json!({"mrn": "AM-0001", "family_name": family, "given_name": "Lena", "date_of_birth": "1986-02-14", "sex": "female"})
}

async fn amending_demographics_keeps_both_versions_in_the_history(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "AM-0001", "Smyth", "Lena", "1986-02-14", "female").await;
    app.advance_minutes(5);
    let r = nurse
        .post_json(
            &format!("/api/patients/{pid}/amend"),
            &json!({"base_version": 1, "demographics": demographics("Smith"), "reason": "name misspelt at registration"}),
        )
        .await;
    r.assert_status(200, "amend demographics");
    let v = r.json();
    assert_eq!(v["version"], 2);
    assert_eq!(v["action"], "amend");
    assert_eq!(v["reason"], "name misspelt at registration");

    let h = nurse.get(&format!("/api/patients/{pid}/history")).await;
    h.assert_status(200, "history");
    let h = h.json();
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h[0]["version"], 1);
    assert_eq!(h[0]["demographics"]["family_name"], "Smyth");
    assert_eq!(h[0]["action"], "create");
    assert!(h[0]["reason"].is_null());
    assert_eq!(h[1]["version"], 2);
    assert_eq!(h[1]["demographics"]["family_name"], "Smith");
    assert_eq!(h[1]["reason"], "name misspelt at registration");
    assert_eq!(h[1]["recorded_at"], "2026-11-26T09:05:00+00:00");
    let c = chart(&nurse, &pid).await;
    assert_eq!(c["patient"]["version"], 2);
    assert_eq!(c["patient"]["demographics"]["family_name"], "Smith", "the chart shows the current version");
    // Taking another patient's MRN is refused on the mrn field.
    register(&nurse, "AM-0099", "Other", "Owner", "1970-01-01", "male").await;
    let mut taken = demographics("Smith");
    taken["mrn"] = json!("am-0099");
    let r = nurse
        .post_json(&format!("/api/patients/{pid}/amend"), &json!({"base_version": 2, "demographics": taken, "reason": "wrong number"}))
        .await;
    r.assert_status(422, "amend to a taken MRN");
    assert_eq!(r.problem_fields(), vec!["mrn"], "{}", r.text);
    assert_eq!(nurse.get(&format!("/api/patients/{pid}/history")).await.json().as_array().unwrap().len(), 2, "not saved");
    // Search finds the current name only.
    assert_eq!(nurse.get("/api/patients?q=Smyth").await.json().as_array().unwrap().len(), 0);
    assert_eq!(nurse.get("/api/patients?q=Smith").await.json().as_array().unwrap().len(), 1);
}

async fn amending_demographics_from_a_stale_version_is_a_conflict(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let prescriber = app.login(Role::Prescriber).await;
    let pid = register(&nurse, "AM-0001", "Smyth", "Lena", "1986-02-14", "female").await;
    let url = format!("/api/patients/{pid}/amend");
    nurse
        .post_json(&url, &json!({"base_version": 1, "demographics": demographics("Smith"), "reason": "spelling"}))
        .await
        .assert_status(200, "first amendment");
    // The prescriber edited version 1 too and saves later.
    let r = prescriber.post_json(&url, &json!({"base_version": 1, "demographics": demographics("Smithe"), "reason": "spelling"})).await;
    r.assert_status(409, "stale base version");
    assert_eq!(r.json()["error"], "conflict");
    let r = prescriber.post_json(&url, &json!({"base_version": 7, "demographics": demographics("Smithe"), "reason": "spelling"})).await;
    r.assert_status(409, "future base version");
    let h = nurse.get(&format!("/api/patients/{pid}/history")).await.json();
    assert_eq!(h.as_array().unwrap().len(), 2, "the stale edit was not saved");
    assert_eq!(chart(&nurse, &pid).await["patient"]["demographics"]["family_name"], "Smith");
}

async fn amendments_need_a_reason(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "AM-0001", "Smyth", "Lena", "1986-02-14", "female").await;
    let r = nurse
        .post_json(
            &format!("/api/patients/{pid}/amend"),
            &json!({"base_version": 1, "demographics": demographics("Smith"), "reason": "  "}),
        )
        .await;
    r.assert_status(422, "blank reason");
    assert_eq!(r.problem_fields(), vec!["reason"]);
    let r = nurse.post_json(&format!("/api/patients/{pid}/amend"), &json!({"base_version": 1, "demographics": {"mrn": "AM-0001", "family_name": "", "given_name": "Lena", "date_of_birth": "1986-02-14", "sex": "female"}, "reason": ""})).await;
    r.assert_status(422, "blank reason and name");
    let mut f = r.problem_fields();
    f.sort();
    assert_eq!(f, vec!["family_name", "reason"], "both problems at once: {}", r.text);
    let med =
        nurse.post_json(&format!("/api/patients/{pid}/records"), &json!({"kind": "medication", "fields": {"name": "Sertraline"}})).await;
    let rid = med.json()["record_id"].as_str().unwrap().to_owned();
    let r = nurse.post_json(&format!("/api/records/{rid}/void"), &json!({"base_version": 1, "reason": ""})).await;
    r.assert_status(422, "void without reason");
    assert_eq!(r.problem_fields(), vec!["reason"]);
    assert_eq!(nurse.get(&format!("/api/patients/{pid}/history")).await.json().as_array().unwrap().len(), 1);
    assert_eq!(chart(&nurse, &pid).await["records"].as_array().unwrap().len(), 1, "medication still current");
}

async fn amending_a_medication_keeps_its_history_and_voiding_moves_it_to_voided(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let prescriber = app.login(Role::Prescriber).await;
    let pid = register(&nurse, "AM-0002", "Pillar", "Otto", "1972-11-11", "male").await;
    let r = prescriber
        .post_json(&format!("/api/patients/{pid}/records"), &json!({"kind": "medication", "fields": {"name": "Sertraline", "rxnorm": "36437", "dose": "50 mg once daily", "start": "2026-01-10"}}))
        .await;
    r.assert_status(201, "add medication");
    let rid = r.json()["record_id"].as_str().unwrap().to_owned();
    app.advance_minutes(2);

    let r = prescriber
        .post_json(
            &format!("/api/records/{rid}/amend"),
            &json!({"base_version": 1, "reason": "dose corrected after pharmacist review", "fields": {"name": "Sertraline", "rxnorm": "36437", "dose": "100 mg once daily", "start": "2026-01-10"}}),
        )
        .await;
    r.assert_status(200, "amend medication");
    assert_eq!(r.json()["version"], 2);
    assert_eq!(r.json()["fields"]["dose"], "100 mg once daily");

    let h = nurse.get(&format!("/api/records/{rid}/history")).await;
    h.assert_status(200, "record history");
    let h = h.json();
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["fields"]["dose"], "50 mg once daily");
    assert_eq!(h[0]["action"], "create");
    assert_eq!(h[1]["fields"]["dose"], "100 mg once daily");
    assert_eq!(h[1]["action"], "amend");
    assert_eq!(h[1]["reason"], "dose corrected after pharmacist review");
    assert_eq!(h[1]["recorded_by"], "pia.prescriber");
    let cur = nurse.get(&format!("/api/records/{rid}")).await.json();
    assert_eq!(cur["version"], 2);

    // A stale amendment conflicts.
    let r = nurse
        .post_json(
            &format!("/api/records/{rid}/amend"),
            &json!({"base_version": 1, "reason": "again", "fields": {"name": "Sertraline", "dose": "25 mg"}}),
        )
        .await;
    r.assert_status(409, "stale record amendment");

    // Void with a reason.
    let r = nurse
        .post_json(&format!("/api/records/{rid}/void"), &json!({"base_version": 2, "reason": "entered in error: wrong patient"}))
        .await;
    r.assert_status(200, "void");
    assert_eq!(r.json()["action"], "void");
    let c = chart(&nurse, &pid).await;
    assert!(c["records"].as_array().unwrap().iter().all(|x| x["record_id"] != rid.as_str()), "gone from current records: {c}");
    let voided = c["voided"].as_array().unwrap();
    assert_eq!(voided.len(), 1, "{c}");
    assert_eq!(voided[0]["record_id"], rid.as_str());
    assert_eq!(voided[0]["reason"], "entered in error: wrong patient");
    assert_eq!(nurse.get(&format!("/api/records/{rid}/history")).await.json().as_array().unwrap().len(), 3, "history keeps every version");
    // A voided record cannot be changed again.
    let r = nurse
        .post_json(&format!("/api/records/{rid}/amend"), &json!({"base_version": 3, "reason": "undo", "fields": {"name": "Sertraline"}}))
        .await;
    r.assert_status(409, "amend a voided record");
    let r = nurse.post_json(&format!("/api/records/{rid}/void"), &json!({"base_version": 3, "reason": "again"})).await;
    r.assert_status(409, "void twice");
}

async fn amending_a_weight_goes_through_the_same_checks(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "AM-0003", "Weigh", "Ulla", "1980-01-01", "female").await;
    nurse
        .post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": 80, "measured_at": "2026-11-20T09:00"}))
        .await
        .assert_status(201, "first");
    let r = nurse.post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": 81})).await;
    r.assert_status(201, "second");
    let rid = r.json()["record_id"].as_str().unwrap().to_owned();
    app.advance_minutes(1);
    let url = format!("/api/records/{rid}/amend");
    let r = nurse.post_json(&url, &json!({"base_version": 1, "reason": "typed in pounds", "fields": {"value": "176.4"}})).await;
    r.assert_status(422, "amend to a pounds-looking value");
    assert_eq!(r.json()["error"], "needs_confirmation");
    let r = nurse.post_json(&url, &json!({"base_version": 1, "reason": "scale error", "fields": {"value": "160 lb"}})).await;
    r.assert_status(422, "amend with a unit");
    assert_eq!(r.problem_fields(), vec!["value"], "{}", r.text);
    let r = nurse.post_json(&url, &json!({"base_version": 1, "reason": "re-weighed", "fields": {"value": "80.6"}})).await;
    r.assert_status(200, "plausible amendment");
    let c = chart(&nurse, &pid).await;
    let w: Vec<&str> = c["weights"].as_array().unwrap().iter().map(|w| w["value"].as_str().unwrap()).collect();
    assert_eq!(w, vec!["80", "80.6"]);
}

async fn voiding_a_patient_hides_the_chart_but_keeps_the_history(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "AM-0004", "Duplicate", "Dora", "1960-06-06", "female").await;
    let r = nurse.post_json(&format!("/api/patients/{pid}/void"), &json!({"base_version": 1, "reason": "duplicate registration"})).await;
    r.assert_status(204, "void patient");
    nurse.get(&format!("/api/patients/{pid}")).await.assert_status(404, "voided chart");
    assert_eq!(app.patient_count().await, 0);
    assert!(nurse.get("/api/patients?q=Duplicate").await.json().as_array().unwrap().is_empty());
    let h = nurse.get(&format!("/api/patients/{pid}/history")).await;
    h.assert_status(200, "history of a voided patient");
    let h = h.json();
    assert_eq!(h.as_array().unwrap().len(), 2);
    assert_eq!(h[1]["action"], "void");
    assert_eq!(h[1]["reason"], "duplicate registration");
}
