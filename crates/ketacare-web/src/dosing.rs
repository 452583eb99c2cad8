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
        .route("/drug-library", get(library_page))
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
pub fn dose_fields(state: &AppState, values: &Fields, errors: &FieldErrors, with_weight: bool) -> Markup {
    let lib = &state.app.knowledge().drug_library;
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

async fn calculator_body(state: &AppState, p: &Principal, values: &Fields, errors: &FieldErrors, result: Option<&DoseResult>) -> Markup {
    let _ = p;
    html! {
        h1 { "Dose calculator" }
        p.muted { "Bedside tool: the drug library's concentrations and limits, nothing ordered. Every calculation is logged for the quality report. Orders for a patient are made from the patient's chart with the weight measured today." }
        div.grid {
            form.card #calculator method="post" action="/calculator" novalidate {
                (csrf(p))
                (error_summary(errors))
                (dose_fields(state, values, errors, true))
                button.primary type="submit" { "Calculate" }
            }
            div { @if let Some(r) = result { (result_markup(r)) } }
        }
    }
}

async fn calculator_page(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    state.app.authorize(&p, Permission::ReadPatients, "DoseCalculation").await.map_err(ui)?;
    let mut values = Fields::new();
    values.insert("route".into(), "iv".into());
    let b = calculator_body(&state, &p, &values, &FieldErrors::new(), None).await;
    Ok(layout(Some(&p), "Dose calculator", b).into_response())
}

async fn calculate(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.calculate_dose(&p, &dose_input(&form)).await {
        Ok(r) => {
            let status = if r.refused() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
            let b = calculator_body(&state, &p, &form, &FieldErrors::new(), Some(&r)).await;
            Ok((status, layout(Some(&p), "Dose calculator", b)).into_response())
        }
        Err(AppError::Validation(e)) => {
            let b = calculator_body(&state, &p, &form, &e, None).await;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Dose calculator", b)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn protocols_page(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    state.app.authorize(&p, Permission::ReadPatients, "Protocol").await.map_err(ui)?;
    let k = state.app.knowledge();
    let b = html! {
        h1 { "Protocols" }
        p.muted { "Published protocols from the versioned knowledge file, each step with its dose rule, timing, the rating scales due and the criteria to move on. " a href="/drug-library" { "Drug library and limits" } }
        @for pr in &k.protocols {
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
    };
    Ok(layout(Some(&p), "Protocols", b).into_response())
}

fn limit_cells(l: &Limits, unit: &str) -> Markup {
    let v =
        |x: &Option<ketacare_domain::dose::Sourced>| x.as_ref().map(|s| format!("{} {unit}", fa(s.value))).unwrap_or_else(|| "—".into());
    html! { td { (v(&l.hard.min)) } td { (v(&l.soft.min)) } td { (v(&l.soft.max)) } td { (v(&l.hard.max)) } }
}

async fn library_page(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    state.app.authorize(&p, Permission::ReadPatients, "DrugLibrary").await.map_err(ui)?;
    let lib = &state.app.knowledge().drug_library;
    let pol = &lib.policy;
    let b = html! {
        h1 { "Drug library: " (lib.drug) }
        p.muted { "Version " (lib.version) " · RxNorm " (lib.rxnorm.0) ". Hard limits cannot be passed by anyone; soft limits need a reason and a second clinician. Changes are made in the versioned knowledge file under review." }
        section.card {
            h2 { "On the shelf" }
            p { (pol.concentrations_mg_per_ml.iter().map(|c| format!("{} mg/mL", fa(*c))).collect::<Vec<_>>().join(", ")) }
            p.source { "Source: " (lib.concentrations_source) }
            p { "Syringe steps " (fa(pol.volume_step_ml)) " mL (volumes rounded down); pump steps " (fa(pol.rate_step_ml_per_h)) " mL/h; default weight basis " (lib.default_basis.code()) "; caution at BMI " (fa(pol.bmi_ideal_caution)) " or more." }
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
                @let sources: Vec<String> = [&l.mg_per_kg, &l.total_mg, &l.mg_per_kg_per_h, &l.minutes, &l.cumulative_7d_mg].iter().filter_map(|x| x.hard.max.as_ref().or(x.soft.max.as_ref()).map(|s| s.source.clone())).collect();
                ul.small { @for s in sources.iter().enumerate().filter(|(i, s)| !sources[..*i].contains(s)).map(|(_, s)| s) { li.source { (s) } } }
            }
        }
    };
    Ok(layout(Some(&p), "Drug library", b).into_response())
}

#[derive(serde::Deserialize)]
struct Period {
    from: Option<String>,
    to: Option<String>,
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
            thead { tr { th { "When (UTC)" } th { "User" } th { "Route" } th { "Dose" } th { "Outcome" } th { "Limits" } th { "Reason, second clinician" } } }
            tbody { @for e in evals.iter().rev().filter(|e| !e.breaches.is_empty() || e.outcome != ketacare_domain::dose::EvaluationOutcome::Accepted) {
                tr { td { (e.at.format("%Y-%m-%d %H:%M")) } td { (e.username) } td { (e.route.code()) } td { (fa(e.dose_mg)) " mg" } td { (e.outcome.code().replace('_', " ")) } td { (e.breaches.join("; ")) } td { (e.reason.clone().unwrap_or_default()) @if let Some(s) = &e.second_username { " (" (s) ")" } } }
            } }
        }
    };
    Ok(layout(Some(&p), "Dose quality", b).into_response())
}
