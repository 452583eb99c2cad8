//! The FHIR R4 API under `/fhir`: the CapabilityStatement, reads, searches, `$everything`, the
//! transaction import and the bulk export (`$export`, asynchronous, NDJSON).
//!
//! Every response is `application/fhir+json` (bulk files `application/fhir+ndjson`); every error
//! is an OperationOutcome that names the parameter or element and what is accepted. The same
//! credentials as the JSON API are accepted (session cookie or API bearer token); only
//! `/fhir/metadata` is public. Clinical staff read identified resources; researchers are refused
//! the identified reads and searches (403) and get the bulk export de-identified.
//!
//! Bulk export jobs are kept in this server's memory (a finished job for an hour, at most
//! [`MAX_JOBS`]): the status URL belongs to the server that was asked (behind several servers,
//! poll the same one), and a restart forgets the jobs (ask again). The export itself is audited
//! when it reads the data, and each file download once more.

use crate::extract::{client_addr, cookie};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, OriginalUri, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use ketacare_app::fhir::{BulkExport, EXPORT_TYPES};
use ketacare_app::{AppError, Principal};
use ketacare_domain::ids::{PatientId, UserId};
use ketacare_fhir::bundle::{self, Issue};
use ketacare_fhir::{search, FhirError, Value, FHIR_JSON, FHIR_NDJSON};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use utoipa::OpenApi;

/// The most export jobs kept at once (finished ones are dropped first, oldest first).
pub const MAX_JOBS: usize = 32;
/// How long a finished export stays available.
const JOB_LIFETIME: Duration = Duration::from_secs(3600);

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(metadata, read, search_type, everything, transaction, export, patient_export, export_status, cancel_export, export_file),
    tags((name = "fhir", description = "FHIR R4 (4.0.1): CapabilityStatement, read, search (patient, code, date with ge/le, ...), Patient $everything, transaction Bundle import (all or nothing) and the Bulk Data $export (NDJSON). Responses are application/fhir+json; errors are OperationOutcome."))
)]
pub struct FhirDoc;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", axum::routing::post(transaction))
        .route("/metadata", get(metadata))
        .route("/$export", get(export))
        .route("/Patient/$export", get(patient_export))
        .route("/$export-status/{job}", get(export_status).delete(cancel_export))
        .route("/$export-file/{job}/{file}", get(export_file))
        .route("/Patient/{id}/$everything", get(everything))
        .route("/{type}", get(search_type))
        .route("/{type}/{id}", get(read))
}

// ------------------------------------------------------------------------- responses

/// A FHIR error: the status and an OperationOutcome.
struct Oo(StatusCode, Vec<Issue>);

impl Oo {
    fn one(status: StatusCode, code: &'static str, message: impl Into<String>, expression: Option<String>) -> Self {
        let mut i = Issue::error(code, message);
        i.expression = expression;
        Oo(status, vec![i])
    }
    fn param(param: &str, message: impl Into<String>) -> Self {
        Oo::one(StatusCode::BAD_REQUEST, "invalid", format!("parameter {param}: {}", message.into()), Some(param.to_owned()))
    }
}

impl IntoResponse for Oo {
    fn into_response(self) -> Response {
        fhir(self.0, &bundle::operation_outcome(&self.1))
    }
}

impl From<AppError> for Oo {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Unauthenticated => {
                Oo::one(StatusCode::UNAUTHORIZED, "login", "log in first (POST /api/login) or send an API bearer token", None)
            }
            AppError::Forbidden => Oo::one(
                StatusCode::FORBIDDEN,
                "forbidden",
                "your role does not allow this (researchers get the de-identified bulk export: GET /fhir/$export)",
                None,
            ),
            AppError::NotFound => Oo::one(StatusCode::NOT_FOUND, "not-found", "no such resource", None),
            AppError::OutsideCareTeam(id) => Oo::one(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this patient is not on your care team; to open the chart in an emergency, give your reason to POST /api/patients/{id}/emergency-access (the medical director reviews every emergency access)"),
                None,
            ),
            AppError::Conflict(c) => Oo::one(StatusCode::CONFLICT, "conflict", c, None),
            AppError::Validation(errs) => Oo(
                StatusCode::UNPROCESSABLE_ENTITY,
                errs.iter()
                    .map(|f| Issue { expression: Some(f.field.clone()), ..Issue::error("invalid", format!("{}: {}", f.field, f.message)) })
                    .collect(),
            ),
            other => {
                // The detail goes to the log only, as for the JSON API.
                tracing::error!(error = ?other, "FHIR request failed");
                Oo::one(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "exception",
                    "something went wrong on the server; nothing was saved; try again",
                    None,
                )
            }
        }
    }
}

impl From<FhirError> for Oo {
    fn from(e: FhirError) -> Self {
        match e {
            FhirError::BadParameter { param, message } => Oo::param(&param, message),
            FhirError::UnsupportedType(t) => {
                let served: Vec<&str> = search::TYPES.iter().map(|t| t.name).collect();
                Oo::one(
                    StatusCode::NOT_FOUND,
                    "not-supported",
                    format!("resource type {t} is not served; served: {}", served.join(", ")),
                    None,
                )
            }
            FhirError::Invalid(problems) => Oo(StatusCode::UNPROCESSABLE_ENTITY, problems.iter().map(Issue::from_problem).collect()),
        }
    }
}

type FhirResult<T> = Result<T, Oo>;

fn fhir(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))], body.to_string()).into_response()
}

/// The server's FHIR base URL as the client reached it.
fn base(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if state.config.secure_cookies { "https" } else { "http" };
    format!("{scheme}://{host}/fhir")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query as (name, value) pairs, decoded.
fn pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

// ------------------------------------------------------------------------- authentication

/// The caller, authenticated like the JSON API (bearer token or session cookie); failures are
/// OperationOutcomes.
struct FhirAuth(Principal);

impl FromRequestParts<AppState> for FhirAuth {
    type Rejection = Oo;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let addr = client_addr(parts);
        if let Some(bearer) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
        {
            return state.app.authenticate_token(bearer.trim(), addr).await.map(FhirAuth).map_err(Oo::from);
        }
        match cookie(parts, state.cookie_name()) {
            Some(token) => state.app.authenticate_session(&token, addr).await.map(FhirAuth).map_err(Oo::from),
            None => Err(Oo::from(AppError::Unauthenticated)),
        }
    }
}

// ------------------------------------------------------------------------- handlers

#[utoipa::path(get, path = "/fhir/metadata", tag = "fhir",
    responses((status = 200, description = "CapabilityStatement (application/fhir+json): fhirVersion 4.0.1 and exactly the types, interactions, search parameters and operations served", body = Object)))]
async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let date = ketacare_fhir::instant(state.app.clock().now());
    fhir(StatusCode::OK, &bundle::capability_statement(env!("CARGO_PKG_VERSION"), &date, &base(&state, &headers)))
}

#[utoipa::path(get, path = "/fhir/{type}/{id}", tag = "fhir", params(("type" = String, Path, description = "Resource type"), ("id" = String, Path)),
    responses((status = 200, description = "The resource (application/fhir+json)", body = Object), (status = 401), (status = 403, description = "Researchers: identified reads are refused"), (status = 404, description = "No such resource, or a type not served")))]
async fn read(State(state): State<AppState>, FhirAuth(p): FhirAuth, Path((kind, id)): Path<(String, String)>) -> FhirResult<Response> {
    let t = search::support(&kind)?;
    if !t.read {
        return Err(Oo::one(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            format!("{kind} is searched, not read by id: GET /fhir/{kind}?..."),
            None,
        ));
    }
    if !ketacare_fhir::valid_id(&id) {
        return Err(Oo::one(StatusCode::NOT_FOUND, "not-found", "no such resource (an id is letters, digits, - and ., at most 64)", None));
    }
    let r = state.app.fhir_read(&p, &kind, &id).await?;
    Ok(fhir(StatusCode::OK, &r))
}

#[utoipa::path(get, path = "/fhir/{type}", tag = "fhir", params(("type" = String, Path, description = "Resource type"),
        ("patient" = Option<String>, Query, description = "Patient/{id} (required for patient data)"),
        ("code" = Option<String>, Query, description = "system|code, |code or code; commas for any of several"),
        ("date" = Option<String>, Query, description = "eq (default), gt, lt, ge, le + YYYY[-MM[-DD[Thh:mm[:ss]Z]]]; repeat for a range")),
    responses((status = 200, description = "searchset Bundle (application/fhir+json)", body = Object), (status = 400, description = "OperationOutcome naming the unknown parameter or bad value"), (status = 401), (status = 403), (status = 404)))]
async fn search_type(
    State(state): State<AppState>,
    FhirAuth(p): FhirAuth,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> FhirResult<Response> {
    let s = search::parse(&kind, &pairs(q.as_deref()))?;
    let found = state.app.fhir_search(&p, &kind, &s).await.map_err(|e| match e {
        AppError::NotFound => Oo::one(StatusCode::NOT_FOUND, "not-found", "no such patient", Some("patient".into())),
        other => Oo::from(other),
    })?;
    let base = base(&state, &headers);
    let self_url = format!("{}{}", base.trim_end_matches("/fhir"), uri);
    Ok(fhir(StatusCode::OK, &bundle::searchset(&base, &self_url, found)))
}

#[utoipa::path(get, path = "/fhir/Patient/{id}/$everything", tag = "fhir", params(("id" = String, Path)),
    responses((status = 200, description = "searchset Bundle of every resource of the patient", body = Object), (status = 401), (status = 403), (status = 404)))]
async fn everything(
    State(state): State<AppState>,
    FhirAuth(p): FhirAuth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> FhirResult<Response> {
    if let Some((k, _)) = pairs(q.as_deref()).into_iter().find(|(k, _)| k != "_format") {
        return Err(Oo::param(&k, "is not supported by $everything (no parameters)"));
    }
    let pid = PatientId::parse(&id).map_err(|_| Oo::from(AppError::NotFound))?;
    let all = state.app.fhir_everything(&p, pid).await?;
    let base = base(&state, &headers);
    let self_url = format!("{}{}", base.trim_end_matches("/fhir"), uri);
    Ok(fhir(StatusCode::OK, &bundle::searchset(&base, &self_url, all)))
}

#[utoipa::path(post, path = "/fhir", tag = "fhir",
    params(("acknowledge" = Option<String>, Query, description = "Weight and height warning codes confirmed (comma-separated)")),
    request_body(content = Object, description = "A transaction Bundle (application/fhir+json) with one Patient (matched by its MRN identifier, urn:ketacare:mrn or type MR) and its Condition, AllergyIntolerance, MedicationStatement, MedicationRequest, Observation and QuestionnaireResponse resources"),
    responses((status = 200, description = "transaction-response Bundle: one entry per entry, in order", body = Object),
        (status = 401), (status = 403), (status = 409, description = "The MRN is taken or the chart changed; nothing written"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "OperationOutcome with one issue per problem (entry index, resource type, element and what is accepted); nothing written")))]
async fn transaction(
    State(state): State<AppState>,
    FhirAuth(p): FhirAuth,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> FhirResult<Response> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media != FHIR_JSON && media != "application/json" {
        return Err(Oo::one(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not-supported", "send the Bundle as application/fhir+json", None));
    }
    let mut acknowledged = Vec::new();
    for (k, v) in pairs(q.as_deref()) {
        match k.as_str() {
            "acknowledge" => acknowledged.extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)),
            "_format" => {}
            other => return Err(Oo::param(other, "is not supported; the only parameter is acknowledge (warning codes)")),
        }
    }
    let bundle: Value = serde_json::from_slice(&body).map_err(|e| {
        Oo::one(StatusCode::BAD_REQUEST, "structure", format!("the body is not JSON ({e}); send a FHIR transaction Bundle"), None)
    })?;
    match state.app.fhir_import(&p, &bundle, &acknowledged).await? {
        Ok(done) => Ok(fhir(StatusCode::OK, &bundle::transaction_response(&done.entries))),
        Err(problems) => Err(Oo::from(FhirError::Invalid(problems))),
    }
}

// ------------------------------------------------------------------------- bulk export

enum JobState {
    Running,
    Done(BulkExport),
    Failed,
}

struct Job {
    owner: UserId,
    request: String,
    state: JobState,
    finished: Option<Instant>,
}

fn jobs() -> &'static Mutex<HashMap<String, Job>> {
    static JOBS: OnceLock<Mutex<HashMap<String, Job>>> = OnceLock::new();
    JOBS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<String, Job>> {
    jobs().lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks the kick-off parameters: (`_type` list, `_since`).
fn export_params(q: Option<&str>) -> FhirResult<(Vec<String>, Option<DateTime<Utc>>)> {
    let mut types = Vec::new();
    let mut since = None;
    for (k, v) in pairs(q) {
        match k.as_str() {
            "_type" => {
                for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !EXPORT_TYPES.contains(&t) {
                        return Err(Oo::param("_type", format!("{t} is not exported; accepted: {}", EXPORT_TYPES.join(", "))));
                    }
                    types.push(t.to_owned());
                }
            }
            "_since" => {
                let t = DateTime::parse_from_rfc3339(v.trim())
                    .map_err(|_| Oo::param("_since", "must be a FHIR instant such as 2026-11-01T00:00:00Z"))?;
                since = Some(t.with_timezone(&Utc));
            }
            "_outputFormat" => {
                if !["application/fhir+ndjson", "application/ndjson", "ndjson"].contains(&v.trim()) {
                    return Err(Oo::param("_outputFormat", "only application/fhir+ndjson (or application/ndjson, ndjson) is produced"));
                }
            }
            other => return Err(Oo::param(other, "is not supported by $export; supported: _type, _since, _outputFormat")),
        }
    }
    Ok((types, since))
}

async fn kick_off(state: AppState, p: Principal, q: Option<String>, headers: HeaderMap, uri: axum::http::Uri) -> FhirResult<Response> {
    let prefer = headers.get("prefer").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !prefer.split(',').any(|x| x.trim() == "respond-async") {
        return Err(Oo::one(
            StatusCode::BAD_REQUEST,
            "invalid",
            "send Prefer: respond-async (the export runs in the background; poll the Content-Location)",
            Some("Prefer".into()),
        ));
    }
    let (types, since) = export_params(q.as_deref())?;
    // Authorise now (researchers de-identified, others by their read permission), so a caller
    // who may not export is told at once, not at the status URL.
    if !p.can(ketacare_domain::access::Permission::ReadPatients) {
        state.app.authorize(&p, ketacare_domain::access::Permission::ReadDeidentified, "BulkExport").await?;
    }
    let base = base(&state, &headers);
    let job = uuid::Uuid::new_v4().simple().to_string();
    {
        let mut all = lock();
        all.retain(|_, j| j.finished.is_none_or(|t| t.elapsed() < JOB_LIFETIME));
        if all.values().filter(|j| j.owner == p.user.id && matches!(j.state, JobState::Running)).count() >= 2 {
            return Err(Oo::one(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "two exports of yours are running; wait for them (or DELETE one)",
                None,
            ));
        }
        while all.len() >= MAX_JOBS {
            let oldest = all.iter().filter(|(_, j)| j.finished.is_some()).min_by_key(|(_, j)| j.finished).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    all.remove(&k);
                }
                None => {
                    return Err(Oo::one(
                        StatusCode::TOO_MANY_REQUESTS,
                        "throttled",
                        "too many exports are running; try again shortly",
                        None,
                    ))
                }
            }
        }
        all.insert(
            job.clone(),
            Job {
                owner: p.user.id,
                request: format!("{}{}", base.trim_end_matches("/fhir"), uri),
                state: JobState::Running,
                finished: None,
            },
        );
    }
    let app = state.app.clone();
    let id = job.clone();
    tokio::spawn(async move {
        let result = app.fhir_export(&p, &types, since).await;
        let mut all = lock();
        if let Some(j) = all.get_mut(&id) {
            j.state = match result {
                Ok(x) => JobState::Done(x),
                Err(e) => {
                    tracing::error!(error = %e, "bulk export failed");
                    JobState::Failed
                }
            };
            j.finished = Some(Instant::now());
        }
    });
    let mut r = (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, FHIR_JSON)],
        bundle::operation_outcome(&[Issue {
            severity: bundle::Severity::Information,
            code: "informational",
            diagnostics: "export started; poll the Content-Location".into(),
            expression: None,
        }])
        .to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{base}/$export-status/{job}")) {
        r.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    Ok(r)
}

#[utoipa::path(get, path = "/fhir/$export", tag = "fhir",
    params(("Prefer" = String, Header, description = "respond-async (required)"),
        ("_type" = Option<String>, Query, description = "Resource types, comma-separated (default: all exported)"),
        ("_since" = Option<String>, Query, description = "Only what was recorded at or after this instant"),
        ("_outputFormat" = Option<String>, Query, description = "application/fhir+ndjson")),
    responses((status = 202, description = "Started: Content-Location is the status URL"), (status = 400, description = "OperationOutcome naming the parameter"), (status = 401), (status = 403), (status = 429)))]
async fn export(
    State(state): State<AppState>,
    FhirAuth(p): FhirAuth,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> FhirResult<Response> {
    kick_off(state, p, q, headers, uri).await
}

#[utoipa::path(get, path = "/fhir/Patient/$export", tag = "fhir",
    params(("Prefer" = String, Header, description = "respond-async (required)")),
    responses((status = 202, description = "As GET /fhir/$export: every patient"), (status = 400), (status = 401), (status = 403)))]
async fn patient_export(
    State(state): State<AppState>,
    FhirAuth(p): FhirAuth,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> FhirResult<Response> {
    kick_off(state, p, q, headers, uri).await
}

#[utoipa::path(get, path = "/fhir/$export-status/{job}", tag = "fhir", params(("job" = String, Path)),
    responses((status = 200, description = "Manifest (application/json): transactionTime, request, requiresAccessToken, output [{type, url, count}], error"),
        (status = 202, description = "Still running (X-Progress, Retry-After)"), (status = 404, description = "Unknown job, or another user's")))]
async fn export_status(
    State(state): State<AppState>,
    FhirAuth(p): FhirAuth,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> FhirResult<Response> {
    let base = base(&state, &headers);
    let all = lock();
    let Some(j) = all.get(&job).filter(|j| j.owner == p.user.id) else {
        return Err(Oo::one(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such export (jobs are kept in memory for an hour, by the server that started them)",
            None,
        ));
    };
    match &j.state {
        JobState::Running => Ok((StatusCode::ACCEPTED, [("x-progress", "in progress"), ("retry-after", "1")]).into_response()),
        JobState::Failed => Err(Oo::one(StatusCode::INTERNAL_SERVER_ERROR, "exception", "the export failed; start it again", None)),
        JobState::Done(x) => {
            let output: Vec<Value> = x
                .files
                .iter()
                .map(|f| ketacare_fhir::json!({"type": f.resource_type, "url": format!("{base}/$export-file/{job}/{}.ndjson", f.resource_type), "count": f.count}))
                .collect();
            let manifest = ketacare_fhir::json!({
                "transactionTime": ketacare_fhir::instant(x.transaction_time),
                "request": j.request,
                "requiresAccessToken": true,
                "output": output,
                "error": [],
                "extension": {"deidentified": x.deidentified, "patients": x.patients},
            });
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], manifest.to_string()).into_response())
        }
    }
}

#[utoipa::path(delete, path = "/fhir/$export-status/{job}", tag = "fhir", params(("job" = String, Path)),
    responses((status = 202, description = "Deleted (a running export finishes in the background and is dropped)"), (status = 404)))]
async fn cancel_export(FhirAuth(p): FhirAuth, Path(job): Path<String>) -> FhirResult<Response> {
    let mut all = lock();
    match all.get(&job) {
        Some(j) if j.owner == p.user.id => {
            all.remove(&job);
            Ok(StatusCode::ACCEPTED.into_response())
        }
        _ => Err(Oo::one(StatusCode::NOT_FOUND, "not-found", "no such export", None)),
    }
}

#[utoipa::path(get, path = "/fhir/$export-file/{job}/{file}", tag = "fhir", params(("job" = String, Path), ("file" = String, Path, description = "{Type}.ndjson")),
    responses((status = 200, description = "application/fhir+ndjson: one resource per line"), (status = 404)))]
async fn export_file(
    State(state): State<AppState>,
    FhirAuth(p): FhirAuth,
    Path((job, file)): Path<(String, String)>,
) -> FhirResult<Response> {
    let kind = file.strip_suffix(".ndjson").unwrap_or(&file).to_owned();
    let found = {
        let all = lock();
        all.get(&job).filter(|j| j.owner == p.user.id).and_then(|j| match &j.state {
            JobState::Done(x) => x.files.iter().find(|f| f.resource_type == kind).map(|f| (f.ndjson.clone(), f.count)),
            _ => None,
        })
    };
    let Some((body, count)) = found else {
        return Err(Oo::one(StatusCode::NOT_FOUND, "not-found", "no such export file", None));
    };
    state.app.fhir_export_downloaded(&p, &job, &kind, count).await?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, FHIR_NDJSON)], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded_into_pairs() {
        let p = pairs(Some("patient=Patient%2Fabc&code=http%3A%2F%2Floinc.org%7C29463-7&date=ge2026-11-01&date=le2026-11-30&name=a+b"));
        assert_eq!(p[0], ("patient".into(), "Patient/abc".into()));
        assert_eq!(p[1].1, "http://loinc.org|29463-7");
        assert_eq!((p[2].1.as_str(), p[3].1.as_str(), p[4].1.as_str()), ("ge2026-11-01", "le2026-11-30", "a b"));
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn export_parameters_name_what_is_wrong() {
        assert!(export_params(Some("_type=Patient,Observation&_outputFormat=ndjson")).is_ok());
        let Err(Oo(s, i)) = export_params(Some("_type=Specimen")) else { panic!("Specimen is not exported") };
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(i[0].diagnostics.contains("_type") && i[0].diagnostics.contains("Specimen"));
        let Err(Oo(_, i)) = export_params(Some("_typeFilter=x")) else { panic!("not supported") };
        assert_eq!(i[0].expression.as_deref(), Some("_typeFilter"));
        assert!(export_params(Some("_since=yesterday")).is_err());
    }
}
