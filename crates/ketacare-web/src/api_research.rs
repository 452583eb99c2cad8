//! The research API: cohort outcomes as JSON and CSV (de-identified; researchers and the
//! medical director).

use crate::error::WebError;
use crate::extract::Auth;
use crate::research::{parse_filter, to_csv, FilterQuery};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ketacare_app::research::CohortOutcomes;
use ketacare_app::AppError;
use ketacare_domain::cohort::{GroupRate, LevelMean};
use ketacare_domain::stats::{KaplanMeier, MeanCi, Proportion};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(outcomes, outcomes_csv))]
pub struct ResearchDoc;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/research/outcomes", get(outcomes)).route("/research/outcomes.csv", get(outcomes_csv))
}

/// A proportion with its 95 % Wilson interval (fractions).
#[derive(Serialize, ToSchema)]
pub struct ProportionDto {
    k: u64,
    n: u64,
    p: f64,
    lo: f64,
    hi: f64,
}

fn prop(p: &Option<Proportion>) -> Option<ProportionDto> {
    p.map(|p| ProportionDto { k: p.k, n: p.n, p: p.p, lo: p.lo, hi: p.hi })
}

/// Response and remission of a group.
#[derive(Serialize, ToSchema)]
pub struct GroupRateDto {
    group: String,
    n: u64,
    response: Option<ProportionDto>,
    remission: Option<ProportionDto>,
    /// Fewer patients than the small-numbers threshold.
    small: bool,
}

fn groups(rows: &[GroupRate]) -> Vec<GroupRateDto> {
    rows.iter()
        .map(|g| GroupRateDto {
            group: g.group.clone(),
            n: g.n,
            response: prop(&g.response),
            remission: prop(&g.remission),
            small: g.small,
        })
        .collect()
}

/// A mean with its 95 % interval.
#[derive(Serialize, ToSchema)]
pub struct MeanDto {
    level: String,
    n: u64,
    mean: f64,
    sd: f64,
    lo: f64,
    hi: f64,
}

fn mean(level: &str, m: &MeanCi) -> MeanDto {
    MeanDto { level: level.to_owned(), n: m.n, mean: m.mean, sd: m.sd, lo: m.lo, hi: m.hi }
}

fn means(rows: &[LevelMean]) -> Vec<MeanDto> {
    rows.iter().map(|m| mean(&m.level, &m.mean)).collect()
}

/// One step of a Kaplan-Meier curve.
#[derive(Serialize, ToSchema)]
pub struct KmStepDto {
    days: f64,
    at_risk: u64,
    events: u64,
    censored: u64,
    survival: f64,
    lo: f64,
    hi: f64,
}

/// A Kaplan-Meier estimate.
#[derive(Serialize, ToSchema)]
pub struct KmDto {
    n: u64,
    events: u64,
    median_days: Option<f64>,
    steps: Vec<KmStepDto>,
}

fn km(k: &KaplanMeier) -> KmDto {
    KmDto {
        n: k.n,
        events: k.events,
        median_days: k.median,
        steps: k
            .steps
            .iter()
            .map(|s| KmStepDto {
                days: s.time,
                at_risk: s.at_risk,
                events: s.events,
                censored: s.censored,
                survival: s.survival,
                lo: s.lo,
                hi: s.hi,
            })
            .collect(),
    }
}

/// The clinic beside one published study.
#[derive(Serialize, ToSchema)]
pub struct EvidenceDto {
    study: String,
    short: String,
    definition: String,
    published: Option<ProportionDto>,
    clinic: Option<ProportionDto>,
    clinic_n: u64,
    small: bool,
    note: Option<String>,
}

/// One stratum of a covariate.
#[derive(Serialize, ToSchema)]
pub struct StratumDto {
    covariate: String,
    level: String,
    rate: GroupRateDto,
}

/// An odds ratio with its 95 % Wald interval.
#[derive(Serialize, ToSchema)]
pub struct OddsRatioDto {
    covariate: String,
    /// The odds ratio; `null` when it is not finite (separation: one group all responders or
    /// none).
    or: Option<f64>,
    /// Lower bound; `null` when not finite.
    lo: Option<f64>,
    /// Upper bound; `null` when not finite (an interval open above).
    hi: Option<f64>,
}

/// The logistic regression of response on the covariates.
#[derive(Serialize, ToSchema)]
pub struct RegressionDto {
    n: u64,
    events: u64,
    converged: bool,
    separation: bool,
    small: bool,
    terms: Vec<OddsRatioDto>,
}

/// A Poisson rate with its interval.
#[derive(Serialize, ToSchema)]
pub struct RateDto {
    events: u64,
    sessions: u64,
    per_100_sessions: f64,
    lo: f64,
    hi: f64,
}

/// Before and after on a functioning scale.
#[derive(Serialize, ToSchema)]
pub struct BeforeAfterDto {
    scale: String,
    before: MeanDto,
    after: MeanDto,
    change: MeanDto,
}

/// The cohort analysis (de-identified: counts and estimates only).
#[derive(Serialize, ToSchema)]
pub struct CohortDto {
    patients: u64,
    treated: u64,
    evaluable: u64,
    /// Warnings every reader must see.
    warnings: Vec<String>,
    overall: GroupRateDto,
    by_diagnosis: Vec<GroupRateDto>,
    by_protocol: Vec<GroupRateDto>,
    by_route: Vec<GroupRateDto>,
    by_dose_mg_per_kg: Vec<GroupRateDto>,
    by_scale: Vec<GroupRateDto>,
    time_to_response: KmDto,
    durability: KmDto,
    dissociation_by_session: Vec<MeanDto>,
    systolic_rise_by_dose: Vec<MeanDto>,
    diastolic_rise_by_dose: Vec<MeanDto>,
    hypertensive_sessions: Option<ProportionDto>,
    adverse_events: Option<RateDto>,
    functioning: Vec<BeforeAfterDto>,
    strata: Vec<StratumDto>,
    /// Each covariate alone.
    univariable: Vec<RegressionDto>,
    /// The covariates most patients have, together.
    regression: Option<RegressionDto>,
    evidence: Vec<EvidenceDto>,
    studies_version: String,
}

fn regression(g: &ketacare_domain::cohort::Regression) -> RegressionDto {
    RegressionDto {
        n: g.n,
        events: g.events,
        converged: g.converged,
        separation: g.separation,
        small: g.small,
        terms: g
            .terms
            .iter()
            .map(|t| OddsRatioDto {
                covariate: t.covariate.clone(),
                or: Some(t.or).filter(|v| v.is_finite()),
                lo: Some(t.lo).filter(|v| v.is_finite()),
                hi: Some(t.hi).filter(|v| v.is_finite()),
            })
            .collect(),
    }
}

fn dto(o: &CohortOutcomes) -> CohortDto {
    let r = &o.report;
    CohortDto {
        patients: r.patients,
        treated: r.treated,
        evaluable: r.evaluable,
        warnings: vec![
            format!("Exploratory statistics: groups of fewer than {} patients are flagged small.", o.rules.small_numbers_below),
            "Many comparisons without correction: some differences will appear by chance.".into(),
        ],
        overall: groups(std::slice::from_ref(&r.overall)).remove(0),
        by_diagnosis: groups(&r.by_diagnosis),
        by_protocol: groups(&r.by_protocol),
        by_route: groups(&r.by_route),
        by_dose_mg_per_kg: groups(&r.by_dose),
        by_scale: groups(&r.by_scale),
        time_to_response: km(&r.time_to_response),
        durability: km(&r.durability),
        dissociation_by_session: means(&r.dissociation),
        systolic_rise_by_dose: means(&r.blood_pressure.systolic_rise),
        diastolic_rise_by_dose: means(&r.blood_pressure.diastolic_rise),
        hypertensive_sessions: prop(&r.blood_pressure.hypertensive),
        adverse_events: r.adverse_events.map(|a| RateDto {
            events: a.events,
            sessions: a.exposure,
            per_100_sessions: a.rate,
            lo: a.lo,
            hi: a.hi,
        }),
        functioning: r
            .functioning
            .iter()
            .map(|b| BeforeAfterDto {
                scale: b.scale.clone(),
                before: mean("before", &b.before),
                after: mean("after", &b.after),
                change: mean("change", &b.change),
            })
            .collect(),
        strata: r
            .strata
            .iter()
            .map(|s| StratumDto {
                covariate: s.covariate.clone(),
                level: s.level.clone(),
                rate: groups(std::slice::from_ref(&s.rate)).remove(0),
            })
            .collect(),
        univariable: r.univariable.iter().map(regression).collect(),
        regression: r.regression.as_ref().map(regression),
        evidence: r
            .evidence
            .iter()
            .map(|e| EvidenceDto {
                study: e.study.clone(),
                short: e.short.clone(),
                definition: e.definition.clone(),
                published: prop(&e.published),
                clinic: prop(&e.clinic),
                clinic_n: e.clinic_n,
                small: e.small,
                note: e.note.clone(),
            })
            .collect(),
        studies_version: o.studies_version.clone(),
    }
}

fn api(e: AppError) -> WebError {
    WebError::api(e)
}

#[utoipa::path(get, path = "/api/research/outcomes", params(FilterQuery),
    responses((status = 200, body = CohortDto, description = "Cohort outcomes of the patients matching the filter (de-identified)"),
        (status = 403, body = crate::error::Problem), (status = 422, body = crate::error::Problem, description = "A filter field is malformed; the problem names it")),
    tag = "research")]
async fn outcomes(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<FilterQuery>) -> Result<Json<CohortDto>, WebError> {
    let filter = parse_filter(&q).map_err(|e| api(AppError::Validation(e)))?;
    let o = state.app.cohort_outcomes(&p, &filter).await.map_err(api)?;
    Ok(Json(dto(&o)))
}

#[utoipa::path(get, path = "/api/research/outcomes.csv", params(FilterQuery),
    responses((status = 200, content_type = "text/csv", description = "Every table of the analysis as one long CSV: section, group, measure, n, k, estimate, lo, hi, note"),
        (status = 403, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    tag = "research")]
async fn outcomes_csv(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<FilterQuery>) -> Result<Response, WebError> {
    let filter = parse_filter(&q).map_err(|e| api(AppError::Validation(e)))?;
    let o = state.app.cohort_outcomes(&p, &filter).await.map_err(api)?;
    let text = to_csv(&o).map_err(|e| api(AppError::Internal(format!("writing the CSV: {e}"))))?;
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"cohort-outcomes.csv\"")],
        text,
    )
        .into_response())
}
