//! HTTP tests: the FHIR R4 API. The CapabilityStatement, reads and searches (patient, code,
//! date), `$everything`, OperationOutcomes naming bad parameters, the researcher's view (no
//! identified reads; a de-identified bulk export), the transaction import (a new patient with
//! weights, diagnoses and prior scores; every bad resource reported and nothing written), the
//! bulk export, and a round trip to a second, empty server.

use crate::helpers::*;
use ketacare_domain::access::Role;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

http_tests!(
    metadata_lists_exactly_what_is_served,
    resources_are_read_and_searched_by_patient_code_and_date,
    everything_holds_the_chart_and_the_dose_shows_only_once_checked,
    bad_searches_get_an_operation_outcome_naming_the_parameter,
    researchers_get_no_names_only_a_deidentified_export,
    an_import_creates_a_patient_with_weights_diagnoses_and_prior_scores,
    a_bundle_with_two_bad_resources_reports_both_and_writes_nothing,
    the_bulk_export_serves_ndjson_to_its_owner_and_is_audited,
    a_round_trip_to_an_empty_server_keeps_the_clinical_content,
);

const SERVED: [&str; 14] = [
    "Patient",
    "Condition",
    "Encounter",
    "Observation",
    "QuestionnaireResponse",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationStatement",
    "AllergyIntolerance",
    "AdverseEvent",
    "CarePlan",
    "Provenance",
    "AuditEvent",
    "Questionnaire",
];

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().map(|a| a.iter().map(|e| e["resource"].clone()).collect()).unwrap_or_default()
}

fn of_type(bundle: &Value, t: &str) -> Vec<Value> {
    entries(bundle).into_iter().filter(|r| r["resourceType"] == t).collect()
}

fn has_code(r: &Value, system: &str, code: &str) -> bool {
    r["code"]["coding"].as_array().is_some_and(|a| a.iter().any(|c| c["system"] == system && c["code"] == code))
}

#[track_caller]
fn assert_fhir(r: &Resp, status: u16, what: &str) {
    r.assert_status(status, what);
    assert!(r.header("content-type").starts_with("application/fhir+json"), "{what}: content type {}", r.header("content-type"));
}

/// The issues of an OperationOutcome: (diagnostics, expression).
fn issues(r: &Resp) -> Vec<(String, String)> {
    let v = r.json();
    assert_eq!(v["resourceType"], "OperationOutcome", "{}", r.text);
    v["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["diagnostics"].as_str().unwrap_or("").to_owned(), i["expression"][0].as_str().unwrap_or("").to_owned()))
        .collect()
}

/// A patient as the demo clinic has them, built through the API: diagnosis, medication,
/// weight and height, a GAD-7, a plan and a double-checked dose order.
async fn demo_like_patient(app: &TestApp, mrn: &str) -> (String, String) {
    let prescriber = app.login(Role::Prescriber).await;
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&prescriber, mrn, "Rivera", "Ana Maria", "1984-03-27", "female").await;
    nurse.post_json(&format!("/api/patients/{pid}/weights"), &json!({"value": "72.4"})).await.assert_status(201, "weight");
    nurse.post_json(&format!("/api/patients/{pid}/heights"), &json!({"value": "168"})).await.assert_status(201, "height");
    prescriber
        .post_json(
            &format!("/api/patients/{pid}/records"),
            &json!({"kind": "diagnosis", "fields": {"choice": "gad", "onset": "2019-05-01"}}),
        )
        .await
        .assert_status(201, "diagnosis");
    nurse
        .post_json(
            &format!("/api/patients/{pid}/records"),
            &json!({"kind": "medication", "fields": {"name": "Sertraline", "rxnorm": "36437", "dose": "50 mg once daily", "start": "2026-01-10"}}),
        )
        .await
        .assert_status(201, "medication");
    nurse
        .post_json(
            &format!("/api/patients/{pid}/assessments"),
            &json!({"instrument": "gad7", "answers": [2, 2, 3, 2, 1, 2, 2], "taken_at": "2026-11-20T09:00"}),
        )
        .await
        .assert_status(201, "GAD-7");
    let plan =
        prescriber.post_json(&format!("/api/patients/{pid}/plans"), &json!({"protocol": "sc_ascending", "start": "2026-11-26"})).await;
    plan.assert_status(201, "plan");
    let plan_id = plan.json()["record_id"].as_str().unwrap().to_owned();
    let o = prescriber
        .post_json(
            &format!("/api/patients/{pid}/orders"),
            &json!({"route": "sc", "mg_per_kg": "0.25", "concentration_mg_per_ml": 50, "plan": plan_id, "step": "dose1"}),
        )
        .await;
    o.assert_status(201, "order");
    let order = o.json();
    (pid, order["record_id"].as_str().unwrap().to_owned())
}

async fn double_check(app: &TestApp, order: &str, dose: &Value) {
    let nurse = app.login(Role::Nurse).await;
    nurse
        .post_json(
            &format!("/api/orders/{order}/double-check"),
            &json!({"base_version": 1, "weight_kg": "72.4", "concentration_mg_per_ml": 50, "dose_mg": dose}),
        )
        .await
        .assert_status(200, "double check");
}

async fn order_dose(app: &TestApp, pid: &str) -> Value {
    let prescriber = app.login(Role::Prescriber).await;
    prescriber.get(&format!("/api/patients/{pid}/dosing")).await.json()["orders"][0]["dose_mg"].clone()
}

async fn metadata_lists_exactly_what_is_served(app: &TestApp) {
    let r = app.anon().get("/fhir/metadata").await;
    assert_fhir(&r, 200, "GET /fhir/metadata");
    let c = r.json();
    assert_eq!(
        (c["resourceType"].as_str(), c["fhirVersion"].as_str(), c["kind"].as_str()),
        (Some("CapabilityStatement"), Some("4.0.1"), Some("instance"))
    );
    let rest = &c["rest"][0];
    let types: Vec<&str> = rest["resource"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, SERVED.to_vec());
    let obs = rest["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Observation").unwrap();
    let params: Vec<&str> = obs["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(params, vec!["patient", "code", "date", "category"]);
    let audit = rest["resource"].as_array().unwrap().iter().find(|r| r["type"] == "AuditEvent").unwrap();
    assert_eq!(audit["interaction"], json!([{"code": "search-type"}]), "the audit trail is searched, not read by id");
    let patient = rest["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Patient").unwrap();
    let ops: Vec<&str> = patient["operation"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(ops, vec!["everything", "export"]);
    assert_eq!(rest["operation"][0]["name"], "export");
    assert_eq!(rest["interaction"][0]["code"], "transaction");
    // Everything but the statement needs credentials, and says so as an OperationOutcome.
    let r = app.anon().get("/fhir/Patient").await;
    assert_fhir(&r, 401, "anonymous search");
    assert_eq!(r.json()["issue"][0]["code"], "login");
}

async fn resources_are_read_and_searched_by_patient_code_and_date(app: &TestApp) {
    let (pid, _) = demo_like_patient(app, "FH-0001").await;
    let nurse = app.login(Role::Nurse).await;
    let r = nurse.get(&format!("/fhir/Patient/{pid}")).await;
    assert_fhir(&r, 200, "read Patient");
    let p = r.json();
    assert_eq!(p["name"][0]["family"], "Rivera");
    assert_eq!(p["name"][0]["given"], json!(["Ana", "Maria"]));
    assert_eq!(p["identifier"][0]["value"], "FH-0001");
    assert_eq!((p["birthDate"].as_str(), p["gender"].as_str()), (Some("1984-03-27"), Some("female")));

    let r = nurse.get(&format!("/fhir/Observation?patient=Patient/{pid}&code=http://loinc.org%7C29463-7")).await;
    assert_fhir(&r, 200, "weights");
    let b = r.json();
    assert_eq!((b["type"].as_str(), b["total"].as_u64()), (Some("searchset"), Some(1)));
    let w = &entries(&b)[0];
    assert_eq!(w["valueQuantity"], json!({"value": 72.4, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}));
    assert_eq!(w["category"][0]["coding"][0]["code"], "vital-signs");
    assert!(w["meta"]["profile"].as_array().unwrap().contains(&json!("http://hl7.org/fhir/StructureDefinition/bodyweight")));
    let id = w["id"].as_str().unwrap();
    assert_eq!(b["entry"][0]["fullUrl"].as_str().unwrap(), format!("{}/fhir/Observation/{id}", app.base));
    let r = nurse.get(&format!("/fhir/Observation/{id}")).await;
    assert_fhir(&r, 200, "read Observation");
    assert_eq!(r.json(), *w);

    // Dates: the GAD-7 total was taken on 2026-11-20, the weight and height today (2026-11-26).
    let dated = |q: &str| {
        let nurse = nurse.clone();
        let pid = pid.clone();
        let q = q.to_owned();
        async move {
            let r = nurse.get(&format!("/fhir/Observation?patient={pid}&{q}")).await;
            assert_fhir(&r, 200, &q);
            let mut codes: Vec<String> =
                entries(&r.json()).iter().map(|o| o["code"]["coding"][0]["code"].as_str().unwrap().to_owned()).collect();
            codes.sort();
            codes
        }
    };
    assert_eq!(dated("date=le2026-11-20").await, vec!["70274-6"]);
    assert_eq!(dated("date=ge2026-11-21").await, vec!["29463-7", "8302-2"]);
    assert_eq!(dated("date=ge2026-11-01&date=le2026-11-30").await.len(), 3);
    assert_eq!(dated("date=2026-11-20&code=70274-6").await, vec!["70274-6"]);
    assert_eq!(dated("category=survey").await, vec!["70274-6"]);

    let r = nurse.get(&format!("/fhir/Condition?patient=Patient/{pid}&code=http://snomed.info/sct|21897009")).await;
    assert_fhir(&r, 200, "conditions by SNOMED CT");
    let c = &entries(&r.json())[0];
    assert!(has_code(c, "http://hl7.org/fhir/sid/icd-10-cm", "F41.1"), "{c}");
    assert_eq!((c["onsetDateTime"].as_str(), c["clinicalStatus"]["coding"][0]["code"].as_str()), (Some("2019-05-01"), Some("active")));
    let r = nurse.get("/fhir/Patient?identifier=urn:ketacare:mrn|FH-0001").await;
    assert_eq!(r.json()["total"], 1);
    assert_eq!(nurse.get("/fhir/Patient?identifier=NOBODY-1").await.json()["total"], 0);
    let r = nurse.get("/fhir/Questionnaire/gad7").await;
    assert_fhir(&r, 200, "Questionnaire");
    assert_eq!(r.json()["item"][0]["code"][0]["code"], "69725-0");
    assert_fhir(&nurse.get(&format!("/fhir/Observation?patient={}", random_uuid())).await, 404, "unknown patient");
    assert_fhir(&nurse.get(&format!("/fhir/Observation/{}", random_uuid())).await, 404, "unknown id");

    // Every read above is in the audit trail of the patient, which the medical director reads as AuditEvents.
    let director = app.login(Role::MedicalDirector).await;
    let r = director.get(&format!("/fhir/AuditEvent?patient={pid}&action=R")).await;
    assert_fhir(&r, 200, "AuditEvent search");
    let events = entries(&r.json());
    assert!(events.iter().any(|e| e["agent"][0]["who"]["display"] == "nina.nurse"), "reads by the nurse are audited");
    assert!(events.iter().all(|e| e["entity"][0]["what"]["reference"] == format!("Patient/{pid}")));
    assert_fhir(&nurse.get(&format!("/fhir/AuditEvent?patient={pid}")).await, 403, "nurses do not read the audit trail");
}

async fn everything_holds_the_chart_and_the_dose_shows_only_once_checked(app: &TestApp) {
    let (pid, order) = demo_like_patient(app, "FH-0002").await;
    let nurse = app.login(Role::Nurse).await;
    let r = nurse.get(&format!("/fhir/Patient/{pid}/$everything")).await;
    assert_fhir(&r, 200, "$everything");
    let b = r.json();
    let mut types: Vec<&str> = b["entry"].as_array().unwrap().iter().map(|e| e["resource"]["resourceType"].as_str().unwrap()).collect();
    types.dedup();
    for t in [
        "Patient",
        "Condition",
        "MedicationStatement",
        "QuestionnaireResponse",
        "MedicationRequest",
        "CarePlan",
        "Observation",
        "Provenance",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    let mr = &of_type(&b, "MedicationRequest")[0];
    assert_eq!(mr["status"], "draft");
    assert!(mr.get("dosageInstruction").is_none(), "the checker works blind: {mr}");
    assert!(!r.text.contains("doseQuantity") && !r.text.contains("dosageInstruction"), "no dose anywhere before the check");
    assert_eq!(mr["medicationCodeableConcept"]["coding"][0]["code"], "6130");
    let qr = &of_type(&b, "QuestionnaireResponse")[0];
    assert_eq!(qr["questionnaire"].as_str().unwrap().split('|').next(), Some("urn:ketacare:questionnaire:gad7"));
    assert_eq!(qr["item"][2]["answer"][0]["valueCoding"]["code"], "LA6571-9", "item 3 answered 3: nearly every day");
    let total = of_type(&b, "Observation").into_iter().find(|o| has_code(o, "http://loinc.org", "70274-6")).expect("GAD-7 total");
    assert_eq!(total["valueQuantity"]["value"], 14);
    assert_eq!(total["derivedFrom"][0]["reference"], format!("QuestionnaireResponse/{}", qr["id"].as_str().unwrap()));
    assert_eq!(total["interpretation"][0]["text"], "Moderate");
    let prov = of_type(&b, "Provenance");
    assert!(
        prov.iter().any(|p| p["target"][0]["reference"] == format!("MedicationRequest/{order}/_history/1")
            && p["agent"][0]["who"]["display"] == "pia.prescriber"),
        "who ordered it"
    );

    let dose = order_dose(app, &pid).await;
    double_check(app, &order, &dose).await;
    let b = nurse.get(&format!("/fhir/Patient/{pid}/$everything")).await.json();
    let mr = &of_type(&b, "MedicationRequest")[0];
    assert_eq!(mr["status"], "active");
    let d = &mr["dosageInstruction"][0];
    assert_eq!(d["doseAndRate"][0]["doseQuantity"]["code"], "mg");
    assert_eq!(d["doseAndRate"][0]["doseQuantity"]["value"].to_string(), dose.as_str().unwrap());
    assert_eq!(d["route"]["coding"][0]["code"], "34206005", "SNOMED CT subcutaneous route");
    assert!(d["text"].as_str().unwrap().contains("(0.25 mg/kg)"), "{d}");
}

async fn bad_searches_get_an_operation_outcome_naming_the_parameter(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let pid = register(&nurse, "FH-0003", "Okafor", "Chidi", "1979-09-02", "male").await;
    let r = nurse.get(&format!("/fhir/Observation?patient={pid}&colour=red")).await;
    assert_fhir(&r, 400, "unknown parameter");
    let i = issues(&r);
    assert_eq!(i[0].1, "colour");
    assert!(i[0].0.contains("colour") && i[0].0.contains("supported: patient, code, date, category"), "{i:?}");
    let r = nurse.get(&format!("/fhir/Observation?patient={pid}&date=yesterday")).await;
    assert_fhir(&r, 400, "bad date");
    assert_eq!(issues(&r)[0].1, "date");
    assert!(issues(&r)[0].0.contains("YYYY-MM-DD"));
    let r = nurse.get(&format!("/fhir/Observation?patient={pid}&date=sa2026-01-01")).await;
    assert!(issues(&r)[0].0.contains("prefix sa"), "{}", r.text);
    let r = nurse.get("/fhir/Observation?code=29463-7").await;
    assert_fhir(&r, 400, "no patient");
    assert_eq!(issues(&r)[0].1, "patient");
    let r = nurse.get(&format!("/fhir/Condition?patient={pid}&category=x")).await;
    assert_eq!(issues(&r)[0].1, "category", "Condition has no category parameter here");
    let r = nurse.get("/fhir/Specimen").await;
    assert_fhir(&r, 404, "type not served");
    assert!(issues(&r)[0].0.contains("Specimen"));
    let r = nurse.send(nurse.request(Method::POST, "/fhir").header("content-type", "text/plain").body("x")).await;
    assert_fhir(&r, 415, "not JSON");
    let r = nurse.send(nurse.request(Method::POST, "/fhir").header("content-type", "application/fhir+json").body("{")).await;
    assert_fhir(&r, 400, "broken JSON");
}

/// Runs a bulk export to the end and returns the manifest.
pub(crate) async fn run_export(s: &Session, query: &str) -> Value {
    let r = s.send(s.request(Method::GET, &format!("/fhir/$export{query}")).header("prefer", "respond-async")).await;
    r.assert_status(202, "kick-off");
    let status = r.header("content-location");
    let path = status.split_once("/fhir/").map(|(_, p)| format!("/fhir/{p}")).expect("a status URL");
    for _ in 0..400 {
        let r = s.get(&path).await;
        match r.status.as_u16() {
            202 => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
            200 => {
                let mut m = r.json();
                m["_status"] = json!(path);
                return m;
            }
            other => panic!("status {other}: {}", r.text),
        }
    }
    panic!("the export did not finish")
}

pub(crate) async fn download(s: &Session, url: &str) -> Vec<Value> {
    let path = url.split_once("/fhir/").map(|(_, p)| format!("/fhir/{p}")).unwrap();
    let r = s.get(&path).await;
    r.assert_status(200, "file");
    assert_eq!(r.header("content-type"), "application/fhir+ndjson");
    r.text.lines().map(|l| serde_json::from_str(l).expect("one JSON resource per line")).collect()
}

async fn researchers_get_no_names_only_a_deidentified_export(app: &TestApp) {
    let (pid, order) = demo_like_patient(app, "FH-0004").await;
    let dose = order_dose(app, &pid).await;
    double_check(app, &order, &dose).await;
    let researcher = app.login(Role::Researcher).await;
    for path in [
        format!("/fhir/Patient/{pid}"),
        format!("/fhir/Patient/{pid}/$everything"),
        format!("/fhir/Observation?patient={pid}"),
        "/fhir/Patient".to_owned(),
    ] {
        let r = researcher.get(&path).await;
        assert_fhir(&r, 403, &path);
        assert!(!r.text.contains("Rivera"));
    }
    let m = run_export(&researcher, "").await;
    assert_eq!(m["extension"]["deidentified"], true);
    let nurse = app.login(Role::Nurse).await;
    let real = nurse.get(&format!("/fhir/Patient/{pid}/$everything")).await.json();
    let real_ids: Vec<String> = entries(&real).iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    let weight_at = of_type(&real, "Observation").into_iter().find(|o| has_code(o, "http://loinc.org", "29463-7")).unwrap()
        ["effectiveDateTime"]
        .clone();
    let mut all = Vec::new();
    for f in m["output"].as_array().unwrap() {
        let res = download(&researcher, f["url"].as_str().unwrap()).await;
        assert_eq!(res.len() as u64, f["count"].as_u64().unwrap());
        all.extend(res);
    }
    let text = serde_json::to_string(&all).unwrap();
    for secret in ["Rivera", "Ana Maria", "FH-0004", "1984-03-27", "pia.prescriber", "nina.nurse", pid.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked into the research export");
    }
    for id in &real_ids {
        assert!(!text.contains(id.as_str()), "a real id leaked: {id}");
    }
    let patients: Vec<&Value> = all.iter().filter(|r| r["resourceType"] == "Patient").collect();
    assert_eq!(patients.len(), 1);
    let p = patients[0];
    let rid = p["id"].as_str().unwrap();
    assert!(rid.starts_with("R-") && p.get("name").is_none() && p.get("telecom").is_none(), "{p}");
    assert_eq!(p["birthDate"].as_str().map(str::len), Some(4), "year only");
    let w = all.iter().find(|r| r["resourceType"] == "Observation" && has_code(r, "http://loinc.org", "29463-7")).unwrap();
    assert_eq!(w["subject"]["reference"], format!("Patient/{rid}"));
    assert_ne!(w["effectiveDateTime"], weight_at, "dates are shifted");
    assert_eq!(w["valueQuantity"]["value"], 72.4, "values are kept");
    // The export is audited.
    let director = app.login(Role::MedicalDirector).await;
    let r = director.get("/fhir/AuditEvent?action=E").await.json();
    assert!(
        entries(&r).iter().any(|e| e["agent"][0]["who"]["display"] == "rex.researcher"
            && e["entity"][0]["description"].as_str().is_some_and(|d| d.contains("bulk export") && d.contains("de-identified"))),
        "{r}"
    );
}

fn transaction(entries: Vec<Value>) -> Value {
    let e: Vec<Value> = entries
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let t = r["resourceType"].as_str().unwrap().to_owned();
            json!({"fullUrl": format!("urn:uuid:00000000-0000-4000-8000-{i:012}"), "resource": r, "request": {"method": "POST", "url": t}})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": e})
}

const PATIENT_REF: &str = "urn:uuid:00000000-0000-4000-8000-000000000000";

fn import_patient(mrn: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:ketacare:mrn", "value": mrn}],
        "name": [{"use": "official", "family": "Lindqvist", "given": ["Eva"]}],
        "gender": "female",
        "birthDate": "1990-07-14",
        "telecom": [{"system": "phone", "value": "+46 8 123 456"}],
    })
}

fn obs(code: &str, display: &str, value: Value, unit: &str, at: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
        "subject": {"reference": PATIENT_REF},
        "effectiveDateTime": at,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    })
}

async fn post_bundle(s: &Session, b: &Value) -> Resp {
    s.send(s.request(Method::POST, "/fhir").header("content-type", "application/fhir+json").body(b.to_string())).await
}

async fn an_import_creates_a_patient_with_weights_diagnoses_and_prior_scores(app: &TestApp) {
    let prescriber = app.login(Role::Prescriber).await;
    let before = app.patient_count().await;
    let bundle = transaction(vec![
        import_patient("IMP-0100"),
        json!({
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "21897009", "display": "Generalized anxiety disorder"}]},
            "subject": {"reference": PATIENT_REF},
            "onsetDateTime": "2018-02-01",
        }),
        json!({
            "resourceType": "Condition",
            "code": {"coding": [{"system": "urn:ketacare:comorbidity", "code": "hypertension", "display": "Hypertension"}]},
            "extension": [{"url": "urn:ketacare:extension:controlled", "valueBoolean": true}],
            "subject": {"reference": PATIENT_REF},
        }),
        json!({
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "36437", "display": "Sertraline"}], "text": "Sertraline"},
            "subject": {"reference": PATIENT_REF},
            "dosage": [{"text": "100 mg once daily"}],
            "effectivePeriod": {"start": "2025-06-01"},
        }),
        obs("29463-7", "Body weight", json!(81.5), "kg", "2026-10-01T10:00:00Z"),
        obs("29463-7", "Body weight", json!(80.9), "kg", "2026-11-02T10:00:00Z"),
        obs("8302-2", "Body height", json!(171), "cm", "2026-10-01T10:00:00Z"),
        obs("70274-6", "GAD-7 total score", json!(17), "{score}", "2026-09-15T10:00:00Z"),
        obs("44261-6", "PHQ-9 total score", json!(12), "{score}", "2026-09-15T10:00:00Z"),
        obs("39156-5", "BMI", json!(27.9), "kg/m2", "2026-10-01T10:00:00Z"),
    ]);
    let r = post_bundle(&prescriber, &bundle).await;
    assert_fhir(&r, 200, "import");
    let resp = r.json();
    assert_eq!(resp["type"], "transaction-response");
    let statuses: Vec<&str> = resp["entry"].as_array().unwrap().iter().map(|e| e["response"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["201 Created"; 9].into_iter().chain(["200 OK"]).collect::<Vec<_>>(), "BMI is derived: {resp}");
    assert_eq!(app.patient_count().await, before + 1);
    let pid = resp["entry"][0]["response"]["location"].as_str().unwrap().split('/').nth(1).unwrap().to_owned();
    let p = prescriber.get(&format!("/fhir/Patient/{pid}")).await.json();
    assert_eq!((p["identifier"][0]["value"].as_str(), p["name"][0]["family"].as_str()), (Some("IMP-0100"), Some("Lindqvist")));
    let b = prescriber.get(&format!("/fhir/Patient/{pid}/$everything")).await.json();
    let mut weights: Vec<String> = of_type(&b, "Observation")
        .into_iter()
        .filter(|o| has_code(o, "http://loinc.org", "29463-7"))
        .map(|o| format!("{} {}", o["effectiveDateTime"].as_str().unwrap(), o["valueQuantity"]["value"]))
        .collect();
    weights.sort();
    assert_eq!(weights, vec!["2026-10-01T10:00:00Z 81.5", "2026-11-02T10:00:00Z 80.9"]);
    let conds = of_type(&b, "Condition");
    assert!(
        conds
            .iter()
            .any(|c| has_code(c, "http://snomed.info/sct", "21897009") && has_code(c, "http://hl7.org/fhir/sid/icd-10-cm", "F41.1")),
        "the catalogue diagnosis with its ICD-10-CM code"
    );
    assert!(conds.iter().any(|c| has_code(c, "urn:ketacare:comorbidity", "hypertension") && c["extension"][0]["valueBoolean"] == true));
    let mut scores: Vec<String> = of_type(&b, "Observation")
        .into_iter()
        .filter(|o| o["category"][0]["coding"][0]["code"] == "survey")
        .map(|o| format!("{} {}", o["code"]["coding"][0]["code"].as_str().unwrap(), o["valueQuantity"]["value"]))
        .collect();
    scores.sort();
    assert_eq!(scores, vec!["44261-6 12", "70274-6 17"]);
    assert_eq!(of_type(&b, "MedicationStatement")[0]["dosage"][0]["text"], "100 mg once daily");

    // The same Bundle again adds nothing: the chart has every record already.
    let n = entries(&b).len();
    let r = post_bundle(&prescriber, &bundle).await;
    assert_fhir(&r, 200, "import again");
    assert!(r.json()["entry"].as_array().unwrap().iter().all(|e| e["response"]["status"] == "200 OK"), "{}", r.text);
    assert_eq!(entries(&prescriber.get(&format!("/fhir/Patient/{pid}/$everything")).await.json()).len(), n);
    assert_eq!(app.patient_count().await, before + 1);
    // A nurse may not import diagnoses (nor record them in the UI); a researcher may not import at all.
    let mut other = bundle.clone();
    other["entry"][0]["resource"]["identifier"][0]["value"] = json!("IMP-0101");
    let r = post_bundle(&app.login(Role::Nurse).await, &other).await;
    assert_fhir(&r, 403, "nurse import of a diagnosis");
    let r = post_bundle(&app.login(Role::Researcher).await, &bundle).await;
    assert_fhir(&r, 403, "researcher import");
    assert_eq!(app.patient_count().await, before + 1);
}

async fn a_bundle_with_two_bad_resources_reports_both_and_writes_nothing(app: &TestApp) {
    let prescriber = app.login(Role::Prescriber).await;
    let pid = register(&prescriber, "IMP-0200", "Lindqvist", "Eva", "1990-07-14", "female").await;
    let before_patients = app.patient_count().await;
    let before = entries(&prescriber.get(&format!("/fhir/Patient/{pid}/$everything")).await.json()).len();
    let bad_weight = obs("29463-7", "Body weight", json!(178), "[lb_av]", "2026-11-02T10:00:00Z");
    let bad_condition = json!({
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "relapse"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "21897009", "display": "Generalized anxiety disorder"}]},
        "subject": {"reference": PATIENT_REF},
    });
    let good_height = obs("8302-2", "Body height", json!(171), "cm", "2026-10-01T10:00:00Z");
    for mrn in ["IMP-0200", "IMP-0201"] {
        let mut p = import_patient(mrn);
        if mrn == "IMP-0200" {
            p["name"][0]["family"] = json!("Lindqvist");
        }
        let bundle = transaction(vec![p, good_height.clone(), bad_weight.clone(), bad_condition.clone()]);
        let r = post_bundle(&prescriber, &bundle).await;
        assert_fhir(&r, 422, mrn);
        let i = issues(&r);
        assert_eq!(i.len(), 2, "{i:?}");
        assert_eq!(i[0].1, "Bundle.entry[2].resource.valueQuantity.code");
        assert!(i[0].0.starts_with("Observation: ") && i[0].0.contains("must be kg"), "{}", i[0].0);
        assert_eq!(i[1].1, "Bundle.entry[3].resource.clinicalStatus");
        assert!(i[1].0.starts_with("Condition: ") && i[1].0.contains("active, remission or resolved"), "{}", i[1].0);
    }
    assert_eq!(app.patient_count().await, before_patients, "no patient registered");
    assert_eq!(prescriber.get("/fhir/Patient?identifier=IMP-0201").await.json()["total"], 0);
    assert_eq!(entries(&prescriber.get(&format!("/fhir/Patient/{pid}/$everything")).await.json()).len(), before, "the chart is as it was");
    // A subject that is not the Bundle's patient, a type not imported, and a missing MRN.
    let mut stray = good_height.clone();
    stray["subject"]["reference"] = json!("Patient/someone-else");
    let mut p = import_patient("IMP-0202");
    p["identifier"] = json!([]);
    let r = post_bundle(&prescriber, &transaction(vec![p, stray.clone()])).await;
    assert_fhir(&r, 422, "no MRN");
    assert!(issues(&r)[0].0.contains("medical record number"), "{}", r.text);
    let r = post_bundle(
        &prescriber,
        &transaction(vec![
            import_patient("IMP-0203"),
            stray,
            json!({"resourceType": "Immunization", "subject": {"reference": PATIENT_REF}}),
        ]),
    )
    .await;
    let i = issues(&r);
    assert_eq!(
        i.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        vec!["Bundle.entry[1].resource.subject.reference", "Bundle.entry[2].resource.resourceType"]
    );
    assert!(i[1].0.contains("Immunization is not imported"));
}

async fn the_bulk_export_serves_ndjson_to_its_owner_and_is_audited(app: &TestApp) {
    let (pid, _) = demo_like_patient(app, "FH-0005").await;
    let nurse = app.login(Role::Nurse).await;
    let r = nurse.get("/fhir/$export").await;
    assert_fhir(&r, 400, "no Prefer");
    assert!(issues(&r)[0].0.contains("respond-async"));
    let r = nurse.send(nurse.request(Method::GET, "/fhir/$export?_type=Specimen").header("prefer", "respond-async")).await;
    assert_eq!(issues(&r)[0].1, "_type");
    let m = run_export(&nurse, "?_type=Patient,Observation&_outputFormat=application/fhir%2Bndjson").await;
    assert_eq!(m["requiresAccessToken"], true);
    assert_eq!(m["extension"]["deidentified"], false);
    let types: Vec<&str> = m["output"].as_array().unwrap().iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["Patient", "Observation"]);
    let patients = download(&nurse, m["output"][0]["url"].as_str().unwrap()).await;
    assert!(patients.iter().any(|p| p["id"] == pid.as_str() && p["name"][0]["family"] == "Rivera"));
    let status = m["_status"].as_str().unwrap().to_owned();
    // Another user cannot see the job or its files.
    let other = app.login(Role::Prescriber).await;
    assert_fhir(&other.get(&status).await, 404, "another user's export");
    let file = m["output"][0]["url"].as_str().unwrap().split_once("/fhir/").map(|(_, p)| format!("/fhir/{p}")).unwrap();
    assert_fhir(&other.get(&file).await, 404, "another user's file");
    let r = nurse.send(nurse.request(Method::DELETE, &status)).await;
    r.assert_status(202, "delete");
    assert_fhir(&nurse.get(&status).await, 404, "deleted");
    let admin = app.login(Role::Admin).await;
    let r = admin.send(admin.request(Method::GET, "/fhir/$export").header("prefer", "respond-async")).await;
    assert_fhir(&r, 403, "administrators do not export patient data");
    let director = app.login(Role::MedicalDirector).await;
    let audit = entries(&director.get("/fhir/AuditEvent?action=E").await.json());
    assert!(audit.iter().any(|e| e["agent"][0]["who"]["display"] == "nina.nurse"
        && e["entity"][0]["description"].as_str().is_some_and(|d| d.contains("bulk export") && d.contains("identified"))));
    let reads = entries(&director.get("/fhir/AuditEvent?action=R").await.json());
    assert!(
        reads.iter().any(|e| e["entity"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["what"]["display"].as_str().is_some_and(|d| d.starts_with("BulkExport/")))),
        "the download is audited"
    );
}

/// The clinical content of a patient's resources, without ids, versions or server times.
fn clinical_content(b: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let codes = |c: &Value| {
        let mut v: Vec<String> = c["coding"]
            .as_array()
            .map(|a| a.iter().map(|x| format!("{}|{}", x["system"].as_str().unwrap_or(""), x["code"].as_str().unwrap_or(""))).collect())
            .unwrap_or_default();
        v.sort();
        v.join(",")
    };
    for r in entries(b) {
        let line = match r["resourceType"].as_str().unwrap() {
            "Patient" => format!(
                "Patient {} {} {:?} {} {}",
                r["identifier"][0]["value"], r["name"][0]["family"], r["name"][0]["given"], r["gender"], r["birthDate"]
            ),
            "Condition" => format!(
                "Condition {} {} {} {}",
                codes(&r["code"]),
                r["clinicalStatus"]["coding"][0]["code"],
                r["verificationStatus"]["coding"][0]["code"],
                r["onsetDateTime"]
            ),
            "Observation" => format!(
                "Observation {} {} {} {} derived={}",
                codes(&r["code"]),
                r["valueQuantity"]["value"],
                r["valueQuantity"]["code"],
                r["effectiveDateTime"],
                r.get("derivedFrom").is_some()
            ),
            "QuestionnaireResponse" => {
                format!("QuestionnaireResponse {} {} {} {}", r["questionnaire"], r["status"], r["authored"], r["item"])
            }
            "MedicationStatement" => format!(
                "Medication {} {} {}",
                codes(&r["medicationCodeableConcept"]),
                r["dosage"][0]["text"],
                r["effectivePeriod"]["start"].as_str().unwrap_or("").get(..10).unwrap_or("")
            ),
            "MedicationRequest" if r["status"] == "active" || r["status"] == "completed" => format!(
                "Medication {} {} {}",
                codes(&r["medicationCodeableConcept"]),
                r["dosageInstruction"][0]["text"],
                r["authoredOn"].as_str().unwrap_or("").get(..10).unwrap_or("")
            ),
            _ => continue,
        };
        out.insert(line);
    }
    out
}

async fn a_round_trip_to_an_empty_server_keeps_the_clinical_content(app: &TestApp) {
    let (pid, order) = demo_like_patient(app, "FH-0006").await;
    let dose = order_dose(app, &pid).await;
    double_check(app, &order, &dose).await;
    let nurse = app.login(Role::Nurse).await;
    let first = nurse.get(&format!("/fhir/Patient/{pid}/$everything")).await.json();
    let importable =
        ["Patient", "Condition", "AllergyIntolerance", "MedicationStatement", "MedicationRequest", "Observation", "QuestionnaireResponse"];
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": first["entry"].as_array().unwrap().iter()
            .filter(|e| importable.contains(&e["resource"]["resourceType"].as_str().unwrap()))
            .map(|e| json!({"fullUrl": e["fullUrl"], "resource": e["resource"], "request": {"method": "POST", "url": e["resource"]["resourceType"]}}))
            .collect::<Vec<_>>(),
    });

    // Sent back to the server it came from, the Bundle finds every record on the chart already.
    let r = post_bundle(&app.login(Role::Prescriber).await, &bundle).await;
    assert_fhir(&r, 200, "import into the same server");
    assert!(r.json()["entry"].as_array().unwrap().iter().all(|e| e["response"]["status"] == "200 OK"), "{}", r.text);
    assert_eq!(entries(&nurse.get(&format!("/fhir/Patient/{pid}/$everything")).await.json()).len(), entries(&first).len());

    let second = spawn_app(app.backend).await.expect("a second server on the same backend");
    assert_eq!(second.patient_count().await, 0, "the second server starts empty");
    let prescriber = second.login(Role::Prescriber).await;
    let r = post_bundle(&prescriber, &bundle).await;
    assert_fhir(&r, 200, "import into the second server");
    let loc = r.json()["entry"][0]["response"]["location"].as_str().unwrap().to_owned();
    let pid2 = loc.split('/').nth(1).unwrap().to_owned();
    assert_ne!(pid2, pid, "the second server gives its own ids");
    let again = prescriber.get(&format!("/fhir/Patient/{pid2}/$everything")).await.json();
    let (a, b) = (clinical_content(&first), clinical_content(&again));
    assert!(a.iter().any(|l| l.starts_with("QuestionnaireResponse")) && a.iter().any(|l| l.contains("6130")), "{a:#?}");
    assert_eq!(a, b, "the clinical content survives the round trip");
    assert_eq!(of_type(&again, "Observation").len(), of_type(&first, "Observation").len());
    second.stop().await;
}
