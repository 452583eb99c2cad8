//! Simultaneous edits: exactly one wins, the others get a clear answer, never a server error.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::json;

http_tests!(simultaneous_registrations_with_one_mrn_save_exactly_one_patient, simultaneous_amendments_of_one_version_save_exactly_one,);

async fn simultaneous_registrations_with_one_mrn_save_exactly_one_patient(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = nurse.clone();
        tasks.push(tokio::spawn(async move {
            s.post_json("/api/patients", &patient_body("CC-0001", &format!("Racer{i}"), "Rita", "1980-01-01", "female")).await
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.expect("task");
        if r.status.as_u16() == 422 {
            assert_eq!(r.problem_fields(), vec!["mrn"], "{}", r.text);
        }
        statuses.push(r.status.as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, vec![201, 422, 422, 422, 422, 422, 422, 422], "one wins, the rest are told the MRN is taken");
    assert_eq!(app.patient_count().await, 1);
}

async fn simultaneous_amendments_of_one_version_save_exactly_one(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "CC-0002", "Concurrent", "Carl", "1980-01-01", "male").await;
    let med =
        nurse.post_json(&format!("/api/patients/{pid}/records"), &json!({"kind": "medication", "fields": {"name": "Sertraline"}})).await;
    let rid = med.json()["record_id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let s = nurse.clone();
        let (pid, rid) = (pid.clone(), rid.clone());
        tasks.push(tokio::spawn(async move {
            let demo = json!({"base_version": 1, "reason": "spelling", "demographics": {"mrn": "CC-0002", "family_name": format!("Concurrent{i}"), "given_name": "Carl", "date_of_birth": "1980-01-01", "sex": "male"}});
            let a = s.post_json(&format!("/api/patients/{pid}/amend"), &demo).await;
            let b = s.post_json(&format!("/api/records/{rid}/amend"), &json!({"base_version": 1, "reason": "dose", "fields": {"name": "Sertraline", "dose": format!("{i}0 mg")}})).await;
            (a, b)
        }));
    }
    let (mut pa, mut rb) = (Vec::new(), Vec::new());
    for t in tasks {
        let (a, b) = t.await.expect("task");
        assert!(a.status.as_u16() == 200 || a.status.as_u16() == 409, "patient amendment: {} {}", a.status, a.text);
        assert!(b.status.as_u16() == 200 || b.status.as_u16() == 409, "record amendment: {} {}", b.status, b.text);
        pa.push(a.status.as_u16());
        rb.push(b.status.as_u16());
    }
    assert_eq!(pa.iter().filter(|s| **s == 200).count(), 1, "{pa:?}");
    assert_eq!(rb.iter().filter(|s| **s == 200).count(), 1, "{rb:?}");
    assert_eq!(nurse.get(&format!("/api/patients/{pid}/history")).await.json().as_array().unwrap().len(), 2);
    assert_eq!(nurse.get(&format!("/api/records/{rid}/history")).await.json().as_array().unwrap().len(), 2);
}
