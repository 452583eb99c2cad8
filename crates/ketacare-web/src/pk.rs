//! Predicted ketamine concentrations in the staff UI: the regimen comparison page (`/simulate`),
//! the planned dose's curve under the dose calculator, and predicted exposure against response
//! and dissociation in a patient's titration review.
//!
//! The comparison form is a GET form, so the address of a comparison can be shared. Every curve
//! comes with its warnings, the model's provenance and the context concentration bands, which are
//! context from the literature and never targets.

use crate::extract::Auth;
use crate::forms::{f, Fields};
use crate::pages::{ui, PageResult};
use crate::svg_chart::{self, auc, conc, minutes, number, Background, Curve, LineChart, Point, Scatter};
use crate::views::{input, layout, select};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use ketacare_app::{AppError, Principal, TitrationView};
use ketacare_domain::access::Permission;
use ketacare_domain::dose::Route;
use ketacare_domain::pk::model::{Analyte, Evidence};
use ketacare_domain::pk::regimen::{DoseEvent, PkRoute};
use ketacare_domain::pk::{EventInput, Grid, PkKnowledge, Request, Simulation};
use ketacare_domain::validation::FieldErrors;
use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

pub fn routes() -> Router<AppState> {
    Router::new().route("/simulate", get(simulate_page))
}

/// Regimen rows on the form.
const ROWS: usize = 4;
/// Longest chart window, min (one week).
const MAX_WINDOW_MIN: f64 = 10_080.0;
/// Most doses in one row.
const MAX_COUNT: f64 = 50.0;
/// Longest regimen label.
const MAX_LABEL: usize = 60;
/// The sentence under every chart about the shaded horizontal bands.
const BANDS_NOTE: &str = "The grey horizontal bands are concentration ranges reported in the literature, shown as context only: they are NOT targets. No plasma or effect-site target for anxiolysis or for the antidepressant effect is known.";

/// How a regimen row is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowRoute {
    IvInfusion,
    IvBolus,
    Sc,
    Im,
    In,
    Po,
}

impl RowRoute {
    const ALL: [RowRoute; 6] = [RowRoute::IvInfusion, RowRoute::IvBolus, RowRoute::Sc, RowRoute::Im, RowRoute::In, RowRoute::Po];

    fn code(self) -> &'static str {
        match self {
            RowRoute::IvInfusion => "iv_infusion",
            RowRoute::IvBolus => "iv_bolus",
            RowRoute::Sc => "sc",
            RowRoute::Im => "im",
            RowRoute::In => "in",
            RowRoute::Po => "po",
        }
    }

    fn label(self) -> &'static str {
        match self {
            RowRoute::IvInfusion => "IV infusion",
            RowRoute::IvBolus => "IV bolus",
            RowRoute::Sc => "SC injection",
            RowRoute::Im => "IM injection",
            RowRoute::In => "Intranasal",
            RowRoute::Po => "Oral",
        }
    }

    /// In a regimen's automatic label.
    fn short(self) -> &'static str {
        match self {
            RowRoute::IvInfusion => "IV",
            RowRoute::IvBolus => "IV bolus",
            RowRoute::Sc => "SC",
            RowRoute::Im => "IM",
            RowRoute::In => "IN",
            RowRoute::Po => "PO",
        }
    }

    fn parse(s: &str) -> Option<RowRoute> {
        RowRoute::ALL.into_iter().find(|r| r.code() == s.trim())
    }

    fn pk(self) -> PkRoute {
        match self {
            RowRoute::IvInfusion | RowRoute::IvBolus => PkRoute::Iv,
            RowRoute::Sc => PkRoute::Sc,
            RowRoute::Im => PkRoute::Im,
            RowRoute::In => PkRoute::In,
            RowRoute::Po => PkRoute::Po,
        }
    }

    /// The row for a simulated route: IV with minutes is an infusion.
    fn of(route: PkRoute, infusion_min: Option<f64>) -> RowRoute {
        match route {
            PkRoute::Iv if infusion_min.is_some_and(|m| m > 0.0) => RowRoute::IvInfusion,
            PkRoute::Iv => RowRoute::IvBolus,
            PkRoute::Sc => RowRoute::Sc,
            PkRoute::Im => RowRoute::Im,
            PkRoute::In => RowRoute::In,
            PkRoute::Po => RowRoute::Po,
        }
    }
}

/// The form field of regimen row `i`.
fn field(i: usize, name: &str) -> String {
    format!("r{i}_{name}")
}

/// A typed number: `Ok(None)` when empty, `Err` when it is not a plain number.
fn parse_num(s: &str) -> Result<Option<f64>, ()> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.len() > 40 {
        return Err(());
    }
    match t.replace(',', ".").parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(()),
    }
}

/// One regimen as typed, checked.
#[derive(Clone, Debug)]
struct Row {
    index: usize,
    label: String,
    route: RowRoute,
    dose: f64,
    per_kg: bool,
    minutes: f64,
    start: f64,
    count: u32,
    every: f64,
}

impl Row {
    fn dose_mg(&self, weight_kg: f64) -> f64 {
        if self.per_kg {
            self.dose * weight_kg
        } else {
            self.dose
        }
    }

    fn events(&self, weight_kg: f64) -> Vec<EventInput> {
        let dose_mg = self.dose_mg(weight_kg);
        (0..self.count)
            .map(|k| {
                let at = self.start + f64::from(k) * self.every;
                match self.route {
                    RowRoute::IvInfusion => EventInput::Infusion { start_min: at, duration_min: self.minutes, dose_mg },
                    r => EventInput::Bolus { route: r.pk(), at_min: at, dose_mg, f: None, ka_per_min: None },
                }
            })
            .collect()
    }

    /// "IV 0.5 mg/kg over 40 min", "SC 1 mg/kg", "SC 0.5 mg/kg x 3 every 60 min".
    fn auto_label(&self) -> String {
        let mut s = format!("{} {} {}", self.route.short(), number(self.dose, 3), if self.per_kg { "mg/kg" } else { "mg" });
        if self.route == RowRoute::IvInfusion {
            s.push_str(&format!(" over {} min", number(self.minutes, 1)));
        }
        if self.count > 1 {
            s.push_str(&format!(" × {} every {} min", self.count, number(self.every, 1)));
        }
        if self.start > 0.0 {
            s.push_str(&format!(" from {} min", number(self.start, 1)));
        }
        s
    }
}

/// The whole form, checked.
struct Parsed {
    weight_kg: f64,
    age_years: Option<f64>,
    model: Option<String>,
    drug: Analyte,
    to_min: f64,
    medications: Vec<String>,
    rows: Vec<Row>,
}

const WEIGHT_RANGE: &str = "from 2 to 350 (a weight in pounds divided by 2.2), e.g. 70 or 70.5";

fn parse_form(values: &Fields, k: &PkKnowledge, chart_medications: Option<&[String]>, errors: &mut FieldErrors) -> Option<Parsed> {
    let weight = match parse_num(&f(values, "weight_kg")) {
        Ok(Some(w)) if (2.0..=350.0).contains(&w) => Some(w),
        Ok(Some(_)) => {
            errors.add("weight_kg", format!("must be the body weight in kg, {WEIGHT_RANGE}"));
            None
        }
        Ok(None) => {
            errors.add("weight_kg", format!("is required: the body weight in kg, {WEIGHT_RANGE}"));
            None
        }
        Err(()) => {
            errors.add("weight_kg", format!("must be a plain number of kilograms (no unit), {WEIGHT_RANGE}"));
            None
        }
    };
    let age = match parse_num(&f(values, "age_years")) {
        Ok(None) => Some(None),
        Ok(Some(a)) if (0.0..=120.0).contains(&a) => Some(Some(a)),
        _ => {
            errors.add("age_years", "must be an age in years from 0 to 120, or empty");
            None
        }
    };
    let model_id = f(values, "model");
    let model = if model_id.trim().is_empty() {
        None
    } else if k.model(model_id.trim()).is_some() {
        Some(model_id.trim().to_owned())
    } else {
        let ids: Vec<&str> = k.models.iter().map(|m| m.id.as_str()).collect();
        errors.add("model", format!("is not a known model; choose one of {}", ids.join(", ")));
        None
    };
    let drug = match f(values, "drug").trim() {
        "" | "racemic" => Some(Analyte::Racemic),
        "esketamine" => Some(Analyte::SKetamine),
        _ => {
            errors.add("drug", "must be racemic ketamine or esketamine");
            None
        }
    };
    let to = match parse_num(&f(values, "to_min")) {
        Ok(None) => Some(360.0),
        Ok(Some(t)) if (30.0..=MAX_WINDOW_MIN).contains(&t) => Some(t),
        _ => {
            errors.add("to_min", "must be the end of the chart in minutes after the first dose, from 30 to 10080 (one week), e.g. 360");
            None
        }
    };
    let window = to.unwrap_or(MAX_WINDOW_MIN);
    let medications: Vec<String> = match chart_medications {
        Some(m) => m.to_vec(),
        None => f(values, "medications")
            .split([',', ';', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .take(30)
            .map(|s| s.chars().take(100).collect())
            .collect(),
    };
    let mut rows = Vec::new();
    for i in 0..ROWS {
        let g = |n: &str| f(values, &field(i, n));
        let used = ["label", "dose", "minutes", "start", "count", "every"].iter().any(|n| !g(n).trim().is_empty());
        if !used {
            continue;
        }
        let mut ok = true;
        let mut bad = |errors: &mut FieldErrors, n: &str, m: &str| {
            errors.add(&field(i, n), m);
            ok = false;
        };
        let route = RowRoute::parse(&g("route"));
        if route.is_none() {
            bad(errors, "route", "must be one of IV infusion, IV bolus, SC, IM, intranasal or oral");
        }
        let per_kg = match g("unit").trim() {
            "" | "mg_per_kg" => true,
            "mg" => false,
            _ => {
                bad(errors, "unit", "must be mg/kg or mg");
                true
            }
        };
        let (max, unit) = if per_kg { (20.0, "mg/kg") } else { (10_000.0, "mg") };
        let dose = match parse_num(&g("dose")) {
            Ok(Some(d)) if d > 0.0 && d <= max => d,
            Ok(Some(_)) => {
                bad(errors, "dose", &format!("must be above 0 and at most {max} {unit} (check the unit)"));
                0.0
            }
            Ok(None) => {
                bad(errors, "dose", "is required: the dose in mg/kg (e.g. 0.5) or in mg (e.g. 35), with its unit");
                0.0
            }
            Err(()) => {
                bad(errors, "dose", "must be a plain number, e.g. 0.5 (mg/kg) or 35 (mg); choose the unit beside it");
                0.0
            }
        };
        let mut infusion = 0.0;
        if route == Some(RowRoute::IvInfusion) {
            match parse_num(&g("minutes")) {
                Ok(Some(m)) if m > 0.0 && m <= MAX_WINDOW_MIN => infusion = m,
                _ => bad(
                    errors,
                    "minutes",
                    "is required for an IV infusion: the infusion time in minutes, above 0 and at most 10080, e.g. 40",
                ),
            }
        }
        let start = match parse_num(&g("start")) {
            Ok(None) => 0.0,
            Ok(Some(s)) if s >= 0.0 && s < window => s,
            _ => {
                bad(errors, "start", &format!("must be a time in minutes from 0 to before the end of the chart ({})", number(window, 1)));
                0.0
            }
        };
        let count = match parse_num(&g("count")) {
            Ok(None) => 1.0,
            Ok(Some(c)) if (1.0..=MAX_COUNT).contains(&c) && c.fract().abs() < 1e-9 => c,
            _ => {
                bad(errors, "count", "must be a whole number of doses from 1 to 50 (1 or empty: a single dose)");
                1.0
            }
        };
        let mut every = 0.0;
        if count > 1.0 {
            match parse_num(&g("every")) {
                Ok(Some(e)) if e > 0.0 && e <= MAX_WINDOW_MIN => every = e,
                _ => bad(
                    errors,
                    "every",
                    "is required for repeated doses: the interval between doses in minutes, above 0 and at most 10080, e.g. 60",
                ),
            }
        }
        let label = g("label").trim().to_owned();
        if label.chars().count() > MAX_LABEL {
            bad(errors, "label", &format!("must be at most {MAX_LABEL} characters"));
        }
        if let (true, Some(route)) = (ok, route) {
            let mut row = Row { index: i, label, route, dose, per_kg, minutes: infusion, start, count: count as u32, every };
            if row.label.is_empty() {
                row.label = row.auto_label();
            }
            rows.push(row);
        }
    }
    if rows.is_empty() && errors.iter().all(|e| !e.field.starts_with('r')) {
        errors.add(&field(0, "dose"), "is required: give at least one regimen (a dose in regimen 1)");
    }
    // Labels name the curves: keep them apart.
    let mut seen: Vec<String> = Vec::new();
    for r in rows.iter_mut() {
        let base = r.label.clone();
        let mut n = 2;
        while seen.contains(&r.label) {
            r.label = format!("{base} ({n})");
            n += 1;
        }
        seen.push(r.label.clone());
    }
    if !errors.is_empty() {
        return None;
    }
    Some(Parsed { weight_kg: weight?, age_years: age?, model, drug: drug?, to_min: to?, medications, rows })
}

/// The form field a simulation's field error belongs to.
fn form_field(domain_field: &str, row: &Row) -> String {
    match domain_field {
        "weight_kg" | "age_years" | "model" => domain_field.to_owned(),
        "from" | "to" | "step" => "to_min".to_owned(),
        x if x.starts_with("events[") => {
            let idx = x.trim_start_matches("events[").split(']').next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
            let rest = x.split("].").nth(1).unwrap_or("");
            let name = match rest {
                "duration_min" => "minutes",
                "start_min" | "at_min" if idx == 0 => "start",
                "start_min" | "at_min" => "every",
                "f" | "ka_per_min" => "route",
                _ => "dose",
            };
            field(row.index, name)
        }
        _ => field(row.index, "dose"),
    }
}

/// What a form field is called, for the list of problems.
fn field_name(name: &str) -> String {
    let fixed = match name {
        "weight_kg" => "Body weight",
        "age_years" => "Age",
        "model" => "Model",
        "drug" => "Drug given",
        "to_min" => "Chart until",
        "medications" => "Current medications",
        _ => "",
    };
    if !fixed.is_empty() {
        return fixed.to_owned();
    }
    let mut parts = name.splitn(2, '_');
    let (row, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let n = row.trim_start_matches('r').parse::<usize>().map(|i| i + 1).unwrap_or(0);
    let what = match rest {
        "label" => "label",
        "route" => "route",
        "dose" => "dose",
        "unit" => "unit",
        "minutes" => "infusion time",
        "start" => "start time",
        "count" => "number of doses",
        "every" => "interval",
        _ => rest,
    };
    format!("Regimen {n}, {what}")
}

/// A regimen and its simulation.
struct Run {
    row: Row,
    sim: Simulation,
}

/// The default comparison: 0.5 mg/kg IV over 40 minutes against 0.5 and 1 mg/kg SC at 70 kg.
fn defaults(k: &PkKnowledge) -> Fields {
    let mut v = Fields::new();
    for (a, b) in [("weight_kg", "70"), ("to_min", "360"), ("drug", "racemic")] {
        v.insert(a.into(), b.into());
    }
    v.insert("model".into(), k.default_model().id.clone());
    let rows = [("iv_infusion", "0.5", "40"), ("sc", "0.5", ""), ("sc", "1", ""), ("iv_infusion", "", "")];
    for (i, (route, dose, min)) in rows.iter().enumerate() {
        v.insert(field(i, "route"), (*route).into());
        v.insert(field(i, "unit"), "mg_per_kg".into());
        v.insert(field(i, "dose"), (*dose).into());
        v.insert(field(i, "minutes"), (*min).into());
    }
    v
}

/// Who may use the simulator: anyone who may read patients or the de-identified data set.
async fn may_simulate(state: &AppState, p: &Principal) -> Result<(), crate::error::WebError> {
    if p.can(Permission::ReadDeidentified) {
        return Ok(());
    }
    state.app.authorize(p, Permission::ReadPatients, "Simulation").await.map_err(ui)
}

/// The patient whose chart fills the form.
struct PatientContext {
    id: String,
    name: String,
    mrn: String,
    medications: Vec<String>,
    weight_recorded: bool,
}

async fn simulate_page(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<Fields>) -> PageResult {
    may_simulate(&state, &p).await?;
    let k = &state.app.knowledge().pk;
    let mut values = if q.contains_key("weight_kg") { q.clone() } else { defaults(k) };
    let mut patient = None;
    if let Some(id) = q.get("patient").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let pid = crate::pages::pid(id)?;
        let subject = state.app.pk_subject(&p, pid).await.map_err(ui)?;
        let pv = state.app.patient(&p, pid).await.map_err(ui)?;
        if !q.contains_key("weight_kg") {
            values.insert("weight_kg".into(), if subject.weight_kg.is_finite() { number(subject.weight_kg, 1) } else { String::new() });
            values.insert("age_years".into(), subject.age_years.map(|a| number(a, 0)).unwrap_or_default());
        }
        patient = Some(PatientContext {
            id: id.to_owned(),
            name: pv.demographics.name.display(),
            mrn: pv.demographics.mrn.as_str().to_owned(),
            medications: subject.medications.clone(),
            weight_recorded: subject.weight_kg.is_finite(),
        });
    }
    let mut errors = FieldErrors::new();
    let mut runs = Vec::new();
    let mut weight_kg = f64::NAN;
    if let Some(parsed) = parse_form(&values, k, patient.as_ref().map(|c| c.medications.as_slice()), &mut errors) {
        weight_kg = parsed.weight_kg;
        let step = if parsed.to_min <= 720.0 { 1.0 } else { parsed.to_min / 720.0 };
        let requests: Vec<Request> = parsed
            .rows
            .iter()
            .map(|row| {
                let mut req = Request::new(parsed.weight_kg, row.events(parsed.weight_kg));
                req.model = parsed.model.clone();
                req.drug = parsed.drug;
                req.subject.age_years = parsed.age_years;
                req.subject.medications = parsed.medications.clone();
                req.grid = Grid { from_min: 0.0, to_min: parsed.to_min, step_min: step };
                req
            })
            .collect();
        // Up to four curves with their Monte Carlo bands: off the async workers.
        let app = state.app.clone();
        let results = tokio::task::spawn_blocking(move || requests.iter().map(|r| app.simulate(r)).collect::<Vec<_>>())
            .await
            .map_err(|e| ui(AppError::Internal(format!("simulation task failed: {e}"))))?;
        for (row, result) in parsed.rows.iter().zip(results) {
            match result {
                Ok(sim) => runs.push(Run { row: row.clone(), sim }),
                Err(AppError::Validation(e)) => {
                    for x in e.iter() {
                        let name = form_field(&x.field, row);
                        if errors.for_field(&name).is_none() {
                            errors.add(&name, x.message.clone());
                        }
                    }
                }
                Err(e) => return Err(ui(e)),
            }
        }
    }
    if !errors.is_empty() {
        runs.clear();
    }
    // Keep the model choice visible even when the URL gave none.
    if f(&values, "model").trim().is_empty() {
        values.insert("model".into(), k.default_model().id.clone());
    }
    let body = html! {
        h1 { "Regimen simulator" }
        p.muted { "Predicted plasma ketamine concentration of up to four regimens on one chart, from a published pharmacokinetic model. Decision support for supervised sessions: a prediction for an average patient of this weight, not a measurement. The address of this page holds the comparison and can be shared." }
        @if let Some(c) = &patient {
            p.pk-patient { "For " strong { (c.name) } " (MRN " (c.mrn) "): weight and age from the chart unless changed below; current medications from the chart. " a href=(format!("/patients/{}/dosing", c.id)) { "Back to dosing" } }
            @if !c.weight_recorded { p.alert.alert-warning { "No weight is recorded for this patient: type the body weight in kg." } }
        }
        (form(&values, &errors, k, patient.as_ref()))
        @if !runs.is_empty() { (results(&runs, k, weight_kg)) }
    };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, layout(Some(&p), "Regimen simulator", body)).into_response())
}

fn opts(xs: &[(&str, &str)]) -> Vec<(String, String)> {
    xs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

fn form(values: &Fields, errors: &FieldErrors, k: &PkKnowledge, patient: Option<&PatientContext>) -> Markup {
    let models: Vec<(String, String)> = k
        .models
        .iter()
        .map(|m| {
            (
                m.id.clone(),
                format!(
                    "{} — {}, {}; evidence: {}",
                    m.name,
                    m.analyte.label(),
                    if m.adult_population { "adults" } else { "children" },
                    m.evidence.code()
                ),
            )
        })
        .collect();
    let chosen = k.model(f(values, "model").trim()).unwrap_or_else(|| k.default_model());
    let routes: Vec<(String, String)> = RowRoute::ALL.iter().map(|r| (r.code().to_owned(), r.label().to_owned())).collect();
    let units = opts(&[("mg_per_kg", "mg/kg"), ("mg", "mg")]);
    html! {
        form.card #pk-form method="get" action="/simulate" novalidate {
            @if let Some(c) = patient { input type="hidden" name="patient" value=(c.id); }
            @if !errors.is_empty() {
                div.alert.alert-error #pk-errors role="alert" {
                    p { strong { "Nothing was simulated. Please correct the following:" } }
                    ul { @for e in errors.iter() { li { a href=(format!("#f-{}", e.field)) { (field_name(&e.field)) } ": " (e.message) } } }
                }
            }
            fieldset.pk-subject {
                legend { "Patient and model" }
                div.pk-fields {
                    (input("weight_kg", "Body weight (kg)", values, errors, "decimal", Some("Kilograms only")))
                    (input("age_years", "Age (years)", values, errors, "decimal", Some("Optional")))
                    (select("drug", "Drug given", &opts(&[("racemic", "Racemic ketamine"), ("esketamine", "Esketamine (S-ketamine)")]), values, errors))
                    (input("to_min", "Chart until (min)", values, errors, "decimal", Some("30 to 10080")))
                }
                (select("model", "Model", &models, values, errors))
                p.hint #pk-model-evidence { (chosen.name) ": " (chosen.population) ". Evidence: " (chosen.evidence.label()) "." }
                @match patient {
                    Some(c) => p.small #pk-medications { "Current medications from the chart: "
                        @if c.medications.is_empty() { "none recorded." } @else { (c.medications.join(", ")) "." } },
                    None => (input("medications", "Current medications (optional, comma-separated)", values, errors, "text", Some("Checked for interactions that change ketamine exposure"))),
                }
            }
            p.hint #pk-regimen-help { "Each regimen: a label (empty: made from the dose), the route, the dose in mg/kg or mg, the infusion time (IV infusion only), when the first dose starts (empty: 0 min) and, to repeat it, the number of doses and the interval in minutes. An empty regimen is left out." }
            @for i in 0..ROWS {
                fieldset.pk-regimen id=(format!("regimen-{}", i + 1)) {
                    legend { "Regimen " (i + 1) @if i > 0 { " (optional)" } }
                    div.pk-fields {
                        (input(&field(i, "label"), "Label", values, errors, "text", None))
                        (select(&field(i, "route"), "Route", &routes, values, errors))
                        (input(&field(i, "dose"), "Dose", values, errors, "decimal", None))
                        (select(&field(i, "unit"), "Unit", &units, values, errors))
                        (input(&field(i, "minutes"), "Infusion time (min)", values, errors, "decimal", None))
                        (input(&field(i, "start"), "Starts at (min)", values, errors, "decimal", None))
                        (input(&field(i, "count"), "Number of doses", values, errors, "decimal", None))
                        (input(&field(i, "every"), "Every (min)", values, errors, "decimal", None))
                    }
                }
            }
            div.actions {
                button.primary type="submit" { "Compare" }
                a.button href=(match patient { Some(c) => format!("/simulate?patient={}", c.id), None => "/simulate".to_owned() }) { "Back to the default comparison" }
            }
        }
    }
}

/// A ratio to the first regimen ("1.00×").
fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "—".into()
    }
}

/// The uncertainty band's Cmax range, or a dash with the reason.
fn band_cmax(s: &Simulation) -> Markup {
    html! {
        @match &s.band {
            Some(b) => { (conc(b.cmax_p05_p95.0)) "–" (conc(b.cmax_p05_p95.1)) }
            None => span title=(s.band_absent_reason.clone().unwrap_or_default()) { "—" },
        }
    }
}

/// Warnings of several simulations, each message once with the regimens it applies to.
fn warnings_markup(items: &[(&str, &Simulation)]) -> Markup {
    let mut grouped: Vec<(&'static str, &str, Vec<&str>)> = Vec::new();
    for (label, s) in items {
        for w in &s.warnings {
            match grouped.iter_mut().find(|(c, m, _)| *c == w.code && *m == w.message.as_str()) {
                Some(g) => g.2.push(*label),
                None => grouped.push((w.code, w.message.as_str(), vec![*label])),
            }
        }
    }
    // The assumptions a prescriber must not miss come first.
    grouped.sort_by_key(|(c, _, _)| match *c {
        "assumed_route_parameters" => 0,
        "interacting_medication" => 1,
        "outside_population" | "paediatric_model" => 2,
        _ => 3,
    });
    html! {
        ul.pk-warnings {
            @for (code, message, labels) in &grouped {
                li class=(format!("pk-warning {}", code.replace('_', "-"))) data-code=(code) {
                    @if *code == "assumed_route_parameters" { span.badge.assumed { "ASSUMED" } " " }
                    (message)
                    @if items.len() > 1 { " " span.applies { "(" (labels.join("; ")) ")" } }
                }
            }
        }
    }
}

/// The context bands with their sources.
fn bands_table(s: &Simulation, id: &str) -> Markup {
    html! {
        table.list.pk-bands id=(id) {
            caption { "Concentration bands shown behind the curves: context from the literature, not targets" }
            thead { tr { th { "Plasma concentration" } th { "What is seen" } th { "Source" } } }
            tbody {
                @for b in &s.context_bands {
                    tr {
                        td { @match b.high_ng_per_ml { Some(h) => { (conc(b.low_ng_per_ml)) "–" (conc(h)) " ng/mL" } None => { (conc(b.low_ng_per_ml)) " ng/mL and above" } } }
                        td { (b.label) }
                        td.source { (b.source) }
                    }
                }
            }
        }
    }
}

fn chart_for(id: &str, runs: &[(&str, &Simulation)], weight_kg: f64, compact: bool) -> Markup {
    let Some((_, first)) = runs.first() else { return html! {} };
    let curves: Vec<Curve> = runs
        .iter()
        .map(|(label, s)| Curve {
            label,
            times: &s.times_min,
            values: &s.cp_ng_per_ml,
            band: s.band.as_ref().map(|b| (b.p05.as_slice(), b.p95.as_slice())),
            peak: Some((s.summary.tmax_min, s.summary.cmax_ng_per_ml)),
        })
        .collect();
    let x_max = first.times_min.last().copied().unwrap_or(360.0);
    let subjects = runs.iter().find_map(|(_, s)| s.band.as_ref().map(|b| b.subjects)).unwrap_or(0);
    let desc = format!(
        "{}. Weight {} kg, model {}. {} {}",
        runs.iter()
            .map(|(l, s)| format!(
                "{l}: Cmax {} ng/mL at {} min, AUC 0–∞ {} ng·h/mL",
                conc(s.summary.cmax_ng_per_ml),
                minutes(s.summary.tmax_min),
                auc(s.summary.auc_0_inf_ng_h_per_ml)
            ))
            .collect::<Vec<_>>()
            .join("; "),
        number(weight_kg, 1),
        first.model.name,
        if subjects > 0 { "Shaded around each curve: 5th to 95th percentile of simulated patients." } else { "" },
        BANDS_NOTE
    );
    let backgrounds: Vec<Background> =
        first.context_bands.iter().map(|b| Background { low: b.low_ng_per_ml, high: b.high_ng_per_ml, label: &b.label }).collect();
    let band_legend = format!("5th–95th percentile ({subjects} simulated patients)");
    svg_chart::line_chart(&LineChart {
        id,
        title: if runs.len() == 1 {
            format!("Predicted plasma ketamine concentration: {}", runs[0].0)
        } else {
            format!("Predicted plasma ketamine concentration of {} regimens", runs.len())
        },
        desc,
        y_label: "Plasma concentration (ng/mL)",
        x_label: "Time after the first dose starts (min)",
        unit: "ng/mL",
        x_max,
        curves,
        backgrounds,
        band_legend: &band_legend,
        compact,
    })
}

fn results(runs: &[Run], k: &PkKnowledge, weight_kg: f64) -> Markup {
    let first = &runs[0].sim;
    let pairs: Vec<(&str, &Simulation)> = runs.iter().map(|r| (r.row.label.as_str(), &r.sim)).collect();
    let thresholds: Vec<f64> = first.summary.minutes_above.iter().map(|(c, _)| *c).collect();
    let (c0, a0) = (first.summary.cmax_ng_per_ml, first.summary.auc_0_inf_ng_h_per_ml);
    let mut used: Vec<PkRoute> =
        runs.iter().filter_map(|r| r.sim.doses.first().map(|d| d.event.route())).filter(|r| *r != PkRoute::Iv).collect();
    used.sort();
    used.dedup();
    html! {
        section #pk-results {
            h2 { "Predicted plasma concentration" }
            figure.chart.pk-figure {
                (chart_for("pk-chart", &pairs, weight_kg, false))
                figcaption {
                    (BANDS_NOTE) " Their sources are in the table below. "
                    @if first.band.is_some() || runs.iter().any(|r| r.sim.band.is_some()) { "The shading around a curve is the 5th to 95th percentile of simulated patients (what was varied is listed under provenance). " }
                    "Dots mark each curve's highest concentration (Cmax)."
                }
            }
            section #pk-warnings {
                h2 { "Warnings" }
                (warnings_markup(&pairs))
            }
            h2 { "Exposure by regimen" }
            div.table-scroll {
                table.list #pk-summary {
                    caption { "Ratios are to the first regimen (" (runs[0].row.label) "). Cmax 5th–95th: across the simulated patients, where the model or the route has a range to vary." }
                    thead {
                        tr {
                            th { "Regimen" } th { "Doses" } th { "Cmax (ng/mL)" } th { "Tmax (min)" } th { "AUC 0–∞ (ng·h/mL)" } th { "AUC 0–" (minutes(first.times_min.last().copied().unwrap_or(f64::NAN))) " min (ng·h/mL)" }
                            th { "Cmax 5th–95th (ng/mL)" } th { "Cmax ratio" } th { "AUC 0–∞ ratio" }
                            @for t in &thresholds { th { "Min above " (conc(*t)) " ng/mL" } }
                        }
                    }
                    tbody {
                        @for r in runs {
                            @let s = &r.sim.summary;
                            tr data-regimen=(r.row.label) {
                                th scope="row" { (r.row.label) }
                                td { (r.row.count) " × " (number(r.sim.doses.first().map(|d| d.entered_mg).unwrap_or(f64::NAN), 1)) " mg" }
                                td data-metric="cmax" { (conc(s.cmax_ng_per_ml)) }
                                td data-metric="tmax" { (minutes(s.tmax_min)) }
                                td data-metric="auc-inf" { (auc(s.auc_0_inf_ng_h_per_ml)) }
                                td data-metric="auc-t" { (auc(s.auc_0_t_ng_h_per_ml)) }
                                td data-metric="band-cmax" { (band_cmax(&r.sim)) }
                                td data-metric="cmax-ratio" { (ratio(s.cmax_ng_per_ml, c0)) }
                                td data-metric="auc-ratio" { (ratio(s.auc_0_inf_ng_h_per_ml, a0)) }
                                @for t in &thresholds {
                                    td { (s.minutes_above.iter().find(|(c, _)| (c - t).abs() < 1e-9).map(|(_, m)| minutes(*m)).unwrap_or_else(|| "—".into())) }
                                }
                            }
                        }
                    }
                }
            }
            p.small.muted { "Cmax and Tmax are found on the continuous curve, not only at the plotted minutes. AUC 0–∞ is bioavailable dose ÷ clearance; AUC 0–t stops at the end of the chart. Minutes above a concentration are counted within the chart's window." }
            h2 { "Doses as simulated" }
            div.table-scroll {
                table.list #pk-doses {
                    thead { tr { th { "Regimen" } th { "Route" } th { "Given at (min)" } th { "Infusion (min)" } th { "Dose entered (mg)" } th { "Dose simulated (mg)" } th { "Bioavailability F" } th { "Absorption ka (per min)" } th { "Route parameters" } } }
                    tbody {
                        @for r in runs {
                            @if let Some(d) = r.sim.doses.first() {
                                @let times: Vec<String> = r.sim.doses.iter().map(|x| minutes(x.event.start_min())).collect();
                                tr {
                                    th scope="row" { (r.row.label) }
                                    td { (d.event.route().label()) }
                                    td { @if times.len() > 12 { (times[..12].join(", ")) ", … (" (times.len()) " doses)" } @else { (times.join(", ")) } }
                                    td { @if let DoseEvent::Infusion { duration_min, .. } = d.event { (minutes(duration_min)) } @else { "—" } }
                                    td { (number(d.entered_mg, 2)) }
                                    td { (number(d.event.dose_mg(), 2)) }
                                    @match d.event {
                                        DoseEvent::Depot { f, ka_per_min, .. } => {
                                            td { (number(f, 3)) }
                                            td { (number(ka_per_min, 4)) " (absorption half-life " (minutes(std::f64::consts::LN_2 / ka_per_min)) " min)" }
                                        }
                                        _ => { td { "1 (IV)" } td { "—" } }
                                    }
                                    td {
                                        @match d.route_evidence {
                                            Some(Evidence::Assumed) => { span.badge.assumed { "ASSUMED" } " no published estimate; to be replaced" }
                                            Some(e) => { (e.label()) }
                                            None => "—",
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !used.is_empty() {
                ul.small #pk-route-sources {
                    @for r in &used {
                        @if let Some(spec) = k.route(*r) {
                            li { strong { "Absorption, " (r.label()) ": " } "F " (number(spec.f.value, 3)) " (range " (number(spec.f.low, 3)) "–" (number(spec.f.high, 3)) "), ka " (number(spec.ka_per_min.value, 4)) " per min (range " (number(spec.ka_per_min.low, 4)) "–" (number(spec.ka_per_min.high, 4)) "); evidence " (spec.evidence.code()) ". " span.source { (spec.source) } @if let Some(c) = &spec.caveat { " " em { (c) } } }
                        }
                    }
                }
            }
            h2 { "Provenance" }
            (provenance(&pairs, k))
            h2 { "Context concentration bands" }
            (bands_table(first, "pk-bands"))
        }
    }
}

fn provenance(runs: &[(&str, &Simulation)], k: &PkKnowledge) -> Markup {
    let Some((_, s)) = runs.first() else { return html! {} };
    let m = &s.model;
    let micro = &s.micro;
    let (v2, v3) = micro.peripheral_volumes_l();
    let d = &s.disposition;
    let cl = micro.clearance_l_per_min();
    let rates: Vec<String> = d.lambdas[..d.n.min(3)].iter().map(|l| number(*l, 5)).collect();
    let ke0_default = (s.ke0_per_min - k.ke0_per_min.value).abs() < 1e-12;
    html! {
        table.list #pk-provenance {
            tbody {
                tr { th scope="row" { "Model" } td { (m.name) " (" code { (m.id) } "), predicts " (m.analyte.label()) } }
                tr { th scope="row" { "Evidence" } td data-evidence=(m.evidence.code()) { @if m.evidence == Evidence::Assumed { span.badge.assumed { "ASSUMED" } " " } (m.evidence.label()) } }
                tr { th scope="row" { "Population" } td { (m.population) "; sampling " (m.sampling) "; fitted on " (number(m.weight_range_kg.0, 1)) "–" (number(m.weight_range_kg.1, 1)) " kg, " (number(m.age_range_years.0, 1)) "–" (number(m.age_range_years.1, 1)) " years" } }
                tr { th scope="row" { "Citation" } td.source { (m.citation) } }
                tr { th scope="row" { "Notes" } td { (m.notes) } }
                tr { th scope="row" { "Parameters used" } td #pk-parameters {
                    "V1 " (number(micro.v1_l, 2)) " L · CL " (number(cl, 4)) " L/min (" (number(cl * 60.0, 1)) " L/h) · k10 " (number(micro.k10, 4))
                    " · k12 " (number(micro.k12, 4)) " · k21 " (number(micro.k21, 4)) " · k13 " (number(micro.k13, 4)) " · k31 " (number(micro.k31, 4)) " per min"
                    @if v2 > 0.0 { " · V2 " (number(v2, 1)) " L" }
                    @if v3 > 0.0 { " · V3 " (number(v3, 1)) " L" }
                } }
                tr { th scope="row" { "Hybrid rates" } td { (rates.join(", ")) " per min; terminal half-life " (minutes(d.terminal_half_life_min())) " min" } }
                tr { th scope="row" { "Effect-site rate ke0" } td {
                    (number(s.ke0_per_min, 3)) " per min"
                    @if ke0_default { ", " @if k.ke0_evidence == Evidence::Assumed { span.badge.assumed { "ASSUMED" } " " } (k.ke0_evidence.label()) ". " } @else { " (given). " }
                    span.source { (k.ke0_source) } " The chart shows plasma concentration only."
                } }
                tr { th scope="row" { "Uncertainty band" } td {
                    ul.small {
                        @for (label, x) in runs {
                            li { (label) ": "
                                @match &x.band {
                                    Some(b) => { (b.subjects) " simulated patients (seed " (b.seed) "), varied: " (b.varied.join("; ")) }
                                    None => { "none (" (x.band_absent_reason.clone().unwrap_or_default()) ")" }
                                }
                            }
                        }
                    }
                } }
                tr { th scope="row" { "Knowledge version" } td { (s.knowledge_version) } }
                tr { th scope="row" { "Engine" } td { (s.engine.code()) " · Ketacare " (env!("CARGO_PKG_VERSION")) } }
            }
        }
    }
}

// ---------------------------------------------------------------- links into the simulator

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The simulator with one dose filled in (mg at this weight).
fn link(route: RowRoute, dose_mg: f64, infusion_min: Option<f64>, weight_kg: f64, patient: Option<&str>) -> String {
    let end = infusion_min.unwrap_or(0.0);
    let to = ((end + 240.0).max(360.0).ceil()).min(MAX_WINDOW_MIN);
    let drug = if route == RowRoute::In { "esketamine" } else { "racemic" };
    let mut pairs: Vec<(&str, String)> = vec![
        ("weight_kg", number(weight_kg, 2)),
        ("drug", drug.into()),
        ("to_min", number(to, 0)),
        ("r0_route", route.code().into()),
        ("r0_dose", number(dose_mg, 3)),
        ("r0_unit", "mg".into()),
        ("r0_minutes", infusion_min.map(|m| number(m, 1)).unwrap_or_default()),
    ];
    if let Some(p) = patient {
        pairs.insert(0, ("patient", p.to_owned()));
    }
    let qs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    format!("/simulate?{}", qs.join("&"))
}

fn dec(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------- the dose calculator

/// The planned dose's predicted curve under the calculator's result.
pub fn dose_prediction(s: &Simulation, route: Route, dose_mg: Decimal, infusion_min: Option<Decimal>, weight_kg: Decimal) -> Markup {
    let minutes_f = infusion_min.map(dec).filter(|m| *m > 0.0);
    let row = match route {
        Route::Iv if minutes_f.is_some() => RowRoute::IvInfusion,
        Route::Iv => RowRoute::IvBolus,
        Route::Sc => RowRoute::Sc,
        Route::Im => RowRoute::Im,
        Route::In => RowRoute::In,
    };
    let mut label = format!("{} {} mg", row.short(), number(dec(dose_mg), 2));
    if let Some(m) = minutes_f {
        label.push_str(&format!(" over {} min", number(m, 1)));
    }
    let href = link(row, dec(dose_mg), minutes_f, dec(weight_kg), None);
    let sm = &s.summary;
    html! {
        section.card #dose-prediction aria-labelledby="dose-prediction-title" {
            h2 #dose-prediction-title { "Predicted concentration of this dose" }
            p.small.muted { (label) " at " (number(dec(weight_kg), 1)) " kg body weight, " (s.model.name) " (" (s.model.evidence.label()) "). A prediction for an average patient, not a measurement." }
            figure.chart.pk-figure.compact {
                (chart_for("dose-pk-chart", &[(label.as_str(), s)], dec(weight_kg), true))
                figcaption { (BANDS_NOTE) }
            }
            dl.pk-metrics {
                dt { "Cmax" } dd #dose-cmax { (conc(sm.cmax_ng_per_ml)) " ng/mL at " (minutes(sm.tmax_min)) " min" }
                @if let Some(b) = &s.band { dt { "Cmax 5th–95th" } dd { (conc(b.cmax_p05_p95.0)) "–" (conc(b.cmax_p05_p95.1)) " ng/mL" } }
                dt { "AUC 0–∞" } dd { (auc(sm.auc_0_inf_ng_h_per_ml)) " ng·h/mL" }
                dt { "AUC 0–" (minutes(s.times_min.last().copied().unwrap_or(f64::NAN))) " min" } dd { (auc(sm.auc_0_t_ng_h_per_ml)) " ng·h/mL" }
            }
            (warnings_markup(&[(label.as_str(), s)]))
            details {
                summary { "Concentration bands and their sources" }
                (bands_table(s, "dose-pk-bands"))
            }
            p { a href=(href) #dose-simulate-link { "Open this dose in the regimen simulator" } " to compare it with other regimens and see the model's parameters." }
        }
    }
}

// ---------------------------------------------------------------- the titration review

/// Response and dissociation of each session against the predicted exposure of its dose.
pub fn exposure_response(t: &TitrationView, patient_id: &str) -> Markup {
    let model = t.exposure.iter().flatten().next().map(|e| e.model.clone());
    let pts = |pick: &dyn Fn(usize) -> Option<f64>| -> Vec<Point> {
        t.given
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let e = t.exposure.get(i)?.as_ref()?;
                let y = pick(i)?;
                (e.cmax_ng_per_ml.is_finite() && y.is_finite()).then(|| Point {
                    x: e.cmax_ng_per_ml,
                    y,
                    label: g.date.format("%Y-%m-%d").to_string(),
                })
            })
            .collect()
    };
    let left = pts(&|i| t.given[i].response.as_ref().map(|(r, _)| dec(*r)));
    let right = pts(&|i| t.given[i].cadss.map(dec));
    let scales: Vec<String> = {
        let mut v: Vec<String> = t.given.iter().filter_map(|g| g.response.as_ref().map(|(_, n)| n.clone())).collect();
        v.sort();
        v.dedup();
        v
    };
    let assumed = t.exposure.iter().flatten().any(|e| e.warnings.iter().any(|w| w == "assumed_route_parameters"));
    let desc = format!(
        "{} response point{} and {} CADSS point{} against the predicted peak plasma concentration of the dose given: {}",
        left.len(),
        if left.len() == 1 { "" } else { "s" },
        right.len(),
        if right.len() == 1 { "" } else { "s" },
        t.given
            .iter()
            .zip(&t.exposure)
            .filter_map(|(g, e)| e.as_ref().map(|e| {
                format!(
                    "{} Cmax {} ng/mL{}{}",
                    g.date.format("%Y-%m-%d"),
                    conc(e.cmax_ng_per_ml),
                    g.response.as_ref().map(|(r, _)| format!(", response {} %", number(dec(*r), 1))).unwrap_or_default(),
                    g.cadss.map(|c| format!(", CADSS {}", number(dec(c), 1))).unwrap_or_default()
                )
            }))
            .collect::<Vec<_>>()
            .join("; ")
    );
    html! {
        section.card #exposure-response {
            h2 { "Response and dissociation against predicted exposure" }
            @if left.is_empty() && right.is_empty() {
                p #exposure-empty { "No session under this plan has both a given dose and a rating (response or CADSS) yet, so there is nothing to plot." }
            } @else {
                figure.chart.pk-figure.scatter {
                    (svg_chart::scatter(&Scatter {
                        id: "exposure-chart",
                        title: "Response and dissociation against the predicted peak concentration of each dose".into(),
                        desc,
                        x_label: "Predicted Cmax of the dose (ng/mL)",
                        left_label: "Response (% reduction)",
                        right_label: "CADSS total",
                        left_range: (0.0, 100.0),
                        left,
                        right,
                    }))
                    figcaption { "Circles: reduction from baseline at the response time point" @if !scales.is_empty() { " (" (scales.join(", ")) ")" } "; squares: CADSS total after the dose. Each point is labelled with the session date." }
                }
            }
            @if t.given.is_empty() {
                p.muted { "No double-checked dose has been given under this plan yet." }
            } @else {
                div.table-scroll {
                    table.list #exposure-table {
                        thead { tr { th { "Date" } th { "Step" } th { "mg/kg" } th { "Route" } th { "Dose (mg)" } th { "Predicted Cmax (ng/mL)" } th { "AUC 0–∞ (ng·h/mL)" } th { "Response (% reduction)" } th { "CADSS" } th { "" } } }
                        tbody {
                            @for (g, e) in t.given.iter().zip(t.exposure.iter().chain(std::iter::repeat(&None))) {
                                tr {
                                    td { (g.date.format("%Y-%m-%d")) }
                                    td { (g.step.clone().unwrap_or_else(|| "—".into())) }
                                    td { (g.mg_per_kg.map(|m| number(dec(m), 3)).unwrap_or_else(|| "—".into())) }
                                    @match e {
                                        Some(e) => {
                                            td { (e.route.label()) @if let Some(m) = e.minutes { " over " (minutes(m)) " min" } }
                                            td { (number(e.dose_mg, 1)) }
                                            td data-metric="cmax" { (conc(e.cmax_ng_per_ml)) }
                                            td { (auc(e.auc_0_inf_ng_h_per_ml)) }
                                        }
                                        None => { td { "—" } td { "—" } td { "not predicted" } td { "—" } }
                                    }
                                    td { @match &g.response { Some((r, n)) => { (number(dec(*r), 1)) " % (" (n) ")" } None => "—" } }
                                    td { (g.cadss.map(|c| number(dec(c), 1)).unwrap_or_else(|| "—".into())) }
                                    td { @if let Some(e) = e { a href=(link(RowRoute::of(e.route, e.minutes), e.dose_mg, e.minutes, e.weight_kg, Some(patient_id))) { "Simulate" } } }
                                }
                            }
                        }
                    }
                }
            }
            p.small #exposure-note {
                "Exposure is predicted from the model (" (model.as_deref().unwrap_or("the default model")) ") at the weight on each order, not measured. "
                @if assumed { strong { "Subcutaneous and intramuscular absorption parameters are ASSUMED (no published adult estimate): the predicted Cmax of those doses is uncertain. " } }
                "A prediction for an average patient; no concentration target for the anxiolytic effect is known."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knowledge() -> PkKnowledge {
        ketacare_knowledge::Knowledge::load().expect("the shipped knowledge loads").pk
    }

    #[test]
    fn the_default_form_parses_into_the_classic_comparison() {
        let k = knowledge();
        let mut e = FieldErrors::new();
        let p = parse_form(&defaults(&k), &k, None, &mut e).expect("defaults are valid");
        let labels: Vec<&str> = p.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["IV 0.5 mg/kg over 40 min", "SC 0.5 mg/kg", "SC 1 mg/kg"]);
        assert!((p.rows[0].dose_mg(p.weight_kg) - 35.0).abs() < 1e-12);
    }

    #[test]
    fn junk_is_named_field_by_field() {
        let k = knowledge();
        let mut v = defaults(&k);
        v.insert("weight_kg".into(), "154 lb".into());
        v.insert("r1_dose".into(), "1e400".into());
        v.insert("r2_count".into(), "3".into());
        v.insert("to_min".into(), "-5".into());
        let mut e = FieldErrors::new();
        assert!(parse_form(&v, &k, None, &mut e).is_none());
        assert!(e.for_field("weight_kg").is_some_and(|m| m.contains("kilograms") && m.contains("2 to 350")));
        assert!(e.for_field("r1_dose").is_some());
        assert!(e.for_field("r2_every").is_some());
        assert!(e.for_field("to_min").is_some());
        assert_eq!(field_name("r2_every"), "Regimen 3, interval");
    }

    #[test]
    fn repeats_become_events_and_domain_fields_map_back() {
        let row = Row {
            index: 2,
            label: String::new(),
            route: RowRoute::Sc,
            dose: 0.5,
            per_kg: true,
            minutes: 0.0,
            start: 10.0,
            count: 3,
            every: 60.0,
        };
        let ev = row.events(80.0);
        assert_eq!(ev.len(), 3);
        assert!(
            matches!(ev[2], EventInput::Bolus { at_min, dose_mg, .. } if (at_min - 130.0).abs() < 1e-12 && (dose_mg - 40.0).abs() < 1e-12)
        );
        assert_eq!(row.auto_label(), "SC 0.5 mg/kg × 3 every 60 min from 10 min");
        assert_eq!(form_field("events[2].at_min", &row), "r2_every");
        assert_eq!(form_field("events[0].at_min", &row), "r2_start");
        assert_eq!(form_field("events[1].dose_mg", &row), "r2_dose");
        assert_eq!(form_field("to", &row), "to_min");
    }

    #[test]
    fn links_are_encoded() {
        let l = link(RowRoute::IvInfusion, 36.0, Some(40.0), 72.0, None);
        assert_eq!(l, "/simulate?weight_kg=72&drug=racemic&to_min=360&r0_route=iv_infusion&r0_dose=36&r0_unit=mg&r0_minutes=40");
        assert_eq!(enc("a b&c"), "a%20b%26c");
    }
}
