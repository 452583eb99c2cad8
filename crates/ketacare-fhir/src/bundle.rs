//! Bundles, OperationOutcome and the CapabilityStatement.

use crate::resources::{resource_id, resource_type};
use crate::search::TYPES;
use crate::{json, Problem, Value, FHIR_VERSION};

/// A `searchset` Bundle of `resources`; `base` is the server's FHIR base URL (for `fullUrl`)
/// and `self_url` the search as asked.
pub fn searchset(base: &str, self_url: &str, resources: Vec<Value>) -> Value {
    let total = resources.len();
    let entries: Vec<Value> = resources
        .into_iter()
        .map(
            |r| json!({"fullUrl": format!("{base}/{}/{}", resource_type(&r), resource_id(&r)), "resource": r, "search": {"mode": "match"}}),
        )
        .collect();
    let mut b = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": self_url}],
    });
    // FHIR has no empty arrays (ele-1): an empty result has no `entry`.
    if !entries.is_empty() {
        b["entry"] = Value::Array(entries);
    }
    b
}

/// How bad an issue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The request failed.
    Error,
    /// Worth knowing; the request went on.
    Warning,
    /// For information.
    Information,
}

impl Severity {
    fn code(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// One issue of an OperationOutcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Severity.
    pub severity: Severity,
    /// FHIR issue type: `invalid`, `not-supported`, `not-found`, `forbidden`, `login`,
    /// `conflict`, `exception`, `processing`, `informational`.
    pub code: &'static str,
    /// What happened and what is accepted.
    pub diagnostics: String,
    /// Where (FHIRPath), if in a resource or a parameter.
    pub expression: Option<String>,
}

impl Issue {
    /// An error.
    pub fn error(code: &'static str, diagnostics: impl Into<String>) -> Self {
        Self { severity: Severity::Error, code, diagnostics: diagnostics.into(), expression: None }
    }
    /// The error of an imported resource.
    pub fn from_problem(p: &Problem) -> Self {
        let what = if p.resource_type.is_empty() { String::new() } else { format!("{}: ", p.resource_type) };
        Self {
            severity: Severity::Error,
            code: "invalid",
            diagnostics: format!("{what}{} {}", if p.path.is_empty() { "resource" } else { &p.path }, p.message),
            expression: Some(p.expression()),
        }
    }
}

/// An OperationOutcome.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut v = json!({"severity": i.severity.code(), "code": i.code, "diagnostics": i.diagnostics});
            if let Some(e) = &i.expression {
                v["expression"] = json!([e]);
            }
            v
        })
        .collect();
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

/// One entry of a transaction response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryResponse {
    /// `201 Created` or `200 OK`.
    pub status: String,
    /// `Type/id/_history/version`, where a resource was written or found.
    pub location: Option<String>,
    /// Notes on what was done (e.g. derived scores recomputed, not stored).
    pub notes: Vec<String>,
}

/// A `transaction-response` Bundle, one entry per entry of the request, in order.
pub fn transaction_response(entries: &[EntryResponse]) -> Value {
    let e: Vec<Value> = entries
        .iter()
        .map(|r| {
            let mut resp = json!({"status": r.status});
            if let Some(l) = &r.location {
                resp["location"] = json!(l);
            }
            if !r.notes.is_empty() {
                let issues: Vec<Issue> = r
                    .notes
                    .iter()
                    .map(|n| Issue { severity: Severity::Information, code: "informational", diagnostics: n.clone(), expression: None })
                    .collect();
                resp["outcome"] = operation_outcome(&issues);
            }
            json!({"response": resp})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction-response", "entry": e})
}

/// The CapabilityStatement: exactly the types, interactions, search parameters and operations
/// the API serves.
pub fn capability_statement(software_version: &str, date: &str, base: &str) -> Value {
    let resources: Vec<Value> = TYPES
        .iter()
        .map(|t| {
            let mut interactions = Vec::new();
            if t.read {
                interactions.push(json!({"code": "read"}));
            }
            interactions.push(json!({"code": "search-type"}));
            let params: Vec<Value> = t.params.iter().map(|p| json!({"name": p.name, "type": p.kind, "documentation": p.doc})).collect();
            let mut r = json!({
                "type": t.name,
                "documentation": t.doc,
                "interaction": interactions,
                "versioning": "versioned",
                "readHistory": false,
                "searchParam": params,
            });
            if t.name == "Patient" {
                r["operation"] = json!([
                    {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                     "documentation": "GET /fhir/Patient/{id}/$everything: every resource of the patient in a searchset Bundle"},
                    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
                     "documentation": "GET /fhir/Patient/$export: the same as the system export (all patients)"},
                ]);
            }
            r
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "Ketacare",
        "kind": "instance",
        "software": {"name": "Ketacare", "version": software_version},
        "implementation": {"description": "Ketacare FHIR R4 API", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Staff read identified data with the session cookie or an API bearer token; researchers get the de-identified bulk export only. Every read and write of patient data is audited.",
            "security": {"cors": false, "description": "Session cookie (POST /api/login) or Authorization: Bearer {API token}."},
            "resource": resources,
            "interaction": [{"code": "transaction", "documentation": "POST /fhir: a transaction Bundle with one Patient (matched by MRN) and its Condition, AllergyIntolerance, MedicationStatement, MedicationRequest, Observation and QuestionnaireResponse resources, written all or nothing"}],
            "operation": [{
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                "documentation": "GET /fhir/$export with Prefer: respond-async; _type, _since and _outputFormat (application/fhir+ndjson); poll the Content-Location for the manifest",
            }],
        }],
    })
}
