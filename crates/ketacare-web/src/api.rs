//! The JSON API under `/api`, over the same use cases as the UI, documented at `/api/openapi.json`.
//!
//! Authentication: `POST /api/login` sets the same session cookie as the UI; scripts and device
//! gateways send `Authorization: Bearer <token>` with an administrator-issued token.
//! Errors are [`Problem`] bodies: 401 unauthenticated, 403 forbidden, 404 not found (also for
//! records the caller may not see), 409 conflict, 422 validation or needs_confirmation.

use crate::error::{FieldProblem, Problem, WarningDto, WebError};
use crate::extract::{client_addr, Auth};
use crate::forms::{self, Fields};
use crate::pages::{audit_filter, AuditQuery};
use crate::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ketacare_app::{AppError, MeasurementInput, NewUserInput};
use ketacare_db::{ApiToken, Page, User};
use ketacare_domain::audit::AuditEntry;
use ketacare_domain::ids::{PatientId, RecordId, TokenId, UserId};
use ketacare_domain::patient::DemographicsInput;
use ketacare_domain::record::{PatientVersion, RecordKind, RecordVersion};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, OpenApi, ToSchema};

pub(crate) type ApiResult<T> = Result<T, WebError>;

pub(crate) fn bad(field: &str, msg: &str) -> WebError {
    WebError::api(AppError::Validation(ketacare_domain::validation::FieldErrors::single(field, msg)))
}

/// Parses a JSON body, turning serde's message into a field error. The body must be a JSON
/// object: serde would otherwise read an array positionally into a struct's fields, so
/// `[1, 2, 3]` could pass as three values nobody named. A field given twice in one object is
/// refused too: `{"value": 70, "value": 154}` would otherwise be read as the last one.
pub(crate) async fn json<T: serde::de::DeserializeOwned>(req: Request, state: &AppState) -> ApiResult<T> {
    const FORM: &str = "must be a JSON object with Content-Type: application/json";
    let v = match Json::<StrictValue>::from_request(req, state).await {
        Ok(Json(StrictValue(v))) => v,
        Err(e) => return Err(bad("body", &format!("{FORM} ({})", e.body_text()))),
    };
    if !v.is_object() {
        return Err(bad("body", &format!("{FORM} (got {})", json_kind(&v))));
    }
    serde_json::from_value(v).map_err(|e| bad("body", &format!("{FORM} ({e})")))
}

/// A JSON value whose objects were checked for keys given twice (serde_json keeps the last).
struct StrictValue(serde_json::Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(v).map(serde_json::Value::Number).ok_or_else(|| E::custom("a number must be finite"))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(serde_json::Value::String(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(serde_json::Value::String(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        StrictValue::deserialize(d).map(|s| s.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("the field {key:?} is given twice; give each field once")));
            }
            out.insert(key, v);
        }
        Ok(serde_json::Value::Object(out))
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "true or false",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/patients", get(search_patients).post(register_patient))
        .route("/patients/{id}", get(get_chart))
        .route("/patients/{id}/amend", post(amend_patient))
        .route("/patients/{id}/void", post(void_patient))
        .route("/patients/{id}/history", get(patient_history))
        .route("/patients/{id}/weights", post(record_weight))
        .route("/patients/{id}/heights", post(record_height))
        .route("/patients/{id}/records", post(add_record))
        .route("/records/{rid}", get(get_record))
        .route("/records/{rid}/history", get(record_history))
        .route("/records/{rid}/amend", post(amend_record))
        .route("/records/{rid}/void", post(void_record))
        .route("/audit", get(search_audit))
        .route("/research/cohort", get(cohort))
        .route("/admin/users", get(list_users).post(create_user))
        .route("/admin/users/{id}/active", post(set_user_active))
        .route("/admin/users/{id}/unlock", post(unlock_user))
        .route("/admin/tokens", get(list_tokens).post(issue_token))
        .route("/admin/tokens/{id}/revoke", post(revoke_token))
        .merge(crate::api_outcomes::routes())
        .merge(crate::api_screening::routes())
        .merge(crate::api_dosing::routes())
        .merge(crate::api_dosing::patient_routes())
        .merge(crate::api_session::routes())
        .merge(crate::api_pk::routes())
        .merge(crate::api_safety::routes())
        .merge(crate::api_research::routes())
}

// ---------- DTOs ----------

/// An account.
#[derive(Serialize, ToSchema)]
pub struct UserDto {
    id: String,
    username: String,
    display_name: String,
    role: String,
    active: bool,
    /// Consecutive failed logins since the last success.
    failed_logins: u32,
    /// Locked by failed logins until this time (UTC), if it was locked; in the past means no
    /// longer locked.
    locked_until: Option<String>,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.as_str().into(),
            display_name: u.display_name.clone(),
            role: u.role.code().into(),
            active: u.active,
            failed_logins: u.lock.failed,
            locked_until: u.lock.locked_until.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        }
    }
}

/// Login request.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// Demographics as sent by clients; every field is text, validated server-side.
#[derive(Deserialize, Serialize, ToSchema, Default)]
#[serde(default)]
pub struct DemographicsDto {
    /// Clinic MRN; blank on registration assigns one.
    mrn: String,
    family_name: String,
    given_name: String,
    /// YYYY-MM-DD.
    date_of_birth: String,
    /// female, male, other or unknown.
    sex: String,
    phone: String,
    email: String,
    address: String,
    emergency_name: String,
    emergency_relationship: String,
    emergency_phone: String,
}

impl DemographicsDto {
    fn input(&self) -> DemographicsInput {
        DemographicsInput {
            mrn: self.mrn.clone(),
            family_name: self.family_name.clone(),
            given_name: self.given_name.clone(),
            date_of_birth: self.date_of_birth.clone(),
            sex: self.sex.clone(),
            phone: self.phone.clone(),
            email: self.email.clone(),
            address: self.address.clone(),
            emergency_name: self.emergency_name.clone(),
            emergency_relationship: self.emergency_relationship.clone(),
            emergency_phone: self.emergency_phone.clone(),
        }
    }
}

/// One version of a patient's demographics.
#[derive(Serialize, ToSchema)]
pub struct PatientDto {
    id: String,
    version: u32,
    /// create, amend or void.
    action: String,
    demographics: DemographicsDto,
    reason: Option<String>,
    recorded_by: String,
    recorded_at: String,
}

impl From<&PatientVersion> for PatientDto {
    fn from(v: &PatientVersion) -> Self {
        let i = DemographicsInput::from_demographics(&v.demographics);
        Self {
            id: v.patient_id.to_string(),
            version: v.version,
            action: v.action.code().into(),
            demographics: DemographicsDto {
                mrn: i.mrn,
                family_name: i.family_name,
                given_name: i.given_name,
                date_of_birth: i.date_of_birth,
                sex: i.sex,
                phone: i.phone,
                email: i.email,
                address: i.address,
                emergency_name: i.emergency_name,
                emergency_relationship: i.emergency_relationship,
                emergency_phone: i.emergency_phone,
            },
            reason: v.reason.as_ref().map(|r| r.as_str().to_owned()),
            recorded_by: v.provenance.username.clone(),
            recorded_at: v.provenance.recorded_at.to_rfc3339(),
        }
    }
}

/// One version of a clinical record.
#[derive(Serialize, ToSchema)]
pub struct RecordDto {
    record_id: String,
    version_id: String,
    version: u32,
    patient_id: String,
    /// diagnosis, medication, allergy, encounter or observation.
    kind: String,
    /// create, amend or void.
    action: String,
    /// One-line summary.
    summary: String,
    /// The content as named fields (the same names the create request uses).
    fields: HashMap<String, String>,
    reason: Option<String>,
    recorded_by: String,
    recorded_at: String,
}

fn record_dto(state: &AppState, v: &RecordVersion) -> RecordDto {
    RecordDto {
        record_id: v.record_id.to_string(),
        version_id: v.version_id.to_string(),
        version: v.version,
        patient_id: v.patient_id.to_string(),
        kind: v.record.kind().code().into(),
        action: v.action.code().into(),
        summary: v.record.summary(),
        fields: forms::record_fields(&v.record, &state.app.knowledge().diagnoses),
        reason: v.reason.as_ref().map(|r| r.as_str().to_owned()),
        recorded_by: v.provenance.username.clone(),
        recorded_at: v.provenance.recorded_at.to_rfc3339(),
    }
}

/// A weight or height on the chart.
#[derive(Serialize, ToSchema)]
pub struct MeasurementDto {
    record_id: String,
    /// Exact decimal as text.
    value: String,
    /// UCUM unit: kg or cm.
    unit: String,
    measured_at: String,
    recorded_by: String,
}

/// The whole chart.
#[derive(Serialize, ToSchema)]
pub struct ChartDto {
    patient: PatientDto,
    records: Vec<RecordDto>,
    voided: Vec<RecordDto>,
    weights: Vec<MeasurementDto>,
    heights: Vec<MeasurementDto>,
    /// Derived from the latest weight and height, kg/m2.
    bmi: Option<String>,
}

/// Amend demographics.
#[derive(Deserialize, ToSchema)]
pub struct AmendPatientRequest {
    /// The version you edited.
    base_version: u32,
    demographics: DemographicsDto,
    reason: String,
}

/// Void with a reason.
#[derive(Deserialize, ToSchema)]
pub struct VoidRequest {
    /// The version you saw.
    base_version: u32,
    reason: String,
}

pub use ketacare_intake::NumberOrText;

/// A weight (kg) or height (cm) to record.
#[derive(Deserialize, ToSchema)]
pub struct MeasurementRequest {
    /// Kilograms for weights, centimetres for heights, as a number or text. No other units are accepted.
    #[schema(value_type = NumberOrText, example = "72.4")]
    value: NumberOrText,
    /// When measured (YYYY-MM-DDTHH:MM, UTC); omitted means now.
    #[serde(default)]
    measured_at: Option<String>,
    /// Codes of warnings you have checked (from a previous needs_confirmation response).
    #[serde(default)]
    acknowledge: Vec<String>,
}

impl MeasurementRequest {
    fn input(&self) -> MeasurementInput {
        MeasurementInput {
            value: self.value.text(),
            measured_at: self.measured_at.clone().unwrap_or_default(),
            acknowledged: self.acknowledge.clone(),
        }
    }
}

/// A record to add. `fields` by kind: diagnosis {choice (gad, sad, specific_phobia, panic, other), system, code, display, icd10, onset, status, note};
/// medication {name, rxnorm, dose, start, stop}; allergy {substance, reaction, severity};
/// encounter {encounter_kind, start, end, reason_for_visit, note}; observation {code, system, display, value_type, value, unit, effective}.
#[derive(Deserialize, ToSchema)]
pub struct RecordRequest {
    kind: String,
    #[serde(default)]
    fields: HashMap<String, String>,
}

/// Amend a record. For weights and heights, `fields` holds `value` and `measured_at`.
#[derive(Deserialize, ToSchema)]
pub struct AmendRecordRequest {
    base_version: u32,
    reason: String,
    #[serde(default)]
    fields: HashMap<String, String>,
    #[serde(default)]
    acknowledge: Vec<String>,
}

/// An audit entry (maps to FHIR AuditEvent).
#[derive(Serialize, ToSchema)]
pub struct AuditEntryDto {
    seq: i64,
    recorded_at: String,
    username: String,
    role: Option<String>,
    session: Option<String>,
    client_addr: Option<String>,
    /// C, R, U, D, E.
    action: String,
    outcome: String,
    entity_type: String,
    entity_id: Option<String>,
    patient_id: Option<String>,
    detail: Option<String>,
}

impl From<&AuditEntry> for AuditEntryDto {
    fn from(e: &AuditEntry) -> Self {
        let ev = &e.event;
        Self {
            seq: e.seq,
            recorded_at: ev.recorded_at.to_rfc3339(),
            username: ev.actor.username.clone(),
            role: ev.actor.role.map(|r| r.code().into()),
            session: ev.actor.session_ref.clone(),
            client_addr: ev.actor.client_addr.clone(),
            action: ev.action.code().into(),
            outcome: ev.outcome.code().into(),
            entity_type: ev.entity_type.clone(),
            entity_id: ev.entity_id.clone(),
            patient_id: ev.patient_id.map(|p| p.to_string()),
            detail: ev.detail.clone(),
        }
    }
}

/// A de-identified patient.
#[derive(Serialize, ToSchema)]
pub struct CohortPatientDto {
    research_id: String,
    age_band: String,
    sex: String,
    diagnoses: Vec<String>,
    bmi: Option<String>,
}

/// Create an account.
#[derive(Deserialize, ToSchema)]
pub struct CreateUserRequest {
    username: String,
    display_name: String,
    /// admin, medical_director, prescriber, nurse or researcher.
    role: String,
    password: String,
}

/// Activate or deactivate.
#[derive(Deserialize, ToSchema)]
pub struct ActiveRequest {
    active: bool,
}

/// Issue a token.
#[derive(Deserialize, ToSchema)]
pub struct IssueTokenRequest {
    user_id: String,
    label: String,
}

/// An API token (never the secret).
#[derive(Serialize, ToSchema)]
pub struct TokenDto {
    id: String,
    user_id: String,
    label: String,
    created_at: String,
    revoked: bool,
}

impl From<&ApiToken> for TokenDto {
    fn from(t: &ApiToken) -> Self {
        Self {
            id: t.id.to_string(),
            user_id: t.user_id.to_string(),
            label: t.label.clone(),
            created_at: t.created_at.to_rfc3339(),
            revoked: t.revoked_at.is_some(),
        }
    }
}

/// A newly issued token: the secret is shown only here.
#[derive(Serialize, ToSchema)]
pub struct IssuedTokenDto {
    token: TokenDto,
    /// Send as `Authorization: Bearer <secret>`.
    secret: String,
}

/// Search parameters.
#[derive(Deserialize, IntoParams)]
pub struct SearchQuery {
    /// Name or MRN fragment; empty lists all.
    q: Option<String>,
    /// Rows (1–500, default 50).
    limit: Option<i64>,
    /// Rows to skip.
    offset: Option<i64>,
}

// ---------- handlers ----------

/// A malformed query string as a validation problem naming the parameter.
fn query_problem(rej: QueryRejection) -> WebError {
    query_problem_with(rej, "numbers must be whole numbers such as 50")
}

/// A malformed query string as a validation problem naming the parameter, with what is accepted.
pub(crate) fn query_problem_with(rej: QueryRejection, accepted: &str) -> WebError {
    let text = rej.body_text();
    let detail = text.split_once("query string: ").map(|(_, d)| d).unwrap_or(&text);
    let field = detail
        .split_once(':')
        .map(|(f, _)| f.trim())
        .filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or("query");
    bad(field, &format!("is not valid ({detail}); {accepted}"))
}

pub(crate) fn pid(s: &str) -> ApiResult<PatientId> {
    PatientId::parse(s).map_err(|_| WebError::api(AppError::NotFound))
}

fn rid(s: &str) -> ApiResult<RecordId> {
    RecordId::parse(s).map_err(|_| WebError::api(AppError::NotFound))
}

#[utoipa::path(post, path = "/api/login", request_body = LoginRequest, responses((status = 200, body = UserDto, description = "Logged in; sets the session cookie"), (status = 202, body = crate::account::SecondStepDto, description = "The password is right and a second step is needed: send the authenticator's code (or enrol first) to POST /api/login/code"), (status = 401, body = Problem, description = "Wrong username or password, or the account is inactive or locked (one answer for all)"), (status = 429, body = Problem, description = "Too many failed logins from this address; Retry-After gives the seconds to wait")), tag = "session")]
async fn login(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let addr = client_addr(&parts);
    let r: LoginRequest = json(Request::from_parts(parts, body), &state).await?;
    let step = state.app.login(&r.username, &r.password, addr).await?;
    if let Some(second) = crate::account::SecondStepDto::from_step(&step) {
        return Ok((StatusCode::ACCEPTED, Json(second)).into_response());
    }
    let ketacare_app::LoginStep::SignedIn { token, principal: p } = step else {
        return Err(WebError::api(AppError::Internal("login step".into())));
    };
    let cookie = state.session_cookie(&token, state.app.settings().session_absolute.num_seconds());
    Ok(([(header::SET_COOKIE, cookie)], Json(UserDto::from(&p.user))).into_response())
}

#[utoipa::path(post, path = "/api/logout", responses((status = 204, description = "Session ended")), tag = "session")]
async fn logout(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Response> {
    state.app.logout(&p).await?;
    let cookie = state.session_cookie("", 0);
    Ok(([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

#[utoipa::path(get, path = "/api/me", responses((status = 200, body = UserDto), (status = 401, body = Problem)), tag = "session")]
async fn me(Auth(p): Auth) -> Json<UserDto> {
    Json(UserDto::from(&p.user))
}

#[utoipa::path(get, path = "/api/patients", params(SearchQuery), responses((status = 200, body = [PatientDto]), (status = 401, body = Problem), (status = 403, body = Problem)), tag = "patients")]
async fn search_patients(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<PatientDto>>> {
    let Query(q) = q.map_err(query_problem)?;
    let page = Page { limit: q.limit.unwrap_or(50).clamp(1, 500), offset: q.offset.unwrap_or(0).max(0) };
    let rows = state.app.search_patients(&p, q.q.as_deref().unwrap_or(""), page).await?;
    Ok(Json(rows.iter().map(PatientDto::from).collect()))
}

#[utoipa::path(post, path = "/api/patients", request_body = DemographicsDto, responses((status = 201, body = PatientDto), (status = 422, body = Problem)), tag = "patients")]
async fn register_patient(State(state): State<AppState>, Auth(p): Auth, req: Request) -> ApiResult<Response> {
    let d: DemographicsDto = json(req, &state).await?;
    let v = state.app.register_patient(&p, &d.input()).await?;
    Ok((StatusCode::CREATED, Json(PatientDto::from(&v))).into_response())
}

fn measurement_dto<T: ToString>(m: &ketacare_app::Measurement<T>, unit: &str) -> MeasurementDto {
    let text = m.value.to_string();
    MeasurementDto {
        record_id: m.version.record_id.to_string(),
        value: text.trim_end_matches(unit).trim().to_owned(),
        unit: unit.into(),
        measured_at: m.effective.to_rfc3339(),
        recorded_by: m.version.provenance.username.clone(),
    }
}

#[utoipa::path(get, path = "/api/patients/{id}", params(("id" = String, Path, description = "Patient id")), responses((status = 200, body = ChartDto), (status = 404, body = Problem)), tag = "patients")]
async fn get_chart(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<ChartDto>> {
    let c = state.app.chart(&p, pid(&id)?).await?;
    Ok(Json(ChartDto {
        patient: PatientDto::from(&c.patient),
        records: c.records.iter().map(|r| record_dto(&state, r)).collect(),
        voided: c.voided.iter().map(|r| record_dto(&state, r)).collect(),
        weights: c.weights.iter().map(|m| measurement_dto(m, "kg")).collect(),
        heights: c.heights.iter().map(|m| measurement_dto(m, "cm")).collect(),
        bmi: c.bmi().map(|b| b.normalize().to_string()),
    }))
}

#[utoipa::path(post, path = "/api/patients/{id}/amend", params(("id" = String, Path)), request_body = AmendPatientRequest, responses((status = 200, body = PatientDto), (status = 409, body = Problem), (status = 422, body = Problem)), tag = "patients")]
async fn amend_patient(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Json<PatientDto>> {
    let r: AmendPatientRequest = json(req, &state).await?;
    let v = state.app.amend_patient(&p, pid(&id)?, r.base_version, &r.demographics.input(), &r.reason).await?;
    Ok(Json(PatientDto::from(&v)))
}

#[utoipa::path(post, path = "/api/patients/{id}/void", params(("id" = String, Path)), request_body = VoidRequest, responses((status = 204), (status = 409, body = Problem)), tag = "patients")]
async fn void_patient(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<StatusCode> {
    let r: VoidRequest = json(req, &state).await?;
    state.app.void_patient(&p, pid(&id)?, r.base_version, &r.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/patients/{id}/history", params(("id" = String, Path)), responses((status = 200, body = [PatientDto])), tag = "patients")]
async fn patient_history(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<Vec<PatientDto>>> {
    let h = state.app.patient_history(&p, pid(&id)?).await?;
    Ok(Json(h.iter().map(PatientDto::from).collect()))
}

#[utoipa::path(post, path = "/api/patients/{id}/weights", params(("id" = String, Path)), request_body = MeasurementRequest,
    responses((status = 201, body = RecordDto), (status = 422, body = Problem, description = "validation (e.g. outside 20–400 kg) or needs_confirmation (e.g. possible_pounds)")), tag = "measurements")]
async fn record_weight(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let r: MeasurementRequest = json(req, &state).await?;
    let v = state.app.record_weight(&p, pid(&id)?, &r.input()).await?;
    Ok((StatusCode::CREATED, Json(record_dto(&state, &v))).into_response())
}

#[utoipa::path(post, path = "/api/patients/{id}/heights", params(("id" = String, Path)), request_body = MeasurementRequest, responses((status = 201, body = RecordDto), (status = 422, body = Problem)), tag = "measurements")]
async fn record_height(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let r: MeasurementRequest = json(req, &state).await?;
    let v = state.app.record_height(&p, pid(&id)?, &r.input()).await?;
    Ok((StatusCode::CREATED, Json(record_dto(&state, &v))).into_response())
}

fn fields(m: &HashMap<String, String>) -> Fields {
    m.clone()
}

#[utoipa::path(post, path = "/api/patients/{id}/records", params(("id" = String, Path)), request_body = RecordRequest, responses((status = 201, body = RecordDto), (status = 422, body = Problem)), tag = "records")]
async fn add_record(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let r: RecordRequest = json(req, &state).await?;
    let kind = RecordKind::parse(&r.kind).map_err(|m| bad("kind", &m))?;
    let v = state.app.add_record(&p, pid(&id)?, &forms::record_input(kind, &fields(&r.fields))).await?;
    Ok((StatusCode::CREATED, Json(record_dto(&state, &v))).into_response())
}

#[utoipa::path(get, path = "/api/records/{rid}", params(("rid" = String, Path, description = "Record id")), responses((status = 200, body = RecordDto), (status = 404, body = Problem)), tag = "records")]
async fn get_record(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<RecordDto>> {
    let v = state.app.record(&p, rid(&id)?).await?;
    Ok(Json(record_dto(&state, &v)))
}

#[utoipa::path(get, path = "/api/records/{rid}/history", params(("rid" = String, Path)), responses((status = 200, body = [RecordDto])), tag = "records")]
async fn record_history(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<Vec<RecordDto>>> {
    let h = state.app.record_history(&p, rid(&id)?).await?;
    Ok(Json(h.iter().map(|v| record_dto(&state, v)).collect()))
}

#[utoipa::path(post, path = "/api/records/{rid}/amend", params(("rid" = String, Path)), request_body = AmendRecordRequest, responses((status = 200, body = RecordDto), (status = 409, body = Problem), (status = 422, body = Problem)), tag = "records")]
async fn amend_record(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Json<RecordDto>> {
    let r: AmendRecordRequest = json(req, &state).await?;
    let record = rid(&id)?;
    let cur = state.app.record(&p, record).await?;
    let f = fields(&r.fields);
    let is_measure = matches!(&cur.record, ketacare_domain::record::ClinicalRecord::Observation(o) if [ketacare_domain::coding::loinc::BODY_WEIGHT, ketacare_domain::coding::loinc::BODY_HEIGHT].contains(&o.code.code()));
    let v = if is_measure {
        let input = MeasurementInput {
            value: forms::f(&f, "value"),
            measured_at: forms::f(&f, "measured_at"),
            acknowledged: r.acknowledge.clone(),
        };
        state.app.amend_measurement(&p, record, r.base_version, &input, &r.reason).await?
    } else {
        state.app.amend_record(&p, record, r.base_version, &forms::record_input(cur.record.kind(), &f), &r.reason).await?
    };
    Ok(Json(record_dto(&state, &v)))
}

#[utoipa::path(post, path = "/api/records/{rid}/void", params(("rid" = String, Path)), request_body = VoidRequest, responses((status = 200, body = RecordDto), (status = 409, body = Problem)), tag = "records")]
async fn void_record(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Json<RecordDto>> {
    let r: VoidRequest = json(req, &state).await?;
    let v = state.app.void_record(&p, rid(&id)?, r.base_version, &r.reason).await?;
    Ok(Json(record_dto(&state, &v)))
}

#[utoipa::path(get, path = "/api/audit", params(AuditQuery), responses((status = 200, body = [AuditEntryDto]), (status = 403, body = Problem)), tag = "audit")]
async fn search_audit(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<AuditEntryDto>>> {
    let Query(q) = q.map_err(query_problem)?;
    let f = audit_filter(&q).map_err(|e| WebError::api(AppError::Validation(e)))?;
    let rows = state.app.search_audit(&p, &f).await?;
    Ok(Json(rows.iter().map(AuditEntryDto::from).collect()))
}

#[utoipa::path(get, path = "/api/research/cohort", responses((status = 200, body = [CohortPatientDto]), (status = 403, body = Problem)), tag = "research")]
async fn cohort(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<CohortPatientDto>>> {
    let rows = state.app.research_cohort(&p).await?;
    Ok(Json(
        rows.iter()
            .map(|r| CohortPatientDto {
                research_id: r.research_id.clone(),
                age_band: r.age_band.clone(),
                sex: r.sex.code().into(),
                diagnoses: r.diagnoses.iter().map(|(c, _)| c.clone()).collect(),
                bmi: r.bmi.map(|b| b.normalize().to_string()),
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/admin/users", responses((status = 200, body = [UserDto]), (status = 403, body = Problem)), tag = "admin")]
async fn list_users(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<UserDto>>> {
    Ok(Json(state.app.list_users(&p).await?.iter().map(UserDto::from).collect()))
}

#[utoipa::path(post, path = "/api/admin/users", request_body = CreateUserRequest, responses((status = 201, body = UserDto), (status = 422, body = Problem)), tag = "admin")]
async fn create_user(State(state): State<AppState>, Auth(p): Auth, req: Request) -> ApiResult<Response> {
    let r: CreateUserRequest = json(req, &state).await?;
    let u = state
        .app
        .create_user(&p, &NewUserInput { username: r.username, display_name: r.display_name, role: r.role, password: r.password })
        .await?;
    Ok((StatusCode::CREATED, Json(UserDto::from(&u))).into_response())
}

#[utoipa::path(post, path = "/api/admin/users/{id}/unlock", params(("id" = String, Path)), responses((status = 204, description = "Unlocked; the failed-login count is back to zero"), (status = 403, body = Problem), (status = 404, body = Problem)), tag = "admin")]
async fn unlock_user(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let uid = UserId::parse(&id).map_err(|_| WebError::api(AppError::NotFound))?;
    state.app.unlock_user(&p, uid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/admin/users/{id}/active", params(("id" = String, Path)), request_body = ActiveRequest, responses((status = 204)), tag = "admin")]
async fn set_user_active(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<StatusCode> {
    let r: ActiveRequest = json(req, &state).await?;
    let uid = UserId::parse(&id).map_err(|_| WebError::api(AppError::NotFound))?;
    state.app.set_user_active(&p, uid, r.active).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/admin/tokens", responses((status = 200, body = [TokenDto])), tag = "admin")]
async fn list_tokens(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<TokenDto>>> {
    Ok(Json(state.app.list_api_tokens(&p).await?.iter().map(TokenDto::from).collect()))
}

#[utoipa::path(post, path = "/api/admin/tokens", request_body = IssueTokenRequest, responses((status = 201, body = IssuedTokenDto)), tag = "admin")]
async fn issue_token(State(state): State<AppState>, Auth(p): Auth, req: Request) -> ApiResult<Response> {
    let r: IssueTokenRequest = json(req, &state).await?;
    let (secret, t) = state.app.issue_api_token(&p, &r.user_id, &r.label).await?;
    Ok((StatusCode::CREATED, Json(IssuedTokenDto { token: TokenDto::from(&t), secret })).into_response())
}

#[utoipa::path(post, path = "/api/admin/tokens/{id}/revoke", params(("id" = String, Path)), responses((status = 204)), tag = "admin")]
async fn revoke_token(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let tid = TokenId::parse(&id).map_err(|_| WebError::api(AppError::NotFound))?;
    state.app.revoke_api_token(&p, tid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Ketacare API", description = "JSON API of Ketacare. Clinical decision support; it does not replace clinical judgement. Authenticate with POST /api/login (session cookie) or an administrator-issued bearer token."),
    paths(login, logout, me, search_patients, register_patient, get_chart, amend_patient, void_patient, patient_history, record_weight, record_height, add_record, get_record, record_history, amend_record, void_record, search_audit, cohort, list_users, create_user, set_user_active, unlock_user, list_tokens, issue_token, revoke_token,
        crate::api_outcomes::list_instruments, crate::api_outcomes::get_instrument, crate::api_outcomes::score, crate::api_outcomes::outcome,
        crate::api_outcomes::patient_assessments, crate::api_outcomes::record_assessment, crate::api_outcomes::send_questionnaire,
        crate::api_outcomes::cancel_questionnaire, crate::api_outcomes::list_alerts, crate::api_outcomes::acknowledge_alert,
        crate::api_outcomes::list_schedules, crate::api_outcomes::create_schedule, crate::api_outcomes::end_schedule,
        crate::api_outcomes::get_wording, crate::api_outcomes::load_wording, crate::api_outcomes::withdraw_wording,
        crate::api_screening::get_screening, crate::api_screening::sign_screening, crate::api_screening::record_vitals,
        crate::api_screening::record_liver_tests, crate::api_screening::evaluate,
        crate::api_dosing::calculate, crate::api_dosing::protocols, crate::api_dosing::drug_library, crate::api_dosing::quality,
        crate::api_dosing::patient_dosing, crate::api_dosing::create_plan, crate::api_dosing::create_order,
        crate::api_dosing::approve_override, crate::api_dosing::double_check, crate::api_dosing::get_titration, crate::api_dosing::decide_titration,
        crate::api_dosing::propose, crate::api_dosing::decide, crate::api_dosing::propose_protocol, crate::api_dosing::decide_protocol,
        crate::api_session::book_session, crate::api_session::list_sessions, crate::api_session::get_session, crate::api_session::session_action,
        crate::api_session::add_readings, crate::api_session::add_rating, crate::api_session::acknowledge, crate::api_session::board, crate::api_session::device_readings,
        crate::api_pk::models, crate::api_pk::simulate, crate::api_pk::compare, crate::api_pk::simulate_patient,
        crate::api_safety::get_safety, crate::api_safety::add_lab, crate::api_safety::add_lab_fhir, crate::api_safety::add_event, crate::api_safety::sign_review,
        crate::api_safety::get_care_plan, crate::api_safety::save_care_plan, crate::api_safety::board),
    components(schemas(Problem, FieldProblem, WarningDto)),
    tags((name = "session"), (name = "patients"), (name = "measurements"), (name = "records"), (name = "audit"), (name = "research"), (name = "admin"),
        (name = "instruments", description = "Rating-scale catalogue and calculators (nothing stored)"),
        (name = "outcomes", description = "Measurement-based care: assessments, outcome series, questionnaire links, schedules, safety alerts"),
        (name = "dosing", description = "Dose calculator against the drug library (soft and hard limits), protocols, drug library, quality report"),
        (name = "sessions", description = "Treatment sessions: booking, steps with their checks, vital signs (typed in or from device gateways), alarms and acknowledgements, ratings, adverse events, the session record and the live board"),
        (name = "safety", description = "Long-term safety: cumulative exposure, tolerance and misuse signals, liver tests (typed or FHIR Observation) and bladder symptoms, safety observations, signed benefit-risk reviews, the care plan and the clinic safety board"),
        (name = "pharmacokinetics", description = "Regimen simulator: predicted plasma and effect-site ketamine concentrations (exact closed form), exposure metrics, model provenance, warnings and uncertainty bands; concentration bands are context, never targets"),
        (name = "screening", description = "Screening and eligibility: verdict and findings with sources, signed verdicts, baseline vital signs and liver tests, an intake calculator"))
)]
pub struct ApiDoc;

/// Every documented API route as (method, path) — used by the authorisation tests.
pub fn documented_routes() -> Vec<(String, String)> {
    let doc = ApiDoc::openapi();
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (m, op) in [("GET", &item.get), ("POST", &item.post)] {
            if op.is_some() {
                out.push((m.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// The whole document: this module's paths plus those of the modules that keep their own.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::api_research::ResearchDoc::openapi());
    doc.merge(crate::fhir_api::FhirDoc::openapi());
    doc.merge(crate::reports::ReportsDoc::openapi());
    doc.merge(crate::clinic_report::ClinicReportDoc::openapi());
    doc.merge(crate::exports::ExportsDoc::openapi());
    doc.merge(crate::account::AccountDoc::openapi());
    doc.merge(crate::access::AccessDoc::openapi());
    finish(doc)
}

/// What every operation shares: any status not listed is an error with a [`Problem`] body
/// (401 without credentials, 403 for the role, 404 for an unknown id, 413, 415, 422 for bad
/// input, 500), and the FHIR API answers in `application/fhir+json`.
fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, ResponseBuilder};
    for (path, item) in doc.paths.paths.iter_mut() {
        let fhir = path.starts_with("/fhir");
        for op in [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch].into_iter().flatten() {
            if fhir {
                for r in op.responses.responses.values_mut() {
                    if let RefOr::T(resp) = r {
                        if let Some(c) = resp.content.shift_remove("application/json") {
                            resp.content.insert(ketacare_fhir::FHIR_JSON.into(), c);
                        }
                    }
                }
            }
            op.responses.responses.entry("default".into()).or_insert_with(|| {
                let (kind, schema): (&str, RefOr<utoipa::openapi::schema::Schema>) = if fhir {
                    (ketacare_fhir::FHIR_JSON, ObjectBuilder::new().description(Some("OperationOutcome")).into())
                } else {
                    ("application/json", Ref::from_schema_name("Problem").into())
                };
                ResponseBuilder::new()
                    .description("Any other status is an error: 401 without valid credentials, 403 when the role does not allow it, 404 for an unknown id, 413 or 415 for a body too large or not JSON, 422 naming each bad field and what is accepted, 500 when nothing was saved")
                    .content(kind, ContentBuilder::new().schema(Some(schema)).build())
                    .build()
                    .into()
            });
        }
    }
    doc
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi_document())
}
