//! The role matrix over the API, and what a researcher can and cannot see.

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::json;

http_tests!(
    each_role_reaches_exactly_its_endpoints,
    nurses_cannot_record_diagnoses_but_prescribers_can,
    research_cohort_contains_no_direct_identifiers,
    ui_pages_follow_the_same_role_matrix,
    callers_without_permission_are_refused_before_their_input_is_validated,
);

async fn each_role_reaches_exactly_its_endpoints(app: &TestApp) {
    use Role::*;
    // (path, roles allowed)
    let matrix: [(&str, &[Role]); 5] = [
        ("/api/patients", &[MedicalDirector, Prescriber, Nurse]),
        ("/api/audit", &[Admin, MedicalDirector]),
        ("/api/admin/users", &[Admin]),
        ("/api/admin/tokens", &[Admin]),
        ("/api/research/cohort", &[Researcher, MedicalDirector]),
    ];
    let nurse = app.login(Nurse).await;
    let pid = register(&nurse, "RM-0001", "Tallowmere", "Ines", "1979-05-14", "female").await;
    for role in Role::ALL {
        let s = app.login(role).await;
        let me = s.get("/api/me").await;
        me.assert_status(200, "GET /api/me");
        assert_eq!(me.json()["role"], role.code());
        for (path, allowed) in &matrix {
            let r = s.get(path).await;
            if allowed.contains(&role) {
                r.assert_status(200, &format!("{role:?} GET {path}"));
                assert!(r.json().is_array(), "{role:?} {path}: a list");
            } else {
                r.assert_status(403, &format!("{role:?} GET {path}"));
                assert_eq!(r.json()["error"], "forbidden");
                assert!(!r.text.contains("Tallowmere"), "{role:?} {path}: no data in a 403");
            }
        }
        // The chart itself follows ReadPatients.
        let r = s.get(&format!("/api/patients/{pid}")).await;
        if [MedicalDirector, Prescriber, Nurse].contains(&role) {
            r.assert_status(200, &format!("{role:?} chart"));
            assert_eq!(r.json()["patient"]["demographics"]["family_name"], "Tallowmere");
        } else {
            r.assert_status(403, &format!("{role:?} chart"));
            assert!(!r.text.contains("Tallowmere") && !r.text.contains("RM-0001"));
        }
        // Registering follows WriteDemographics.
        let r = s.post_json("/api/patients", &patient_body("", "Brightwater", "Olu", "1970-07-07", "male")).await;
        if [MedicalDirector, Prescriber, Nurse].contains(&role) {
            r.assert_status(201, &format!("{role:?} registers"));
        } else {
            r.assert_status(403, &format!("{role:?} registers"));
        }
    }
    // The list of users really is the admin's view of accounts.
    let admin = app.login(Admin).await;
    let users = admin.get("/api/admin/users").await.json();
    let names: Vec<&str> = users.as_array().unwrap().iter().filter_map(|u| u["username"].as_str()).collect();
    for u in &app.users {
        assert!(names.contains(&u.username.as_str()), "{} listed: {names:?}", u.username);
    }
    assert!(
        users.as_array().unwrap().iter().all(|u| u.get("password_hash").is_none() && !u.to_string().contains("argon2")),
        "no hashes: {users}"
    );
    assert_eq!(app.patient_count().await, 4, "three clinical roles registered one each");
}

async fn nurses_cannot_record_diagnoses_but_prescribers_can(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let prescriber = app.login(Role::Prescriber).await;
    let pid = register(&nurse, "DX-0001", "Hollins", "Maeve", "1988-09-30", "female").await;
    let dx = json!({"kind": "diagnosis", "fields": {"choice": "gad", "onset": "2019-04-01"}});
    let r = nurse.post_json(&format!("/api/patients/{pid}/records"), &dx).await;
    r.assert_status(403, "nurse adds diagnosis");
    assert_eq!(r.json()["error"], "forbidden");
    assert!(chart(&nurse, &pid).await["records"].as_array().unwrap().is_empty(), "nothing saved");

    let r = prescriber.post_json(&format!("/api/patients/{pid}/records"), &dx).await;
    r.assert_status(201, "prescriber adds diagnosis");
    let rec = r.json();
    assert_eq!(rec["kind"], "diagnosis");
    assert_eq!(rec["recorded_by"], "pia.prescriber");
    assert_eq!(rec["fields"]["choice"], "gad");
    let rid = rec["record_id"].as_str().unwrap().to_owned();

    // The nurse can read it but not amend or void it.
    let c = chart(&nurse, &pid).await;
    assert_eq!(c["records"].as_array().unwrap().len(), 1);
    let r = nurse.post_json(&format!("/api/records/{rid}/void"), &json!({"base_version": 1, "reason": "wrong patient"})).await;
    r.assert_status(403, "nurse voids diagnosis");
    let r = nurse
        .post_json(&format!("/api/records/{rid}/amend"), &json!({"base_version": 1, "reason": "typo", "fields": {"choice": "sad"}}))
        .await;
    r.assert_status(403, "nurse amends diagnosis");
    let h = nurse.get(&format!("/api/records/{rid}/history")).await;
    h.assert_status(200, "history");
    assert_eq!(h.json().as_array().unwrap().len(), 1, "still one version");

    // The nurse may record clinical records other than diagnoses.
    let r = nurse
        .post_json(
            &format!("/api/patients/{pid}/records"),
            &json!({"kind": "allergy", "fields": {"substance": "Penicillin", "severity": "moderate"}}),
        )
        .await;
    r.assert_status(201, "nurse adds allergy");
}

async fn research_cohort_contains_no_direct_identifiers(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let prescriber = app.login(Role::Prescriber).await;
    let people = [
        ("ZQ-7781", "Wrenthorpe", "Juniper", "1984-03-27", "female"),
        ("ZQ-7782", "Okonkwo-Vale", "Thaddeus", "1961-12-05", "male"),
        ("ZQ-7783", "Lindqvist", "Saoirse", "1999-06-18", "other"),
    ];
    let mut ids = Vec::new();
    for (mrn, fam, giv, dob, sex) in people {
        let id = register(&nurse, mrn, fam, giv, dob, sex).await;
        let r =
            prescriber.post_json(&format!("/api/patients/{id}/records"), &json!({"kind": "diagnosis", "fields": {"choice": "sad"}})).await;
        r.assert_status(201, "diagnosis");
        ids.push(id);
    }
    // A voided diagnosis does not count.
    let r = prescriber
        .post_json(&format!("/api/patients/{}/records", ids[1]), &json!({"kind": "diagnosis", "fields": {"choice": "panic"}}))
        .await;
    let voided = r.json()["record_id"].as_str().unwrap().to_owned();
    prescriber
        .post_json(&format!("/api/records/{voided}/void"), &json!({"base_version": 1, "reason": "entered in error"}))
        .await
        .assert_status(200, "void");
    // One with weight and height so the cohort has a BMI.
    nurse.post_json(&format!("/api/patients/{}/weights", ids[0]), &json!({"value": 70})).await.assert_status(201, "weight");
    app.advance_minutes(1);
    nurse.post_json(&format!("/api/patients/{}/heights", ids[0]), &json!({"value": 170})).await.assert_status(201, "height");

    let researcher = app.login(Role::Researcher).await;
    let r = researcher.get("/api/research/cohort").await;
    r.assert_status(200, "researcher cohort");
    let rows = r.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{}", r.text);
    for (mrn, fam, giv, dob, _) in people {
        for needle in [mrn, fam, giv, dob] {
            assert!(!r.text.contains(needle), "cohort leaks {needle}: {}", r.text);
        }
    }
    for id in &ids {
        assert!(!r.text.contains(id.as_str()), "cohort leaks the patient id {id}");
    }
    let mut bands: Vec<&str> = rows.iter().map(|x| x["age_band"].as_str().unwrap()).collect();
    bands.sort();
    assert_eq!(bands, vec!["25-29", "40-44", "60-64"], "five-year age bands on 2026-11-26");
    for row in rows {
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(keys, vec!["age_band", "bmi", "diagnoses", "research_id", "sex"]);
        assert!(row["research_id"].as_str().unwrap().starts_with("R-"));
        assert_eq!(row["diagnoses"].as_array().unwrap().len(), 1);
    }
    assert!(rows.iter().any(|x| x["bmi"] == "24"), "rounded BMI present: {}", r.text);

    // The medical director sees the same de-identified view; the researcher still cannot open a chart.
    let director = app.login(Role::MedicalDirector).await;
    let d = director.get("/api/research/cohort").await;
    d.assert_status(200, "director cohort");
    assert_eq!(d.json(), r.json(), "same pseudonyms for everyone");
    researcher.get(&format!("/api/patients/{}", ids[0])).await.assert_status(403, "researcher opens a chart");
    researcher.get("/api/patients?q=Wrenthorpe").await.assert_status(403, "researcher searches");
    let page = researcher.get("/research").await;
    page.assert_status(200, "research page");
    for (mrn, fam, giv, dob, _) in people {
        for needle in [mrn, fam, giv, dob] {
            assert!(!page.text.contains(needle), "research page leaks {needle}");
        }
    }
}

async fn ui_pages_follow_the_same_role_matrix(app: &TestApp) {
    use Role::*;
    let pages: [(&str, &[Role]); 4] = [
        ("/patients", &[MedicalDirector, Prescriber, Nurse]),
        ("/audit", &[Admin, MedicalDirector]),
        ("/admin/users", &[Admin]),
        ("/research", &[Researcher, MedicalDirector]),
    ];
    for role in Role::ALL {
        let s = app.login(role).await;
        for (path, allowed) in &pages {
            let r = s.get(path).await;
            let expected = if allowed.contains(&role) { 200 } else { 403 };
            r.assert_status(expected, &format!("{role:?} GET {path}"));
            assert!(r.header("content-type").starts_with("text/html"), "{role:?} {path}: an HTML page");
        }
        // The start page sends each role somewhere it may go.
        let home = s.get("/").await;
        home.assert_status(303, "GET /");
        let dest = home.location();
        let ok = pages.iter().find(|(p, _)| *p == dest).map(|(_, allowed)| allowed.contains(&role)).unwrap_or(false);
        assert!(ok, "{role:?} is sent to {dest}, which it may open");
    }
}

/// Product bug: `App::void_record` (and `App::amend_measurement`) parse the reason before checking
/// the caller's permission, so a caller without the permission gets 422 instead of 403 and the
/// denial is not audited.
async fn callers_without_permission_are_refused_before_their_input_is_validated(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let prescriber = app.login(Role::Prescriber).await;
    let pid = register(&nurse, "PV-0001", "Permission", "Pia", "1980-01-01", "female").await;
    let dx =
        prescriber.post_json(&format!("/api/patients/{pid}/records"), &json!({"kind": "diagnosis", "fields": {"choice": "gad"}})).await;
    dx.assert_status(201, "diagnosis");
    let dx = dx.json()["record_id"].as_str().unwrap().to_owned();
    let w = nurse.post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": 70})).await;
    let weight = w.json()["record_id"].as_str().unwrap().to_owned();

    // Writes that every one of these callers lacks the permission for, with invalid input.
    let researcher = app.login(Role::Researcher).await;
    let admin = app.login(Role::Admin).await;
    let cases = [
        (
            &researcher,
            "rex.researcher",
            format!("/api/patients/{pid}/amend"),
            json!({"base_version": 1, "demographics": {"mrn": "x"}, "reason": ""}),
        ),
        (&researcher, "rex.researcher", format!("/api/patients/{pid}/weights"), json!({"value": "abc"})),
        (&researcher, "rex.researcher", format!("/api/records/{dx}/void"), json!({"base_version": 1, "reason": ""})),
        (&admin, "ada.admin", format!("/api/records/{weight}/void"), json!({"base_version": 1, "reason": ""})),
        (&admin, "ada.admin", format!("/api/records/{weight}/amend"), json!({"base_version": 1, "reason": "", "fields": {"value": "abc"}})),
        (&nurse, "nina.nurse", format!("/api/records/{dx}/void"), json!({"base_version": 1, "reason": ""})),
    ];
    let mut wrong = Vec::new();
    for (s, user, path, body) in &cases {
        let r = s.post_json(path, body).await;
        if r.status.as_u16() != 403 || r.json()["error"] != "forbidden" {
            wrong.push(format!("{user} POST {path}: {} {}", r.status, r.text));
        }
    }
    assert!(wrong.is_empty(), "refused with 403 before validation, but got:\n{}", wrong.join("\n"));
    let director = app.login(Role::MedicalDirector).await;
    let denied = director.get("/api/audit?outcome=denied").await.json();
    let denied = denied.as_array().unwrap();
    for user in ["rex.researcher", "ada.admin", "nina.nurse"] {
        let n = cases.iter().filter(|c| c.1 == user).count();
        let audited = denied.iter().filter(|e| e["username"] == user).count();
        assert!(audited >= n, "{user}: {n} refusals, {audited} audited denials: {denied:?}");
    }
    let c = chart(&nurse, &pid).await;
    assert_eq!(c["records"].as_array().unwrap().len(), 2, "nothing changed");
    assert!(c["voided"].as_array().unwrap().is_empty());
}
