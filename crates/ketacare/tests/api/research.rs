//! Cohort outcomes for research: the clinic's patients counted on each published study's own
//! definition, filters, CSV, de-identification, refusal for clinical roles, and the audit.

use crate::helpers::{http_tests, register, Session, TestApp};
use ketacare_domain::access::Role;
use serde_json::{json, Value};

http_tests!(
    the_clinic_is_counted_on_taylors_definition_beside_the_published_result,
    filters_narrow_the_cohort_and_bad_filters_name_their_field,
    only_researchers_and_the_director_see_cohort_outcomes_and_every_read_is_audited,
);

/// LSAS answers (48 items, 0-3) adding up to `total`.
fn lsas(total: u32) -> String {
    let mut left = total;
    (0..48)
        .map(|_| {
            let v = left.min(3);
            left -= v;
            v.to_string()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A SAD patient with an IV 0.5 mg/kg infusion (a treatment visit that states route and dose),
/// LSAS 100 the day before and `after` the day after.
async fn sad_patient(nurse: &Session, prescriber: &Session, mrn: &str, family: &str, after: u32, day: u32) -> String {
    let pid = register(nurse, mrn, family, "Test", "1985-03-04", "female").await;
    prescriber
        .post_json(&format!("/api/patients/{pid}/records"), &json!({"kind": "diagnosis", "fields": {"choice": "sad"}}))
        .await
        .assert_status(201, "diagnosis");
    let url = format!("/api/patients/{pid}/assessments");
    prescriber
        .post_json(&url, &json!({"instrument": "lsas", "items": lsas(100), "taken_at": format!("2026-11-{:02}T09:00", day)}))
        .await
        .assert_status(201, "baseline LSAS");
    prescriber
        .post_json(
            &format!("/api/patients/{pid}/records"),
            &json!({"kind": "encounter", "fields": {"encounter_kind": "treatment", "start": format!("2026-11-{:02}T10:00", day + 1), "end": format!("2026-11-{:02}T12:00", day + 1), "reason_for_visit": "IV ketamine 0.5 mg/kg over 40 min"}}),
        )
        .await
        .assert_status(201, "infusion");
    prescriber
        .post_json(&url, &json!({"instrument": "lsas", "items": lsas(after), "taken_at": format!("2026-11-{:02}T09:00", day + 2)}))
        .await
        .assert_status(201, "LSAS after");
    pid
}

fn evidence<'a>(body: &'a Value, study: &str) -> &'a Value {
    body["evidence"].as_array().expect("evidence").iter().find(|e| e["study"] == study).unwrap_or_else(|| panic!("no {study} in {body}"))
}

async fn four_sad_patients(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let prescriber = app.login(Role::Prescriber).await;
    // Reductions 60 %, exactly 35 % (not "above 35 %"), 40 % and 10 %.
    for (i, (family, after)) in [("Ashdown", 40), ("Brightwell", 65), ("Corrigan", 60), ("Dunmore", 90)].iter().enumerate() {
        sad_patient(&nurse, &prescriber, &format!("RS-{i:04}"), family, *after, 10 + i as u32 * 3).await;
    }
}

async fn the_clinic_is_counted_on_taylors_definition_beside_the_published_result(app: &TestApp) {
    four_sad_patients(app).await;
    let researcher = app.login(Role::Researcher).await;
    let r = researcher.get("/api/research/outcomes").await;
    r.assert_status(200, "cohort outcomes");
    let body = r.json();
    assert_eq!((body["patients"].as_u64(), body["treated"].as_u64(), body["evaluable"].as_u64()), (Some(4), Some(4), Some(4)), "{body}");
    let taylor = evidence(&body, "taylor-2018");
    assert_eq!((taylor["published"]["k"].as_u64(), taylor["published"]["n"].as_u64()), (Some(6), Some(18)));
    assert_eq!((taylor["clinic"]["k"].as_u64(), taylor["clinic"]["n"].as_u64()), (Some(2), Some(4)), "strictly above 35 %: {taylor}");
    assert_eq!(taylor["small"], true, "4 patients are fewer than the small-numbers threshold");
    // Wilson 2/4: 0.150 to 0.850.
    let lo = taylor["clinic"]["lo"].as_f64().unwrap();
    let hi = taylor["clinic"]["hi"].as_f64().unwrap();
    assert!((lo - 0.150).abs() < 0.002 && (hi - 0.850).abs() < 0.002, "{taylor}");
    // Glue 2017 is subcutaneous: no clinic patient qualifies, and the page says why.
    assert!(evidence(&body, "glue-2017")["note"].as_str().unwrap().contains("No patient"));
    assert_eq!(body["overall"]["response"]["k"], 2);
    assert_eq!(body["by_dose_mg_per_kg"][0]["group"], "0.5");
    assert_eq!(body["by_route"][0]["group"], "iv");
    assert!(body["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("chance")));
    for name in ["Ashdown", "Brightwell", "Corrigan", "Dunmore", "RS-0001", "1985-03-04"] {
        assert!(!r.text.contains(name), "{name} leaked into the research view");
    }
    let csv = researcher.get("/api/research/outcomes.csv").await;
    csv.assert_status(200, "CSV");
    assert!(csv.header("content-type").starts_with("text/csv"));
    assert!(csv.text.starts_with("section,group,measure,n,k,estimate,lo,hi,note"));
    assert!(csv.text.contains("evidence,taylor-2018,clinic_response,4,2,0.5000,0.1500,0.8500"), "{}", csv.text);
    assert!(!csv.text.contains("Ashdown"));
    // The page shows the same numbers beside the study.
    let page = researcher.get("/research/outcomes?diagnosis=sad").await;
    page.assert_status(200, "outcomes page");
    assert!(page.text.contains("Taylor 2018") && page.text.contains("50 % (15–85)") && page.text.contains("33 % (16–56)"), "{}", page.text);
    assert!(!page.text.contains("Ashdown"));
}

async fn filters_narrow_the_cohort_and_bad_filters_name_their_field(app: &TestApp) {
    four_sad_patients(app).await;
    let researcher = app.login(Role::Researcher).await;
    let gad = researcher.get("/api/research/outcomes?diagnosis=gad").await.json();
    assert_eq!(gad["patients"], 0);
    let sad = researcher.get("/api/research/outcomes?diagnosis=sad&route=iv&sex=female&age_min=30&age_max=50").await.json();
    assert_eq!(sad["patients"], 4);
    let later = researcher.get("/api/research/outcomes?from=2026-11-15").await.json();
    assert_eq!(later["patients"], 2, "first doses on 11, 14, 17 and 20 November");
    let r = researcher.get("/api/research/outcomes?from=2026-13-01&route=oral&age_min=abc").await;
    r.assert_status(422, "bad filter");
    let fields = r.problem_fields();
    for f in ["from", "route", "age_min"] {
        assert!(fields.contains(&f.to_owned()), "{f} not named in {}", r.text);
    }
    assert!(r.field_message("route").contains("iv, sc, im, in"));
    let page = researcher.get("/research/outcomes?to=yesterday").await;
    page.assert_status(422, "bad filter on the page");
    assert!(page.text.contains("YYYY-MM-DD"));
}

async fn only_researchers_and_the_director_see_cohort_outcomes_and_every_read_is_audited(app: &TestApp) {
    four_sad_patients(app).await;
    for role in [Role::Nurse, Role::Prescriber, Role::Admin] {
        let s = app.login(role).await;
        s.get("/api/research/outcomes").await.assert_status(403, &format!("{role:?}"));
    }
    let director = app.login(Role::MedicalDirector).await;
    director.get("/api/research/outcomes").await.assert_status(200, "medical director");
    let researcher = app.login(Role::Researcher).await;
    researcher.get("/api/research/outcomes").await.assert_status(200, "researcher");
    let admin = app.login(Role::Admin).await;
    let log = admin.get("/api/audit?action=R").await.json();
    let reads: Vec<&Value> = log.as_array().unwrap().iter().filter(|e| e["entity_type"] == "Cohort").collect();
    assert!(reads.len() >= 2, "each cohort read is audited: {log}");
    assert!(reads.iter().any(|e| e["detail"].as_str().unwrap_or_default().contains("4 patients")), "{reads:?}");
}
