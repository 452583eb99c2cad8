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
