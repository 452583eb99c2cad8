//! Dosing pages: the stand-alone dose calculator (the bedside tool) with its calculation chain
//! and the drug library's limits, the protocol library, the drug library, and the quality
//! report of every evaluation.

use crate::extract::Auth;
use crate::forms::{f, Fields};
use crate::pages::{check_csrf, ui, PageResult};
use crate::views::*;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Form, Router};
use chrono::{Duration, NaiveDate};
use ketacare_app::{AppError, Principal};
use ketacare_domain::access::Permission;
use ketacare_domain::dose::{format_amount as fa, DoseInput, DoseResult, LimitLevel, Limits, QualityRow, Route};
use ketacare_domain::validation::FieldErrors;
use maud::{html, Markup};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/calculator", get(calculator_page).post(calculate))
        .route("/protocols", get(protocols_page))
        .route("/protocols/proposals", axum::routing::post(propose_protocol))
        .route("/protocols/proposals/{pid}", axum::routing::post(decide_protocol))
        .route("/drug-library", get(library_page))
        .route("/drug-library/proposals", axum::routing::post(propose))
        .route("/drug-library/proposals/{pid}", axum::routing::post(decide))
        .route("/dose-quality", get(quality_page))
}

/// The typed fields of a dose form.
pub fn dose_input(form: &Fields) -> DoseInput {
    DoseInput {
        route: f(form, "route"),
        weight_kg: f(form, "weight_kg"),
        mg_per_kg: f(form, "mg_per_kg"),
        dose_mg: f(form, "dose_mg"),
        concentration_mg_per_ml: f(form, "concentration_mg_per_ml"),
        final_volume_ml: f(form, "final_volume_ml"),
        minutes: f(form, "minutes"),
        height_cm: f(form, "height_cm"),
        sex: f(form, "sex"),
        weight_basis: f(form, "weight_basis"),
    }
}

fn opts(xs: &[(&str, &str)]) -> Vec<(String, String)> {
    xs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

/// The inputs of a dose (shared by the calculator and the patient's order form).
pub fn dose_fields(lib: &ketacare_knowledge::dosing::DrugLibrary, values: &Fields, errors: &FieldErrors, with_weight: bool) -> Markup {
    let routes: Vec<(String, String)> = Route::ALL.iter().map(|r| (r.code().to_owned(), r.label().to_owned())).collect();
    let mut concs: Vec<(String, String)> = vec![(String::new(), "Choose the vial on the shelf".into())];
    concs.extend(lib.policy.concentrations_mg_per_ml.iter().map(|c| (fa(*c), format!("{} mg/mL", fa(*c)))));
    html! {
        (select("route", "Route", &routes, values, errors))
        @if with_weight { (input("weight_kg", "Weight measured today (kg)", values, errors, "decimal", Some("Kilograms only"))) }
        (input("mg_per_kg", "Dose (mg/kg)", values, errors, "decimal", Some("IV, SC, IM")))
        (input("dose_mg", "Dose (mg), intranasal only", values, errors, "decimal", Some("Whole 28 mg devices: 28, 56 or 84")))
        (select("concentration_mg_per_ml", "Concentration of the vial", &concs, values, errors))
        (input("final_volume_ml", "Final volume after dilution (mL), IV only", values, errors, "decimal", None))
        (input("minutes", "Infusion time (min), IV only", values, errors, "decimal", None))
        @if with_weight {
            (input("height_cm", "Height (cm)", values, errors, "decimal", Some("For BMI, ideal and adjusted weight")))
            (select("sex", "Sex (for ideal weight)", &opts(&[("", "Not given"), ("female", "Female"), ("male", "Male")]), values, errors))
        }
        (select("weight_basis", "Weight basis", &opts(&[("", "Library default"), ("actual", "Actual body weight"), ("ideal", "Ideal body weight (Devine)"), ("adjusted", "Adjusted body weight (0.4)")]), values, errors))
    }
}

/// A calculated dose: the result, the limits met, and the chain of calculation.
pub fn result_markup(r: &DoseResult) -> Markup {
    let class = if r.refused() {
        "dose-result refused"
    } else if r.needs_override() {
        "dose-result soft"
    } else {
        "dose-result ok"
    };
    html! {
        section #dose-result class=(class) aria-live="polite" {
            @if r.refused() { p.verdict-label { strong { "Refused: a hard limit is breached. This dose cannot be given by anyone." } } }
            @else if r.needs_override() { p.verdict-label { strong { "Soft limit: an order needs a reason and a second clinician." } } }
            dl.dose {
                dt { "Dose" } dd.big #dose-mg { (fa(r.dose_mg)) " mg" }
                dt { "Per kg" } dd { (fa(r.dose_mg_per_kg)) " mg/kg of " (fa(r.weight_used_kg)) " kg (" (r.basis.code()) " weight)" }
                @if let (Some(v), Some(c)) = (r.drug_volume_ml, r.concentration_mg_per_ml) { dt { "Draw" } dd.big #draw { (fa(v)) " mL of " (fa(c)) " mg/mL" } }
                @if let (Some(dl), Some(fv), Some(fc)) = (r.diluent_ml, r.final_volume_ml, r.final_concentration_mg_per_ml) { dt { "Dilute" } dd { "add " (fa(dl)) " mL to make " (fa(fv)) " mL at " (fa(fc)) " mg/mL" } }
                @if let (Some(rm), Some(mg), Some(mk), Some(min)) = (r.rate_ml_per_h, r.rate_mg_per_h, r.rate_mg_per_kg_per_h, r.minutes) { dt { "Rate" } dd.big #rate { (fa(rm)) " mL/h" } dd { (fa(mg)) " mg/h · " (fa(mk)) " mg/kg/h · over " (fa(min)) " min" } }
                @if let Some(n) = r.devices { dt { "Devices" } dd { (n) " × 28 mg" } }
                @if let Some(b) = r.bmi { dt { "BMI" } dd { (fa(b)) } }
                @if let Some(i) = r.ibw_kg { dt { "Ideal / adjusted weight" } dd { (fa(i)) " kg / " (r.adjbw_kg.map(fa).unwrap_or_default()) " kg" } }
            }
            @if !r.breaches.is_empty() {
                ul.breaches {
                    @for b in &r.breaches {
                        li class=(if b.level == LimitLevel::Hard { "hard" } else { "soft" }) { strong { (if b.level == LimitLevel::Hard { "Hard limit: " } else { "Soft limit: " }) } (b.message) br; small.source { "Source: " (b.source) } }
                    }
                }
            }
            @for w in &r.warnings { p.alert.alert-warning { (w) } }
            details open {
                summary { "Calculation, step by step" }
                ol.steps { @for s in &r.steps { li { (s) } } }
            }
        }
    }
}

async fn calculator_body(
    state: &AppState,
    p: &Principal,
    values: &Fields,
    errors: &FieldErrors,
    result: Option<&DoseResult>,
    prediction: Option<Markup>,
) -> Markup {
    let library = state.app.drug_library_in_force().await;
    let lib = library.as_ref().unwrap_or(&state.app.knowledge().drug_library);
    html! {
        h1 { "Dose calculator" }
        p.muted { "Bedside tool: the drug library's concentrations and limits, nothing ordered. Every calculation is logged for the quality report. Orders for a patient are made from the patient's chart with the weight measured today." }
        div.grid {
            form.card #calculator method="post" action="/calculator" novalidate {
                (csrf(p))
                (error_summary(errors))
                (dose_fields(lib, values, errors, true))
                button.primary type="submit" { "Calculate" }
            }
            div {
                @if let Some(r) = result { (result_markup(r)) }
                @if let Some(m) = prediction { (m) }
            }
        }
    }
}

async fn calculator_page(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    state.app.authorize(&p, Permission::ReadPatients, "DoseCalculation").await.map_err(ui)?;
    let mut values = Fields::new();
    values.insert("route".into(), "iv".into());
    let b = calculator_body(&state, &p, &values, &FieldErrors::new(), None, None).await;
    Ok(layout(Some(&p), "Dose calculator", b).into_response())
}

async fn calculate(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.calculate_dose(&p, &dose_input(&form)).await {
        Ok(r) => {
            let status = if r.refused() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
            let prediction = if r.refused() { None } else { dose_prediction(&state, &form, &r) };
            let b = calculator_body(&state, &p, &form, &FieldErrors::new(), Some(&r), prediction).await;
            Ok((status, layout(Some(&p), "Dose calculator", b)).into_response())
        }
        Err(AppError::Validation(e)) => {
            let b = calculator_body(&state, &p, &form, &e, None, None).await;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Dose calculator", b)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

/// The planned dose's predicted curve: the calculated dose, route and minutes at the measured
/// body weight (the models take total body weight, whatever basis the dose was calculated on).
fn dose_prediction(state: &AppState, form: &Fields, r: &DoseResult) -> Option<Markup> {
    let weight = state.app.parse_dose(&dose_input(form)).map(|q| q.weight_kg).unwrap_or(r.weight_used_kg);
    match state.app.dose_exposure(r.route, r.dose_mg, r.minutes, weight) {
        Ok(s) => Some(crate::pk::dose_prediction(&s, r.route, r.dose_mg, r.minutes, weight)),
        Err(e) => {
            tracing::warn!(error = %e, "no predicted curve for a calculated dose");
            None
        }
    }
}

async fn protocols_page(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    let b = protocols_body(&state, &p, &Fields::new(), &FieldErrors::new()).await?;
    Ok(layout(Some(&p), "Protocols", b).into_response())
}

async fn propose_protocol(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let r = state.app.propose_protocol(&p, &f(&form, "content"), &f(&form, "reason")).await;
    ProposalPage::Protocols.after(&state, &p, &form, r.map(|_| ()), false).await
}

async fn decide_protocol(State(state): State<AppState>, Auth(p): Auth, Path(pid): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let r = state.app.decide_library_change(&p, &pid, f(&form, "decision") == "approve", &f(&form, "decision_reason")).await;
    ProposalPage::Protocols.after(&state, &p, &form, r.map(|_| ()), true).await
}

/// The two pages with two-person proposals: the drug library and the protocols.
#[derive(Clone, Copy)]
enum ProposalPage {
    Library,
    Protocols,
}

impl ProposalPage {
    async fn body(self, state: &AppState, p: &Principal, values: &Fields, errors: &FieldErrors) -> Result<Markup, crate::error::WebError> {
        match self {
            ProposalPage::Library => library_body(state, p, values, errors).await,
            ProposalPage::Protocols => protocols_body(state, p, values, errors).await,
        }
    }

    /// After a proposal or a decision: back to the list, or the page again with the problems
    /// (a decision's problems are shown above the list, a proposal's on its form).
    async fn after(self, state: &AppState, p: &Principal, form: &Fields, r: Result<(), AppError>, decision: bool) -> PageResult {
        let (path, title) = match self {
            ProposalPage::Library => ("/drug-library#proposals", "Drug library"),
            ProposalPage::Protocols => ("/protocols#proposals", "Protocols"),
        };
        match r {
            Ok(()) => Ok(Redirect::to(path).into_response()),
            Err(AppError::Validation(e)) => {
                let mut shown = FieldErrors::new();
                for x in e.iter() {
                    shown.add(&if decision { format!("decision_{}", x.field) } else { x.field.clone() }, x.message.clone());
                }
                let b = self.body(state, p, form, &shown).await?;
                Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(p), title, b)).into_response())
            }
            Err(e) => Err(ui(e)),
        }
    }
}

async fn protocols_body(state: &AppState, p: &Principal, values: &Fields, errors: &FieldErrors) -> Result<Markup, crate::error::WebError> {
    state.app.authorize(p, Permission::ReadPatients, "Protocol").await.map_err(ui)?;
    let protocols = state.app.protocols_in_force().await.map_err(ui)?;
    let proposals = state.app.protocol_proposals(p).await.map_err(ui)?;
    let decision_errors: Vec<String> = errors.iter().filter(|e| e.field.starts_with("decision_")).map(|e| e.message.clone()).collect();
    let b = html! {
        h1 { "Protocols" }
        p.muted { "Published protocols from the versioned knowledge file, and the clinic's own once the medical director has approved them; each step with its dose rule, timing, the rating scales due and the criteria to move on. " a href="/drug-library" { "Drug library and limits" } }
        @for pr in &protocols {
            section.card.protocol id=(format!("protocol-{}", pr.key)) {
                h2 { (pr.name) " " small.muted { (pr.route.label()) } }
                p { (pr.indication) }
                table.list {
                    thead { tr { th { "Step" } th { "Dose" } th { "When" } th { "Rating scales due" } th { "To move on" } } }
                    tbody { @for s in &pr.steps { tr { td { (s.label) } td { (s.dose_rule()) } td { (s.timing()) } td { (s.assessments.join(", ")) } td { (s.move_on) } } } }
                }
                p.source { "Source: " (pr.source) }
            }
        }
        section.card #proposals {
            h2 { "The clinic's protocols" }
            @if !decision_errors.is_empty() { div.alert.alert-error role="alert" { @for m in &decision_errors { p { (m) } } } }
            @if proposals.is_empty() { p.muted { "None proposed." } }
            @else {
                table.list {
                    thead { tr { th { "Proposed" } th { "Protocol" } th { "Why" } th { "Medical director" } } }
                    tbody {
                        @for pr in &proposals {
                            tr {
                                td { (crate::views::minute(pr.proposed_at)) " by " (pr.proposed_by_name) }
                                td { code { (pr.key.trim_start_matches("protocols.")) } details { summary { "Text" } pre { (pr.value.as_deref().unwrap_or("")) } } }
                                td { (pr.reason) }
                                td { (decision_cell(p, pr, "/protocols/proposals", p.can(Permission::ManagePolicy), "awaiting the medical director")) }
                            }
                        }
                    }
                }
            }
            @if p.can(Permission::Prescribe) {
                form.card #propose-protocol method="post" action="/protocols/proposals" novalidate {
                    h3 { "Propose a protocol" }
                    p.small { "One [[protocol]] table in the format of knowledge/protocols.toml (key, name, route, indication, source, steps). A protocol with the key of a published one replaces it once approved." }
                    (csrf(p))
                    (error_summary(&{ let mut e2 = FieldErrors::new(); for x in errors.iter().filter(|x| !x.field.starts_with("decision_")) { e2.add(&x.field, x.message.clone()); } e2 }))
                    (textarea("content", "Protocol (TOML)", values, errors))
                    (textarea("reason", "Why", values, errors))
                    button type="submit" { "Propose" }
                }
            }
        }
    };
    Ok(b)
}

fn limit_cells(l: &Limits, unit: &str) -> Markup {
    let v =
        |x: &Option<ketacare_domain::dose::Sourced>| x.as_ref().map(|s| format!("{} {unit}", fa(s.value))).unwrap_or_else(|| "—".into());
    html! { td { (v(&l.hard.min)) } td { (v(&l.soft.min)) } td { (v(&l.soft.max)) } td { (v(&l.hard.max)) } }
}

async fn library_page(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    let b = library_body(&state, &p, &Fields::new(), &FieldErrors::new()).await?;
    Ok(layout(Some(&p), "Drug library", b).into_response())
}

async fn propose(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let r = state.app.propose_library_change(&p, &f(&form, "key"), &f(&form, "value"), &f(&form, "reason")).await;
    ProposalPage::Library.after(&state, &p, &form, r.map(|_| ()), false).await
}

async fn decide(State(state): State<AppState>, Auth(p): Auth, Path(pid): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let r = state.app.decide_library_change(&p, &pid, f(&form, "decision") == "approve", &f(&form, "decision_reason")).await;
    ProposalPage::Library.after(&state, &p, &form, r.map(|_| ()), true).await
}

async fn library_body(state: &AppState, p: &Principal, values: &Fields, errors: &FieldErrors) -> Result<Markup, crate::error::WebError> {
    state.app.authorize(p, Permission::ReadPatients, "DrugLibrary").await.map_err(ui)?;
    let lib = &state.app.drug_library_in_force().await.map_err(ui)?;
    let proposals = state.app.library_proposals(p).await.map_err(ui)?;
    let pol = &lib.policy;
    let mut keys: Vec<(String, String)> = vec![("concentrations".into(), "Concentrations on the shelf (mg/mL, comma-separated)".into())];
    for r in [Route::Iv, Route::Sc, Route::Im, Route::In] {
        for fld in ketacare_app::LIBRARY_FIELDS {
            keys.push((format!("{}.{fld}", r.code()), format!("{}: {}", r.code().to_uppercase(), fld.replace('_', " "))));
        }
    }
    let decision_errors: Vec<String> = errors.iter().filter(|e| e.field.starts_with("decision_")).map(|e| e.message.clone()).collect();
    let b = html! {
        h1 { "Drug library: " (lib.drug) }
        p.muted { "Version " (lib.version) " · RxNorm " (lib.rxnorm.0) ". Hard limits cannot be passed by anyone; soft limits need a reason and a second clinician. A change needs two people: the medical director proposes it with a reason, another prescriber or director approves it." }
        section.card {
            h2 { "On the shelf" }
            p { (pol.concentrations_mg_per_ml.iter().map(|c| format!("{} mg/mL", fa(*c))).collect::<Vec<_>>().join(", ")) }
            p.source { "Source: " (lib.concentrations_source) }
            p { "Syringe steps " (fa(pol.volume_step_ml)) " mL (volumes rounded down); pump steps " (fa(pol.rate_step_ml_per_h)) " mL/h; weight basis when none is chosen: " (lib.default_basis.code()) ", and " (lib.obese_basis.code()) " at BMI " (fa(pol.bmi_ideal_caution)) " or more (with a caution when actual)." }
        }
        @for (route, l) in &lib.routes {
            section.card id=(format!("route-{}", route.code())) {
                h2 { (route.label()) }
                table.list {
                    thead { tr { th { "Quantity" } th { "Hard min" } th { "Soft min" } th { "Soft max" } th { "Hard max" } } }
                    tbody {
                        @if *route != Route::In { tr { td { "Dose" } (limit_cells(&l.mg_per_kg, "mg/kg")) } }
                        tr { td { "Total per dose" } (limit_cells(&l.total_mg, "mg")) }
                        @if route.infused() {
                            tr { td { "Rate" } (limit_cells(&l.mg_per_kg_per_h, "mg/kg/h")) }
                            tr { td { "Infusion time" } (limit_cells(&l.minutes, "min")) }
                        }
                        tr { td { "Cumulative, 7 days" } (limit_cells(&l.cumulative_7d_mg, "mg")) }
                        tr { td { "Cumulative, 28 days" } (limit_cells(&l.cumulative_28d_mg, "mg")) }
                    }
                }
                @let sources: Vec<String> = [&l.mg_per_kg, &l.total_mg, &l.mg_per_kg_per_h, &l.minutes, &l.cumulative_7d_mg, &l.cumulative_28d_mg].iter().flat_map(|x| [&x.soft.min, &x.soft.max, &x.hard.min, &x.hard.max]).filter_map(|b| b.as_ref().map(|s| s.source.clone())).collect();
                ul.small { @for s in sources.iter().enumerate().filter(|(i, s)| !sources[..*i].contains(s)).map(|(_, s)| s) { li.source { (s) } } }
            }
        }
        section.card #proposals {
            h2 { "Changes" }
            @if !decision_errors.is_empty() { div.alert.alert-error role="alert" { @for m in &decision_errors { p { (m) } } } }
            @if proposals.is_empty() { p.muted { "No changes proposed: the library is the knowledge-file default." } }
            @else {
                table.list {
                    thead { tr { th { "Proposed" } th { "Change" } th { "Why" } th { "Decision" } } }
                    tbody {
                        @for pr in &proposals {
                            tr data-proposal=(pr.id) {
                                td { (crate::views::minute(pr.proposed_at)) " by " (pr.proposed_by_name) }
                                td { code { (pr.key.trim_start_matches("drug_library.")) } " → " strong { (pr.value.as_deref().unwrap_or("default")) } }
                                td { (pr.reason) }
                                td { (decision_cell(p, pr, "/drug-library/proposals", p.can(Permission::Prescribe), "awaiting a second person")) }
                            }
                        }
                    }
                }
            }
            @if p.can(Permission::ManagePolicy) {
                form.card #propose method="post" action="/drug-library/proposals" novalidate {
                    h3 { "Propose a change" }
                    (csrf(p))
                    (error_summary(&{ let mut e2 = FieldErrors::new(); for x in errors.iter().filter(|x| !x.field.starts_with("decision_")) { e2.add(&x.field, x.message.clone()); } e2 }))
                    (select("key", "Value", &keys, values, errors))
                    (input("value", "New value (empty = back to the default)", values, errors, "text", None))
                    (textarea("reason", "Why", values, errors))
                    button type="submit" { "Propose" }
                }
            }
        }
    };
    Ok(b)
}

#[derive(serde::Deserialize)]
struct Period {
    from: Option<String>,
    to: Option<String>,
}

/// Which limit a logged breach was, without the amount: "soft limit: Dose 0.8 mg/kg is above
/// the soft maximum …" → "soft limit: dose above the soft maximum".
fn limit_kind(b: &str) -> String {
    let (level, what) = b.split_once(": ").unwrap_or(("", b));
    // The subject is the words before the first number ("Dose", "Total dose", "Rate" …).
    let subject = what
        .split_whitespace()
        .take_while(|w| !w.starts_with(|c: char| c.is_ascii_digit()) && *w != "is")
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let side = ["above the hard maximum", "below the hard minimum", "above the soft maximum", "below the soft minimum"]
        .into_iter()
        .find(|s| what.contains(s))
        .unwrap_or("");
    format!("{level}: {subject} {side}").trim().to_owned()
}

/// The distinct kinds of limit a logged calculation met, in order.
fn breach_kinds(breaches: &[String]) -> String {
    let mut kinds: Vec<String> = Vec::new();
    for k in breaches.iter().map(|b| limit_kind(b)) {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    kinds.join("; ")
}

fn quality_row(r: &QualityRow) -> Markup {
    html! { tr { td { (r.key) } td { (r.total) } td { (r.accepted) } td { (r.soft) } td { (r.overridden) } td { (r.rejected) } td { (r.mismatches) } td { (r.override_rate_percent().map(|x| format!("{} %", fa(x))).unwrap_or_else(|| "—".into())) } } }
}

async fn quality_page(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<Period>) -> PageResult {
    let today = state.app.clock().now().date_naive();
    let parse = |s: &Option<String>, d: NaiveDate| s.as_deref().and_then(|x| NaiveDate::parse_from_str(x, "%Y-%m-%d").ok()).unwrap_or(d);
    let from = parse(&q.from, today - Duration::days(30));
    let to = parse(&q.to, today);
    let (report, evals) = state
        .app
        .dose_quality(
            &p,
            from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
            (to + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
        )
        .await
        .map_err(ui)?;
    let head = html! { thead { tr { th { "" } th { "Evaluations" } th { "Accepted" } th { "Soft breach" } th { "Overridden" } th { "Refused (hard)" } th { "Check mismatch" } th { "Override rate" } } } };
    let b = html! {
        h1 { "Dose quality report" }
        form.filters method="get" action="/dose-quality" {
            div.field { label for="f-from" { "From" } input #f-from type="date" name="from" value=(from.format("%Y-%m-%d")); }
            div.field { label for="f-to" { "To" } input #f-to type="date" name="to" value=(to.format("%Y-%m-%d")); }
            button type="submit" { "Show" }
        }
        table.list #quality-all { (head) tbody { (quality_row(&report.all)) } }
        h2 { "By drug and route" }
        table.list #quality-route { (head) tbody { @for r in &report.by_route { (quality_row(r)) } } }
        h2 { "By user" }
        table.list #quality-user { (head) tbody { @for r in &report.by_user { (quality_row(r)) } } }
        h2 { "Soft breaches, overrides and refusals" }
        table.list #quality-events {
            thead { tr { th { "When (UTC)" } th { "User" } th { "Route" } th { "Outcome" } th { "Limits" } th { "Reason, second clinician" } } }
            tbody { @for e in evals.iter().rev().filter(|e| !e.breaches.is_empty() || e.outcome != ketacare_domain::dose::EvaluationOutcome::Accepted) {
                // Doses are not shown: an order may still wait for its blind double check.
                tr { td { (crate::views::minute(e.at)) } td { (e.username) } td { (e.route.code()) } td { (e.outcome.code().replace('_', " ")) } td { (breach_kinds(&e.breaches)) } td { (e.reason.clone().unwrap_or_default()) @if let Some(s) = &e.second_username { " (" (s) ")" } } }
            } }
        }
    };
    Ok(layout(Some(&p), "Dose quality", b).into_response())
}

// ---------------------------------------------------------------- a patient's dosing

use axum::extract::Path;
use axum::response::Redirect;
use ketacare_app::{CheckInput, DosingView, OrderInput};
use ketacare_domain::order::{DoseOrderRecord, OrderStatus, TreatmentPlanRecord};
use ketacare_domain::record::RecordVersion;

pub fn patient_routes() -> Router<AppState> {
    use axum::routing::post;
    Router::new()
        .route("/patients/{id}/dosing", get(dosing_page))
        .route("/patients/{id}/plans", post(create_plan))
        .route("/patients/{id}/orders", post(create_order))
        .route("/orders/{rid}/approve-override", post(approve_override))
        .route("/orders/{rid}/double-check", post(double_check))
        .route("/patients/{id}/titration", post(decide_titration))
}

/// Whether `p` may see an order's calculated values: always once checked; before the check
/// only the prescriber who ordered it (the checker works blind).
pub fn order_visible(p: &Principal, first: &RecordVersion, o: &DoseOrderRecord) -> bool {
    o.status == OrderStatus::Checked
        || first.provenance.user_id == p.user.id
        || (o.status == OrderStatus::AwaitingOverride && p.can(Permission::Prescribe))
}

fn calendar(plan: &TreatmentPlanRecord, id: &str, plan_id: &str, can_order: bool, today: NaiveDate) -> Markup {
    use chrono::Datelike;
    let Some(first) = plan.sessions.first().map(|s| s.date) else { return html! {} };
    let last = plan.sessions.last().map(|s| s.date).unwrap_or(first);
    let monday = first - Duration::days(i64::from(first.weekday().num_days_from_monday()));
    let weeks = ((last - monday).num_days() / 7 + 1).clamp(1, 30);
    html! {
        table.calendar {
            caption { (plan.protocol_name) ": planned sessions by week" }
            thead { tr { th { "Week of" } @for d in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] { th { (d) } } } }
            tbody {
                @for w in 0..weeks {
                    @let start = monday + Duration::days(w * 7);
                    tr {
                        th { (start.format("%d %b")) }
                        @for d in 0..7 {
                            @let day = start + Duration::days(d);
                            td class=(if day == today { "today" } else { "" }) {
                                @for s in plan.sessions.iter().filter(|s| s.date == day) {
                                    div.session {
                                        strong { (s.label) } br;
                                        (match (s.mg_per_kg, s.fixed_mg) { (Some(m), _) => format!("{} mg/kg", fa(m)), (None, Some(f)) => format!("{} mg", fa(f)), _ => String::new() })
                                        @if can_order && day == today {
                                            br; a href=(format!("/patients/{id}/dosing?plan={plan_id}&step={}&mg_per_kg={}&dose_mg={}&minutes={}#order", s.step, s.mg_per_kg.map(fa).unwrap_or_default(), s.fixed_mg.map(fa).unwrap_or_default(), s.minutes.map(|m| m.to_string()).unwrap_or_default())) { "Order this dose" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn order_markup(
    p: &Principal,
    id: &str,
    v: &RecordVersion,
    first: &RecordVersion,
    o: &DoseOrderRecord,
    values: &Fields,
    errors: &FieldErrors,
) -> Markup {
    let visible = order_visible(p, first, o);
    let rid = v.record_id.to_string();
    html! {
        article.card.order id=(format!("order-{rid}")) data-status=(o.status.code()) {
            h3 { (o.route.label()) @if let Some(s) = &o.step { " · " (s) } " " span.badge { (o.status.label()) } }
            p.small { "Ordered by " (first.provenance.username) " on " (crate::views::minute(first.provenance.recorded_at)) " UTC · weight " (fa(o.weight_kg)) " kg measured " (crate::views::minute(o.weight_measured_at)) " by " (o.weight_measured_by) }
            @if visible {
                dl.dose {
                    dt { "Dose" } dd.big { (fa(o.dose_mg)) " mg" @if let Some(m) = o.mg_per_kg { " (" (fa(m)) " mg/kg of " (fa(o.weight_used_kg)) " kg, " (o.basis.code()) ")" } }
                    @if let (Some(vol), Some(c)) = (o.drug_volume_ml, o.concentration_mg_per_ml) { dt { "Draw" } dd { (fa(vol)) " mL of " (fa(c)) " mg/mL" } }
                    @if let Some(r) = o.rate_ml_per_h { dt { "Rate" } dd { (fa(r)) " mL/h" @if let Some(m) = o.minutes { " over " (fa(m)) " min" } } }
                }
                @if !o.steps.is_empty() { details { summary { "Calculation" } ol.steps { @for s in &o.steps { li { (s) } } } } }
            } @else {
                p.blind { "The calculated dose is hidden until the independent double check: work it out yourself from the weight record and the vial in your hand." }
            }
            @if visible {
                @if !o.breaches.is_empty() { ul.breaches { @for b in &o.breaches { li.soft { (b) } } } }
                @if let Some(r) = &o.override_reason { p { "Override reason: " (r) @if let Some(a) = &o.override_approved_by { " · approved by " strong { (a) } } } }
            } @else if let Some(a) = &o.override_approved_by { p { "A soft limit was passed with a reason; the override was approved by " strong { (a) } "." } }
            @if let Some(c) = &o.check { p { "Double-checked by " strong { (c.by) } " on " (crate::views::minute(c.at)) " UTC: " (fa(c.weight_kg)) " kg, " (c.concentration_mg_per_ml.map(|x| format!("{} mg/mL, ", fa(x))).unwrap_or_default()) (fa(c.dose_mg)) " mg." } }
            @if o.status == OrderStatus::AwaitingOverride && p.can(Permission::Prescribe) {
                form method="post" action=(format!("/orders/{rid}/approve-override")) {
                    (csrf(p))
                    input type="hidden" name="base_version" value=(v.version);
                    input type="hidden" name="patient" value=(id);
                    button type="submit" { "Approve the override as second clinician" }
                }
            }
            @if o.status != OrderStatus::AwaitingCheck {
                // A check that just failed blocks the order: its form is gone, so say why here.
                @let prefix = format!("{rid}_");
                @let failed: Vec<String> = errors.iter().filter(|e| e.field.starts_with(&prefix)).map(|e| format!("{}: {}", check_field_label(&e.field[prefix.len()..]), e.message)).collect();
                @if !failed.is_empty() { div.alert.alert-error role="alert" { @for m in &failed { p { (m) } } } }
            }
            @if o.status == OrderStatus::AwaitingCheck && p.can(Permission::WriteClinical) {
                @let f = |n: &str| format!("{rid}_{n}");
                form.check method="post" action=(format!("/orders/{rid}/double-check")) novalidate {
                    h4 { "Independent double check" }
                    (csrf(p))
                    input type="hidden" name="base_version" value=(v.version);
                    input type="hidden" name="patient" value=(id);
                    (input(&f("weight_kg"), "Weight from today's record (kg)", values, errors, "decimal", None))
                    @if o.route != Route::In { (input(&f("concentration_mg_per_ml"), "Concentration on the vial in your hand (mg/mL)", values, errors, "decimal", None)) }
                    (input(&f("dose_mg"), "Dose you calculated (mg)", values, errors, "decimal", None))
                    button.primary type="submit" { "Check" }
                }
            }
        }
    }
}

/// A proposal's decision, or the form to decide it for someone who may.
fn decision_cell(p: &Principal, pr: &ketacare_db::PolicyProposal, base: &str, may_decide: bool, waiting: &str) -> Markup {
    html! {
        @match &pr.decision {
            Some(d) => { (if d.approved { "approved" } else { "rejected" }) " by " (d.by_name) " on " (crate::views::minute(d.at)) @if let Some(r) = &d.reason { ": " (r) } },
            None => {
                @if may_decide {
                    form method="post" action=(format!("{base}/{}", pr.id)) {
                        (csrf(p))
                        label for=(format!("r-{}", pr.id)) { "Reason (required to reject)" }
                        input id=(format!("r-{}", pr.id)) name="decision_reason" type="text";
                        div.actions {
                            button.primary type="submit" name="decision" value="approve" { "Approve" }
                            button type="submit" name="decision" value="reject" { "Reject" }
                        }
                    }
                } @else { (waiting) }
            }
        }
    }
}

fn check_field_label(field: &str) -> &'static str {
    match field {
        "weight_kg" => "Weight",
        "concentration_mg_per_ml" => "Concentration",
        "dose_mg" => "Dose",
        _ => "Double check",
    }
}

#[derive(serde::Deserialize, Default)]
struct OrderQuery {
    plan: Option<String>,
    step: Option<String>,
    mg_per_kg: Option<String>,
    dose_mg: Option<String>,
    minutes: Option<String>,
}

async fn dosing_body(
    state: &AppState,
    p: &Principal,
    id: &str,
    values: &Fields,
    errors: &FieldErrors,
) -> Result<Markup, crate::error::WebError> {
    let patient = crate::pages::pid(id)?;
    let pv = state.app.patient(p, patient).await.map_err(ui)?;
    let v: DosingView = state.app.dosing(p, patient).await.map_err(ui)?;
    let today = state.app.clock().now().date_naive();
    let can = p.can(Permission::Prescribe);
    let histories = {
        let mut out = Vec::new();
        for (ov, _) in &v.orders {
            let h = state.app.record_history(p, ov.record_id).await.map_err(ui)?;
            out.push(h.first().cloned().unwrap_or_else(|| ov.clone()));
        }
        out
    };
    let protocols: Vec<(String, String)> =
        state.app.protocols_in_force().await.map_err(ui)?.iter().map(|x| (x.key.clone(), x.name.clone())).collect();
    let titration = state.app.titration(p, patient).await.map_err(ui)?;
    let library = state.app.drug_library_in_force().await.map_err(ui)?;
    Ok(html! {
        p { a href=(format!("/patients/{id}")) { "← Chart" } " · " a href=(format!("/patients/{id}/screening")) { "Screening" } " · " a href=(format!("/simulate?patient={id}")) { "Compare regimens in the simulator" } }
        h1 { "Dosing" }
        p.muted { (pv.demographics.name.display()) " · MRN " (pv.demographics.mrn.as_str()) }
        @if !v.blocking.is_empty() { div.alert.alert-error role="alert" { strong { "No dose while an absolute contraindication stands: " } (v.blocking.join("; ")) } }
        section.card #weight {
            h2 { "Weight for today's dose" }
            @match &v.latest_weight {
                None => p.error { "No weight recorded. " a href=(format!("/patients/{id}/measurements?type=weight")) { "Weigh the patient (kg)" } },
                Some(w) => p class=(if v.weight_current { "ok" } else { "error" }) {
                    (w.value.to_string()) " measured " (crate::views::minute(w.effective)) " UTC by " (w.version.provenance.username)
                    @if v.weight_current { " · measured today" } @else { " · not today: " a href=(format!("/patients/{id}/measurements?type=weight")) { "weigh the patient before a dose" } }
                },
            }
            p.small { "Given (double-checked): " (fa(v.given_7d_mg)) " mg in 7 days, " (fa(v.given_28d_mg)) " mg in 28 days. The cumulative limits also count orders still pending." }
        }
        section.card #plans {
            h2 { "Treatment plans" }
            @if v.plans.is_empty() { p.muted { "No plan yet." } }
            @for (pv2, plan) in &v.plans {
                div.plan id=(format!("plan-{}", pv2.record_id)) {
                    p { strong { (plan.summary()) } " · planned by " (pv2.provenance.username) @if let Some(n) = &plan.note { " · " (n) } }
                    (calendar(plan, id, &pv2.record_id.to_string(), can, today))
                }
            }
            @if can {
                form.card #plan-form method="post" action=(format!("/patients/{id}/plans")) novalidate {
                    h3 { "Plan a protocol" }
                    (csrf(p))
                    (select("protocol", "Protocol", &protocols, values, errors))
                    (input("start", "First session", values, errors, "date", None))
                    (input("variant", "Variant (for maintenance: weekly or twice_weekly)", values, errors, "text", None))
                    (textarea("note", "Note", values, errors))
                    button type="submit" { "Plan" }
                }
            }
        }
        @if can {
            form.card #order method="post" action=(format!("/patients/{id}/orders")) novalidate {
                h2 { "Order a dose" }
                p.small { "The weight, height and sex come from the chart; the weight must be measured today." }
                (csrf(p))
                input type="hidden" name="plan" value=(f(values, "plan"));
                input type="hidden" name="step" value=(f(values, "step"));
                (error_summary(&{ let mut e2 = FieldErrors::new(); for x in errors.iter().filter(|x| ["weight_kg", "plan", "step"].contains(&x.field.as_str())) { e2.add(&x.field, x.message.clone()); } e2 }))
                (dose_fields(&library, values, errors, false))
                (textarea("override_reason", "Reason to pass a soft limit (then a second clinician approves)", values, errors))
                button.primary type="submit" { "Calculate and order" }
            }
        }
        @if let Some(t) = &titration {
            section.card #titration {
                h2 { "Titration review" }
                p.verdict-label { "Recommendation: " strong { (t.recommendation.action.label()) }
                    @if let Some(m) = t.recommendation.next_mg_per_kg { " · next dose " (fa(m)) " mg/kg" }
                    @if let Some(i) = t.recommendation.interval_days { " · every " (i) " days" } }
                p { (t.recommendation.rule) }
                @if !t.recommendation.data.is_empty() { ul.small { @for d in &t.recommendation.data { li { (d) } } } }
                p.source { "Source: " (t.recommendation.source) }
                @if let Some(n) = &t.plan.1.note { p.small { "Last decision: " (n) } }
                @if can {
                    form #titration-form method="post" action=(format!("/patients/{id}/titration")) novalidate {
                        (csrf(p))
                        input type="hidden" name="base_version" value=(t.plan.0.version);
                        (textarea("reason", "Reason (required when you choose otherwise)", values, errors))
                        div.actions {
                            button.primary type="submit" name="decision" value="accept" { "Accept the recommendation" }
                            button type="submit" name="decision" value="other" { "Choose otherwise" }
                        }
                    }
                }
            }
        }
        @if let Some(t) = &titration { (crate::pk::exposure_response(t, id)) }
        section #orders {
            h2 { "Dose orders" }
            (error_summary(&{ let mut e2 = FieldErrors::new(); for x in errors.iter().filter(|x| ["approver", "checker"].contains(&x.field.as_str()) || x.field.ends_with("_checker")) { e2.add(&x.field, x.message.clone()); } e2 }))
            @if v.orders.is_empty() { p.muted { "No orders yet." } }
            @for ((ov, o), first) in v.orders.iter().zip(&histories) { (order_markup(p, id, ov, first, o, values, errors)) }
        }
    })
}

async fn dosing_page(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Query(q): Query<OrderQuery>) -> PageResult {
    let mut values = Fields::new();
    for (k, v) in [("plan", q.plan), ("step", q.step), ("mg_per_kg", q.mg_per_kg), ("dose_mg", q.dose_mg), ("minutes", q.minutes)] {
        if let Some(v) = v {
            values.insert(k.into(), v);
        }
    }
    if let Some(plan) = values.get("plan").cloned() {
        if let Ok(view) = state.app.dosing(&p, crate::pages::pid(&id)?).await {
            if let Some((_, pl)) = view.plans.iter().find(|(v, _)| v.record_id.to_string() == plan) {
                values.insert("route".into(), pl.route.code().into());
                if pl.route.infused() {
                    values.insert("final_volume_ml".into(), "100".into());
                }
            }
        }
    }
    values.insert("start".into(), state.app.clock().now().date_naive().to_string());
    let b = dosing_body(&state, &p, &id, &values, &FieldErrors::new()).await?;
    Ok(layout(Some(&p), "Dosing", b).into_response())
}

async fn rerender(state: &AppState, p: &Principal, id: &str, form: &Fields, e: &FieldErrors) -> PageResult {
    let b = dosing_body(state, p, id, form, e).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(p), "Dosing", b)).into_response())
}

async fn create_plan(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state
        .app
        .plan_protocol(&p, crate::pages::pid(&id)?, &f(&form, "protocol"), &f(&form, "start"), &f(&form, "variant"), &f(&form, "note"))
        .await
    {
        Ok(v) => Ok(Redirect::to(&format!("/patients/{id}/dosing#plan-{}", v.record_id)).into_response()),
        Err(AppError::Validation(e)) => rerender(&state, &p, &id, &form, &e).await,
        Err(e) => Err(ui(e)),
    }
}

async fn create_order(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let input = OrderInput {
        dose: dose_input(&form),
        plan: f(&form, "plan"),
        step: f(&form, "step"),
        override_reason: f(&form, "override_reason"),
    };
    match state.app.order_dose(&p, crate::pages::pid(&id)?, &input).await {
        Ok(v) => Ok(Redirect::to(&format!("/patients/{id}/dosing#order-{}", v.record_id)).into_response()),
        Err(AppError::Validation(e)) => rerender(&state, &p, &id, &form, &e).await,
        Err(e) => Err(ui(e)),
    }
}

fn rid(s: &str) -> Result<ketacare_domain::ids::RecordId, crate::error::WebError> {
    ketacare_domain::ids::RecordId::parse(s).map_err(|_| ui(AppError::NotFound))
}

async fn approve_override(State(state): State<AppState>, Auth(p): Auth, Path(r): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let id = f(&form, "patient");
    match state.app.approve_override(&p, rid(&r)?, f(&form, "base_version").parse().unwrap_or(0)).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/dosing#order-{r}")).into_response()),
        Err(AppError::Validation(e)) => rerender(&state, &p, &id, &Fields::new(), &e).await,
        Err(e) => Err(ui(e)),
    }
}

async fn double_check(State(state): State<AppState>, Auth(p): Auth, Path(r): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let id = f(&form, "patient");
    let g = |n: &str| f(&form, &format!("{r}_{n}"));
    let input = CheckInput { weight_kg: g("weight_kg"), concentration_mg_per_ml: g("concentration_mg_per_ml"), dose_mg: g("dose_mg") };
    match state.app.double_check(&p, rid(&r)?, f(&form, "base_version").parse().unwrap_or(0), &input).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/dosing#order-{r}")).into_response()),
        Err(AppError::Validation(e)) => {
            let mut shown = FieldErrors::new();
            for x in e.iter() {
                shown.add(&format!("{r}_{}", x.field), x.message.clone());
            }
            rerender(&state, &p, &id, &form, &shown).await
        }
        Err(e) => Err(ui(e)),
    }
}

async fn decide_titration(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let accept = f(&form, "decision") == "accept";
    match state
        .app
        .decide_titration(&p, crate::pages::pid(&id)?, f(&form, "base_version").parse().unwrap_or(0), accept, &f(&form, "reason"))
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/dosing#titration")).into_response()),
        Err(AppError::Validation(e)) => rerender(&state, &p, &id, &form, &e).await,
        Err(e) => Err(ui(e)),
    }
}
