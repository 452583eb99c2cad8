//! The audit trail as seen through the API: reads, failed logins and denials are recorded.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::{json, Value};

http_tests!(
    reading_a_chart_is_audited_with_the_reader_and_the_patient,
    failed_login_is_audited_as_denied,
    forbidden_requests_are_audited_as_denied,
    writes_are_audited_as_create_update_and_delete,
    audit_filters_are_validated,
);

fn entries(v: &Value) -> Vec<Value> {
    v.as_array().expect("audit entries").clone()
}

async fn reading_a_chart_is_audited_with_the_reader_and_the_patient(app: &TestApp) {
    let prescriber = app.login(Role::Prescriber).await;
    let pid = register(&prescriber, "AU-0001", "Watched", "Wanda", "1983-03-03", "female").await;
    let other = register(&prescriber, "AU-0002", "Unrelated", "Uri", "1983-03-03", "male").await;
    app.advance_minutes(3);
    let nurse = app.login(Role::Nurse).await;
    chart(&nurse, &pid).await;

    let director = app.login(Role::MedicalDirector).await;
    let r = director.get(&format!("/api/audit?patient={pid}")).await;
    r.assert_status(200, "audit by patient");
    let all = entries(&r.json());
    assert!(all.iter().all(|e| e["patient_id"] == pid.as_str()), "filtered to the patient: {}", r.text);
    assert!(!r.text.contains(&other), "other patients are not listed");
    let nurse_reads: Vec<&Value> = all.iter().filter(|e| e["username"] == "nina.nurse" && e["action"] == "R").collect();
    let types: Vec<&str> = nurse_reads.iter().filter_map(|e| e["entity_type"].as_str()).collect();
    assert!(types.contains(&"Patient"), "patient read audited: {types:?}");
    assert!(types.contains(&"Record"), "records read audited: {types:?}");
    for e in &nurse_reads {
        assert_eq!(e["outcome"], "success");
        assert_eq!(e["role"], "nurse");
        assert_eq!(e["recorded_at"], "2026-11-26T09:03:00+00:00", "time from the server clock");
        assert!(e["session"].as_str().is_some_and(|s| s.starts_with("session:")), "the session is named: {e}");
        assert_eq!(e["client_addr"], "127.0.0.1");
    }
    // The registration is there too, by the prescriber.
    assert!(all.iter().any(|e| e["action"] == "C" && e["username"] == "pia.prescriber" && e["entity_type"] == "Patient"), "{}", r.text);

    // The same filter by user and action.
    let r = director.get(&format!("/api/audit?patient={pid}&user=nina.nurse&action=R")).await;
    r.assert_status(200, "audit by user and action");
    let only = entries(&r.json());
    assert_eq!(only.len(), nurse_reads.len(), "{}", r.text);
    // Reading the audit trail does not put patient data into it.
    assert!(!r.text.contains("Watched") && !r.text.contains("AU-0001"), "no names or MRNs in the audit trail");
}

async fn failed_login_is_audited_as_denied(app: &TestApp) {
    let r = app.try_login("nina.nurse", "not the right password").await;
    r.assert_status(401, "wrong password");
    let r = app.try_login("no.such.user", "not the right password").await;
    r.assert_status(401, "unknown user");
    let admin = app.login(Role::Admin).await;
    let r = admin.get("/api/audit?outcome=denied").await;
    r.assert_status(200, "audit of denials");
    let all = entries(&r.json());
    let failed: Vec<&Value> = all.iter().filter(|e| e["entity_type"] == "Session" && e["detail"] == "login failed").collect();
    assert_eq!(failed.len(), 2, "{}", r.text);
    for user in ["nina.nurse", "no.such.user"] {
        let e = failed.iter().find(|e| e["username"] == user).unwrap_or_else(|| panic!("failed login of {user} audited: {}", r.text));
        assert_eq!(e["outcome"], "denied");
        assert_eq!(e["action"], "E");
        assert_eq!(e["client_addr"], "127.0.0.1");
    }
    assert!(!r.text.contains("not the right password"), "the password is never logged");
    // Successful logins are audited as successes.
    let ok = admin.get("/api/audit?user=ada.admin&outcome=success").await.json();
    assert!(entries(&ok).iter().any(|e| e["entity_type"] == "Session" && e["detail"] == "login"), "{ok}");
}

async fn forbidden_requests_are_audited_as_denied(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    nurse.get("/api/audit").await.assert_status(403, "nurse reads the audit trail");
    let researcher = app.login(Role::Researcher).await;
    researcher.get("/api/patients").await.assert_status(403, "researcher lists patients");
    let admin = app.login(Role::Admin).await;
    admin.post_json("/api/patients", &patient_body("", "Admin", "Made", "1980-01-01", "male")).await.assert_status(403, "admin registers");

    let director = app.login(Role::MedicalDirector).await;
    let r = director.get("/api/audit?outcome=denied").await;
    r.assert_status(200, "denials");
    let all = entries(&r.json());
    let find = |user: &str, entity: &str| {
        all.iter().find(|e| e["username"] == user && e["entity_type"] == entity && e["outcome"] == "denied").cloned()
    };
    let e = find("nina.nurse", "AuditEvent").unwrap_or_else(|| panic!("nurse denial audited: {}", r.text));
    assert_eq!(e["role"], "nurse");
    assert!(e["detail"].as_str().unwrap_or("").contains("ReadAudit"), "{e}");
    assert!(find("rex.researcher", "Patient").is_some(), "researcher denial audited: {}", r.text);
    assert!(find("ada.admin", "Patient").is_some(), "admin denial audited: {}", r.text);
}

async fn writes_are_audited_as_create_update_and_delete(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "AU-0003", "Written", "Wes", "1990-09-09", "male").await;
    let r = nurse.post_json(&format!("/api/patients/{pid}/records"), &json!({"kind": "allergy", "fields": {"substance": "Latex"}})).await;
    let rid = r.json()["record_id"].as_str().unwrap().to_owned();
    nurse
        .post_json(
            &format!("/api/records/{rid}/amend"),
            &json!({"base_version": 1, "reason": "severity known", "fields": {"substance": "Latex", "severity": "mild"}}),
        )
        .await
        .assert_status(200, "amend");
    nurse
        .post_json(&format!("/api/records/{rid}/void"), &json!({"base_version": 2, "reason": "entered in error"}))
        .await
        .assert_status(200, "void");
    let director = app.login(Role::MedicalDirector).await;
    let all = entries(&director.get(&format!("/api/audit?patient={pid}&user=nina.nurse")).await.json());
    for action in ["C", "U", "D"] {
        assert!(
            all.iter().any(|e| e["action"] == action && e["entity_type"] == "Record/allergy" && e["entity_id"] == rid.as_str()),
            "allergy {action} audited: {all:?}"
        );
    }
    assert!(all.iter().any(|e| e["action"] == "C" && e["entity_type"] == "Patient"));
}

async fn audit_filters_are_validated(app: &TestApp) {
    let director = app.login(Role::MedicalDirector).await;
    for (q, field) in [
        ("patient=not-a-uuid", "patient"),
        ("action=X", "action"),
        ("outcome=maybe", "outcome"),
        ("from=26/11/2026", "from"),
        ("sort=colour", "sort"),
    ] {
        let r = director.get(&format!("/api/audit?{q}")).await;
        r.assert_status(422, q);
        assert_eq!(r.problem_fields(), vec![field], "{q}: {}", r.text);
    }
    let r = director.get("/api/audit?from=2026-11-26&to=2026-11-26&sort=user&asc=1").await;
    r.assert_status(200, "valid filter");
    assert!(!entries(&r.json()).is_empty(), "today's logins are listed");
    let r = director.get("/api/audit?from=2026-11-27").await;
    r.assert_status(200, "tomorrow");
    assert!(entries(&r.json()).is_empty(), "nothing from tomorrow: {}", r.text);
}
