//! The clinic outcomes report as a PDF: `GET /research/outcomes.pdf` (staff UI, linked from the
//! outcomes page with the same filter) and `GET /api/research/outcomes.pdf` (API).
//!
//! It is filled from the same cohort analytics as the outcomes page and its CSV
//! (`App::cohort_outcomes`, which authorises the role and audits the cohort read), with the same
//! wording helpers, so the three never disagree. De-identified: aggregates only. The download is
//! audited too (entity `ClinicOutcomesReport`, no patient).

use crate::error::{Problem, WebError};
use crate::extract::Auth;
use crate::research::{diagnosis_label, f1, fit_warning, kn, odds, parse_filter, pct, FilterQuery};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ketacare_app::research::CohortOutcomes;
use ketacare_app::{App, AppError, Principal};
use ketacare_domain::audit::{AuditAction, AuditEvent, AuditOutcome};
use ketacare_domain::cohort::{CohortFilter, GroupRate, LevelMean};
use ketacare_domain::stats::{KaplanMeier, Proportion};
use ketacare_report::canvas::{Color, Shape};
use ketacare_report::chart::{Interval, IntervalChart, LineChart, Series, XAxis};
use ketacare_report::outcomes::{Block, OutcomesReport, Section};
use ketacare_report::table::Column;
use utoipa::OpenApi;

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(clinic_report_api))]
pub struct ClinicReportDoc;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/research/outcomes.pdf", get(clinic_report_page)).route("/api/research/outcomes.pdf", get(clinic_report_api))
}

async fn clinic_report_page(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<FilterQuery>) -> Result<Response, WebError> {
    let filter = parse_filter(&q).map_err(|e| WebError::ui(AppError::Validation(e)))?;
    pdf_response(&state.app, &p, &filter).await.map_err(WebError::ui)
}

/// The clinic outcomes report, as a PDF.
#[utoipa::path(get, path = "/api/research/outcomes.pdf", tag = "research", params(FilterQuery),
    responses(
        (status = 200, content_type = "application/pdf", description = "The clinic outcomes report of the patients matching the filter: the clinic beside the published studies (with a chart of both intervals), response and remission by diagnosis, protocol, route, dose level and scale with 95 % Wilson intervals, Kaplan-Meier curves of time to response and durability, dissociation, blood pressure, adverse events per 100 sessions, functioning before and after, and exploratory subgroups with logistic regression. De-identified aggregates only."),
        (status = 401, body = Problem, description = "Not logged in"),
        (status = 403, body = Problem, description = "The role may not read the research cohort"),
        (status = 422, body = Problem, description = "A filter field is malformed; the problem names it")))]
async fn clinic_report_api(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<FilterQuery>) -> Result<Response, WebError> {
    let filter = parse_filter(&q).map_err(|e| WebError::api(AppError::Validation(e)))?;
    pdf_response(&state.app, &p, &filter).await.map_err(WebError::api)
}

async fn pdf_response(app: &App, p: &Principal, filter: &CohortFilter) -> Result<Response, AppError> {
    let o = app.cohort_outcomes(p, filter).await?;
    let clinic = crate::reports::clinic_name(app).await?;
    let report = clinic_report(app, &o, clinic, p.user.display_name.clone());
    let pdf = ketacare_report::render_outcomes_report(&report)
        .map_err(|e| AppError::Internal(format!("drawing the clinic outcomes report: {e}")))?;
    let event = AuditEvent {
        recorded_at: app.now(),
        actor: p.actor(),
        action: AuditAction::Read,
        outcome: AuditOutcome::Success,
        entity_type: "ClinicOutcomesReport".into(),
        entity_id: None,
        patient_id: None,
        detail: Some(format!(
            "purpose=research; de-identified PDF of {} patients{}, {} bytes",
            o.report.patients,
            if filter.is_empty() { "" } else { " (filtered)" },
            pdf.len()
        )),
    };
    app.store().append_audit(&event).await?;
    let filename = format!("clinic-outcomes-{}.pdf", report.generated_at.format("%Y-%m-%d"));
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
        ],
        pdf,
    )
        .into_response())
}

/// The filter as label–value pairs (empty for the whole clinic).
fn filter_labels(f: &CohortFilter) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut push = |k: &str, val: Option<String>| {
        if let Some(val) = val {
            v.push((k.to_owned(), val));
        }
    };
    push("Diagnosis", f.diagnosis.as_deref().map(diagnosis_label));
    push("Protocol", f.protocol.clone());
    push("Route", f.route.as_deref().map(str::to_uppercase));
    push("Clinician", f.clinician.clone());
    push("Sex", f.sex.clone());
    push(
        "Age",
        match (f.age_min, f.age_max) {
            (None, None) => None,
            (Some(a), None) => Some(format!("{a} years or older")),
            (None, Some(b)) => Some(format!("{b} years or younger")),
            (Some(a), Some(b)) => Some(format!("{a} to {b} years")),
        },
    );
    push(
        "First dose",
        match (f.from, f.to) {
            (None, None) => None,
            (Some(a), None) => Some(format!("on or after {a}")),
            (None, Some(b)) => Some(format!("on or before {b}")),
            (Some(a), Some(b)) => Some(format!("{a} to {b}")),
        },
    );
    v
}

fn rate_block(caption: &str, rows: &[GroupRate], label: &dyn Fn(&str) -> String, remission: bool) -> Block {
    let mut columns = vec![
        Column::left("Group", 3.0),
        Column::right("Patients", 1.0),
        Column::right("Responders", 1.1),
        Column::right("Response (95 % CI)", 1.7),
    ];
    if remission {
        columns.push(Column::right("Remission (95 % CI)", 2.2));
    }
    let rows = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                format!("{}{}", label(&r.group), if r.small { " (small n)" } else { "" }),
                r.n.to_string(),
                r.response.map(|p| p.k).unwrap_or(0).to_string(),
                pct(&r.response),
            ];
            if remission {
                cells.push(format!("{} {}", pct(&r.remission), kn(&r.remission)));
            }
            cells
        })
        .collect();
    Block::Table { caption: caption.to_owned(), columns, rows }
}

/// A proportion as a group of an interval chart, in percent.
fn interval(label: String, p: &Proportion, note: String) -> Interval {
    Interval { label, estimate: p.p * 100.0, lo: p.lo * 100.0, hi: p.hi * 100.0, note }
}

fn response_chart(title: &str, rows: &[GroupRate], label: &dyn Fn(&str) -> String) -> Block {
    let groups = rows.iter().filter_map(|r| r.response.as_ref().map(|p| interval(label(&r.group), p, format!("n = {}", r.n)))).collect();
    Block::Intervals(IntervalChart {
        title: title.to_owned(),
        y_label: "% responders (95 % CI)".into(),
        y_min: 0.0,
        y_max: 100.0,
        groups,
        reference: None,
        bars: true,
    })
}

/// A Kaplan-Meier estimate as a step curve with its interval (percent over days).
fn km_block(title: &str, km: &KaplanMeier) -> Block {
    let (mut est, mut lo, mut hi) = (vec![(0.0, 100.0)], vec![(0.0, 100.0)], vec![(0.0, 100.0)]);
    for s in &km.steps {
        let last = |v: &Vec<(f64, f64)>| v.last().map(|p| p.1).unwrap_or(100.0);
        let (e, l, h) = (last(&est), last(&lo), last(&hi));
        est.extend([(s.time, e), (s.time, s.survival * 100.0)]);
        lo.extend([(s.time, l), (s.time, s.lo * 100.0)]);
        hi.extend([(s.time, h), (s.time, s.hi * 100.0)]);
    }
    let x_max = km.steps.iter().map(|s| s.time).fold(1.0_f64, f64::max).ceil();
    let band =
        |label: &str, points| Series { label: label.to_owned(), points, color: Color(0.55, 0.7, 0.9), shape: Shape::None, joined: true };
    Block::Curve(LineChart {
        title: title.to_owned(),
        y_label: "% of patients".into(),
        x: XAxis::Linear { min: 0.0, max: x_max, label: "days".into() },
        y_min: 0.0,
        y_max: 100.0,
        bands: vec![],
        lines: vec![],
        markers: vec![],
        marker_legend: String::new(),
        series: vec![
            Series { label: "Kaplan-Meier estimate".into(), points: est, color: Color::BLUE, shape: Shape::None, joined: true },
            band("95 % interval, lower", lo),
            band("95 % interval, upper", hi),
        ],
    })
}

fn km_summary(km: &KaplanMeier) -> String {
    let median = km.median.map(|m| format!("median {m:.1} days")).unwrap_or_else(|| "median not reached".into());
    format!("{} patients, {} events, {} censored; {median}.", km.n, km.events, km.n - km.events)
}

fn mean_cell(m: &LevelMean) -> String {
    format!("{} ({}–{})", f1(m.mean.mean), f1(m.mean.lo), f1(m.mean.hi))
}

/// Fills the report from the cohort analytics.
pub(crate) fn clinic_report(app: &App, o: &CohortOutcomes, clinic: String, prepared_by: String) -> OutcomesReport {
    let r = &o.report;
    let small = o.rules.small_numbers_below;
    let scale_name = |k: &str| o.rules.scales.iter().find(|s| s.key == k).map(|s| s.name.clone()).unwrap_or_else(|| k.to_owned());
    let covariate_label = |k: &str| o.rules.covariates.iter().find(|c| c.key == k).map(|c| c.label.clone()).unwrap_or_else(|| k.to_owned());
    let mut sections = Vec::new();

    // The clinic beside the published studies.
    let mut groups = Vec::new();
    for e in &r.evidence {
        if let Some(p) = &e.published {
            groups.push(interval(e.short.clone(), p, format!("published, n = {}", p.n)));
        }
        if let Some(c) = &e.clinic {
            groups.push(interval(e.short.clone(), c, format!("clinic, n = {}", c.n)));
        }
    }
    let evidence_rows = r
        .evidence
        .iter()
        .map(|e| {
            let clinic = match (&e.clinic, &e.note) {
                (Some(_), _) => format!("{} {}{}", pct(&e.clinic), kn(&e.clinic), if e.small { " (small n)" } else { "" }),
                (None, Some(n)) => n.clone(),
                (None, None) => "—".into(),
            };
            vec![e.short.clone(), e.definition.clone(), format!("{} {}", pct(&e.published), kn(&e.published)), clinic]
        })
        .collect();
    let studies = o.studies.iter().map(|s| format!("{}: {} {}", s.short, s.design, s.citation)).collect::<Vec<_>>().join(" · ");
    sections.push(Section {
        title: "The clinic beside the published studies".into(),
        blocks: vec![
            Block::Note(format!(
                "Each study's responders as published, and the clinic's patients counted on the same definition: the study's diagnoses, route and dose levels, and its instrument and threshold. Intervals are 95 % Wilson intervals. Studies file version {}.",
                o.studies_version
            )),
            Block::Table {
                caption: "Response on each study's definition".into(),
                columns: vec![
                    Column::left("Study", 1.2),
                    Column::left("Definition", 3.0),
                    Column::right("Published", 1.6),
                    Column::right("Clinic on this definition", 1.9),
                ],
                rows: evidence_rows,
            },
            Block::Intervals(IntervalChart {
                title: "Response: each study as published and the clinic on its definition (95 % intervals)".into(),
                y_label: "% responders".into(),
                y_min: 0.0,
                y_max: 100.0,
                groups,
                reference: None,
                bars: false,
            }),
            Block::Note(format!("Studies: {studies}")),
        ],
    });

    // Response and remission.
    let definitions = crate::research::scale_definitions(&o.rules, "at most");
    let route = |g: &str| g.to_uppercase();
    let dose = |g: &str| format!("{g} mg/kg");
    sections.push(Section {
        title: "Response and remission".into(),
        blocks: vec![
            Block::Note(format!(
                "A patient responds when any rating after the first dose meets the rule of their primary scale, and remits when a total after the first dose is at or below the scale's remission cut-off. {}.",
                definitions.join(" · ")
            )),
            rate_block("All evaluable patients", std::slice::from_ref(&r.overall), &|_| "All".into(), true),
            rate_block("By diagnosis", &r.by_diagnosis, &diagnosis_label, true),
            response_chart("Response by diagnosis", &r.by_diagnosis, &diagnosis_label),
            rate_block("By protocol", &r.by_protocol, &|g| g.to_owned(), true),
            rate_block("By route", &r.by_route, &route, true),
            rate_block("By dose level (response after a dose at that level)", &r.by_dose, &dose, false),
            response_chart("Response by dose level", &r.by_dose, &dose),
            rate_block("By primary scale", &r.by_scale, &scale_name, true),
        ],
    });

    // Time to response and durability.
    sections.push(Section {
        title: "Time to response".into(),
        blocks: vec![
            Block::Paragraph(format!(
                "Days from the first dose to the first response; patients who have not responded are censored at their last rating. {}",
                km_summary(&r.time_to_response)
            )),
            km_block("Not yet responded (Kaplan-Meier)", &r.time_to_response),
        ],
    });
    sections.push(Section {
        title: "Durability of benefit".into(),
        blocks: vec![
            Block::Paragraph(format!(
                "Days from a patient's first response to relapse (the first later rating that no longer meets the response rule); patients without a relapse are censored at their last rating. {}",
                km_summary(&r.durability)
            )),
            km_block("Still responding (Kaplan-Meier)", &r.durability),
        ],
    });

    // Tolerability.
    let bp = &r.blood_pressure;
    let bp_rows = bp
        .systolic_rise
        .iter()
        .map(|m| {
            let d = bp.diastolic_rise.iter().find(|x| x.level == m.level).map(mean_cell).unwrap_or_else(|| "—".into());
            vec![format!("{} mg/kg", m.level), m.mean.n.to_string(), mean_cell(m), d]
        })
        .collect();
    let adverse = match &r.adverse_events {
        Some(a) => format!(
            "Adverse events: {} per 100 sessions (95 % CI {}–{}): {} events in {} sessions with a dose.",
            f1(a.rate),
            f1(a.lo),
            f1(a.hi),
            a.events,
            a.exposure
        ),
        None => "Adverse events: no treatment sessions with a dose.".into(),
    };
    sections.push(Section {
        title: "Tolerability".into(),
        blocks: vec![
            Block::Table {
                caption: "Dissociation (CADSS) across sessions".into(),
                columns: vec![
                    Column::left("Session", 2.0),
                    Column::right("Patients", 1.0),
                    Column::right("Mean CADSS (95 % CI)", 2.0),
                    Column::right("SD", 1.0),
                ],
                rows: r.dissociation.iter().map(|m| vec![m.level.clone(), m.mean.n.to_string(), mean_cell(m), f1(m.mean.sd)]).collect(),
            },
            Block::Paragraph(format!(
                "Sessions whose blood-pressure peak passed {}/{} mmHg: {} {}.",
                o.rules.hypertension_systolic_above.normalize(),
                o.rules.hypertension_diastolic_above.normalize(),
                pct(&bp.hypertensive),
                kn(&bp.hypertensive)
            )),
            Block::Table {
                caption: "Blood-pressure rise by dose level".into(),
                columns: vec![
                    Column::left("Dose level", 1.2),
                    Column::right("Sessions", 1.0),
                    Column::right("Peak systolic rise, mmHg (95 % CI)", 2.2),
                    Column::right("Peak diastolic rise, mmHg (95 % CI)", 2.2),
                ],
                rows: bp_rows,
            },
            Block::Paragraph(adverse),
        ],
    });

    // Functioning and quality of life.
    sections.push(Section {
        title: "Functioning and quality of life".into(),
        blocks: vec![
            Block::Note("Patients with a rating at or before the first dose and one after it: the baseline and the last rating. On the Sheehan Disability Scale lower is better; on Q-LES-Q-SF higher is better.".into()),
            Block::Table {
                caption: "Before and after".into(),
                columns: vec![
                    Column::left("Scale", 2.5),
                    Column::right("Patients", 1.0),
                    Column::right("Before", 1.0),
                    Column::right("After", 1.0),
                    Column::right("Change (95 % CI)", 1.8),
                ],
                rows: r
                    .functioning
                    .iter()
                    .map(|b| {
                        vec![
                            app.knowledge().instrument(&b.scale).map(|i| i.name.clone()).unwrap_or_else(|| b.scale.clone()),
                            b.change.n.to_string(),
                            f1(b.before.mean),
                            f1(b.after.mean),
                            format!("{} ({}–{})", f1(b.change.mean), f1(b.change.lo), f1(b.change.hi)),
                        ]
                    })
                    .collect(),
            },
        ],
    });

    // Subgroups and biomarkers.
    let mut sub = vec![
        Block::Warning("Hypothesis-generating only: small strata, many comparisons, and covariates recorded for some patients only. Do not change treatment on these numbers.".into()),
        Block::Table {
            caption: "Response by stratum".into(),
            columns: vec![
                Column::left("Covariate", 2.2),
                Column::left("Stratum", 1.6),
                Column::right("Patients", 1.0),
                Column::right("Response (95 % CI)", 1.7),
            ],
            rows: r
                .strata
                .iter()
                .map(|s| {
                    vec![
                        covariate_label(&s.covariate),
                        s.level.clone(),
                        format!("{}{}", s.rate.n, if s.rate.small { " (small n)" } else { "" }),
                        pct(&s.rate.response),
                    ]
                })
                .collect(),
        },
        Block::Note("Odds ratios of response per unit (per yes for yes/no covariates) with 95 % Wald intervals: each covariate alone, on the patients who have it, and the covariates most patients have, together (complete cases).".into()),
        Block::Table {
            caption: "Logistic regression of response".into(),
            columns: vec![
                Column::left("Covariate", 2.2),
                Column::right("Patients", 1.0),
                Column::right("Responders", 1.1),
                Column::right("Odds ratio alone (95 % CI)", 2.0),
                Column::right("Together (95 % CI)", 1.8),
            ],
            rows: r
                .univariable
                .iter()
                .filter_map(|u| {
                    let t = u.terms.first()?;
                    let together = r.regression.as_ref().and_then(|m| m.terms.iter().find(|x| x.covariate == t.covariate));
                    let unstable = if u.small || u.separation || !u.converged { " (unstable)" } else { "" };
                    Some(vec![
                        covariate_label(&t.covariate),
                        u.n.to_string(),
                        u.events.to_string(),
                        format!("{}{unstable}", odds(t)),
                        together.map(odds).unwrap_or_else(|| "—".into()),
                    ])
                })
                .collect(),
        },
    ];
    if let Some(m) = &r.regression {
        sub.push(Block::Paragraph(format!(
            "Together: {} patients with every one of {} covariates, {} responders.",
            m.n,
            m.terms.len(),
            m.events
        )));
        if m.small || m.separation || !m.converged {
            sub.push(Block::Warning(fit_warning(m, small)));
        }
    }
    sub.push(Block::Note(format!(
        "Covariates: {}",
        o.rules.covariates.iter().map(|c| format!("{} ({})", c.label, c.source)).collect::<Vec<_>>().join(" · ")
    )));
    sections.push(Section { title: "Subgroups and biomarkers (exploratory)".into(), blocks: sub });

    OutcomesReport {
        clinic,
        prepared_by,
        generated_at: app.now(),
        filter: filter_labels(&o.filter),
        counts: vec![(
            "Patients".into(),
            format!("{} match, {} treated, {} evaluable (a baseline rating and a rating after a dose)", r.patients, r.treated, r.evaluable),
        )],
        warning: format!(
            "Exploratory statistics. Groups of fewer than {small} patients are marked small n; their intervals are wide. Many comparisons are shown at once, so some will look different by chance alone (no correction for multiple comparisons). Associations are not causes."
        ),
        sections,
    }
}
