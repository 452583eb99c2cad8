//! The JSON API of long-term safety: a patient's exposure, signals, labs, bladder and review
//! status; lab results (typed or as a FHIR R4 Observation), safety observations, signed
//! benefit-risk reviews, the care plan, and the clinic safety board.

use crate::api::{json, pid, ApiResult};
use crate::error::{Problem, WebError};
use crate::extract::Auth;
use crate::AppState;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use ketacare_app::{AppError, SafetyView};
use ketacare_domain::ids::RecordId;
use ketacare_domain::record::RecordVersion;
use ketacare_domain::safety::{CarePlan, Goal, GoalKind, LabInput, LabTest, SafetyEventInput, Therapy};
use ketacare_domain::validation::FieldErrors;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr;
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/safety", get(get_safety))
        .route("/patients/{id}/labs", post(add_lab))
        .route("/patients/{id}/labs/fhir", post(add_lab_fhir))
        .route("/patients/{id}/safety-events", post(add_event))
        .route("/patients/{id}/safety-reviews", post(sign_review))
        .route("/patients/{id}/care-plan", get(get_care_plan).post(save_care_plan))
        .route("/safety/board", get(board))
}

fn invalid(e: FieldErrors) -> WebError {
    WebError::api(AppError::Validation(e))
}

/// A record written.
#[derive(Serialize, ToSchema)]
pub struct WrittenRecordDto {
    record_id: String,
    version: u32,
    summary: String,
}

fn written(v: &RecordVersion) -> Response {
    (StatusCode::CREATED, Json(WrittenRecordDto { record_id: v.record_id.to_string(), version: v.version, summary: v.record.summary() }))
        .into_response()
}

/// A safety signal.
#[derive(Serialize, ToSchema)]
pub struct SignalDto {
    code: String,
    /// review (before the next dose) or watch.
    level: String,
    title: String,
    data: Vec<String>,
    action: String,
    source: String,
}

/// Totals over one window.
#[derive(Serialize, ToSchema)]
pub struct WindowDto {
    label: String,
    days: Option<i64>,
    doses: usize,
    mg: String,
    mg_per_kg: String,
    soft_limit_mg: Option<String>,
    hard_limit_mg: Option<String>,
}

/// A lab result.
#[derive(Serialize, ToSchema)]
pub struct LabDto {
    record_id: String,
    test: String,
    loinc: String,
    value: String,
    unit: String,
    uln: String,
    /// Value as a multiple of the upper limit of normal.
    multiple_of_uln: String,
    sampled_at: String,
    lab: Option<String>,
}

/// A patient's long-term safety.
#[derive(Serialize, ToSchema)]
pub struct SafetyDto {
    on_maintenance: bool,
    windows: Vec<WindowDto>,
    /// Sessions in the last 28 days and in the 28 before.
    sessions_28d: [usize; 2],
    signals: Vec<SignalDto>,
    labs: Vec<LabDto>,
    /// R = (ALT/ULN)/(ALP/ULN) of the latest same-day pair, and its pattern.
    r_ratio: Option<String>,
    liver_pattern: Option<String>,
    icsi: Vec<(String, String)>,
    labs_due: Option<String>,
    icsi_due: Option<String>,
    review_due: Option<String>,
    last_review: Option<ReviewDto>,
    /// Adverse events recorded in treatment sessions.
    adverse_events: Vec<String>,
    rules_version: String,
}

/// A signed review.
#[derive(Serialize, ToSchema)]
pub struct ReviewDto {
    record_id: String,
    decision: String,
    reasons: String,
    evidence: Vec<String>,
    signals: Vec<String>,
    next_review: String,
    signed_by: String,
    signed_at: String,
}

fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

fn safety_dto(v: &SafetyView, rules_version: &str) -> SafetyDto {
    let a = &v.assessment;
    SafetyDto {
        on_maintenance: v.on_maintenance,
        windows: a
            .cumulative
            .windows
            .iter()
            .map(|w| WindowDto {
                label: w.label.into(),
                days: w.days,
                doses: w.doses,
                mg: dec(w.mg),
                mg_per_kg: dec(w.mg_per_kg),
                soft_limit_mg: w.caps.map(|c| dec(c.0)),
                hard_limit_mg: w.caps.map(|c| dec(c.1)),
            })
            .collect(),
        sessions_28d: [a.cumulative.sessions_28d.0, a.cumulative.sessions_28d.1],
        signals: a
            .signals
            .iter()
            .map(|s| SignalDto {
                code: s.code.into(),
                level: s.level.code().into(),
                title: s.title.clone(),
                data: s.data.clone(),
                action: s.action.clone(),
                source: s.source.clone(),
            })
            .collect(),
        labs: v
            .labs
            .iter()
            .map(|(rv, l)| LabDto {
                record_id: rv.record_id.to_string(),
                test: l.test.code().into(),
                loinc: l.test.loinc().into(),
                value: dec(l.value),
                unit: l.unit.clone(),
                uln: dec(l.uln),
                multiple_of_uln: dec(l.multiple()),
                sampled_at: l.sampled_at.format("%Y-%m-%dT%H:%MZ").to_string(),
                lab: l.lab.clone(),
            })
            .collect(),
        r_ratio: a.liver.r_ratio.map(|r| dec(r.0)),
        liver_pattern: a.liver.r_ratio.map(|r| r.1.into()),
        icsi: v
            .scales
            .iter()
            .find(|s| s.instrument == "icsi")
            .map(|s| s.points.iter().map(|(t, x)| (t.format("%Y-%m-%d").to_string(), dec(*x))).collect())
            .unwrap_or_default(),
        labs_due: a.labs_due.map(|d| d.to_string()),
        icsi_due: a.icsi_due.map(|d| d.to_string()),
        review_due: a.review_due.map(|d| d.to_string()),
        last_review: v.reviews.first().map(|(rv, r)| ReviewDto {
            record_id: rv.record_id.to_string(),
            decision: r.decision.code().into(),
            reasons: r.reasons.clone(),
            evidence: r.evidence.clone(),
            signals: r.signals.clone(),
            next_review: r.next_review.to_string(),
            signed_by: rv.provenance.username.clone(),
            signed_at: rv.provenance.recorded_at.format("%Y-%m-%dT%H:%MZ").to_string(),
        }),
        adverse_events: v.adverse_events.iter().map(|(t, x)| format!("{}: {x}", t.format("%Y-%m-%d"))).collect(),
        rules_version: rules_version.into(),
    }
}

#[utoipa::path(get, path = "/api/patients/{id}/safety", params(("id" = String, Path)),
    responses((status = 200, body = SafetyDto), (status = 403, body = Problem), (status = 404, body = Problem)), tag = "safety")]
async fn get_safety(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<SafetyDto>> {
    let v = state.app.safety(&p, pid(&id)?).await?;
    Ok(Json(safety_dto(&v, &state.app.knowledge().safety.version)))
}

/// A lab result as typed. Numbers may be given as JSON numbers or text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabRequest {
    /// alt, ast, alp, ggt or bilirubin.
    test: String,
    #[schema(value_type = String)]
    value: Value,
    /// U/L (bilirubin: umol/L or mg/dL).
    unit: String,
    /// The laboratory's upper limit of normal, same unit.
    #[schema(value_type = String)]
    uln: Value,
    /// YYYY-MM-DDTHH:MM (UTC); empty: now.
    sampled_at: Option<String>,
    lab: Option<String>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

#[utoipa::path(post, path = "/api/patients/{id}/labs", params(("id" = String, Path)), request_body = LabRequest,
    responses((status = 201, body = WrittenRecordDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem, description = "test, value, unit, uln or sampled_at named with the accepted form")),
    tag = "safety")]
async fn add_lab(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let r: LabRequest = json(req, &state).await?;
    let input = LabInput { test: r.test, value: text(&r.value), unit: r.unit, uln: text(&r.uln), lab: r.lab.unwrap_or_default() };
    let v = state.app.add_lab_result(&p, pid(&id)?, &input, r.sampled_at.as_deref().unwrap_or("")).await?;
    Ok(written(&v))
}

/// Reads a FHIR R4 Observation of a liver test: LOINC code, valueQuantity (UCUM), referenceRange
/// high (the laboratory's ULN), effectiveDateTime. Each problem is named by its FHIR path.
pub fn lab_from_fhir(o: &Value) -> Result<(LabInput, String), FieldErrors> {
    let mut e = FieldErrors::new();
    if o.get("resourceType").and_then(Value::as_str) != Some("Observation") {
        e.add("resourceType", "must be \"Observation\"");
        return Err(e);
    }
    let codings = o.pointer("/code/coding").and_then(Value::as_array).cloned().unwrap_or_default();
    let test = codings
        .iter()
        .filter(|c| c.get("system").and_then(Value::as_str) == Some("http://loinc.org"))
        .find_map(|c| c.get("code").and_then(Value::as_str).and_then(|code| LabTest::ALL.into_iter().find(|t| t.loinc() == code)));
    if test.is_none() {
        let known: Vec<String> = LabTest::ALL.iter().map(|t| format!("{} {}", t.loinc(), t.label())).collect();
        e.add("code.coding", format!("needs a LOINC coding (system http://loinc.org) of a liver test: {}", known.join(", ")));
    }
    let quantity = |path: &str, field: &str, e: &mut FieldErrors| -> Option<(String, String)> {
        let q = o.pointer(path);
        let value =
            q.and_then(|q| q.get("value")).and_then(Value::as_f64).and_then(|_| q.and_then(|q| q.get("value")).map(|v| v.to_string()));
        let unit = q.and_then(|q| q.get("code").or_else(|| q.get("unit"))).and_then(Value::as_str).map(str::to_owned);
        match (value, unit) {
            (Some(v), Some(u)) => Some((v, u)),
            _ => {
                e.add(field, "must be a Quantity with a numeric value and a UCUM code (system http://unitsofmeasure.org)");
                None
            }
        }
    };
    let value = quantity("/valueQuantity", "valueQuantity", &mut e);
    let high = quantity("/referenceRange/0/high", "referenceRange[0].high", &mut e);
    if let (Some((_, u)), Some((_, hu))) = (&value, &high) {
        if u != hu {
            e.add("referenceRange[0].high", format!("must be in the same unit as the value ({u}), not {hu}"));
        }
    }
    let at = match o.get("effectiveDateTime").and_then(Value::as_str) {
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M").to_string(),
            Err(_) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) => format!("{d}T00:00"),
                Err(_) => {
                    e.add("effectiveDateTime", "must be a FHIR dateTime such as 2026-11-20T08:30:00Z");
                    String::new()
                }
            },
        },
        None => {
            e.add("effectiveDateTime", "is required (when the sample was taken)");
            String::new()
        }
    };
    let lab = o.pointer("/performer/0/display").and_then(Value::as_str).unwrap_or_default().to_owned();
    e.into_result()?;
    let (value, unit) = value.expect("checked");
    let (uln, _) = high.expect("checked");
    Ok((LabInput { test: test.expect("checked").code().into(), value, unit, uln, lab }, at))
}

#[utoipa::path(post, path = "/api/patients/{id}/labs/fhir", params(("id" = String, Path)), request_body(content = Object, description = "A FHIR R4 Observation (application/json or application/fhir+json): LOINC code of ALT 1742-6, AST 1920-8, ALP 6768-6, GGT 2324-2 or bilirubin 1975-2; valueQuantity with a UCUM code; referenceRange[0].high (the laboratory's ULN); effectiveDateTime"),
    responses((status = 201, body = WrittenRecordDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem, description = "each problem named by its FHIR path")),
    tag = "safety")]
async fn add_lab_fhir(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|_| invalid(FieldErrors::single("body", "must be a FHIR Observation of at most 1 MiB")))?;
    let o: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(FieldErrors::single("body", format!("must be a FHIR Observation in JSON ({e})"))))?;
    let (input, at) = lab_from_fhir(&o).map_err(invalid)?;
    let v = state.app.add_lab_result(&p, pid(&id)?, &input, &at).await?;
    Ok(written(&v))
}

/// A safety observation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// early_session_request, dose_increase_request, craving, substance_use, urine_toxicology or haematuria.
    kind: String,
    /// Craving 0-10.
    #[schema(value_type = Option<String>)]
    score: Option<Value>,
    /// positive or negative (urine_toxicology, haematuria).
    result: Option<String>,
    substances: Option<String>,
    note: Option<String>,
    /// YYYY-MM-DDTHH:MM (UTC); empty: now.
    at: Option<String>,
}

#[utoipa::path(post, path = "/api/patients/{id}/safety-events", params(("id" = String, Path)), request_body = EventRequest,
    responses((status = 201, body = WrittenRecordDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)), tag = "safety")]
async fn add_event(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let r: EventRequest = json(req, &state).await?;
    let input = SafetyEventInput {
        kind: r.kind,
        score: r.score.as_ref().map(text).unwrap_or_default(),
        result: r.result.unwrap_or_default(),
        substances: r.substances.unwrap_or_default(),
        note: r.note.unwrap_or_default(),
    };
    let v = state.app.add_safety_event(&p, pid(&id)?, &input, r.at.as_deref().unwrap_or("")).await?;
    Ok(written(&v))
}

/// A prescriber's benefit-risk review.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// continue, change, taper or stop.
    decision: String,
    /// Why (required).
    reasons: String,
    /// YYYY-MM-DD; empty: the clinic's interval from today.
    next_review: Option<String>,
}

#[utoipa::path(post, path = "/api/patients/{id}/safety-reviews", params(("id" = String, Path)), request_body = ReviewRequest,
    responses((status = 201, body = WrittenRecordDto, description = "signed; the evidence seen is frozen into the record"), (status = 403, body = Problem, description = "prescribers only"), (status = 404, body = Problem), (status = 422, body = Problem)),
    tag = "safety")]
async fn sign_review(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let r: ReviewRequest = json(req, &state).await?;
    let v = state.app.sign_review(&p, pid(&id)?, &r.decision, &r.reasons, r.next_review.as_deref().unwrap_or("")).await?;
    Ok(written(&v))
}

/// A goal.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoalDto {
    /// score or functional.
    kind: String,
    /// The goal in words (the patient's own for a functional goal).
    text: String,
    /// Score goals: instrument key (hama, gad7, lsas, ...).
    instrument: Option<String>,
    /// Score goals: target total at or below.
    target: Option<String>,
}

/// Psychotherapy or other support.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TherapyDto {
    /// integration, cbt or other.
    kind: String,
    description: String,
    who: String,
    frequency: String,
    /// Sessions: [{"date": "2026-11-02", "attended": true}].
    #[serde(default)]
    attendance: Vec<AttendanceDto>,
}

/// One therapy session.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendanceDto {
    date: String,
    attended: bool,
}

/// The care plan as sent and returned.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CarePlanDto {
    goals: Vec<GoalDto>,
    therapies: Vec<TherapyDto>,
    responsible: Vec<String>,
    /// YYYY-MM-DD.
    next_review: Option<String>,
    notes: Option<String>,
    /// To change an existing plan: its record id and the version you saw, and a reason.
    record_id: Option<String>,
    base_version: Option<u32>,
    reason: Option<String>,
}

fn plan_from_dto(d: &CarePlanDto) -> Result<CarePlan, FieldErrors> {
    let mut e = FieldErrors::new();
    let mut goals = Vec::new();
    for (i, g) in d.goals.iter().enumerate() {
        let kind = match g.kind.as_str() {
            "score" => GoalKind::Score,
            "functional" => GoalKind::Functional,
            _ => {
                e.add(&format!("goals[{i}].kind"), "must be score or functional");
                GoalKind::Functional
            }
        };
        let target = match g.target.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => match Decimal::from_str(t) {
                Ok(x) if x >= Decimal::ZERO => Some(x),
                _ => {
                    e.add(&format!("goals[{i}].target"), "must be a total score such as 10");
                    None
                }
            },
        };
        goals.push(Goal { kind, text: g.text.clone(), instrument: g.instrument.clone().filter(|s| !s.trim().is_empty()), target });
    }
    let mut therapies = Vec::new();
    for (i, t) in d.therapies.iter().enumerate() {
        let mut attendance = Vec::new();
        for (j, a) in t.attendance.iter().enumerate() {
            match NaiveDate::parse_from_str(a.date.trim(), "%Y-%m-%d") {
                Ok(day) => attendance.push((day, a.attended)),
                Err(_) => e.add(&format!("therapies[{i}].attendance[{j}].date"), "must be a date such as 2026-11-02"),
            }
        }
        therapies.push(Therapy {
            kind: t.kind.clone(),
            description: t.description.clone(),
            who: t.who.clone(),
            frequency: t.frequency.clone(),
            attendance,
        });
    }
    let next_review = match d.next_review.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(x) => Some(x),
            Err(_) => {
                e.add("next_review", "must be a date such as 2027-02-28");
                None
            }
        },
    };
    let plan = CarePlan {
        goals,
        therapies,
        responsible: d.responsible.clone(),
        next_review,
        notes: d.notes.clone().filter(|n| !n.trim().is_empty()),
    };
    if let Err(x) = plan.check() {
        e.extend_prefixed("", x);
    }
    e.into_result().map(|_| plan)
}

fn plan_dto(v: &RecordVersion, c: &CarePlan) -> CarePlanDto {
    CarePlanDto {
        goals: c
            .goals
            .iter()
            .map(|g| GoalDto {
                kind: if g.kind == GoalKind::Score { "score".into() } else { "functional".into() },
                text: g.text.clone(),
                instrument: g.instrument.clone(),
                target: g.target.map(dec),
            })
            .collect(),
        therapies: c
            .therapies
            .iter()
            .map(|t| TherapyDto {
                kind: t.kind.clone(),
                description: t.description.clone(),
                who: t.who.clone(),
                frequency: t.frequency.clone(),
                attendance: t.attendance.iter().map(|(d, a)| AttendanceDto { date: d.to_string(), attended: *a }).collect(),
            })
            .collect(),
        responsible: c.responsible.clone(),
        next_review: c.next_review.map(|d| d.to_string()),
        notes: c.notes.clone(),
        record_id: Some(v.record_id.to_string()),
        base_version: Some(v.version),
        reason: None,
    }
}

/// The care plan with the treatment and review it sits beside.
#[derive(Serialize, ToSchema)]
pub struct CarePlanViewDto {
    care_plan: Option<CarePlanDto>,
    /// The ketamine protocol of the current treatment plan.
    protocol: Option<String>,
    planned_sessions: Vec<String>,
    medications: Vec<String>,
    latest_review: Option<ReviewDto>,
}

#[utoipa::path(get, path = "/api/patients/{id}/care-plan", params(("id" = String, Path)),
    responses((status = 200, body = CarePlanViewDto), (status = 403, body = Problem), (status = 404, body = Problem)), tag = "safety")]
async fn get_care_plan(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<CarePlanViewDto>> {
    let v = state.app.safety(&p, pid(&id)?).await?;
    let safety = safety_dto(&v, "");
    Ok(Json(CarePlanViewDto {
        care_plan: v.care_plan.as_ref().map(|(rv, c)| plan_dto(rv, c)),
        protocol: v.plan.as_ref().map(|(_, t)| t.protocol_name.clone()),
        planned_sessions: v
            .plan
            .as_ref()
            .map(|(_, t)| t.sessions.iter().map(|s| format!("{} {}", s.date, s.label)).collect())
            .unwrap_or_default(),
        medications: v.medications.clone(),
        latest_review: safety.last_review,
    }))
}

#[utoipa::path(post, path = "/api/patients/{id}/care-plan", params(("id" = String, Path)), request_body = CarePlanDto,
    responses((status = 201, body = WrittenRecordDto, description = "created, or a new version of the plan"), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the plan changed since base_version, or a plan exists and no record_id was given"), (status = 422, body = Problem)),
    tag = "safety")]
async fn save_care_plan(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let d: CarePlanDto = json(req, &state).await?;
    let plan = plan_from_dto(&d).map_err(invalid)?;
    let base = match (&d.record_id, d.base_version) {
        (Some(r), Some(v)) => Some((RecordId::parse(r).map_err(|m| invalid(FieldErrors::single("record_id", m)))?, v)),
        (None, None) => None,
        _ => return Err(invalid(FieldErrors::single("base_version", "give record_id and base_version together to change the plan"))),
    };
    let v = state.app.save_care_plan(&p, pid(&id)?, plan, base, d.reason.as_deref().unwrap_or("")).await?;
    Ok(written(&v))
}

/// A row of the clinic safety board.
#[derive(Serialize, ToSchema)]
pub struct BoardRowDto {
    patient_id: String,
    mrn: String,
    name: String,
    signals: Vec<BoardSignalDto>,
    overdue_questionnaires: usize,
    open_alerts: usize,
    review_due: Option<String>,
    labs_due: Option<String>,
}

/// A signal on the board.
#[derive(Serialize, ToSchema)]
pub struct BoardSignalDto {
    code: String,
    level: String,
    title: String,
}

#[utoipa::path(get, path = "/api/safety/board", responses((status = 200, body = [BoardRowDto]), (status = 403, body = Problem)), tag = "safety")]
async fn board(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<BoardRowDto>>> {
    let rows = state.app.safety_board(&p).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| BoardRowDto {
                patient_id: r.patient.to_string(),
                mrn: r.mrn,
                name: r.name,
                signals: r
                    .signals
                    .into_iter()
                    .map(|(code, level, title)| BoardSignalDto { code, level: level.code().into(), title })
                    .collect(),
                overdue_questionnaires: r.overdue_questionnaires,
                open_alerts: r.open_alerts,
                review_due: r.review_due.map(|d| d.to_string()),
                labs_due: r.labs_due.map(|d| d.to_string()),
            })
            .collect(),
    ))
}
