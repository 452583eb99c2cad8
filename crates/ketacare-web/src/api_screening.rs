//! The JSON API of screening: the verdict of a patient's chart now and the signed verdict,
//! signing (with the medical director's acceptances), baseline vital signs and liver tests,
//! and a calculator that screens an intake document without storing anything.

use crate::api::{json, pid, ApiResult, NumberOrText};
use crate::error::Problem;
use crate::extract::Auth;
use crate::screening_doc::{intake_from_doc, FindingDto, IntakeDoc, ScreeningDto};
use crate::AppState;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ketacare_app::{AppError, LiverInput, SignInput, VitalsInput};
use ketacare_domain::access::Permission;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/screening", get(get_screening))
        .route("/patients/{id}/screening/sign", post(sign_screening))
        .route("/patients/{id}/vitals", post(record_vitals))
        .route("/patients/{id}/liver-tests", post(record_liver_tests))
        .route("/screening/evaluate", post(evaluate))
}

/// An accepted finding.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AcceptanceDto {
    /// Finding code, e.g. condition:bipolar_disorder.
    code: String,
    /// Why it is accepted.
    reason: String,
}

/// The signed verdict.
#[derive(Serialize, ToSchema)]
pub struct SignedScreeningDto {
    /// Screening record id.
    record_id: String,
    /// Version (each signature is a new version).
    version: u32,
    /// Who signed.
    signed_by: String,
    /// When (UTC, RFC 3339).
    signed_at: String,
    /// The verdict signed.
    verdict: String,
    /// The findings as signed.
    findings: Vec<FindingDto>,
    /// Accepted findings with reasons.
    acceptances: Vec<AcceptanceDto>,
    /// Knowledge version at signing.
    knowledge_version: String,
    /// Note.
    note: Option<String>,
}

/// A patient's screening.
#[derive(Serialize, ToSchema)]
pub struct PatientScreeningDto {
    /// The chart now, with the signed acceptances applied.
    current: ScreeningDto,
    /// The latest signed verdict, if any.
    signed: Option<SignedScreeningDto>,
    /// Findings new or more serious since the signature.
    new_since_signed: Vec<FindingDto>,
    /// Whether a treatment session may start (no absolute contraindication).
    session_may_start: bool,
}

/// A signature.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Findings that need review which the medical director accepts, each with a reason.
    #[serde(default)]
    acceptances: Vec<AcceptanceDto>,
    /// Note.
    #[serde(default)]
    note: String,
    /// The version of the signed screening you saw (omit when none was signed).
    #[serde(default)]
    base_version: Option<u32>,
}

/// Resting blood pressure and heart rate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VitalsRequest {
    /// Systolic, mmHg.
    #[schema(value_type = NumberOrText)]
    systolic: Option<NumberOrText>,
    /// Diastolic, mmHg.
    #[schema(value_type = NumberOrText)]
    diastolic: Option<NumberOrText>,
    /// Heart rate, /min.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    heart_rate: Option<NumberOrText>,
    /// YYYY-MM-DDTHH:MM UTC; omitted: now.
    #[serde(default)]
    measured_at: Option<String>,
}

/// Liver tests.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiverRequest {
    /// ALT, U/L.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    alt: Option<NumberOrText>,
    /// AST, U/L.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    ast: Option<NumberOrText>,
    /// ALP, U/L.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    alp: Option<NumberOrText>,
    /// Total bilirubin, µmol/L.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    bilirubin: Option<NumberOrText>,
    /// YYYY-MM-DDTHH:MM UTC; omitted: now.
    #[serde(default)]
    sampled_at: Option<String>,
}

/// Record ids written.
#[derive(Serialize, ToSchema)]
pub struct WrittenDto {
    /// One observation record per value.
    record_ids: Vec<String>,
}

fn text(v: &Option<NumberOrText>) -> String {
    v.as_ref().map(NumberOrText::text).unwrap_or_default()
}

async fn patient_screening(state: &AppState, p: &ketacare_app::Principal, id: &str) -> ApiResult<PatientScreeningDto> {
    let v = state.app.screening(p, pid(id)?).await?;
    Ok(PatientScreeningDto {
        current: ScreeningDto::new(&v.screening, &v.knowledge_version),
        signed: v.signed.as_ref().map(|(rv, r)| SignedScreeningDto {
            record_id: rv.record_id.to_string(),
            version: rv.version,
            signed_by: rv.provenance.username.clone(),
            signed_at: rv.provenance.recorded_at.to_rfc3339(),
            verdict: r.verdict.code().into(),
            findings: r.findings.iter().map(FindingDto::from).collect(),
            acceptances: r.acceptances.iter().map(|a| AcceptanceDto { code: a.code.clone(), reason: a.reason.clone() }).collect(),
            knowledge_version: r.knowledge_version.clone(),
            note: r.note.clone(),
        }),
        new_since_signed: v.new_since_signed.iter().map(FindingDto::from).collect(),
        session_may_start: v.session_may_start(),
    })
}

#[utoipa::path(get, path = "/api/patients/{id}/screening", params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, body = PatientScreeningDto), (status = 403, body = Problem), (status = 404, body = Problem)), tag = "screening")]
async fn get_screening(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<PatientScreeningDto>> {
    Ok(Json(patient_screening(&state, &p, &id).await?))
}

#[utoipa::path(post, path = "/api/patients/{id}/screening/sign", params(("id" = String, Path)), request_body = SignRequest,
    responses((status = 201, body = PatientScreeningDto), (status = 403, body = Problem, description = "signing needs a prescriber or the medical director; accepting findings needs the medical director"),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "signed by someone else meanwhile: reload"),
        (status = 422, body = Problem, description = "an absolute contraindication cannot be accepted; each acceptance needs a reason (field reason.<code>)")),
    tag = "screening")]
async fn sign_screening(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let r: SignRequest = json(req, &state).await?;
    let input = SignInput {
        acceptances: r.acceptances.into_iter().map(|a| (a.code, a.reason)).collect(),
        note: r.note,
        base_version: r.base_version,
    };
    state.app.sign_screening(&p, pid(&id)?, &input).await?;
    Ok((StatusCode::CREATED, Json(patient_screening(&state, &p, &id).await?)).into_response())
}

#[utoipa::path(post, path = "/api/patients/{id}/vitals", params(("id" = String, Path)), request_body = VitalsRequest,
    responses((status = 201, body = WrittenDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)), tag = "screening")]
async fn record_vitals(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let r: VitalsRequest = json(req, &state).await?;
    let input = VitalsInput {
        systolic: text(&r.systolic),
        diastolic: text(&r.diastolic),
        heart_rate: text(&r.heart_rate),
        measured_at: r.measured_at.unwrap_or_default(),
    };
    let vs = state.app.record_vitals(&p, pid(&id)?, &input).await?;
    Ok((StatusCode::CREATED, Json(WrittenDto { record_ids: vs.iter().map(|v| v.record_id.to_string()).collect() })).into_response())
}

#[utoipa::path(post, path = "/api/patients/{id}/liver-tests", params(("id" = String, Path)), request_body = LiverRequest,
    responses((status = 201, body = WrittenDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)), tag = "screening")]
async fn record_liver_tests(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let r: LiverRequest = json(req, &state).await?;
    let input = LiverInput {
        alt: text(&r.alt),
        ast: text(&r.ast),
        alp: text(&r.alp),
        bilirubin: text(&r.bilirubin),
        sampled_at: r.sampled_at.unwrap_or_default(),
    };
    let vs = state.app.record_liver_tests(&p, pid(&id)?, &input).await?;
    Ok((StatusCode::CREATED, Json(WrittenDto { record_ids: vs.iter().map(|v| v.record_id.to_string()).collect() })).into_response())
}

#[utoipa::path(post, path = "/api/screening/evaluate", request_body = IntakeDoc,
    responses((status = 200, body = ScreeningDto), (status = 401, body = Problem),
        (status = 422, body = Problem, description = "each bad field named with the accepted form (see docs/intake.schema.json)")),
    tag = "screening")]
async fn evaluate(State(state): State<AppState>, Auth(p): Auth, req: Request) -> ApiResult<Json<ScreeningDto>> {
    // A calculator over data the caller sends; it reads no chart, but only clinical roles use it.
    state.app.authorize(&p, Permission::ReadPatients, "Screening").await?;
    let doc: IntakeDoc = json(req, &state).await?;
    let k = state.app.knowledge();
    let intake = intake_from_doc(doc, k).map_err(|e| crate::error::WebError::api(AppError::Validation(e)))?;
    let s = ketacare_domain::screening::screen(&intake, &k.screening, &[]);
    Ok(Json(ScreeningDto::new(&s, &k.screening.version)))
}
