//! The JSON API of treatment sessions: booking, steps, vital signs (typed in, or from a device
//! gateway with an API token), ratings, alarm acknowledgement, the session record and the board.

use crate::api::{bad, json, pid, ApiResult};
use crate::error::{Problem, WebError};
use crate::extract::Auth;
use crate::AppState;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ketacare_app::{AppError, BookingInput, ChecksInput, IngestOutcome, MonitorBatch, ReadingInput, SessionAction, SessionView};
use ketacare_db::session::{ReadingSource, SessionAlarm, TreatmentSession};
use ketacare_domain::access::Permission;
use ketacare_domain::ids::RecordId;
use ketacare_domain::session::AdverseEventInput;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/sessions", get(list_sessions).post(book_session))
        .route("/sessions/{id}", get(get_session))
        .route("/sessions/{id}/actions", post(session_action))
        .route("/sessions/{id}/readings", post(add_readings))
        .route("/sessions/{id}/ratings", post(add_rating))
        .route("/sessions/{id}/alarms/{alarm}/acknowledge", post(acknowledge))
        .route("/board", get(board))
        .route("/device/readings", post(device_readings))
}

fn sid(s: &str) -> ApiResult<RecordId> {
    RecordId::parse(s).map_err(|_| WebError::api(AppError::NotFound))
}

fn api(e: AppError) -> WebError {
    WebError::api(e)
}

/// A treatment session.
#[derive(Serialize, ToSchema)]
pub struct SessionDto {
    /// Id (the treatment encounter's record id).
    id: String,
    /// Patient id.
    patient_id: String,
    /// Chair.
    chair: String,
    /// Bound monitor.
    device_id: Option<String>,
    /// Linked dose order.
    order_id: Option<String>,
    /// Phase code.
    phase: String,
    /// Event number: send it back as `seq` so a step is never taken twice.
    seq: i64,
    /// Booking entered (RFC 3339).
    created_at: String,
    /// Booked for (RFC 3339).
    scheduled_at: String,
    /// Pre-dose baseline systolic / diastolic.
    baseline: Option<String>,
    /// Dose started.
    dose_started_at: Option<String>,
    /// Dose ended.
    dose_ended_at: Option<String>,
    /// Signed (locked) at.
    signed_at: Option<String>,
    /// Signed by.
    signed_by: Option<String>,
}

impl From<&TreatmentSession> for SessionDto {
    fn from(s: &TreatmentSession) -> Self {
        Self {
            id: s.id.to_string(),
            patient_id: s.patient_id.to_string(),
            chair: s.chair.clone(),
            device_id: s.device_id.clone(),
            order_id: s.order_id.map(|o| o.to_string()),
            phase: s.phase.code().into(),
            seq: s.seq,
            created_at: s.created_at.to_rfc3339(),
            scheduled_at: s.scheduled_at.to_rfc3339(),
            baseline: s.baseline.0.zip(s.baseline.1).map(|(a, b)| format!("{a}/{b}")),
            dose_started_at: s.dose_started_at.map(|t| t.to_rfc3339()),
            dose_ended_at: s.dose_ended_at.map(|t| t.to_rfc3339()),
            signed_at: s.signed_at.map(|t| t.to_rfc3339()),
            signed_by: s.signed_by_name.clone(),
        }
    }
}

/// An alarm.
#[derive(Serialize, ToSchema)]
pub struct AlarmDto {
    /// Id.
    id: String,
    /// Rule code.
    rule: String,
    /// Level when raised.
    level: String,
    /// What was seen.
    message: String,
    /// Source of the rule.
    source: String,
    /// Raised (RFC 3339).
    raised_at: String,
    /// Acknowledged at.
    acknowledged_at: Option<String>,
    /// Acknowledged by.
    acknowledged_by: Option<String>,
    /// Action taken.
    action_taken: Option<String>,
    /// Cleared at.
    cleared_at: Option<String>,
}

impl From<&SessionAlarm> for AlarmDto {
    fn from(a: &SessionAlarm) -> Self {
        Self {
            id: a.id.to_string(),
            rule: a.rule.clone(),
            level: a.level.code().into(),
            message: a.message.clone(),
            source: a.source.clone(),
            raised_at: a.raised_at.to_rfc3339(),
            acknowledged_at: a.acknowledged.as_ref().map(|x| x.0.to_rfc3339()),
            acknowledged_by: a.acknowledged.as_ref().map(|x| x.2.clone()),
            action_taken: a.acknowledged.as_ref().map(|x| x.3.clone()),
            cleared_at: a.cleared_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// A reading.
#[derive(Serialize, ToSchema)]
pub struct ReadingDto {
    /// Vital code.
    vital: String,
    /// LOINC code.
    loinc: String,
    /// Value.
    value: String,
    /// UCUM unit.
    unit: String,
    /// Measured (RFC 3339).
    observed_at: String,
    /// manual, device or hl7.
    source: String,
    /// Device id.
    device_id: Option<String>,
}

/// An entry of the session record.
#[derive(Serialize, ToSchema)]
pub struct EventDto {
    /// Number.
    seq: i64,
    /// Kind.
    kind: String,
    /// When.
    at: String,
    /// Who.
    by: String,
    /// Phase after.
    phase: String,
    /// What.
    detail: String,
    /// Reason.
    reason: Option<String>,
}

/// A session with its record.
#[derive(Serialize, ToSchema)]
pub struct SessionDetailDto {
    /// The session.
    session: SessionDto,
    /// Pre-dose checks not met (empty: the dose may start).
    gate_unmet: Vec<String>,
    /// Discharge criteria not met (in recovery).
    discharge_unmet: Vec<String>,
    /// Prompts due (label and time).
    prompts: Vec<String>,
    /// Readings, oldest first.
    readings: Vec<ReadingDto>,
    /// Alarms, oldest first.
    alarms: Vec<AlarmDto>,
    /// The record, oldest first.
    events: Vec<EventDto>,
}

impl From<&SessionView> for SessionDetailDto {
    fn from(v: &SessionView) -> Self {
        Self {
            session: (&v.session).into(),
            gate_unmet: v.gate.unmet.clone(),
            discharge_unmet: v.discharge_unmet.clone(),
            prompts: v
                .prompts
                .iter()
                .map(|p| format!("{} due {}{}", p.label, p.due_at.to_rfc3339(), if p.overdue { " (overdue)" } else { "" }))
                .collect(),
            readings: v
                .readings
                .iter()
                .map(|r| ReadingDto {
                    vital: r.vital.code().into(),
                    loinc: r.vital.loinc().into(),
                    value: r.value.normalize().to_string(),
                    unit: r.vital.unit().into(),
                    observed_at: r.observed_at.to_rfc3339(),
                    source: r.source.code().into(),
                    device_id: r.device_id.clone(),
                })
                .collect(),
            alarms: v.alarms.iter().map(AlarmDto::from).collect(),
            events: v
                .events
                .iter()
                .map(|e| EventDto {
                    seq: e.seq,
                    kind: e.kind.clone(),
                    at: e.at.to_rfc3339(),
                    by: e.by_name.clone(),
                    phase: e.phase.code().into(),
                    detail: e.detail.clone(),
                    reason: e.reason.clone(),
                })
                .collect(),
        }
    }
}

/// Booking.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookRequest {
    /// Chair as its monitor names it in PV1-3, e.g. ROOM1^CHAIR2.
    chair: String,
    /// Monitor device id (EUI-64), optional.
    #[serde(default)]
    device_id: String,
    /// Dose order id, optional at booking.
    #[serde(default)]
    order_id: String,
    /// Booked for (RFC 3339 or YYYY-MM-DDTHH:MM UTC); omitted: now. Up to 12 h back, 90 days ahead.
    #[serde(default)]
    scheduled_at: String,
}

#[utoipa::path(post, path = "/api/patients/{id}/sessions", params(("id" = String, Path, description = "Patient id")), request_body = BookRequest, responses((status = 201, body = SessionDto), (status = 422, body = Problem)), tag = "sessions")]
pub(crate) async fn book_session(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let b: BookRequest = json(req, &state).await?;
    let s = state
        .app
        .book_session(
            &p,
            pid(&id)?,
            &BookingInput { chair: b.chair, device_id: b.device_id, order_id: b.order_id, scheduled_at: b.scheduled_at },
        )
        .await
        .map_err(api)?;
    Ok((StatusCode::CREATED, Json(SessionDto::from(&s))).into_response())
}

#[utoipa::path(get, path = "/api/patients/{id}/sessions", params(("id" = String, Path, description = "Patient id")), responses((status = 200, body = [SessionDto])), tag = "sessions")]
pub(crate) async fn list_sessions(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<SessionDto>>> {
    let list = state.app.patient_sessions(&p, pid(&id)?).await.map_err(api)?;
    Ok(Json(list.iter().map(SessionDto::from).collect()))
}

#[utoipa::path(get, path = "/api/sessions/{id}", params(("id" = String, Path, description = "Session id")), responses((status = 200, body = SessionDetailDto), (status = 404, body = Problem)), tag = "sessions")]
pub(crate) async fn get_session(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<SessionDetailDto>> {
    let v = state.app.session_view(&p, sid(&id)?).await.map_err(api)?;
    Ok(Json((&v).into()))
}

/// An adverse event.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdverseEventRequest {
    /// Kind: dissociation, hallucinations, nausea, vomiting, dizziness, headache, blurred_vision, hypertension, tachycardia, raised_temperature, anxiety, other.
    kind: String,
    /// Description (needed for other).
    #[serde(default)]
    description: String,
    /// Grade 1-5 (CTCAE style).
    grade: String,
    /// yes or no.
    serious: String,
    /// none, dose_paused, dose_stopped, treated, referred.
    action: String,
    /// resolved, resolving, not_resolved, unknown.
    outcome: String,
}

/// A step of a session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// check_in, start_checks, checks, link_order, bind_monitor, start_dose, dose_given, pause, resume, stop, start_recovery, back_to_monitoring, discharge, cancel, adverse_event, addendum.
    action: String,
    /// The session's `seq` you saw (recommended: a step taken since is refused with 409).
    #[serde(default)]
    seq: Option<i64>,
    /// Reason (pause, stop, back_to_monitoring, cancel).
    #[serde(default)]
    reason: String,
    /// Injection site (dose_given for SC/IM).
    #[serde(default)]
    site: String,
    /// start_dose / dose_given: when (RFC 3339 or YYYY-MM-DDTHH:MM UTC; omitted: now; up to 12 h back).
    #[serde(default)]
    at: String,
    /// checks: consent yes/no.
    #[serde(default)]
    consent: String,
    /// checks: escort yes/no.
    #[serde(default)]
    escort: String,
    /// checks: negative, positive, not_done, not_applicable.
    #[serde(default)]
    pregnancy_test: String,
    /// checks: a prescriber's reason to go ahead above the BP gate.
    #[serde(default)]
    gate_decision: String,
    /// discharge: escort present yes/no.
    #[serde(default)]
    escort_present: String,
    /// discharge: note.
    #[serde(default)]
    note: String,
    /// link_order.
    #[serde(default)]
    order_id: String,
    /// bind_monitor (blank unbinds).
    #[serde(default)]
    device_id: String,
    /// adverse_event.
    #[serde(default)]
    adverse_event: Option<AdverseEventRequest>,
    /// addendum text.
    #[serde(default)]
    text: String,
}

#[utoipa::path(post, path = "/api/sessions/{id}/actions", params(("id" = String, Path, description = "Session id")), request_body = ActionRequest, responses((status = 200, body = SessionDto), (status = 409, body = Problem), (status = 422, body = Problem)), tag = "sessions")]
pub(crate) async fn session_action(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Json<SessionDto>> {
    let b: ActionRequest = json(req, &state).await?;
    let act = match b.action.as_str() {
        "check_in" => SessionAction::CheckIn,
        "start_checks" => SessionAction::StartChecks,
        "checks" => SessionAction::Checks(ChecksInput { consent: b.consent, escort: b.escort, pregnancy_test: b.pregnancy_test, gate_decision: b.gate_decision }),
        "link_order" => SessionAction::LinkOrder(b.order_id),
        "bind_monitor" => SessionAction::BindMonitor(b.device_id),
        "start_dose" => SessionAction::StartDose { at: b.at },
        "dose_given" => SessionAction::DoseGiven { site: b.site, at: b.at },
        "pause" => SessionAction::Pause(b.reason),
        "resume" => SessionAction::Resume,
        "stop" => SessionAction::Stop(b.reason),
        "start_recovery" => SessionAction::StartRecovery,
        "back_to_monitoring" => SessionAction::BackToMonitoring(b.reason),
        "discharge" => SessionAction::Discharge { escort_present: b.escort_present, note: b.note },
        "cancel" => SessionAction::Cancel(b.reason),
        "adverse_event" => {
            let Some(a) = b.adverse_event else { return Err(bad("adverse_event", "an object with kind, grade, serious, action, outcome")) };
            SessionAction::AdverseEvent(AdverseEventInput {
                kind: a.kind,
                description: a.description,
                grade: a.grade,
                serious: a.serious,
                action: a.action,
                outcome: a.outcome,
            })
        }
        "addendum" => SessionAction::Addendum(b.text),
        _ => {
            return Err(bad(
                "action",
                "one of check_in, start_checks, checks, link_order, bind_monitor, start_dose, dose_given, pause, resume, stop, start_recovery, back_to_monitoring, discharge, cancel, adverse_event, addendum",
            ))
        }
    };
    let s = state.app.session_action(&p, sid(&id)?, b.seq, act).await.map_err(api)?;
    Ok(Json((&s).into()))
}

/// One reading as sent.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadingRequest {
    /// systolic, diastolic, heart_rate, spo2 or respiratory_rate.
    vital: String,
    /// The value as a number or text (mmHg, /min, %).
    #[schema(value_type = crate::api::NumberOrText)]
    value: crate::api::NumberOrText,
    /// When measured, RFC 3339; omitted: now.
    #[serde(default)]
    observed_at: String,
}

impl ReadingRequest {
    fn input(self) -> ReadingInput {
        ReadingInput { vital: self.vital, value: self.value.text(), observed_at: self.observed_at }
    }
}

/// Readings typed in by a clinician.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadingsRequest {
    /// The readings (a blood pressure with its heart rate, say).
    readings: Vec<ReadingRequest>,
}

/// What a batch of readings did.
#[derive(Serialize, ToSchema)]
pub struct IngestDto {
    /// Readings stored (a resent one is stored once).
    stored: usize,
    /// Values that were not readings, with why (never stored).
    rejected: Vec<String>,
    /// Alarms raised.
    alarms: Vec<AlarmDto>,
}

impl From<&IngestOutcome> for IngestDto {
    fn from(o: &IngestOutcome) -> Self {
        Self { stored: o.stored, rejected: o.rejected.clone(), alarms: o.raised.iter().map(AlarmDto::from).collect() }
    }
}

#[utoipa::path(post, path = "/api/sessions/{id}/readings", params(("id" = String, Path, description = "Session id")), request_body = ReadingsRequest, responses((status = 200, body = IngestDto), (status = 422, body = Problem)), tag = "sessions")]
pub(crate) async fn add_readings(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Json<IngestDto>> {
    let b: ReadingsRequest = json(req, &state).await?;
    let inputs: Vec<ReadingInput> = b.readings.into_iter().map(ReadingRequest::input).collect();
    let o = state.app.manual_readings(&p, sid(&id)?, &inputs).await.map_err(api)?;
    Ok(Json((&o).into()))
}

/// A rating in the session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// Instrument key (cadss, moaas, or any other).
    instrument: String,
    /// Answers in item order.
    answers: Vec<String>,
    /// Time point key (e.g. 1h), optional.
    #[serde(default)]
    timepoint: String,
}

#[utoipa::path(post, path = "/api/sessions/{id}/ratings", params(("id" = String, Path, description = "Session id")), request_body = RatingRequest, responses((status = 200, body = [AlarmDto], description = "Alarms the rating raised"), (status = 422, body = Problem)), tag = "sessions")]
pub(crate) async fn add_rating(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Json<Vec<AlarmDto>>> {
    let b: RatingRequest = json(req, &state).await?;
    let raised = state.app.session_rating(&p, sid(&id)?, &b.instrument, b.answers, &b.timepoint).await.map_err(api)?;
    Ok(Json(raised.iter().map(AlarmDto::from).collect()))
}

/// An acknowledgement.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// What was done.
    action: String,
}

#[utoipa::path(post, path = "/api/sessions/{id}/alarms/{alarm}/acknowledge", params(("id" = String, Path, description = "Session id"), ("alarm" = String, Path, description = "Alarm id")), request_body = AckRequest, responses((status = 200, body = AlarmDto), (status = 409, body = Problem)), tag = "sessions")]
pub(crate) async fn acknowledge(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, alarm)): Path<(String, String)>,
    req: Request,
) -> ApiResult<Json<AlarmDto>> {
    let b: AckRequest = json(req, &state).await?;
    let a = state.app.acknowledge_session_alarm(&p, sid(&id)?, &alarm, &b.action).await.map_err(api)?;
    Ok(Json((&a).into()))
}

#[utoipa::path(get, path = "/api/board", responses((status = 200, description = "Every active chair: phase, latest vitals with their age, trend, open alarms")), tag = "sessions")]
pub(crate) async fn board(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<serde_json::Value>> {
    let chairs = state.app.board(&p, true).await.map_err(api)?;
    Ok(Json(crate::session::board_dto(&chairs, true, state.app.now())))
}

/// Readings from a device gateway.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceReadingsRequest {
    /// The monitor's device id (EUI-64) bound to a session; or give `location`.
    #[serde(default)]
    device_id: String,
    /// The chair (as in PV1-3) when the device is not bound by id.
    #[serde(default)]
    location: String,
    /// The gateway's message id (kept with the readings).
    #[serde(default)]
    message_id: String,
    /// The readings.
    readings: Vec<ReadingRequest>,
}

#[utoipa::path(post, path = "/api/device/readings", request_body = DeviceReadingsRequest,
    responses((status = 200, body = IngestDto, description = "Stored durably before this answer; implausible or no-value entries are listed under rejected"), (status = 422, body = Problem, description = "A field is wrong, or no active session is bound to this device or location (field device_id)")),
    tag = "sessions")]
pub(crate) async fn device_readings(State(state): State<AppState>, Auth(p): Auth, req: Request) -> ApiResult<Json<IngestDto>> {
    state.app.authorize(&p, Permission::WriteClinical, "SessionReading").await.map_err(api)?;
    let b: DeviceReadingsRequest = json(req, &state).await?;
    if b.device_id.trim().is_empty() && b.location.trim().is_empty() {
        return Err(bad("device_id", "give the monitor's device_id or the chair's location"));
    }
    if b.readings.is_empty() || b.readings.len() > 500 {
        return Err(bad("readings", "from 1 to 500 readings"));
    }
    let now = state.app.now();
    let mut values = Vec::new();
    for (i, r) in b.readings.into_iter().enumerate() {
        let at = if r.observed_at.trim().is_empty() {
            None
        } else {
            match chrono::DateTime::parse_from_rfc3339(r.observed_at.trim()) {
                Ok(t) => Some(t.with_timezone(&chrono::Utc)),
                Err(_) => return Err(bad(&format!("readings[{i}].observed_at"), "an RFC 3339 time, e.g. 2026-11-30T09:15:00Z")),
            }
        };
        values.push((r.vital.trim().to_owned(), r.value.text(), at.or(Some(now))));
    }
    let dev = (!b.device_id.trim().is_empty()).then(|| b.device_id.trim().to_owned());
    let loc = (!b.location.trim().is_empty()).then(|| b.location.trim().to_owned());
    let msg = (!b.message_id.trim().is_empty()).then(|| b.message_id.trim().to_owned());
    let by = format!("gateway {}", p.user.username.as_str());
    let batch = MonitorBatch {
        source: ReadingSource::Device,
        device_id: dev.as_deref(),
        location: loc.as_deref(),
        message_id: msg.as_deref(),
        values: &values,
        by: &by,
    };
    match state.app.ingest_monitor(batch, Some(&p)).await {
        Ok(o) => Ok(Json((&o).into())),
        Err(AppError::NotFound) => Err(WebError::api(AppError::Validation(ketacare_domain::validation::FieldErrors::single(
            "device_id",
            "no active treatment session is bound to this device or location: book the session with the monitor's device id or chair first",
        )))),
        Err(AppError::Conflict(why)) => {
            Err(WebError::api(AppError::Validation(ketacare_domain::validation::FieldErrors::single("device_id", why))))
        }
        Err(e) => Err(api(e)),
    }
}
