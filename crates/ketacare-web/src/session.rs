//! Treatment-session pages: a patient's sessions and booking, the session page (steps, pre-dose
//! checks, vital signs, ratings, alarms and their acknowledgement, adverse events, discharge,
//! addenda), the printable session note, and the live board of the treatment room with its
//! room-display mode (server-sent events; `static/board.js` draws it, no build step).

use crate::error::WebError;
use crate::extract::{cookie, Auth};
use crate::forms::{f, Fields};
use crate::pages::{check_csrf, pid, ui, PageResult};
use crate::views::*;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use ketacare_app::{AppError, BoardChair, BookingInput, ChecksInput, Principal, ReadingInput, SessionAction, SessionView};
use ketacare_db::session::{SessionAlarm, SessionEvent, SessionReading};
use ketacare_domain::access::Permission;
use ketacare_domain::ids::RecordId;
use ketacare_domain::record::ClinicalRecord;
use ketacare_domain::session::{
    AdverseEventInput, Level, Phase, Vital, ADVERSE_EVENT_ACTIONS, ADVERSE_EVENT_KINDS, ADVERSE_EVENT_OUTCOMES,
};
use ketacare_domain::validation::FieldErrors;
use maud::{html, Markup};
use rust_decimal::Decimal;
use serde::Serialize;
use std::convert::Infallible;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/sessions", get(patient_sessions).post(book))
        .route("/sessions/{id}", get(session_page))
        .route("/sessions/{id}/action", post(action))
        .route("/sessions/{id}/vitals", post(vitals))
        .route("/sessions/{id}/rating", post(rating))
        .route("/sessions/{id}/alarms/{alarm}/ack", post(ack))
        .route("/sessions/{id}/note", get(note))
        .route("/board", get(board_page))
        .route("/board/events", get(board_events))
        .route("/board/room-display", post(start_room_display))
        .route("/room", get(room_page))
        .route("/room/events", get(room_events))
        .route("/static/board.js", get(board_js))
}

const BOARD_JS: &str = include_str!("../static/board.js");
const ROOM_COOKIE: &str = "ketacare_room";

async fn board_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")], BOARD_JS)
}

fn rid(s: &str) -> Result<RecordId, WebError> {
    RecordId::parse(s).map_err(|_| ui(AppError::NotFound))
}

fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

use crate::views::second_utc as when;

fn phase_label(p: Phase) -> String {
    let c = p.code().replace('_', " ");
    let mut s = c.chars();
    s.next().map(|f| f.to_uppercase().collect::<String>() + s.as_str()).unwrap_or_default()
}

fn level_class(l: Level) -> &'static str {
    match l {
        Level::Advisory => "alarm advisory",
        Level::Warning => "alarm warning",
        Level::Critical => "alarm critical",
    }
}

// ---------------------------------------------------------------- a patient's sessions

async fn sessions_body(state: &AppState, p: &Principal, id: &str, values: &Fields, errors: &FieldErrors) -> Result<Markup, WebError> {
    let patient = pid(id)?;
    let pv = state.app.patient(p, patient).await.map_err(ui)?;
    let sessions = state.app.patient_sessions(p, patient).await.map_err(ui)?;
    let chart = state.app.chart(p, patient).await.map_err(ui)?;
    let orders: Vec<(String, String)> = std::iter::once((String::new(), "— link later —".to_owned()))
        .chain(chart.records.iter().filter_map(|r| match &r.record {
            ClinicalRecord::DoseOrder(o) if !r.is_void() => {
                Some((r.record_id.to_string(), format!("{} · {}", r.provenance.recorded_at.format("%Y-%m-%d"), o.summary())))
            }
            _ => None,
        }))
        .collect();
    let d = &pv.demographics;
    Ok(html! {
        p { a href=(format!("/patients/{id}")) { "← " (d.name.display()) } }
        h1 { "Treatment sessions" }
        @if sessions.is_empty() { p.muted { "No treatment sessions yet." } }
        @else {
            table.list #sessions {
                thead { tr { th { "Booked for" } th { "Chair" } th { "Phase" } th { "Signed" } th {} } }
                tbody {
                    @for s in &sessions {
                        tr {
                            td { (when(s.scheduled_at)) }
                            td { (s.chair) }
                            td { (phase_label(s.phase)) }
                            td { (s.signed_by_name.as_deref().unwrap_or("—")) }
                            td { a href=(format!("/sessions/{}", s.id)) { "Open" } " · " a href=(format!("/sessions/{}/note", s.id)) { "Note" } }
                        }
                    }
                }
            }
        }
        @if p.can(Permission::WriteClinical) {
            section.card.narrow #book {
                h2 { "Book a session on a chair" }
                (error_summary(errors))
                form method="post" action=(format!("/patients/{id}/sessions")) {
                    (csrf(p))
                    (input("chair", "Chair", values, errors, "text", Some("As the chair's monitor names it in PV1-3, e.g. ROOM1^CHAIR2")))
                    (input("device_id", "Monitor device id (optional)", values, errors, "text", Some("The monitor's EUI-64, e.g. 0123456789ABCDEF; leave blank to bind by chair or type vitals in")))
                    (select("order_id", "Dose order", &orders, values, errors))
                    (input("scheduled_at", "Booked for (UTC, blank = now)", values, errors, "text", Some("2026-11-30T09:00; a session entered after the fact takes the time it began, up to 12 hours back")))
                    @if let Some(m) = errors.for_field("patient") { p.error { (m) } }
                    button.primary type="submit" { "Book session" }
                }
            }
        }
    })
}

async fn patient_sessions(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let b = sessions_body(&state, &p, &id, &Fields::new(), &FieldErrors::new()).await?;
    Ok(layout(Some(&p), "Treatment sessions", b).into_response())
}

async fn book(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let input = BookingInput {
        chair: f(&form, "chair"),
        device_id: f(&form, "device_id"),
        order_id: f(&form, "order_id"),
        scheduled_at: f(&form, "scheduled_at"),
    };
    match state.app.book_session(&p, pid(&id)?, &input).await {
        Ok(s) => Ok(Redirect::to(&format!("/sessions/{}", s.id)).into_response()),
        Err(AppError::Validation(e)) => {
            let b = sessions_body(&state, &p, &id, &form, &e).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Treatment sessions", b)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

// ---------------------------------------------------------------- the vitals chart

/// A server-drawn chart of a session's vital signs (time on x; mmHg, /min and % share one
/// axis from 0 to 220), with the alarm limits of systolic and diastolic drawn as lines.
pub fn vitals_chart(readings: &[SessionReading], sbp_limit: Decimal, dbp_limit: Decimal) -> Markup {
    let (w, h, left, top, bottom) = (720.0_f64, 260.0_f64, 44.0_f64, 10.0_f64, 30.0_f64);
    if readings.is_empty() {
        return html! { p.muted { "No vital signs recorded yet." } };
    }
    let t0 = readings.iter().map(|r| r.observed_at).min().unwrap_or_else(Utc::now);
    let t1 = readings.iter().map(|r| r.observed_at).max().unwrap_or(t0);
    let span = ((t1 - t0).num_seconds().max(60)) as f64;
    let x = |t: DateTime<Utc>| left + (t - t0).num_seconds() as f64 / span * (w - left - 10.0);
    let y = |v: f64| top + (1.0 - v.clamp(0.0, 220.0) / 220.0) * (h - top - bottom);
    let num = |d: Decimal| d.to_string().parse::<f64>().unwrap_or(0.0);
    let series = [
        (Vital::Systolic, "sbp"),
        (Vital::Diastolic, "dbp"),
        (Vital::HeartRate, "hr"),
        (Vital::Spo2, "spo2"),
        (Vital::RespiratoryRate, "rr"),
    ];
    let desc = format!("Vital signs from {} to {}", when(t0), when(t1));
    html! {
        figure.chart.vitals-chart {
            svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(desc) {
                @for v in [0, 50, 100, 150, 200] {
                    line.grid x1=(left) x2=(w - 10.0) y1=(y(f64::from(v))) y2=(y(f64::from(v))) {}
                    text.axis x=(left - 6.0) y=(y(f64::from(v)) + 4.0) text-anchor="end" { (v) }
                }
                line.limit x1=(left) x2=(w - 10.0) y1=(y(num(sbp_limit))) y2=(y(num(sbp_limit))) {}
                line.limit x1=(left) x2=(w - 10.0) y1=(y(num(dbp_limit))) y2=(y(num(dbp_limit))) {}
                text.axis x=(left) y=(h - 8.0) { (t0.format("%H:%M")) }
                text.axis x=(w - 10.0) y=(h - 8.0) text-anchor="end" { (t1.format("%H:%M")) }
                @for (vital, class) in series {
                    @let pts: Vec<String> = readings.iter().filter(|r| r.vital == vital).map(|r| format!("{:.1},{:.1}", x(r.observed_at), y(num(r.value)))).collect();
                    @if !pts.is_empty() {
                        polyline class=(format!("series {class}")) points=(pts.join(" ")) {}
                    }
                }
            }
            figcaption {
                span.key.sbp { "Systolic" } " " span.key.dbp { "Diastolic" } " " span.key.hr { "Heart rate" } " " span.key.spo2 { "SpO2" } " " span.key.rr { "Resp. rate" }
                " · dashed: alarm limits (systolic " (dec(sbp_limit)) ", diastolic " (dec(dbp_limit)) " mmHg)"
            }
        }
    }
}

fn readings_table(readings: &[SessionReading], limit: usize) -> Markup {
    html! {
        @if readings.len() > limit { p.muted { "The latest " (limit) " of " (readings.len()) " readings; the session note lists them all." } }
        table.list #readings {
            thead { tr { th { "Measured" } th { "Vital" } th { "Value" } th { "Source" } th { "By" } } }
            tbody {
                @for r in readings.iter().rev().take(limit) {
                    tr { td { (when(r.observed_at)) } td { (r.vital.label()) } td { (dec(r.value)) " " (r.vital.display_unit()) } td { (r.source.code()) (r.device_id.as_deref().map(|d| format!(" {d}")).unwrap_or_default()) } td { (r.recorded_by_name) } }
                }
            }
        }
    }
}

fn alarm_row(a: &SessionAlarm, level_now: Option<Level>) -> Markup {
    let level = level_now.unwrap_or(a.level);
    html! {
        li class=(level_class(level)) data-rule=(a.rule) {
            strong { (level.code().to_uppercase()) }
            @if level != a.level { " (escalated from " (a.level.code()) ")" }
            " " (a.message) " · raised " (when(a.raised_at))
            @if let Some((at, _, by, action)) = &a.acknowledged { br; span.ack { "Acknowledged by " (by) " at " (when(*at)) ": " (action) } }
            @if let Some(c) = a.cleared_at { br; span.muted { "Cleared " (when(c)) } }
            br; span.source { "Rule source: " (a.source) }
        }
    }
}

fn events_list(events: &[SessionEvent]) -> Markup {
    html! {
        ol.events #events {
            @for e in events {
                li data-kind=(e.kind) {
                    span.muted { (when(e.at)) " · " (e.by_name) " · " (phase_label(e.phase)) } br;
                    @if e.kind == "adverse_event" { "Adverse event: " (e.detail.replace('\n', "; ")) }
                    @else if e.kind == "checks" { "Pre-dose checks: " (e.detail.replace('\n', "; ")) }
                    @else if e.kind == "rating" { "Rating: " (e.detail) }
                    @else if e.kind == "addendum" { strong { "Addendum: " } (e.detail) }
                    @else { (e.detail) }
                    @if let Some(r) = &e.reason { " — reason: " (r) }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- the session page

fn opts(list: &[&str]) -> Vec<(String, String)> {
    list.iter().map(|s| (s.to_string(), s.replace('_', " "))).collect()
}

async fn session_body(state: &AppState, p: &Principal, v: &SessionView, values: &Fields, errors: &FieldErrors) -> Markup {
    let s = &v.session;
    let rules = &state.app.knowledge().session;
    let base = format!("/sessions/{}", s.id);
    let write = p.can(Permission::WriteClinical) && s.signed_at.is_none();
    let step = |label: &str, action: &str, primary: bool| {
        html! {
            form.inline method="post" action=(format!("{base}/action")) {
                (csrf(p))
                input type="hidden" name="seq" value=(s.seq);
                input type="hidden" name="action" value=(action);
                @if primary { button.primary type="submit" { (label) } } @else { button type="submit" { (label) } }
            }
        }
    };
    let with_reason = |label: &str, action: &str| {
        html! {
            form.inline method="post" action=(format!("{base}/action")) {
                (csrf(p))
                input type="hidden" name="seq" value=(s.seq);
                input type="hidden" name="action" value=(action);
                label { "Reason " input type="text" name="reason" required minlength="3"; }
                button type="submit" { (label) }
            }
        }
    };
    let ae_kinds: Vec<(String, String)> = ADVERSE_EVENT_KINDS.iter().map(|(k, l)| (k.to_string(), l.to_string())).collect();
    html! {
        p { a href=(format!("/patients/{}/sessions", s.patient_id)) { "← Sessions of " (v.patient_name) } " · " a href="/board" { "Live board" } }
        div.row-between {
            div {
                h1 { "Treatment session · " (s.chair) }
                p.muted { (v.patient_name) " · MRN " (v.mrn) " · booked for " (when(s.scheduled_at)) " by " (s.created_by_name) }
            }
            div.actions { a.button href=(format!("{base}/note")) { "Session note" } }
        }
        p #phase.phase { "Phase: " strong data-phase=(s.phase.code()) { (phase_label(s.phase)) }
            @if let Some(d) = s.device_id.as_deref() { " · monitor " code { (d) } } @else { " · no monitor bound (vitals by hand, or the chair's monitor binds by location)" } }
        (error_summary(errors))
        @if !v.live.is_empty() {
            section.card #live-alarms {
                h2 { "Open alarms" }
                ul.alarms {
                    @for a in &v.live {
                        (alarm_row(&a.alarm, Some(a.level_now)))
                        @if p.can(Permission::WriteClinical) {
                            form.inline.ack method="post" action=(format!("{base}/alarms/{}/ack", a.alarm.id)) {
                                (csrf(p))
                                label { "Action taken " input type="text" name="action" required minlength="3"; }
                                button.primary type="submit" { "Acknowledge" }
                            }
                        }
                    }
                }
            }
        }
        @if !v.prompts.is_empty() {
            section.card #prompts {
                h2 { "Due" }
                ul { @for pr in &v.prompts { li class=(if pr.overdue { "overdue" } else { "" }) { (pr.label) " — due " (pr.due_at.format("%H:%M")) @if pr.overdue { strong { " overdue" } } } } }
            }
        }
        @if write {
            section.card #steps {
                h2 { "Next step" }
                div.actions {
                    @match s.phase {
                        Phase::Scheduled => { (step("Check in", "check_in", true)) (with_reason("Cancel session", "cancel")) }
                        Phase::CheckedIn => { (step("Start pre-dose checks", "start_checks", true)) (with_reason("Cancel session", "cancel")) }
                        Phase::PreDoseChecks => {
                            form.inline method="post" action=(format!("{base}/action")) {
                                (csrf(p))
                                input type="hidden" name="seq" value=(s.seq);
                                input type="hidden" name="action" value="start_dose";
                                label { "Started at (UTC, blank = now) " input type="text" name="at" value=(f(values, "at")) placeholder="2026-11-30T09:15"; }
                                button.primary type="submit" { "Start dose" }
                            }
                            (with_reason("Cancel session", "cancel"))
                        }
                        Phase::Dosing => {
                            form.inline method="post" action=(format!("{base}/action")) {
                                (csrf(p))
                                input type="hidden" name="seq" value=(s.seq);
                                input type="hidden" name="action" value="dose_given";
                                label { "Injection site (SC/IM) " input type="text" name="site" value=(f(values, "site")); }
                                label { "Ended at (UTC, blank = now) " input type="text" name="at" value=(f(values, "at")) placeholder="2026-11-30T09:15"; }
                                button.primary type="submit" { "Dose given in full" }
                            }
                            (with_reason("Pause", "pause")) (with_reason("Stop dose early", "stop"))
                        }
                        Phase::Monitoring => { (step("Start recovery", "start_recovery", true)) (with_reason("Pause", "pause")) (with_reason("Stop early", "stop")) }
                        Phase::Paused(_) => { (step("Resume", "resume", true)) (with_reason("Stop early", "stop")) }
                        Phase::StoppedEarly => { (step("Start recovery", "start_recovery", true)) }
                        Phase::Recovery => {
                            form.inline method="post" action=(format!("{base}/action")) {
                                (csrf(p))
                                input type="hidden" name="seq" value=(s.seq);
                                input type="hidden" name="action" value="discharge";
                                label.choice { input type="checkbox" name="escort_present" value="yes"; " Escort present" }
                                label { "Discharge note " input type="text" name="note"; }
                                button.primary type="submit" { "Discharge and sign note" }
                            }
                            (with_reason("Back to monitoring", "back_to_monitoring"))
                        }
                        _ => {}
                    }
                }
                @if s.phase == Phase::Recovery && !v.discharge_unmet.is_empty() {
                    div.alert.alert-warning #discharge-unmet { p { "Discharge criteria not met yet:" } ul { @for u in &v.discharge_unmet { li { (u) } } } }
                }
            }
        }
        @if matches!(s.phase, Phase::Scheduled | Phase::CheckedIn | Phase::PreDoseChecks) {
            section.card #gate {
                h2 { "Pre-dose checks" }
                @if v.gate.unmet.is_empty() { p.alert.alert-ok { "Every check is met: the dose may start." } }
                @else { ul.unmet { @for u in &v.gate.unmet { li { (u) } } } }
                dl {
                    dt { "Screening re-check" } dd { (yn(v.gate.checks.screening_allows)) }
                    dt { "Weight measured today" } dd { (yn(v.gate.checks.weight_today)) }
                    dt { "Dose double-checked" } dd { (yn(v.gate.checks.dose_double_checked))
                        @if let Some(o) = &v.order { " · " (o.record.summary()) } @else { " · no order linked" } }
                    dt { "Baseline BP" } dd { (v.gate.checks.baseline_bp.map(|(a, b)| format!("{a}/{b} mmHg")).unwrap_or_else(|| "not recorded".into())) }
                }
                @if write && matches!(s.phase, Phase::CheckedIn | Phase::PreDoseChecks) {
                    form method="post" action=(format!("{base}/action")) #checks-form {
                        (csrf(p))
                        input type="hidden" name="seq" value=(s.seq);
                        input type="hidden" name="action" value="checks";
                        (select("consent", "Consent on file", &[("".into(), "—".into()), ("yes".into(), "Yes".into()), ("no".into(), "No".into())], values, errors))
                        (select("escort", "Escort home confirmed", &[("".into(), "—".into()), ("yes".into(), "Yes".into()), ("no".into(), "No".into())], values, errors))
                        (select("pregnancy_test", "Pregnancy test", &opts(&["not_applicable", "negative", "positive", "not_done"]), values, errors))
                        @if p.can(Permission::Prescribe) {
                            (input("gate_decision", "Prescriber's decision to go ahead above the BP gate (reason)", values, errors, "text", Some("Only when the baseline is above the gate; never above the hard ceiling")))
                        }
                        button.primary type="submit" { "Record checks" }
                    }
                }
            }
        }
        @if !s.phase.is_final() && p.can(Permission::WriteClinical) {
            section.card #vitals-entry {
                h2 { "Record vital signs" }
                form method="post" action=(format!("{base}/vitals")) {
                    (csrf(p))
                    div.grid {
                        (input("systolic", "Systolic (mmHg)", values, errors, "text", None))
                        (input("diastolic", "Diastolic (mmHg)", values, errors, "text", None))
                        (input("heart_rate", "Heart rate (/min)", values, errors, "text", None))
                        (input("spo2", "SpO2 (%)", values, errors, "text", None))
                        (input("respiratory_rate", "Respiratory rate (/min)", values, errors, "text", None))
                        (input("observed_at", "Measured at (UTC, blank = now)", values, errors, "text", Some("2026-11-30T09:15")))
                    }
                    button.primary type="submit" { "Save vitals" }
                }
                h3 { "Ratings" }
                p.muted { "Full forms tied to this session: "
                    @for (inst, label, tp) in [("cadss", "CADSS", ""), ("gad7", "GAD-7 (+1 h)", "1h"), ("hama", "HAM-A (+1 h)", "1h"), ("vas_anxiety", "VAS anxiety (+1 h)", "1h")] {
                        a href=(format!("/patients/{}/assessments/new?instrument={inst}&session={}&timepoint={tp}", s.patient_id, s.id)) { (label) } " "
                    }
                    "(the quick forms below also feed the session's alarms)"
                }
                form.inline method="post" action=(format!("{base}/rating")) #moaas-form {
                    (csrf(p))
                    input type="hidden" name="instrument" value="moaas";
                    (select("answers", "MOAA/S", &[("5", "5 responds readily to name"), ("4", "4 lethargic response to name"), ("3", "3 responds after loud or repeated name"), ("2", "2 responds after mild prodding"), ("1", "1 responds after painful squeeze"), ("0", "0 no response")].map(|(a, b)| (a.to_string(), b.to_string())), values, errors))
                    button type="submit" { "Record MOAA/S" }
                }
                form.inline method="post" action=(format!("{base}/rating")) #cadss-form {
                    (csrf(p))
                    input type="hidden" name="instrument" value="cadss";
                    (input("cadss_answers", "CADSS: 23 answers 0-4, comma-separated", values, errors, "text", None))
                    button type="submit" { "Record CADSS" }
                }
                h3 { "Adverse event" }
                form method="post" action=(format!("{base}/action")) #ae-form {
                    (csrf(p))
                    input type="hidden" name="seq" value=(s.seq);
                    input type="hidden" name="action" value="adverse_event";
                    div.grid {
                        (select("kind", "Event", &ae_kinds, values, errors))
                        (input("description", "Description (needed for 'other')", values, errors, "text", None))
                        (select("grade", "Grade", &opts(&["1", "2", "3", "4", "5"]), values, errors))
                        (select("serious", "Serious", &[("no".into(), "No".into()), ("yes".into(), "Yes".into())], values, errors))
                        (select("ae_action", "Action", &opts(&ADVERSE_EVENT_ACTIONS), values, errors))
                        (select("outcome", "Outcome", &opts(&ADVERSE_EVENT_OUTCOMES), values, errors))
                    }
                    button type="submit" { "Record adverse event" }
                }
            }
        }
        @if s.signed_at.is_some() && p.can(Permission::WriteClinical) {
            section.card #addendum {
                h2 { "Addendum" }
                p.muted { "The note is signed and locked; later information is added as an addendum." }
                form method="post" action=(format!("{base}/action")) {
                    (csrf(p))
                    input type="hidden" name="seq" value=(s.seq);
                    input type="hidden" name="action" value="addendum";
                    (textarea("text", "Addendum", values, errors))
                    button.primary type="submit" { "Add addendum" }
                }
            }
        }
        section.card #vitals {
            h2 { "Vital signs" }
            (vitals_chart(&v.readings, rules.sbp_above.value, rules.dbp_above.value))
            details { summary { "Readings (" (v.readings.len()) ")" } (readings_table(&v.readings, 200)) }
        }
        section.card #alarms {
            h2 { "Alarms" }
            @if v.alarms.is_empty() { p.muted { "No alarms." } }
            ul.alarms { @for a in &v.alarms { (alarm_row(a, None)) } }
        }
        section.card #record { h2 { "Session record" } (events_list(&v.events)) }
    }
}

fn yn(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "Yes",
        Some(false) => "No",
        None => "Not yet",
    }
}

async fn render(state: &AppState, p: &Principal, id: &str, values: &Fields, errors: &FieldErrors) -> PageResult {
    let v = state.app.session_view(p, rid(id)?).await.map_err(ui)?;
    let b = session_body(state, p, &v, values, errors).await;
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, layout(Some(p), "Treatment session", b)).into_response())
}

async fn session_page(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    render(&state, &p, &id, &Fields::new(), &FieldErrors::new()).await
}

/// The action a form asks for.
pub fn action_from(form: &Fields) -> Result<SessionAction, FieldErrors> {
    let r = || f(form, "reason");
    Ok(match f(form, "action").as_str() {
        "check_in" => SessionAction::CheckIn,
        "start_checks" => SessionAction::StartChecks,
        "checks" => SessionAction::Checks(ChecksInput {
            consent: f(form, "consent"),
            escort: f(form, "escort"),
            pregnancy_test: f(form, "pregnancy_test"),
            gate_decision: f(form, "gate_decision"),
        }),
        "link_order" => SessionAction::LinkOrder(f(form, "order_id")),
        "bind_monitor" => SessionAction::BindMonitor(f(form, "device_id")),
        "start_dose" => SessionAction::StartDose { at: f(form, "at") },
        "dose_given" => SessionAction::DoseGiven { site: f(form, "site"), at: f(form, "at") },
        "pause" => SessionAction::Pause(r()),
        "resume" => SessionAction::Resume,
        "stop" => SessionAction::Stop(r()),
        "start_recovery" => SessionAction::StartRecovery,
        "back_to_monitoring" => SessionAction::BackToMonitoring(r()),
        "discharge" => SessionAction::Discharge { escort_present: if f(form, "escort_present") == "yes" { "yes".into() } else { "no".into() }, note: f(form, "note") },
        "cancel" => SessionAction::Cancel(r()),
        "adverse_event" => SessionAction::AdverseEvent(AdverseEventInput {
            kind: f(form, "kind"),
            description: f(form, "description"),
            grade: f(form, "grade"),
            serious: f(form, "serious"),
            action: f(form, "ae_action"),
            outcome: f(form, "outcome"),
        }),
        "addendum" => SessionAction::Addendum(f(form, "text")),
        _ => {
            return Err(FieldErrors::single(
                "action",
                "one of check_in, start_checks, checks, link_order, bind_monitor, start_dose, dose_given, pause, resume, stop, start_recovery, back_to_monitoring, discharge, cancel, adverse_event, addendum",
            ))
        }
    })
}

async fn action(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let act = match action_from(&form) {
        Ok(a) => a,
        Err(e) => return render(&state, &p, &id, &form, &e).await,
    };
    match state.app.session_action(&p, rid(&id)?, f(&form, "seq").parse().ok(), act).await {
        Ok(_) => Ok(Redirect::to(&format!("/sessions/{id}")).into_response()),
        Err(AppError::Validation(e)) => {
            // Adverse-event fields are named `action` in the domain and `ae_action` in the form.
            let mut shown = FieldErrors::new();
            for x in e.iter() {
                shown.add(
                    if x.field == "action" && f(&form, "action") == "adverse_event" { "ae_action" } else { &x.field },
                    x.message.clone(),
                );
            }
            render(&state, &p, &id, &form, &shown).await
        }
        Err(AppError::Conflict(c)) => render(&state, &p, &id, &form, &FieldErrors::single("seq", c)).await,
        Err(e) => Err(ui(e)),
    }
}

async fn vitals(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let inputs: Vec<ReadingInput> = Vital::ALL
        .iter()
        .map(|v| ReadingInput { vital: v.code().into(), value: f(&form, v.code()), observed_at: f(&form, "observed_at") })
        .collect();
    match state.app.manual_readings(&p, rid(&id)?, &inputs).await {
        Ok(_) => Ok(Redirect::to(&format!("/sessions/{id}")).into_response()),
        Err(AppError::Validation(e)) => render(&state, &p, &id, &form, &e).await,
        Err(e) => Err(ui(e)),
    }
}

async fn rating(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let inst = f(&form, "instrument");
    let answers: Vec<String> = if inst == "cadss" {
        f(&form, "cadss_answers").split(',').map(|s| s.trim().to_owned()).collect()
    } else {
        vec![f(&form, "answers")]
    };
    match state.app.session_rating(&p, rid(&id)?, &inst, answers, "").await {
        Ok(_) => Ok(Redirect::to(&format!("/sessions/{id}")).into_response()),
        Err(AppError::Validation(e)) => {
            let mut shown = FieldErrors::new();
            for x in e.iter() {
                let field = if inst == "cadss" { "cadss_answers" } else { "answers" };
                shown.add(field, format!("{}: {}", x.field, x.message));
            }
            render(&state, &p, &id, &form, &shown).await
        }
        Err(e) => Err(ui(e)),
    }
}

async fn ack(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, alarm)): Path<(String, String)>,
    Form(form): Form<Fields>,
) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.acknowledge_session_alarm(&p, rid(&id)?, &alarm, &f(&form, "action")).await {
        Ok(_) => Ok(Redirect::to(&format!("/sessions/{id}")).into_response()),
        Err(AppError::Validation(e)) => render(&state, &p, &id, &form, &e).await,
        Err(AppError::Conflict(c)) => render(&state, &p, &id, &form, &FieldErrors::single("action", c)).await,
        Err(e) => Err(ui(e)),
    }
}

// ---------------------------------------------------------------- the printable note

async fn note(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let v = state.app.session_view(&p, rid(&id)?).await.map_err(ui)?;
    let s = &v.session;
    let rules = &state.app.knowledge().session;
    let first = |vital: Vital, before: bool| {
        let mut it = v.readings.iter().filter(|r| r.vital == vital && (s.dose_started_at.is_none_or(|d| (r.observed_at < d) == before)));
        if before { it.next_back() } else { it.max_by_key(|r| r.value) }.map(|r| dec(r.value))
    };
    let ratings: Vec<&SessionEvent> = v.events.iter().filter(|e| e.kind == "rating").collect();
    let aes: Vec<&SessionEvent> = v.events.iter().filter(|e| e.kind == "adverse_event").collect();
    let addenda: Vec<&SessionEvent> = v.events.iter().filter(|e| e.kind == "addendum").collect();
    let body = html! {
        article.note #session-note {
            div.row-between.no-print { a href=(format!("/sessions/{id}")) { "← Session" } }
            h1 { "Treatment session note" }
            p { strong { (v.patient_name) } " · MRN " (v.mrn) " · chair " (s.chair) }
            @match (&s.signed_at, &s.signed_by_name) {
                (Some(at), Some(by)) => { p.signed #signature { "Signed by " strong { (by) } " at " (when(*at)) ". The note is locked; later changes are addenda." } }
                _ => { p.alert.alert-warning { "Not signed: this note is a draft until discharge is signed." } }
            }
            h2 { "Monitoring form" }
            table.list #rems {
                tbody {
                    tr { th { "Date of treatment" } td { (s.created_at.format("%Y-%m-%d")) } }
                    tr { th { "Phase" } td { (phase_label(s.phase)) } }
                    tr { th { "Dose" } td { (v.order.as_ref().map(|o| o.record.summary()).unwrap_or_else(|| "no order linked".into())) } }
                    tr { th { "Dose started" } td { (s.dose_started_at.map(when).unwrap_or_else(|| "—".into())) } }
                    tr { th { "Dose ended" } td { (s.dose_ended_at.map(when).unwrap_or_else(|| "—".into())) } }
                    tr { th { "Baseline BP" } td { (s.baseline.0.zip(s.baseline.1).map(|(a, b)| format!("{a}/{b} mmHg")).unwrap_or_else(|| "—".into())) } }
                    tr { th { "Highest systolic after the dose" } td { (first(Vital::Systolic, false).map(|x| format!("{x} mmHg")).unwrap_or_else(|| "—".into())) } }
                    tr { th { "Lowest SpO2" } td { (v.readings.iter().filter(|r| r.vital == Vital::Spo2).map(|r| r.value).min().map(|x| format!("{} %", dec(x))).unwrap_or_else(|| "—".into())) } }
                    tr { th { "Sedation and dissociation" } td { @if ratings.is_empty() { "not rated" } @else { (ratings.iter().map(|e| format!("{} at {}", e.detail, e.at.format("%H:%M"))).collect::<Vec<_>>().join("; ")) } } }
                    tr { th { "Serious adverse events" } td { (if aes.iter().any(|e| e.detail.contains("serious=yes")) { "Yes (see below)" } else if aes.is_empty() { "None" } else { "None serious" }) } }
                    tr { th { "Alarms" } td { (v.alarms.len()) " (" (v.alarms.iter().filter(|a| a.acknowledged.is_some()).count()) " acknowledged)" } }
                    tr { th { "Discharged" } td { (s.signed_at.map(when).unwrap_or_else(|| "—".into())) } }
                }
            }
            h2 { "Vital signs" }
            (vitals_chart(&v.readings, rules.sbp_above.value, rules.dbp_above.value))
            (readings_table(&v.readings, usize::MAX))
            h2 { "Alarms and acknowledgements" }
            @if v.alarms.is_empty() { p { "No alarms." } }
            ul.alarms #note-alarms { @for a in &v.alarms { (alarm_row(a, None)) } }
            h2 { "Adverse events" }
            @if aes.is_empty() { p { "None recorded." } }
            ul #note-aes { @for e in &aes { li { (when(e.at)) " · " (e.by_name) ": " (e.detail.replace('\n', "; ")) } } }
            h2 { "Record" }
            (events_list(&v.events))
            @if !addenda.is_empty() {
                h2 { "Addenda" }
                ul #addenda { @for e in &addenda { li { (when(e.at)) " · " (e.by_name) ": " (e.detail) } } }
            }
            p.source { "Rules: session knowledge " (rules.version) }
        }
    };
    Ok(layout(Some(&p), "Session note", body).into_response())
}

// ---------------------------------------------------------------- the live board

/// One chair as the board's script receives it.
#[derive(Serialize)]
pub struct ChairDto {
    session_id: String,
    chair: String,
    initials: Option<String>,
    phase: String,
    phase_label: String,
    elapsed_min: i64,
    since_dose_min: Option<i64>,
    monitored: bool,
    latest: Vec<LatestDto>,
    trend: Vec<TrendDto>,
    alarms: Vec<AlarmDto>,
    prompts: Vec<String>,
}

/// The latest value of a vital sign.
#[derive(Serialize)]
pub struct LatestDto {
    vital: String,
    label: String,
    value: String,
    unit: String,
    /// Age when the board was built; the script counts on from `at` with the server's clock.
    age_s: i64,
    at: String,
}

/// One point of the trend.
#[derive(Serialize)]
pub struct TrendDto {
    vital: String,
    t: String,
    v: String,
}

/// A live alarm on the board.
#[derive(Serialize)]
pub struct AlarmDto {
    id: String,
    rule: String,
    level: String,
    escalated: bool,
    message: String,
    raised_at: String,
}

/// The board's payload.
pub fn board_dto(chairs: &[BoardChair], identified: bool, now: DateTime<Utc>) -> serde_json::Value {
    let list: Vec<ChairDto> = chairs
        .iter()
        .map(|c| ChairDto {
            session_id: if identified { c.session_id.to_string() } else { String::new() },
            chair: c.chair.clone(),
            initials: c.initials.clone(),
            phase: c.phase.code().into(),
            phase_label: phase_label(c.phase),
            elapsed_min: c.elapsed_min,
            since_dose_min: c.since_dose_min,
            monitored: c.monitored,
            latest: c
                .latest
                .iter()
                .map(|(v, x, age, at)| LatestDto {
                    vital: v.code().into(),
                    label: v.label().into(),
                    value: dec(*x),
                    unit: v.display_unit().into(),
                    age_s: *age,
                    at: at.to_rfc3339(),
                })
                .collect(),
            trend: c.trend.iter().map(|(v, t, x)| TrendDto { vital: v.code().into(), t: t.to_rfc3339(), v: dec(*x) }).collect(),
            alarms: c
                .alarms
                .iter()
                .map(|a| AlarmDto {
                    id: if identified { a.alarm.id.to_string() } else { String::new() },
                    rule: a.alarm.rule.clone(),
                    level: a.level_now.code().into(),
                    escalated: a.level_now != a.alarm.level,
                    message: a.alarm.message.clone(),
                    raised_at: a.alarm.raised_at.to_rfc3339(),
                })
                .collect(),
            prompts: c.prompts.iter().filter(|p| p.overdue).map(|p| format!("{} overdue", p.label)).collect(),
        })
        .collect();
    serde_json::json!({ "identified": identified, "server_now": now.to_rfc3339(), "chairs": list })
}

fn board_markup(room: bool) -> Markup {
    html! {
        div.row-between {
            h1 { @if room { "Room display" } @else { "Treatment room" } }
            div.actions {
                button #sound type="button" aria-pressed="false" { "Turn alarm sound on" }
            }
        }
        p #board-status.muted role="status" { "Connecting…" }
        div #alarm-banner.alarm-banner hidden role="alert" {}
        div #board.board data-events=(if room { "/room/events" } else { "/board/events" }) data-room=(if room { "1" } else { "0" }) {}
        script src="/static/board.js" defer {}
    }
}

async fn board_page(State(_state): State<AppState>, Auth(p): Auth) -> PageResult {
    if !p.can(Permission::ReadPatients) {
        return Err(ui(AppError::Forbidden));
    }
    let body = html! {
        (board_markup(false))
        @if p.can(Permission::WriteClinical) {
            details.card #room-display {
                summary { "Room display" }
                p { "Turns this screen into a room display: alarms and vitals of every chair without patient details, kept up when staff logins time out. Revoke it under Users → API tokens." }
                form method="post" action="/board/room-display" { (csrf(&p)) button type="submit" { "Start room display on this screen" } }
            }
        }
    };
    Ok(layout(Some(&p), "Live board", body).into_response())
}

type SseStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Event, Infallible>> + Send>>;

/// The board's event stream: the whole board at once, again after every change (this
/// server's, or another's through PostgreSQL: a silent monitor's alarm is a change too),
/// coalesced over a quarter of a second, and every 15 s (escalation levels, prompts). Ages
/// are counted on by the script between events. Before each update the login is checked
/// again (without counting as activity): a logged-out, timed-out or revoked viewer gets an
/// `expired` event and the stream ends.
fn board_stream(state: AppState, p: Principal, identified: bool, secret: Option<String>) -> SseStream {
    let rx = state.app.subscribe_changes();
    Box::pin(futures_util::stream::unfold((state, p, rx, true, false), move |(state, p, mut rx, first, done)| {
        let secret = secret.clone();
        async move {
            if done {
                return None;
            }
            if !first {
                tokio::select! {
                    r = rx.recv() => {
                        if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r { return None; }
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    }
                    _ = tokio::time::sleep(std::time::Duration::from_secs(15)) => {}
                }
                while rx.try_recv().is_ok() {}
            }
            if state.app.is_closing() {
                return None;
            }
            if !state.app.still_valid(&p, secret.as_deref()).await {
                let ev = Event::default().event("expired").data("login ended");
                return Some((Ok(ev), (state, p, rx, false, true)));
            }
            let ev = match state.app.board(&p, identified).await {
                Ok(chairs) => Event::default().event("board").data(board_dto(&chairs, identified, state.app.now()).to_string()),
                Err(e) => {
                    tracing::warn!(error = %e, "board refresh failed");
                    Event::default().event("problem").data("the board could not be refreshed")
                }
            };
            Some((Ok(ev), (state, p, rx, false, false)))
        }
    }))
}

async fn board_events(State(state): State<AppState>, Auth(p): Auth, headers: axum::http::HeaderMap) -> PageResult {
    if !p.can(Permission::ReadPatients) {
        return Err(ui(AppError::Forbidden));
    }
    let secret = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&format!("{}=", state.cookie_name())).map(str::to_owned));
    Ok(Sse::new(board_stream(state, p, true, secret)).keep_alive(KeepAlive::default()).into_response())
}

async fn start_room_display(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    if !p.can(Permission::WriteClinical) {
        return Err(ui(AppError::Forbidden));
    }
    let (token, _) = state.app.issue_room_display(&p).await.map_err(ui)?;
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{ROOM_COOKIE}={token}; Path=/room; HttpOnly; SameSite=Strict; Max-Age=43200{secure}");
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/room")).into_response())
}

async fn room_principal(state: &AppState, parts: &Parts) -> Result<Principal, WebError> {
    let token = cookie(parts, ROOM_COOKIE).ok_or_else(|| ui(AppError::Unauthenticated))?;
    state.app.authenticate_room_display(&token).await.map_err(ui)
}

async fn room_page(State(state): State<AppState>, req: axum::extract::Request) -> PageResult {
    let (parts, _) = req.into_parts();
    room_principal(&state, &parts).await?;
    Ok(layout(None, "Room display", board_markup(true)).into_response())
}

async fn room_events(State(state): State<AppState>, req: axum::extract::Request) -> PageResult {
    let (parts, _) = req.into_parts();
    let p = room_principal(&state, &parts).await?;
    Ok(Sse::new(board_stream(state, p, false, None)).keep_alive(KeepAlive::default()).into_response())
}
