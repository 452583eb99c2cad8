//! The patient progress report for the referring doctor, as a PDF: `GET /patients/{id}/report.pdf`
//! (staff UI, session cookie) and `GET /api/patients/{id}/report.pdf` (API).
//!
//! The report is filled from the application's own use cases (chart, outcomes, dosing,
//! titration, safety, and the session record of each dose), each of which checks the caller's
//! role and audits its read; the download itself is audited too (entity `ProgressReport`). It
//! names the patient (it is for the referring doctor), so only roles that may read patients get
//! it; the file name carries no name.

use crate::error::{Problem, WebError};
use crate::extract::Auth;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use ketacare_app::{App, AppError, Principal, Series};
use ketacare_domain::audit::{AuditAction, AuditEvent, AuditOutcome};
use ketacare_domain::dose::format_amount;
use ketacare_domain::ids::{PatientId, RecordId};
use ketacare_domain::instrument::Direction;
use ketacare_domain::order::OrderStatus;
use ketacare_domain::patient::age_in_years;
use ketacare_domain::record::ClinicalRecord;
use ketacare_domain::session::Vital;
use ketacare_report::progress::{BpRow, DoseRow, PatientHeader, SafetySummary, ScaleBand, ScalePoint, ScaleReport, Tolerability};
use ketacare_report::ProgressReport;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::HashMap;
use utoipa::OpenApi;

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(report_api))]
pub struct ReportsDoc;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/patients/{id}/report.pdf", get(report_page)).route("/api/patients/{id}/report.pdf", get(report_api))
}

/// Scales that are tolerability or safety measures, not outcomes (shown in their own sections
/// or not at all).
const NOT_OUTCOMES: [&str; 4] = ["cadss", "moaas", "cssrs_screener", "icsi"];
/// Dissociation scale shown under tolerability.
const DISSOCIATION: &str = "cadss";

async fn report_page(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> Result<Response, WebError> {
    let id = PatientId::parse(&id).map_err(|_| WebError::ui(AppError::NotFound))?;
    pdf_response(&state.app, &p, id).await.map_err(WebError::ui)
}

/// The patient's progress report for the referring doctor, as a PDF.
#[utoipa::path(get, path = "/api/patients/{id}/report.pdf", tag = "reports",
    params(("id" = String, Path, description = "Patient id")),
    responses(
        (status = 200, content_type = "application/pdf", description = "The progress report: patient identification, diagnoses, protocol and doses given, an outcome chart per rating scale with baseline, response threshold and doses, response and remission, tolerability (CADSS, blood-pressure peaks, adverse events) and the safety summary. Sent as an attachment whose file name carries no patient name."),
        (status = 401, body = Problem, description = "Not logged in"),
        (status = 403, body = Problem, description = "The role may not read patients (researchers see de-identified data only)"),
        (status = 404, body = Problem, description = "No such patient")))]
async fn report_api(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> Result<Response, WebError> {
    let id = PatientId::parse(&id).map_err(|_| WebError::api(AppError::NotFound))?;
    pdf_response(&state.app, &p, id).await.map_err(WebError::api)
}

async fn pdf_response(app: &App, p: &Principal, id: PatientId) -> Result<Response, AppError> {
    let report = progress_report(app, p, id).await?;
    let pdf =
        ketacare_report::render_progress_report(&report).map_err(|e| AppError::Internal(format!("drawing the progress report: {e}")))?;
    let event = AuditEvent {
        recorded_at: app.now(),
        actor: p.actor(),
        action: AuditAction::Read,
        outcome: AuditOutcome::Success,
        entity_type: "ProgressReport".into(),
        entity_id: None,
        patient_id: Some(id),
        detail: Some(format!("purpose=treatment; PDF for the referring doctor, {} bytes", pdf.len())),
    };
    app.store().append_audit(&event).await?;
    let short: String = id.to_string().chars().take(8).collect();
    let filename = format!("progress-report-{}-{short}.pdf", report.generated_at.format("%Y-%m-%d"));
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
        ],
        pdf,
    )
        .into_response())
}

/// The clinic's name on reports (clinic policy `clinic.name`).
pub(crate) async fn clinic_name(app: &App) -> Result<String, AppError> {
    app.clinic_name().await
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// Fills the report from the application's use cases (each authorises and audits its read).
pub(crate) async fn progress_report(app: &App, p: &Principal, id: PatientId) -> Result<ProgressReport, AppError> {
    // The chart first: a role without patient access, or an unknown patient, stops here.
    let chart = app.chart(p, id).await?;
    let now = app.now();
    let k = app.knowledge();
    let d = &chart.patient.demographics;
    let patient = PatientHeader {
        name: d.name.display(),
        date_of_birth: d.date_of_birth.date(),
        mrn: d.mrn.as_str().to_owned(),
        sex: d.sex.label().to_owned(),
    };
    let diagnoses = chart
        .records
        .iter()
        .filter_map(|v| match &v.record {
            ClinicalRecord::Diagnosis(x) => {
                let code = x.icd10.as_ref().map(|c| format!(" ({})", c.code())).unwrap_or_default();
                let onset = x.onset.map(|o| format!(" since {o}")).unwrap_or_default();
                Some(format!("{}{code}, {}{onset}", x.condition.display(), x.status.code()))
            }
            _ => None,
        })
        .collect();

    let dosing = app.dosing(p, id).await?;
    let sessions = app.patient_sessions(p, id).await?;
    let started: HashMap<RecordId, chrono::DateTime<Utc>> =
        sessions.iter().filter_map(|s| Some((s.order_id?, s.dose_started_at?))).collect();
    let plans: Vec<String> = dosing
        .plans
        .iter()
        .rev()
        .map(|(_, pl)| {
            let note = pl.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
            format!(
                "{}, {}, from {}: {} sessions planned{note}",
                pl.protocol_name,
                pl.route.code().to_uppercase(),
                pl.start,
                pl.sessions.len()
            )
        })
        .collect();
    let mut doses: Vec<(RecordId, DoseRow)> = dosing
        .orders
        .iter()
        .filter(|(_, o)| o.status == OrderStatus::Checked)
        .filter_map(|(v, o)| {
            let at = started.get(&v.record_id).copied().or(o.check.as_ref().map(|c| c.at))?;
            let plan = o.plan.and_then(|pid| dosing.plans.iter().find(|(pv, _)| pv.record_id == pid)).map(|(_, pl)| pl);
            // A repeating step has one planned session per date: the one of the dose's day.
            let step = plan
                .and_then(|pl| {
                    let of_step = || pl.sessions.iter().filter(|s| Some(&s.step) == o.step.as_ref());
                    of_step().find(|s| s.date == at.date_naive()).or_else(|| of_step().next())
                })
                .map(|s| s.label.clone());
            let what = match (plan, step) {
                (Some(pl), Some(s)) => format!("{}: {s}", pl.protocol_name),
                (Some(pl), None) => pl.protocol_name.clone(),
                _ => "Dose without a plan".into(),
            };
            let rule = o.mg_per_kg.map(|m| format!("{} mg/kg", format_amount(m))).unwrap_or_default();
            let marker = o.mg_per_kg.map(format_amount).unwrap_or_else(|| format!("{} mg", format_amount(o.dose_mg)));
            Some((
                v.record_id,
                DoseRow {
                    at,
                    what,
                    route: o.route.code().to_uppercase(),
                    mg_per_kg: rule,
                    dose: format!("{} mg", format_amount(o.dose_mg)),
                    marker,
                },
            ))
        })
        .collect();
    doses.sort_by_key(|(_, d)| d.at);

    // Outcome scales, and the treatment sessions recorded without a double-checked order.
    let outcomes = app.outcomes(p, id).await?;
    // Sessions run on a chair give their dose through an order (the table above); treatment
    // visits recorded only as encounters (no session row, no dose that day) are listed as
    // recorded, once past.
    let on_chair: Vec<RecordId> = sessions.iter().map(|s| s.id).collect();
    let other_sessions = outcomes
        .sessions
        .iter()
        .filter(|m| !on_chair.contains(&m.session.id) && m.session.start <= now)
        .filter(|m| !doses.iter().any(|(_, d)| d.at.date_naive() == m.session.start.date_naive()))
        .map(|m| (m.session.start, m.label.clone()))
        .collect();
    let scales = outcomes.series.iter().filter(|s| !NOT_OUTCOMES.contains(&s.instrument.key.as_str())).filter_map(scale_report).collect();
    let cadss = outcomes.series.iter().find(|s| s.instrument.key == DISSOCIATION);

    // Blood pressure of each dosed session, from its readings.
    let limits = (k.titration.sbp_above.value, k.titration.dbp_above.value);
    let mut blood_pressure = Vec::new();
    let mut dosed: Vec<_> = sessions.iter().filter(|s| s.dose_started_at.is_some()).collect();
    dosed.sort_by_key(|s| s.dose_started_at);
    for s in dosed {
        let Some(start) = s.dose_started_at else { continue };
        let view = app.session_view(p, s.id).await?;
        let peak = |v: Vital| view.readings.iter().filter(|r| r.vital == v && r.observed_at >= start).map(|r| r.value).max();
        let (ps, pd) = (peak(Vital::Systolic), peak(Vital::Diastolic));
        let dose = s
            .order_id
            .and_then(|o| doses.iter().find(|(rid, _)| *rid == o))
            .map(|(_, d)| if d.mg_per_kg.is_empty() { d.dose.clone() } else { d.mg_per_kg.clone() })
            .unwrap_or_default();
        let pair = |a: Option<String>, b: Option<String>| match (a, b) {
            (Some(a), Some(b)) => format!("{a}/{b}"),
            _ => "not recorded".into(),
        };
        let whole = |d: Decimal| d.round().normalize().to_string();
        blood_pressure.push(BpRow {
            at: start,
            dose,
            baseline: pair(s.baseline.0.map(|x| x.to_string()), s.baseline.1.map(|x| x.to_string())),
            peak: pair(ps.map(whole), pd.map(whole)),
            rise: match (ps, s.baseline.0) {
                (Some(p), Some(b)) => format!("{:+}", (p - Decimal::from(b)).round().normalize()),
                _ => String::new(),
            },
            above_limit: ps.is_some_and(|x| x > limits.0) || pd.is_some_and(|x| x > limits.1),
        });
    }

    let safety = app.safety(p, id).await?;
    let cumulative = safety
        .assessment
        .cumulative
        .windows
        .iter()
        .map(|w| {
            [
                w.label.to_owned(),
                w.doses.to_string(),
                format_amount(w.mg),
                format_amount(w.mg_per_kg),
                w.caps
                    .map(|(soft, hard)| format!("soft {} mg, hard {} mg", format_amount(soft), format_amount(hard)))
                    .unwrap_or_else(|| "none".into()),
            ]
        })
        .collect();
    let signals = safety.assessment.signals.iter().map(|s| (s.level.code().to_owned(), s.title.clone(), s.data.join("; "))).collect();
    let recommendation = app.titration(p, id).await?.map(|t| {
        let r = &t.recommendation;
        let next = r.next_mg_per_kg.map(|m| format!(" at {} mg/kg", format_amount(m))).unwrap_or_default();
        format!("{}{next}. {}", r.action.label(), r.rule)
    });
    let clinic = clinic_name(app).await?;

    Ok(ProgressReport {
        clinic,
        age: age_in_years(d.date_of_birth.date(), now.date_naive()),
        patient,
        diagnoses,
        plans,
        doses: doses.into_iter().map(|(_, d)| d).collect(),
        other_sessions,
        scales,
        tolerability: Tolerability {
            cadss: cadss.map(points).unwrap_or_default(),
            cadss_max: cadss.map(|s| f(s.instrument.total_range().1)).unwrap_or(0.0),
            cadss_alarm: Some(f(k.session.cadss_above.value)),
            blood_pressure,
            bp_limits: format!(
                "systolic above {} or diastolic above {} mmHg (treatment-emergent hypertension)",
                format_amount(limits.0),
                format_amount(limits.1)
            ),
            adverse_events: safety.adverse_events.clone(),
        },
        safety: SafetySummary { cumulative, signals, recommendation },
        clinician: p.user.display_name.clone(),
        generated_at: now,
    })
}

fn points(s: &Series) -> Vec<ScalePoint> {
    s.points.iter().filter_map(|p| Some(ScalePoint { at: p.assessment.taken_at, total: f(p.score.total?) })).collect()
}

/// One scale's course, with its response and remission rules as the clinic applies them.
fn scale_report(s: &Series) -> Option<ScaleReport> {
    let inst = &s.instrument;
    let pts = points(s);
    let baseline = pts.first()?.total;
    let (min, max) = inst.total_range();
    let higher_is_better = inst.direction == Direction::HigherIsBetter;
    let bands = inst
        .band_set(s.band_set.as_deref())
        .map(|b| b.bands.iter().map(|x| ScaleBand { from: f(x.min), to: f(x.max), label: x.label.clone() }).collect())
        .unwrap_or_default();
    let response_threshold = s.rules.response.as_ref().map(|r| {
        let pct = f(r.percent);
        let y = if higher_is_better { baseline * (1.0 + pct / 100.0) } else { baseline * (1.0 - pct / 100.0) };
        let more = if r.strict { "more than " } else { "" };
        (y, format!("{more}{} % {}", format_amount(r.percent), if higher_is_better { "increase" } else { "reduction" }))
    });
    let remission_rule = s.rules.remission.as_ref().map(|m| {
        let items = m.no_item_above.map(|n| format!(", no item above {n}")).unwrap_or_default();
        format!("total {} or {}{items}", format_amount(m.total_at_most), if higher_is_better { "above" } else { "below" })
    });
    let last = s.points.last().and_then(|p| p.outcome.as_ref());
    let ever_responded =
        s.rules.response.as_ref().map(|_| s.points.iter().skip(1).any(|p| p.outcome.as_ref().and_then(|o| o.response) == Some(true)));
    Some(ScaleReport {
        name: inst.name.clone(),
        title: inst.title.clone(),
        min: f(min),
        max: f(max),
        higher_is_better,
        bands,
        points: pts,
        response_threshold,
        remission_rule,
        change_percent: last.and_then(|o| o.change_percent).map(f),
        response: last.and_then(|o| o.response),
        remission: last.and_then(|o| o.remission),
        ever_responded,
    })
}
