//! Patient registration and search through the API.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::json;

http_tests!(
    registering_a_patient_returns_201_and_the_chart_can_be_read,
    invalid_registration_names_every_bad_field_and_saves_nothing,
    duplicate_mrn_is_refused_on_the_mrn_field,
    blank_mrn_is_assigned_a_clinic_number,
    unknown_patient_ids_are_not_found,
    search_finds_patients_by_name_and_mrn,
    malformed_query_parameters_get_a_json_validation_problem,
);

async fn registering_a_patient_returns_201_and_the_chart_can_be_read(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let body = json!({
        "mrn": "kc-000123", "family_name": "Rivera", "given_name": "Ana", "date_of_birth": "1984-03-27", "sex": "female",
        "phone": "+44 20 7946 0018", "email": "ana.rivera@example.org", "emergency_name": "Luis Rivera", "emergency_relationship": "brother", "emergency_phone": "020 7946 0019"
    });
    let r = nurse.post_json("/api/patients", &body).await;
    r.assert_status(201, "register");
    let v = r.json();
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a UUID id: {id}");
    assert_eq!(v["version"], 1);
    assert_eq!(v["action"], "create");
    assert_eq!(v["recorded_by"], "nina.nurse");
    assert_eq!(v["recorded_at"], "2026-11-26T09:00:00+00:00", "time from the server clock");
    assert_eq!(v["demographics"]["mrn"], "KC-000123", "MRN normalised to upper case");

    let c = chart(&nurse, &id).await;
    let d = &c["patient"]["demographics"];
    assert_eq!(c["patient"]["id"], id);
    assert_eq!(d["family_name"], "Rivera");
    assert_eq!(d["given_name"], "Ana");
    assert_eq!(d["date_of_birth"], "1984-03-27");
    assert_eq!(d["sex"], "female");
    assert_eq!(d["email"], "ana.rivera@example.org");
    assert_eq!(d["emergency_relationship"], "brother");
    assert!(c["records"].as_array().unwrap().is_empty());
    assert!(c["weights"].as_array().unwrap().is_empty());
    assert!(c["bmi"].is_null());
    assert_eq!(app.patient_count().await, 1);

    // Another clinical role reads the same chart.
    let director = app.login(Role::MedicalDirector).await;
    assert_eq!(chart(&director, &id).await["patient"]["demographics"]["family_name"], "Rivera");
    let h = director.get(&format!("/api/patients/{id}/history")).await;
    h.assert_status(200, "history");
    assert_eq!(h.json().as_array().unwrap().len(), 1);
}

async fn invalid_registration_names_every_bad_field_and_saves_nothing(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    register(&nurse, "OK-0001", "Present", "Already", "1970-01-01", "male").await;
    let before = app.patient_count().await;
    let bad = json!({"mrn": "x", "family_name": "Doe", "given_name": "Jane", "date_of_birth": "27/03/1984", "sex": "f?", "email": "nope"});
    let r = nurse.post_json("/api/patients", &bad).await;
    r.assert_status(422, "bad registration");
    let p = r.json();
    assert_eq!(p["error"], "validation");
    let mut fields = r.problem_fields();
    fields.sort();
    assert_eq!(fields, vec!["date_of_birth", "email", "mrn", "sex"], "every bad field, and only those: {}", r.text);
    assert!(r.field_message("date_of_birth").contains("YYYY-MM-DD"), "{}", r.text);
    assert!(r.field_message("sex").contains("female"), "{}", r.text);
    assert!(r.field_message("mrn").contains("3 to 20"), "{}", r.text);
    assert_eq!(app.patient_count().await, before, "nothing saved");

    // Missing required fields and a minor are refused too.
    let r = nurse.post_json("/api/patients", &json!({"mrn": "OK-0002", "date_of_birth": "2015-01-01", "sex": "male"})).await;
    r.assert_status(422, "missing names, minor");
    let mut fields = r.problem_fields();
    fields.sort();
    assert_eq!(fields, vec!["date_of_birth", "family_name", "given_name"], "{}", r.text);
    assert!(r.field_message("date_of_birth").contains("18 or older"), "{}", r.text);

    // A body that is not a JSON object is a validation problem on `body`.
    let r = nurse
        .send(nurse.request(reqwest::Method::POST, "/api/patients").header("content-type", "application/json").body("{not json"))
        .await;
    r.assert_status(422, "malformed JSON");
    assert_eq!(r.problem_fields(), vec!["body"]);
    let r =
        nurse.send(nurse.request(reqwest::Method::POST, "/api/patients").header("content-type", "text/plain").body("mrn=OK-0003")).await;
    r.assert_status(422, "not JSON content type");
    assert_eq!(app.patient_count().await, before, "nothing saved");
}

async fn duplicate_mrn_is_refused_on_the_mrn_field(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    register(&nurse, "DUP-0042", "First", "Patient", "1980-02-02", "female").await;
    for mrn in ["DUP-0042", "dup-0042", " DUP-0042 "] {
        let r = nurse.post_json("/api/patients", &patient_body(mrn, "Second", "Patient", "1981-03-03", "male")).await;
        r.assert_status(422, &format!("duplicate MRN {mrn:?}"));
        assert_eq!(r.json()["error"], "validation");
        assert_eq!(r.problem_fields(), vec!["mrn"], "{}", r.text);
        assert!(r.field_message("mrn").contains("already used"), "{}", r.text);
    }
    assert_eq!(app.patient_count().await, 1);
    let found = nurse.get("/api/patients?q=DUP-0042").await;
    found.assert_status(200, "search");
    let rows = found.json();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["demographics"]["family_name"], "First");
}

async fn blank_mrn_is_assigned_a_clinic_number(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let mut mrns = Vec::new();
    for (fam, mrn) in [("Blank", ""), ("Spaces", "   ")] {
        let r = nurse.post_json("/api/patients", &patient_body(mrn, fam, "Mrn", "1975-05-05", "unknown")).await;
        r.assert_status(201, &format!("register with MRN {mrn:?}"));
        let v = r.json();
        let assigned = v["demographics"]["mrn"].as_str().unwrap().to_owned();
        assert!(
            assigned.len() == 9 && assigned.starts_with("KC-") && assigned[3..].chars().all(|c| c.is_ascii_digit()),
            "assigned MRN is KC- and six digits: {assigned}"
        );
        let c = chart(&nurse, v["id"].as_str().unwrap()).await;
        assert_eq!(c["patient"]["demographics"]["mrn"], assigned, "stored as assigned");
        mrns.push(assigned);
    }
    assert_ne!(mrns[0], mrns[1], "each patient gets its own number");
    // Omitting the field entirely works the same.
    let r = nurse
        .post_json("/api/patients", &json!({"family_name": "Omitted", "given_name": "Mrn", "date_of_birth": "1975-05-05", "sex": "male"}))
        .await;
    r.assert_status(201, "register without mrn key");
    assert!(r.json()["demographics"]["mrn"].as_str().unwrap().starts_with("KC-"));
}

async fn unknown_patient_ids_are_not_found(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    for path in [
        format!("/api/patients/{}", random_uuid()),
        "/api/patients/not-a-uuid".to_owned(),
        format!("/api/patients/{}/history", random_uuid()),
        format!("/api/records/{}", random_uuid()),
    ] {
        let r = nurse.get(&path).await;
        r.assert_status(404, &path);
        assert_eq!(r.json()["error"], "not_found");
    }
    let r = nurse.post_json(&format!("/api/patients/{}/weights", random_uuid()), &json!({"value": 80})).await;
    r.assert_status(404, "weight for an unknown patient");
}

async fn search_finds_patients_by_name_and_mrn(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    register(&nurse, "SR-0001", "Abernathy", "Clara", "1966-01-01", "female").await;
    register(&nurse, "SR-0002", "Zimmerman", "Boris", "1977-01-01", "male").await;
    let names = |v: serde_json::Value| {
        v.as_array().unwrap().iter().map(|p| p["demographics"]["family_name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(names(nurse.get("/api/patients").await.json()), vec!["Abernathy", "Zimmerman"], "all, by name");
    assert_eq!(names(nurse.get("/api/patients?q=zimm").await.json()), vec!["Zimmerman"]);
    assert_eq!(names(nurse.get("/api/patients?q=sr-0001").await.json()), vec!["Abernathy"]);
    assert_eq!(names(nurse.get("/api/patients?q=Clara%20Abernathy").await.json()), vec!["Abernathy"]);
    assert!(names(nurse.get("/api/patients?q=nobody").await.json()).is_empty());
    assert_eq!(names(nurse.get("/api/patients?limit=1&offset=1").await.json()), vec!["Zimmerman"], "paging");
    let r = nurse.get(&format!("/api/patients?q={}", "a".repeat(101))).await;
    r.assert_status(422, "over-long query");
    assert_eq!(r.problem_fields(), vec!["q"]);
}

/// Product bug: `Query<SearchQuery>` / `Query<AuditQuery>` rejections are axum's plain-text 400,
/// while the API promises `Problem` bodies (422 validation with the field named).
async fn malformed_query_parameters_get_a_json_validation_problem(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let director = app.login(Role::MedicalDirector).await;
    for (s, path, field) in [
        (&nurse, "/api/patients?limit=abc", "limit"),
        (&nurse, "/api/patients?offset=x", "offset"),
        (&director, "/api/audit?page=x", "page"),
    ] {
        let r = s.get(path).await;
        r.assert_status(422, path);
        assert!(
            r.header("content-type").starts_with("application/json"),
            "{path}: a JSON problem, got {:?}: {}",
            r.header("content-type"),
            r.text
        );
        assert_eq!(r.json()["error"], "validation", "{path}");
        assert_eq!(r.problem_fields(), vec![field], "{path}: {}", r.text);
    }
}
