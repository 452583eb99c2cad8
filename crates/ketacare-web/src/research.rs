//! The cohort outcomes page (`/research/outcomes`) and its CSV: response and remission with
//! their intervals, the clinic beside the published studies on their own definitions, time to
//! response and durability, tolerability, functioning, and exploratory subgroups. De-identified:
//! researchers see counts, rates and research ids only.

use crate::extract::Auth;
use crate::pages::{ui, PageResult};
use crate::svg_chart::{line_chart, Curve, LineChart};
use crate::views::layout;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use ketacare_app::research::CohortOutcomes;
use ketacare_app::AppError;
use ketacare_domain::cohort::{CohortFilter, GroupRate};
use ketacare_domain::stats::{KaplanMeier, Proportion};
use ketacare_domain::validation::FieldErrors;
use maud::{html, Markup};
use serde::Deserialize;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/research/outcomes", get(outcomes_page)).route("/research/outcomes.csv", get(outcomes_csv))
}

/// The filter as typed in the query string (every field optional; empty means all).
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct FilterQuery {
    /// First dose on or after (YYYY-MM-DD).
    pub from: Option<String>,
    /// First dose on or before (YYYY-MM-DD).
    pub to: Option<String>,
    /// Diagnosis key (gad, sad, specific_phobia, panic, ...).
    pub diagnosis: Option<String>,
    /// Protocol key.
    pub protocol: Option<String>,
    /// Route: iv, sc, im or in.
    pub route: Option<String>,
    /// Clinician username (who planned the course).
    pub clinician: Option<String>,
    /// Sex: female, male, other or unknown.
    pub sex: Option<String>,
    /// Youngest age, years.
    pub age_min: Option<String>,
    /// Oldest age, years.
    pub age_max: Option<String>,
}

impl FilterQuery {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("diagnosis", &self.diagnosis),
            ("protocol", &self.protocol),
            ("route", &self.route),
            ("clinician", &self.clinician),
            ("sex", &self.sex),
            ("age_min", &self.age_min),
            ("age_max", &self.age_max),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect()
    }

    /// The query string that repeats this filter.
    pub fn query_string(&self) -> String {
        self.pairs()
            .iter()
            .map(|(k, v)| {
                format!("{k}={}", v.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect::<String>())
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Parses the filter; every problem is reported with its field and the accepted form.
pub fn parse_filter(q: &FilterQuery) -> Result<CohortFilter, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut f = CohortFilter::default();
    for (k, v) in q.pairs() {
        match k {
            "from" | "to" => match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
                Ok(d) if k == "from" => f.from = Some(d),
                Ok(d) => f.to = Some(d),
                Err(_) => errors.add(k, "must be a date as YYYY-MM-DD, for example 2026-01-31"),
            },
            "age_min" | "age_max" => match v.parse::<u32>() {
                Ok(a) if a <= 130 && k == "age_min" => f.age_min = Some(a),
                Ok(a) if a <= 130 => f.age_max = Some(a),
                _ => errors.add(k, "must be a whole number of years from 0 to 130"),
            },
            "route" => match v {
                "iv" | "sc" | "im" | "in" => f.route = Some(v.to_owned()),
                _ => errors.add(k, "must be one of iv, sc, im, in"),
            },
            "sex" => match v {
                "female" | "male" | "other" | "unknown" => f.sex = Some(v.to_owned()),
                _ => errors.add(k, "must be one of female, male, other, unknown"),
            },
            _ => {
                if v.chars().count() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                    errors.add(k, "must be a key of letters, digits, '-', '_' or '.' (at most 64)");
                } else {
                    match k {
                        "diagnosis" => f.diagnosis = Some(v.to_owned()),
                        "protocol" => f.protocol = Some(v.to_owned()),
                        _ => f.clinician = Some(v.to_owned()),
                    }
                }
            }
        }
    }
    if let (Some(a), Some(b)) = (f.from, f.to) {
        if a > b {
            errors.add("to", "must be on or after the first date");
        }
    }
    if let (Some(a), Some(b)) = (f.age_min, f.age_max) {
        if a > b {
            errors.add("age_max", "must be at least the youngest age");
        }
    }
    errors.into_result().map(|_| f)
}

/// "33 % (16–56)".
pub fn pct(p: &Option<Proportion>) -> String {
    match p {
        Some(p) => format!("{:.0} % ({:.0}–{:.0})", p.p * 100.0, p.lo * 100.0, p.hi * 100.0),
        None => "—".into(),
    }
}

pub(crate) fn kn(p: &Option<Proportion>) -> String {
    p.map(|p| format!("{} / {}", p.k, p.n)).unwrap_or_else(|| "—".into())
}

pub(crate) fn diagnosis_label(key: &str) -> String {
    match key {
        "gad" => "Generalised anxiety disorder (GAD)".into(),
        "sad" => "Social anxiety disorder (SAD)".into(),
        "specific_phobia" => "Specific phobia".into(),
        "panic" => "Panic disorder".into(),
        other => other.replace('_', " "),
    }
}

fn rate_table(id: &str, caption: &str, rows: &[GroupRate], label: &dyn Fn(&str) -> String, remission: bool) -> Markup {
    html! {
        table.list #(id) {
            caption { (caption) }
            thead { tr { th scope="col" { "Group" } th scope="col" { "Patients" } th scope="col" { "Responders" } th scope="col" { "Response (95 % CI)" } @if remission { th scope="col" { "Remission (95 % CI)" } } } }
            tbody {
                @for r in rows {
                    tr data-group=(r.group) {
                        td { (label(&r.group)) @if r.small { " " span.badge.level-watch title="Fewer patients than the small-numbers threshold" { "small n" } } }
                        td { (r.n) }
                        td { (r.response.map(|p| p.k).unwrap_or(0)) }
                        td { (pct(&r.response)) }
                        @if remission { td { (pct(&r.remission)) " " span.muted.small { (kn(&r.remission)) } } }
                    }
                }
            }
        }
    }
}

/// Horizontal interval chart of proportions (0–100 %): one row per estimate.
fn interval_chart(id: &str, title: &str, rows: &[(String, Proportion, bool)]) -> Markup {
    let row_h = 26.0;
    let left = 250.0;
    let width = 720.0;
    let plot_w = width - left - 30.0;
    let height = 40.0 + row_h * rows.len() as f64;
    let x = |p: f64| left + p * plot_w;
    html! {
        svg #(id) .chart role="img" aria-labelledby=(format!("{id}-title")) viewBox=(format!("0 0 {width} {height}")) width="100%" {
            title id=(format!("{id}-title")) { (title) }
            @for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
                line x1=(x(t)) x2=(x(t)) y1="10" y2=(height - 25.0) stroke="#ccc" {}
                text x=(x(t)) y=(height - 8.0) text-anchor="middle" font-size="12" { (format!("{:.0} %", t * 100.0)) }
            }
            @for (i, (label, p, published)) in rows.iter().enumerate() {
                @let y = 22.0 + row_h * i as f64;
                text x=(left - 8.0) y=(y + 4.0) text-anchor="end" font-size="12" { (label) }
                line x1=(x(p.lo)) x2=(x(p.hi)) y1=(y) y2=(y) stroke=(if *published { "#555" } else { "#0b5cad" }) stroke-width="2" {}
                @if *published {
                    rect x=(x(p.p) - 5.0) y=(y - 5.0) width="10" height="10" fill="#555" data-estimate=(format!("{:.3}", p.p)) {}
                } @else {
                    circle cx=(x(p.p)) cy=(y) r="5" fill="#0b5cad" data-estimate=(format!("{:.3}", p.p)) {}
                }
            }
        }
    }
}

fn km_chart(id: &str, title: &str, km: &KaplanMeier, what: &str) -> Markup {
    let mut times = vec![0.0];
    let mut values = vec![100.0];
    let mut lo = vec![100.0];
    let mut hi = vec![100.0];
    for s in &km.steps {
        let (pv, pl, ph) = (*values.last().unwrap_or(&100.0), *lo.last().unwrap_or(&100.0), *hi.last().unwrap_or(&100.0));
        times.push(s.time);
        values.push(pv);
        lo.push(pl);
        hi.push(ph);
        times.push(s.time);
        values.push(s.survival * 100.0);
        lo.push(s.lo * 100.0);
        hi.push(s.hi * 100.0);
    }
    let x_max = times.iter().copied().fold(1.0_f64, f64::max).ceil();
    line_chart(&LineChart {
        id,
        title: title.to_owned(),
        desc: format!("Kaplan-Meier estimate of the share of patients still {what}, with its 95 % interval, over days."),
        y_label: "%",
        x_label: "days",
        unit: "%",
        x_max,
        curves: vec![Curve { label: title, times: &times, values: &values, band: Some((&lo, &hi)), peak: None }],
        backgrounds: vec![],
        band_legend: "95 % interval",
        compact: false,
    })
}

fn km_summary(km: &KaplanMeier) -> String {
    let median = km.median.map(|m| format!("median {m:.1} days")).unwrap_or_else(|| "median not reached".into());
    format!("{} patients, {} events, {} censored; {median}", km.n, km.events, km.n - km.events)
}

pub(crate) fn odds(t: &ketacare_domain::cohort::OddsRatio) -> String {
    format!("{:.2} ({:.2}–{:.2})", t.or, t.lo, t.hi)
}

pub(crate) fn fit_warning(r: &ketacare_domain::cohort::Regression, small: u64) -> String {
    let mut w = Vec::new();
    if r.small {
        w.push(format!("fewer than {small} responders or non-responders per covariate: estimates are unstable"));
    }
    if r.separation {
        w.push("a covariate separates responders completely: the estimate is unreliable".to_owned());
    }
    if !r.converged {
        w.push("the model did not converge".to_owned());
    }
    let mut s = w.join("; ");
    if let Some(c) = s.get(..1).map(str::to_uppercase) {
        s.replace_range(..1, &c);
    }
    s.push('.');
    s
}

pub(crate) fn f1(v: f64) -> String {
    format!("{v:.1}")
}

fn filter_form(o: &CohortOutcomes, q: &FilterQuery, errors: &FieldErrors) -> Markup {
    let sel = |name: &str, label: &str, options: Vec<(String, String)>, current: &Option<String>| {
        let id = format!("f-{name}");
        html! {
            div.field {
                label for=(id) { (label) }
                select #(id) name=(name) {
                    option value="" { "All" }
                    @for (v, l) in &options { option value=(v) selected[current.as_deref() == Some(v.as_str())] { (l) } }
                }
                @if let Some(m) = errors.for_field(name) { p.error { (m) } }
            }
        }
    };
    let inp = |name: &str, label: &str, kind: &str, current: &Option<String>| {
        let id = format!("f-{name}");
        html! {
            div.field {
                label for=(id) { (label) }
                input #(id) type=(kind) name=(name) value=(current.clone().unwrap_or_default()) aria-invalid=[errors.for_field(name).map(|_| "true")];
                @if let Some(m) = errors.for_field(name) { p.error { (m) } }
            }
        }
    };
    html! {
        form.card.filters method="get" action="/research/outcomes" #cohort-filter {
            h2 { "Filter" }
            div.grid {
                (sel("diagnosis", "Diagnosis", o.diagnoses.iter().map(|d| (d.clone(), diagnosis_label(d))).collect(), &q.diagnosis))
                (sel("protocol", "Protocol", o.protocols.iter().map(|d| (d.clone(), d.clone())).collect(), &q.protocol))
                (sel("route", "Route", ["iv", "sc", "im", "in"].iter().map(|r| (r.to_string(), r.to_uppercase())).collect(), &q.route))
                (sel("clinician", "Clinician", o.clinicians.iter().map(|d| (d.clone(), d.clone())).collect(), &q.clinician))
                (sel("sex", "Sex", ["female", "male", "other", "unknown"].iter().map(|r| (r.to_string(), r.to_string())).collect(), &q.sex))
                (inp("age_min", "Age from", "number", &q.age_min))
                (inp("age_max", "Age to", "number", &q.age_max))
                (inp("from", "First dose from", "date", &q.from))
                (inp("to", "First dose to", "date", &q.to))
            }
            button type="submit" { "Apply" } " " a href="/research/outcomes" { "Clear" }
        }
    }
}

async fn outcomes_page(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<FilterQuery>) -> PageResult {
    let (filter, errors) = match parse_filter(&q) {
        Ok(f) => (f, FieldErrors::new()),
        Err(e) => (CohortFilter::default(), e),
    };
    let o = state.app.cohort_outcomes(&p, &filter).await.map_err(ui)?;
    let r = &o.report;
    let small = o.rules.small_numbers_below;
    let scale_name = |k: &str| o.rules.scales.iter().find(|s| s.key == k).map(|s| s.name.clone()).unwrap_or_else(|| k.to_owned());
    let definitions = scale_definitions(&o.rules, "≤");
    let mut evidence_rows = Vec::new();
    for e in &r.evidence {
        if let Some(p) = e.published {
            evidence_rows.push((format!("{} (published)", e.short), p, true));
        }
        if let Some(c) = e.clinic {
            evidence_rows.push((format!("Clinic on {}'s definition", e.short), c, false));
        }
    }
    let csv_href = format!("/research/outcomes.csv?{}", q.query_string());
    let pdf_href = format!("/research/outcomes.pdf?{}", q.query_string());
    let body = html! {
        h1 { "Cohort outcomes" }
        p.muted { "De-identified: counts, rates and intervals only; no names, record numbers or dates of any patient. " a href="/research" { "Cohort list" } " · " a href="/research/exports" { "Exports" } }
        (filter_form(&o, &q, &errors))
        @if !errors.is_empty() { p.alert.alert-error role="alert" { "The filter was not applied: correct the fields marked above." } }
        div.alert.alert-warn #small-numbers-warning role="note" {
            strong { "Exploratory statistics. " }
            "Groups of fewer than " (small) " patients are marked small n; their intervals are wide. Many comparisons are shown at once, so some will look different by chance alone (no correction for multiple comparisons). Associations are not causes."
        }
        p #cohort-counts.count-line {
            strong { (r.patients) " patients" } " match · " (r.treated) " treated · " (r.evaluable) " evaluable (a baseline rating and a rating after a dose)"
            @if !o.filter.is_empty() { " · filtered" }
        }
        p {
            a href=(csv_href) download="cohort-outcomes.csv" #download-csv { "Download all tables as CSV" }
            " · "
            a href=(pdf_href) download #download-pdf { "Clinic outcomes report (PDF)" }
            span.muted.small { " — the same tables and charts, for a governance meeting or a funder" }
        }

        section.card #evidence {
            h2 { "The clinic beside the published studies" }
            p.muted { "Each study's responders as published, and the clinic's patients counted on the same definition: the study's diagnoses, route and dose levels, and its instrument and threshold. Intervals are 95 % Wilson intervals. Studies file version " (o.studies_version) "." }
            table.list #evidence-table {
                thead { tr { th scope="col" { "Study" } th scope="col" { "Definition" } th scope="col" { "Published" } th scope="col" { "Clinic on this definition" } } }
                tbody {
                    @for e in &r.evidence {
                        tr data-study=(e.study) {
                            td { (e.short) }
                            td { (e.definition) }
                            td { (pct(&e.published)) " " span.muted.small { (kn(&e.published)) } }
                            td {
                                @if e.clinic.is_some() { (pct(&e.clinic)) " " span.muted.small { (kn(&e.clinic)) } @if e.small { " " span.badge.level-watch { "small n" } } }
                                @if let Some(n) = &e.note { span.muted { (n) } }
                            }
                        }
                    }
                }
            }
            @if !evidence_rows.is_empty() {
                (interval_chart("evidence-chart", "Response: published studies (squares) and the clinic on their definitions (circles), with 95 % intervals", &evidence_rows))
            }
            details {
                summary { "The studies" }
                @for s in &o.studies {
                    p { strong { (s.short) } ": " (s.design) ", n = " (s.n) ". " (s.population) ". " (s.protocol) ". " (s.results) " " span.muted.small { (s.citation) } }
                }
            }
        }

        section.card #response {
            h2 { "Response and remission" }
            p.muted { "A patient responds when any rating after the first dose meets the rule of their primary scale, and remits when a total after the first dose is at or below the scale's remission cut-off. " (definitions.join(" · ")) "." }
            (rate_table("rates-overall", "All evaluable patients", std::slice::from_ref(&r.overall), &|_| "All".into(), true))
            (rate_table("rates-diagnosis", "By diagnosis", &r.by_diagnosis, &|g| diagnosis_label(g), true))
            (rate_table("rates-protocol", "By protocol", &r.by_protocol, &|g| g.to_owned(), true))
            (rate_table("rates-route", "By route", &r.by_route, &|g| g.to_uppercase(), true))
            (rate_table("rates-dose", "By dose level (response after a dose at that level, mg/kg)", &r.by_dose, &|g| format!("{g} mg/kg"), false))
            (rate_table("rates-scale", "By primary scale", &r.by_scale, &|g| scale_name(g), true))
        }

        section.card #time-to-response {
            h2 { "Time to response" }
            p.muted { "Days from the first dose to the first response; patients who have not responded are censored at their last rating. " (km_summary(&r.time_to_response)) }
            @if !r.time_to_response.steps.is_empty() { (km_chart("km-response", "Not yet responded", &r.time_to_response, "without a response")) }
        }
        section.card #durability {
            h2 { "Durability of benefit" }
            p.muted { "Days from a patient's first response to relapse (the first later rating that no longer meets the response rule); patients without a relapse are censored at their last rating. " (km_summary(&r.durability)) }
            @if !r.durability.steps.is_empty() { (km_chart("km-durability", "Still responding", &r.durability, "responding")) }
        }

        section.card #tolerability {
            h2 { "Tolerability" }
            h3 { "Dissociation (CADSS) across sessions" }
            table.list #cadss-table {
                thead { tr { th scope="col" { "Session" } th scope="col" { "Patients" } th scope="col" { "Mean CADSS (95 % CI)" } th scope="col" { "SD" } } }
                tbody { @for m in &r.dissociation { tr { td { (m.level) } td { (m.mean.n) } td { (f1(m.mean.mean)) " (" (f1(m.mean.lo)) "–" (f1(m.mean.hi)) ")" } td { (f1(m.mean.sd)) } } } }
            }
            h3 { "Blood pressure" }
            p {
                "Sessions whose peak passed " (o.rules.hypertension_systolic_above.normalize()) "/" (o.rules.hypertension_diastolic_above.normalize()) " mmHg: "
                strong #hypertensive-sessions { (pct(&r.blood_pressure.hypertensive)) } " " span.muted.small { (kn(&r.blood_pressure.hypertensive)) }
            }
            table.list #bp-table {
                thead { tr { th scope="col" { "Dose level" } th scope="col" { "Sessions" } th scope="col" { "Peak systolic rise, mmHg (95 % CI)" } th scope="col" { "Peak diastolic rise, mmHg (95 % CI)" } } }
                tbody {
                    @for m in &r.blood_pressure.systolic_rise {
                        @let d = r.blood_pressure.diastolic_rise.iter().find(|x| x.level == m.level);
                        tr { td { (m.level) " mg/kg" } td { (m.mean.n) } td { (f1(m.mean.mean)) " (" (f1(m.mean.lo)) "–" (f1(m.mean.hi)) ")" }
                             td { @if let Some(d) = d { (f1(d.mean.mean)) " (" (f1(d.mean.lo)) "–" (f1(d.mean.hi)) ")" } @else { "—" } } }
                    }
                }
            }
            h3 { "Adverse events" }
            p #adverse-events {
                @match &r.adverse_events {
                    Some(a) => { strong { (f1(a.rate)) " per 100 sessions" } " (95 % CI " (f1(a.lo)) "–" (f1(a.hi)) "): " (a.events) " events in " (a.exposure) " sessions with a dose." }
                    None => { "No treatment sessions with a dose." }
                }
            }
        }

        section.card #functioning {
            h2 { "Functioning and quality of life" }
            p.muted { "Patients with a rating at or before the first dose and one after it: the baseline and the last rating. On the Sheehan Disability Scale lower is better; on Q-LES-Q-SF higher is better." }
            table.list #functioning-table {
                thead { tr { th scope="col" { "Scale" } th scope="col" { "Patients" } th scope="col" { "Before" } th scope="col" { "After" } th scope="col" { "Change (95 % CI)" } } }
                tbody {
                    @for b in &r.functioning {
                        tr { td { (state.app.knowledge().instrument(&b.scale).map(|i| i.name.clone()).unwrap_or_else(|| b.scale.clone())) } td { (b.change.n) }
                             td { (f1(b.before.mean)) } td { (f1(b.after.mean)) } td { (f1(b.change.mean)) " (" (f1(b.change.lo)) "–" (f1(b.change.hi)) ")" } }
                    }
                }
            }
        }

        section.card #subgroups {
            h2 { "Subgroups and biomarkers (exploratory)" }
            p.alert.alert-warn { "Hypothesis-generating only: small strata, many comparisons, and covariates recorded for some patients only. Do not change treatment on these numbers." }
            table.list #strata-table {
                thead { tr { th scope="col" { "Covariate" } th scope="col" { "Stratum" } th scope="col" { "Patients" } th scope="col" { "Response (95 % CI)" } } }
                tbody {
                    @for s in &r.strata {
                        @let label = o.rules.covariates.iter().find(|c| c.key == s.covariate).map(|c| c.label.clone()).unwrap_or_else(|| s.covariate.clone());
                        tr { td { (label) } td { (s.level) } td { (s.rate.n) @if s.rate.small { " " span.badge.level-watch { "small n" } } } td { (pct(&s.rate.response)) } }
                    }
                }
            }
            h3 { "Logistic regression of response" }
            p.muted { "Odds ratios per unit (per yes for yes/no covariates) with 95 % Wald intervals: each covariate alone, on the patients who have it, and the covariates most patients have, together (complete cases)." }
            table.list #regression-table {
                thead { tr { th scope="col" { "Covariate" } th scope="col" { "Patients" } th scope="col" { "Responders" } th scope="col" { "Odds ratio alone (95 % CI)" } th scope="col" { "Together (95 % CI)" } } }
                tbody {
                    @for u in &r.univariable {
                        @let t = &u.terms[0];
                        @let label = o.rules.covariates.iter().find(|c| c.key == t.covariate).map(|c| c.label.clone()).unwrap_or_else(|| t.covariate.clone());
                        @let together = r.regression.as_ref().and_then(|m| m.terms.iter().find(|x| x.covariate == t.covariate));
                        tr data-covariate=(t.covariate) {
                            td { (label) }
                            td { (u.n) }
                            td { (u.events) }
                            td { (odds(t)) @if u.small || u.separation || !u.converged { " " span.badge.level-watch title=(fit_warning(u, small)) { "unstable" } } }
                            td { @if let Some(x) = together { (odds(x)) } @else { "—" } }
                        }
                    }
                }
            }
            @if let Some(m) = &r.regression {
                p.small #regression-model { "Together: " (m.n) " patients with every one of " (m.terms.len()) " covariates, " (m.events) " responders. " @if m.small || m.separation || !m.converged { strong #regression-warning { (fit_warning(m, small)) } } }
            }
            p.small.muted { "Covariates: " (o.rules.covariates.iter().map(|c| format!("{} ({})", c.label, c.source)).collect::<Vec<_>>().join(" · ")) }
        }
    };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, layout(Some(&p), "Cohort outcomes", body)).into_response())
}

async fn outcomes_csv(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<FilterQuery>) -> PageResult {
    let filter = parse_filter(&q).map_err(|e| ui(AppError::Validation(e)))?;
    let o = state.app.cohort_outcomes(&p, &filter).await.map_err(ui)?;
    let text = to_csv(&o).map_err(|e| ui(AppError::Internal(format!("writing the CSV: {e}"))))?;
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"cohort-outcomes.csv\"")],
        text,
    )
        .into_response())
}

/// Every table of the analysis in one long CSV: `section, group, measure, n, k, estimate, lo,
/// hi, note` (proportions as fractions, rates per 100 sessions, means in the scale's units).
pub fn to_csv(o: &CohortOutcomes) -> Result<String, csv::Error> {
    let r = &o.report;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["section", "group", "measure", "n", "k", "estimate", "lo", "hi", "note"])?;
    let num = |v: f64| format!("{v:.4}");
    let prop = |w: &mut csv::Writer<Vec<u8>>,
                section: &str,
                group: &str,
                measure: &str,
                p: &Option<Proportion>,
                note: &str|
     -> Result<(), csv::Error> {
        match p {
            Some(p) => {
                w.write_record([section, group, measure, &p.n.to_string(), &p.k.to_string(), &num(p.p), &num(p.lo), &num(p.hi), note])
            }
            None => w.write_record([section, group, measure, "0", "0", "", "", "", note]),
        }
    };
    let groups: [(&str, &[GroupRate]); 6] = [
        ("overall", std::slice::from_ref(&r.overall)),
        ("diagnosis", &r.by_diagnosis),
        ("protocol", &r.by_protocol),
        ("route", &r.by_route),
        ("dose_mg_per_kg", &r.by_dose),
        ("scale", &r.by_scale),
    ];
    for (section, rows) in groups {
        for g in rows {
            let note = if g.small { "small n" } else { "" };
            prop(&mut w, section, &g.group, "response", &g.response, note)?;
            if g.remission.is_some() {
                prop(&mut w, section, &g.group, "remission", &g.remission, note)?;
            }
        }
    }
    for e in &r.evidence {
        prop(&mut w, "evidence", &e.study, "published_response", &e.published, &e.definition)?;
        prop(
            &mut w,
            "evidence",
            &e.study,
            "clinic_response",
            &e.clinic,
            e.note.as_deref().unwrap_or(if e.small { "small n" } else { "" }),
        )?;
    }
    for (section, km) in [("time_to_response", &r.time_to_response), ("durability", &r.durability)] {
        for s in &km.steps {
            w.write_record([
                section,
                &num(s.time),
                "survival",
                &s.at_risk.to_string(),
                &s.events.to_string(),
                &num(s.survival),
                &num(s.lo),
                &num(s.hi),
                &format!("censored {}", s.censored),
            ])?;
        }
        if let Some(m) = km.median {
            w.write_record([section, "", "median_days", &km.n.to_string(), &km.events.to_string(), &num(m), "", "", ""])?;
        }
    }
    let mean = |w: &mut csv::Writer<Vec<u8>>, section: &str, group: &str, measure: &str, m: &ketacare_domain::stats::MeanCi| {
        w.write_record([section, group, measure, &m.n.to_string(), "", &num(m.mean), &num(m.lo), &num(m.hi), &format!("sd {}", num(m.sd))])
    };
    for m in &r.dissociation {
        mean(&mut w, "dissociation_by_session", &m.level, "cadss_mean", &m.mean)?;
    }
    for m in &r.blood_pressure.systolic_rise {
        mean(&mut w, "blood_pressure", &m.level, "peak_systolic_rise_mmhg", &m.mean)?;
    }
    for m in &r.blood_pressure.diastolic_rise {
        mean(&mut w, "blood_pressure", &m.level, "peak_diastolic_rise_mmhg", &m.mean)?;
    }
    prop(&mut w, "blood_pressure", "all", "hypertensive_sessions", &r.blood_pressure.hypertensive, "")?;
    if let Some(a) = &r.adverse_events {
        w.write_record([
            "adverse_events",
            "all",
            "per_100_sessions",
            &a.exposure.to_string(),
            &a.events.to_string(),
            &num(a.rate),
            &num(a.lo),
            &num(a.hi),
            "Byar",
        ])?;
    }
    for b in &r.functioning {
        mean(&mut w, "functioning", &b.scale, "before", &b.before)?;
        mean(&mut w, "functioning", &b.scale, "after", &b.after)?;
        mean(&mut w, "functioning", &b.scale, "change", &b.change)?;
    }
    for s in &r.strata {
        prop(
            &mut w,
            "strata",
            &format!("{}: {}", s.covariate, s.level),
            "response",
            &s.rate.response,
            if s.rate.small { "small n" } else { "" },
        )?;
    }
    let models =
        r.univariable.iter().map(|m| ("logistic_univariable", m)).chain(r.regression.iter().map(|m| ("logistic_multivariable", m)));
    for (section, reg) in models {
        for t in &reg.terms {
            let mut note = Vec::new();
            if reg.small {
                note.push("few events per covariate");
            }
            if reg.separation {
                note.push("separation");
            }
            w.write_record([
                section,
                &t.covariate,
                "odds_ratio",
                &reg.n.to_string(),
                &reg.events.to_string(),
                &num(t.or),
                &num(t.lo),
                &num(t.hi),
                &note.join("; "),
            ])?;
        }
    }
    w.write_record(["counts", "all", "patients", &r.patients.to_string(), "", "", "", "", ""])?;
    w.write_record(["counts", "all", "treated", &r.treated.to_string(), "", "", "", "", ""])?;
    w.write_record(["counts", "all", "evaluable", &r.evaluable.to_string(), "", "", "", "", ""])?;
    let bytes = w.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Each scale's response and remission rule in words, as the clinic applies it (`at_most` is
/// "≤" on the page, "at most" in the PDF's standard fonts).
pub(crate) fn scale_definitions(rules: &ketacare_domain::cohort::CohortRules, at_most: &str) -> Vec<String> {
    rules
        .scales
        .iter()
        .map(|s| {
            let rem = s.remission_max.map(|m| format!("; remission total {at_most} {}", m.normalize())).unwrap_or_default();
            format!(
                "{}: response {} {} % reduction{rem}",
                s.name,
                if s.strict { "above" } else { "at least" },
                s.response_percent.normalize()
            )
        })
        .collect()
}
