//! HTTP tests: the patient progress report for the referring doctor, as a PDF from the staff UI
//! and the API; refused to roles that may not read patients; audited. The clinic outcomes
//! report: de-identified, filtered like the outcomes page, refused to clinical roles, audited.

use crate::helpers::*;
use ketacare_app::{Clock, Principal, ReadingInput};
use ketacare_db::{AuditCtx, AuditFilter, Page};
use ketacare_demo::room::{seat, SeatSpec};
use ketacare_domain::access::Role;
use ketacare_domain::audit::Actor;
use ketacare_domain::ids::UserId;
use serde_json::json;

http_tests!(
    a_prescriber_downloads_the_progress_report_as_a_pdf,
    the_report_is_refused_to_researchers_strangers_and_unknown_patients,
    a_researcher_downloads_the_de_identified_clinic_outcomes_report
);

const DISCLAIMER: &str = "decision support; not a substitute for clinical judgement";

async fn principal(app: &TestApp, role: Role) -> Principal {
    let id = UserId::parse(&app.user(role).id).unwrap();
    let user = app.app.store().get_user(id).await.unwrap().expect("test account");
    app.app.system_principal(user)
}

/// A patient with a HAM-A baseline, a double-checked SC dose given on a chair, readings after
/// it and a HAM-A an hour later that meets the response rule. Returns the patient id.
async fn treated_patient(app: &TestApp) -> String {
    let (prescriber, nurse) = (principal(app, Role::Prescriber).await, principal(app, Role::Nurse).await);
    let spec = SeatSpec {
        chair: "ROOM9^CHAIR1",
        device: "00A0B1C2D3E4F599",
        mrn: "REP-000001",
        given: "Ines",
        family: "Calloway",
        dob: "1971-06-05",
        sex: "female",
        weight_kg: "66",
        height_cm: "170",
        baseline: ("126", "80"),
        scheduled_at: "",
    };
    let session = seat(&app.app, &prescriber, &nurse, &spec).await.expect("seated");
    let view = app.app.session_view(&nurse, session).await.unwrap();
    let pid = view.session.patient_id.to_string();
    let s = app.login(Role::Prescriber).await;
    let url = format!("/api/patients/{pid}/assessments");
    s.post_json(&url, &json!({"instrument": "hama", "items": "2,2,2,2,2,2,2,2,2,2,2,2,2,2", "taken_at": "2026-11-25T09:00"}))
        .await
        .assert_status(201, "HAM-A baseline");
    app.advance_minutes(40);
    let readings: Vec<ReadingInput> = [("systolic", "148"), ("diastolic", "90"), ("heart_rate", "84")]
        .iter()
        .map(|(v, x)| ReadingInput { vital: (*v).into(), value: (*x).into(), observed_at: String::new() })
        .collect();
    app.app.manual_readings(&nurse, session, &readings).await.expect("readings after the dose");
    app.advance_minutes(30);
    // The login has timed out meanwhile; the prescriber logs in again.
    let s = app.login(Role::Prescriber).await;
    s.post_json(
        &url,
        &json!({"instrument": "hama", "items": "1,1,1,1,1,1,1,1,1,1,1,1,1,1", "session": session.to_string(), "timepoint": "1h"}),
    )
    .await
    .assert_status(201, "HAM-A an hour after the dose");
    pid
}

async fn a_prescriber_downloads_the_progress_report_as_a_pdf(app: &TestApp) {
    let pid = treated_patient(app).await;
    let ui = app.login(Role::Prescriber).await;
    let r = ui.get(&format!("/patients/{pid}/report.pdf")).await;
    r.assert_status(200, "the report from the staff UI");
    assert_eq!(r.header("content-type"), "application/pdf");
    let disposition = r.header("content-disposition");
    assert!(disposition.starts_with("attachment; filename=\"progress-report-2026-11-26-"), "{disposition}");
    assert!(
        !disposition.contains("Calloway") && !disposition.contains("Ines") && !disposition.contains("REP-"),
        "no patient identifiers in the file name"
    );
    assert!(r.text.starts_with("%PDF-"));
    // The content streams are not compressed: the text shows as PDF strings.
    for needle in [
        "(Patient progress report)",
        "Calloway, Ines",
        "(REP-000001)",
        "1971-06-05",
        "HAM-A",
        "0.5 mg/kg",
        "Generalized anxiety disorder",
        DISCLAIMER,
        "126/80",
        "148/90",
        "Dr Pia Prescriber",
    ] {
        assert!(r.text.contains(needle), "the PDF shows {needle:?}");
    }
    assert!(
        r.text.matches("/Type /Page\n").count() + r.text.matches("/Type /Page ").count() + r.text.matches("/Type /Page/").count() >= 1,
        "one page at least"
    );

    let api = app.login_api("pia.prescriber").await;
    let r = api.get(&format!("/api/patients/{pid}/report.pdf")).await;
    r.assert_status(200, "the report from the API");
    assert_eq!(r.header("content-type"), "application/pdf");
    assert!(r.text.starts_with("%PDF-") && r.text.contains(DISCLAIMER));

    // Each download is audited as a read of the patient.
    let ctx = AuditCtx {
        actor: Actor { user_id: None, username: "test".into(), role: None, session_ref: None, client_addr: None },
        at: app.clock.now(),
        purpose: "operations",
    };
    let filter = AuditFilter { entity_type: Some("ProgressReport".into()), page: Page { limit: 50, offset: 0 }, ..Default::default() };
    let rows = app.app.store().search_audit(&ctx, &filter).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|e| e.event.patient_id.map(|p| p.to_string()) == Some(pid.clone()) && e.event.actor.username == "pia.prescriber"));

    // The OpenAPI document lists the route.
    let doc = app.anon().get("/api/openapi.json").await.json();
    assert!(doc["paths"]["/api/patients/{id}/report.pdf"]["get"].is_object(), "documented");
}

async fn the_report_is_refused_to_researchers_strangers_and_unknown_patients(app: &TestApp) {
    let pid = treated_patient(app).await;
    let researcher = app.login_api("rex.researcher").await;
    let r = researcher.get(&format!("/api/patients/{pid}/report.pdf")).await;
    r.assert_status(403, "researchers see de-identified data only");
    assert!(!r.text.contains("Calloway"));
    app.anon().get(&format!("/api/patients/{pid}/report.pdf")).await.assert_status(401, "not logged in");
    let prescriber = app.login_api("pia.prescriber").await;
    prescriber.get("/api/patients/0b0f6c1e-5a4f-4c6a-9a57-0c1f2d3e4f50/report.pdf").await.assert_status(404, "no such patient");
    prescriber.get("/api/patients/not-an-id/report.pdf").await.assert_status(404, "not an id");
}

async fn a_researcher_downloads_the_de_identified_clinic_outcomes_report(app: &TestApp) {
    treated_patient(app).await;
    let researcher = app.login_api("rex.researcher").await;
    let r = researcher.get("/api/research/outcomes.pdf").await;
    r.assert_status(200, "the clinic report from the API");
    assert_eq!(r.header("content-type"), "application/pdf");
    assert_eq!(r.header("content-disposition"), "attachment; filename=\"clinic-outcomes-2026-11-26.pdf\"");
    assert!(r.text.starts_with("%PDF-"));
    for needle in [
        "(Clinic outcomes report)",
        "the whole clinic",
        "The clinic beside the published studies",
        "Response and remission",
        "Time to response",
        "Durability of benefit",
        "Tolerability",
        "Subgroups and biomarkers",
        "de-identified aggregate data",
        "1 match, 1 treated, 1 evaluable",
    ] {
        assert!(r.text.contains(needle), "the PDF shows {needle:?}");
    }
    for identifier in ["Calloway", "Ines", "REP-000001", "1971-06-05"] {
        assert!(!r.text.contains(identifier), "no identifier in the clinic report: {identifier}");
    }

    // The filter of the outcomes page, named in the report; a malformed field is refused by name.
    let ui = app.login(Role::Researcher).await;
    let r = ui.get("/research/outcomes.pdf?diagnosis=gad&age_min=40").await;
    r.assert_status(200, "the filtered report from the staff UI");
    assert!(r.text.contains("(Filter: Diagnosis)") && r.text.contains("(Filter: Age)") && r.text.contains("40 years or older"));
    let page = ui.get("/research/outcomes?diagnosis=gad").await;
    assert!(page.text.contains("/research/outcomes.pdf?diagnosis=gad"), "the outcomes page links the report with its filter");
    let bad = researcher.get("/api/research/outcomes.pdf?age_min=abc").await;
    bad.assert_status(422, "a malformed filter");
    assert!(bad.problem_fields().contains(&"age_min".to_owned()), "{:?}", bad.problem_fields());

    // Clinical roles see patients, not the research cohort.
    let nurse = app.login_api("nina.nurse").await;
    nurse.get("/api/research/outcomes.pdf").await.assert_status(403, "a nurse");
    app.anon().get("/api/research/outcomes.pdf").await.assert_status(401, "not logged in");

    // Each download is audited, without a patient.
    let ctx = AuditCtx {
        actor: Actor { user_id: None, username: "test".into(), role: None, session_ref: None, client_addr: None },
        at: app.clock.now(),
        purpose: "operations",
    };
    let filter =
        AuditFilter { entity_type: Some("ClinicOutcomesReport".into()), page: Page { limit: 50, offset: 0 }, ..Default::default() };
    let rows = app.app.store().search_audit(&ctx, &filter).await.unwrap();
    assert_eq!(rows.len(), 2, "two downloads");
    assert!(rows.iter().all(|e| e.event.patient_id.is_none() && e.event.actor.username == "rex.researcher"));

    let doc = app.anon().get("/api/openapi.json").await.json();
    assert!(doc["paths"]["/api/research/outcomes.pdf"]["get"].is_object(), "documented");
}
