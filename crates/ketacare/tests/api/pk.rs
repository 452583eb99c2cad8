//! The regimen simulator over the JSON API: a curve with its summary, provenance and warnings;
//! comparisons; a patient's simulation from the chart; field-named errors; who may use it.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::json;

http_tests!(
    the_simulator_predicts_the_infusion_curve_with_its_provenance,
    bad_regimens_name_the_field_and_the_accepted_form,
    regimens_compare_side_by_side,
    a_patients_simulation_takes_weight_age_and_medications_from_the_chart,
    researchers_may_simulate_but_not_open_a_patient,
);

async fn the_simulator_predicts_the_infusion_curve_with_its_provenance(app: &TestApp) {
    let s = app.login(Role::Prescriber).await;
    let body = json!({"weight_kg": 70, "regimen": {"events": [{"kind": "infusion", "start_min": 0, "duration_min": 40, "dose_mg": 35}]}, "c_at": [40, 120]});
    let r = s.post_json("/api/pk/simulate", &body).await;
    r.assert_status(200, "simulate");
    let v = r.json();
    let sum = &v["summary"];
    assert!((sum["cmax_ng_per_ml"].as_f64().unwrap() - 240.33).abs() < 0.01, "{sum}");
    assert!((sum["tmax_min"].as_f64().unwrap() - 40.0).abs() < 1e-6);
    assert!((sum["auc_0_inf_ng_h_per_ml"].as_f64().unwrap() - 301.93).abs() < 0.01);
    assert!((sum["c_at"][1]["cp_ng_per_ml"].as_f64().unwrap() - 35.83).abs() < 0.01);
    assert!(sum["minutes_above"].as_array().unwrap().iter().any(|m| m["threshold_ng_per_ml"] == 100.0));
    assert_eq!(v["series"]["time_min"].as_array().unwrap().len(), 361);
    assert_eq!(v["series"]["cp_ng_per_ml"].as_array().unwrap().len(), 361);
    assert_eq!((v["model"]["id"].as_str(), v["model"]["evidence"].as_str()), (Some("domino"), Some("code")));
    assert!((v["parameters"]["v1_l"].as_f64().unwrap() - 4.41).abs() < 1e-12);
    assert!(v["band"].is_null() && v["band_absent_reason"].as_str().unwrap().contains("no between-subject variability"));
    assert!(v["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "effect_site_illustrative"));
    assert!(v["note"].as_str().unwrap().contains("not targets"));
    // The same with the closed-form engine.
    let mut cf = body.clone();
    cf["engine"] = json!("closed-form");
    let w = s.post_json("/api/pk/simulate", &cf).await.json();
    assert_eq!(w["engine"], "closed-form");
    let (a, b) = (v["series"]["cp_ng_per_ml"][200].as_f64().unwrap(), w["series"]["cp_ng_per_ml"][200].as_f64().unwrap());
    assert!((a - b).abs() <= 1e-9 * a);
    // Models and routes are published with their evidence.
    let m = s.get("/api/pk/models").await.json();
    assert_eq!(m["default_model"], "domino");
    assert!(m["routes"].as_array().unwrap().iter().any(|r| r["route"] == "sc" && r["evidence"] == "assumed"));
}

async fn bad_regimens_name_the_field_and_the_accepted_form(app: &TestApp) {
    let s = app.login(Role::Nurse).await;
    let cases = [
        (
            json!({"weight_kg": 70, "regimen": {"events": [{"kind": "bolus", "route": "oral", "dose_mg": 70}]}}),
            "events[0].route",
            "iv, sc, im",
        ),
        (
            json!({"weight_kg": 70, "regimen": {"events": [{"kind": "bolus", "route": "sc", "dose_mg": "70"}]}}),
            "events[0].dose_mg",
            "JSON number",
        ),
        (json!({"weight_kg": 70, "regimen": {"events": [{"kind": "bolus", "route": "sc", "dose": 70}]}}), "events[0].dose", "accepted"),
        (
            json!({"weight_kg": 70, "regimen": {"events": [{"kind": "bolus", "route": "sc", "dose_mg": 70, "f": 93}]}}),
            "events[0].f",
            "0.93, not 93",
        ),
        (
            json!({"weight_kg": 70, "regimen": {"events": [{"kind": "infusion", "duration_min": 0, "dose_mg": 35}]}}),
            "events[0].duration_min",
            "infusion time",
        ),
        (
            json!({"weight_kg": 154, "regimen": {"events": [{"kind": "bolus", "route": "iv", "dose_mg": 10000000}]}}),
            "events[0].dose_mg",
            "mg of ketamine base",
        ),
        (json!({"weight_kg": 700, "regimen": {"events": [{"kind": "bolus", "route": "iv", "dose_mg": 10}]}}), "weight_kg", "pounds"),
        (json!({"weight_kg": 70, "regimen": {"events": []}}), "events", "at least one"),
        (
            json!({"weight_kg": 70, "regimen": {"events": [{"kind": "bolus", "route": "iv", "dose_mg": 10}]}, "step": 0.0001, "to": 100000}),
            "step",
            "more than",
        ),
        (
            json!({"weight_kg": 70, "model": "propofol", "regimen": {"events": [{"kind": "bolus", "route": "iv", "dose_mg": 10}]}}),
            "model",
            "domino",
        ),
    ];
    for (body, field, hint) in cases {
        let r = s.post_json("/api/pk/simulate", &body).await;
        r.assert_status(422, field);
        let msg = r.field_message(field);
        assert!(msg.contains(hint), "{field}: {msg} ({})", r.text);
    }
}

async fn regimens_compare_side_by_side(app: &TestApp) {
    let s = app.login(Role::Prescriber).await;
    let body = json!({"weight_kg": 70, "regimens": [
        {"label": "IV 0.5 mg/kg over 40 min", "regimen": {"events": [{"kind": "infusion", "duration_min": 40, "dose_mg": 35}]}},
        {"label": "SC 0.5 mg/kg", "regimen": {"events": [{"kind": "bolus", "route": "sc", "dose_mg": 35}]}},
        {"label": "SC 1 mg/kg", "regimen": {"events": [{"kind": "bolus", "route": "sc", "dose_mg": 70}]}}
    ]});
    let r = s.post_json("/api/pk/compare", &body).await;
    r.assert_status(200, "compare");
    let v = r.json();
    let cmax: Vec<f64> =
        v["curves"].as_array().unwrap().iter().map(|c| c["simulation"]["summary"]["cmax_ng_per_ml"].as_f64().unwrap()).collect();
    assert!(cmax[2] > cmax[0] && (cmax[2] / cmax[1] - 2.0).abs() < 1e-9, "{cmax:?}");
    assert!((v["auc_ratio_to_first"][1].as_f64().unwrap() - 0.93).abs() < 1e-9, "SC AUC = F x IV AUC");
    let sc = &v["curves"][1]["simulation"];
    assert!(sc["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "assumed_route_parameters"));
    assert!(sc["band"]["p95_ng_per_ml"].as_array().unwrap().len() == 361);
    let bad =
        json!({"weight_kg": 70, "regimens": [{"label": "x", "regimen": {"events": [{"kind": "bolus", "route": "sc", "dose_mg": -1}]}}]});
    let r = s.post_json("/api/pk/compare", &bad).await;
    r.assert_status(422, "bad regimen");
    assert!(r.field_message("regimens[0].events[0].dose_mg").contains("above 0"), "{}", r.text);
}

async fn a_patients_simulation_takes_weight_age_and_medications_from_the_chart(app: &TestApp) {
    let s = app.login(Role::Prescriber).await;
    let pid = register(&s, "PK-1", "Marsh", "Ada", "1980-05-01", "female").await;
    let body = json!({"regimen": {"events": [{"kind": "bolus", "route": "sc", "dose_mg": 70}]}});
    let r = s.post_json(&format!("/api/patients/{pid}/pk/simulate"), &body).await;
    r.assert_status(422, "no weight yet");
    assert!(r.field_message("weight_kg").contains("no weight is recorded"));
    s.post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": 80})).await.assert_status(201, "weight");
    s.post_json(
        &format!("/api/patients/{pid}/records"),
        &json!({"kind": "medication", "fields": {"name": "Clonazepam", "dose": "0.5 mg at night"}}),
    )
    .await
    .assert_status(201, "medication");
    let v = s.post_json(&format!("/api/patients/{pid}/pk/simulate"), &body).await.json();
    assert!((v["parameters"]["v1_l"].as_f64().unwrap() - 0.063 * 80.0).abs() < 1e-12, "weight from the chart: {}", v["parameters"]);
    let w = v["warnings"].as_array().unwrap();
    assert!(w.iter().any(|w| w["code"] == "interacting_medication" && w["message"].as_str().unwrap().contains("Clonazepam")), "{w:?}");
    // The read of the chart is audited.
    let user = app.user(Role::Prescriber).username.clone();
    let r = app.login(Role::MedicalDirector).await.get(&format!("/api/audit?patient={pid}&user={user}&action=R")).await;
    r.assert_status(200, "audit");
    assert!(r.text.matches("\"R\"").count() >= 2, "each simulation read the chart: {}", r.text);
}

async fn researchers_may_simulate_but_not_open_a_patient(app: &TestApp) {
    let s = app.login(Role::Prescriber).await;
    let pid = register(&s, "PK-2", "Reed", "Jo", "1975-01-01", "male").await;
    let r = app.login(Role::Researcher).await;
    let body = json!({"weight_kg": 70, "regimen": {"events": [{"kind": "bolus", "route": "im", "dose_mg": 35}]}});
    r.post_json("/api/pk/simulate", &body).await.assert_status(200, "no patient data");
    let code = r.post_json(&format!("/api/patients/{pid}/pk/simulate"), &body).await.status;
    assert!(code == 403 || code == 404, "{code}");
    app.anon().post_json("/api/pk/simulate", &body).await.assert_status(401, "anonymous");
}
