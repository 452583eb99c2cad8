//! Long-term safety in the staff UI: the clinic safety board (`/safety`), a patient's safety page
//! (cumulative exposure, signals with their data, action and source, liver and bladder
//! surveillance, safety observations, outcomes and functioning, and the periodic benefit-risk
//! review), the care plan with its editor, and the plain-language care plan the patient takes
//! home.
//!
//! Forms follow the other pages: POST, then a redirect to the page (GET); a refused form is shown
//! again with status 422, the typed values kept and each problem next to its field.

use crate::error::WebError;
use crate::extract::Auth;
use crate::forms::{f, Fields};
use crate::pages::{check_csrf, pid, ui, PageResult};
use crate::svg_chart::{time_chart, RefLine, TimeChart, TimeKind, TimeSeries};
use crate::views::{csrf, input, layout, select, textarea};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use ketacare_app::{AppError, BoardRow, Principal, SafetyView, ScaleTrend};
use ketacare_domain::access::{Permission, Role};
use ketacare_domain::dose::Route;
use ketacare_domain::ids::RecordId;
use ketacare_domain::instrument::Direction;
use ketacare_domain::safety::{
    CarePlan, Goal, GoalKind, LabInput, LabTest, Level, ReviewDecision, SafetyEvent, SafetyEventInput, SafetyEventKind, SafetyRules,
    Signal, Therapy,
};
use ketacare_domain::validation::FieldErrors;
use ketacare_knowledge::Knowledge;
use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::str::FromStr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/safety", get(board_page))
        .route("/patients/{id}/safety", get(safety_page))
        .route("/patients/{id}/safety/labs", post(add_lab))
        .route("/patients/{id}/safety/observations", post(add_event))
        .route("/patients/{id}/safety/reviews", post(sign_review))
        .route("/patients/{id}/care-plan", get(care_plan_page).post(save_care_plan))
        .route("/patients/{id}/care-plan/print", get(care_plan_print))
}

/// Goal rows on the care-plan form.
const GOAL_ROWS: usize = 4;
/// Psychotherapy rows on the care-plan form.
const THERAPY_ROWS: usize = 3;
/// Instruments offered for a target-score goal, in this order (those in the catalogue).
const GOAL_INSTRUMENTS: [&str; 7] = ["gad7", "hama", "lsas", "phq9", "fq", "sds", "qlesq_sf"];

fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

use crate::views::minute as when;

fn f64_of(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn level_label(l: Level) -> &'static str {
    match l {
        Level::Review => "Review",
        Level::Watch => "Watch",
    }
}

/// A due date with how far off it is; overdue and due today are marked.
fn due(d: Option<NaiveDate>, today: NaiveDate, none: &str) -> Markup {
    match d {
        None => html! { span.muted { (none) } },
        Some(d) if d < today => {
            let n = (today - d).num_days() as usize;
            html! { span.due-date.overdue data-due=(d) { strong { (d) } " " small { "overdue by " (plural(n, "day", "days")) } } }
        }
        Some(d) if d == today => html! { span.due-date.due-today data-due=(d) { strong { (d) } " " small { "due today" } } },
        Some(d) => {
            let n = (d - today).num_days() as usize;
            html! { span.due-date data-due=(d) { (d) " " small { "in " (plural(n, "day", "days")) } } }
        }
    }
}

fn options(xs: &[(&str, &str)]) -> Vec<(String, String)> {
    xs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

/// The problems of a refused form, each naming its field and linking to it.
fn form_problems(errors: &FieldErrors, labels: &[(&str, &str)]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.alert.alert-error role="alert" {
                p { strong { "Nothing was saved. Please correct the following:" } }
                ul {
                    @for e in errors.iter() {
                        @let label = labels.iter().find(|(k, _)| *k == e.field).map(|(_, l)| *l);
                        li {
                            @match label {
                                Some(l) => a href=(format!("#f-{}", e.field)) { (l) " " (e.message) },
                                None => { (e.message) },
                            }
                        }
                    }
                }
            }
        }
    }
}

fn patient_links(id: &str, here: &str) -> Markup {
    let links =
        [("", "← Chart"), ("/safety", "Long-term safety"), ("/care-plan", "Care plan"), ("/dosing", "Dosing"), ("/outcomes", "Outcomes")];
    html! {
        nav.crumbs aria-label="Patient" {
            @for (i, (path, label)) in links.iter().enumerate() {
                @if i > 0 { " · " }
                @if *path == here { span aria-current="page" { (label) } }
                @else { a href=(format!("/patients/{id}{path}")) { (label) } }
            }
            " · " a href="/safety" { "Safety board" }
        }
    }
}

// ---------------------------------------------------------------- the clinic safety board

#[derive(serde::Deserialize)]
struct BoardQuery {
    sort: Option<String>,
}

/// Sortable columns: (query value, heading).
const BOARD_COLUMNS: [(&str, &str); 7] = [
    ("patient", "Patient"),
    ("mrn", "MRN"),
    ("signals", "Signals"),
    ("questionnaires", "Overdue question\u{ad}naires"),
    ("alerts", "Open alerts"),
    ("review", "Review due"),
    ("labs", "Labs due"),
];

fn sort_board(rows: &mut [BoardRow], by: &str) {
    // Stable sorts: ties keep the app's order (most review signals first).
    let date = |d: Option<NaiveDate>| d.unwrap_or(NaiveDate::MAX);
    match by {
        "patient" => rows.sort_by_key(|r| r.name.to_lowercase()),
        "mrn" => rows.sort_by(|a, b| a.mrn.cmp(&b.mrn)),
        "signals" => rows.sort_by_key(|r| (std::cmp::Reverse(r.review_count()), std::cmp::Reverse(r.signals.len()))),
        "questionnaires" => rows.sort_by_key(|r| std::cmp::Reverse(r.overdue_questionnaires)),
        "alerts" => rows.sort_by_key(|r| std::cmp::Reverse(r.open_alerts)),
        "review" => rows.sort_by_key(|r| date(r.review_due)),
        "labs" => rows.sort_by_key(|r| date(r.labs_due)),
        _ => {}
    }
}

async fn board_page(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<BoardQuery>) -> PageResult {
    let mut rows = state.app.safety_board(&p).await.map_err(ui)?;
    let today = state.app.clock().now().date_naive();
    let sort = q.sort.unwrap_or_default();
    let sort = if BOARD_COLUMNS.iter().any(|(k, _)| *k == sort) { sort } else { String::new() };
    sort_board(&mut rows, &sort);
    let with_review = rows.iter().filter(|r| r.review_count() > 0).count();
    let with_overdue = rows.iter().filter(|r| r.overdue_questionnaires > 0).count();
    let with_alerts = rows.iter().filter(|r| r.open_alerts > 0).count();
    let reviews_overdue = rows.iter().filter(|r| r.review_due.is_some_and(|d| d < today)).count();
    let body = html! {
        h1 { "Safety board" }
        p.muted { "Every patient with an open long-term safety signal, an overdue liver panel, questionnaire or benefit-risk review, or an unacknowledged safety alert. Open a patient to see the data each signal rests on." }
        p #board-count.count-line {
            strong { (plural(rows.len(), "patient needs", "patients need")) " attention" }
            " · " (with_review) " with a signal for review before the next dose"
            " · " (reviews_overdue) " with the benefit-risk review overdue"
            " · " (with_overdue) " with overdue questionnaires"
            " · " (with_alerts) " with open safety alerts"
        }
        p.small.legend-line {
            span.badge.level-review { "Review" } " needs the prescriber's review before the next dose. "
            span.badge.level-watch { "Watch" } " keep watching; no action needed before the next dose."
        }
        @if rows.is_empty() {
            p.alert.alert-ok { "No patient needs attention now." }
        } @else {
            p.small.sort-line {
                "Sorted by " strong { (BOARD_COLUMNS.iter().find(|(k, _)| *k == sort).map(|(_, l)| *l).unwrap_or("review signals, then open alerts")) }
                @if !sort.is_empty() { " · " a href="/safety" { "Back to the default order" } }
            }
            div.table-scroll {
                table.list.safety-board #safety-board {
                    caption.visually-hidden { "Patients needing attention. Column headings sort the table." }
                    thead {
                        tr {
                            @for (key, label) in BOARD_COLUMNS {
                                th scope="col" aria-sort=[(sort == key).then_some(if matches!(key, "patient" | "mrn" | "review" | "labs") { "ascending" } else { "descending" })] {
                                    a href=(format!("/safety?sort={key}")) { (label) }
                                }
                            }
                        }
                    }
                    tbody {
                        @for r in &rows {
                            tr data-patient=(r.patient) data-mrn=(r.mrn) {
                                td { a href=(format!("/patients/{}/safety", r.patient)) { (r.name) } }
                                td { (r.mrn) }
                                td.signals {
                                    @if r.signals.is_empty() { span.muted { "none" } }
                                    ul.signal-badges {
                                        @for (code, level, title) in &r.signals {
                                            li data-signal=(code) data-level=(level.code()) {
                                                span.badge.(format!("level-{}", level.code())) { (level_label(*level)) } " " (title)
                                            }
                                        }
                                    }
                                }
                                td.num { @if r.overdue_questionnaires > 0 { strong.overdue { (r.overdue_questionnaires) } } @else { "0" } }
                                td.num { @if r.open_alerts > 0 { strong.overdue { (r.open_alerts) } } @else { "0" } }
                                td { (due(r.review_due, today, "—")) }
                                td { (due(r.labs_due, today, "—")) }
                            }
                        }
                    }
                }
            }
            p.small.muted { "A dash: no review due (the patient is not on maintenance) or no liver panel due." }
        }
    };
    Ok(layout(Some(&p), "Safety board", body).into_response())
}

// ---------------------------------------------------------------- the patient's safety page

/// Which form on the safety page the values and errors belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Active {
    None,
    Lab,
    Event,
    Review,
}

const LAB_LABELS: [(&str, &str); 6] = [
    ("test", "Test"),
    ("value", "Result"),
    ("unit", "Unit"),
    ("uln", "Upper limit of normal (ULN)"),
    ("sampled_at", "Sampled at (UTC; empty = now)"),
    ("lab", "Laboratory (optional)"),
];

const EVENT_LABELS: [(&str, &str); 6] = [
    ("kind", "What was observed"),
    ("score", "Craving rating, 0 (none) to 10 (worst)"),
    ("result", "Result"),
    ("substances", "Substances"),
    ("note", "Note"),
    ("at", "When (UTC; empty = now)"),
];

const REVIEW_LABELS: [(&str, &str); 3] = [("decision", "Decision"), ("reasons", "Reasons"), ("next_review", "Next review date")];

fn label_of(labels: &[(&str, &str)], k: &str) -> String {
    labels.iter().find(|(a, _)| *a == k).map(|(_, l)| (*l).to_owned()).unwrap_or_default()
}

fn test_name(t: LabTest) -> &'static str {
    match t {
        LabTest::Alt => "ALT (alanine aminotransferase)",
        LabTest::Ast => "AST (aspartate aminotransferase)",
        LabTest::Alp => "ALP (alkaline phosphatase)",
        LabTest::Ggt => "GGT (gamma-glutamyl transferase)",
        LabTest::Bilirubin => "Bilirubin (total)",
    }
}

/// The multiple of ULN above which a test needs the prescriber's review (local policy).
fn review_multiple(r: &SafetyRules, t: LabTest) -> Option<Decimal> {
    match t {
        LabTest::Alt => Some(r.alt_review_multiple.value),
        LabTest::Alp => Some(r.alp_review_multiple.value),
        LabTest::Ggt => Some(r.ggt_review_multiple.value),
        LabTest::Ast | LabTest::Bilirubin => None,
    }
}

fn signal_item(s: &Signal) -> Markup {
    html! {
        li.signal.(s.level.code()) data-signal=(s.code) data-level=(s.level.code()) {
            p.signal-title { span.badge.(format!("level-{}", s.level.code())) { (level_label(s.level)) } " " strong { (s.title) } }
            @if !s.data.is_empty() {
                div.signal-data {
                    span.muted { "Data:" }
                    ul { @for d in &s.data { li { (d) } } }
                }
            }
            p.signal-action { strong { "Action: " } (s.action) }
            p.source { "Source: " (s.source) }
        }
    }
}

fn exposure_section(v: &SafetyView, now: DateTime<Utc>) -> Markup {
    let c = &v.assessment.cumulative;
    let window = Duration::days(28);
    let total_at = |t: DateTime<Utc>| -> Decimal { v.doses.iter().filter(|d| d.at <= t && d.at > t - window).map(|d| d.mg).sum() };
    // The rolling 28-day total changes when a dose is given and when it leaves the window.
    let mut times: Vec<DateTime<Utc>> =
        v.doses.iter().filter(|d| d.at <= now).flat_map(|d| [d.at, d.at + window]).filter(|t| *t <= now).collect();
    if !v.doses.is_empty() {
        times.push(now);
    }
    times.sort();
    times.dedup();
    let rolling: Vec<(i64, f64, String)> = times
        .iter()
        .map(|t| {
            let mg = total_at(*t);
            (t.timestamp(), f64_of(mg), format!("{}: {} mg in the 28 days up to then", when(*t), dec(mg)))
        })
        .collect();
    let bars: Vec<(i64, f64, String)> = v
        .doses
        .iter()
        .filter(|d| d.at <= now)
        .map(|d| {
            let per_kg =
                if d.weight_kg > Decimal::ZERO { format!(" ({} mg/kg)", dec((d.mg / d.weight_kg).round_dp(2))) } else { String::new() };
            (d.at.timestamp(), f64_of(d.mg), format!("{}: {} mg{per_kg}", when(d.at), dec(d.mg)))
        })
        .collect();
    let caps28 = c.windows.iter().find(|w| w.days == Some(28)).and_then(|w| w.caps);
    let cap_labels = caps28.map(|(s, h)| (format!("28-day soft limit {} mg", dec(s)), format!("28-day hard limit {} mg", dec(h))));
    // The limits are drawn when the totals come near them; far below, they would flatten the bars.
    let peak = rolling.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let draw_caps = caps28.is_some_and(|(s, _)| peak >= 0.4 * f64_of(s));
    let mut refs = Vec::new();
    if let (true, Some((s, h)), Some((ls, lh))) = (draw_caps, caps28, &cap_labels) {
        refs.push(RefLine { value: f64_of(s), label: ls.as_str() });
        refs.push(RefLine { value: f64_of(h), label: lh.as_str() });
    }
    let caption = match caps28 {
        Some(_) if draw_caps => " Dashed: the drug library's 28-day limits for the route.".to_owned(),
        Some((s, h)) => format!(" The drug library's 28-day limits ({} mg soft, {} mg hard) are far above and not drawn.", dec(s), dec(h)),
        None => String::new(),
    };
    let now28 = total_at(now);
    let rolling_label = format!("Rolling 28-day total (mg): {} mg now", dec(now28));
    let chart = (!bars.is_empty()).then(|| {
        time_chart(&TimeChart {
            id: "exposure-chart",
            title: "Ketamine given: each dose and the rolling 28-day total".into(),
            desc: format!(
                "{} doses from {} to {}; {} mg in the last 28 days{}",
                bars.len(),
                v.doses.first().map(|d| d.at.format("%Y-%m-%d").to_string()).unwrap_or_default(),
                v.doses.last().map(|d| d.at.format("%Y-%m-%d").to_string()).unwrap_or_default(),
                dec(now28),
                caps28.map(|(s, h)| format!(" (drug library limits {} mg soft, {} mg hard)", dec(s), dec(h))).unwrap_or_default()
            ),
            y_label: "mg",
            series: vec![
                TimeSeries { label: "Dose given (mg)", kind: TimeKind::Bars, points: bars, last_label: None },
                TimeSeries { label: &rolling_label, kind: TimeKind::Step, points: rolling, last_label: None },
            ],
            refs,
            y_at_least: 10.0,
            y_top: None,
        })
    });
    let (recent, before) = c.sessions_28d;
    html! {
        section.card #exposure {
            h2 { "Cumulative exposure" }
            div.table-scroll {
                table.list #exposure-windows {
                    thead { tr { th { "Window" } th { "Doses" } th { "Total mg" } th { "Total mg/kg" } th { "Drug library limit (soft / hard)" } th { "Status" } } }
                    tbody {
                        @for w in &c.windows {
                            @let state = match w.caps { Some((_, h)) if w.mg > h => Some("above the hard limit"), Some((s, _)) if w.mg > s => Some("above the soft limit"), Some(_) => Some("within the limits"), None => None };
                            tr.over-cap[matches!(w.caps, Some((s, _)) if w.mg > s)] data-window=(w.label) {
                                th scope="row" { (w.label) }
                                td.num { (w.doses) }
                                td.num { (dec(w.mg)) }
                                td.num { (dec(w.mg_per_kg)) }
                                td { @match w.caps { Some((s, h)) => { (dec(s)) " / " (dec(h)) " mg" }, None => span.muted { "no limit in the drug library" } } }
                                td { @match state { Some(t) if t.starts_with("above") => strong.overdue { (t) }, Some(t) => { (t) }, None => span.muted { "—" } } }
                            }
                        }
                    }
                }
            }
            @match chart {
                Some(ch) => figure.pk-figure.safety-figure { (ch) figcaption { "Bars: each dose given (double-checked orders). Line: the total of the 28 days up to each moment; it falls when a dose leaves the window." (caption) } },
                None => p.muted { "No doses given yet." },
            }
            h3 { "Session frequency" }
            dl #session-frequency {
                dt { "Sessions in the last 28 days" } dd { strong { (recent) } " (" (before) " in the 28 days before)" }
                dt { "Median interval, last three doses" }
                dd { @match c.median_interval_days.0 { Some(d) => { (dec(d)) " days" }, None => span.muted { "too few doses" } }
                    @if let Some(d) = c.median_interval_days.1 { " (" (dec(d)) " days for the three before)" } }
            }
        }
    }
}

fn liver_section(
    p: &Principal,
    id: &str,
    v: &SafetyView,
    k: &Knowledge,
    today: NaiveDate,
    values: &Fields,
    errors: &FieldErrors,
) -> Markup {
    let r = &k.safety;
    let present: Vec<LabTest> = LabTest::ALL.into_iter().filter(|t| v.labs.iter().any(|(_, l)| l.test == *t)).collect();
    let last_labels: Vec<(LabTest, String)> = present
        .iter()
        .filter_map(|t| {
            v.labs.iter().rev().find(|(_, l)| l.test == *t).map(|(_, l)| (*t, format!("{} {} × ULN", t.label(), dec(l.multiple()))))
        })
        .collect();
    let series: Vec<TimeSeries> = present
        .iter()
        .map(|t| TimeSeries {
            label: t.label(),
            kind: TimeKind::Line,
            points: v
                .labs
                .iter()
                .filter(|(_, l)| l.test == *t)
                .map(|(_, l)| {
                    (
                        l.sampled_at.timestamp(),
                        f64_of(l.multiple()),
                        format!(
                            "{} {} {} {}: {} × ULN (ULN {})",
                            when(l.sampled_at),
                            t.label(),
                            dec(l.value),
                            l.unit,
                            dec(l.multiple()),
                            dec(l.uln)
                        ),
                    )
                })
                .collect(),
            // Only the tests above the upper limit are labelled: the others would crowd the chart.
            last_label: last_labels
                .iter()
                .find(|(x, _)| x == t)
                .filter(|_| v.labs.iter().rev().find(|(_, l)| l.test == *t).is_some_and(|(_, l)| l.value > l.uln))
                .map(|(_, s)| s.clone()),
        })
        .collect();
    // One dashed line per review multiple, naming the tests it applies to.
    let mut multiples: Vec<(Decimal, Vec<&str>)> = Vec::new();
    for t in &present {
        if let Some(m) = review_multiple(r, *t) {
            match multiples.iter_mut().find(|(x, _)| *x == m) {
                Some((_, ts)) => ts.push(t.label()),
                None => multiples.push((m, vec![t.label()])),
            }
        }
    }
    let ref_labels: Vec<(f64, String)> = std::iter::once((1.0, "Upper limit of normal (1 × ULN)".to_owned()))
        .chain(multiples.iter().map(|(m, ts)| (f64_of(*m), format!("{}: review above {} × ULN", ts.join(", "), dec(*m)))))
        .collect();
    let chart = (!series.is_empty()).then(|| {
        time_chart(&TimeChart {
            id: "liver-chart",
            title: "Liver tests as multiples of the laboratory's upper limit of normal".into(),
            desc: last_labels.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>().join("; "),
            y_label: "× upper limit of normal",
            series,
            refs: ref_labels.iter().map(|(v, l)| RefLine { value: *v, label: l.as_str() }).collect(),
            y_at_least: 1.5,
            y_top: None,
        })
    });
    let lab_values = if values.is_empty() {
        let mut m = Fields::new();
        m.insert("unit".into(), "U/L".into());
        m
    } else {
        values.clone()
    };
    let mut newest_first: Vec<&(ketacare_domain::record::RecordVersion, ketacare_domain::safety::LabResult)> = v.labs.iter().collect();
    newest_first.sort_by_key(|(_, l)| (std::cmp::Reverse(l.sampled_at), l.test));
    let mut tests = vec![(String::new(), "Choose the test".to_owned())];
    tests.extend(LabTest::ALL.iter().map(|t| (t.code().to_owned(), test_name(*t).to_owned())));
    let l = |k: &str| label_of(&LAB_LABELS, k);
    html! {
        section.card #liver {
            h2 { "Liver" }
            dl.facts {
                dt { "Pattern" }
                dd #r-ratio {
                    @match v.assessment.liver.r_ratio {
                        Some((rr, pattern)) => { "R ratio " strong { (dec(rr)) } ": " strong { (pattern) } " pattern (ALT and ALP of the same day; hepatocellular at " (dec(r.r_hepatocellular.value)) " or more, cholestatic at " (dec(r.r_cholestatic.value)) " or less)" },
                        None => span.muted { "No ALT and ALP of the same day: the R ratio cannot be worked out." },
                    }
                }
                dt { "Next liver panel" }
                dd #labs-due { (due(v.assessment.labs_due, today, "not due (not on maintenance)")) }
            }
            @match chart {
                Some(ch) => figure.pk-figure.safety-figure { (ch) figcaption { "Each test's value divided by the reporting laboratory's own upper limit of normal. Dashed: the upper limit and the review thresholds of local policy." } },
                None => p.muted { "No liver tests recorded." },
            }
            @if !v.labs.is_empty() {
                div.table-scroll {
                    table.list #labs {
                        caption { "Liver test results, newest first" }
                        thead { tr { th { "Sampled (UTC)" } th { "Test" } th.num { "Value" } th { "Unit" } th.num { "ULN" } th.num { "× ULN" } th { "Laboratory" } th { "Recorded by" } } }
                        tbody {
                            @for (rv, lr) in &newest_first {
                                @let m = lr.multiple();
                                @let above_review = review_multiple(r, lr.test).is_some_and(|x| m > x);
                                tr data-test=(lr.test.code()) {
                                    td { (when(lr.sampled_at)) }
                                    td { (lr.test.label()) }
                                    td.num { (dec(lr.value)) }
                                    td { (lr.unit) }
                                    td.num { (dec(lr.uln)) }
                                    td.num.multiple.above-review[above_review].above-uln[lr.value > lr.uln] data-multiple=(dec(m)) { (dec(m)) " ×" }
                                    td { (lr.lab.as_deref().unwrap_or("—")) }
                                    td.small { (rv.provenance.username) " · " a href=(format!("/records/{}", rv.record_id)) { "record" } }
                                }
                            }
                        }
                    }
                }
            }
            @if p.can(Permission::WriteClinical) {
                form.card.inset #lab-form method="post" action=(format!("/patients/{id}/safety/labs#lab-form")) novalidate {
                    h3 { "Add a liver test result" }
                    (csrf(p))
                    (form_problems(errors, &LAB_LABELS))
                    div.form-row {
                        (select("test", &l("test"), &tests, &lab_values, errors))
                        (input("value", &l("value"), &lab_values, errors, "decimal", Some("As printed on the report")))
                        (input("unit", &l("unit"), &lab_values, errors, "text", Some("U/L; bilirubin umol/L or mg/dL")))
                        (input("uln", &l("uln"), &lab_values, errors, "decimal", Some("The laboratory's own upper limit, same unit")))
                    }
                    div.form-row {
                        (input("sampled_at", &l("sampled_at"), &lab_values, errors, "datetime-local", None))
                        (input("lab", &l("lab"), &lab_values, errors, "text", None))
                    }
                    button.primary type="submit" { "Add result" }
                }
            }
        }
    }
}

fn event_details(e: &SafetyEvent) -> String {
    let mut parts = Vec::new();
    if let Some(s) = e.score {
        parts.push(format!("craving {s}/10"));
    }
    if let Some(pos) = e.positive {
        parts.push(if pos { "positive".to_owned() } else { "negative".to_owned() });
    }
    if let Some(s) = &e.substances {
        parts.push(s.clone());
    }
    if let Some(n) = &e.note {
        parts.push(n.clone());
    }
    parts.join(" · ")
}

fn bladder_section(p: &Principal, id: &str, v: &SafetyView, k: &Knowledge, today: NaiveDate) -> Markup {
    let r = &k.safety;
    let icsi: Option<&ScaleTrend> = v.scales.iter().find(|s| s.instrument == "icsi");
    let top = k.instrument("icsi").map(|i| f64_of(i.total_range().1)).unwrap_or(20.0);
    let blood: Vec<&SafetyEvent> = v.events.iter().map(|(_, e)| e).filter(|e| e.kind == SafetyEventKind::Haematuria).collect();
    let bladder_signals: Vec<&Signal> =
        v.assessment.signals.iter().filter(|s| s.code == "urinary_symptoms" || s.code == "haematuria").collect();
    let chart = icsi.filter(|s| !s.points.is_empty()).map(|s| {
        let base = s.points[0].1;
        let rise_label = format!("Baseline {} + {}: worsening (clinic policy)", dec(base), dec(r.icsi_rise_points.value));
        let new_label = format!("{} or more: new symptoms (clinic policy)", dec(r.icsi_at_or_above.value));
        let last = s.points[s.points.len() - 1].1;
        time_chart(&TimeChart {
            id: "icsi-chart",
            title: "Bladder symptoms: ICSI total over time".into(),
            desc: format!("{} questionnaires; baseline {}, latest {}", s.points.len(), dec(base), dec(last)),
            y_label: "ICSI total (0–20)",
            series: vec![TimeSeries {
                label: "ICSI total",
                kind: TimeKind::Line,
                points: s.points.iter().map(|(t, x)| (t.timestamp(), f64_of(*x), format!("{}: ICSI {}", when(*t), dec(*x)))).collect(),
                last_label: Some(format!("ICSI {}", dec(last))),
            }],
            refs: vec![
                RefLine { value: f64_of(r.icsi_at_or_above.value), label: &new_label },
                RefLine { value: f64_of(base + r.icsi_rise_points.value), label: &rise_label },
            ],
            y_at_least: 0.0,
            y_top: Some(top),
        })
    });
    html! {
        section.card #bladder {
            h2 { "Bladder" }
            dl.facts {
                dt { "Next bladder questionnaire (ICSI)" }
                dd #icsi-due { (due(v.assessment.icsi_due, today, "not due")) }
                @if let Some(s) = icsi.filter(|s| s.points.len() >= 2) {
                    @let (b, l) = (s.points[0].1, s.points[s.points.len() - 1].1);
                    dt { "ICSI" }
                    dd #icsi-change { "baseline " strong { (dec(b)) } " (" (s.points[0].0.format("%Y-%m-%d")) "), latest " strong { (dec(l)) } " (" (s.points[s.points.len() - 1].0.format("%Y-%m-%d")) "): "
                        @if l > b { "up " (dec(l - b)) } @else if l < b { "down " (dec(b - l)) } @else { "no change" } }
                }
            }
            @for s in &bladder_signals {
                div.alert.alert-error.referral data-signal=(s.code) {
                    p { strong { (s.title) } }
                    p { (s.action) }
                }
            }
            @match chart {
                Some(ch) => figure.pk-figure.safety-figure { (ch) figcaption { "Interstitial Cystitis Symptom Index, 0–20 (higher is worse). Dashed: the clinic's thresholds for new and worsening symptoms." } },
                None => p.muted { "No bladder questionnaire (ICSI) recorded." },
            }
            h3 { "Blood in the urine" }
            @if blood.is_empty() { p.muted #haematuria { "None recorded." } }
            @else {
                ul #haematuria { @for e in &blood { li { (when(e.at)) ": " strong { (if e.positive == Some(true) { "positive" } else { "negative" }) } @if let Some(n) = &e.note { " · " (n) } } } }
            }
            @if p.can(Permission::WriteClinical) {
                p.actions {
                    a.button href=(format!("/patients/{id}/assessments/new?instrument=icsi")) { "Record the bladder questionnaire (ICSI)" }
                    a.button href="#observation-form" { "Record haematuria" }
                }
            }
        }
    }
}

fn observations_section(p: &Principal, id: &str, v: &SafetyView, values: &Fields, errors: &FieldErrors) -> Markup {
    let mut kinds = vec![(String::new(), "Choose what was observed".to_owned())];
    kinds.extend(SafetyEventKind::ALL.iter().map(|k| (k.code().to_owned(), k.label().to_owned())));
    let results = options(&[("", "— not a test —"), ("positive", "Positive"), ("negative", "Negative")]);
    let l = |k: &str| label_of(&EVENT_LABELS, k);
    html! {
        section.card #observations {
            h2 { "Safety observations" }
            p.muted.small { "Requests for earlier sessions or higher doses, craving, substance use, urine toxicology and blood in the urine." }
            @if v.events.is_empty() { p.muted { "None recorded." } }
            @else {
                div.table-scroll {
                    table.list #observation-list {
                        thead { tr { th { "When (UTC)" } th { "What" } th { "Details" } th { "Recorded by" } } }
                        tbody {
                            @for (rv, e) in &v.events {
                                tr data-kind=(e.kind.code()) {
                                    td { (when(e.at)) }
                                    td { (e.kind.label()) }
                                    td { (event_details(e)) }
                                    td.small { (rv.provenance.username) }
                                }
                            }
                        }
                    }
                }
            }
            @if p.can(Permission::WriteClinical) {
                form.card.inset #observation-form method="post" action=(format!("/patients/{id}/safety/observations#observation-form")) novalidate {
                    h3 { "Record an observation" }
                    (csrf(p))
                    (form_problems(errors, &EVENT_LABELS))
                    div.form-row {
                        (select("kind", &l("kind"), &kinds, values, errors))
                        (input("score", &l("score"), values, errors, "number", Some("Craving only")))
                        (select("result", &l("result"), &results, values, errors))
                    }
                    div.form-row {
                        (input("substances", &l("substances"), values, errors, "text", Some("Toxicology and substance use")))
                        (input("at", &l("at"), values, errors, "datetime-local", None))
                    }
                    (textarea("note", &l("note"), values, errors))
                    button.primary type="submit" { "Record observation" }
                }
            }
        }
    }
}

fn scales_section(v: &SafetyView, k: &Knowledge) -> Markup {
    let scales: Vec<&ScaleTrend> = v.scales.iter().filter(|s| s.instrument != "icsi" && !s.points.is_empty()).collect();
    html! {
        section.card #functioning {
            h2 { "Outcomes and functioning" }
            @if scales.is_empty() { p.muted { "No anxiety, functioning or quality-of-life scales recorded." } }
            @else {
                div.table-scroll {
                    table.list #scales {
                        thead { tr { th { "Scale" } th { "Baseline" } th { "Latest" } th { "Change" } th.num { "Times rated" } } }
                        tbody {
                            @for s in &scales {
                                @let (b, l) = (&s.points[0], &s.points[s.points.len() - 1]);
                                @let better_up = k.instrument(&s.instrument).is_some_and(|i| i.direction == Direction::HigherIsBetter);
                                @let delta = l.1 - b.1;
                                tr data-instrument=(s.instrument) {
                                    th scope="row" { (s.name) }
                                    td { strong { (dec(b.1)) } " " span.muted { (b.0.format("%Y-%m-%d")) } }
                                    td { strong { (dec(l.1)) } " " span.muted { (l.0.format("%Y-%m-%d")) } }
                                    td {
                                        @if s.points.len() < 2 || delta.is_zero() { "—" }
                                        @else {
                                            (if delta > Decimal::ZERO { "+" } else { "" }) (dec(delta))
                                            " " span.muted { "(" (if (delta > Decimal::ZERO) == better_up { "better" } else { "worse" }) ")" }
                                        }
                                    }
                                    td.num { (s.points.len()) }
                                }
                            }
                        }
                    }
                }
            }
            p.small { a href=(format!("/patients/{}/outcomes", v.patient)) { "Charts of every rating scale" } }
        }
    }
}

fn review_section(
    p: &Principal,
    id: &str,
    v: &SafetyView,
    k: &Knowledge,
    today: NaiveDate,
    values: &Fields,
    errors: &FieldErrors,
) -> Markup {
    let interval = k.safety.review_interval_days.value.trunc().to_i64().unwrap_or(90);
    let evidence = ketacare_app::review_evidence(v);
    let mut decisions = vec![(String::new(), "Choose the decision".to_owned())];
    decisions.extend(ReviewDecision::ALL.iter().map(|d| (d.code().to_owned(), d.label().to_owned())));
    let signers: Vec<&str> = Role::ALL.iter().filter(|r| r.can(Permission::Prescribe)).map(|r| r.label()).collect();
    let l = |k: &str| label_of(&REVIEW_LABELS, k);
    let next_hint = format!("Empty: {} (in {interval} days, the clinic's interval)", today + Duration::days(interval));
    html! {
        section.card #review {
            h2 { "Benefit-risk review" }
            dl.facts {
                dt { "Next review" }
                dd #review-due { (due(v.assessment.review_due, today, "not due: the patient is not on maintenance")) }
                @if let Some((rv, r)) = v.reviews.first() {
                    dt { "Last review" }
                    dd { (rv.provenance.recorded_at.format("%Y-%m-%d")) ": " strong { (r.decision.label()) } " · " (rv.provenance.username) }
                }
            }
            details.evidence #review-evidence open[v.reviews.is_empty()] {
                summary { "The evidence frozen into the record when the review is signed (" (evidence.len()) " lines)" }
                ul { @for e in &evidence { li { (e) } } }
            }
            @if p.can(Permission::Prescribe) {
                form.card.inset #review-form method="post" action=(format!("/patients/{id}/safety/reviews#review-form")) novalidate {
                    h3 { "Sign a review" }
                    (csrf(p))
                    (form_problems(errors, &REVIEW_LABELS))
                    (select("decision", &l("decision"), &decisions, values, errors))
                    (textarea("reasons", &l("reasons"), values, errors))
                    (input("next_review", &l("next_review"), values, errors, "date", Some(&next_hint)))
                    p.small.muted { "Signing records your name and the time with the decision, the reasons and the evidence above; it cannot be changed afterwards." }
                    button.primary type="submit" { "Sign the review" }
                }
            } @else {
                p.alert.alert-warning #review-who { "Only a " (signers.join(" or a ").to_lowercase()) " may sign a benefit-risk review. You are logged in as " (p.role().label().to_lowercase()) "." }
            }
            h3 { "Signed reviews" }
            @if v.reviews.is_empty() { p.muted { "None yet." } }
            ol.reviews #reviews {
                @for (rv, r) in &v.reviews {
                    li.review data-decision=(r.decision.code()) {
                        p { strong.decision { (r.decision.label()) } " · signed by " (rv.provenance.username) " on " (when(rv.provenance.recorded_at)) " UTC · next review " (r.next_review) }
                        p.reasons { "Reasons: " (r.reasons) }
                        details {
                            summary { "Evidence at signing (" (r.evidence.len()) " lines" @if !r.signals.is_empty() { "; signals: " (r.signals.join(", ")) } ")" }
                            ul { @for e in &r.evidence { li { (e) } } }
                        }
                    }
                }
            }
        }
    }
}

async fn safety_body(
    state: &AppState,
    p: &Principal,
    id: &str,
    active: Active,
    values: &Fields,
    errors: &FieldErrors,
) -> Result<Markup, WebError> {
    let patient = pid(id)?;
    let pv = state.app.patient(p, patient).await.map_err(ui)?;
    let v = state.app.safety(p, patient).await.map_err(ui)?;
    let k = state.app.knowledge();
    let now = state.app.clock().now();
    let today = now.date_naive();
    let empty = Fields::new();
    let no_errors = FieldErrors::new();
    let pick = |a: Active| if a == active { (values, errors) } else { (&empty, &no_errors) };
    let a = &v.assessment;
    let review_n = a.signals.iter().filter(|s| s.level == Level::Review).count();
    let watch_n = a.signals.len() - review_n;
    let d = &pv.demographics;
    Ok(html! {
        (patient_links(id, "/safety"))
        h1 { "Long-term safety" }
        p.muted { (d.name.display()) " · MRN " (d.mrn.as_str()) " · "
            @match &v.plan { Some((_, t)) => { (t.protocol_name) " (" (t.route.label().to_lowercase()) ")" @if v.on_maintenance { " · on maintenance" } }, None => "no treatment plan" } }
        div.status-strip #safety-summary {
            div.status.review[review_n > 0] { span.status-label { "Signals" } span.status-value { (review_n) " review · " (watch_n) " watch" } }
            div.status.overdue[a.review_due.is_some_and(|x| x < today)] { span.status-label { "Benefit-risk review" } span.status-value { (a.review_due.map(|x| x.to_string()).unwrap_or_else(|| "not due".into())) } }
            div.status.overdue[a.labs_due.is_some_and(|x| x < today)] { span.status-label { "Liver panel" } span.status-value { (a.labs_due.map(|x| x.to_string()).unwrap_or_else(|| "not due".into())) } }
            div.status.overdue[a.icsi_due.is_some_and(|x| x < today)] { span.status-label { "Bladder questionnaire" } span.status-value { (a.icsi_due.map(|x| x.to_string()).unwrap_or_else(|| "not due".into())) } }
        }
        section.card #signals {
            h2 { "Signals" }
            @if a.signals.is_empty() { p.muted { "No open signals." } }
            @else { ul.signals { @for s in &a.signals { (signal_item(s)) } } }
            p.source { "Rules: knowledge/safety.toml version " (k.safety.version) " (most thresholds are clinic policy; see " a href="/knowledge" { "Clinical rules" } ")." }
        }
        (exposure_section(&v, now))
        (liver_section(p, id, &v, k, today, pick(Active::Lab).0, pick(Active::Lab).1))
        (bladder_section(p, id, &v, k, today))
        (observations_section(p, id, &v, pick(Active::Event).0, pick(Active::Event).1))
        (scales_section(&v, k))
        (review_section(p, id, &v, k, today, pick(Active::Review).0, pick(Active::Review).1))
    })
}

async fn safety_page(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let b = safety_body(&state, &p, &id, Active::None, &Fields::new(), &FieldErrors::new()).await?;
    Ok(layout(Some(&p), "Long-term safety", b).into_response())
}

async fn refused(state: &AppState, p: &Principal, id: &str, active: Active, form: &Fields, e: &FieldErrors) -> PageResult {
    let b = safety_body(state, p, id, active, form, e).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(p), "Long-term safety", b)).into_response())
}

async fn add_lab(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let input =
        LabInput { test: f(&form, "test"), value: f(&form, "value"), unit: f(&form, "unit"), uln: f(&form, "uln"), lab: f(&form, "lab") };
    match state.app.add_lab_result(&p, pid(&id)?, &input, &f(&form, "sampled_at")).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/safety#liver")).into_response()),
        Err(AppError::Validation(e)) => refused(&state, &p, &id, Active::Lab, &form, &e).await,
        Err(e) => Err(ui(e)),
    }
}

async fn add_event(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let input = SafetyEventInput {
        kind: f(&form, "kind"),
        score: f(&form, "score"),
        result: f(&form, "result"),
        substances: f(&form, "substances"),
        note: f(&form, "note"),
    };
    match state.app.add_safety_event(&p, pid(&id)?, &input, &f(&form, "at")).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/safety#observations")).into_response()),
        Err(AppError::Validation(e)) => refused(&state, &p, &id, Active::Event, &form, &e).await,
        Err(e) => Err(ui(e)),
    }
}

async fn sign_review(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.sign_review(&p, pid(&id)?, &f(&form, "decision"), &f(&form, "reasons"), &f(&form, "next_review")).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/safety#reviews")).into_response()),
        Err(AppError::Validation(e)) => refused(&state, &p, &id, Active::Review, &form, &e).await,
        Err(e) => Err(ui(e)),
    }
}

// ---------------------------------------------------------------- the care plan

fn goal_instruments(k: &Knowledge) -> Vec<(String, String)> {
    let mut v = vec![(String::new(), "— no scale (a goal in the patient's words) —".to_owned())];
    v.extend(GOAL_INSTRUMENTS.iter().filter_map(|key| k.instrument(key)).map(|i| (i.key.clone(), format!("{} — {}", i.name, i.title))));
    v
}

fn therapy_kind_label(kind: &str) -> &'static str {
    match kind {
        "integration" => "Integration sessions",
        "cbt" => "Cognitive behavioural therapy",
        _ => "Other support",
    }
}

/// A score goal in staff words: "GAD-7 total at or below 5".
fn score_goal_text(k: &Knowledge, g: &Goal) -> String {
    let inst = g.instrument.as_deref().and_then(|key| k.instrument(key));
    let name = inst.map(|i| i.name.clone()).or_else(|| g.instrument.clone()).unwrap_or_default();
    let better_up = inst.is_some_and(|i| i.direction == Direction::HigherIsBetter);
    match g.target {
        Some(t) => format!("{name} total {} {}", if better_up { "at or above" } else { "at or below" }, dec(t)),
        None => name,
    }
}

/// The care plan's values for the edit form.
fn plan_fields(c: &CarePlan) -> Fields {
    let mut m = Fields::new();
    let mut put = |k: String, v: String| {
        m.insert(k, v);
    };
    for (i, g) in c.goals.iter().take(GOAL_ROWS).enumerate() {
        let n = i + 1;
        put(format!("goal{n}_kind"), if g.kind == GoalKind::Score { "score".into() } else { "functional".into() });
        put(format!("goal{n}_text"), g.text.clone());
        put(format!("goal{n}_instrument"), g.instrument.clone().unwrap_or_default());
        put(format!("goal{n}_target"), g.target.map(dec).unwrap_or_default());
    }
    for (i, t) in c.therapies.iter().take(THERAPY_ROWS).enumerate() {
        let n = i + 1;
        put(format!("therapy{n}_kind"), t.kind.clone());
        put(format!("therapy{n}_description"), t.description.clone());
        put(format!("therapy{n}_who"), t.who.clone());
        put(format!("therapy{n}_frequency"), t.frequency.clone());
        put(
            format!("therapy{n}_attendance"),
            t.attendance.iter().map(|(d, a)| format!("{d} {}", if *a { "attended" } else { "missed" })).collect::<Vec<_>>().join("\n"),
        );
    }
    put("responsible".into(), c.responsible.join("\n"));
    put("next_review".into(), c.next_review.map(|d| d.to_string()).unwrap_or_default());
    put("notes".into(), c.notes.clone().unwrap_or_default());
    m
}

/// Reads the care-plan form: blank goal and therapy rows are ignored; the domain's field names
/// (`goals[0].text`, `therapies[1].who`) are mapped back to the form's rows.
fn plan_from_form(form: &Fields) -> Result<CarePlan, FieldErrors> {
    let mut e = FieldErrors::new();
    let mut goals = Vec::new();
    let mut goal_rows = Vec::new();
    for n in 1..=GOAL_ROWS {
        let g = |k: &str| f(form, &format!("goal{n}_{k}")).trim().to_owned();
        let (text, instrument, target) = (g("text"), g("instrument"), g("target"));
        if text.is_empty() && instrument.is_empty() && target.is_empty() {
            continue;
        }
        let kind = match g("kind").as_str() {
            "score" => GoalKind::Score,
            "functional" => GoalKind::Functional,
            _ if !instrument.is_empty() || !target.is_empty() => GoalKind::Score,
            _ => GoalKind::Functional,
        };
        let target = if target.is_empty() {
            None
        } else {
            match Decimal::from_str(&target) {
                Ok(x) if x >= Decimal::ZERO => Some(x),
                _ => {
                    e.add(&format!("goal{n}_target"), format!("{target:?} is not a total score; give a number such as 10"));
                    None
                }
            }
        };
        goals.push(Goal { kind, text, instrument: (!instrument.is_empty()).then_some(instrument), target });
        goal_rows.push(n);
    }
    let mut therapies = Vec::new();
    let mut therapy_rows = Vec::new();
    for n in 1..=THERAPY_ROWS {
        let t = |k: &str| f(form, &format!("therapy{n}_{k}")).trim().to_owned();
        let (description, who, frequency, attendance_raw) = (t("description"), t("who"), t("frequency"), t("attendance"));
        if description.is_empty() && who.is_empty() && frequency.is_empty() && attendance_raw.is_empty() {
            continue;
        }
        let mut attendance = Vec::new();
        for (j, line) in attendance_raw.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
            let mut parts = line.split_whitespace();
            let date = parts.next().and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
            let attended = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                Some("attended") => Some(true),
                Some("missed") => Some(false),
                _ => None,
            };
            match (date, attended, parts.next()) {
                (Some(d), Some(a), None) => attendance.push((d, a)),
                _ => e.add(
                    &format!("therapy{n}_attendance"),
                    format!("line {} ({line:?}) must be a date and attended or missed, such as 2026-11-02 attended", j + 1),
                ),
            }
        }
        attendance.sort();
        let kind = match t("kind").as_str() {
            "" => "other".to_owned(),
            k => k.to_owned(),
        };
        therapies.push(Therapy { kind, description, who, frequency, attendance });
        therapy_rows.push(n);
    }
    let responsible: Vec<String> = f(form, "responsible").lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    let next_review = match f(form, "next_review").trim() {
        "" => None,
        s => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                e.add("next_review", "must be a date such as 2027-02-28, or empty");
                None
            }
        },
    };
    let notes = Some(f(form, "notes").trim().to_owned()).filter(|s| !s.is_empty());
    let plan = CarePlan { goals, therapies, responsible, next_review, notes };
    if let Err(x) = plan.check() {
        for fe in x.iter() {
            e.add(&form_field(&fe.field, &goal_rows, &therapy_rows), fe.message.clone());
        }
    }
    e.into_result().map(|_| plan)
}

/// The form field of a domain field name (`goals[0].text` -> `goal2_text` when the first kept
/// goal is the form's second row).
fn form_field(domain: &str, goal_rows: &[usize], therapy_rows: &[usize]) -> String {
    let indexed = |prefix: &str, rows: &[usize], name: &str| -> Option<String> {
        let rest = domain.strip_prefix(prefix)?;
        let (i, field) = rest.split_once("].")?;
        let row = rows.get(i.parse::<usize>().ok()?)?;
        Some(format!("{name}{row}_{field}"))
    };
    match domain {
        "goals" => "goal1_text".into(),
        _ => indexed("goals[", goal_rows, "goal")
            .or_else(|| indexed("therapies[", therapy_rows, "therapy"))
            .unwrap_or_else(|| domain.to_owned()),
    }
}

fn care_plan_labels() -> Vec<(String, String)> {
    let mut v = Vec::new();
    for n in 1..=GOAL_ROWS {
        v.push((format!("goal{n}_text"), format!("Goal {n}:")));
        v.push((format!("goal{n}_target"), format!("Goal {n} target:")));
        v.push((format!("goal{n}_instrument"), format!("Goal {n} scale:")));
    }
    for n in 1..=THERAPY_ROWS {
        for (k, l) in [
            ("kind", "kind"),
            ("description", "what"),
            ("who", "who provides it"),
            ("frequency", "how often"),
            ("attendance", "attendance"),
        ] {
            v.push((format!("therapy{n}_{k}"), format!("Psychotherapy {n}, {l}:")));
        }
    }
    v.push(("responsible".into(), "Responsible clinicians".into()));
    v.push(("next_review".into(), "Care plan review date".into()));
    v.push(("reason".into(), "Reason for the change".into()));
    v
}

fn care_plan_form(p: &Principal, id: &str, v: &SafetyView, k: &Knowledge, values: &Fields, errors: &FieldErrors) -> Markup {
    let labels = care_plan_labels();
    let label_refs: Vec<(&str, &str)> = labels.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let kinds = options(&[("functional", "In the patient's words"), ("score", "Target score on a scale")]);
    let therapy_kinds =
        options(&[("integration", "Integration sessions"), ("cbt", "Cognitive behavioural therapy"), ("other", "Other support")]);
    let instruments = goal_instruments(k);
    let existing = v.care_plan.as_ref();
    html! {
        details.card.plan-editor #care-plan-edit open[existing.is_none() || !errors.is_empty()] {
            summary { h2 { @if existing.is_some() { "Change the care plan" } @else { "Write the care plan" } } }
            form #care-plan-form method="post" action=(format!("/patients/{id}/care-plan#care-plan-edit")) novalidate {
                (csrf(p))
                @if let Some((rv, _)) = existing {
                    input type="hidden" name="record_id" value=(rv.record_id);
                    input type="hidden" name="base_version" value=(rv.version);
                }
                (form_problems(errors, &label_refs))
                p.small.muted { "Blank rows are left out. A functional goal is written in the patient's own words; a target score names the scale and the total to reach." }
                @for n in 1..=GOAL_ROWS {
                    fieldset.goal-row {
                        legend { "Goal " (n) }
                        div.form-row {
                            (select(&format!("goal{n}_kind"), "Kind", &kinds, values, errors))
                            (select(&format!("goal{n}_instrument"), "Scale (target score)", &instruments, values, errors))
                            (input(&format!("goal{n}_target"), "Target total", values, errors, "decimal", None))
                        }
                        (input(&format!("goal{n}_text"), "Goal", values, errors, "text", Some("For example: \"Go back to my choir on Thursday evenings\"")))
                    }
                }
                @for n in 1..=THERAPY_ROWS {
                    fieldset.therapy-row {
                        legend { "Psychotherapy and support " (n) }
                        div.form-row {
                            (select(&format!("therapy{n}_kind"), "Kind", &therapy_kinds, values, errors))
                            (input(&format!("therapy{n}_description"), "What", values, errors, "text", None))
                            (input(&format!("therapy{n}_who"), "Who provides it", values, errors, "text", None))
                            (input(&format!("therapy{n}_frequency"), "How often", values, errors, "text", None))
                        }
                        (textarea(&format!("therapy{n}_attendance"), "Attendance, one session a line: 2026-11-02 attended or 2026-11-09 missed", values, errors))
                    }
                }
                (textarea("responsible", "Responsible clinicians, one a line (name and role)", values, errors))
                (input("next_review", "Care plan review date", values, errors, "date", None))
                (textarea("notes", "Notes for the team", values, errors))
                @if existing.is_some() { (textarea("reason", "Reason for the change (required)", values, errors)) }
                button.primary type="submit" { @if existing.is_some() { "Save a new version" } @else { "Save the care plan" } }
            }
        }
    }
}

async fn care_plan_body(
    state: &AppState,
    p: &Principal,
    id: &str,
    values: Option<&Fields>,
    errors: &FieldErrors,
) -> Result<Markup, WebError> {
    let patient = pid(id)?;
    let pv = state.app.patient(p, patient).await.map_err(ui)?;
    let v = state.app.safety(p, patient).await.map_err(ui)?;
    let k = state.app.knowledge();
    let today = state.app.clock().now().date_naive();
    let d = &pv.demographics;
    let plan = v.care_plan.as_ref();
    let form_values = match (values, plan) {
        (Some(x), _) => x.clone(),
        (None, Some((_, c))) => plan_fields(c),
        (None, None) => Fields::new(),
    };
    let upcoming: Vec<_> = v.plan.as_ref().map(|(_, t)| t.sessions.iter().filter(|s| s.date >= today).collect()).unwrap_or_default();
    let past = v.plan.as_ref().map(|(_, t)| t.sessions.len() - upcoming.len()).unwrap_or(0);
    Ok(html! {
        (patient_links(id, "/care-plan"))
        div.row-between {
            div {
                h1 { "Care plan" }
                p.muted { (d.name.display()) " · MRN " (d.mrn.as_str())
                    @if let Some((rv, _)) = plan { " · version " (rv.version) " by " (rv.provenance.username) " on " (rv.provenance.recorded_at.format("%Y-%m-%d")) " · " a href=(format!("/records/{}", rv.record_id)) { "history" } } }
            }
            @if plan.is_some() { div.actions { a.button.primary href=(format!("/patients/{id}/care-plan/print")) { "Summary for the patient (print)" } } }
        }
        @if plan.is_none() { p.alert.alert-warning #no-care-plan { "No care plan yet. Write it below." } }
        div.grid {
            section.card #goals {
                h2 { "Goals" }
                @match plan {
                    Some((_, c)) => ul.goals {
                        @for g in &c.goals {
                            @if g.kind == GoalKind::Score {
                                li.goal.score { span.badge { "Target score" } " " strong { (score_goal_text(k, g)) } @if !g.text.is_empty() { br; (g.text) } }
                            } @else {
                                li.goal.functional { span.badge { "In the patient's words" } " " q { (g.text) } }
                            }
                        }
                    },
                    None => p.muted { "None yet." },
                }
            }
            section.card #next-review {
                h2 { "Reviews" }
                dl.facts {
                    dt { "Next benefit-risk review" } dd #review-due { (due(v.assessment.review_due, today, "not due: not on maintenance")) }
                    dt { "Care plan review" } dd { (due(plan.and_then(|(_, c)| c.next_review), today, "no date set")) }
                }
                div #latest-review {
                    h3 { "Latest benefit-risk review" }
                    @match v.reviews.first() {
                        Some((rv, r)) => {
                            p { strong.decision data-decision=(r.decision.code()) { (r.decision.label()) } " · " (rv.provenance.recorded_at.format("%Y-%m-%d")) " by " (rv.provenance.username) }
                            p.reasons { "Reasons: " (r.reasons) }
                            p.small { "Next review " (r.next_review) " · " a href=(format!("/patients/{id}/safety#reviews")) { "evidence and earlier reviews" } }
                        },
                        None => p.muted { "No review signed yet. " a href=(format!("/patients/{id}/safety#review")) { "Review benefit and risk" } },
                    }
                }
            }
        }
        section.card #ketamine {
            h2 { "Ketamine treatment" }
            @match &v.plan {
                Some((_, t)) => {
                    p { strong { (t.protocol_name) } " · " (t.route.label()) " · from " (t.start) @if let Some(n) = &t.note { " · " (n) } }
                    @if upcoming.is_empty() { p.muted { "No sessions planned from today (" (past) " planned sessions are in the past)." } }
                    @else {
                        p.small.muted { (plural(upcoming.len(), "session", "sessions")) " planned from today; " (past) " in the past." }
                        div.table-scroll {
                            table.list #planned-sessions {
                                thead { tr { th { "Date" } th { "Session" } th { "Dose" } } }
                                tbody {
                                    @for s in upcoming.iter().take(12) {
                                        tr { td { (s.date) } td { (s.label) } td {
                                            @if let Some(m) = s.mg_per_kg { (dec(m)) " mg/kg" } @else if let Some(m) = s.fixed_mg { (dec(m)) " mg" }
                                            @if let Some(min) = s.minutes { " over " (min) " min" }
                                        } }
                                    }
                                }
                            }
                        }
                        @if upcoming.len() > 12 { p.small.muted { "and " (upcoming.len() - 12) " more; see " a href=(format!("/patients/{id}/dosing")) { "Dosing" } "." } }
                    }
                },
                None => p.muted { "No treatment plan. " a href=(format!("/patients/{id}/dosing")) { "Plan a protocol" } },
            }
        }
        section.card #therapies {
            h2 { "Psychotherapy and support" }
            @match plan.map(|(_, c)| &c.therapies).filter(|t| !t.is_empty()) {
                Some(ts) => div.table-scroll {
                    table.list {
                        thead { tr { th { "Kind" } th { "What" } th { "Who" } th { "How often" } th { "Attendance" } } }
                        tbody {
                            @for t in ts {
                                @let attended = t.attendance.iter().filter(|a| a.1).count();
                                tr data-kind=(t.kind) {
                                    td { (therapy_kind_label(&t.kind)) }
                                    td { (t.description) }
                                    td { (t.who) }
                                    td { (t.frequency) }
                                    td {
                                        @if t.attendance.is_empty() { span.muted { "none recorded" } }
                                        @else {
                                            strong { (attended) " of " (t.attendance.len()) " attended" }
                                            ul.attendance { @for (day, a) in &t.attendance { li.attended[*a].missed[!*a] { (day) " " (if *a { "attended" } else { "missed" }) } } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
                None => p.muted { "None in the plan." },
            }
        }
        div.grid {
            section.card #medicines {
                h2 { "Other medicines" }
                @if v.medications.is_empty() { p.muted { "None recorded." } }
                ul { @for m in &v.medications { li { (m) } } }
            }
            section.card #responsible {
                h2 { "Responsible clinicians" }
                @match plan.map(|(_, c)| &c.responsible) {
                    Some(r) => ul { @for x in r { li { (x) } } },
                    None => p.muted { "Not named yet." },
                }
                @if let Some(n) = plan.and_then(|(_, c)| c.notes.as_ref()) { h3 { "Notes for the team" } p { (n) } }
            }
        }
        @if p.can(Permission::WriteClinical) { (care_plan_form(p, id, &v, k, &form_values, errors)) }
    })
}

async fn care_plan_page(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let b = care_plan_body(&state, &p, &id, None, &FieldErrors::new()).await?;
    Ok(layout(Some(&p), "Care plan", b).into_response())
}

async fn save_care_plan(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let patient = pid(&id)?;
    let rerender = |e: FieldErrors, status: StatusCode| {
        let (state, p, id, form) = (&state, &p, &id, &form);
        async move {
            let b = care_plan_body(state, p, id, Some(form), &e).await?;
            Ok::<_, WebError>((status, layout(Some(p), "Care plan", b)).into_response())
        }
    };
    let plan = match plan_from_form(&form) {
        Ok(x) => x,
        Err(e) => return rerender(e, StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    let base = match (f(&form, "record_id").as_str(), f(&form, "base_version").parse::<u32>()) {
        ("", _) => None,
        (r, Ok(v)) => Some((RecordId::parse(r).map_err(|_| ui(AppError::NotFound))?, v)),
        (_, Err(_)) => return Err(ui(AppError::NotFound)),
    };
    match state.app.save_care_plan(&p, patient, plan, base, &f(&form, "reason")).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/care-plan")).into_response()),
        Err(AppError::Validation(e)) => rerender(e, StatusCode::UNPROCESSABLE_ENTITY).await,
        Err(AppError::Conflict(m)) => rerender(FieldErrors::single("plan", m), StatusCode::CONFLICT).await,
        Err(e) => Err(ui(e)),
    }
}

// ---------------------------------------------------------------- the patient's summary

/// What a target score on a scale means, in words a patient uses: the aim and the scale.
fn plain_scale(key: &str) -> (&'static str, &'static str) {
    match key {
        "gad7" => ("Less anxiety", "your anxiety questionnaire"),
        "hama" => ("Less anxiety", "the anxiety rating you go through with your clinician"),
        "lsas" => ("Less anxiety in social situations", "your social anxiety questionnaire"),
        "phq9" => ("A better mood", "your mood questionnaire"),
        "fq" => ("Fewer fears getting in your way", "your fears questionnaire"),
        "sds" => (
            "Anxiety getting in the way less at work, with friends and at home",
            "the questionnaire on how anxiety affects your daily life",
        ),
        "qlesq_sf" => ("A better quality of life", "your quality-of-life questionnaire"),
        _ => ("Progress", "your questionnaire"),
    }
}

fn plain_route(r: Route) -> &'static str {
    match r {
        Route::Iv => "a slow drip into a vein",
        Route::Sc => "a small injection under the skin",
        Route::Im => "an injection into a muscle",
        Route::In => "a nasal spray",
    }
}

/// A kind of psychotherapy in plain words: a title and what it is.
fn plain_therapy(kind: &str) -> (&'static str, Option<&'static str>) {
    match kind {
        "integration" => {
            ("Integration sessions", Some("Talking through what you noticed during treatment and how to use it in daily life."))
        }
        "cbt" => (
            "Talking therapy",
            Some("Cognitive behavioural therapy: learning ways to handle anxious thoughts and situations step by step."),
        ),
        _ => ("Support", None),
    }
}

async fn care_plan_print(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let patient = pid(&id)?;
    let pv = state.app.patient(&p, patient).await.map_err(ui)?;
    let v = state.app.safety(&p, patient).await.map_err(ui)?;
    let k = state.app.knowledge();
    let today = state.app.clock().now().date_naive();
    let d = &pv.demographics;
    let plan = v.care_plan.as_ref().map(|(_, c)| c);
    let next_review = v.assessment.review_due.or(plan.and_then(|c| c.next_review));
    let upcoming: Vec<NaiveDate> =
        v.plan.as_ref().map(|(_, t)| t.sessions.iter().map(|s| s.date).filter(|x| *x >= today).take(6).collect()).unwrap_or_default();
    let body = html! {
        div.no-print.row-between {
            a href=(format!("/patients/{id}/care-plan")) { "← Care plan" }
            span.muted.small { "Print with your browser's Print command (Ctrl+P or ⌘P)." }
        }
        article.patient-summary #care-plan-summary {
            h1 { "Your care plan" }
            p.lead { "For " strong { (d.name.given()) " " (d.name.family()) } " · printed " (today.format("%-d %B %Y")) }
            @if plan.is_none() { p.alert.alert-warning { "Your care plan has not been written yet. Please ask your clinic team." } }
            section {
                h2 { "Your treatment" }
                @match &v.plan {
                    Some((_, t)) => p { "You are having ketamine treatment for anxiety, given as " (plain_route(t.route)) " at the clinic. A nurse watches over you during each session and until you are ready to go home. Do not drive or use machines until the next day after a session." },
                    None => p { "You and your clinic team are planning ketamine treatment for anxiety. It is given at the clinic, and a nurse watches over you during each session and until you are ready to go home." },
                }
                @if !upcoming.is_empty() {
                    p { "Your next sessions:" }
                    ul #next-sessions { @for x in &upcoming { li { (x.format("%A %-d %B %Y")) } } }
                }
            }
            @if let Some(c) = plan {
                section #summary-goals {
                    h2 { "Your goals" }
                    ul {
                        @for g in &c.goals {
                            @if g.kind == GoalKind::Functional {
                                li.goal { q { (g.text) } }
                            } @else {
                                @let key = g.instrument.as_deref().unwrap_or("");
                                @let up = k.instrument(key).is_some_and(|i| i.direction == Direction::HigherIsBetter);
                                @let (aim, scale) = plain_scale(key);
                                li.goal { (aim)
                                    @if let Some(t) = g.target { ": a score of " (dec(t)) (if up { " or more" } else { " or less" }) " on " (scale) } "." }
                            }
                        }
                    }
                }
                @if !c.therapies.is_empty() {
                    section #summary-therapy {
                        h2 { "Talking therapy and support" }
                        @for t in &c.therapies {
                            @let (title, what) = plain_therapy(&t.kind);
                            div.therapy {
                                h3 { (title) }
                                @if let Some(w) = what { p.small { (w) } }
                                p { (t.description) }
                                p { "With " strong { (t.who) } }
                                p { "How often: " (t.frequency) }
                                @if !t.attendance.is_empty() {
                                    p.small { "Your appointments so far: "
                                        (t.attendance.iter().map(|(day, a)| format!("{} {}", day.format("%-d %B"), if *a { "(came)" } else { "(missed)" })).collect::<Vec<_>>().join(", ")) }
                                }
                            }
                        }
                    }
                }
            }
            @if !v.medications.is_empty() {
                section {
                    h2 { "Your other medicines" }
                    p { "Keep taking these unless your doctor tells you otherwise, and tell us about any change:" }
                    ul { @for m in &v.medications { li { (m) } } }
                }
            }
            section #watch-for {
                h2 { "What to watch for" }
                p { "Ketamine used again and again can affect the bladder and the liver, and some people start to want more of it. Tell us early: these problems are easier to treat when they are found early." }
                ul.watch {
                    li { strong { "Your bladder: " } "needing to pass urine more often or more urgently, getting up at night to pass urine, pain or burning when you pass urine, or pain low in your tummy." }
                    li { strong { "Blood in your urine: " } "pink, red or brown urine. Call the clinic the same day." }
                    li { strong { "Your liver: " } "yellow skin or yellow whites of the eyes, dark urine, pale stools, itching, or pain under the ribs on the right. Call the clinic the same day." }
                    li { strong { "Wanting more ketamine: " } "wanting sessions sooner or a bigger dose, thinking about ketamine a lot, or using ketamine or other drugs outside the clinic. Please tell us; we will help, not judge." }
                }
                p { "We check for these at your visits with short questionnaires and blood tests." }
            }
            section #whom-to-call {
                h2 { "Whom to call" }
                @match plan.map(|c| &c.responsible).filter(|r| !r.is_empty()) {
                    Some(r) => { p { "Call the clinic and ask for:" } ul { @for x in r { li { (x) } } } },
                    None => p { "Call the clinic and ask for your treating doctor." },
                }
                p.urgent { strong { "If you feel unsafe, might act on thoughts of harming yourself, or feel very unwell, call your local emergency number now." } }
            }
            section #summary-review {
                h2 { "Your next review" }
                @match next_review {
                    Some(x) if x < today => p { "It is time to look together at how the treatment is helping you and whether it is still right for you. We will arrange this with you at your next visit." },
                    Some(x) => p { "We will look at how the treatment is helping you and whether it is still right for you on or before " strong { (x.format("%A %-d %B %Y")) } "." },
                    None => p { "We will agree the date of your next review with you." },
                }
            }
        }
    };
    Ok(layout(Some(&p), "Your care plan", body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn blank_rows_are_ignored_and_errors_name_the_form_rows() {
        let ok = plan_from_form(&form(&[
            ("goal2_kind", "functional"),
            ("goal2_text", "Take the bus to work again"),
            ("goal3_kind", "score"),
            ("goal3_instrument", "gad7"),
            ("goal3_target", "5"),
            ("goal3_text", "Mild anxiety at most"),
            ("therapy2_kind", "cbt"),
            ("therapy2_description", "CBT for panic"),
            ("therapy2_who", "A. Therapist"),
            ("therapy2_frequency", "weekly"),
            ("therapy2_attendance", "2026-11-09 missed\n2026-11-02 attended\n"),
            ("responsible", "Dr A (prescriber)\n\nNurse B"),
        ]))
        .unwrap();
        assert_eq!(ok.goals.len(), 2);
        assert_eq!(ok.goals[1].target, Some(Decimal::from(5)));
        assert!(ok.therapies[0].attendance[0].1, "sorted by date: the session of the 2nd was attended");
        assert_eq!(ok.responsible.len(), 2);

        let e = plan_from_form(&form(&[
            ("goal3_kind", "score"),
            ("goal3_text", "Calmer"),
            ("therapy2_description", "Integration"),
            ("therapy2_frequency", "monthly"),
            ("therapy2_attendance", "2026-11-02 maybe"),
            ("responsible", "Dr A"),
        ]))
        .unwrap_err();
        assert!(e.for_field("goal3_target").is_some(), "{e}");
        assert!(e.for_field("therapy2_who").is_some(), "{e}");
        assert!(e.for_field("therapy2_attendance").unwrap().contains("line 1"), "{e}");
        let e = plan_from_form(&Fields::new()).unwrap_err();
        assert!(e.for_field("goal1_text").is_some() && e.for_field("responsible").is_some(), "{e}");
    }

    #[test]
    fn the_board_sorts_by_each_column_and_keeps_ties_in_order() {
        let row = |name: &str, mrn: &str, review: Option<u32>, alerts: usize| BoardRow {
            patient: ketacare_domain::ids::PatientId::parse("0b0f6c1e-5a4f-4c6a-9a57-0c1f2d3e4f50").unwrap(),
            mrn: mrn.into(),
            name: name.into(),
            signals: vec![],
            overdue_questionnaires: 0,
            open_alerts: alerts,
            review_due: review.map(|d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap()),
            labs_due: None,
        };
        let mut rows = vec![row("b", "2", Some(5), 0), row("a", "3", None, 1), row("c", "1", Some(2), 0)];
        sort_board(&mut rows, "review");
        assert_eq!(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["c", "b", "a"], "no date last");
        sort_board(&mut rows, "mrn");
        assert_eq!(rows[0].name, "c");
        sort_board(&mut rows, "alerts");
        assert_eq!(rows[0].name, "a");
        sort_board(&mut rows, "patient");
        assert_eq!(rows[0].name, "a");
    }
}
