//! Bad input at every documented JSON entry point, generated from the served OpenAPI document:
//! for each request body, every property with a value of the wrong type, every required
//! property missing and set to null, and bodies that are not an object, not JSON, empty or
//! truncated. Each must be refused with a clear error (400, 413, 415 or 422 with an error code
//! and a sentence; a validation error names its fields), none may answer 2xx or 5xx, and
//! nothing may be written (the audit trail counts every successful create and update).

use crate::helpers::*;
use ketacare_domain::access::Role;
use serde_json::{json, Map, Value};

http_tests!(every_documented_request_body_refuses_malformed_input_and_writes_nothing);

/// Routes whose path needs an id other than a patient's (a session, an order, a proposal…):
/// with a made-up id they answer 404 before reading the body, so they prove nothing here.
fn testable(path: &str) -> bool {
    let params: Vec<&str> = path.split('/').filter(|s| s.starts_with('{')).collect();
    params.iter().all(|p| *p == "{id}" || *p == "{key}")
        && !path.starts_with("/api/alerts/")
        && !path.starts_with("/api/orders/")
        && !path.starts_with("/api/drug-library/proposals/")
        && !path.starts_with("/api/protocols/proposals/")
        && !path.starts_with("/api/questionnaire-requests/")
        && !path.starts_with("/api/schedules/")
        && !path.starts_with("/api/sessions/")
        && !path.starts_with("/api/admin/users/")
        && !path.starts_with("/api/admin/tokens/")
        // A device gateway authenticates with its own token, not a staff session.
        && path != "/api/device/readings"
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap_or("")],
        None => schema,
    }
}

/// The JSON type a property must have ("" when the schema does not say).
fn kind(doc: &Value, prop: &Value) -> String {
    let p = resolve(doc, prop);
    if let Some(t) = p.get("type") {
        return match t {
            Value::String(s) => s.clone(),
            // ["string", "null"]: optional with a type.
            Value::Array(a) => a.iter().filter_map(Value::as_str).find(|s| *s != "null").unwrap_or("").to_owned(),
            _ => String::new(),
        };
    }
    if p.get("enum").is_some() {
        return "string".into();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(a) = p.get(key).and_then(Value::as_array) {
            let kinds: Vec<String> = a.iter().map(|s| kind(doc, s)).filter(|k| !k.is_empty() && k != "null").collect();
            if kinds.len() == 1 || (!kinds.is_empty() && kinds.iter().all(|k| *k == kinds[0])) {
                return kinds[0].clone();
            }
        }
    }
    if p.get("properties").is_some() {
        return "object".into();
    }
    String::new()
}

fn wrong_value(kind: &str) -> Option<Value> {
    Some(match kind {
        "string" => json!(12345),
        "number" | "integer" => json!("twelve"),
        "boolean" => json!("yes"),
        "array" => json!("not a list"),
        "object" => json!(42),
        _ => return None,
    })
}

/// A body with a plausible value of the right type for every property.
fn plausible(doc: &Value, schema: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            let v = match kind(doc, p).as_str() {
                "string" => json!("x"),
                "number" => json!(1.0),
                "integer" => json!(1),
                "boolean" => json!(true),
                "array" => json!([]),
                "object" => json!({}),
                _ => continue,
            };
            m.insert(name.clone(), v);
        }
    }
    m
}

struct Case {
    what: String,
    body: BodyKind,
}

enum BodyKind {
    Json(Value),
    Raw(&'static str, &'static str),
}

async fn writes(app: &TestApp) -> i64 {
    use sqlx::Connection;
    let sql = "SELECT COUNT(*) FROM audit_log WHERE action IN ('C', 'U') AND outcome = 'success'";
    if app.backend == Backend::Sqlite {
        let mut c = sqlx::SqliteConnection::connect(app.database_url()).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(app.database_url()).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }
}

async fn every_documented_request_body_refuses_malformed_input_and_writes_nothing(app: &TestApp) {
    let nurse = app.login(Role::Nurse).await;
    let patient = register(&nurse, "BAD-0001", "Ingleby", "Rosalind", "1981-02-03", "female").await;
    let doc = app.anon().get("/api/openapi.json").await.json();
    let sessions = [
        (Role::Prescriber, app.login(Role::Prescriber).await),
        (Role::Nurse, nurse),
        (Role::MedicalDirector, app.login(Role::MedicalDirector).await),
        (Role::Admin, app.login(Role::Admin).await),
    ];
    let before = writes(app).await;
    let (mut tried, mut endpoints) = (0usize, 0usize);
    let mut failures: Vec<String> = Vec::new();
    for (template, ops) in doc["paths"].as_object().expect("paths") {
        let Some(op) = ops.get("post") else { continue };
        let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") else { continue };
        if !testable(template) {
            continue;
        }
        let path = template.replace("{id}", &patient).replace("{key}", "gad7");
        let schema = resolve(&doc, schema);
        let required: Vec<String> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let base = plausible(&doc, schema);
        let mut cases = vec![
            Case { what: "an array instead of an object".into(), body: BodyKind::Json(json!([1, 2, 3])) },
            Case { what: "a bare string".into(), body: BodyKind::Json(json!("hello")) },
            Case { what: "not JSON".into(), body: BodyKind::Raw("application/json", "{\"value\": 7") },
            Case { what: "an empty body".into(), body: BodyKind::Raw("application/json", "") },
            Case { what: "plain text".into(), body: BodyKind::Raw("text/plain", "weight=72") },
        ];
        if !required.is_empty() {
            cases.push(Case { what: "an empty object".into(), body: BodyKind::Json(json!({})) });
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, p) in props {
                if let Some(v) = wrong_value(&kind(&doc, p)) {
                    let mut b = base.clone();
                    b.insert(name.clone(), v.clone());
                    cases.push(Case { what: format!("{name} = {v}"), body: BodyKind::Json(Value::Object(b)) });
                }
                if required.contains(name) {
                    let mut b = base.clone();
                    b.remove(name);
                    cases.push(Case { what: format!("{name} missing"), body: BodyKind::Json(Value::Object(b.clone())) });
                    b.insert(name.clone(), Value::Null);
                    cases.push(Case { what: format!("{name} = null"), body: BodyKind::Json(Value::Object(b)) });
                }
            }
        }
        endpoints += 1;
        for case in cases {
            tried += 1;
            // The first role allowed to call the route answers about the body.
            let mut answer = None;
            for (role, s) in &sessions {
                let rb = match &case.body {
                    BodyKind::Json(v) => s.request(reqwest::Method::POST, &path).json(v),
                    BodyKind::Raw(ct, text) => s.request(reqwest::Method::POST, &path).header("content-type", *ct).body(*text),
                };
                let r = s.send(rb).await;
                if r.status.as_u16() != 403 {
                    answer = Some((role, r));
                    break;
                }
            }
            let what = format!("POST {template} with {}", case.what);
            let Some((role, r)) = answer else {
                failures.push(format!("{what}: every role was refused (403), so the body was never read"));
                continue;
            };
            let status = r.status.as_u16();
            if ![400, 413, 415, 422].contains(&status) {
                failures.push(format!("{what} as {role:?}: {status} {}", r.text.chars().take(200).collect::<String>()));
                continue;
            }
            let body: Value = serde_json::from_str(&r.text).unwrap_or(Value::Null);
            if template.starts_with("/fhir") {
                // FHIR answers with an OperationOutcome: each issue with a code and a sentence.
                let ok = body["resourceType"] == "OperationOutcome"
                    && body["issue"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty() && a.iter().all(|i| i["diagnostics"].as_str().is_some_and(|d| d.len() >= 10)));
                if !ok {
                    failures.push(format!("{what}: no clear OperationOutcome: {}", r.text));
                }
                continue;
            }
            let message = body["message"].as_str().unwrap_or("");
            if body["error"].as_str().unwrap_or("").is_empty() || message.len() < 10 {
                failures.push(format!("{what}: no clear error: {}", r.text));
                continue;
            }
            if body["error"] == "validation" && body["fields"].as_array().is_none_or(Vec::is_empty) {
                failures.push(format!("{what}: a validation error that names no field: {}", r.text));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {tried} bad inputs not refused clearly:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(writes(app).await, before, "a refused input wrote something");
    eprintln!("bad inputs: {tried} tried at {endpoints} entry points, 0 accepted, 0 server errors, nothing written");
    assert!(endpoints >= 25, "the document's entry points were found: {endpoints}");
    assert!(tried >= 300, "the catalogue covers at least 300 bad inputs: {tried}");
}
