//! Research exports over HTTP: a researcher downloads the clinic as CSV with its data dictionary
//! and as OMOP CDM v5.4, both de-identified (no name or MRN of any patient anywhere, dates
//! shifted with intervals kept, ages above 89 as 90+, free text dropped); other roles are
//! refused; every export is audited.

use crate::helpers::*;
use chrono::{NaiveDate, TimeZone, Utc};
use ketacare_domain::access::Role;
use ketacare_domain::ids::PatientId;
use reqwest::Method;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

http_tests!(
    a_researcher_downloads_the_clinic_as_deidentified_csv_with_its_data_dictionary,
    a_researcher_downloads_the_clinic_as_omop_cdm_tables,
    only_researchers_and_the_medical_director_may_export,
    each_export_writes_one_audit_entry,
);

/// Text that must never appear in an export: names, MRNs, dates of birth and free text.
const SECRETS: [&str; 12] = [
    "Quartermain",
    "Zebedee",
    "Featherstonehaugh",
    "Ottoline",
    "EXP-0001",
    "EXP-0002",
    "1931-03-04",
    "1980-05-17",
    "Elmwood",
    "Sertraline",
    "Westbrook",
    "07700 900123",
];

struct Seeded {
    /// The patient aged 95.
    old: String,
    /// The patient with a session, ratings, labs and findings.
    treated: String,
}

async fn record(s: &Session, pid: &str, body: serde_json::Value) {
    s.post_json(&format!("/api/patients/{pid}/records"), &body).await.assert_status(201, &format!("record {body}"));
}

/// Two patients: one aged 95 with a diagnosis, one with a dosed session and a bit of everything.
async fn seed(app: &TestApp) -> Seeded {
    let prescriber = app.login(Role::Prescriber).await;
    let nurse = app.login(Role::Nurse).await;
    let mut body = patient_body("EXP-0001", "Quartermain", "Zebedee", "1931-03-04", "female");
    body["phone"] = json!("07700 900123");
    let r = prescriber.post_json("/api/patients", &body).await;
    r.assert_status(201, "register the 95-year-old");
    let old = r.json()["id"].as_str().unwrap().to_owned();
    record(&prescriber, &old, json!({"kind": "diagnosis", "fields": {"choice": "gad", "onset": "2001-06-01"}})).await;
    record(
        &prescriber,
        &old,
        json!({"kind": "encounter", "fields": {"encounter_kind": "follow_up", "start": "2026-11-03T10:00", "end": "2026-11-03T10:30", "reason_for_visit": "Westbrook review", "note": "Elmwood"}}),
    )
    .await;

    let treated = register(&prescriber, "EXP-0002", "Featherstonehaugh", "Ottoline", "1980-05-17", "male").await;
    record(
        &prescriber,
        &treated,
        json!({"kind": "diagnosis", "fields": {"choice": "gad", "onset": "2020-02-01", "note": "lives on Elmwood Road"}}),
    )
    .await;
    record(
        &nurse,
        &treated,
        json!({"kind": "medication", "fields": {"name": "Sertraline", "rxnorm": "36437", "dose": "50 mg once daily", "start": "2025-01-10", "stop": "2025-06-01"}}),
    )
    .await;
    record(
        &nurse,
        &treated,
        json!({"kind": "observation", "fields": {"code": "8310-5", "display": "Body temperature", "value": "36.8", "unit": "Cel", "effective": "2026-11-20T08:00"}}),
    )
    .await;
    let url = format!("/api/patients/{treated}/assessments");
    for (items, at) in [("2,2,2,1,1,1,1", "2026-10-01T09:00"), ("1,1,0,0,1,0,0", "2026-11-20T09:00")] {
        nurse
            .post_json(&url, &json!({"instrument": "gad7", "items": items, "taken_at": at, "note": "seen with Westbrook"}))
            .await
            .assert_status(201, "GAD-7");
    }
    nurse
        .post_json(
            &format!("/api/patients/{treated}/labs"),
            &json!({"test": "alt", "value": 32, "unit": "U/L", "uln": 40, "sampled_at": "2026-11-02T08:00", "lab": "Westbrook lab"}),
        )
        .await
        .assert_status(201, "ALT");
    nurse
        .post_json(&format!("/api/patients/{treated}/safety-events"), &json!({"kind": "craving", "score": 3, "note": "Westbrook"}))
        .await
        .assert_status(201, "craving");

    // A session with a double-checked SC dose of 0.5 mg/kg on 70 kg and an adverse event.
    nurse.post_json(&format!("/api/patients/{treated}/weights"), &json!({"value": "70"})).await.assert_status(201, "weight");
    let o = prescriber
        .post_json(&format!("/api/patients/{treated}/orders"), &json!({"route": "sc", "mg_per_kg": "0.5", "concentration_mg_per_ml": 50}))
        .await;
    o.assert_status(201, "order");
    let o = o.json();
    let oid = o["record_id"].as_str().unwrap().to_owned();
    nurse
        .post_json(
            &format!("/api/orders/{oid}/double-check"),
            &json!({"base_version": 1, "weight_kg": "70", "concentration_mg_per_ml": "50", "dose_mg": o["dose_mg"]}),
        )
        .await
        .assert_status(200, "double check");
    let r = nurse.post_json(&format!("/api/patients/{treated}/sessions"), &json!({"chair": "ROOM1^CHAIR2", "order_id": oid})).await;
    r.assert_status(201, "book");
    let sid = r.json()["id"].as_str().unwrap().to_owned();
    let act = |body: serde_json::Value| {
        let nurse = nurse.clone();
        let sid = sid.clone();
        async move { nurse.post_json(&format!("/api/sessions/{sid}/actions"), &body).await }
    };
    act(json!({"action": "check_in"})).await.assert_status(200, "check in");
    act(json!({"action": "start_checks"})).await.assert_status(200, "start checks");
    nurse
        .post_json(
            &format!("/api/sessions/{sid}/readings"),
            &json!({"readings": [{"vital": "systolic", "value": 124}, {"vital": "diastolic", "value": 78}, {"vital": "heart_rate", "value": 74}]}),
        )
        .await
        .assert_status(200, "baseline");
    act(json!({"action": "checks", "consent": "yes", "escort": "yes", "pregnancy_test": "not_applicable"}))
        .await
        .assert_status(200, "checks");
    act(json!({"action": "start_dose"})).await.assert_status(200, "start dose");
    act(json!({"action": "dose_given", "site": "abdomen"})).await.assert_status(200, "dose given");
    act(json!({"action": "adverse_event", "adverse_event": {"kind": "other", "description": "fainted near Elmwood Road", "grade": "2", "serious": "no", "action": "treated", "outcome": "resolved"}}))
        .await
        .assert_status(200, "adverse event");
    Seeded { old, treated }
}

/// GETs `path` and returns the status, the headers and the raw body.
async fn download(s: &Session, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = s.request(Method::GET, path).send().await.expect("request reaches the server");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

/// The files of a zip, by name.
fn unzip(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("the body is a zip");
    let mut out = BTreeMap::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).expect("zip entry");
        let mut s = String::new();
        f.read_to_string(&mut s).expect("UTF-8 CSV");
        out.insert(f.name().to_owned(), s);
    }
    out
}

/// A CSV file as its header and rows of column → value.
fn table(text: &str) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().expect("header").iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.expect("a CSV row");
            assert_eq!(rec.len(), header.len(), "every row has as many cells as the header");
            header.iter().cloned().zip(rec.iter().map(str::to_owned)).collect()
        })
        .collect();
    (header, rows)
}

/// A researcher's download of `format`, checked for leaks and for the dictionary.
async fn researcher_export(app: &TestApp, format: &str) -> BTreeMap<String, String> {
    let researcher = app.login(Role::Researcher).await;
    let (status, headers, body) = download(&researcher, &format!("/api/research/export/{format}")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers.get("content-type").unwrap(), "application/zip");
    let disposition = headers.get("content-disposition").unwrap().to_str().unwrap();
    assert!(disposition.starts_with("attachment; filename=\"ketacare-") && disposition.ends_with(".zip\""), "{disposition}");
    let files = unzip(&body);
    for (name, text) in &files {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{name} contains {secret}");
        }
    }
    // The dictionary lists exactly the columns of every file, its own included.
    let (_, dict) = table(&files["data_dictionary.csv"]);
    let listed: BTreeSet<(String, String)> = dict.iter().map(|r| (r["table"].clone(), r["column"].clone())).collect();
    assert_eq!(listed.len(), dict.len(), "no column is listed twice");
    let mut actual = BTreeSet::new();
    for (name, text) in &files {
        for c in table(text).0 {
            actual.insert((name.clone(), c));
        }
    }
    assert_eq!(listed, actual, "the data dictionary lists every column of every file and nothing else");
    assert!(dict.iter().all(|r| !r["type"].is_empty() && !r["description"].is_empty()), "every column has a type and a description");
    files
}

fn research_id(app: &TestApp, pid: &str) -> String {
    app.app.deidentifier().research_id(PatientId::parse(pid).unwrap())
}

fn shift_days(app: &TestApp, pid: &str) -> i64 {
    app.app.deidentifier().shift(PatientId::parse(pid).unwrap()).days
}

async fn a_researcher_downloads_the_clinic_as_deidentified_csv_with_its_data_dictionary(app: &TestApp) {
    let s = seed(app).await;
    let files = researcher_export(app, "csv").await;
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "adverse_events.csv",
            "assessment_items.csv",
            "assessments.csv",
            "data_dictionary.csv",
            "diagnoses.csv",
            "encounters.csv",
            "lab_results.csv",
            "medications.csv",
            "observations.csv",
            "patients.csv",
            "safety_events.csv",
            "session_vitals.csv",
            "treatment_sessions.csv",
        ]
    );
    let (old, treated) = (research_id(app, &s.old), research_id(app, &s.treated));
    let (_, patients) = table(&files["patients.csv"]);
    assert_eq!(patients.len(), 2);
    let row =
        |rows: &[HashMap<String, String>], rid: &str| rows.iter().find(|r| r["research_id"] == rid).cloned().expect("the patient's row");
    let p_old = row(&patients, &old);
    assert_eq!(p_old["age_at_export"], "90+", "a 95-year-old is 90+");
    assert_eq!((p_old["sex"].as_str(), p_old["sessions"].as_str()), ("female", "0"));
    let p_treated = row(&patients, &treated);
    assert_eq!((p_treated["age_at_export"].as_str(), p_treated["age_at_first_session"].as_str()), ("46", "46"));

    // Dates are shifted by the patient's offset; intervals within the patient are kept.
    let shift = chrono::Duration::days(shift_days(app, &s.treated));
    assert_ne!(shift.num_days(), 0);
    let (_, assessments) = table(&files["assessments.csv"]);
    let mut mine: Vec<&HashMap<String, String>> = assessments.iter().filter(|r| r["research_id"] == treated).collect();
    mine.sort_by_key(|r| r["assessment_number"].parse::<u32>().unwrap());
    assert_eq!(mine.len(), 2);
    let at = |r: &HashMap<String, String>| chrono::DateTime::parse_from_rfc3339(&r["taken_at"]).unwrap().with_timezone(&Utc);
    let first = Utc.with_ymd_and_hms(2026, 10, 1, 9, 0, 0).unwrap();
    assert_eq!(at(mine[0]), first + shift, "the first GAD-7 is moved by the patient's offset");
    assert_eq!((at(mine[1]) - at(mine[0])).num_days(), 50, "50 days apart, as taken");
    assert_eq!((mine[0]["total"].as_str(), mine[0]["total_loinc"].as_str(), mine[0]["band"].as_str()), ("10", "70274-6", "moderate"));
    assert_eq!(mine[1]["total"], "3");
    let (_, items) = table(&files["assessment_items.csv"]);
    let q1 = items.iter().find(|r| r["research_id"] == treated && r["assessment_number"] == "1" && r["item_key"] == "q1").unwrap();
    assert_eq!((q1["item_loinc"].as_str(), q1["answer"].as_str(), q1["answer_loinc"].as_str()), ("69725-0", "2", "LA6570-1"));

    let (_, diagnoses) = table(&files["diagnoses.csv"]);
    let d = row(&diagnoses, &old);
    assert_eq!((d["code"].as_str(), d["icd10_cm"].as_str(), d["status"].as_str()), ("21897009", "F41.1", "active"));
    let onset = NaiveDate::from_ymd_opt(2001, 6, 1).unwrap() + chrono::Duration::days(shift_days(app, &s.old));
    assert_eq!(d["onset_date"], onset.format("%Y-%m-%d").to_string());
    let (_, meds) = table(&files["medications.csv"]);
    let m = row(&meds, &treated);
    assert_eq!(m["rxnorm"], "36437");
    let (start, stop) =
        (NaiveDate::parse_from_str(&m["start_date"], "%Y-%m-%d").unwrap(), NaiveDate::parse_from_str(&m["stop_date"], "%Y-%m-%d").unwrap());
    assert_eq!((stop - start).num_days(), 142, "the medication's course keeps its length");

    let (_, sessions) = table(&files["treatment_sessions.csv"]);
    let t = row(&sessions, &treated);
    assert_eq!(
        (t["session_number"].as_str(), t["route"].as_str(), t["dose_mg"].as_str(), t["mg_per_kg"].as_str(), t["order_status"].as_str()),
        ("1", "sc", "35", "0.5", "checked")
    );
    assert!(!t["dose_started_at"].is_empty() && t["phase"] == "monitoring", "{t:?}");
    let (_, vitals) = table(&files["session_vitals.csv"]);
    let v = row(&vitals, &treated);
    assert_eq!((v["baseline_systolic"].as_str(), v["baseline_diastolic"].as_str(), v["peak_systolic"].as_str()), ("124", "78", "124"));
    let (header, aes) = table(&files["adverse_events.csv"]);
    assert!(!header.iter().any(|c| c.contains("description")), "descriptions are not exported");
    let ae = row(&aes, &treated);
    assert_eq!(
        (ae["kind"].as_str(), ae["grade"].as_str(), ae["serious"].as_str(), ae["outcome"].as_str()),
        ("other", "2", "no", "resolved")
    );
    let (_, labs) = table(&files["lab_results.csv"]);
    let l = row(&labs, &treated);
    assert_eq!((l["loinc"].as_str(), l["value"].as_str(), l["uln"].as_str(), l["multiple_of_uln"].as_str()), ("1742-6", "32", "40", "0.8"));
    let (_, obs) = table(&files["observations.csv"]);
    assert!(obs.iter().any(|r| r["research_id"] == treated && r["code"] == "8310-5" && r["value"] == "36.8" && r["unit"] == "Cel"));
    assert!(obs.iter().any(|r| r["research_id"] == treated && r["code"] == "29463-7" && r["value"] == "70" && r["unit"] == "kg"));
    let (_, encounters) = table(&files["encounters.csv"]);
    let e = row(&encounters, &treated);
    assert_eq!((e["kind"].as_str(), e["session_number"].as_str()), ("treatment", "1"), "the session's visit");
    let f = row(&encounters, &old);
    assert_eq!((f["kind"].as_str(), f["session_number"].as_str()), ("follow_up", ""));
    let (start, end) =
        (chrono::DateTime::parse_from_rfc3339(&f["start_at"]).unwrap(), chrono::DateTime::parse_from_rfc3339(&f["end_at"]).unwrap());
    assert_eq!((end - start).num_minutes(), 30, "the visit keeps its length");
    let (_, safety) = table(&files["safety_events.csv"]);
    assert_eq!(row(&safety, &treated)["craving_score"], "3");
}

async fn a_researcher_downloads_the_clinic_as_omop_cdm_tables(app: &TestApp) {
    let s = seed(app).await;
    let files = researcher_export(app, "omop").await;
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "condition_occurrence.csv",
            "data_dictionary.csv",
            "drug_exposure.csv",
            "measurement.csv",
            "observation.csv",
            "observation_period.csv",
            "person.csv",
            "visit_occurrence.csv",
        ]
    );
    let (_, persons) = table(&files["person.csv"]);
    assert_eq!(persons.len(), 2);
    let person = |rid: &str| persons.iter().find(|r| r["person_source_value"] == rid).cloned().expect("the person");
    let old = person(&research_id(app, &s.old));
    assert_eq!(old["gender_concept_id"], "8532");
    let year: i32 = old["year_of_birth"].parse().unwrap();
    assert!((1935..=1937).contains(&year), "a 95-year-old is exported as 90 on the shifted export day, not born in 1931: {year}");
    assert!(old["month_of_birth"].is_empty() && old["day_of_birth"].is_empty() && old["birth_datetime"].is_empty());
    let treated = person(&research_id(app, &s.treated));
    let tid = treated["person_id"].clone();
    assert_eq!(treated["gender_concept_id"], "8507");

    let (_, visits) = table(&files["visit_occurrence.csv"]);
    assert_eq!(visits.len(), 2, "the session and the follow-up visit");
    let visit = visits.iter().find(|v| v["visit_source_value"] == "treatment_session/monitoring").expect("the session's visit");
    let follow_up = visits.iter().find(|v| v["visit_source_value"] == "encounter/follow_up").expect("the follow-up visit");
    assert_eq!(follow_up["person_id"], old["person_id"]);
    assert!(follow_up["visit_end_datetime"].ends_with(":30:00"), "{follow_up:?}");
    assert_eq!(
        (visit["person_id"].as_str(), visit["visit_concept_id"].as_str(), visit["visit_type_concept_id"].as_str()),
        (tid.as_str(), "9202", "32817")
    );
    let (_, drugs) = table(&files["drug_exposure.csv"]);
    assert_eq!(drugs.len(), 1);
    let d = &drugs[0];
    assert_eq!(
        (d["drug_concept_id"].as_str(), d["quantity"].as_str(), d["route_source_value"].as_str(), d["dose_unit_source_value"].as_str()),
        ("785649", "35", "sc", "mg")
    );
    assert_eq!((d["visit_occurrence_id"].as_str(), d["drug_source_value"].as_str()), (visit["visit_occurrence_id"].as_str(), "6130"));
    assert!(d["sig"].contains("0.5 mg/kg on 70 kg"), "{}", d["sig"]);

    let (_, conditions) = table(&files["condition_occurrence.csv"]);
    assert_eq!(conditions.len(), 2);
    assert!(conditions.iter().all(|c| c["condition_source_value"] == "F41.1" && c["condition_type_concept_id"] == "32817"));
    let (_, measurements) = table(&files["measurement.csv"]);
    let m = |concept: &str| measurements.iter().filter(|r| r["person_id"] == tid && r["measurement_concept_id"] == concept).count();
    assert_eq!(
        (m("3004249"), m("3012888"), m("3025315"), m("3020891"), m("3006923")),
        (1, 1, 1, 1, 1),
        "baseline BP, weight, temperature, ALT"
    );
    let sbp = measurements.iter().find(|r| r["measurement_concept_id"] == "3004249").unwrap();
    assert_eq!((sbp["value_as_number"].as_str(), sbp["unit_concept_id"].as_str()), ("124", "8876"));
    let alt = measurements.iter().find(|r| r["measurement_concept_id"] == "3006923").unwrap();
    assert_eq!((alt["range_high"].as_str(), alt["unit_concept_id"].as_str()), ("40", "8645"));

    let (_, observations) = table(&files["observation.csv"]);
    let totals: Vec<&HashMap<String, String>> = observations.iter().filter(|r| r["observation_source_value"] == "70274-6").collect();
    assert_eq!(totals.len(), 2, "both GAD-7 totals");
    let dates: Vec<NaiveDate> = totals.iter().map(|r| NaiveDate::parse_from_str(&r["observation_date"], "%Y-%m-%d").unwrap()).collect();
    assert_eq!((dates[1] - dates[0]).num_days().abs(), 50, "intervals are kept");
    let shifted = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap() + chrono::Duration::days(shift_days(app, &s.treated));
    assert!(dates.contains(&shifted), "dates are shifted by the patient's offset");
    assert_eq!(observations.iter().filter(|r| r["observation_source_value"] == "69725-0").count(), 2, "item 1 of each GAD-7");
    let ae = observations.iter().find(|r| r["observation_source_value"] == "adverse_event.other").expect("the adverse event");
    assert_eq!((ae["value_as_number"].as_str(), ae["qualifier_source_value"].as_str()), ("2", "non-serious"));
    assert!(observations.iter().any(|r| r["observation_source_value"] == "safety_event.craving" && r["value_as_number"] == "3"));

    let (_, periods) = table(&files["observation_period.csv"]);
    assert_eq!(periods.len(), 2);
    let period = periods.iter().find(|r| r["person_id"] == tid).unwrap();
    assert!(period["observation_period_start_date"] <= period["observation_period_end_date"]);
}

async fn only_researchers_and_the_medical_director_may_export(app: &TestApp) {
    seed(app).await;
    for role in [Role::Nurse, Role::Prescriber, Role::Admin] {
        let s = app.login(role).await;
        let (status, _, body) = download(&s, "/api/research/export/csv").await;
        assert_eq!(status, 403, "{role:?}: {}", String::from_utf8_lossy(&body));
        s.get("/research/exports").await.assert_status(403, &format!("{role:?} opens the exports page"));
    }
    let (status, ..) = download(&app.anon(), "/api/research/export/csv").await;
    assert_eq!(status, 401);
    let director = app.login(Role::MedicalDirector).await;
    let r = director.get("/api/research/export/xlsx").await;
    r.assert_status(422, "unknown format");
    assert!(r.field_message("format").contains("csv") && r.field_message("format").contains("omop"), "{}", r.text);
    let (status, _, body) = download(&director, "/api/research/export/omop").await;
    assert_eq!(status, 200);
    assert!(unzip(&body).contains_key("person.csv"));
    let page = director.get("/research/exports").await;
    page.assert_status(200, "the exports page");
    for needle in ["/api/research/export/csv", "/api/research/export/omop", "90+", "data_dictionary.csv", "785649", "VERIFY"] {
        assert!(page.text.contains(needle), "the page shows {needle}");
    }
    // The nurse's refusal is in the audit trail.
    let audit = director.get("/api/audit?user=nina.nurse&outcome=denied").await.json();
    assert!(audit.as_array().unwrap().iter().any(|e| e["entity_type"] == "ResearchExport"), "{audit}");
}

async fn each_export_writes_one_audit_entry(app: &TestApp) {
    seed(app).await;
    let researcher = app.login(Role::Researcher).await;
    for format in ["csv", "csv", "omop"] {
        let (status, ..) = download(&researcher, &format!("/api/research/export/{format}")).await;
        assert_eq!(status, 200);
    }
    let director = app.login(Role::MedicalDirector).await;
    let audit = director.get("/api/audit?user=rex.researcher").await.json();
    let entries = audit.as_array().unwrap();
    let exports: Vec<&str> =
        entries.iter().filter(|e| e["entity_type"] == "ResearchExport").map(|e| e["detail"].as_str().unwrap_or("")).collect();
    assert_eq!(exports.len(), 3, "one entry per export: {exports:?}");
    assert_eq!(exports.iter().filter(|d| d.starts_with("format=csv; patients=2;")).count(), 2, "{exports:?}");
    assert_eq!(exports.iter().filter(|d| d.starts_with("format=omop; patients=2;")).count(), 1, "{exports:?}");
    assert!(entries.iter().filter(|e| e["entity_type"] == "ResearchExport").all(|e| e["action"] == "E" && e["outcome"] == "success"));
    // The store audited each page it read, with the number of patients and no one's identity.
    let cohort: Vec<&serde_json::Value> = entries.iter().filter(|e| e["entity_type"] == "Cohort").collect();
    assert!(cohort.len() >= 3, "{cohort:?}");
    assert!(
        cohort.iter().all(|e| e["patient_id"].is_null() && e["detail"].as_str().is_some_and(|d| d.ends_with("; 2 patients"))),
        "{cohort:?}"
    );
}
