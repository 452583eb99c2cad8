//! Dosing over the JSON API: the calculator against the drug library with its soft and hard
//! limits, every evaluation in the quality report, the protocol and drug libraries.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::json;

http_tests!(
    the_calculator_gives_the_worked_example_and_refuses_hard_breaches,
    bad_dose_input_names_the_field_and_the_accepted_form,
    every_evaluation_reaches_the_quality_report,
    protocols_and_the_drug_library_are_published,
    a_planned_dose_is_ordered_on_todays_weight_and_given_only_after_a_blind_independent_check,
    a_soft_limit_needs_a_reason_and_a_second_prescriber_and_a_hard_limit_is_refused,
    the_titration_review_recommends_from_the_response_and_the_prescriber_decides,
    a_drug_library_change_needs_two_people_and_stays_consistent,
    a_clinic_protocol_needs_the_medical_directors_approval,
);

async fn the_calculator_gives_the_worked_example_and_refuses_hard_breaches(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let body = json!({"route": "iv", "weight_kg": 72, "mg_per_kg": "0.5", "concentration_mg_per_ml": 10, "final_volume_ml": 100, "minutes": 40, "height_cm": 180, "sex": "male"});
    let r = nurse.post_json("/api/dose/calculate", &body).await;
    r.assert_status(200, "calculate");
    let v = r.json();
    for (k, want) in [
        ("dose_mg", "36"),
        ("drug_volume_ml", "3.6"),
        ("diluent_ml", "96.4"),
        ("final_concentration_mg_per_ml", "0.36"),
        ("rate_ml_per_h", "150"),
        ("rate_mg_per_h", "54"),
        ("weight_used_kg", "72"),
        ("ibw_kg", "75"),
        ("bmi", "22.2"),
    ] {
        assert_eq!(v[k], want, "{k}: {v}");
    }
    assert_eq!((v["refused"].as_bool(), v["needs_override"].as_bool()), (Some(false), Some(false)));
    assert!(v["steps"].as_array().unwrap().iter().any(|s| s == "Dose = 0.5 mg/kg × 72 kg = 36 mg"), "{}", v["steps"]);

    let soft = nurse.post_json("/api/dose/calculate", &json!({"route": "iv", "weight_kg": 72, "mg_per_kg": 0.8, "concentration_mg_per_ml": 10, "final_volume_ml": 100, "minutes": 40})).await.json();
    assert_eq!(soft["needs_override"], true);
    assert_eq!(soft["breaches"][0]["message"], "Dose 0.8 mg/kg is above the soft maximum of 0.75 mg/kg");
    let hard = nurse
        .post_json(
            "/api/dose/calculate",
            &json!({"route": "iv", "weight_kg": 72, "mg_per_kg": 5, "concentration_mg_per_ml": 10, "final_volume_ml": 100, "minutes": 40}),
        )
        .await
        .json();
    assert_eq!(hard["refused"], true, "ten-fold dose");
    assert_eq!(hard["breaches"][0]["level"], "hard");
    let sc = nurse
        .post_json("/api/dose/calculate", &json!({"route": "sc", "weight_kg": "67.3", "mg_per_kg": "0.25", "concentration_mg_per_ml": 50}))
        .await
        .json();
    assert_eq!(
        (sc["dose_mg"].as_str(), sc["drug_volume_ml"].as_str(), sc["rate_ml_per_h"].is_null()),
        (Some("16.5"), Some("0.33"), true),
        "rounded down to the syringe; no rate"
    );
}

async fn bad_dose_input_names_the_field_and_the_accepted_form(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let r = nurse.post_json("/api/dose/calculate", &json!({"route": "iv", "weight_kg": 72, "mg_per_kg": 0.5, "concentration_mg_per_ml": 25, "final_volume_ml": 100, "minutes": 40})).await;
    r.assert_status(422, "concentration not on the shelf");
    assert!(r.field_message("concentration_mg_per_ml").contains("choose 10, 50, 100 mg/mL"), "{}", r.text);
    let r = nurse
        .post_json(
            "/api/dose/calculate",
            &json!({"route": "iv", "weight_kg": 480, "mg_per_kg": 0.5, "concentration_mg_per_ml": 10, "minutes": 40}),
        )
        .await;
    r.assert_status(422, "pounds");
    assert!(r.field_message("weight_kg").contains("pounds"), "{}", r.text);
    let r = nurse.post_json("/api/dose/calculate", &json!({"route": "oral", "weight_kg": 70})).await;
    r.assert_status(422, "route");
    assert!(r.field_message("route").contains("iv, sc, im or in"));
    let r = nurse
        .post_json(
            "/api/dose/calculate",
            &json!({"route": "sc", "weight_kg": 70, "mg_per_kg": 0.5, "concentration_mg_per_ml": 50, "minutes": 40}),
        )
        .await;
    r.assert_status(422, "SC with minutes");
    assert!(r.field_message("minutes").contains("no infusion time"));
    let r = nurse.post_json("/api/dose/calculate", &json!({"route": "iv", "weight_kg": 70, "mg_kg": 0.5})).await;
    r.assert_status(422, "unknown key");
    app.login(Role::Researcher).await.post_json("/api/dose/calculate", &json!({"route": "iv"})).await.assert_status(403, "researcher");
}

async fn every_evaluation_reaches_the_quality_report(app: &TestApp) {
    let prescriber = app.login(Role::Prescriber).await;
    for mgkg in ["0.5", "0.8", "5"] {
        prescriber.post_json("/api/dose/calculate", &json!({"route": "iv", "weight_kg": 72, "mg_per_kg": mgkg, "concentration_mg_per_ml": 10, "final_volume_ml": 100, "minutes": 40})).await.assert_status(200, mgkg);
    }
    prescriber.get("/api/dose/quality").await.assert_status(403, "prescribers do not read the report");
    let director = app.login(Role::MedicalDirector).await;
    let r = director.get("/api/dose/quality").await;
    r.assert_status(200, "report");
    let v = r.json();
    assert_eq!(
        (v["all"]["total"].as_u64(), v["all"]["accepted"].as_u64(), v["all"]["soft_breach"].as_u64(), v["all"]["rejected"].as_u64()),
        (Some(3), Some(1), Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["by_route"][0]["key"], "ketamine iv");
    assert_eq!(v["by_user"][0]["key"], "pia.prescriber");
    assert_eq!(v["all"]["override_rate_percent"], "0");
    director.get("/api/dose/quality?from=yesterday").await.assert_status(422, "bad date");
}

async fn protocols_and_the_drug_library_are_published(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let p = nurse.get("/api/protocols").await.json();
    let asc = p.as_array().unwrap().iter().find(|x| x["key"] == "sc_ascending").unwrap();
    let doses: Vec<&str> = asc["steps"].as_array().unwrap().iter().map(|s| s["mg_per_kg"].as_str().unwrap()).collect();
    assert_eq!(doses, vec!["0.25", "0.5", "1"]);
    assert!(asc["source"].as_str().unwrap().contains("Glue"));
    let lib = nurse.get("/api/drug-library").await.json();
    assert_eq!(lib["concentrations_mg_per_ml"], json!(["10", "50", "100"]));
    let iv = lib["routes"].as_array().unwrap().iter().find(|r| r["route"] == "iv").unwrap();
    assert_eq!((iv["mg_per_kg"]["soft_max"].as_str(), iv["mg_per_kg"]["hard_max"].as_str()), (Some("0.75"), Some("1")));
    assert!(iv["mg_per_kg"]["source"].as_str().unwrap().contains("Andrade"));
}

async fn weigh(s: &Session, pid: &str, kg: &str) {
    s.post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": kg})).await.assert_status(201, "weight");
}

async fn a_planned_dose_is_ordered_on_todays_weight_and_given_only_after_a_blind_independent_check(app: &TestApp) {
    let prescriber = app.login(Role::Prescriber).await;
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&prescriber, "DO-0001", "Hale", "Ruth", "1980-01-01", "female").await;
    nurse
        .post_json(&format!("/api/patients/{pid}/plans"), &json!({"protocol": "sc_ascending", "start": "2026-11-26"}))
        .await
        .assert_status(403, "nurses do not plan");
    let r = prescriber.post_json(&format!("/api/patients/{pid}/plans"), &json!({"protocol": "sc_ascending", "start": "2026-11-26"})).await;
    r.assert_status(201, "plan");
    let plan = r.json();
    let dates: Vec<&str> = plan["sessions"].as_array().unwrap().iter().map(|s| s["date"].as_str().unwrap()).collect();
    assert_eq!(dates, vec!["2026-11-26", "2026-12-03", "2026-12-10"]);
    let plan_id = plan["record_id"].as_str().unwrap().to_owned();
    prescriber
        .post_json(&format!("/api/patients/{pid}/plans"), &json!({"protocol": "sc_ascending", "start": "2020-01-01"}))
        .await
        .assert_status(422, "past start");

    let order = json!({"route": "sc", "mg_per_kg": "0.25", "concentration_mg_per_ml": 50, "plan": plan_id, "step": "dose1"});
    let r = prescriber.post_json(&format!("/api/patients/{pid}/orders"), &order).await;
    r.assert_status(422, "no weight");
    assert!(r.field_message("weight_kg").contains("weigh the patient today"), "{}", r.text);
    weigh(&nurse, &pid, "67.3").await;
    let r = prescriber.post_json(&format!("/api/patients/{pid}/orders"), &order).await;
    r.assert_status(201, "order");
    let o = r.json();
    assert_eq!(
        (o["status"].as_str(), o["dose_mg"].as_str(), o["drug_volume_ml"].as_str()),
        (Some("awaiting_check"), Some("16.5"), Some("0.33"))
    );
    assert_eq!(o["weight_measured_by"], "nina.nurse");
    let oid = o["record_id"].as_str().unwrap().to_owned();

    // The nurse works blind: the order's values are hidden until the check.
    let v = nurse.get(&format!("/api/patients/{pid}/dosing")).await.json();
    let seen = &v["orders"][0];
    assert_eq!(seen["hidden_until_check"], true);
    assert!(seen["dose_mg"].is_null() && seen["drug_volume_ml"].is_null() && seen["concentration_mg_per_ml"].is_null(), "{seen}");
    assert_eq!(prescriber.get(&format!("/api/patients/{pid}/dosing")).await.json()["orders"][0]["dose_mg"], "16.5");

    let url = format!("/api/orders/{oid}/double-check");
    let r =
        prescriber.post_json(&url, &json!({"base_version": 1, "weight_kg": 67.3, "concentration_mg_per_ml": 50, "dose_mg": 16.5})).await;
    r.assert_status(422, "the prescriber checks their own order");
    assert!(r.field_message("checker").contains("someone other than the prescriber"));
    let r = nurse.post_json(&url, &json!({"base_version": 1, "weight_kg": 67.3, "concentration_mg_per_ml": 5, "dose_mg": 16.8})).await;
    r.assert_status(422, "a ten-fold vial mix-up");
    assert_eq!(r.problem_fields(), vec!["concentration_mg_per_ml".to_owned()]);
    assert!(!r.text.contains("16.5") && !r.text.contains("\"50\""), "the order's values are not revealed: {}", r.text);
    // A mismatch blocks the order for good: no second try that could be adjusted until it passes.
    nurse
        .post_json(&url, &json!({"base_version": 2, "weight_kg": 67.3, "concentration_mg_per_ml": 50, "dose_mg": 16.8}))
        .await
        .assert_status(409, "blocked");
    let v = nurse.get(&format!("/api/patients/{pid}/dosing")).await.json();
    assert_eq!(v["orders"][0]["status"], "blocked");
    assert_eq!(v["given_7d_mg"], "0", "a blocked order is not counted");
    // The prescriber orders again; the chart and the record views do not show the dose either.
    let o = prescriber.post_json(&format!("/api/patients/{pid}/orders"), &order).await.json();
    let oid = o["record_id"].as_str().unwrap().to_owned();
    let url = format!("/api/orders/{oid}/double-check");
    for path in [
        format!("/api/patients/{pid}"),
        format!("/api/records/{oid}"),
        format!("/api/records/{oid}/history"),
        format!("/api/patients/{pid}/dosing"),
    ] {
        let text = nurse.get(&path).await.text;
        assert!(!text.contains("16.5") && !text.contains("0.33"), "{path} shows the dose to the checker: {text}");
    }
    nurse
        .post_json(&format!("/api/records/{oid}/void"), &json!({"base_version": 1, "reason": "not needed"}))
        .await
        .assert_status(403, "nurses do not cancel orders");
    let r = nurse.post_json(&url, &json!({"base_version": 1, "weight_kg": 148.4, "concentration_mg_per_ml": 50, "dose_mg": 37.1})).await;
    r.assert_status(422, "pounds for kilograms");
    assert_eq!(r.problem_fields(), vec!["weight_kg".to_owned(), "dose_mg".to_owned()]);
    let o = prescriber.post_json(&format!("/api/patients/{pid}/orders"), &order).await.json();
    let oid = o["record_id"].as_str().unwrap().to_owned();
    let url = format!("/api/orders/{oid}/double-check");
    let r =
        nurse.post_json(&url, &json!({"base_version": 1, "weight_kg": "67.3", "concentration_mg_per_ml": "50", "dose_mg": "16.8"})).await;
    r.assert_status(200, "matching double check");
    let o = r.json();
    assert_eq!(
        (o["status"].as_str(), o["checked_by"].as_str(), o["dose_mg"].as_str()),
        (Some("checked"), Some("nina.nurse"), Some("16.5"))
    );
    nurse
        .post_json(&url, &json!({"base_version": 2, "weight_kg": 67.3, "concentration_mg_per_ml": 50, "dose_mg": 16.5}))
        .await
        .assert_status(409, "checked once");
    let v = nurse.get(&format!("/api/patients/{pid}/dosing")).await.json();
    assert_eq!(v["given_7d_mg"], "16.5");
    let h = nurse.get(&format!("/api/records/{oid}/history")).await.json();
    assert_eq!(h.as_array().unwrap().len(), 2, "ordered, then checked: each a version");
    let r = prescriber.post_json(&format!("/api/records/{oid}/void"), &json!({"base_version": 2, "reason": "entered in error"})).await;
    r.assert_status(422, "a given dose is never voided");

    // A weight from another day is not used, and an absolute contraindication stops any dose.
    app.advance_minutes(60 * 24 * 2);
    let (prescriber, nurse) = (app.login(Role::Prescriber).await, app.login(Role::Nurse).await);
    let r = prescriber
        .post_json(&format!("/api/patients/{pid}/orders"), &json!({"route": "sc", "mg_per_kg": "0.5", "concentration_mg_per_ml": 50}))
        .await;
    r.assert_status(422, "stale weight");
    assert!(r.field_message("weight_kg").contains("was measured on 2026-11-26 by nina.nurse"), "{}", r.text);
    weigh(&nurse, &pid, "67.1").await;
    prescriber
        .post_json(&format!("/api/patients/{pid}/records"), &json!({"kind": "condition", "fields": {"condition": "psychosis"}}))
        .await
        .assert_status(201, "condition");
    let r = prescriber
        .post_json(&format!("/api/patients/{pid}/orders"), &json!({"route": "sc", "mg_per_kg": "0.5", "concentration_mg_per_ml": 50}))
        .await;
    r.assert_status(422, "absolute contraindication");
    assert!(r.field_message("route").contains("absolute contraindication"), "{}", r.text);
}

async fn a_soft_limit_needs_a_reason_and_a_second_prescriber_and_a_hard_limit_is_refused(app: &TestApp) {
    let prescriber = app.login(Role::Prescriber).await;
    let nurse = app.login(Role::Nurse).await;
    let director = app.login(Role::MedicalDirector).await;
    let pid = register(&prescriber, "DO-0002", "Marsh", "Otto", "1975-05-05", "male").await;
    weigh(&nurse, &pid, "72").await;
    let url = format!("/api/patients/{pid}/orders");
    let iv = |mgkg: &str| json!({"route": "iv", "mg_per_kg": mgkg, "concentration_mg_per_ml": 10, "final_volume_ml": 100, "minutes": 40});
    let r = prescriber.post_json(&url, &iv("5")).await;
    r.assert_status(422, "ten-fold");
    assert!(
        r.field_message("mg_per_kg").contains("Hard limit, refused for everyone: Dose 5 mg/kg is above the hard maximum of 1 mg/kg"),
        "{}",
        r.text
    );
    let r = prescriber.post_json(&url, &iv("0.8")).await;
    r.assert_status(422, "soft without reason");
    assert!(
        r.field_message("override_reason").contains("Soft limit: Dose 0.8 mg/kg is above the soft maximum of 0.75 mg/kg"),
        "{}",
        r.text
    );
    let mut body = iv("0.8");
    body["override_reason"] = json!("Partial response at 0.75 mg/kg; tolerated well; agreed at the team meeting");
    let r = prescriber.post_json(&url, &body).await;
    r.assert_status(201, "soft with reason");
    let o = r.json();
    assert_eq!(o["status"], "awaiting_override");
    let oid = o["record_id"].as_str().unwrap().to_owned();
    let check = json!({"base_version": 1, "weight_kg": 72, "concentration_mg_per_ml": 10, "dose_mg": 57.6});
    nurse
        .post_json(&format!("/api/orders/{oid}/double-check"), &check)
        .await
        .assert_status(409, "no check before the override is approved");
    let approve = format!("/api/orders/{oid}/approve-override");
    let r = prescriber.post_json(&approve, &json!({"base_version": 1})).await;
    r.assert_status(422, "the same prescriber");
    assert!(r.field_message("approver").contains("someone other than the prescriber"));
    nurse.post_json(&approve, &json!({"base_version": 1})).await.assert_status(403, "nurses do not approve overrides");
    let r = director.post_json(&approve, &json!({"base_version": 1})).await;
    r.assert_status(200, "second clinician approves");
    assert_eq!((r.json()["status"].as_str(), r.json()["override_approved_by"].as_str()), (Some("awaiting_check"), Some("mira.director")));
    let mut check = check;
    check["base_version"] = json!(2);
    let r = director.post_json(&format!("/api/orders/{oid}/double-check"), &check).await;
    r.assert_status(422, "the approver saw the order");
    assert!(r.field_message("checker").contains("approved its override"));
    nurse.post_json(&format!("/api/orders/{oid}/double-check"), &check).await.assert_status(200, "checked");

    let q = director.get("/api/dose/quality").await.json();
    let user = q["by_user"].as_array().unwrap().iter().find(|u| u["key"] == "pia.prescriber").unwrap();
    assert!(user["rejected"].as_u64().unwrap() >= 1 && user["soft_breach"].as_u64().unwrap() >= 2, "{q}");
    assert_eq!(q["all"]["overridden"], 1);
}

async fn the_titration_review_recommends_from_the_response_and_the_prescriber_decides(app: &TestApp) {
    let prescriber = app.login(Role::Prescriber).await;
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&prescriber, "DO-0003", "Quist", "Anya", "1982-02-02", "female").await;
    nurse.get(&format!("/api/patients/{pid}/titration")).await.assert_status(404, "no plan yet");
    let url = format!("/api/patients/{pid}/assessments");
    // Baseline HAM-A 24 the week before.
    prescriber
        .post_json(&url, &json!({"instrument": "hama", "items": "2,2,2,2,2,2,2,2,2,2,1,1,1,1", "taken_at": "2026-11-19T09:00"}))
        .await
        .assert_status(201, "baseline");
    let plan = prescriber
        .post_json(&format!("/api/patients/{pid}/plans"), &json!({"protocol": "sc_ascending", "start": "2026-11-26"}))
        .await
        .json();
    let t = nurse.get(&format!("/api/patients/{pid}/titration")).await.json();
    assert_eq!((t["action"].as_str(), t["next_mg_per_kg"].as_str()), (Some("start"), Some("0.25")));
    weigh(&nurse, &pid, "70").await;
    let o = prescriber
        .post_json(
            &format!("/api/patients/{pid}/orders"),
            &json!({"route": "sc", "mg_per_kg": "0.25", "concentration_mg_per_ml": 50, "plan": plan["record_id"], "step": "dose1"}),
        )
        .await
        .json();
    nurse
        .post_json(
            &format!("/api/orders/{}/double-check", o["record_id"].as_str().unwrap()),
            &json!({"base_version": 1, "weight_kg": 70, "concentration_mg_per_ml": 50, "dose_mg": 17.5}),
        )
        .await
        .assert_status(200, "checked");
    let session = prescriber
        .post_json(&format!("/api/patients/{pid}/records"), &json!({"kind": "encounter", "fields": {"encounter_kind": "treatment", "start": "2026-11-26T08:00", "reason_for_visit": "SC ketamine 0.25 mg/kg"}}))
        .await
        .json();
    // HAM-A 19 an hour after the dose: 20.8 % less, no response; peak BP 150/90.
    prescriber
        .post_json(&url, &json!({"instrument": "hama", "items": "2,2,2,2,2,1,1,1,1,1,1,1,1,1", "taken_at": "2026-11-26T09:00", "session": session["record_id"], "timepoint": "1h"}))
        .await
        .assert_status(201, "1 h rating");
    nurse
        .post_json(&format!("/api/patients/{pid}/vitals"), &json!({"systolic": 150, "diastolic": 90, "measured_at": "2026-11-26T08:40"}))
        .await
        .assert_status(201, "vitals");
    let t = nurse.get(&format!("/api/patients/{pid}/titration")).await.json();
    assert_eq!((t["action"].as_str(), t["next_mg_per_kg"].as_str()), (Some("escalate"), Some("0.5")), "{t}");
    assert!(
        t["data"][0].as_str().unwrap().contains("HAM-A reduced 20.8 % at 1h") && t["data"][0].as_str().unwrap().contains("peak BP 150/90"),
        "{t}"
    );
    assert!(t["source"].as_str().unwrap().contains("Glue"));
    // The dose given, with its response beside its predicted exposure (17.5 mg SC at 70 kg:
    // a quarter of the 1 mg/kg curve's peak of about 620 ng/mL).
    let given = &t["sessions"][0];
    assert_eq!(
        (given["route"].as_str(), given["dose_mg"].as_f64(), given["response_percent"].as_str()),
        (Some("sc"), Some(17.5), Some("20.8")),
        "{t}"
    );
    let cmax = given["predicted_cmax_ng_per_ml"].as_f64().unwrap();
    assert!((140.0..170.0).contains(&cmax), "{cmax}");
    let decide = format!("/api/patients/{pid}/titration");
    nurse.post_json(&decide, &json!({"base_version": 1, "accept": true})).await.assert_status(403, "nurses do not decide");
    let r = prescriber.post_json(&decide, &json!({"base_version": 1, "accept": false, "reason": ""})).await;
    r.assert_status(422, "otherwise without a reason");
    assert!(r.field_message("reason").contains("say why you choose otherwise"));
    let r = prescriber.post_json(&decide, &json!({"base_version": 1, "accept": true})).await;
    r.assert_status(200, "accept");
    assert!(r.json()["note"].as_str().unwrap().starts_with("titration review: accepted \"Escalate to the next dose\""), "{}", r.text);
    prescriber.post_json(&decide, &json!({"base_version": 1, "accept": true})).await.assert_status(409, "stale plan version");
    let h = prescriber.get(&format!("/api/records/{}/history", plan["record_id"].as_str().unwrap())).await.json();
    assert_eq!(h.as_array().unwrap().len(), 2, "the decision is a version of the plan");
}

async fn a_drug_library_change_needs_two_people_and_stays_consistent(app: &TestApp) {
    let director = app.login(Role::MedicalDirector).await;
    let prescriber = app.login(Role::Prescriber).await;
    let calc =
        json!({"route": "iv", "weight_kg": 72, "mg_per_kg": "0.8", "concentration_mg_per_ml": 10, "final_volume_ml": 100, "minutes": 60});
    assert_eq!(prescriber.post_json("/api/dose/calculate", &calc).await.json()["needs_override"], true);
    prescriber
        .post_json("/api/drug-library/proposals", &json!({"key": "iv.soft_max_mg_per_kg", "value": "0.8", "reason": "local protocol"}))
        .await
        .assert_status(403, "prescribers do not propose");
    let r = director
        .post_json("/api/drug-library/proposals", &json!({"key": "iv.soft_max_mg_per_kg", "value": "1.2", "reason": "too high"}))
        .await;
    r.assert_status(422, "soft above hard");
    assert!(r.field_message("value").contains("soft maximum would be above the hard maximum"), "{}", r.text);
    let r = director.post_json("/api/drug-library/proposals", &json!({"key": "iv.nonsense", "value": "1", "reason": "x y z"})).await;
    r.assert_status(422, "unknown key");
    assert!(r.field_message("key").contains("soft_max_mg_per_kg"));
    let r = director
        .post_json(
            "/api/drug-library/proposals",
            &json!({"key": "iv.soft_max_mg_per_kg", "value": 0.8, "reason": "Our IV protocol titrates to 0.8 mg/kg"}),
        )
        .await;
    r.assert_status(201, "propose");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["state"], "open");
    assert_eq!(
        prescriber.post_json("/api/dose/calculate", &calc).await.json()["needs_override"],
        true,
        "not in force before the second person"
    );
    let url = format!("/api/drug-library/proposals/{id}/decide");
    let r = director.post_json(&url, &json!({"approve": true})).await;
    r.assert_status(422, "self-approval");
    assert!(r.field_message("decider").contains("someone other than the proposer"));
    prescriber.post_json(&url, &json!({"approve": false})).await.assert_status(422, "rejection without a reason");
    let r = prescriber.post_json(&url, &json!({"approve": true})).await;
    r.assert_status(200, "approve");
    assert_eq!((r.json()["state"].as_str(), r.json()["decided_by"].as_str()), (Some("approved"), Some("pia.prescriber")));
    prescriber.post_json(&url, &json!({"approve": true})).await.assert_status(409, "decided once");
    let out = prescriber.post_json("/api/dose/calculate", &calc).await.json();
    assert_eq!(out["needs_override"], false, "in force: {out}");
    let lib = prescriber.get("/api/drug-library").await.json();
    let iv = lib["routes"].as_array().unwrap().iter().find(|r| r["route"] == "iv").unwrap();
    assert_eq!(iv["mg_per_kg"]["soft_max"], "0.8");
    assert_eq!(lib["proposals"][0]["state"], "approved");
    let audit = director.get("/api/audit?action=U").await.json();
    assert!(audit.as_array().unwrap().iter().any(|e| e["entity_type"] == "PolicyProposal"), "audited");
}

const CLINIC_PROTOCOL: &str = r#"[[protocol]]
key = "sc_slow"
name = "SC slow ascending (clinic)"
route = "sc"
indication = "Frail adults"
source = "Local guideline 2026-04, adapted from Glue 2017 (doi:10.1177/0269881117705089)"
steps = [
  { key = "d1", label = "Dose 1", day = 0, mg_per_kg = "0.2", assessments = ["hama@1h"], move_on = "If tolerated" },
  { key = "d2", label = "Dose 2", day = 14, mg_per_kg = "0.4", assessments = ["hama@1h"], move_on = "Review" },
]
"#;

async fn a_clinic_protocol_needs_the_medical_directors_approval(app: &TestApp) {
    let prescriber = app.login(Role::Prescriber).await;
    let director = app.login(Role::MedicalDirector).await;
    let bad = CLINIC_PROTOCOL.replace("hama@1h", "hama@3h");
    let r = prescriber.post_json("/api/protocols/proposals", &json!({"content": bad, "reason": "for frail patients"})).await;
    r.assert_status(422, "unknown time point");
    assert!(r.field_message("content").contains("instrument@timepoint"), "{}", r.text);
    let r = prescriber.post_json("/api/protocols/proposals", &json!({"content": "not toml [", "reason": "x y z"})).await;
    r.assert_status(422, "not TOML");
    let r = prescriber
        .post_json("/api/protocols/proposals", &json!({"content": CLINIC_PROTOCOL, "reason": "For frail patients, slower escalation"}))
        .await;
    r.assert_status(201, "propose");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let pid = register(&prescriber, "DO-0004", "Frey", "Ola", "1950-03-03", "female").await;
    let plan = json!({"protocol": "sc_slow", "start": "2026-11-26"});
    prescriber.post_json(&format!("/api/patients/{pid}/plans"), &plan).await.assert_status(422, "not in force before approval");
    prescriber
        .post_json(&format!("/api/protocols/proposals/{id}/decide"), &json!({"approve": true}))
        .await
        .assert_status(403, "only the medical director approves protocols");
    let r = director.post_json(&format!("/api/protocols/proposals/{id}/decide"), &json!({"approve": true})).await;
    r.assert_status(200, "approve");
    let list = prescriber.get("/api/protocols").await.json();
    let p = list.as_array().unwrap().iter().find(|p| p["key"] == "sc_slow").expect("in force");
    assert!(p["source"].as_str().unwrap().contains("approved by mira.director"));
    let r = prescriber.post_json(&format!("/api/patients/{pid}/plans"), &plan).await;
    r.assert_status(201, "planned");
    assert_eq!(r.json()["sessions"].as_array().unwrap().len(), 2);
}
