//! The JSON API of dosing: the dose calculator (nothing ordered; every evaluation logged), the
//! protocol library, the drug library and the quality report.

use crate::api::{bad, json, ApiResult, NumberOrText};
use crate::error::Problem;
use crate::extract::Auth;
use crate::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, NaiveDate};
use ketacare_domain::access::Permission;
use ketacare_domain::dose::{DoseInput, DoseResult, Limits, QualityRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dose/calculate", post(calculate))
        .route("/protocols", get(protocols))
        .route("/protocols/proposals", post(propose_protocol))
        .route("/protocols/proposals/{id}/decide", post(decide_protocol))
        .route("/drug-library", get(drug_library))
        .route("/drug-library/proposals", post(propose))
        .route("/drug-library/proposals/{id}/decide", post(decide))
        .route("/dose/quality", get(quality))
}

fn dec(d: rust_decimal::Decimal) -> String {
    d.normalize().to_string()
}

/// A dose to calculate. Numbers may be JSON numbers or text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoseRequestDto {
    /// iv, sc, im or in.
    route: String,
    /// Weight measured today, kg.
    #[schema(value_type = NumberOrText)]
    weight_kg: Option<NumberOrText>,
    /// Dose, mg/kg (iv, sc, im).
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    mg_per_kg: Option<NumberOrText>,
    /// Fixed dose, mg (intranasal, whole 28 mg devices).
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    dose_mg: Option<NumberOrText>,
    /// Vial concentration on the shelf, mg/mL.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    concentration_mg_per_ml: Option<NumberOrText>,
    /// Final volume after dilution, mL (iv).
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    final_volume_ml: Option<NumberOrText>,
    /// Infusion time, minutes (iv).
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    minutes: Option<NumberOrText>,
    /// Height, cm.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    height_cm: Option<NumberOrText>,
    /// male or female.
    #[serde(default)]
    sex: Option<String>,
    /// actual, ideal or adjusted (omitted: the library's default).
    #[serde(default)]
    weight_basis: Option<String>,
}

fn t(v: &Option<NumberOrText>) -> String {
    v.as_ref().map(NumberOrText::text).unwrap_or_default()
}

impl DoseRequestDto {
    /// The typed fields.
    pub fn input(&self) -> DoseInput {
        DoseInput {
            route: self.route.clone(),
            weight_kg: t(&self.weight_kg),
            mg_per_kg: t(&self.mg_per_kg),
            dose_mg: t(&self.dose_mg),
            concentration_mg_per_ml: t(&self.concentration_mg_per_ml),
            final_volume_ml: t(&self.final_volume_ml),
            minutes: t(&self.minutes),
            height_cm: t(&self.height_cm),
            sex: self.sex.clone().unwrap_or_default(),
            weight_basis: self.weight_basis.clone().unwrap_or_default(),
        }
    }
}

/// A limit breached.
#[derive(Serialize, ToSchema)]
pub struct BreachDto {
    /// hard or soft.
    level: String,
    /// mg_per_kg, total_mg, rate, minutes, cumulative_7d_mg or cumulative_28d_mg.
    quantity: String,
    /// What happened.
    message: String,
    /// Source of the limit.
    source: String,
}

/// A calculated dose. Amounts are exact decimal text (no trailing zeros, a leading zero).
#[derive(Serialize, ToSchema)]
pub struct DoseResultDto {
    route: String,
    weight_basis: String,
    weight_used_kg: String,
    bmi: Option<String>,
    ibw_kg: Option<String>,
    adjbw_kg: Option<String>,
    dose_requested_mg: String,
    dose_mg: String,
    dose_mg_per_kg: String,
    concentration_mg_per_ml: Option<String>,
    drug_volume_ml: Option<String>,
    diluent_ml: Option<String>,
    final_volume_ml: Option<String>,
    final_concentration_mg_per_ml: Option<String>,
    minutes: Option<String>,
    rate_ml_per_h: Option<String>,
    rate_mg_per_h: Option<String>,
    rate_mg_per_kg_per_h: Option<String>,
    devices: Option<u32>,
    /// A hard limit is breached: nobody may give this dose.
    refused: bool,
    /// A soft limit is breached: an order needs a reason and a second clinician.
    needs_override: bool,
    breaches: Vec<BreachDto>,
    warnings: Vec<String>,
    /// The calculation, step by step.
    steps: Vec<String>,
}

impl From<&DoseResult> for DoseResultDto {
    fn from(r: &DoseResult) -> Self {
        let o = |d: Option<rust_decimal::Decimal>| d.map(dec);
        DoseResultDto {
            route: r.route.code().into(),
            weight_basis: r.basis.code().into(),
            weight_used_kg: dec(r.weight_used_kg),
            bmi: o(r.bmi),
            ibw_kg: o(r.ibw_kg),
            adjbw_kg: o(r.adjbw_kg),
            dose_requested_mg: dec(r.dose_requested_mg),
            dose_mg: dec(r.dose_mg),
            dose_mg_per_kg: dec(r.dose_mg_per_kg),
            concentration_mg_per_ml: o(r.concentration_mg_per_ml),
            drug_volume_ml: o(r.drug_volume_ml),
            diluent_ml: o(r.diluent_ml),
            final_volume_ml: o(r.final_volume_ml),
            final_concentration_mg_per_ml: o(r.final_concentration_mg_per_ml),
            minutes: o(r.minutes),
            rate_ml_per_h: o(r.rate_ml_per_h),
            rate_mg_per_h: o(r.rate_mg_per_h),
            rate_mg_per_kg_per_h: o(r.rate_mg_per_kg_per_h),
            devices: r.devices,
            refused: r.refused(),
            needs_override: r.needs_override(),
            breaches: r
                .breaches
                .iter()
                .map(|b| BreachDto {
                    level: b.level.code().into(),
                    quantity: b.quantity.clone(),
                    message: b.message.clone(),
                    source: b.source.clone(),
                })
                .collect(),
            warnings: r.warnings.clone(),
            steps: r.steps.clone(),
        }
    }
}

#[utoipa::path(post, path = "/api/dose/calculate", request_body = DoseRequestDto,
    responses((status = 200, body = DoseResultDto, description = "calculated; check refused and needs_override"), (status = 403, body = Problem),
        (status = 422, body = Problem, description = "bad input: each field named with the accepted form (a concentration not on the shelf, a weight out of range, …)")),
    tag = "dosing")]
async fn calculate(State(state): State<AppState>, Auth(p): Auth, req: Request) -> ApiResult<Json<DoseResultDto>> {
    let r: DoseRequestDto = json(req, &state).await?;
    let out = state.app.calculate_dose(&p, &r.input()).await?;
    Ok(Json(DoseResultDto::from(&out)))
}

/// A protocol step.
#[derive(Serialize, ToSchema)]
pub struct StepDto {
    key: String,
    label: String,
    day: u32,
    /// The dose rule in words, e.g. "0.5 mg/kg over 40 min".
    dose: String,
    mg_per_kg: Option<String>,
    fixed_mg: Option<String>,
    minutes: Option<u32>,
    repeat_every_days: Option<u32>,
    repeat_until_day: Option<u32>,
    /// instrument@timepoint.
    assessments: Vec<String>,
    move_on: String,
}

/// A protocol.
#[derive(Serialize, ToSchema)]
pub struct ProtocolDto {
    key: String,
    name: String,
    route: String,
    indication: String,
    source: String,
    steps: Vec<StepDto>,
}

#[utoipa::path(get, path = "/api/protocols", responses((status = 200, body = [ProtocolDto]), (status = 403, body = Problem)), tag = "dosing")]
async fn protocols(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Vec<ProtocolDto>>> {
    state.app.authorize(&p, Permission::ReadPatients, "Protocol").await?;
    Ok(Json(
        state
            .app
            .protocols_in_force()
            .await?
            .iter()
            .map(|pr| ProtocolDto {
                key: pr.key.clone(),
                name: pr.name.clone(),
                route: pr.route.code().into(),
                indication: pr.indication.clone(),
                source: pr.source.clone(),
                steps: pr
                    .steps
                    .iter()
                    .map(|s| StepDto {
                        key: s.key.clone(),
                        label: s.label.clone(),
                        day: s.day,
                        dose: s.dose_rule(),
                        mg_per_kg: s.mg_per_kg.map(dec),
                        fixed_mg: s.fixed_mg.map(dec),
                        minutes: s.minutes,
                        repeat_every_days: s.repeat_every_days,
                        repeat_until_day: s.repeat_until_day,
                        assessments: s.assessments.clone(),
                        move_on: s.move_on.clone(),
                    })
                    .collect(),
            })
            .collect(),
    ))
}

/// One quantity's limits.
#[derive(Serialize, ToSchema)]
pub struct LimitsDto {
    hard_min: Option<String>,
    soft_min: Option<String>,
    soft_max: Option<String>,
    hard_max: Option<String>,
    source: Option<String>,
}

fn limits(l: &Limits) -> LimitsDto {
    let v = |x: &Option<ketacare_domain::dose::Sourced>| x.as_ref().map(|s| dec(s.value));
    LimitsDto {
        hard_min: v(&l.hard.min),
        soft_min: v(&l.soft.min),
        soft_max: v(&l.soft.max),
        hard_max: v(&l.hard.max),
        source: [&l.hard.max, &l.soft.max, &l.hard.min, &l.soft.min].iter().find_map(|x| x.as_ref().map(|s| s.source.clone())),
    }
}

/// Limits of one route.
#[derive(Serialize, ToSchema)]
pub struct RouteLimitsDto {
    route: String,
    mg_per_kg: LimitsDto,
    total_mg: LimitsDto,
    mg_per_kg_per_h: LimitsDto,
    minutes: LimitsDto,
    cumulative_7d_mg: LimitsDto,
    cumulative_28d_mg: LimitsDto,
    device_mg: Option<String>,
}

/// The drug library.
#[derive(Serialize, ToSchema)]
pub struct DrugLibraryDto {
    version: String,
    drug: String,
    rxnorm: String,
    concentrations_mg_per_ml: Vec<String>,
    volume_step_ml: String,
    rate_step_ml_per_h: String,
    default_weight_basis: String,
    routes: Vec<RouteLimitsDto>,
    /// Changes proposed, approved or rejected (two people), newest first.
    proposals: Vec<ProposalDto>,
}

/// A proposed change of the drug library.
#[derive(Serialize, ToSchema)]
pub struct ProposalDto {
    id: String,
    /// concentrations, or <route>.<field>.
    key: String,
    value: Option<String>,
    reason: String,
    proposed_by: String,
    proposed_at: String,
    /// open, approved or rejected.
    state: String,
    decided_by: Option<String>,
    decision_reason: Option<String>,
}

impl From<&ketacare_db::PolicyProposal> for ProposalDto {
    fn from(p: &ketacare_db::PolicyProposal) -> Self {
        ProposalDto {
            id: p.id.to_string(),
            key: p.key.trim_start_matches("drug_library.").to_owned(),
            value: p.value.clone(),
            reason: p.reason.clone(),
            proposed_by: p.proposed_by_name.clone(),
            proposed_at: p.proposed_at.to_rfc3339(),
            state: match &p.decision {
                None => "open".into(),
                Some(d) if d.approved => "approved".into(),
                Some(_) => "rejected".into(),
            },
            decided_by: p.decision.as_ref().map(|d| d.by_name.clone()),
            decision_reason: p.decision.as_ref().and_then(|d| d.reason.clone()),
        }
    }
}

/// A change to propose.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeRequest {
    /// concentrations, or <route>.<field> (e.g. iv.soft_max_mg_per_kg).
    key: String,
    /// The new value (empty: back to the default).
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    value: Option<NumberOrText>,
    reason: String,
}

/// The second person's decision.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    approve: bool,
    /// Required to reject.
    #[serde(default)]
    reason: String,
}

#[utoipa::path(post, path = "/api/drug-library/proposals", request_body = ProposeRequest,
    responses((status = 201, body = ProposalDto), (status = 403, body = Problem, description = "medical director only"), (status = 422, body = Problem)), tag = "dosing")]
async fn propose(State(state): State<AppState>, Auth(p): Auth, req: Request) -> ApiResult<axum::response::Response> {
    let r: ProposeRequest = json(req, &state).await?;
    let prop = state.app.propose_library_change(&p, &r.key, &t(&r.value), &r.reason).await?;
    Ok((axum::http::StatusCode::CREATED, Json(ProposalDto::from(&prop))).into_response())
}

#[utoipa::path(post, path = "/api/drug-library/proposals/{id}/decide", params(("id" = String, Path, description = "Proposal id")), request_body = DecideRequest,
    responses((status = 200, body = ProposalDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem, description = "the decider proposed it, a rejection without a reason, or the change no longer fits")),
    tag = "dosing")]
async fn decide(
    State(state): State<AppState>,
    Auth(p): Auth,
    axum::extract::Path(id): axum::extract::Path<String>,
    req: Request,
) -> ApiResult<Json<ProposalDto>> {
    let r: DecideRequest = json(req, &state).await?;
    let prop = state.app.decide_library_change(&p, &id, r.approve, &r.reason).await?;
    Ok(Json(ProposalDto::from(&prop)))
}

#[utoipa::path(get, path = "/api/drug-library", responses((status = 200, body = DrugLibraryDto), (status = 403, body = Problem)), tag = "dosing")]
async fn drug_library(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<DrugLibraryDto>> {
    state.app.authorize(&p, Permission::ReadPatients, "DrugLibrary").await?;
    let lib = &state.app.drug_library_in_force().await?;
    let proposals = state.app.library_proposals(&p).await?;
    Ok(Json(DrugLibraryDto {
        proposals: proposals.iter().map(ProposalDto::from).collect(),
        version: lib.version.clone(),
        drug: lib.drug.clone(),
        rxnorm: lib.rxnorm.0.clone(),
        concentrations_mg_per_ml: lib.policy.concentrations_mg_per_ml.iter().map(|c| dec(*c)).collect(),
        volume_step_ml: dec(lib.policy.volume_step_ml),
        rate_step_ml_per_h: dec(lib.policy.rate_step_ml_per_h),
        default_weight_basis: lib.default_basis.code().into(),
        routes: lib
            .routes
            .iter()
            .map(|(r, l)| RouteLimitsDto {
                route: r.code().into(),
                mg_per_kg: limits(&l.mg_per_kg),
                total_mg: limits(&l.total_mg),
                mg_per_kg_per_h: limits(&l.mg_per_kg_per_h),
                minutes: limits(&l.minutes),
                cumulative_7d_mg: limits(&l.cumulative_7d_mg),
                cumulative_28d_mg: limits(&l.cumulative_28d_mg),
                device_mg: l.device_mg.map(dec),
            })
            .collect(),
    }))
}

/// Period of the report.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QualityQuery {
    /// First day (YYYY-MM-DD, UTC); default 30 days ago.
    from: Option<String>,
    /// Last day, inclusive; default today.
    to: Option<String>,
}

/// One row of the report.
#[derive(Serialize, ToSchema)]
pub struct QualityRowDto {
    key: String,
    total: u32,
    accepted: u32,
    soft_breach: u32,
    overridden: u32,
    rejected: u32,
    check_mismatch: u32,
    /// Overrides per soft breach, percent.
    override_rate_percent: Option<String>,
}

impl From<&QualityRow> for QualityRowDto {
    fn from(r: &QualityRow) -> Self {
        QualityRowDto {
            key: r.key.clone(),
            total: r.total,
            accepted: r.accepted,
            soft_breach: r.soft,
            overridden: r.overridden,
            rejected: r.rejected,
            check_mismatch: r.mismatches,
            override_rate_percent: r.override_rate_percent().map(dec),
        }
    }
}

/// The quality report.
#[derive(Serialize, ToSchema)]
pub struct QualityDto {
    from: String,
    to: String,
    all: QualityRowDto,
    by_route: Vec<QualityRowDto>,
    by_user: Vec<QualityRowDto>,
}

#[utoipa::path(get, path = "/api/dose/quality", params(QualityQuery),
    responses((status = 200, body = QualityDto), (status = 403, body = Problem), (status = 422, body = Problem)), tag = "dosing")]
async fn quality(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<QualityQuery>, QueryRejection>,
) -> ApiResult<Json<QualityDto>> {
    let Query(q) = q.map_err(|r| crate::api::query_problem_with(r, "use from and to as YYYY-MM-DD"))?;
    let today = state.app.clock().now().date_naive();
    let day = |s: &Option<String>, field: &str, d: NaiveDate| -> ApiResult<NaiveDate> {
        match s.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(d),
            Some(x) => NaiveDate::parse_from_str(x, "%Y-%m-%d").map_err(|_| bad(field, "must be a date such as 2026-11-30")),
        }
    };
    let from = day(&q.from, "from", today - Duration::days(30))?;
    let to = day(&q.to, "to", today)?;
    let start = from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = (to + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let (r, _) = state.app.dose_quality(&p, start, end).await?;
    Ok(Json(QualityDto {
        from: from.to_string(),
        to: to.to_string(),
        all: QualityRowDto::from(&r.all),
        by_route: r.by_route.iter().map(QualityRowDto::from).collect(),
        by_user: r.by_user.iter().map(QualityRowDto::from).collect(),
    }))
}

// ---------------------------------------------------------------- a patient's plans and orders

use crate::api::pid;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ketacare_app::{CheckInput, OrderInput};
use ketacare_domain::order::{DoseOrderRecord, TreatmentPlanRecord};
use ketacare_domain::record::RecordVersion;

pub fn patient_routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/dosing", get(patient_dosing))
        .route("/patients/{id}/plans", post(create_plan))
        .route("/patients/{id}/orders", post(create_order))
        .route("/orders/{id}/approve-override", post(approve_override))
        .route("/orders/{id}/double-check", post(double_check))
        .route("/patients/{id}/titration", get(get_titration).post(decide_titration))
}

/// A planned session.
#[derive(Serialize, ToSchema)]
pub struct PlanSessionDto {
    step: String,
    label: String,
    date: String,
    mg_per_kg: Option<String>,
    fixed_mg: Option<String>,
    minutes: Option<u32>,
}

/// A treatment plan.
#[derive(Serialize, ToSchema)]
pub struct PlanDto {
    record_id: String,
    version: u32,
    protocol: String,
    protocol_name: String,
    route: String,
    start: String,
    planned_by: String,
    note: Option<String>,
    sessions: Vec<PlanSessionDto>,
}

fn plan_dto(v: &RecordVersion, p: &TreatmentPlanRecord) -> PlanDto {
    PlanDto {
        record_id: v.record_id.to_string(),
        version: v.version,
        protocol: p.protocol.clone(),
        protocol_name: p.protocol_name.clone(),
        route: p.route.code().into(),
        start: p.start.to_string(),
        planned_by: v.provenance.username.clone(),
        note: p.note.clone(),
        sessions: p
            .sessions
            .iter()
            .map(|s| PlanSessionDto {
                step: s.step.clone(),
                label: s.label.clone(),
                date: s.date.to_string(),
                mg_per_kg: s.mg_per_kg.map(dec),
                fixed_mg: s.fixed_mg.map(dec),
                minutes: s.minutes,
            })
            .collect(),
    }
}

/// A dose order. Until the double check, the calculated values are given only to the
/// prescriber who ordered it (`hidden_until_check` is true for everyone else).
#[derive(Serialize, ToSchema)]
pub struct OrderDto {
    record_id: String,
    /// The version to send as base_version for the next step.
    version: u32,
    status: String,
    route: String,
    step: Option<String>,
    plan: Option<String>,
    ordered_by: String,
    ordered_at: String,
    weight_kg: String,
    weight_measured_at: String,
    weight_measured_by: String,
    hidden_until_check: bool,
    dose_mg: Option<String>,
    mg_per_kg: Option<String>,
    concentration_mg_per_ml: Option<String>,
    drug_volume_ml: Option<String>,
    rate_ml_per_h: Option<String>,
    breaches: Vec<String>,
    override_reason: Option<String>,
    override_approved_by: Option<String>,
    checked_by: Option<String>,
}

fn order_dto(p: &ketacare_app::Principal, v: &RecordVersion, first: &RecordVersion, o: &DoseOrderRecord) -> OrderDto {
    let visible = crate::dosing::order_visible(p, first, o);
    let show = |d: Option<rust_decimal::Decimal>| if visible { d.map(dec) } else { None };
    OrderDto {
        record_id: v.record_id.to_string(),
        version: v.version,
        status: o.status.code().into(),
        route: o.route.code().into(),
        step: o.step.clone(),
        plan: o.plan.map(|x| x.to_string()),
        ordered_by: first.provenance.username.clone(),
        ordered_at: first.provenance.recorded_at.to_rfc3339(),
        weight_kg: dec(o.weight_kg),
        weight_measured_at: o.weight_measured_at.to_rfc3339(),
        weight_measured_by: o.weight_measured_by.clone(),
        hidden_until_check: !visible,
        dose_mg: show(Some(o.dose_mg)),
        mg_per_kg: show(o.mg_per_kg),
        concentration_mg_per_ml: show(o.concentration_mg_per_ml),
        drug_volume_ml: show(o.drug_volume_ml),
        rate_ml_per_h: show(o.rate_ml_per_h),
        breaches: if visible { o.breaches.clone() } else { Vec::new() },
        override_reason: if visible { o.override_reason.clone() } else { None },
        override_approved_by: o.override_approved_by.clone(),
        checked_by: o.check.as_ref().map(|c| c.by.clone()),
    }
}

/// A patient's dosing.
#[derive(Serialize, ToSchema)]
pub struct PatientDosingDto {
    plans: Vec<PlanDto>,
    orders: Vec<OrderDto>,
    latest_weight_kg: Option<String>,
    latest_weight_at: Option<String>,
    weight_current: bool,
    given_7d_mg: String,
    given_28d_mg: String,
    /// Absolute contraindications that stop any dose.
    blocking: Vec<String>,
}

async fn dosing_dto(state: &AppState, p: &ketacare_app::Principal, id: &str) -> ApiResult<PatientDosingDto> {
    let v = state.app.dosing(p, pid(id)?).await?;
    let mut orders = Vec::new();
    for (ov, o) in &v.orders {
        let h = state.app.record_history(p, ov.record_id).await?;
        let first = h.first().cloned().unwrap_or_else(|| ov.clone());
        orders.push(order_dto(p, ov, &first, o));
    }
    Ok(PatientDosingDto {
        plans: v.plans.iter().map(|(pv, pl)| plan_dto(pv, pl)).collect(),
        orders,
        latest_weight_kg: v.latest_weight.as_ref().map(|w| dec(w.value.kg())),
        latest_weight_at: v.latest_weight.as_ref().map(|w| w.effective.to_rfc3339()),
        weight_current: v.weight_current,
        given_7d_mg: dec(v.given_7d_mg),
        given_28d_mg: dec(v.given_28d_mg),
        blocking: v.blocking,
    })
}

#[utoipa::path(get, path = "/api/patients/{id}/dosing", params(("id" = String, Path)),
    responses((status = 200, body = PatientDosingDto), (status = 403, body = Problem), (status = 404, body = Problem)), tag = "dosing")]
async fn patient_dosing(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<PatientDosingDto>> {
    Ok(Json(dosing_dto(&state, &p, &id).await?))
}

/// A protocol to plan.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// Protocol key (GET /api/protocols).
    protocol: String,
    /// First session, YYYY-MM-DD (today or later).
    start: String,
    /// For protocols with alternatives (maintenance): weekly or twice_weekly.
    #[serde(default)]
    variant: String,
    #[serde(default)]
    note: String,
}

#[utoipa::path(post, path = "/api/patients/{id}/plans", params(("id" = String, Path)), request_body = PlanRequest,
    responses((status = 201, body = PlanDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)), tag = "dosing")]
async fn create_plan(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let r: PlanRequest = json(req, &state).await?;
    let v = state.app.plan_protocol(&p, pid(&id)?, &r.protocol, &r.start, &r.variant, &r.note).await?;
    let ketacare_domain::record::ClinicalRecord::TreatmentPlan(pl) = &v.record else { return Err(bad("protocol", "not a plan")) };
    Ok((StatusCode::CREATED, Json(plan_dto(&v, pl))).into_response())
}

/// A dose to order (weight, height and sex come from the chart).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    route: String,
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    mg_per_kg: Option<NumberOrText>,
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    dose_mg: Option<NumberOrText>,
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    concentration_mg_per_ml: Option<NumberOrText>,
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    final_volume_ml: Option<NumberOrText>,
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    minutes: Option<NumberOrText>,
    #[serde(default)]
    weight_basis: Option<String>,
    /// Plan record id and step key, when ordered from a plan.
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    step: Option<String>,
    /// Reason to pass a soft limit (a second clinician then approves).
    #[serde(default)]
    override_reason: Option<String>,
}

#[utoipa::path(post, path = "/api/patients/{id}/orders", params(("id" = String, Path)), request_body = OrderRequest,
    responses((status = 201, body = OrderDto), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "hard limit (refused), soft limit without a reason (override_reason), weight not measured today (weight_kg), absolute contraindication")),
    tag = "dosing")]
async fn create_order(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let r: OrderRequest = json(req, &state).await?;
    let input = OrderInput {
        dose: DoseInput {
            route: r.route,
            mg_per_kg: t(&r.mg_per_kg),
            dose_mg: t(&r.dose_mg),
            concentration_mg_per_ml: t(&r.concentration_mg_per_ml),
            final_volume_ml: t(&r.final_volume_ml),
            minutes: t(&r.minutes),
            weight_basis: r.weight_basis.unwrap_or_default(),
            ..DoseInput::default()
        },
        plan: r.plan.unwrap_or_default(),
        step: r.step.unwrap_or_default(),
        override_reason: r.override_reason.unwrap_or_default(),
    };
    let v = state.app.order_dose(&p, pid(&id)?, &input).await?;
    let ketacare_domain::record::ClinicalRecord::DoseOrder(o) = &v.record else { return Err(bad("route", "not an order")) };
    Ok((StatusCode::CREATED, Json(order_dto(&p, &v, &v, o))).into_response())
}

/// The version you saw.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    base_version: u32,
}

fn order_id(s: &str) -> ApiResult<ketacare_domain::ids::RecordId> {
    ketacare_domain::ids::RecordId::parse(s).map_err(|_| crate::error::WebError::api(ketacare_app::AppError::NotFound))
}

async fn order_after(state: &AppState, p: &ketacare_app::Principal, v: &RecordVersion) -> ApiResult<OrderDto> {
    let h = state.app.record_history(p, v.record_id).await?;
    let first = h.first().cloned().unwrap_or_else(|| v.clone());
    let ketacare_domain::record::ClinicalRecord::DoseOrder(o) = &v.record else { return Err(bad("order", "not an order")) };
    Ok(order_dto(p, v, &first, o))
}

#[utoipa::path(post, path = "/api/orders/{id}/approve-override", params(("id" = String, Path, description = "Order record id")), request_body = ApproveRequest,
    responses((status = 200, body = OrderDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem, description = "the approver is the prescriber who ordered it")),
    tag = "dosing")]
async fn approve_override(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Json<OrderDto>> {
    let r: ApproveRequest = json(req, &state).await?;
    let v = state.app.approve_override(&p, order_id(&id)?, r.base_version).await?;
    Ok(Json(order_after(&state, &p, &v).await?))
}

/// What the second clinician worked out, blind.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    base_version: u32,
    #[schema(value_type = NumberOrText)]
    weight_kg: Option<NumberOrText>,
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    concentration_mg_per_ml: Option<NumberOrText>,
    #[schema(value_type = NumberOrText)]
    dose_mg: Option<NumberOrText>,
}

#[utoipa::path(post, path = "/api/orders/{id}/double-check", params(("id" = String, Path, description = "Order record id")), request_body = CheckRequest,
    responses((status = 200, body = OrderDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem, description = "mismatch (fields named, values not shown) or the checker is the prescriber")),
    tag = "dosing")]
async fn double_check(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Json<OrderDto>> {
    let r: CheckRequest = json(req, &state).await?;
    let input = CheckInput { weight_kg: t(&r.weight_kg), concentration_mg_per_ml: t(&r.concentration_mg_per_ml), dose_mg: t(&r.dose_mg) };
    let v = state.app.double_check(&p, order_id(&id)?, r.base_version, &input).await?;
    Ok(Json(order_after(&state, &p, &v).await?))
}

/// The titration review of the latest plan.
#[derive(Serialize, ToSchema)]
pub struct TitrationDto {
    plan_record_id: String,
    /// Send as base_version with the decision.
    plan_version: u32,
    /// start, escalate, repeat, reduce, change_interval, pause, stop, maintenance or continue.
    action: String,
    action_label: String,
    next_mg_per_kg: Option<String>,
    interval_days: Option<u32>,
    rule: String,
    data: Vec<String>,
    source: String,
    last_decision: Option<String>,
    /// Each dose given under the plan with what was seen and its predicted exposure.
    sessions: Vec<SessionExposureDto>,
}

/// One dose given under the plan: response and dissociation beside the predicted exposure
/// (from the default pharmacokinetic model at the order's weight; predicted, not measured).
#[derive(Serialize, ToSchema)]
pub struct SessionExposureDto {
    date: String,
    step: Option<String>,
    mg_per_kg: Option<String>,
    /// Percent reduction of the anxiety rating and the instrument.
    response_percent: Option<String>,
    response_instrument: Option<String>,
    cadss: Option<String>,
    route: Option<String>,
    dose_mg: Option<f64>,
    predicted_cmax_ng_per_ml: Option<f64>,
    predicted_tmax_min: Option<f64>,
    predicted_auc_0_inf_ng_h_per_ml: Option<f64>,
    model: Option<String>,
}

#[utoipa::path(get, path = "/api/patients/{id}/titration", params(("id" = String, Path)),
    responses((status = 200, body = TitrationDto), (status = 403, body = Problem), (status = 404, body = Problem, description = "no patient, or no plan")), tag = "dosing")]
async fn get_titration(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<TitrationDto>> {
    let t = state.app.titration(&p, pid(&id)?).await?.ok_or_else(|| crate::error::WebError::api(ketacare_app::AppError::NotFound))?;
    let r = &t.recommendation;
    Ok(Json(TitrationDto {
        plan_record_id: t.plan.0.record_id.to_string(),
        plan_version: t.plan.0.version,
        action: r.action.code().into(),
        action_label: r.action.label().into(),
        next_mg_per_kg: r.next_mg_per_kg.map(dec),
        interval_days: r.interval_days,
        rule: r.rule.clone(),
        data: r.data.clone(),
        source: r.source.clone(),
        last_decision: t.plan.1.note.clone(),
        sessions: t
            .given
            .iter()
            .zip(&t.exposure)
            .map(|(g, e)| SessionExposureDto {
                date: g.date.to_string(),
                step: g.step.clone(),
                mg_per_kg: g.mg_per_kg.map(dec),
                response_percent: g.response.as_ref().map(|r| dec(r.0)),
                response_instrument: g.response.as_ref().map(|r| r.1.clone()),
                cadss: g.cadss.map(dec),
                route: e.as_ref().map(|e| e.route.code().into()),
                dose_mg: e.as_ref().map(|e| e.dose_mg),
                predicted_cmax_ng_per_ml: e.as_ref().map(|e| e.cmax_ng_per_ml),
                predicted_tmax_min: e.as_ref().map(|e| e.tmax_min),
                predicted_auc_0_inf_ng_h_per_ml: e.as_ref().map(|e| e.auc_0_inf_ng_h_per_ml),
                model: e.as_ref().map(|e| e.model.clone()),
            })
            .collect(),
    }))
}

/// A prescriber's decision on the recommendation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// The plan version you saw.
    base_version: u32,
    /// true: accept; false: choose otherwise (a reason is required).
    accept: bool,
    #[serde(default)]
    reason: String,
}

#[utoipa::path(post, path = "/api/patients/{id}/titration", params(("id" = String, Path)), request_body = DecisionRequest,
    responses((status = 200, body = PlanDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)), tag = "dosing")]
async fn decide_titration(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Json<PlanDto>> {
    let r: DecisionRequest = json(req, &state).await?;
    let v = state.app.decide_titration(&p, pid(&id)?, r.base_version, r.accept, &r.reason).await?;
    let ketacare_domain::record::ClinicalRecord::TreatmentPlan(pl) = &v.record else { return Err(bad("plan", "not a plan")) };
    Ok(Json(plan_dto(&v, pl)))
}

/// A protocol to propose.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtocolProposalRequest {
    /// One [[protocol]] table, as in knowledge/protocols.toml.
    content: String,
    reason: String,
}

#[utoipa::path(post, path = "/api/protocols/proposals", request_body = ProtocolProposalRequest,
    responses((status = 201, body = ProposalDto), (status = 403, body = Problem), (status = 422, body = Problem)), tag = "dosing")]
async fn propose_protocol(State(state): State<AppState>, Auth(p): Auth, req: Request) -> ApiResult<axum::response::Response> {
    let r: ProtocolProposalRequest = json(req, &state).await?;
    let prop = state.app.propose_protocol(&p, &r.content, &r.reason).await?;
    Ok((axum::http::StatusCode::CREATED, Json(ProposalDto::from(&prop))).into_response())
}

#[utoipa::path(post, path = "/api/protocols/proposals/{id}/decide", params(("id" = String, Path, description = "Proposal id")), request_body = DecideRequest,
    responses((status = 200, body = ProposalDto), (status = 403, body = Problem, description = "medical director only"), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    tag = "dosing")]
async fn decide_protocol(
    State(state): State<AppState>,
    Auth(p): Auth,
    axum::extract::Path(id): axum::extract::Path<String>,
    req: Request,
) -> ApiResult<Json<ProposalDto>> {
    let r: DecideRequest = json(req, &state).await?;
    let prop = state.app.decide_library_change(&p, &id, r.approve, &r.reason).await?;
    Ok(Json(ProposalDto::from(&prop)))
}
