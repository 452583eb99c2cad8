//! Measurement-based care over the JSON API: the instrument catalogue and calculators, recorded
//! assessments with their outcome series, safety alerts, questionnaire links and schedules.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::{json, Value};

http_tests!(
    instruments_are_listed_and_fully_described,
    score_endpoint_scores_forms_and_names_bad_items_with_the_accepted_range,
    outcome_endpoint_applies_the_strict_lsas_response_rule,
    phq9_item_9_raises_an_alert_that_is_closed_only_by_an_acknowledgement_saying_what_was_done,
    assessments_form_a_series_with_change_from_baseline,
    researchers_and_administrators_cannot_see_or_record_assessments,
    questionnaire_link_is_revealed_once_and_never_listed,
    schedules_are_created_listed_due_and_ended,
    openapi_documents_every_outcome_route_and_each_needs_credentials,
    licensed_wording_is_checked_loaded_shown_on_forms_and_withdrawn,
);

const OUTCOME_ROUTES: [(&str, &str); 16] = [
    ("GET", "/api/instruments"),
    ("GET", "/api/instruments/{key}"),
    ("POST", "/api/instruments/{key}/score"),
    ("POST", "/api/instruments/{key}/outcome"),
    ("GET", "/api/patients/{id}/assessments"),
    ("POST", "/api/patients/{id}/assessments"),
    ("POST", "/api/patients/{id}/questionnaire-requests"),
    ("POST", "/api/questionnaire-requests/{id}/cancel"),
    ("GET", "/api/alerts"),
    ("POST", "/api/alerts/{id}/acknowledge"),
    ("GET", "/api/patients/{id}/schedules"),
    ("POST", "/api/patients/{id}/schedules"),
    ("POST", "/api/schedules/{id}/end"),
    ("GET", "/api/instruments/{key}/wording"),
    ("POST", "/api/instruments/{key}/wording"),
    ("POST", "/api/instruments/{key}/wording/withdraw"),
];

fn ids(list: &Value) -> Vec<String> {
    list.as_array().expect("a list").iter().map(|a| a["id"].as_str().expect("id").to_owned()).collect()
}

async fn instruments_are_listed_and_fully_described(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let r = nurse.get("/api/instruments").await;
    r.assert_status(200, "GET /api/instruments");
    let list = r.json();
    let keys: Vec<&str> = list.as_array().unwrap().iter().filter_map(|i| i["key"].as_str()).collect();
    for k in ["gad7", "phq9", "hama", "lsas", "cssrs_screener"] {
        assert!(keys.contains(&k), "{k} listed: {keys:?}");
    }
    assert_eq!(keys.len(), app.app.knowledge().instruments.len());
    let gad7 = list.as_array().unwrap().iter().find(|i| i["key"] == "gad7").unwrap();
    assert_eq!(gad7["name"], "GAD-7");
    assert_eq!(gad7["respondent"], "patient");
    assert_eq!(gad7["item_count"], 7);
    assert_eq!(gad7["total_min"], "0", "decimals are exact text");
    assert_eq!(gad7["total_max"], "21");
    assert!(gad7["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(gad7["licence"].is_string() && gad7["caveats"].is_array());

    let r = nurse.get("/api/instruments/phq9").await;
    r.assert_status(200, "GET /api/instruments/phq9");
    let d = r.json();
    assert_eq!(d["key"], "phq9");
    assert_eq!(d["direction"], "higher_is_worse");
    let items = d["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    let q9 = &items[8];
    assert_eq!(q9["key"], "q9");
    assert_eq!((q9["min"].as_u64(), q9["max"].as_u64()), (Some(0), Some(3)));
    assert_eq!(q9["choices"][3]["value"], 3);
    assert_eq!(q9["choices"][3]["label"], "Nearly every day");
    assert_eq!(q9["loinc"], "44260-8");
    assert_eq!(q9["accepted"], "a whole number from 0 to 3");
    assert_eq!(items[9]["scored"], false);
    assert_eq!(items[9]["optional"], true);
    let flag = &d["flags"][0];
    assert_eq!(flag["code"], "phq9_item9");
    assert_eq!(flag["urgent"], true);
    assert_eq!(flag["when"]["kind"], "item_at_least");
    assert_eq!(flag["when"]["items"], json!(["q9"]));
    assert_eq!(flag["when"]["value"], "1");
    assert!(flag["source"].as_str().is_some_and(|s| !s.is_empty()));
    let bands = &d["band_sets"][0];
    assert_eq!(bands["default"], true);
    assert!(bands["source"].as_str().is_some_and(|s| s.contains("Kroenke")));
    assert_eq!(bands["bands"][2], json!({"code": "moderate", "label": "Moderate", "min": "10", "max": "14"}));
    assert_eq!(d["rules"]["response"]["percent"], "50");
    assert_eq!(d["rules"]["response"]["strict"], false);
    assert_eq!(d["rules"]["remission"]["total_at_most"], "4");
    assert!(d["rules"]["remission"]["source"].is_string());
    assert_eq!(d["reliability"]["coefficient"], "0.89");
    assert_eq!(d["reliability"]["sd"], "3.5");
    assert_eq!(d["reliability"]["critical"], "1.96");
    assert_eq!(d["reliability"]["threshold_points"], "3.22", "1.96 · √2 · 3.5 · √0.11");
    assert_eq!(d["loinc"]["total"], "44261-6");
    assert!(d["caveats"].as_array().is_some_and(|c| !c.is_empty()));

    // The C-SSRS screener has triage rules and skip logic.
    let c = nurse.get("/api/instruments/cssrs_screener").await.json();
    assert!(c["triage"].as_array().is_some_and(|t| !t.is_empty()), "{c}");
    assert!(c["items"].as_array().unwrap().iter().any(|i| i["skip"].is_object()), "skip rules shown");
    // LSAS: strict response, no remission rule, no reliability.
    let l = nurse.get("/api/instruments/lsas").await.json();
    assert_eq!(l["rules"]["response"]["strict"], true);
    assert!(l["rules"]["remission"].is_null());
    assert!(l["reliability"].is_null());

    for path in ["/api/instruments/nope", "/api/instruments/GAD7"] {
        let r = nurse.get(path).await;
        r.assert_status(404, path);
        assert_eq!(r.json()["error"], "not_found");
    }
    // Anyone logged in may read the catalogue (it holds no patient data).
    app.login(Role::Researcher).await.get("/api/instruments/gad7").await.assert_status(200, "researcher reads the catalogue");
}

async fn score_endpoint_scores_forms_and_names_bad_items_with_the_accepted_range(app: &TestApp) {
    let prescriber = app.login(Role::Prescriber).await;
    let url = "/api/instruments/gad7/score";
    let r = prescriber.post_json(url, &json!({"items": "3,2,2,1,3,2,1"})).await;
    r.assert_status(200, "score GAD-7");
    let s = r.json();
    assert_eq!(s["instrument"], "gad7");
    assert_eq!(s["total"], "14");
    assert_eq!(s["total_min"], "0");
    assert_eq!(s["total_max"], "21");
    assert_eq!(s["band"], json!({"code": "moderate", "label": "Moderate"}));
    assert_eq!(s["flags"], json!([]));
    assert!(s["subscales"].is_array() && s["triage"].is_null(), "{s}");
    // The same answers as a list of numbers or text.
    for answers in [json!([3, 2, 2, 1, 3, 2, 1]), json!(["3", "2", "2", "1", "3", "2", "1"])] {
        let r = prescriber.post_json(url, &json!({"answers": answers})).await;
        r.assert_status(200, &format!("score {answers}"));
        assert_eq!(r.json(), s, "same score for {answers}");
    }

    // An answer out of range is named by the item key with the accepted range.
    let r = prescriber.post_json(url, &json!({"items": "3,2,4,1,3,2,1"})).await;
    r.assert_status(422, "out of range");
    assert_eq!(r.json()["error"], "validation");
    assert_eq!(r.problem_fields(), vec!["q3"], "{}", r.text);
    let m = r.field_message("q3");
    assert!(m.contains("from 0 to 3") && m.contains("got 4"), "{m}");
    // Several problems at once, each on its item.
    let r = prescriber.post_json(url, &json!({"answers": [3, "x", 2, null, 3, 2.5, 1]})).await;
    r.assert_status(422, "several bad items");
    assert_eq!(r.problem_fields(), vec!["q2", "q6"], "{}", r.text);
    assert!(r.field_message("q2").contains("from 0 to 3"), "{}", r.text);
    let r = prescriber.post_json(url, &json!({"answers": [3, 2, null, 1, 3, 2, 1]})).await;
    r.assert_status(422, "blank item");
    assert_eq!(r.problem_fields(), vec!["q3"]);
    assert!(r.field_message("q3").contains("missing"), "{}", r.text);
    // Too many answers; a comma inside one list element.
    let r = prescriber.post_json(url, &json!({"items": "1,1,1,1,1,1,1,1"})).await;
    r.assert_status(422, "eight answers");
    assert!(r.field_message("items").contains("has 7 items"), "{}", r.text);
    let r = prescriber.post_json(url, &json!({"answers": ["1,1", 1, 1, 1, 1, 1]})).await;
    r.assert_status(422, "comma in an element");
    assert_eq!(r.problem_fields(), vec!["q1"]);
    // Neither or both forms of answers; not JSON.
    let r = prescriber.post_json(url, &json!({})).await;
    r.assert_status(422, "no answers");
    assert_eq!(r.problem_fields(), vec!["answers"]);
    let r = prescriber.post_json(url, &json!({"items": "1", "answers": [1]})).await;
    r.assert_status(422, "both");
    assert_eq!(r.problem_fields(), vec!["answers"]);
    let r = prescriber.post_json(url, &json!({"answers": {"q1": 1}})).await;
    r.assert_status(422, "answers not a list");
    assert_eq!(r.problem_fields(), vec!["body"]);
    let r = prescriber.post_empty(url).await;
    r.assert_status(422, "empty body");
    assert_eq!(r.problem_fields(), vec!["body"]);
    // Unknown instrument.
    prescriber.post_json("/api/instruments/gad8/score", &json!({"items": "1"})).await.assert_status(404, "unknown instrument");

    // Yes/no and urgent flags: PHQ-9 item 9 and a scored form with a percent of the maximum.
    let r = prescriber.post_json("/api/instruments/phq9/score", &json!({"items": "0,0,0,0,0,0,0,0,2,-"})).await;
    r.assert_status(200, "PHQ-9");
    let s = r.json();
    assert_eq!(s["total"], "2");
    assert_eq!(s["flags"][0]["code"], "phq9_item9");
    assert_eq!(s["flags"][0]["urgent"], true);
    // Nothing was stored by the calculator.
    assert_eq!(prescriber.get("/api/alerts").await.json(), json!([]));
}

async fn outcome_endpoint_applies_the_strict_lsas_response_rule(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let url = "/api/instruments/lsas/outcome";
    let r = nurse.post_json(url, &json!({"baseline": 100, "current": 65})).await;
    r.assert_status(200, "LSAS 100 → 65");
    let o = r.json();
    assert_eq!(o["instrument"], "lsas");
    assert_eq!(o["baseline"], "100");
    assert_eq!(o["current"], "65");
    assert_eq!(o["change"], "-35");
    assert_eq!(o["change_percent"], "-35");
    assert_eq!(o["response"], false, "exactly 35 % is not more than 35 %: {o}");
    assert!(o["remission"].is_null() && o["rci"].is_null() && o["reliable_change"].is_null(), "{o}");
    assert_eq!(o["rules"]["response"]["strict"], true);
    assert_eq!(o["rules"]["response"]["percent"], "35");
    let r = nurse.post_json(url, &json!({"baseline": "100", "current": "64"})).await;
    r.assert_status(200, "LSAS 100 → 64");
    assert_eq!(r.json()["response"], true);

    // GAD-7 20 → 9 with remission and reliable change.
    let r = nurse.post_json("/api/instruments/gad7/outcome", &json!({"baseline": 20, "current": 9})).await;
    r.assert_status(200, "GAD-7");
    let o = r.json();
    assert_eq!(o["change"], "-11");
    assert_eq!(o["change_percent"], "-55");
    assert_eq!(o["response"], true);
    assert!(o["rci"].is_string(), "{o}");
    assert_eq!(o["reliable_change"], "improved");

    // Invalid totals are named.
    let r = nurse.post_json(url, &json!({"baseline": 145, "current": -1})).await;
    r.assert_status(422, "totals out of range");
    assert_eq!(r.problem_fields(), vec!["baseline", "current"], "{}", r.text);
    assert!(r.field_message("baseline").contains("from 0 to 144"), "{}", r.text);
    let r = nurse.post_json(url, &json!({"baseline": "abc", "current": "x"})).await;
    r.assert_status(422, "totals not numbers");
    assert_eq!(r.problem_fields(), vec!["baseline", "current"], "{}", r.text);
    assert!(r.field_message("current").contains("whole number"), "{}", r.text);
    let r = nurse.post_json(url, &json!({"baseline": 100})).await;
    r.assert_status(422, "no current");
    assert_eq!(r.problem_fields(), vec!["current"]);
    let r = nurse.post_json(url, &json!({"baseline": 10.5, "current": 5})).await;
    r.assert_status(422, "fractional baseline");
    assert_eq!(r.problem_fields(), vec!["baseline"]);
    nurse.post_json("/api/instruments/nope/outcome", &json!({"baseline": 1, "current": 1})).await.assert_status(404, "unknown");

    // The medical director's policy choice is the rule in force for the calculator too.
    assert!(!lsas_response_is_policy(&nurse).await, "the LSAS default is the published rule");
    let director = app.login(Role::MedicalDirector).await;
    let token = director.cookie.as_deref().and_then(|c| c.split_once('=')).map(|(_, t)| t.to_owned()).unwrap();
    let p = app.app.authenticate_session(&token, None).await.expect("director principal");
    app.app.set_instrument_rule(&p, "lsas", "response_strict", "false", "Local choice: at least 35 %").await.expect("policy set");
    let r = nurse.post_json(url, &json!({"baseline": 100, "current": 65})).await;
    r.assert_status(200, "LSAS 100 → 65 under the clinic's rule");
    let o = r.json();
    assert_eq!(o["response"], true, "at least 35 % now counts: {o}");
    assert_eq!(o["rules"]["response"]["strict"], false);
    assert_eq!(o["rules"]["response"]["policy"], true);
    assert!(o["rules"]["response"]["source"].as_str().is_some_and(|s| s.contains("mira.director")), "{o}");
    let d = nurse.get("/api/instruments/lsas").await.json();
    assert_eq!(d["rules"]["response"]["strict"], false);
    assert_eq!(d["default_rules"]["response"]["strict"], true);
    assert_eq!(d["default_rules"]["response"]["policy"], false);
}

/// Whether the LSAS response rule in force is marked as clinic policy.
async fn lsas_response_is_policy(s: &Session) -> bool {
    s.get("/api/instruments/lsas").await.json()["rules"]["response"]["policy"].as_bool().expect("policy flag")
}

async fn phq9_item_9_raises_an_alert_that_is_closed_only_by_an_acknowledgement_saying_what_was_done(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let prescriber = app.login(Role::Prescriber).await;
    let pid = register(&nurse, "MB-0001", "Ashcombe", "Lorna", "1986-02-14", "female").await;
    let url = format!("/api/patients/{pid}/assessments");

    // No alert without item 9.
    let r = nurse.post_json(&url, &json!({"instrument": "phq9", "items": "1,1,1,1,1,1,1,1,0"})).await;
    r.assert_status(201, "PHQ-9 without item 9");
    assert_eq!(r.json()["alert_ids"], json!([]));
    assert_eq!(nurse.get("/api/alerts").await.json(), json!([]));

    app.advance_minutes(10);
    let r = nurse.post_json(&url, &json!({"instrument": "phq9", "answers": [1, 1, 1, 1, 1, 1, 1, 1, 1, null]})).await;
    r.assert_status(201, "PHQ-9 with item 9 = 1");
    let rec = r.json();
    assert_eq!(rec["instrument"], "phq9");
    assert_eq!(rec["version"], 1);
    assert_eq!(rec["score"]["total"], "9");
    assert_eq!(rec["score"]["band"]["code"], "mild");
    assert_eq!(rec["score"]["flags"][0]["code"], "phq9_item9");
    let record_id = rec["record_id"].as_str().unwrap().to_owned();
    let alert_ids: Vec<String> = rec["alert_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert_eq!(alert_ids.len(), 1, "{rec}");
    let aid = alert_ids[0].clone();

    // Open and visible to every clinical role.
    for s in [&nurse, &prescriber] {
        let r = s.get("/api/alerts").await;
        r.assert_status(200, "GET /api/alerts");
        let list = r.json();
        assert_eq!(ids(&list), vec![aid.clone()]);
        let a = &list[0];
        assert_eq!(a["code"], "phq9_item9");
        assert_eq!(a["open"], true);
        assert_eq!(a["patient_id"], pid.as_str());
        assert_eq!(a["source_record_id"], record_id.as_str());
        assert_eq!(a["assigned_to"], app.user(Role::Nurse).id.as_str());
        assert!(a["acknowledgement"].is_null());
        assert!(a["raised_at"].as_str().is_some_and(|t| t.starts_with("2026-11-26T09:10")), "{a}");
    }
    let r = nurse.get("/api/alerts?open=maybe").await;
    r.assert_status(422, "bad open flag");
    assert_eq!(r.problem_fields(), vec!["open"], "{}", r.text);

    // Acknowledging needs to say what was done.
    let ack = format!("/api/alerts/{aid}/acknowledge");
    for body in [json!({}), json!({"action_taken": ""}), json!({"action_taken": "ok"})] {
        let r = prescriber.post_json(&ack, &body).await;
        r.assert_status(422, &format!("acknowledge with {body}"));
        assert_eq!(r.problem_fields(), vec!["action_taken"], "{}", r.text);
    }
    assert_eq!(ids(&nurse.get("/api/alerts").await.json()), vec![aid.clone()], "still open");
    app.advance_minutes(5);
    let r = prescriber.post_json(&ack, &json!({"action_taken": "Called the patient, safety plan reviewed, no current intent"})).await;
    r.assert_status(200, "acknowledge");
    let a = r.json();
    assert_eq!(a["id"], aid.as_str());
    assert_eq!(a["open"], false);
    assert_eq!(a["acknowledgement"]["by_name"], "pia.prescriber");
    assert_eq!(a["acknowledgement"]["by"], app.user(Role::Prescriber).id.as_str());
    assert_eq!(a["acknowledgement"]["action_taken"], "Called the patient, safety plan reviewed, no current intent");

    // Closed: not in the open list, in the full list, and only once.
    assert_eq!(nurse.get("/api/alerts").await.json(), json!([]));
    assert_eq!(nurse.get("/api/alerts?open=true").await.json(), json!([]));
    let all = nurse.get("/api/alerts?open=false").await.json();
    assert_eq!(ids(&all), vec![aid.clone()]);
    assert_eq!(all[0]["open"], false);
    let r = nurse.post_json(&ack, &json!({"action_taken": "Called again"})).await;
    r.assert_status(409, "second acknowledgement");
    assert_eq!(r.json()["error"], "conflict");
    // Unknown or malformed alert ids.
    for id in [random_uuid(), "not-an-id".to_owned()] {
        nurse
            .post_json(&format!("/api/alerts/{id}/acknowledge"), &json!({"action_taken": "Called"}))
            .await
            .assert_status(404, "unknown alert");
    }

    // The patient's view shows the alert with its acknowledgement.
    let v = nurse.get(&url).await;
    v.assert_status(200, "GET assessments");
    let v = v.json();
    assert_eq!(ids(&v["alerts"]), vec![aid.clone()]);
    assert_eq!(v["alerts"][0]["acknowledgement"]["by_name"], "pia.prescriber");
}

async fn assessments_form_a_series_with_change_from_baseline(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "MB-0002", "Fenwick", "Odile", "1979-09-09", "female").await;
    let url = format!("/api/patients/{pid}/assessments");
    let enc = nurse
        .post_json(
            &format!("/api/patients/{pid}/records"),
            &json!({"kind": "encounter", "fields": {"encounter_kind": "treatment", "start": "2026-11-26T08:00", "reason_for_visit": "Ketamine 0.5 mg/kg IV"}}),
        )
        .await;
    enc.assert_status(201, "treatment session");
    let session = enc.json()["record_id"].as_str().unwrap().to_owned();

    let r = nurse
        .post_json(&url, &json!({"instrument": "gad7", "items": "3,3,3,3,2,3,3", "taken_at": "2026-11-26T07:30", "session": session, "timepoint": "pre", "note": "Before the first session"}))
        .await;
    r.assert_status(201, "baseline GAD-7");
    assert_eq!(r.json()["taken_at"], "2026-11-26T07:30:00+00:00");
    let r = nurse.post_json(&url, &json!({"instrument": "gad7", "answers": [1, 1, 1, 1, 1, 1, 2], "taken_at": "2026-11-26T08:55"})).await;
    r.assert_status(201, "second GAD-7");

    // Invalid forms are refused on the fields the client sent.
    let r = nurse.post_json(&url, &json!({"instrument": "gad7", "items": "1,1,1,9,1,1,1"})).await;
    r.assert_status(422, "bad item");
    assert_eq!(r.problem_fields(), vec!["q4"]);
    assert!(r.field_message("q4").contains("from 0 to 3"));
    let r = nurse.post_json(&url, &json!({"instrument": "gad9", "items": "1"})).await;
    r.assert_status(422, "unknown instrument");
    assert_eq!(r.problem_fields(), vec!["instrument"]);
    let r = nurse
        .post_json(&url, &json!({"instrument": "gad7", "items": "1,1,1,1,1,1,1", "taken_at": "2026-11-27T09:00", "timepoint": "1h"}))
        .await;
    r.assert_status(422, "future, time point without session");
    assert_eq!(r.problem_fields(), vec!["taken_at", "timepoint"], "{}", r.text);
    let r = nurse.post_json(&url, &json!({"instrument": "gad7"})).await;
    r.assert_status(422, "no answers");
    assert_eq!(r.problem_fields(), vec!["answers"]);
    let r = nurse.post_json(&url, &json!({"instrument": "gad7", "items": "1,1,1,1,1,1,1", "session": random_uuid()})).await;
    r.assert_status(422, "unknown session");
    assert_eq!(r.problem_fields(), vec!["session"]);
    nurse
        .post_json(&format!("/api/patients/{}/assessments", random_uuid()), &json!({"instrument": "gad7", "items": "1,1,1,1,1,1,1"}))
        .await
        .assert_status(404, "unknown patient");
    nurse
        .post_json("/api/patients/not-an-id/assessments", &json!({"instrument": "gad7", "items": "1,1,1,1,1,1,1"}))
        .await
        .assert_status(404, "bad patient id");

    let r = nurse.get(&url).await;
    r.assert_status(200, "GET assessments");
    let v = r.json();
    assert_eq!(v["patient_id"], pid.as_str());
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(v["sessions"][0]["record_id"], session.as_str());
    assert_eq!(v["sessions"][0]["label"], "Ketamine 0.5 mg/kg IV");
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{v}");
    let s = &series[0];
    assert_eq!(s["instrument"], "gad7");
    assert_eq!(s["name"], "GAD-7");
    assert!(s["rules"]["response"].is_object());
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    let (b, c) = (&points[0], &points[1]);
    assert_eq!(b["baseline"], true);
    assert_eq!(b["total"], "20");
    assert_eq!(b["band"]["code"], "severe");
    assert_eq!(b["answers"], json!([3, 3, 3, 3, 2, 3, 3]));
    assert_eq!(b["session"], session.as_str());
    assert_eq!(b["timepoint"], "pre");
    assert_eq!(b["filled_by"], "clinician");
    assert_eq!(b["recorded_by"], "nina.nurse");
    assert_eq!(b["note"], "Before the first session");
    assert!(b["change"].is_null() && b["response"].is_null());
    assert_eq!(c["baseline"], false);
    assert_eq!(c["total"], "8");
    assert_eq!(c["change"], "-12");
    assert_eq!(c["change_percent"], "-60");
    assert_eq!(c["response"], true);
    assert_eq!(c["reliable_change"], "improved");
    assert!(c["rci"].is_string());
    assert!(c["record_id"].is_string() && c["version"] == 1);
    // The assessment is a clinical record like any other.
    let rid = c["record_id"].as_str().unwrap();
    nurse.get(&format!("/api/records/{rid}/history")).await.assert_status(200, "record history");

    // Blank optional items come back as null.
    nurse.post_json(&url, &json!({"instrument": "phq9", "items": "0,0,0,0,0,0,0,0,0,-"})).await.assert_status(201, "PHQ-9");
    let v = nurse.get(&url).await.json();
    let phq = v["series"].as_array().unwrap().iter().find(|s| s["instrument"] == "phq9").unwrap();
    assert_eq!(phq["points"][0]["answers"][9], Value::Null);
    assert_eq!(phq["points"][0]["answers"].as_array().unwrap().len(), 10);
}

async fn researchers_and_administrators_cannot_see_or_record_assessments(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "MB-0003", "Quenby", "Tamsin", "1990-03-03", "female").await;
    let r =
        nurse.post_json(&format!("/api/patients/{pid}/assessments"), &json!({"instrument": "phq9", "items": "2,2,2,2,2,2,2,2,3"})).await;
    r.assert_status(201, "PHQ-9");
    let aid = r.json()["alert_ids"][0].as_str().unwrap().to_owned();
    let sent = nurse.post_json(&format!("/api/patients/{pid}/questionnaire-requests"), &json!({"instrument": "gad7"})).await;
    sent.assert_status(201, "send");
    let qid = sent.json()["id"].as_str().unwrap().to_owned();
    let sch = nurse
        .post_json(&format!("/api/patients/{pid}/schedules"), &json!({"instrument": "gad7", "anchor": "calendar", "interval_days": 7}))
        .await;
    sch.assert_status(201, "schedule");
    let sid = sch.json()["id"].as_str().unwrap().to_owned();

    for role in [Role::Researcher, Role::Admin] {
        let s = app.login(role).await;
        let calls = [
            s.get(&format!("/api/patients/{pid}/assessments")).await,
            s.get(&format!("/api/patients/{pid}/schedules")).await,
            s.get("/api/alerts").await,
            s.post_json(&format!("/api/patients/{pid}/assessments"), &json!({"instrument": "gad7", "items": "1,1,1,1,1,1,1"})).await,
            // Refused before the (missing) answers are judged.
            s.post_json(&format!("/api/patients/{pid}/assessments"), &json!({"instrument": "gad7"})).await,
            s.post_json(&format!("/api/patients/{pid}/questionnaire-requests"), &json!({"instrument": "gad7"})).await,
            s.post_empty(&format!("/api/questionnaire-requests/{qid}/cancel")).await,
            s.post_json(&format!("/api/alerts/{aid}/acknowledge"), &json!({"action_taken": ""})).await,
            s.post_json(
                &format!("/api/patients/{pid}/schedules"),
                &json!({"instrument": "gad7", "anchor": "calendar", "interval_days": 7}),
            )
            .await,
            s.post_empty(&format!("/api/schedules/{sid}/end")).await,
        ];
        for (n, r) in calls.iter().enumerate() {
            r.assert_status(403, &format!("{role:?} call #{n}"));
            assert_eq!(r.json()["error"], "forbidden");
            assert!(!r.text.contains("Quenby") && !r.text.contains("phq9_item9"), "{role:?} #{n}: no data in a 403");
        }
    }
    // Nothing changed.
    let v = nurse.get(&format!("/api/patients/{pid}/assessments")).await.json();
    assert_eq!(v["series"].as_array().unwrap().len(), 1);
    assert_eq!(v["series"][0]["points"].as_array().unwrap().len(), 1);
    assert_eq!(v["alerts"][0]["open"], true);
    assert_eq!(v["requests"][0]["state"], "open");
    assert_eq!(v["schedules"][0]["active"], true);
    assert_eq!(v["schedules"].as_array().unwrap().len(), 1);
    // The denials are audited.
    let director = app.login(Role::MedicalDirector).await;
    let denied = director.get("/api/audit?outcome=denied").await.json();
    assert!(denied.as_array().unwrap().iter().filter(|e| e["username"] == "rex.researcher").count() >= 10, "{denied}");
}

async fn questionnaire_link_is_revealed_once_and_never_listed(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "MB-0004", "Pellow", "Ysolde", "1975-07-21", "female").await;
    let url = format!("/api/patients/{pid}/questionnaire-requests");
    let r = nurse.post_json(&url, &json!({"instrument": "gad7"})).await;
    r.assert_status(201, "send GAD-7");
    let sent = r.json();
    let link = sent["link_path"].as_str().unwrap().to_owned();
    let token = link.strip_prefix("/q/").expect("link path /q/<token>").to_owned();
    assert!(token.len() >= 40, "a long random token: {token}");
    assert_eq!(sent["instrument"], "gad7");
    assert_eq!(sent["state"], "open");
    assert_eq!(sent["sent_at"], "2026-11-26T09:00:00+00:00");
    assert_eq!(sent["expires_at"], "2026-11-29T09:00:00+00:00", "72 h link expiry");
    let qid = sent["id"].as_str().unwrap().to_owned();
    let hash = ketacare_app::token_hash(&token);

    // A second request gets a different token.
    app.advance_minutes(1);
    let other = nurse.post_json(&url, &json!({"instrument": "phq9"})).await;
    other.assert_status(201, "send PHQ-9");
    let other = other.json();
    assert_ne!(other["link_path"], sent["link_path"]);
    let other_id = other["id"].as_str().unwrap().to_owned();

    let r = nurse.get(&format!("/api/patients/{pid}/assessments")).await;
    r.assert_status(200, "GET assessments");
    assert!(!r.text.contains(&token), "the token is never listed");
    assert!(!r.text.contains(&hash), "nor its hash");
    assert!(!r.text.contains("/q/"), "nor a link");
    let v = r.json();
    assert_eq!(ids(&v["requests"]), vec![other_id.clone(), qid.clone()], "newest first");
    let q = &v["requests"][1];
    assert_eq!(q["state"], "open");
    assert_eq!(q["sent_by"], "nina.nurse");
    assert!(q["response_record_id"].is_null() && q["completed_at"].is_null());
    let keys: Vec<&String> = q.as_object().unwrap().keys().collect();
    assert!(keys.iter().all(|k| !k.contains("token") && !k.contains("hash") && !k.contains("link")), "{keys:?}");

    // The link works, once, and the answer shows up as a patient-filled point.
    app.app.open_questionnaire(&token).await.expect("the link opens");
    let answers: Vec<String> = "2,2,1,1,2,1,1".split(',').map(str::to_owned).collect();
    let score = app.app.submit_questionnaire(&token, answers).await.expect("link accepted").expect("valid answers");
    assert_eq!(score.total.map(|t| t.to_string()), Some("10".into()));
    let r = nurse.get(&format!("/api/patients/{pid}/assessments")).await;
    assert!(!r.text.contains(&token) && !r.text.contains(&hash));
    let v = r.json();
    let q = v["requests"].as_array().unwrap().iter().find(|q| q["id"] == qid.as_str()).unwrap();
    assert_eq!(q["state"], "completed");
    let point = &v["series"][0]["points"][0];
    assert_eq!(q["response_record_id"], point["record_id"]);
    assert_eq!(point["filled_by"], "patient");
    assert_eq!(point["request_id"], qid.as_str());
    assert_eq!(point["total"], "10");

    // Cancelling: an answered request cannot be withdrawn; an open one can, once.
    let r = nurse.post_empty(&format!("/api/questionnaire-requests/{qid}/cancel")).await;
    r.assert_status(409, "cancel answered");
    nurse.post_empty(&format!("/api/questionnaire-requests/{other_id}/cancel")).await.assert_status(204, "cancel open");
    nurse.post_empty(&format!("/api/questionnaire-requests/{other_id}/cancel")).await.assert_status(409, "cancel twice");
    for id in [random_uuid(), "x".to_owned()] {
        nurse.post_empty(&format!("/api/questionnaire-requests/{id}/cancel")).await.assert_status(404, "unknown request");
    }
    let v = nurse.get(&format!("/api/patients/{pid}/assessments")).await.json();
    let o = v["requests"].as_array().unwrap().iter().find(|q| q["id"] == other_id.as_str()).unwrap();
    assert_eq!(o["state"], "cancelled");
    assert!(o["cancelled_at"].is_string());

    // Expiry is computed at read time.
    let third = nurse.post_json(&url, &json!({"instrument": "gad7"})).await.json();
    app.advance_minutes(72 * 60);
    let nurse = app.login(Role::Nurse).await;
    let v = nurse.get(&format!("/api/patients/{pid}/assessments")).await.json();
    let t = v["requests"].as_array().unwrap().iter().find(|q| q["id"] == third["id"]).unwrap();
    assert_eq!(t["state"], "expired");

    // Clinician-rated scales cannot be sent; bad fields are named.
    let r = nurse.post_json(&url, &json!({"instrument": "hama"})).await;
    r.assert_status(422, "HAM-A");
    assert_eq!(r.problem_fields(), vec!["instrument"]);
    let r = nurse.post_json(&url, &json!({"instrument": "gad7", "timepoint": "1h"})).await;
    r.assert_status(422, "time point without session");
    assert_eq!(r.problem_fields(), vec!["timepoint"]);
    let r = nurse.post_json(&url, &json!({"instrument": "gad7", "timepoint": "3h", "session": "nope"})).await;
    r.assert_status(422, "bad session and time point");
    assert_eq!(r.problem_fields(), vec!["session", "timepoint"], "{}", r.text);
    nurse
        .post_json(&format!("/api/patients/{}/questionnaire-requests", random_uuid()), &json!({"instrument": "gad7"}))
        .await
        .assert_status(404, "unknown patient");
}

async fn schedules_are_created_listed_due_and_ended(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "MB-0005", "Marchbank", "Ilse", "1969-11-30", "female").await;
    let url = format!("/api/patients/{pid}/schedules");
    assert_eq!(nurse.get(&url).await.json(), json!([]));

    let r = nurse.post_json(&url, &json!({"instrument": "gad7", "anchor": "calendar", "interval_days": 7})).await;
    r.assert_status(201, "calendar schedule");
    let cal = r.json();
    assert_eq!(cal["anchor"], "calendar");
    assert_eq!(cal["interval_days"], 7);
    assert_eq!(cal["start"], "2026-11-26", "start defaults to today");
    assert_eq!(cal["active"], true);
    assert_eq!(cal["created_by"], "nina.nurse");
    let r = nurse.post_json(&url, &json!({"instrument": "phq9", "anchor": "session", "timepoints": ["pre", "24h"]})).await;
    r.assert_status(201, "session schedule");
    let ses = r.json();
    assert_eq!(ses["timepoints"], json!(["pre", "24h"]));
    assert!(ses["interval_days"].is_null() && ses["start"].is_null());

    let list = nurse.get(&url).await;
    list.assert_status(200, "GET schedules");
    assert_eq!(list.json().as_array().unwrap().len(), 2);
    let v = nurse.get(&format!("/api/patients/{pid}/assessments")).await.json();
    let due = v["due"].as_array().unwrap();
    assert!(due.iter().any(|d| d["instrument"] == "gad7" && d["status"] == "due" && d["schedule_id"] == cal["id"]), "{due:?}");

    // Invalid schedules are named by field.
    for (body, fields) in [
        (json!({"instrument": "gad7", "anchor": "session"}), vec!["timepoints"]),
        (json!({"instrument": "gad7", "anchor": "session", "timepoints": ["3h"]}), vec!["timepoints"]),
        (json!({"instrument": "gad7", "anchor": "calendar", "interval_days": 0}), vec!["interval_days"]),
        (json!({"instrument": "gad7", "anchor": "calendar", "interval_days": "7", "start": "26/11/2026"}), vec!["start"]),
        (json!({"instrument": "nope", "anchor": "weekly"}), vec!["instrument", "anchor"]),
    ] {
        let r = nurse.post_json(&url, &body).await;
        r.assert_status(422, &format!("schedule {body}"));
        assert_eq!(r.problem_fields(), fields, "{body}: {}", r.text);
    }

    let cid = cal["id"].as_str().unwrap();
    nurse.post_empty(&format!("/api/schedules/{cid}/end")).await.assert_status(204, "end");
    nurse.post_empty(&format!("/api/schedules/{cid}/end")).await.assert_status(409, "end twice");
    for id in [random_uuid(), "nope".to_owned()] {
        nurse.post_empty(&format!("/api/schedules/{id}/end")).await.assert_status(404, "unknown schedule");
    }
    let list = nurse.get(&url).await.json();
    assert_eq!(list[0]["id"], ses["id"], "active first");
    let ended = list.as_array().unwrap().iter().find(|s| s["id"] == cal["id"]).unwrap();
    assert_eq!(ended["active"], false);
    assert!(ended["ended_at"].is_string());
    let v = nurse.get(&format!("/api/patients/{pid}/assessments")).await.json();
    assert!(v["due"].as_array().unwrap().iter().all(|d| d["schedule_id"] != cal["id"]), "an ended schedule asks for nothing");
    nurse.get(&format!("/api/patients/{}/schedules", random_uuid())).await.assert_status(404, "unknown patient");
}

async fn openapi_documents_every_outcome_route_and_each_needs_credentials(app: &TestApp) {
    let routes = ketacare_web::api::documented_routes();
    for (m, p) in OUTCOME_ROUTES {
        assert!(routes.iter().any(|(rm, rp)| rm == m && rp == p), "{m} {p} documented: {routes:?}");
    }
    let doc = app.anon().get("/api/openapi.json").await.json();
    for (m, p) in OUTCOME_ROUTES {
        let op = &doc["paths"][p][m.to_ascii_lowercase()];
        assert!(op.is_object(), "{m} {p} in the served document");
        let tags = op["tags"].as_array().unwrap();
        assert!(tags.iter().any(|t| t == "instruments" || t == "outcomes"), "{m} {p} tagged: {tags:?}");
    }
    let schemas = &doc["components"]["schemas"];
    for s in ["ScoreDto", "OutcomeDto", "InstrumentDto", "PatientOutcomesDto", "AlertDto", "SentQuestionnaireDto", "ScheduleRequest"] {
        assert!(schemas[s].is_object(), "schema {s} documented");
    }
    assert!(schemas["QuestionnaireRequestDto"]["properties"].get("link_path").is_none(), "listed requests carry no link");
    assert!(schemas["ScoreDto"]["properties"]["total"].to_string().contains("string"), "decimals documented as text");

    let anon = app.anon();
    let id = random_uuid();
    for (m, p) in OUTCOME_ROUTES {
        let url = p.replace("{id}", &id).replace("{key}", "gad7");
        let r = match m {
            "GET" => anon.get(&url).await,
            _ => anon.post_json(&url, &json!({"items": "1,1,1,1,1,1,1", "baseline": 1, "current": 1, "instrument": "gad7"})).await,
        };
        r.assert_status(401, &format!("{m} {url} anonymous"));
        assert_eq!(r.json()["error"], "unauthenticated");
    }
}

const GAD7_WORDING: &str = include_str!("../../../../docs/examples/gad7-wording.toml");

async fn licensed_wording_is_checked_loaded_shown_on_forms_and_withdrawn(app: &TestApp) {
    let director = app.login(Role::MedicalDirector).await;
    let nurse = app.login(Role::Nurse).await;
    let url = "/api/instruments/gad7/wording";
    let none = nurse.get(url).await;
    none.assert_status(200, "GET wording");
    assert_eq!(none.json()["loaded"], false);

    // Only the medical director loads wording.
    let r = nurse.post_json(url, &json!({"content": GAD7_WORDING, "reason": "public domain"})).await;
    r.assert_status(403, "nurse loads wording");

    // A file that does not fit is refused whole, naming every problem.
    let broken = GAD7_WORDING.replace("key = \"q7\"", "key = \"q8\"").replace("choice_labels = [\"Not at all\", ", "choice_labels = [");
    let r = director.post_json(url, &json!({"content": broken, "reason": ""})).await;
    r.assert_status(422, "broken wording");
    let fields = r.problem_fields();
    for f in ["items[6].key", "q7", "q1", "reason"] {
        assert!(fields.contains(&f.to_owned()), "{f} named: {fields:?}");
    }
    assert!(r.field_message("q1").contains("needs 4 answer labels"), "{}", r.field_message("q1"));
    assert!(
        r.field_message("items[6].key").contains("q1 to q7") || r.field_message("items[6].key").contains("q1, q2"),
        "{}",
        r.field_message("items[6].key")
    );
    let r = director.post_json(url, &json!({"content": "instrument = ", "reason": "licence 42"})).await;
    r.assert_status(422, "not TOML");
    assert!(r.field_message("wording").contains("line 1"), "{}", r.field_message("wording"));
    assert_eq!(nurse.get(url).await.json()["loaded"], false, "nothing half-loaded");

    let r =
        director.post_json(url, &json!({"content": GAD7_WORDING, "reason": "Public domain (PHQ screeners site); no licence needed"})).await;
    r.assert_status(200, "load wording");
    let w = r.json();
    assert_eq!((w["loaded"].as_bool(), w["in_use"].as_bool()), (Some(true), Some(true)));
    assert_eq!(w["items"].as_array().unwrap().len(), 7);
    assert_eq!(w["items"][6]["text"], "Feeling afraid, as if something awful might happen");
    assert_eq!(w["loaded_by"], "mira.director");
    assert!(w["instructions"].as_str().unwrap().contains("2 weeks"));

    // The patient's link shows the wording, instructions and the rights notice; scoring is unchanged.
    let pid = register(&nurse, "MB-0101", "Treloar", "Bryher", "1980-02-11", "female").await;
    let sent = nurse.post_json(&format!("/api/patients/{pid}/questionnaire-requests"), &json!({"instrument": "gad7"})).await.json();
    let link = sent["link_path"].as_str().unwrap().to_owned();
    let page = app.anon().get(&link).await;
    page.assert_status(200, "open link");
    assert!(page.text.contains("Feeling afraid, as if something awful might happen"), "licensed text on the patient page");
    assert!(page.text.contains("Over the last 2 weeks, how often have you been bothered"), "instructions");
    assert!(page.text.contains("No permission required to reproduce"), "rights notice");
    // The staff form shows it too.
    let form = nurse.get(&format!("/patients/{pid}/assessments/new?instrument=gad7")).await;
    assert!(form.text.contains("Feeling nervous, anxious, or on edge"), "staff form worded");
    // Other instruments keep their labels.
    let phq = nurse.get(&format!("/patients/{pid}/assessments/new?instrument=phq9")).await;
    assert!(!phq.text.contains("No permission required to reproduce"));

    // The rules in force are unaffected; the audit trail records the change.
    let d = nurse.get("/api/instruments/gad7").await.json();
    assert_eq!(d["rules"]["response"]["percent"], "50");
    let audit = director.get("/api/audit?user=mira.director&action=U").await;
    audit.assert_status(200, "audit search");
    let entries = audit.json();
    let e = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entity_id"] == "instrument.gad7.wording")
        .unwrap_or_else(|| panic!("audited: {entries}"));
    assert!(e["detail"].as_str().unwrap().contains("characters"), "the file is recorded by size, not copied: {e}");

    // Withdrawal needs a reason, then forms return to the labels; the history keeps who and why.
    director.post_json(&format!("{url}/withdraw"), &json!({"reason": ""})).await.assert_status(422, "withdraw without reason");
    let r = director.post_json(&format!("{url}/withdraw"), &json!({"reason": "licence ended"})).await;
    r.assert_status(200, "withdraw");
    assert_eq!(r.json()["loaded"], false);
    let page = app.anon().get(&link).await;
    assert!(!page.text.contains("No permission required to reproduce"), "labels again after withdrawal");
    director.post_json(&format!("{url}/withdraw"), &json!({"reason": "again"})).await.assert_status(422, "nothing to withdraw");
    nurse.get("/api/instruments/nope/wording").await.assert_status(404, "unknown instrument");
}
