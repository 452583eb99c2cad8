//! The JSON API of the regimen simulator: predicted ketamine concentrations of any regimen, a
//! side-by-side comparison of regimens, a patient's simulation from the chart, and the models.
//!
//! The regimen format and the result shape are shared with the CLI (`ketacare simulate`):
//! [`parse_regimen`] and [`SimulationDto`].

use crate::api::{json, pid, ApiResult};
use crate::error::{Problem, WebError};
use crate::extract::Auth;
use crate::AppState;
use axum::extract::{Path, Request, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use ketacare_app::AppError;
use ketacare_domain::access::Permission;
use ketacare_domain::pk::engine::Engine;
use ketacare_domain::pk::model::Analyte;
use ketacare_domain::pk::regimen::{DoseEvent, PkRoute, Salt};
use ketacare_domain::pk::{EventInput, Grid, PkKnowledge, Request as PkRequest, Simulation, Subject};
use ketacare_domain::validation::FieldErrors;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pk/models", get(models))
        .route("/pk/simulate", post(simulate))
        .route("/pk/compare", post(compare))
        .route("/patients/{id}/pk/simulate", post(simulate_patient))
}

/// The sentence every result carries.
pub const CONTEXT_NOTE: &str = "Predicted concentrations are decision support for supervised sessions. The concentration bands are context with their sources, not targets: no plasma or effect-site target for anxiolysis is known.";

/// Parses a regimen: `{"events": [...], "salt": "base" | "hydrochloride"}`. Each bad field is
/// named (`events[2].route`) with the accepted form; unknown fields are refused so that a typo is
/// not silently ignored.
pub fn parse_regimen(v: &Value) -> Result<(Vec<EventInput>, Salt), FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(obj) = v.as_object() else {
        return Err(FieldErrors::single("regimen", "must be a JSON object {\"events\": [...]}"));
    };
    for k in obj.keys() {
        if k != "events" && k != "salt" {
            errors.add(&format!("regimen.{k}"), "is not a regimen field; use events and (optionally) salt");
        }
    }
    let salt = match obj.get("salt") {
        None | Some(Value::Null) => Salt::Base,
        Some(Value::String(s)) => Salt::parse(s).unwrap_or_else(|| {
            errors.add("salt", "must be \"base\" (as vials are labelled) or \"hydrochloride\"");
            Salt::Base
        }),
        Some(_) => {
            errors.add("salt", "must be \"base\" or \"hydrochloride\"");
            Salt::Base
        }
    };
    let Some(events) = obj.get("events").and_then(Value::as_array) else {
        errors.add(
            "events",
            "must be a list of dose events, e.g. [{\"kind\": \"infusion\", \"start_min\": 0, \"duration_min\": 40, \"dose_mg\": 35}]",
        );
        return Err(errors);
    };
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let field = |k: &str| format!("events[{i}].{k}");
        let Some(o) = e.as_object() else {
            errors.add(&format!("events[{i}]"), "must be an object with kind infusion or bolus");
            continue;
        };
        let number = |errors: &mut FieldErrors, k: &str, required: bool| -> Option<f64> {
            match o.get(k) {
                None | Some(Value::Null) if !required => None,
                None | Some(Value::Null) => {
                    errors.add(&field(k), "is required");
                    None
                }
                Some(Value::Number(n)) => n.as_f64(),
                Some(_) => {
                    errors.add(&field(k), "must be a JSON number (e.g. 35 or 0.5), not text");
                    None
                }
            }
        };
        let allowed: &[&str] = match o.get("kind").and_then(Value::as_str) {
            Some("infusion") => &["kind", "start_min", "duration_min", "dose_mg"],
            Some("bolus") => &["kind", "route", "at_min", "dose_mg", "f", "ka_per_min"],
            _ => {
                errors.add(&field("kind"), "must be \"infusion\" or \"bolus\"");
                continue;
            }
        };
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) {
                errors.add(&field(k), format!("is not a field of this event; accepted: {}", allowed.join(", ")));
            }
        }
        if allowed.contains(&"duration_min") {
            let start = number(&mut errors, "start_min", false).unwrap_or(0.0);
            let duration = number(&mut errors, "duration_min", true);
            let dose = number(&mut errors, "dose_mg", true);
            if let (Some(duration_min), Some(dose_mg)) = (duration, dose) {
                out.push(EventInput::Infusion { start_min: start, duration_min, dose_mg });
            }
        } else {
            let route = match o.get("route").and_then(Value::as_str).and_then(PkRoute::parse) {
                Some(r) => Some(r),
                None => {
                    errors.add(&field("route"), "must be one of iv, sc, im, in (intranasal), po (oral)");
                    None
                }
            };
            let at = number(&mut errors, "at_min", false).unwrap_or(0.0);
            let dose = number(&mut errors, "dose_mg", true);
            let f = number(&mut errors, "f", false);
            let ka = number(&mut errors, "ka_per_min", false);
            if route == Some(PkRoute::Iv) && (f.is_some() || ka.is_some()) {
                errors.add(&field("f"), "f and ka_per_min apply to sc, im, in and po doses, not to iv");
            }
            if let (Some(route), Some(dose_mg)) = (route, dose) {
                out.push(EventInput::Bolus { route, at_min: at, dose_mg, f, ka_per_min: ka });
            }
        }
    }
    errors.into_result().map(|_| (out, salt))
}

/// A dose event (the shape of `regimen.events[]`).
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = PkDoseEventDto)]
#[allow(dead_code)]
pub struct EventDto {
    /// infusion or bolus.
    kind: String,
    /// Bolus: iv, sc, im, in (intranasal) or po (oral).
    route: Option<String>,
    /// Infusion start, min (default 0).
    start_min: Option<f64>,
    /// Infusion time, min.
    duration_min: Option<f64>,
    /// Bolus time, min (default 0).
    at_min: Option<f64>,
    /// Dose, mg of ketamine base (or hydrochloride with `salt`).
    dose_mg: f64,
    /// Bioavailability override (0-1), extravascular only.
    f: Option<f64>,
    /// Absorption rate override, per min, extravascular only.
    ka_per_min: Option<f64>,
}

/// A regimen.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct RegimenDto {
    events: Vec<EventDto>,
    /// base (default; vials are labelled as base) or hydrochloride (converted x 0.867).
    salt: Option<String>,
}

/// What to simulate. Times in minutes, concentrations in ng/mL.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// Body weight, kg (for a patient: the latest weight in the chart when omitted).
    weight_kg: Option<f64>,
    /// Age, years (for a patient: from the chart).
    age_years: Option<f64>,
    /// Current medications by name (for a patient: from the chart), checked for interactions.
    medications: Option<Vec<String>>,
    /// Model id (GET /api/pk/models); default domino.
    model: Option<String>,
    /// racemic (default) or esketamine.
    drug: Option<String>,
    /// The doses.
    #[schema(value_type = RegimenDto)]
    regimen: Value,
    /// Window start, min (default 0).
    from: Option<f64>,
    /// Window end, min (default 360).
    to: Option<f64>,
    /// Grid step, min (default 1).
    step: Option<f64>,
    /// Extra times for concentrations, min.
    c_at: Option<Vec<f64>>,
    /// Thresholds for minutes above, ng/mL (default: the lower bounds of the context bands).
    thresholds_ng_per_ml: Option<Vec<f64>>,
    /// Effect-site rate override, per min (the default is illustrative).
    ke0_per_min: Option<f64>,
    /// recursive (default) or closed-form.
    engine: Option<String>,
    /// Monte Carlo uncertainty band (default true).
    band: Option<bool>,
}

impl SimulateRequest {
    fn into_request(self, from_chart: Option<Subject>) -> Result<PkRequest, FieldErrors> {
        let mut errors = FieldErrors::new();
        let (events, salt) = match parse_regimen(&self.regimen) {
            Ok(x) => x,
            Err(e) => {
                errors.extend_prefixed("", e);
                (Vec::new(), Salt::Base)
            }
        };
        let chart = from_chart.unwrap_or_default();
        let weight = self.weight_kg.or((chart.weight_kg.is_finite()).then_some(chart.weight_kg));
        if weight.is_none() {
            errors.add("weight_kg", "is required: the body weight in kg (no weight is recorded for this patient)");
        }
        let drug = match self.drug.as_deref() {
            None => Analyte::Racemic,
            Some(d) => Analyte::parse(d).unwrap_or_else(|| {
                errors.add("drug", "must be racemic or esketamine");
                Analyte::Racemic
            }),
        };
        let engine = match self.engine.as_deref() {
            None => Engine::Recursive,
            Some(e) => Engine::parse(e).unwrap_or_else(|| {
                errors.add("engine", "must be recursive or closed-form");
                Engine::Recursive
            }),
        };
        errors.into_result()?;
        let mut r = PkRequest::new(weight.unwrap_or(f64::NAN), events);
        r.model = self.model;
        r.subject.age_years = self.age_years.or(chart.age_years);
        r.subject.medications = self.medications.unwrap_or(chart.medications);
        r.drug = drug;
        r.salt = salt;
        let d = Grid::default();
        r.grid = Grid {
            from_min: self.from.unwrap_or(d.from_min),
            to_min: self.to.unwrap_or(d.to_min),
            step_min: self.step.unwrap_or(d.step_min),
        };
        r.c_at_min = self.c_at.unwrap_or_default();
        r.thresholds_ng_per_ml = self.thresholds_ng_per_ml.unwrap_or_default();
        r.ke0_per_min = self.ke0_per_min;
        r.engine = engine;
        r.band = self.band.unwrap_or(true);
        Ok(r)
    }
}

/// Micro constants used for this patient, and what follows from them.
#[derive(Serialize, ToSchema)]
pub struct ParametersDto {
    v1_l: f64,
    k10_per_min: f64,
    k12_per_min: f64,
    k21_per_min: f64,
    k13_per_min: f64,
    k31_per_min: f64,
    v2_l: f64,
    v3_l: f64,
    clearance_l_per_min: f64,
    hybrid_rates_per_min: Vec<f64>,
    terminal_half_life_min: f64,
}

/// The model behind a result.
#[derive(Serialize, ToSchema)]
pub struct ModelDto {
    id: String,
    name: String,
    /// racemic or s-ketamine.
    analyte: String,
    sampling: String,
    population: String,
    weight_range_kg: [f64; 2],
    age_range_years: [f64; 2],
    /// verified, code, secondary or assumed.
    evidence: String,
    evidence_label: String,
    citation: String,
    notes: String,
}

/// A dose as simulated.
#[derive(Serialize, ToSchema)]
pub struct DoseDto {
    /// infusion, bolus (IV) or depot (SC, IM, IN, PO).
    kind: String,
    route: String,
    at_min: f64,
    duration_min: Option<f64>,
    /// As entered.
    entered_mg: f64,
    /// As simulated: base, and the S half for an S-ketamine model.
    simulated_mg: f64,
    f: Option<f64>,
    ka_per_min: Option<f64>,
    /// Evidence of the route defaults used (None: IV or overridden).
    route_evidence: Option<String>,
}

/// A concentration at a time.
#[derive(Serialize, ToSchema)]
pub struct PointDto {
    time_min: f64,
    cp_ng_per_ml: f64,
    ce_ng_per_ml: f64,
}

/// Minutes above a threshold.
#[derive(Serialize, ToSchema)]
pub struct AboveDto {
    threshold_ng_per_ml: f64,
    minutes: f64,
}

/// Exposure metrics.
#[derive(Serialize, ToSchema)]
pub struct SummaryDto {
    /// Highest plasma concentration in the window (continuous, not only on the grid).
    pub cmax_ng_per_ml: f64,
    /// When, min.
    pub tmax_min: f64,
    pub ce_max_ng_per_ml: f64,
    pub ce_tmax_min: f64,
    /// AUC from 0 to the end of the window.
    pub auc_0_t_ng_h_per_ml: f64,
    /// AUC from 0 to infinity (F x dose / CL).
    pub auc_0_inf_ng_h_per_ml: f64,
    c_at: Vec<PointDto>,
    minutes_above: Vec<AboveDto>,
}

/// The curve.
#[derive(Serialize, ToSchema)]
#[schema(as = PkSeriesDto)]
pub struct SeriesDto {
    pub time_min: Vec<f64>,
    pub cp_ng_per_ml: Vec<f64>,
    /// Effect site (illustrative ke0).
    pub ce_ng_per_ml: Vec<f64>,
}

/// The Monte Carlo band (5th, 50th, 95th percentiles of plasma concentration).
#[derive(Serialize, ToSchema)]
#[schema(as = PkBandDto)]
pub struct BandDto {
    varied: Vec<String>,
    subjects: usize,
    seed: u64,
    pub p05_ng_per_ml: Vec<f64>,
    pub p50_ng_per_ml: Vec<f64>,
    pub p95_ng_per_ml: Vec<f64>,
    pub cmax_p05_ng_per_ml: f64,
    pub cmax_p95_ng_per_ml: f64,
}

/// A warning to show with the result.
#[derive(Serialize, ToSchema)]
pub struct PkWarningDto {
    pub code: String,
    pub message: String,
}

/// A concentration band shown as context.
#[derive(Serialize, ToSchema)]
pub struct ContextBandDto {
    pub low_ng_per_ml: f64,
    pub high_ng_per_ml: Option<f64>,
    pub label: String,
    pub source: String,
}

/// A simulation with its provenance.
#[derive(Serialize, ToSchema)]
pub struct SimulationDto {
    model: ModelDto,
    parameters: ParametersDto,
    ke0_per_min: f64,
    /// recursive or closed-form.
    engine: String,
    knowledge_version: String,
    software_version: String,
    doses: Vec<DoseDto>,
    pub summary: SummaryDto,
    pub series: SeriesDto,
    pub band: Option<BandDto>,
    band_absent_reason: Option<String>,
    pub warnings: Vec<PkWarningDto>,
    context_bands: Vec<ContextBandDto>,
    note: String,
}

fn model_dto(m: &ketacare_domain::pk::model::ModelSpec) -> ModelDto {
    ModelDto {
        id: m.id.clone(),
        name: m.name.clone(),
        analyte: m.analyte.code().into(),
        sampling: m.sampling.clone(),
        population: m.population.clone(),
        weight_range_kg: [m.weight_range_kg.0, m.weight_range_kg.1],
        age_range_years: [m.age_range_years.0, m.age_range_years.1],
        evidence: m.evidence.code().into(),
        evidence_label: m.evidence.label().into(),
        citation: m.citation.clone(),
        notes: m.notes.clone(),
    }
}

impl From<&Simulation> for SimulationDto {
    fn from(s: &Simulation) -> Self {
        let m = &s.model;
        let (v2, v3) = s.micro.peripheral_volumes_l();
        let d = &s.disposition;
        SimulationDto {
            model: model_dto(m),
            parameters: ParametersDto {
                v1_l: s.micro.v1_l,
                k10_per_min: s.micro.k10,
                k12_per_min: s.micro.k12,
                k21_per_min: s.micro.k21,
                k13_per_min: s.micro.k13,
                k31_per_min: s.micro.k31,
                v2_l: v2,
                v3_l: v3,
                clearance_l_per_min: s.micro.clearance_l_per_min(),
                hybrid_rates_per_min: d.lambdas[..d.n].to_vec(),
                terminal_half_life_min: d.terminal_half_life_min(),
            },
            ke0_per_min: s.ke0_per_min,
            engine: s.engine.code().into(),
            knowledge_version: s.knowledge_version.clone(),
            software_version: env!("CARGO_PKG_VERSION").into(),
            doses: s
                .doses
                .iter()
                .map(|x| {
                    let (kind, duration, f, ka) = match x.event {
                        DoseEvent::Infusion { duration_min, .. } => ("infusion", Some(duration_min), None, None),
                        DoseEvent::IvBolus { .. } => ("bolus", None, None, None),
                        DoseEvent::Depot { f, ka_per_min, .. } => ("depot", None, Some(f), Some(ka_per_min)),
                    };
                    DoseDto {
                        kind: kind.into(),
                        route: x.event.route().code().into(),
                        at_min: x.event.start_min(),
                        duration_min: duration,
                        entered_mg: x.entered_mg,
                        simulated_mg: x.event.dose_mg(),
                        f,
                        ka_per_min: ka,
                        route_evidence: x.route_evidence.map(|e| e.code().into()),
                    }
                })
                .collect(),
            summary: SummaryDto {
                cmax_ng_per_ml: s.summary.cmax_ng_per_ml,
                tmax_min: s.summary.tmax_min,
                ce_max_ng_per_ml: s.summary.ce_max_ng_per_ml,
                ce_tmax_min: s.summary.ce_tmax_min,
                auc_0_t_ng_h_per_ml: s.summary.auc_0_t_ng_h_per_ml,
                auc_0_inf_ng_h_per_ml: s.summary.auc_0_inf_ng_h_per_ml,
                c_at: s.summary.c_at.iter().map(|(t, cp, ce)| PointDto { time_min: *t, cp_ng_per_ml: *cp, ce_ng_per_ml: *ce }).collect(),
                minutes_above: s.summary.minutes_above.iter().map(|(c, m)| AboveDto { threshold_ng_per_ml: *c, minutes: *m }).collect(),
            },
            series: SeriesDto { time_min: s.times_min.clone(), cp_ng_per_ml: s.cp_ng_per_ml.clone(), ce_ng_per_ml: s.ce_ng_per_ml.clone() },
            band: s.band.as_ref().map(|b| BandDto {
                varied: b.varied.clone(),
                subjects: b.subjects,
                seed: b.seed,
                p05_ng_per_ml: b.p05.clone(),
                p50_ng_per_ml: b.p50.clone(),
                p95_ng_per_ml: b.p95.clone(),
                cmax_p05_ng_per_ml: b.cmax_p05_p95.0,
                cmax_p95_ng_per_ml: b.cmax_p05_p95.1,
            }),
            band_absent_reason: s.band_absent_reason.clone(),
            warnings: s.warnings.iter().map(|w| PkWarningDto { code: w.code.into(), message: w.message.clone() }).collect(),
            context_bands: s
                .context_bands
                .iter()
                .map(|b| ContextBandDto {
                    low_ng_per_ml: b.low_ng_per_ml,
                    high_ng_per_ml: b.high_ng_per_ml,
                    label: b.label.clone(),
                    source: b.source.clone(),
                })
                .collect(),
            note: CONTEXT_NOTE.into(),
        }
    }
}

/// Runs a simulation off the async workers (a year of doses on a fine grid takes a fraction of
/// a second of CPU).
async fn run(state: &AppState, r: PkRequest) -> ApiResult<Simulation> {
    let app = state.app.clone();
    match tokio::task::spawn_blocking(move || app.simulate(&r)).await {
        Ok(result) => result.map_err(WebError::api),
        Err(_) => Err(WebError::api(AppError::Internal("the simulation did not finish".into()))),
    }
}

async fn may_simulate(state: &AppState, p: &ketacare_app::Principal) -> ApiResult<()> {
    if p.can(Permission::ReadDeidentified) {
        return Ok(());
    }
    state.app.authorize(p, Permission::ReadPatients, "Simulation").await.map_err(WebError::api)
}

#[utoipa::path(post, path = "/api/pk/simulate", request_body = SimulateRequest,
    responses((status = 200, body = SimulationDto, description = "the curve, the exposure metrics, the model with its parameters and evidence, the warnings and the uncertainty band"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem, description = "bad input: each field named with the accepted form (events[2].route, weight_kg, step, ...)")),
    tag = "pharmacokinetics")]
async fn simulate(State(state): State<AppState>, Auth(p): Auth, req: Request) -> ApiResult<Json<SimulationDto>> {
    may_simulate(&state, &p).await?;
    let r: SimulateRequest = json(req, &state).await?;
    let r = r.into_request(None).map_err(|e| WebError::api(AppError::Validation(e)))?;
    let s = run(&state, r).await?;
    Ok(Json(SimulationDto::from(&s)))
}

#[utoipa::path(post, path = "/api/patients/{id}/pk/simulate", params(("id" = String, Path)), request_body = SimulateRequest,
    responses((status = 200, body = SimulationDto, description = "weight, age and medications from the chart unless given"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    tag = "pharmacokinetics")]
async fn simulate_patient(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Json<SimulationDto>> {
    let patient = pid(&id)?;
    let r: SimulateRequest = json(req, &state).await?;
    let subject = state.app.pk_subject(&p, patient).await.map_err(WebError::api)?;
    let r = r.into_request(Some(subject)).map_err(|e| WebError::api(AppError::Validation(e)))?;
    let s = run(&state, r).await?;
    Ok(Json(SimulationDto::from(&s)))
}

/// One regimen of a comparison.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareItem {
    /// Label shown in the legend.
    label: String,
    #[schema(value_type = RegimenDto)]
    regimen: Value,
    /// Model id for this regimen (default: the request's model).
    model: Option<String>,
}

/// Regimens to compare on one time grid.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    weight_kg: f64,
    age_years: Option<f64>,
    model: Option<String>,
    drug: Option<String>,
    from: Option<f64>,
    to: Option<f64>,
    step: Option<f64>,
    /// Two to eight regimens.
    regimens: Vec<CompareItem>,
}

/// One curve of a comparison.
#[derive(Serialize, ToSchema)]
pub struct CompareCurve {
    label: String,
    simulation: SimulationDto,
}

/// Regimens side by side; Cmax and AUC differences are against the first regimen.
#[derive(Serialize, ToSchema)]
pub struct CompareDto {
    curves: Vec<CompareCurve>,
    /// Cmax of each regimen divided by the first one's.
    cmax_ratio_to_first: Vec<f64>,
    /// AUC 0-inf of each regimen divided by the first one's.
    auc_ratio_to_first: Vec<f64>,
}

#[utoipa::path(post, path = "/api/pk/compare", request_body = CompareRequest,
    responses((status = 200, body = CompareDto), (status = 403, body = Problem), (status = 422, body = Problem, description = "regimens[1].regimen.events[0].dose_mg and the like")),
    tag = "pharmacokinetics")]
async fn compare(State(state): State<AppState>, Auth(p): Auth, req: Request) -> ApiResult<Json<CompareDto>> {
    may_simulate(&state, &p).await?;
    let r: CompareRequest = json(req, &state).await?;
    let mut errors = FieldErrors::new();
    if !(1..=8).contains(&r.regimens.len()) {
        errors.add("regimens", "give one to eight regimens");
    }
    let mut curves = Vec::new();
    for (i, item) in r.regimens.into_iter().enumerate() {
        let sr = SimulateRequest {
            weight_kg: Some(r.weight_kg),
            age_years: r.age_years,
            medications: None,
            model: item.model.or_else(|| r.model.clone()),
            drug: r.drug.clone(),
            regimen: item.regimen,
            from: r.from,
            to: r.to,
            step: r.step,
            c_at: None,
            thresholds_ng_per_ml: None,
            ke0_per_min: None,
            engine: None,
            band: Some(true),
        };
        let outcome = match sr.into_request(None) {
            Ok(q) => match run(&state, q).await {
                Ok(s) => Ok(s),
                Err(e) => match e.inner {
                    AppError::Validation(f) => Err(f),
                    other => return Err(WebError::api(other)),
                },
            },
            Err(f) => Err(f),
        };
        match outcome {
            Ok(s) => curves.push(CompareCurve { label: item.label, simulation: SimulationDto::from(&s) }),
            Err(e) => errors.extend_prefixed(&format!("regimens[{i}]."), e),
        }
    }
    errors.into_result().map_err(|e| WebError::api(AppError::Validation(e)))?;
    let first = &curves[0].simulation.summary;
    let (c0, a0) = (first.cmax_ng_per_ml, first.auc_0_inf_ng_h_per_ml);
    Ok(Json(CompareDto {
        cmax_ratio_to_first: curves.iter().map(|c| c.simulation.summary.cmax_ng_per_ml / c0).collect(),
        auc_ratio_to_first: curves.iter().map(|c| c.simulation.summary.auc_0_inf_ng_h_per_ml / a0).collect(),
        curves,
    }))
}

/// A route's absorption defaults.
#[derive(Serialize, ToSchema)]
pub struct RouteDto {
    route: String,
    f: f64,
    f_range: [f64; 2],
    ka_per_min: f64,
    ka_range_per_min: [f64; 2],
    absorption_half_life_min: f64,
    evidence: String,
    source: String,
    caveat: Option<String>,
}

/// The models and routes of the simulator.
#[derive(Serialize, ToSchema)]
pub struct ModelsDto {
    knowledge_version: String,
    default_model: String,
    models: Vec<ModelDto>,
    routes: Vec<RouteDto>,
    ke0_per_min: f64,
    ke0_evidence: String,
    ke0_source: String,
    context_bands: Vec<ContextBandDto>,
    note: String,
}

/// The models and routes as a document (also used by the CLI's `--list-models`).
pub fn models_dto(k: &PkKnowledge) -> ModelsDto {
    ModelsDto {
        knowledge_version: k.version.clone(),
        default_model: k.default_model().id.clone(),
        models: k.models.iter().map(model_dto).collect(),
        routes: k
            .routes
            .iter()
            .map(|r| RouteDto {
                route: r.route.code().into(),
                f: r.f.value,
                f_range: [r.f.low, r.f.high],
                ka_per_min: r.ka_per_min.value,
                ka_range_per_min: [r.ka_per_min.low, r.ka_per_min.high],
                absorption_half_life_min: std::f64::consts::LN_2 / r.ka_per_min.value,
                evidence: r.evidence.code().into(),
                source: r.source.clone(),
                caveat: r.caveat.clone(),
            })
            .collect(),
        ke0_per_min: k.ke0_per_min.value,
        ke0_evidence: k.ke0_evidence.code().into(),
        ke0_source: k.ke0_source.clone(),
        context_bands: k
            .bands
            .iter()
            .map(|b| ContextBandDto {
                low_ng_per_ml: b.low_ng_per_ml,
                high_ng_per_ml: b.high_ng_per_ml,
                label: b.label.clone(),
                source: b.source.clone(),
            })
            .collect(),
        note: CONTEXT_NOTE.into(),
    }
}

#[utoipa::path(get, path = "/api/pk/models", responses((status = 200, body = ModelsDto), (status = 401, body = Problem), (status = 403, body = Problem)), tag = "pharmacokinetics")]
async fn models(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<ModelsDto>> {
    may_simulate(&state, &p).await?;
    Ok(Json(models_dto(&state.app.knowledge().pk)))
}
