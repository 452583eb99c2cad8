//! The checked weight and height path through the API: kilograms only, suspicious values
//! confirmed before saving, BMI derived.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::{json, Value};

http_tests!(
    weight_that_looks_like_pounds_needs_confirmation_and_is_saved_only_when_acknowledged,
    weights_with_units_or_outside_the_range_are_refused_on_the_value_field,
    bmi_is_derived_once_a_height_is_recorded,
    heights_in_inches_are_refused,
    a_field_given_twice_is_refused_and_nothing_is_saved,
);

/// `{"value": 70, "value": 154}` is ambiguous (which did the nurse mean?): refused, not read as
/// the last one.
async fn a_field_given_twice_is_refused_and_nothing_is_saved(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "WT-0009", "Twice", "Tomasz", "1979-05-05", "male").await;
    let rb = nurse
        .request(reqwest::Method::POST, &format!("/api/patients/{pid}/weights"))
        .header("content-type", "application/json")
        .body(r#"{"value": 70, "value": 154}"#);
    let r = nurse.send(rb).await;
    assert!(r.status == 400 || r.status == 422, "refused: {} {}", r.status, r.text);
    assert!(r.text.contains(r#"the field \"value\" is given twice"#), "{}", r.text);
    let nested = nurse
        .request(reqwest::Method::POST, &format!("/api/patients/{pid}/weights"))
        .header("content-type", "application/json")
        .body(r#"{"value": 70, "acknowledge": [], "acknowledge": ["possible_pounds"]}"#);
    assert!(nurse.send(nested).await.text.contains("is given twice"));
    assert!(weights(&chart(&nurse, &pid).await).is_empty(), "nothing was saved");
}

fn weights(c: &Value) -> Vec<String> {
    c["weights"].as_array().unwrap().iter().map(|w| w["value"].as_str().unwrap().to_owned()).collect()
}

async fn weight_that_looks_like_pounds_needs_confirmation_and_is_saved_only_when_acknowledged(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "WT-0001", "Scales", "Petra", "1982-08-08", "female").await;
    let url = format!("/api/patients/{pid}/weights");

    let r = nurse.post_json(&url, &json!({"value": 80})).await;
    r.assert_status(201, "first weight");
    let v = r.json();
    assert_eq!(v["kind"], "observation");
    assert_eq!(v["recorded_by"], "nina.nurse");
    assert_eq!(v["fields"]["value"], "80");
    assert_eq!(v["fields"]["unit"], "kg");
    app.advance_minutes(1);

    let r = nurse.post_json(&url, &json!({"value": 176.4})).await;
    r.assert_status(422, "176.4 kg after 80 kg");
    let p = r.json();
    assert_eq!(p["error"], "needs_confirmation", "{}", r.text);
    let warnings = p["warnings"].as_array().expect("warnings");
    let codes: Vec<&str> = warnings.iter().filter_map(|w| w["code"].as_str()).collect();
    assert_eq!(codes, vec!["possible_pounds"], "{}", r.text);
    assert!(warnings[0]["message"].as_str().unwrap().contains("Did you enter pounds?"), "{}", r.text);
    let c = chart(&nurse, &pid).await;
    assert_eq!(weights(&c), vec!["80"], "nothing saved before confirmation");

    // Acknowledging some other warning does not count.
    let r = nurse.post_json(&url, &json!({"value": 176.4, "acknowledge": ["large_weight_change"]})).await;
    r.assert_status(422, "wrong acknowledgement");
    assert_eq!(r.json()["error"], "needs_confirmation");
    assert_eq!(weights(&chart(&nurse, &pid).await), vec!["80"]);

    let r = nurse.post_json(&url, &json!({"value": 176.4, "acknowledge": ["possible_pounds"]})).await;
    r.assert_status(201, "acknowledged");
    let saved = r.json();
    assert_eq!(saved["fields"]["value"], "176.4");
    let c = chart(&nurse, &pid).await;
    assert_eq!(weights(&c), vec!["80", "176.4"], "both weights, oldest first");
    assert!(c["weights"].as_array().unwrap().iter().all(|w| w["unit"] == "kg"));

    // Text values in kilograms are accepted exactly like numbers.
    app.advance_minutes(1);
    let r = nurse.post_json(&url, &json!({"value": "175.9 kg"})).await;
    r.assert_status(201, "text value in kg");
    assert_eq!(weights(&chart(&nurse, &pid).await).len(), 3);
}

async fn weights_with_units_or_outside_the_range_are_refused_on_the_value_field(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "WT-0002", "Balance", "Ravi", "1990-10-10", "male").await;
    let url = format!("/api/patients/{pid}/weights");
    let cases: [(Value, &str); 7] = [
        (json!("160 lb"), "kg"),
        (json!("160 pounds"), "kg"),
        (json!("72,4"), "decimal separator"),
        (json!("abc"), "number of kg"),
        (json!(""), "required"),
        (json!(4), "20–400 kg"),
        (json!(724), "20–400 kg"),
    ];
    for (value, needle) in cases {
        let r = nurse.post_json(&url, &json!({"value": value})).await;
        r.assert_status(422, &format!("weight {value}"));
        assert_eq!(r.json()["error"], "validation", "{value}: {}", r.text);
        assert_eq!(r.problem_fields(), vec!["value"], "{value}: the error is on the field the client sent: {}", r.text);
        assert!(r.field_message("value").contains(needle), "{value}: message mentions {needle}: {}", r.text);
    }
    let r = nurse.post_json(&url, &json!({"value": 4})).await;
    assert!(r.field_message("value").contains("4 kg is outside the accepted range 20–400 kg"), "{}", r.text);

    // A time in the future is refused on its own field.
    let r = nurse.post_json(&url, &json!({"value": 70, "measured_at": "2026-11-27T09:00"})).await;
    r.assert_status(422, "future time");
    assert_eq!(r.problem_fields(), vec!["measured_at"]);
    // Missing value entirely is a body problem.
    let r = nurse.post_json(&url, &json!({"acknowledge": []})).await;
    r.assert_status(422, "no value");
    assert_eq!(r.problem_fields(), vec!["body"]);

    assert!(weights(&chart(&nurse, &pid).await).is_empty(), "nothing saved");
    // A correct value after all that is saved.
    nurse.post_json(&url, &json!({"value": "72.4", "measured_at": "2026-11-26T08:30"})).await.assert_status(201, "valid weight");
    let c = chart(&nurse, &pid).await;
    assert_eq!(weights(&c), vec!["72.4"]);
    assert_eq!(c["weights"][0]["measured_at"], "2026-11-26T08:30:00+00:00");
}

async fn bmi_is_derived_once_a_height_is_recorded(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "WT-0003", "Tall", "Henrike", "1985-04-04", "female").await;
    nurse.post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": 80})).await.assert_status(201, "weight");
    let c = chart(&nurse, &pid).await;
    assert!(c["bmi"].is_null(), "no BMI without a height: {c}");
    app.advance_minutes(1);
    let r = nurse.post_json(&format!("/api/patients/{pid}/heights"), &json!({"value": 180})).await;
    r.assert_status(201, "height");
    let c = chart(&nurse, &pid).await;
    assert_eq!(c["heights"][0]["value"], "180");
    assert_eq!(c["heights"][0]["unit"], "cm");
    assert_eq!(c["bmi"], "24.7", "80 kg / (1.80 m)^2: {c}");
    // BMI follows the latest weight.
    app.advance_minutes(1);
    nurse.post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": 82})).await.assert_status(201, "second weight");
    assert_eq!(chart(&nurse, &pid).await["bmi"], "25.3");
    // The chart page shows the same derived value.
    let page = nurse.get(&format!("/patients/{pid}")).await;
    page.assert_status(200, "chart page");
    assert!(page.text.contains("25.3 kg/m²"), "BMI on the page");
}

async fn heights_in_inches_are_refused(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "WT-0004", "Short", "Ina", "1985-04-04", "female").await;
    let url = format!("/api/patients/{pid}/heights");
    for (value, needle) in [(json!("67 in"), "cm"), (json!(67), "100–250 cm"), (json!("170.55"), "one decimal")] {
        let r = nurse.post_json(&url, &json!({"value": value})).await;
        r.assert_status(422, &format!("height {value}"));
        assert_eq!(r.problem_fields(), vec!["value"], "{}", r.text);
        assert!(r.field_message("value").contains(needle), "{value}: {}", r.text);
    }
    nurse.post_json(&url, &json!({"value": 170})).await.assert_status(201, "height");
    app.advance_minutes(1);
    let r = nurse.post_json(&url, &json!({"value": 180})).await;
    r.assert_status(422, "10 cm taller");
    assert_eq!(r.json()["warnings"][0]["code"], "large_height_change");
    assert_eq!(chart(&nurse, &pid).await["heights"].as_array().unwrap().len(), 1);
}
