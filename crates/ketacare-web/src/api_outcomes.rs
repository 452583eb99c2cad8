//! The JSON API of measurement-based care under `/api`: the instrument catalogue and its
//! calculators (score a form, compare two totals), patients' assessments with their outcome
//! series, questionnaire links, schedules and safety alerts. Registered in [`crate::api`] and
//! documented in the same OpenAPI document.
//!
//! Conventions are those of [`crate::api`]: every route needs a session cookie or bearer token
//! (401 otherwise), errors are `Problem` bodies, malformed JSON or query strings are 422 naming
//! the field, and unknown or malformed ids are 404. Decimals (totals, percentages, RCI,
//! thresholds) are exact decimal text such as `"14"` or `"-35.48"`, like weights and BMI;
//! requests accept numbers or text. A questionnaire link token is returned once, when the
//! request is created, and never again.

use crate::error::{Problem, WebError};
use crate::extract::Auth;
use crate::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ketacare_app::{AppError, OutcomeView, ScoredAssessment, Series, SessionMarker};
use ketacare_domain::access::Permission;
use ketacare_domain::assessment::{Anchor, AssessmentInput, DueItem, QuestionnaireRequest, SafetyAlert, Schedule, ScheduleInput};
use ketacare_domain::ids::{AlertId, PatientId, RequestId, ScheduleId};
use ketacare_domain::instrument::{
    AnswerKind, Band, BandSet, Condition, Direction, FlagRule, Instrument, ItemDef, Outcome, OutcomeRules, Reliability, Score, TriageRule,
};
use ketacare_domain::validation::FieldErrors;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::api::{bad, json, pid, ApiResult, NumberOrText};

/// A malformed query string as a validation problem naming the parameter.
fn query_problem(rej: QueryRejection) -> WebError {
    crate::api::query_problem_with(rej, "use true or false")
}

fn not_found() -> WebError {
    WebError::api(AppError::NotFound)
}

/// The instrument named in the path, or 404.
fn instrument<'a>(state: &'a AppState, key: &str) -> ApiResult<&'a Instrument> {
    state.app.knowledge().instrument(key).ok_or_else(not_found)
}

/// Exact decimal as text without trailing zeros.
fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/instruments", get(list_instruments))
        .route("/instruments/{key}", get(get_instrument))
        .route("/instruments/{key}/score", post(score))
        .route("/instruments/{key}/outcome", post(outcome))
        .route("/instruments/{key}/wording", get(get_wording).post(load_wording))
        .route("/instruments/{key}/wording/withdraw", post(withdraw_wording))
        .route("/patients/{id}/assessments", get(patient_assessments).post(record_assessment))
        .route("/patients/{id}/questionnaire-requests", post(send_questionnaire))
        .route("/questionnaire-requests/{id}/cancel", post(cancel_questionnaire))
        .route("/alerts", get(list_alerts))
        .route("/alerts/{id}/acknowledge", post(acknowledge_alert))
        .route("/patients/{id}/schedules", get(list_schedules).post(create_schedule))
        .route("/schedules/{id}/end", post(end_schedule))
}

// ---------- request values ----------

fn opt_text(v: &Option<NumberOrText>) -> String {
    v.as_ref().map(NumberOrText::text).unwrap_or_default()
}

/// One answer: a whole number (`3`), text (`"3"`, `"y"`, `"n"`), or `null` / `""` / `"-"` for
/// an item left blank or skipped.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum AnswerValue {
    /// Number.
    Number(serde_json::Number),
    /// Text.
    Text(String),
}

impl PartialSchema for AnswerValue {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .description(Some(
                "One answer: a whole number, text such as \"3\", \"y\" or \"n\", or null, \"\" or \"-\" for a blank or skipped item.",
            ))
            .into()
    }
}

impl ToSchema for AnswerValue {}

fn answer_text(v: &Option<AnswerValue>) -> String {
    match v {
        None => String::new(),
        Some(AnswerValue::Number(n)) => n.to_string(),
        Some(AnswerValue::Text(t)) => t.clone(),
    }
}

/// The answers of a form, from either `answers` (a list) or `items` (comma-separated text).
fn answers_of(items: &Option<String>, answers: &Option<Vec<Option<AnswerValue>>>) -> ApiResult<Vec<String>> {
    match (items, answers) {
        (Some(_), Some(_)) => Err(bad("answers", "give either answers (a list) or items (text such as \"3,2,1\"), not both")),
        (None, None) => Err(bad(
            "answers",
            "is required: give the answers in published item order, as a list (\"answers\": [3, 2, 1]) or as text (\"items\": \"3,2,1\")",
        )),
        (Some(t), None) if t.trim().is_empty() => Ok(Vec::new()),
        (Some(t), None) => Ok(t.split(',').map(|s| s.trim().to_owned()).collect()),
        (None, Some(list)) => Ok(list.iter().map(answer_text).collect()),
    }
}

// ---------- DTOs: instruments ----------

fn direction_code(d: Direction) -> &'static str {
    match d {
        Direction::HigherIsWorse => "higher_is_worse",
        Direction::HigherIsBetter => "higher_is_better",
    }
}

/// An instrument in the catalogue.
#[derive(Serialize, ToSchema)]
pub struct InstrumentSummaryDto {
    /// Stable key used in the other endpoints, e.g. `gad7`.
    key: String,
    /// Short name, e.g. `GAD-7`.
    name: String,
    title: String,
    /// patient, clinician or either (patient and either can be sent as a questionnaire link).
    respondent: String,
    item_count: usize,
    /// Whether the instrument has a total (the outcome calculator needs one).
    has_total: bool,
    /// Lowest possible total, exact decimal text.
    #[schema(example = "0")]
    total_min: String,
    /// Highest possible total, exact decimal text.
    #[schema(example = "21")]
    total_max: String,
    /// Version of the definition (knowledge file).
    version: String,
    licence: String,
    /// Caveats to show wherever the instrument is used.
    caveats: Vec<String>,
}

impl From<&Instrument> for InstrumentSummaryDto {
    fn from(i: &Instrument) -> Self {
        let (lo, hi) = i.total_range();
        Self {
            key: i.key.clone(),
            name: i.name.clone(),
            title: i.title.clone(),
            respondent: i.respondent.code().into(),
            item_count: i.items.len(),
            has_total: i.has_total,
            total_min: dec(lo),
            total_max: dec(hi),
            version: i.version.clone(),
            licence: i.licence.clone(),
            caveats: i.caveats.clone(),
        }
    }
}

/// One possible answer of an item.
#[derive(Serialize, ToSchema)]
pub struct ChoiceDto {
    value: u32,
    /// Label of the answer, if the definition has one.
    label: Option<String>,
    /// LOINC answer code, where known.
    loinc: Option<String>,
}

/// An item is skipped (must be left blank) when another item has a given answer.
#[derive(Serialize, ToSchema)]
pub struct SkipRuleDto {
    /// Key of the controlling (earlier) item.
    when_item: String,
    /// The controlling answer that skips this item.
    equals: u32,
}

/// One item, in published order.
#[derive(Serialize, ToSchema)]
pub struct ItemDto {
    /// Key used in validation errors, e.g. `q9`.
    key: String,
    /// Short label (never the licensed item wording).
    label: String,
    /// number, or yes_no (answered y or n, stored as 1 or 0).
    kind: String,
    min: u32,
    max: u32,
    /// If not null, only these answers are valid.
    allowed: Option<Vec<u32>>,
    /// The valid answers in order with their labels.
    choices: Vec<ChoiceDto>,
    /// The accepted answers as text, as used in error messages.
    accepted: String,
    /// Whether the item counts towards the total.
    scored: bool,
    /// Whether it may be left blank.
    optional: bool,
    skip: Option<SkipRuleDto>,
    loinc: Option<String>,
}

impl From<&ItemDef> for ItemDto {
    fn from(i: &ItemDef) -> Self {
        let choices = i
            .choices()
            .into_iter()
            .enumerate()
            .map(|(n, v)| ChoiceDto {
                value: v,
                label: i.choice_labels.get(n).filter(|s| !s.is_empty()).cloned(),
                loinc: i.choice_loinc.get(n).filter(|s| !s.is_empty()).cloned(),
            })
            .collect();
        Self {
            key: i.key.clone(),
            label: i.label.clone(),
            kind: match i.kind {
                AnswerKind::Number => "number".into(),
                AnswerKind::YesNo => "yes_no".into(),
            },
            min: i.min,
            max: i.max,
            allowed: i.allowed.clone(),
            choices,
            accepted: i.accepted(),
            scored: i.scored,
            optional: i.optional,
            skip: i.skip.as_ref().map(|s| SkipRuleDto { when_item: s.when_item.clone(), equals: s.equals }),
            loinc: i.loinc.clone(),
        }
    }
}

/// A subscale: the sum of some items.
#[derive(Serialize, ToSchema)]
pub struct SubscaleDefDto {
    key: String,
    label: String,
    /// Item keys summed.
    items: Vec<String>,
    /// Lowest possible value, exact decimal text.
    min: String,
    /// Highest possible value, exact decimal text.
    max: String,
    loinc: Option<String>,
}

/// A severity band of the total, inclusive at both ends.
#[derive(Serialize, ToSchema)]
#[schema(as = SeverityBandDto)]
pub struct BandDto {
    code: String,
    label: String,
    /// Exact decimal text.
    min: String,
    /// Exact decimal text.
    max: String,
}

impl From<&Band> for BandDto {
    fn from(b: &Band) -> Self {
        Self { code: b.code.clone(), label: b.label.clone(), min: dec(b.min), max: dec(b.max) }
    }
}

/// A published set of severity bands with its source.
#[derive(Serialize, ToSchema)]
pub struct BandSetDto {
    key: String,
    label: String,
    source: String,
    /// Whether scores use this set (the first is the default).
    default: bool,
    bands: Vec<BandDto>,
}

fn band_set_dto(s: &BandSet, default: bool) -> BandSetDto {
    BandSetDto {
        key: s.key.clone(),
        label: s.label.clone(),
        source: s.source.clone(),
        default,
        bands: s.bands.iter().map(BandDto::from).collect(),
    }
}

/// Response: an improvement from baseline of at least (or, if strict, more than) `percent`.
#[derive(Serialize, ToSchema)]
pub struct ResponseRuleDto {
    /// Percent improvement, exact decimal text.
    #[schema(example = "50")]
    percent: String,
    /// true: more than percent; false: at least percent.
    strict: bool,
    /// Whether this is clinic policy (a local choice, or set by the medical director) rather than the instrument's published rule.
    policy: bool,
    source: String,
}

/// Remission: total at or below a cut-off (at or above for higher-is-better scales),
/// optionally with no scored item above a value.
#[derive(Serialize, ToSchema)]
pub struct RemissionRuleDto {
    /// Exact decimal text.
    total_at_most: String,
    /// If not null, no scored item may be above this.
    no_item_above: Option<u32>,
    /// Whether this is clinic policy (a local choice, or set by the medical director).
    policy: bool,
    source: String,
}

/// Response and remission rules; null where the instrument has no such rule.
#[derive(Serialize, ToSchema)]
pub struct RulesDto {
    response: Option<ResponseRuleDto>,
    remission: Option<RemissionRuleDto>,
}

impl From<&OutcomeRules> for RulesDto {
    fn from(r: &OutcomeRules) -> Self {
        Self {
            response: r.response.as_ref().map(|x| ResponseRuleDto {
                percent: dec(x.percent),
                strict: x.strict,
                policy: x.policy,
                source: x.source.clone(),
            }),
            remission: r.remission.as_ref().map(|x| RemissionRuleDto {
                total_at_most: dec(x.total_at_most),
                no_item_above: x.no_item_above,
                policy: x.policy,
                source: x.source.clone(),
            }),
        }
    }
}

/// Published reliability for the reliable change index (Jacobson and Truax 1991).
#[derive(Serialize, ToSchema)]
pub struct ReliabilityDto {
    /// Reliability coefficient r, exact decimal text.
    coefficient: String,
    /// Standard deviation of the total, exact decimal text.
    sd: String,
    /// Critical |RCI|, exact decimal text.
    critical: String,
    source: String,
    /// S_diff = √2 · SD · √(1 − r), rounded to 2 places.
    s_diff: Option<String>,
    /// Smallest reliable change in points (critical · S_diff), rounded to 2 places.
    threshold_points: Option<String>,
}

impl From<&Reliability> for ReliabilityDto {
    fn from(r: &Reliability) -> Self {
        Self {
            coefficient: dec(r.coefficient),
            sd: dec(r.sd),
            critical: dec(r.critical),
            source: r.source.clone(),
            s_diff: r.s_diff().map(|d| dec(d.round_dp(2))),
            threshold_points: r.threshold_points().map(|d| dec(d.round_dp(2))),
        }
    }
}

/// A condition on a completed form.
#[derive(Serialize, ToSchema)]
pub struct ConditionDto {
    /// item_at_least, item_at_most, any_item_at_least, all_items_at_least, total_at_least or triage_in.
    kind: String,
    /// Item keys looked at (empty for total_at_least and triage_in).
    items: Vec<String>,
    /// Threshold, exact decimal text (null for triage_in).
    value: Option<String>,
    /// Triage levels (triage_in only).
    levels: Vec<String>,
}

impl From<&Condition> for ConditionDto {
    fn from(c: &Condition) -> Self {
        let (kind, items, value, levels) = match c {
            Condition::ItemAtLeast { item, value } => ("item_at_least", vec![item.clone()], Some(value.to_string()), vec![]),
            Condition::ItemAtMost { item, value } => ("item_at_most", vec![item.clone()], Some(value.to_string()), vec![]),
            Condition::AnyItemAtLeast { items, value } => ("any_item_at_least", items.clone(), Some(value.to_string()), vec![]),
            Condition::AllItemsAtLeast { items, value } => ("all_items_at_least", items.clone(), Some(value.to_string()), vec![]),
            Condition::TotalAtLeast(t) => ("total_at_least", vec![], Some(dec(*t)), vec![]),
            Condition::TriageIn(l) => ("triage_in", vec![], None, l.clone()),
        };
        Self { kind: kind.into(), items, value, levels }
    }
}

/// A triage level, reached when any of its conditions holds (rules are tried in order).
#[derive(Serialize, ToSchema)]
pub struct TriageRuleDto {
    level: String,
    label: String,
    any: Vec<ConditionDto>,
    loinc_answer: Option<String>,
}

impl From<&TriageRule> for TriageRuleDto {
    fn from(r: &TriageRule) -> Self {
        Self {
            level: r.level.clone(),
            label: r.label.clone(),
            any: r.any.iter().map(ConditionDto::from).collect(),
            loinc_answer: r.loinc_answer.clone(),
        }
    }
}

/// A flag a completed form can raise; urgent flags raise a safety alert.
#[derive(Serialize, ToSchema)]
pub struct FlagRuleDto {
    code: String,
    label: String,
    urgent: bool,
    when: ConditionDto,
    source: String,
}

impl From<&FlagRule> for FlagRuleDto {
    fn from(f: &FlagRule) -> Self {
        Self { code: f.code.clone(), label: f.label.clone(), urgent: f.urgent, when: ConditionDto::from(&f.when), source: f.source.clone() }
    }
}

/// LOINC codes of the instrument, where known.
#[derive(Serialize, ToSchema)]
pub struct InstrumentLoincDto {
    panel: Option<String>,
    total: Option<String>,
    triage: Option<String>,
}

/// The full definition of an instrument.
#[derive(Serialize, ToSchema)]
pub struct InstrumentDto {
    key: String,
    name: String,
    title: String,
    version: String,
    /// patient, clinician or either.
    respondent: String,
    /// Recall period, e.g. "Over the last 2 weeks".
    recall: Option<String>,
    licence: String,
    /// Source of the scoring rules.
    source: String,
    /// higher_is_worse (symptom scales) or higher_is_better (quality of life).
    direction: String,
    has_total: bool,
    /// Exact decimal text.
    total_min: String,
    /// Exact decimal text.
    total_max: String,
    /// Whether scores also report percent of the maximum.
    percent_of_max: bool,
    items: Vec<ItemDto>,
    subscales: Vec<SubscaleDefDto>,
    band_sets: Vec<BandSetDto>,
    /// Response and remission rules in force (the defaults with the clinic's policy choices applied).
    rules: RulesDto,
    /// The knowledge-file defaults the clinic's choices replace.
    default_rules: RulesDto,
    reliability: Option<ReliabilityDto>,
    triage: Vec<TriageRuleDto>,
    /// Triage level when no rule matches.
    triage_none: Option<String>,
    flags: Vec<FlagRuleDto>,
    loinc: InstrumentLoincDto,
    caveats: Vec<String>,
}

fn instrument_dto(state: &AppState, i: &Instrument, rules: &OutcomeRules) -> InstrumentDto {
    let (lo, hi) = i.total_range();
    InstrumentDto {
        key: i.key.clone(),
        name: i.name.clone(),
        title: i.title.clone(),
        version: i.version.clone(),
        respondent: i.respondent.code().into(),
        recall: i.recall.clone(),
        licence: i.licence.clone(),
        source: i.source.clone(),
        direction: direction_code(i.direction).into(),
        has_total: i.has_total,
        total_min: dec(lo),
        total_max: dec(hi),
        percent_of_max: i.percent_of_max,
        items: i.items.iter().map(ItemDto::from).collect(),
        subscales: i
            .subscales
            .iter()
            .map(|s| {
                let (min, max) = s
                    .items
                    .iter()
                    .filter_map(|k| i.item(k))
                    .fold((Decimal::ZERO, Decimal::ZERO), |(a, b), it| (a + Decimal::from(it.min), b + Decimal::from(it.max)));
                SubscaleDefDto {
                    key: s.key.clone(),
                    label: s.label.clone(),
                    items: s.items.clone(),
                    min: dec(min),
                    max: dec(max),
                    loinc: s.loinc.clone(),
                }
            })
            .collect(),
        band_sets: i.band_sets.iter().enumerate().map(|(n, s)| band_set_dto(s, n == 0)).collect(),
        rules: RulesDto::from(rules),
        default_rules: RulesDto::from(&state.app.outcome_rules(i)),
        reliability: i.reliability.as_ref().map(ReliabilityDto::from),
        triage: i.triage.iter().map(TriageRuleDto::from).collect(),
        triage_none: i.triage_none.clone(),
        flags: i.flags.iter().map(FlagRuleDto::from).collect(),
        loinc: InstrumentLoincDto { panel: i.panel_loinc.clone(), total: i.total_loinc.clone(), triage: i.triage_loinc.clone() },
        caveats: i.caveats.clone(),
    }
}

// ---------- DTOs: scores and outcomes ----------

/// A severity band reached.
#[derive(Serialize, ToSchema)]
pub struct BandRefDto {
    code: String,
    label: String,
}

/// A subscale score.
#[derive(Serialize, ToSchema)]
pub struct SubscaleScoreDto {
    key: String,
    label: String,
    /// Exact decimal text.
    value: String,
    /// Exact decimal text.
    min: String,
    /// Exact decimal text.
    max: String,
}

/// A raised flag.
#[derive(Serialize, ToSchema)]
pub struct FlagDto {
    code: String,
    label: String,
    /// Urgent flags raise a safety alert when the form is recorded.
    urgent: bool,
}

/// The score of a valid form.
#[derive(Serialize, ToSchema)]
pub struct ScoreDto {
    /// Instrument key.
    instrument: String,
    /// Sum of the scored items, exact decimal text; null when the instrument has no total.
    #[schema(example = "14")]
    total: Option<String>,
    /// Exact decimal text.
    total_min: String,
    /// Exact decimal text.
    total_max: String,
    /// Percent of the maximum, rounded to 2 places, for instruments that report it.
    percent_max: Option<String>,
    /// Severity band under the default band set.
    band: Option<BandRefDto>,
    subscales: Vec<SubscaleScoreDto>,
    /// Triage level code (C-SSRS).
    triage: Option<String>,
    flags: Vec<FlagDto>,
}

impl From<&Score> for ScoreDto {
    fn from(s: &Score) -> Self {
        Self {
            instrument: s.instrument.clone(),
            total: s.total.map(dec),
            total_min: dec(s.total_min),
            total_max: dec(s.total_max),
            percent_max: s.percent_max.map(dec),
            band: s.band.as_ref().map(|b| BandRefDto { code: b.code.clone(), label: b.label.clone() }),
            subscales: s
                .subscales
                .iter()
                .map(|x| SubscaleScoreDto {
                    key: x.key.clone(),
                    label: x.label.clone(),
                    value: dec(x.value),
                    min: dec(x.min),
                    max: dec(x.max),
                })
                .collect(),
            triage: s.triage.clone(),
            flags: s.flags.iter().map(|f| FlagDto { code: f.code.clone(), label: f.label.clone(), urgent: f.urgent }).collect(),
        }
    }
}

/// A form to score without storing anything: give `items` (text) or `answers` (a list), in
/// published item order.
#[derive(Deserialize, ToSchema)]
pub struct ScoreRequest {
    /// Answers as text, e.g. `"3,2,2,1,3,2,1"` or `"y,n,-"` (`-` or empty = blank).
    #[serde(default)]
    #[schema(example = "3,2,2,1,3,2,1")]
    items: Option<String>,
    /// Answers as a list, e.g. `[3, 2, 2, 1, 3, 2, 1]` or `["y", "n", null]`.
    #[serde(default)]
    answers: Option<Vec<Option<AnswerValue>>>,
}

/// Two totals to compare.
#[derive(Deserialize, ToSchema)]
pub struct OutcomeRequest {
    /// Baseline total, a whole number (JSON number or text).
    #[serde(default)]
    #[schema(value_type = NumberOrText, example = "20")]
    baseline: Option<NumberOrText>,
    /// Current total, a whole number (JSON number or text).
    #[serde(default)]
    #[schema(value_type = NumberOrText, example = "9")]
    current: Option<NumberOrText>,
}

/// Change from baseline under the rules in force.
#[derive(Serialize, ToSchema)]
pub struct OutcomeDto {
    /// Instrument key.
    instrument: String,
    /// Exact decimal text.
    baseline: String,
    /// Exact decimal text.
    current: String,
    /// current − baseline in points, exact decimal text.
    change: String,
    /// (current − baseline) / baseline × 100, rounded to 2 places; null when baseline is 0.
    change_percent: Option<String>,
    /// Whether the response rule is met; null when there is no rule or baseline is 0.
    response: Option<bool>,
    /// Whether the remission rule is met; null when there is no rule or it needs item answers.
    remission: Option<bool>,
    /// Reliable change index, rounded to 2 places; null without published reliability.
    rci: Option<String>,
    /// improved, deteriorated or no_reliable_change.
    reliable_change: Option<String>,
    /// The rules applied: those in force (the clinic's policy choices over the knowledge defaults).
    rules: RulesDto,
}

// ---------- DTOs: a patient's measurement-based care ----------

/// One administration with its score and change from the baseline of the series.
#[derive(Serialize, ToSchema)]
pub struct AssessmentPointDto {
    /// The assessment record (its history and void are under /api/records/{rid}).
    record_id: String,
    version: u32,
    taken_at: String,
    /// patient (questionnaire link) or clinician.
    filled_by: String,
    /// Treatment session (encounter record id), if any.
    session: Option<String>,
    /// Time point key relative to the session, e.g. `1h`.
    timepoint: Option<String>,
    /// The questionnaire request answered, if sent as a link.
    request_id: Option<String>,
    note: Option<String>,
    recorded_by: String,
    /// Answers in published item order; null for blank or skipped items.
    answers: Vec<Option<u32>>,
    /// Exact decimal text.
    total: Option<String>,
    band: Option<BandRefDto>,
    subscales: Vec<SubscaleScoreDto>,
    percent_max: Option<String>,
    triage: Option<String>,
    flags: Vec<FlagDto>,
    /// Whether this is the baseline (first administration) of the series.
    baseline: bool,
    /// Change from baseline in points; null for the baseline.
    change: Option<String>,
    change_percent: Option<String>,
    response: Option<bool>,
    remission: Option<bool>,
    rci: Option<String>,
    /// improved, deteriorated or no_reliable_change.
    reliable_change: Option<String>,
}

fn point_dto(p: &ScoredAssessment, is_baseline: bool) -> AssessmentPointDto {
    let s = ScoreDto::from(&p.score);
    let a = &p.assessment;
    let o: Option<&Outcome> = p.outcome.as_ref();
    AssessmentPointDto {
        record_id: p.version.record_id.to_string(),
        version: p.version.version,
        taken_at: a.taken_at.to_rfc3339(),
        filled_by: a.filled_by.code().into(),
        session: a.session.map(|x| x.to_string()),
        timepoint: a.timepoint.clone(),
        request_id: a.request.map(|x| x.to_string()),
        note: a.note.clone(),
        recorded_by: p.version.provenance.username.clone(),
        answers: a.answers.clone(),
        total: s.total,
        band: s.band,
        subscales: s.subscales,
        percent_max: s.percent_max,
        triage: s.triage,
        flags: s.flags,
        baseline: is_baseline,
        change: o.map(|o| dec(o.change)),
        change_percent: o.and_then(|o| o.change_percent).map(dec),
        response: o.and_then(|o| o.response),
        remission: o.and_then(|o| o.remission),
        rci: o.and_then(|o| o.rci).map(dec),
        reliable_change: o.and_then(|o| o.reliable_change).map(|r| r.code().into()),
    }
}

/// All administrations of one instrument, oldest first; the first is the baseline.
#[derive(Serialize, ToSchema)]
#[schema(as = ScoreSeriesDto)]
pub struct SeriesDto {
    /// Instrument key.
    instrument: String,
    /// Instrument short name.
    name: String,
    /// higher_is_worse or higher_is_better.
    direction: String,
    /// Exact decimal text.
    total_min: String,
    /// Exact decimal text.
    total_max: String,
    /// Rules in force.
    rules: RulesDto,
    /// Smallest reliable change in points, rounded to 2 places, if known.
    reliable_change_points: Option<String>,
    points: Vec<AssessmentPointDto>,
}

fn series_dto(s: &Series) -> SeriesDto {
    let (lo, hi) = s.instrument.total_range();
    SeriesDto {
        instrument: s.instrument.key.clone(),
        name: s.instrument.name.clone(),
        direction: direction_code(s.instrument.direction).into(),
        total_min: dec(lo),
        total_max: dec(hi),
        rules: RulesDto::from(&s.rules),
        reliable_change_points: s.instrument.reliability.as_ref().and_then(Reliability::threshold_points).map(|d| dec(d.round_dp(2))),
        points: s.points.iter().enumerate().map(|(n, p)| point_dto(p, n == 0)).collect(),
    }
}

/// A treatment session (encounter of kind treatment).
#[derive(Serialize, ToSchema)]
#[schema(as = SessionMarkerDto)]
pub struct SessionDto {
    record_id: String,
    start: String,
    label: String,
}

impl From<&SessionMarker> for SessionDto {
    fn from(s: &SessionMarker) -> Self {
        Self { record_id: s.session.id.to_string(), start: s.session.start.to_rfc3339(), label: s.label.clone() }
    }
}

/// A standing order to administer an instrument.
#[derive(Serialize, ToSchema)]
pub struct ScheduleDto {
    id: String,
    /// Instrument key.
    instrument: String,
    /// session (at time points of every treatment session) or calendar (every interval_days).
    anchor: String,
    /// Time point keys (session anchor; empty otherwise).
    timepoints: Vec<String>,
    /// Interval in days (calendar anchor).
    interval_days: Option<u32>,
    /// First due date YYYY-MM-DD (calendar anchor).
    start: Option<String>,
    created_by: String,
    created_at: String,
    ended_at: Option<String>,
    /// Whether it has not been ended.
    active: bool,
}

impl From<&Schedule> for ScheduleDto {
    fn from(s: &Schedule) -> Self {
        let (anchor, timepoints, interval_days, start) = match &s.anchor {
            Anchor::Session { timepoints } => ("session", timepoints.clone(), None, None),
            Anchor::Calendar { interval_days, start } => {
                ("calendar", vec![], Some(*interval_days), Some(start.format("%Y-%m-%d").to_string()))
            }
        };
        Self {
            id: s.id.to_string(),
            instrument: s.instrument.clone(),
            anchor: anchor.into(),
            timepoints,
            interval_days,
            start,
            created_by: s.created_by.clone(),
            created_at: s.created_at.to_rfc3339(),
            ended_at: s.ended_at.map(|t| t.to_rfc3339()),
            active: s.ended_at.is_none(),
        }
    }
}

/// One thing an active schedule asks for.
#[derive(Serialize, ToSchema)]
pub struct DueDto {
    schedule_id: String,
    instrument: String,
    session: Option<String>,
    timepoint: Option<String>,
    due_at: String,
    overdue_at: String,
    /// overdue, due, upcoming or done.
    status: String,
}

impl From<&DueItem> for DueDto {
    fn from(d: &DueItem) -> Self {
        Self {
            schedule_id: d.schedule.to_string(),
            instrument: d.instrument.clone(),
            session: d.session.map(|x| x.to_string()),
            timepoint: d.timepoint.clone(),
            due_at: d.due_at.to_rfc3339(),
            overdue_at: d.overdue_at.to_rfc3339(),
            status: d.status.code().into(),
        }
    }
}

/// A questionnaire sent to the patient (never its link token).
#[derive(Serialize, ToSchema)]
pub struct QuestionnaireRequestDto {
    id: String,
    instrument: String,
    /// open, completed, cancelled or expired (now).
    state: String,
    session: Option<String>,
    timepoint: Option<String>,
    /// Username of the clinician who sent it.
    sent_by: String,
    sent_at: String,
    expires_at: String,
    completed_at: Option<String>,
    cancelled_at: Option<String>,
    /// The assessment record created by the patient's answer.
    response_record_id: Option<String>,
}

fn request_dto(state: &AppState, r: &QuestionnaireRequest) -> QuestionnaireRequestDto {
    QuestionnaireRequestDto {
        id: r.id.to_string(),
        instrument: r.instrument.clone(),
        state: r.state(state.app.now()).code().into(),
        session: r.session.map(|x| x.to_string()),
        timepoint: r.timepoint.clone(),
        sent_by: r.sent_by_name.clone(),
        sent_at: r.sent_at.to_rfc3339(),
        expires_at: r.expires_at.to_rfc3339(),
        completed_at: r.completed_at.map(|t| t.to_rfc3339()),
        cancelled_at: r.cancelled_at.map(|t| t.to_rfc3339()),
        response_record_id: r.response.map(|x| x.to_string()),
    }
}

/// Who acknowledged an alert, when, and what was done.
#[derive(Serialize, ToSchema)]
pub struct AcknowledgementDto {
    /// User id.
    by: String,
    /// Username.
    by_name: String,
    at: String,
    action_taken: String,
}

/// An urgent safety alert; open until acknowledged with what was done.
#[derive(Serialize, ToSchema)]
pub struct AlertDto {
    id: String,
    patient_id: String,
    /// Flag code, e.g. `phq9_item9`.
    code: String,
    label: String,
    raised_at: String,
    /// The assessment record that raised it.
    source_record_id: String,
    /// User id of the responsible clinician.
    assigned_to: Option<String>,
    /// Whether it still needs acknowledging.
    open: bool,
    acknowledgement: Option<AcknowledgementDto>,
}

impl From<&SafetyAlert> for AlertDto {
    fn from(a: &SafetyAlert) -> Self {
        Self {
            id: a.id.to_string(),
            patient_id: a.patient_id.to_string(),
            code: a.code.clone(),
            label: a.label.clone(),
            raised_at: a.raised_at.to_rfc3339(),
            source_record_id: a.source_record.to_string(),
            assigned_to: a.assigned_to.map(|u| u.to_string()),
            open: a.acknowledgement.is_none(),
            acknowledgement: a.acknowledgement.as_ref().map(|k| AcknowledgementDto {
                by: k.by.to_string(),
                by_name: k.by_name.clone(),
                at: k.at.to_rfc3339(),
                action_taken: k.action_taken.clone(),
            }),
        }
    }
}

/// Everything measurement-based care shows for one patient.
#[derive(Serialize, ToSchema)]
pub struct PatientOutcomesDto {
    patient_id: String,
    /// One series per instrument with any administration, in catalogue order.
    series: Vec<SeriesDto>,
    /// Treatment sessions, oldest first.
    sessions: Vec<SessionDto>,
    /// Schedules, active first.
    schedules: Vec<ScheduleDto>,
    /// What the active schedules ask for now, most urgent first.
    due: Vec<DueDto>,
    /// Questionnaire requests, newest first.
    requests: Vec<QuestionnaireRequestDto>,
    /// Safety alerts of this patient, newest first (open and acknowledged).
    alerts: Vec<AlertDto>,
}

fn outcomes_dto(state: &AppState, patient: PatientId, v: &OutcomeView) -> PatientOutcomesDto {
    PatientOutcomesDto {
        patient_id: patient.to_string(),
        series: v.series.iter().map(series_dto).collect(),
        sessions: v.sessions.iter().map(SessionDto::from).collect(),
        schedules: v.schedules.iter().map(ScheduleDto::from).collect(),
        due: v.due.iter().map(DueDto::from).collect(),
        requests: v.requests.iter().map(|r| request_dto(state, r)).collect(),
        alerts: v.alerts.iter().map(AlertDto::from).collect(),
    }
}

/// A completed form to record, entered by a clinician. Give `answers` (a list) or `items`
/// (text), in published item order.
#[derive(Deserialize, ToSchema)]
pub struct RecordAssessmentRequest {
    /// Instrument key, e.g. `phq9`.
    #[serde(default)]
    instrument: String,
    /// Answers as a list, e.g. `[1, 2, 1, 0, 1, 0, 1, 0, 1, null]`.
    #[serde(default)]
    answers: Option<Vec<Option<AnswerValue>>>,
    /// Answers as text, e.g. `"1,2,1,0,1,0,1,0,1,-"`.
    #[serde(default)]
    items: Option<String>,
    /// When taken, YYYY-MM-DDTHH:MM (UTC); omitted means now.
    #[serde(default)]
    taken_at: Option<String>,
    /// Treatment session (encounter record id) it belongs to.
    #[serde(default)]
    session: Option<String>,
    /// Time point key relative to the session (pre, 1h, 2h, 24h, 72h, 7d); needs `session`.
    #[serde(default)]
    timepoint: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// A recorded form with its score.
#[derive(Serialize, ToSchema)]
pub struct RecordedAssessmentDto {
    record_id: String,
    version: u32,
    instrument: String,
    taken_at: String,
    score: ScoreDto,
    /// Ids of the safety alerts raised by urgent flags (see /api/alerts).
    alert_ids: Vec<String>,
}

/// Send a questionnaire link to the patient.
#[derive(Deserialize, ToSchema)]
pub struct SendQuestionnaireRequest {
    /// Instrument key; clinician-rated instruments cannot be sent.
    #[serde(default)]
    instrument: String,
    /// Treatment session (encounter record id) it belongs to.
    #[serde(default)]
    session: Option<String>,
    /// Time point key; needs `session`.
    #[serde(default)]
    timepoint: Option<String>,
}

/// A request just sent. The link is shown only in this response; the server keeps only a hash.
#[derive(Serialize, ToSchema)]
pub struct SentQuestionnaireDto {
    id: String,
    instrument: String,
    /// open.
    state: String,
    sent_at: String,
    expires_at: String,
    /// Path of the single-use link for the patient, `/q/<token>`; prefix the server's address.
    link_path: String,
}

/// Acknowledge an alert.
#[derive(Deserialize, ToSchema)]
pub struct AcknowledgeRequest {
    /// What was done (3–1000 characters), e.g. "called the patient, safety plan reviewed".
    #[serde(default)]
    action_taken: String,
}

/// Alert list filter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// true (default): open alerts only; false: all alerts.
    open: Option<bool>,
}

/// A schedule to create.
#[derive(Deserialize, ToSchema)]
pub struct ScheduleRequest {
    /// Instrument key.
    #[serde(default)]
    instrument: String,
    /// session or calendar.
    #[serde(default)]
    anchor: String,
    /// Time point keys (session anchor), e.g. `["pre", "24h"]`.
    #[serde(default)]
    timepoints: Vec<String>,
    /// Interval in days, 1–365 (calendar anchor), as a number or text.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>, example = "7")]
    interval_days: Option<NumberOrText>,
    /// First due date YYYY-MM-DD (calendar anchor); omitted means today.
    #[serde(default)]
    start: Option<String>,
}

// ---------- handlers ----------

#[utoipa::path(get, path = "/api/instruments", responses((status = 200, body = [InstrumentSummaryDto]), (status = 401, body = Problem)), tag = "instruments")]
async fn list_instruments(State(state): State<AppState>, Auth(_p): Auth) -> Json<Vec<InstrumentSummaryDto>> {
    Json(state.app.knowledge().instruments.iter().map(InstrumentSummaryDto::from).collect())
}

#[utoipa::path(get, path = "/api/instruments/{key}", params(("key" = String, Path, description = "Instrument key, e.g. gad7")),
    responses((status = 200, body = InstrumentDto), (status = 401, body = Problem), (status = 404, body = Problem)), tag = "instruments")]
async fn get_instrument(State(state): State<AppState>, Auth(_p): Auth, Path(key): Path<String>) -> ApiResult<Json<InstrumentDto>> {
    let i = instrument(&state, &key)?;
    let rules = state.app.rules_in_force(i).await?;
    Ok(Json(instrument_dto(&state, i, &rules)))
}

#[utoipa::path(post, path = "/api/instruments/{key}/score", params(("key" = String, Path)), request_body = ScoreRequest,
    responses((status = 200, body = ScoreDto), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "validation: each bad or missing item is named by its key with the accepted answers")),
    tag = "instruments")]
async fn score(State(state): State<AppState>, Auth(_p): Auth, Path(key): Path<String>, req: Request) -> ApiResult<Json<ScoreDto>> {
    let inst = instrument(&state, &key)?;
    let r: ScoreRequest = json(req, &state).await?;
    let answers = answers_of(&r.items, &r.answers)?;
    // The calculator takes comma-separated text; a list element with a comma would shift the items.
    let mut e = FieldErrors::new();
    for (n, a) in answers.iter().enumerate().filter(|(_, a)| a.contains(',')) {
        let field = inst.items.get(n).map(|i| i.key.as_str()).unwrap_or("answers");
        e.add(field, format!("{} item {} must be one answer; got {a:?}", inst.name, n + 1));
    }
    e.into_result().map_err(|e| WebError::api(e.into()))?;
    let (_, s) = state.app.score_answers(&inst.key, &answers.join(","))?;
    Ok(Json(ScoreDto::from(&s)))
}

#[utoipa::path(post, path = "/api/instruments/{key}/outcome", params(("key" = String, Path)), request_body = OutcomeRequest,
    responses((status = 200, body = OutcomeDto), (status = 404, body = Problem), (status = 422, body = Problem)), tag = "instruments")]
async fn outcome(State(state): State<AppState>, Auth(_p): Auth, Path(key): Path<String>, req: Request) -> ApiResult<Json<OutcomeDto>> {
    let inst = instrument(&state, &key)?;
    let r: OutcomeRequest = json(req, &state).await?;
    let (inst, o) = state.app.compare_totals(&inst.key, &opt_text(&r.baseline), &opt_text(&r.current))?;
    // The totals are validated by the application; the verdict uses the rules in force, as the
    // patient's outcome series does (compare_totals applies the knowledge defaults only).
    let rules = state.app.rules_in_force(&inst).await?;
    let o = if rules == state.app.outcome_rules(&inst) {
        o
    } else {
        inst.outcome(&rules, o.baseline, o.current, None).map_err(|e| WebError::api(e.into()))?
    };
    Ok(Json(OutcomeDto {
        instrument: inst.key.clone(),
        baseline: dec(o.baseline),
        current: dec(o.current),
        change: dec(o.change),
        change_percent: o.change_percent.map(dec),
        response: o.response,
        remission: o.remission,
        rci: o.rci.map(dec),
        reliable_change: o.reliable_change.map(|r| r.code().into()),
        rules: RulesDto::from(&rules),
    }))
}

#[utoipa::path(get, path = "/api/patients/{id}/assessments", params(("id" = String, Path, description = "Patient id")),
    responses((status = 200, body = PatientOutcomesDto), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    tag = "outcomes")]
async fn patient_assessments(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<PatientOutcomesDto>> {
    let patient = pid(&id)?;
    let v = state.app.outcomes(&p, patient).await?;
    Ok(Json(outcomes_dto(&state, patient, &v)))
}

#[utoipa::path(post, path = "/api/patients/{id}/assessments", params(("id" = String, Path)), request_body = RecordAssessmentRequest,
    responses((status = 201, body = RecordedAssessmentDto), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "validation: bad or missing items are named by their key")),
    tag = "outcomes")]
async fn record_assessment(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let patient = pid(&id)?;
    let r: RecordAssessmentRequest = json(req, &state).await?;
    let answers = match answers_of(&r.items, &r.answers) {
        Ok(a) => a,
        Err(e) if p.can(Permission::WriteClinical) => return Err(e),
        // A caller without the permission is refused (and audited) before the input is judged.
        Err(_) => Vec::new(),
    };
    let input = AssessmentInput {
        instrument: r.instrument.trim().to_owned(),
        answers,
        taken_at: r.taken_at.unwrap_or_default(),
        session: r.session.unwrap_or_default(),
        timepoint: r.timepoint.unwrap_or_default(),
        note: r.note.unwrap_or_default(),
    };
    let (v, score, alerts) = state.app.record_assessment(&p, patient, &input).await?;
    let (instrument, taken_at) = match &v.record {
        ketacare_domain::record::ClinicalRecord::Assessment(a) => (a.instrument.clone(), a.taken_at.to_rfc3339()),
        _ => (score.instrument.clone(), v.provenance.recorded_at.to_rfc3339()),
    };
    let dto = RecordedAssessmentDto {
        record_id: v.record_id.to_string(),
        version: v.version,
        instrument,
        taken_at,
        score: ScoreDto::from(&score),
        alert_ids: alerts.iter().map(|a| a.id.to_string()).collect(),
    };
    Ok((StatusCode::CREATED, Json(dto)).into_response())
}

#[utoipa::path(post, path = "/api/patients/{id}/questionnaire-requests", params(("id" = String, Path)), request_body = SendQuestionnaireRequest,
    responses((status = 201, body = SentQuestionnaireDto, description = "Sent; the link is shown only here"), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    tag = "outcomes")]
async fn send_questionnaire(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let patient = pid(&id)?;
    let r: SendQuestionnaireRequest = json(req, &state).await?;
    let sent = state
        .app
        .send_questionnaire(&p, patient, r.instrument.trim(), r.session.as_deref().unwrap_or(""), r.timepoint.as_deref().unwrap_or(""))
        .await?;
    let q = &sent.request;
    let dto = SentQuestionnaireDto {
        id: q.id.to_string(),
        instrument: q.instrument.clone(),
        state: q.state(state.app.now()).code().into(),
        sent_at: q.sent_at.to_rfc3339(),
        expires_at: q.expires_at.to_rfc3339(),
        link_path: format!("/q/{}", sent.token),
    };
    Ok((StatusCode::CREATED, Json(dto)).into_response())
}

#[utoipa::path(post, path = "/api/questionnaire-requests/{id}/cancel", params(("id" = String, Path, description = "Questionnaire request id")),
    responses((status = 204, description = "Withdrawn; the link no longer works"), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "already answered or withdrawn")),
    tag = "outcomes")]
async fn cancel_questionnaire(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let rid = RequestId::parse(&id).map_err(|_| not_found())?;
    state.app.cancel_questionnaire(&p, rid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/alerts", params(AlertsQuery), responses((status = 200, body = [AlertDto]), (status = 403, body = Problem), (status = 422, body = Problem)),
    tag = "outcomes")]
async fn list_alerts(
    State(state): State<AppState>,
    Auth(p): Auth,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<AlertDto>>> {
    let Query(q) = q.map_err(query_problem)?;
    let rows = state.app.alerts(&p, q.open.unwrap_or(true)).await?;
    Ok(Json(rows.iter().map(AlertDto::from).collect()))
}

#[utoipa::path(post, path = "/api/alerts/{id}/acknowledge", params(("id" = String, Path, description = "Alert id")), request_body = AcknowledgeRequest,
    responses((status = 200, body = AlertDto), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "already acknowledged"), (status = 422, body = Problem, description = "action_taken missing or too short")),
    tag = "outcomes")]
async fn acknowledge_alert(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Json<AlertDto>> {
    let r: AcknowledgeRequest = json(req, &state).await?;
    let aid = AlertId::parse(&id).map_err(|_| not_found())?;
    let a = state.app.acknowledge_alert(&p, aid, &r.action_taken).await?;
    Ok(Json(AlertDto::from(&a)))
}

#[utoipa::path(get, path = "/api/patients/{id}/schedules", params(("id" = String, Path)),
    responses((status = 200, body = [ScheduleDto]), (status = 403, body = Problem), (status = 404, body = Problem)), tag = "outcomes")]
async fn list_schedules(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<Vec<ScheduleDto>>> {
    let v = state.app.outcomes(&p, pid(&id)?).await?;
    Ok(Json(v.schedules.iter().map(ScheduleDto::from).collect()))
}

#[utoipa::path(post, path = "/api/patients/{id}/schedules", params(("id" = String, Path)), request_body = ScheduleRequest,
    responses((status = 201, body = ScheduleDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    tag = "outcomes")]
async fn create_schedule(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let patient = pid(&id)?;
    let r: ScheduleRequest = json(req, &state).await?;
    let input = ScheduleInput {
        instrument: r.instrument.trim().to_owned(),
        anchor: r.anchor,
        timepoints: r.timepoints,
        interval_days: opt_text(&r.interval_days),
        start: r.start.unwrap_or_default(),
    };
    let s = state.app.create_schedule(&p, patient, &input).await?;
    Ok((StatusCode::CREATED, Json(ScheduleDto::from(&s))).into_response())
}

#[utoipa::path(post, path = "/api/schedules/{id}/end", params(("id" = String, Path, description = "Schedule id")),
    responses((status = 204, description = "Stopped"), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "already stopped")),
    tag = "outcomes")]
async fn end_schedule(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let sid = ScheduleId::parse(&id).map_err(|_| not_found())?;
    state.app.end_schedule(&p, sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------- licensed wording ----------

/// The clinic's licensed wording of an instrument.
#[derive(Serialize, ToSchema)]
pub struct WordingDto {
    /// Instrument key.
    instrument: String,
    /// Whether a wording file is loaded.
    loaded: bool,
    /// Whether forms use it (`false` when none is loaded or it no longer fits the definition).
    in_use: bool,
    /// Why a loaded file no longer fits the instrument's current definition.
    problems: Vec<String>,
    /// Language tag.
    language: Option<String>,
    /// Rights notice shown under the form.
    notice: Option<String>,
    /// The clinic's licence reference.
    licence_reference: Option<String>,
    /// Instructions shown above the items.
    instructions: Option<String>,
    /// Item texts in published order.
    items: Vec<ItemWordingDto>,
    /// Who loaded it.
    loaded_by: Option<String>,
    /// When (UTC, RFC 3339).
    loaded_at: Option<String>,
    /// Why (licence and reason).
    reason: Option<String>,
    /// The wording file as loaded (TOML).
    content: Option<String>,
}

/// One item's licensed text.
#[derive(Serialize, ToSchema)]
pub struct ItemWordingDto {
    /// Item key.
    key: String,
    /// Text.
    text: String,
    /// Answer labels, lowest answer first (empty: the definition's labels).
    choice_labels: Vec<String>,
}

/// A wording file to load.
#[derive(Deserialize, ToSchema)]
pub struct LoadWordingRequest {
    /// The wording file's text (TOML; format in docs/wording-format.md).
    #[serde(default)]
    content: String,
    /// The licence and the reason (who granted it, agreement reference).
    #[serde(default)]
    reason: String,
}

/// Why the wording is withdrawn.
#[derive(Deserialize, ToSchema)]
pub struct WithdrawWordingRequest {
    /// Reason.
    #[serde(default)]
    reason: String,
}

async fn wording_dto(state: &AppState, i: &Instrument) -> ApiResult<WordingDto> {
    let l = state.app.clinic_wording(i).await?;
    let w = l.as_ref().and_then(|l| l.wording.as_ref());
    Ok(WordingDto {
        instrument: i.key.clone(),
        loaded: l.is_some(),
        in_use: w.is_some(),
        problems: l.as_ref().map(|l| l.problems.clone()).unwrap_or_default(),
        language: w.map(|w| w.language.clone()),
        notice: w.map(|w| w.notice.clone()),
        licence_reference: w.and_then(|w| w.licence_reference.clone()),
        instructions: w.and_then(|w| w.instructions.clone()),
        items: w
            .map(|w| {
                w.items
                    .iter()
                    .map(|it| ItemWordingDto { key: it.key.clone(), text: it.text.clone(), choice_labels: it.choice_labels.clone() })
                    .collect()
            })
            .unwrap_or_default(),
        loaded_by: l.as_ref().map(|l| l.policy.set_by_name.clone()),
        loaded_at: l.as_ref().map(|l| l.policy.set_at.to_rfc3339()),
        reason: l.as_ref().map(|l| l.policy.reason.clone()),
        content: l.map(|l| l.text),
    })
}

#[utoipa::path(get, path = "/api/instruments/{key}/wording", params(("key" = String, Path, description = "Instrument key, e.g. gad7")),
    responses((status = 200, body = WordingDto), (status = 401, body = Problem), (status = 404, body = Problem)), tag = "instruments")]
async fn get_wording(State(state): State<AppState>, Auth(_p): Auth, Path(key): Path<String>) -> ApiResult<Json<WordingDto>> {
    let i = instrument(&state, &key)?;
    Ok(Json(wording_dto(&state, i).await?))
}

#[utoipa::path(post, path = "/api/instruments/{key}/wording", params(("key" = String, Path)), request_body = LoadWordingRequest,
    responses((status = 200, body = WordingDto), (status = 403, body = Problem, description = "medical director only"), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "the file does not fit the instrument: each problem named (item key, notice, language, ...)")),
    tag = "instruments")]
async fn load_wording(State(state): State<AppState>, Auth(p): Auth, Path(key): Path<String>, req: Request) -> ApiResult<Json<WordingDto>> {
    let i = instrument(&state, &key)?;
    let r: LoadWordingRequest = json(req, &state).await?;
    state.app.load_wording(&p, &i.key, &r.content, &r.reason).await?;
    Ok(Json(wording_dto(&state, i).await?))
}

#[utoipa::path(post, path = "/api/instruments/{key}/wording/withdraw", params(("key" = String, Path)), request_body = WithdrawWordingRequest,
    responses((status = 200, body = WordingDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    tag = "instruments")]
async fn withdraw_wording(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(key): Path<String>,
    req: Request,
) -> ApiResult<Json<WordingDto>> {
    let i = instrument(&state, &key)?;
    let r: WithdrawWordingRequest = json(req, &state).await?;
    state.app.withdraw_wording(&p, &i.key, &r.reason).await?;
    Ok(Json(wording_dto(&state, i).await?))
}
