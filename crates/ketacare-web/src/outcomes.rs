//! Rating scales in the staff UI and the patient's questionnaire page: the item form, the
//! outcome charts and tables, what is due, questionnaire links, safety alerts, the instrument
//! catalogue, and the public single-use link page `/q/{token}`.

use crate::error::WebError;
use crate::extract::Auth;
use crate::forms::{f, Fields};
use crate::views::*;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use ketacare_app::{AppError, LinkProblem, OutcomeView, Principal, Series, SessionMarker};
use ketacare_domain::access::Permission;
use ketacare_domain::assessment::{AssessmentInput, DueStatus, ScheduleInput};
use ketacare_domain::ids::{AlertId, PatientId, RequestId, ScheduleId};
use ketacare_domain::instrument::{AnswerKind, Direction, Instrument, Respondent, Score};
use ketacare_domain::validation::FieldErrors;
use ketacare_domain::wording::Wording;
use ketacare_knowledge::Knowledge;
use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::pages::{check_csrf, pid, ui, PageResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/outcomes", get(outcome_page))
        .route("/patients/{id}/assessments/new", get(new_assessment))
        .route("/patients/{id}/assessments", post(record_assessment))
        .route("/patients/{id}/questionnaire-requests", post(send_request))
        .route("/questionnaire-requests/{rid}/cancel", post(cancel_request))
        .route("/patients/{id}/schedules", post(create_schedule))
        .route("/schedules/{sid}/end", post(end_schedule))
        .route("/alerts", get(alerts_page))
        .route("/alerts/{aid}/acknowledge", post(acknowledge))
        .route("/instruments", get(catalogue))
        .route("/instruments/{key}", get(instrument_page))
        .route("/instruments/{key}/rules", post(set_rule))
        .route("/instruments/{key}/wording", post(load_wording))
        .route("/instruments/{key}/wording/withdraw", post(withdraw_wording))
        .route("/q/{token}", get(questionnaire).post(submit_questionnaire))
}

fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

use crate::views::minute as when;

// ---------------------------------------------------------------- item form

/// The answer inputs of an instrument, one fieldset per item (radio buttons, or a number field
/// for long scales such as the 0–100 VAS). Field names are `item_1` … `item_N`.
pub fn assessment_fields(k: &Knowledge, instrument: &str, values: &Fields, errors: &FieldErrors) -> Markup {
    let Some(inst) = k.instrument(instrument) else {
        return html! { p.error role="alert" { "Unknown instrument " (instrument) "." } };
    };
    html! {
        input type="hidden" name="instrument" value=(inst.key);
        (items_markup(inst, values, errors))
    }
}

fn items_markup(inst: &Instrument, values: &Fields, errors: &FieldErrors) -> Markup {
    html! {
        @if let Some(r) = &inst.recall { p.hint { "Recall period: " (r) } }
        @for (n, item) in inst.items.iter().enumerate() {
            @let name = format!("item_{}", n + 1);
            @let err = errors.for_field(&item.key);
            @let cur = f(values, &name);
            @let id = format!("f-{name}");
            fieldset.item.invalid[err.is_some()] id=(id) {
                legend { span.num { (n + 1) ". " } (item.label)
                    @if item.optional { " " small.muted { "(optional)" } }
                    @if let Some(s) = &item.skip { " " small.muted { "(skip if item " (inst.items.iter().position(|i| i.key == s.when_item).map(|i| i + 1).unwrap_or(0)) " is " (if s.equals == 0 { "no" } else { "yes" }) ")" } }
                }
                @if item.kind == AnswerKind::YesNo {
                    div.choices {
                        @for (val, label) in [("y", "Yes"), ("n", "No")] {
                            @let checked = matches!((val, cur.as_str()), ("y", "y" | "1" | "yes") | ("n", "n" | "0" | "no"));
                            label.choice { input type="radio" name=(name) value=(val) checked[checked]; " " (label) }
                        }
                        @if item.skip.is_some() || item.optional {
                            label.choice { input type="radio" name=(name) value="-" checked[cur == "-" || cur.is_empty()]; " Skipped" }
                        }
                    }
                } @else if item.choices().len() <= 11 {
                    div.choices {
                        @for v in item.choices() {
                            label.choice {
                                input type="radio" name=(name) value=(v) checked[cur == v.to_string()];
                                " " strong { (v) }
                                @if let Some(l) = item.choice_label(v) { " " span { (l) } }
                            }
                        }
                    }
                } @else {
                    label for=(format!("{id}-n")) { "Answer (" (item.accepted()) ")" }
                    input id=(format!("{id}-n")) type="number" inputmode="numeric" name=(name) min=(item.min) max=(item.max) step="1" value=(cur);
                }
                @if let Some(e) = err { p.error role="alert" { (e) } }
            }
        }
    }
}

fn score_summary(inst: &Instrument, s: &Score) -> Markup {
    html! {
        dl.score {
            @if let Some(t) = s.total {
                dt { "Total" } dd.total { strong { (dec(t)) } " / " (dec(s.total_max)) @if let Some(b) = &s.band { " · " span.band { (b.label) } } }
            }
            @if let Some(pm) = s.percent_max { dt { "Percent of maximum" } dd { (dec(pm)) " %" } }
            @for sub in &s.subscales { dt { (sub.label) } dd { (dec(sub.value)) " / " (dec(sub.max)) } }
            @if let Some(t) = &s.triage {
                dt { "Triage" } dd { strong { (inst.triage.iter().find(|r| &r.level == t).map(|r| r.label.as_str()).unwrap_or(t)) } }
            }
        }
        @for fl in &s.flags {
            p.alert.alert-error[fl.urgent].flag role=[fl.urgent.then_some("alert")] { strong { @if fl.urgent { "Urgent: " } } (fl.label) }
        }
    }
}

// ---------------------------------------------------------------- recording

#[derive(serde::Deserialize)]
struct InstrumentQuery {
    instrument: Option<String>,
    session: Option<String>,
    timepoint: Option<String>,
}

fn instrument_options(k: &Knowledge, patient_only: bool) -> Vec<(String, String)> {
    k.instruments
        .iter()
        .filter(|i| !patient_only || i.respondent != Respondent::Clinician)
        .map(|i| (i.key.clone(), format!("{} — {}", i.name, i.title)))
        .collect()
}

fn timepoint_options(k: &Knowledge) -> Vec<(String, String)> {
    let mut v = vec![(String::new(), "— none —".to_owned())];
    v.extend(k.assessment_timing.timepoints.iter().map(|t| (t.key.clone(), t.label.clone())));
    v
}

async fn session_options(state: &AppState, p: &Principal, patient: PatientId) -> Vec<(String, String)> {
    let mut v = vec![(String::new(), "— not tied to a session —".to_owned())];
    if let Ok(view) = state.app.outcomes(p, patient).await {
        v.extend(view.sessions.iter().rev().map(|s| (s.session.id.to_string(), format!("{} · {}", when(s.session.start), s.label))));
    }
    v
}

async fn assessment_form(state: &AppState, p: &Principal, id: &str, values: &Fields, errors: &FieldErrors) -> Result<Markup, WebError> {
    let patient = pid(id)?;
    let v = state.app.patient(p, patient).await.map_err(ui)?;
    let k = state.app.knowledge();
    let key = f(values, "instrument");
    let sessions = session_options(state, p, patient).await;
    let worded = if k.instrument(&key).is_some() { Some(state.app.worded_instrument(&key).await.map_err(ui)?) } else { None };
    Ok(html! {
        h1 { "Record a rating scale" }
        p.muted { (v.demographics.name.display()) " · MRN " (v.demographics.mrn.as_str()) }
        @if k.instrument(&key).is_none() {
            form.card method="get" action=(format!("/patients/{id}/assessments/new")) {
                (select("instrument", "Instrument", &instrument_options(k, false), values, errors))
                button.primary type="submit" { "Open the form" }
            }
        } @else {
            @let inst = worded.as_ref().map(|(i, _)| i).or(k.instrument(&key)).unwrap_or(&k.instruments[0]);
            @let wording = worded.as_ref().and_then(|(_, w)| w.as_ref());
            @if !errors.is_empty() {
                div.alert.alert-error role="alert" {
                    p { strong { "Nothing was saved. Please correct the following:" } }
                    ul { @for e in errors.iter() { li { (e.message) } } }
                }
            }
            form.card.assessment method="post" action=(format!("/patients/{id}/assessments")) novalidate {
                (csrf(p))
                input type="hidden" name="kind" value="assessment";
                h2 { (inst.name) " · " (inst.title) }
                @for c in &inst.caveats { p.hint.caveat { (c) } }
                @if let Some(w) = wording { @if let Some(t) = &w.instructions { p.instructions { (t) } } }
                input type="hidden" name="instrument" value=(inst.key);
                (items_markup(inst, values, errors))
                @if let Some(w) = wording { p.notice.small { (w.notice) } }
                (input("taken_at", "Taken at (UTC; empty = now)", values, errors, "datetime-local", None))
                (select("session", "Treatment session", &sessions, values, errors))
                (select("timepoint", "Time point", &timepoint_options(k), values, errors))
                (textarea("note", "Note", values, errors))
                button.primary type="submit" { "Save and score" }
            }
        }
    })
}

async fn new_assessment(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<InstrumentQuery>,
) -> PageResult {
    state.app.authorize(&p, Permission::WriteClinical, "Record").await.map_err(ui)?;
    let mut values = Fields::new();
    values.insert("instrument".into(), q.instrument.unwrap_or_default());
    values.insert("session".into(), q.session.unwrap_or_default());
    values.insert("timepoint".into(), q.timepoint.unwrap_or_default());
    let body = assessment_form(&state, &p, &id, &values, &FieldErrors::new()).await?;
    Ok(layout(Some(&p), "Record a rating scale", body).into_response())
}

async fn record_assessment(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let input = AssessmentInput {
        instrument: f(&form, "instrument"),
        answers: AssessmentInput::answers_from_fields(form.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        taken_at: f(&form, "taken_at"),
        session: f(&form, "session"),
        timepoint: f(&form, "timepoint"),
        note: f(&form, "note"),
    };
    match state.app.record_assessment(&p, pid(&id)?, &input).await {
        Ok((v, _, _)) => Ok(Redirect::to(&format!("/records/{}", v.record_id)).into_response()),
        Err(AppError::Validation(e)) => {
            let body = assessment_form(&state, &p, &id, &form, &e).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Record a rating scale", body)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

/// The score, answers and context of a stored administration, for the record page.
pub fn assessment_detail(k: &Knowledge, a: &ketacare_domain::assessment::Assessment) -> Markup {
    let Some(inst) = k.instrument(&a.instrument) else {
        return html! { p { "Instrument " (a.instrument) " is not in this version's catalogue." } };
    };
    let score = inst.score(&a.answers, None);
    html! {
        h2 { (inst.name) " · " (inst.title) }
        p.muted { "Taken " (when(a.taken_at)) " UTC · filled in by the " (a.filled_by.code())
            @if let Some(t) = &a.timepoint { " · time point " (k.assessment_timing.timepoints.iter().find(|x| &x.key == t).map(|x| x.label.as_str()).unwrap_or(t)) }
            " · definition version " (a.instrument_version) }
        @match &score {
            Ok(s) => (score_summary(inst, s)),
            Err(_) => p.error { "These answers no longer score under the current definition of " (inst.name) "." },
        }
        @if let Some(n) = &a.note { p { "Note: " (n) } }
        details {
            summary { "Answers" }
            table {
                thead { tr { th { "#" } th { "Item" } th { "Answer" } } }
                tbody {
                    @for (n, item) in inst.items.iter().enumerate() {
                        @let ans = a.answers.get(n).copied().flatten();
                        tr {
                            td { (n + 1) }
                            td { (item.label) }
                            td { @match ans {
                                None => span.muted { "blank" },
                                Some(v) if item.kind == AnswerKind::YesNo => (if v == 1 { "Yes" } else { "No" }),
                                Some(v) => { (v) @if let Some(l) = item.choice_label(v) { " · " (l) } },
                            } }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- outcome page

async fn outcome_page(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, headers: HeaderMap) -> PageResult {
    let patient = pid(&id)?;
    let v = state.app.patient(&p, patient).await.map_err(ui)?;
    let view = state.app.outcomes(&p, patient).await.map_err(ui)?;
    let body = outcome_body(&state, &p, &id, &v.demographics.name.display(), v.demographics.mrn.as_str(), &view, None, &headers);
    Ok(layout(Some(&p), "Outcomes", body).into_response())
}

#[allow(clippy::too_many_arguments)]
fn outcome_body(
    state: &AppState,
    p: &Principal,
    id: &str,
    name: &str,
    mrn: &str,
    view: &OutcomeView,
    sent: Option<Sent<'_>>,
    headers: &HeaderMap,
) -> Markup {
    let empty_fields = Fields::new();
    let empty_errors = FieldErrors::new();
    let (req_values, req_errors) = match &sent {
        Some(Sent::Refused(e, v)) => (*v, *e),
        _ => (&empty_fields, &empty_errors),
    };
    let k = state.app.knowledge();
    let write = p.can(Permission::WriteClinical);
    let now = state.app.now();
    let open_alerts: Vec<_> = view.alerts.iter().filter(|a| a.acknowledgement.is_none()).collect();
    html! {
        p { a href=(format!("/patients/{id}")) { "← Chart" } }
        h1 { "Outcomes" }
        p.muted { (name) " · MRN " (mrn) }
        p { a href=(format!("/patients/{id}/report.pdf")) download #progress-report { "Progress report for the referring doctor (PDF)" } }
        @for a in &open_alerts {
            div.alert.alert-error role="alert" {
                p { strong { "Urgent safety alert: " } (a.label) " · raised " (when(a.raised_at)) " UTC" }
                @if write { p { a href="/alerts" { "Acknowledge on the alerts page" } } }
            }
        }
        @if let Some(Sent::Link(instrument, link)) = sent {
            div.alert.alert-ok role="status" {
                p { strong { "Questionnaire link created (" (instrument) ")." } " Give this link to the patient; it works once and is shown only now:" }
                p { code.link #sent-link { (public_base(state, headers)) (link) } }
            }
        }
        @if write {
            div.actions {
                a.button href=(format!("/patients/{id}/assessments/new")) { "Record a rating scale" }
            }
        }
        @if view.series.is_empty() { p { "No rating scales recorded yet." } }
        @for s in &view.series {
            section.series id=(format!("instrument-{}", s.instrument.key)) {
                h2 { (s.instrument.name) " " small.muted { (s.instrument.title) } }
                (outcome_chart(s, &view.sessions))
                (series_table(s, k))
            }
        }
        section #due {
            h2 { "Due and overdue" }
            @if view.due.is_empty() { p.muted { "No active schedule." } } @else {
                table {
                    thead { tr { th { "Instrument" } th { "Time point" } th { "Due (UTC)" } th { "Status" } @if write { th { "" } } } }
                    tbody {
                        @for d in &view.due {
                            @let inst = k.instrument(&d.instrument);
                            tr.(d.status.code()) {
                                td { (inst.map(|i| i.name.as_str()).unwrap_or(&d.instrument)) }
                                td { (d.timepoint.as_deref().and_then(|t| k.assessment_timing.timepoints.iter().find(|x| x.key == t)).map(|x| x.label.as_str()).unwrap_or("—")) }
                                td { (when(d.due_at)) }
                                td { span.status { (d.status.code()) } }
                                @if write { td { @if matches!(d.status, DueStatus::Due | DueStatus::Overdue) {
                                    a href=(format!("/patients/{id}/assessments/new?instrument={}&session={}&timepoint={}", d.instrument, d.session.map(|s| s.to_string()).unwrap_or_default(), d.timepoint.clone().unwrap_or_default())) { "Record now" }
                                } } }
                            }
                        }
                    }
                }
            }
            h3 { "Schedules" }
            @if view.schedules.is_empty() { p.muted { "None." } }
            ul {
                @for s in &view.schedules {
                    li {
                        (k.instrument(&s.instrument).map(|i| i.name.as_str()).unwrap_or(&s.instrument)) " · "
                        @match &s.anchor {
                            ketacare_domain::assessment::Anchor::Session { timepoints } => { "at every session: " (timepoints.join(", ")) }
                            ketacare_domain::assessment::Anchor::Calendar { interval_days, start } => { "every " (interval_days) " days from " (start) }
                        }
                        " · by " (s.created_by)
                        @if let Some(e) = s.ended_at { " · stopped " (when(e)) }
                        @else if write {
                            form.inline method="post" action=(format!("/schedules/{}/end", s.id)) { (csrf(p)) input type="hidden" name="patient" value=(id); button.link type="submit" { "Stop" } }
                        }
                    }
                }
            }
            @if write {
                details {
                    summary { "Add a schedule" }
                    form.card method="post" action=(format!("/patients/{id}/schedules")) {
                        (csrf(p))
                        (select("schedule_instrument", "Instrument", &instrument_options(k, false), &Fields::new(), &FieldErrors::new()))
                        (select("anchor", "Anchored to", &[("session".into(), "Each treatment session (restarts at every session)".into()), ("calendar".into(), "The calendar".into())], &Fields::new(), &FieldErrors::new()))
                        fieldset { legend { "Time points (session anchor)" }
                            @for t in &k.assessment_timing.timepoints { label.choice { input type="checkbox" name="timepoints" value=(t.key); " " (t.label) } }
                        }
                        (input("interval_days", "Every N days (calendar anchor)", &Fields::new(), &FieldErrors::new(), "number", None))
                        (input("start", "First due date (calendar anchor)", &Fields::new(), &FieldErrors::new(), "date", None))
                        button type="submit" { "Add schedule" }
                    }
                }
            }
        }
        section #requests {
            h2 { "Questionnaires sent to the patient" }
            @if write {
                form.card #send-form method="post" action=(format!("/patients/{id}/questionnaire-requests")) {
                    (csrf(p))
                    @if !req_errors.is_empty() {
                        div.alert.alert-error role="alert" { p { strong { "No link was created. Please correct the following:" } } ul { @for e in req_errors.iter() { li { (e.message) } } } }
                    }
                    (select("instrument", "Questionnaire", &instrument_options(k, true), req_values, req_errors))
                    @let sessions: Vec<(String, String)> = std::iter::once((String::new(), "— not tied to a session —".to_owned())).chain(view.sessions.iter().rev().map(|s| (s.session.id.to_string(), format!("{} · {}", when(s.session.start), s.label)))).collect();
                    (select("session", "Treatment session", &sessions, req_values, req_errors))
                    (select("timepoint", "Time point", &timepoint_options(k), req_values, req_errors))
                    p.hint { "A time point needs the treatment session it is relative to. The link works once and expires after " (k.assessment_timing.link_expiry_hours) " hours. It shows the patient this questionnaire only." }
                    button.primary type="submit" { "Create link" }
                }
            }
            @if view.requests.is_empty() { p.muted { "None sent." } } @else {
                table {
                    thead { tr { th { "Questionnaire" } th { "Sent (UTC)" } th { "By" } th { "Expires" } th { "State" } th { "" } } }
                    tbody {
                        @for r in &view.requests {
                            @let st = r.state(now);
                            tr {
                                td { (k.instrument(&r.instrument).map(|i| i.name.as_str()).unwrap_or(&r.instrument)) }
                                td { (when(r.sent_at)) }
                                td { (r.sent_by_name) }
                                td { (when(r.expires_at)) }
                                td { span.status { (st.code()) } }
                                td {
                                    @if let Some(rec) = r.response { a href=(format!("/records/{rec}")) { "See answers" } }
                                    @else if st == ketacare_domain::assessment::RequestState::Open && write {
                                        form.inline method="post" action=(format!("/questionnaire-requests/{}/cancel", r.id)) { (csrf(p)) input type="hidden" name="patient" value=(id); button.link type="submit" { "Withdraw" } }
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

/// What happened to the send-a-link form on this render.
enum Sent<'a> {
    /// A link was created: instrument name and path.
    Link(&'a str, &'a str),
    /// Refused: errors and the submitted values.
    Refused(&'a FieldErrors, &'a Fields),
}

fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if state.config.secure_cookies { "https" } else { "http" };
    format!("{scheme}://{host}")
}

fn series_table(s: &Series, k: &Knowledge) -> Markup {
    let inst = &s.instrument;
    html! {
        table.series-table {
            caption { "Every administration of " (inst.name) }
            thead { tr { th { "Taken (UTC)" } th { "Time point" } th { "Total" } th { "Band" } th { "Change" } th { "Response" } th { "Remission" } th { "Reliable change" } th { "Flags" } } }
            tbody {
                @for (n, pt) in s.points.iter().enumerate() {
                    tr {
                        td { a href=(format!("/records/{}", pt.version.record_id)) { (when(pt.assessment.taken_at)) } }
                        td { @if n == 0 { "baseline " } (pt.assessment.timepoint.as_deref().and_then(|t| k.assessment_timing.timepoints.iter().find(|x| x.key == t)).map(|x| x.label.as_str()).unwrap_or("")) }
                        td { @if let Some(t) = pt.score.total { (dec(t)) } @else if let Some(t) = &pt.score.triage { (t) } }
                        td { @if let Some(b) = &pt.score.band { (b.label) } }
                        td { @if let Some(o) = &pt.outcome { (dec(o.change)) @if let Some(c) = o.change_percent { " (" (dec(c)) " %)" } } }
                        td { @match pt.outcome.as_ref().and_then(|o| o.response) { Some(true) => strong { "yes" }, Some(false) => "no", None => "" } }
                        td { @match pt.outcome.as_ref().and_then(|o| o.remission) { Some(true) => strong { "yes" }, Some(false) => "no", None => "" } }
                        td { @if let Some(o) = &pt.outcome { @if let (Some(r), Some(c)) = (o.rci, o.reliable_change) { (c.code().replace('_', " ")) " (RCI " (dec(r)) ")" } } }
                        td { @for fl in &pt.score.flags { span.flag.urgent[fl.urgent] { (fl.code) } " " } }
                    }
                }
            }
        }
        @if inst.reliability.is_none() && inst.has_total { p.hint { "Reliable change is not shown for " (inst.name) ": no published reliability and standard deviation are on file." } }
    }
}

/// A chart of an instrument's totals over time, as inline SVG (no script): axes with ticks and
/// labels, severity bands, the baseline and response threshold, session markers, and a legend.
pub fn outcome_chart(s: &Series, sessions: &[SessionMarker]) -> Markup {
    let inst = &s.instrument;
    let pts: Vec<(i64, f64)> =
        s.points.iter().filter_map(|p| p.score.total.and_then(|t| t.to_f64()).map(|t| (p.assessment.taken_at.timestamp(), t))).collect();
    if pts.is_empty() {
        return html! {};
    }
    let (w, h) = (720.0_f64, 280.0_f64);
    let (left, right, top, bottom) = (48.0, 16.0, 16.0, 56.0);
    let (ymin, ymax) = (inst.total_range().0.to_f64().unwrap_or(0.0), inst.total_range().1.to_f64().unwrap_or(1.0));
    let t0 = pts.iter().map(|p| p.0).min().unwrap_or(0);
    let mut t1 = pts.iter().map(|p| p.0).max().unwrap_or(0);
    if t1 - t0 < 86_400 {
        t1 = t0 + 86_400;
    }
    let pad = (t1 - t0) / 30;
    let (t0, t1) = (t0 - pad, t1 + pad);
    let x = |t: i64| left + (t - t0) as f64 / (t1 - t0) as f64 * (w - left - right);
    let y = |v: f64| top + (ymax - v) / (ymax - ymin).max(1.0) * (h - top - bottom);
    let band_set = inst.band_set(s.band_set.as_deref());
    let shades = ["#eef6ee", "#f6f3e4", "#f8eadb", "#f6dede", "#efd6e4", "#e6dcef"];
    let baseline = pts[0].1;
    let threshold = s.rules.response.as_ref().map(|r| {
        let frac = r.percent.to_f64().unwrap_or(0.0) / 100.0;
        match inst.direction {
            Direction::HigherIsWorse => baseline * (1.0 - frac),
            Direction::HigherIsBetter => baseline * (1.0 + frac),
        }
    });
    let yticks: Vec<f64> = {
        let step = nice_step((ymax - ymin) / 5.0);
        let mut v = Vec::new();
        let mut t = ymin;
        while t <= ymax + 1e-9 {
            v.push(t);
            t += step;
        }
        v
    };
    let xticks: Vec<i64> = (0..=4).map(|i| t0 + (t1 - t0) * i / 4).collect();
    let line: Vec<String> = pts.iter().map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v))).collect();
    let visible_sessions: Vec<&SessionMarker> =
        sessions.iter().filter(|m| m.session.start.timestamp() >= t0 && m.session.start.timestamp() <= t1).collect();
    let last = pts[pts.len() - 1].1;
    let desc = format!(
        "{} total over time: {} administration{} from {} to {}, baseline {}, latest {}{}",
        inst.name,
        pts.len(),
        if pts.len() == 1 { "" } else { "s" },
        chrono::DateTime::from_timestamp(pts[0].0, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default(),
        chrono::DateTime::from_timestamp(pts[pts.len() - 1].0, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default(),
        baseline,
        last,
        if visible_sessions.is_empty() { String::new() } else { format!(", {} treatment sessions marked", visible_sessions.len()) }
    );
    html! {
        figure.chart.outcome-chart {
            svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(desc) {
                title { (desc) }
                @if let Some(bs) = band_set {
                    @for (i, b) in bs.bands.iter().enumerate() {
                        @let (lo, hi) = (b.min.to_f64().unwrap_or(0.0), b.max.to_f64().unwrap_or(0.0));
                        @let (ya, yb) = (y((hi + 0.5).min(ymax)), y((lo - 0.5).max(ymin)));
                        rect x=(left) y=(format!("{ya:.1}")) width=(w - left - right) height=(format!("{:.1}", (yb - ya).max(0.0))) fill=(shades[i % shades.len()]) {}
                        text.band-label x=(w - right - 4.0) y=(format!("{:.1}", ya + 11.0)) text-anchor="end" font-size="10" fill="#52606d" { (b.label) }
                    }
                }
                // axes
                line x1=(left) y1=(h - bottom) x2=(w - right) y2=(h - bottom) stroke="#52606d" {}
                line x1=(left) y1=(top) x2=(left) y2=(h - bottom) stroke="#52606d" {}
                @for t in &yticks {
                    line x1=(left - 4.0) y1=(format!("{:.1}", y(*t))) x2=(left) y2=(format!("{:.1}", y(*t))) stroke="#52606d" {}
                    text x=(left - 6.0) y=(format!("{:.1}", y(*t) + 3.5)) text-anchor="end" font-size="10" fill="#323f4b" { (format!("{t}")) }
                }
                text x="12" y=(top + (h - top - bottom) / 2.0) font-size="11" fill="#323f4b" transform=(format!("rotate(-90 12 {})", top + (h - top - bottom) / 2.0)) text-anchor="middle" { (inst.name) " total" }
                @for t in &xticks {
                    line x1=(format!("{:.1}", x(*t))) y1=(h - bottom) x2=(format!("{:.1}", x(*t))) y2=(h - bottom + 4.0) stroke="#52606d" {}
                    text x=(format!("{:.1}", x(*t))) y=(h - bottom + 16.0) text-anchor="middle" font-size="10" fill="#323f4b" { (chrono::DateTime::from_timestamp(*t, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()) }
                }
                text x=(left + (w - left - right) / 2.0) y=(h - bottom + 30.0) text-anchor="middle" font-size="11" fill="#323f4b" { "Date taken (UTC)" }
                // sessions
                @for m in &visible_sessions {
                    line.session x1=(format!("{:.1}", x(m.session.start.timestamp()))) y1=(top) x2=(format!("{:.1}", x(m.session.start.timestamp()))) y2=(h - bottom) stroke="#7b61a8" stroke-width="1" stroke-dasharray="2 3" { title { (when(m.session.start)) " · " (m.label) } }
                }
                // baseline and threshold
                line x1=(left) y1=(format!("{:.1}", y(baseline))) x2=(w - right) y2=(format!("{:.1}", y(baseline))) stroke="#323f4b" stroke-dasharray="6 4" {}
                @if let Some(th) = threshold {
                    @if th >= ymin && th <= ymax {
                        line x1=(left) y1=(format!("{:.1}", y(th))) x2=(w - right) y2=(format!("{:.1}", y(th))) stroke="#1f7a4d" stroke-dasharray="2 2" stroke-width="1.5" {}
                    }
                }
                polyline points=(line.join(" ")) fill="none" stroke="#2f6f8f" stroke-width="2" {}
                @for (t, v) in &pts {
                    circle cx=(format!("{:.1}", x(*t))) cy=(format!("{:.1}", y(*v))) r="3.5" fill="#2f6f8f" { title { (chrono::DateTime::from_timestamp(*t, 0).map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()) ": " (v) } }
                }
                // legend
                @let ly = h - 12.0;
                line x1=(left) y1=(ly) x2=(left + 20.0) y2=(ly) stroke="#2f6f8f" stroke-width="2" {}
                text x=(left + 24.0) y=(ly + 3.5) font-size="10" fill="#323f4b" { "Total" }
                line x1=(left + 70.0) y1=(ly) x2=(left + 90.0) y2=(ly) stroke="#323f4b" stroke-dasharray="6 4" {}
                text x=(left + 94.0) y=(ly + 3.5) font-size="10" fill="#323f4b" { "Baseline " (baseline) }
                @if let (Some(th), Some(r)) = (threshold, &s.rules.response) {
                    line x1=(left + 180.0) y1=(ly) x2=(left + 200.0) y2=(ly) stroke="#1f7a4d" stroke-dasharray="2 2" stroke-width="1.5" {}
                    text x=(left + 204.0) y=(ly + 3.5) font-size="10" fill="#323f4b" { "Response threshold " (format!("{th:.1}")) " (" (if r.strict { "more than " } else { "at least " }) (dec(r.percent)) " % " (if inst.direction == Direction::HigherIsWorse { "reduction" } else { "increase" }) ")" }
                }
                line x1=(left + 450.0) y1=(ly - 6.0) x2=(left + 450.0) y2=(ly + 6.0) stroke="#7b61a8" stroke-dasharray="2 3" {}
                text x=(left + 456.0) y=(ly + 3.5) font-size="10" fill="#323f4b" { "Treatment session" }
            }
            figcaption {
                (desc) "."
                @if let Some(bs) = band_set { " Shaded bands: " (bs.label) "." }
                @if !visible_sessions.is_empty() {
                    details.sessions { summary { "Sessions and doses" }
                        ul { @for m in &visible_sessions { li { (when(m.session.start)) " · " (m.label) } } }
                    }
                }
            }
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let nice = if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

// ---------------------------------------------------------------- requests, schedules, alerts

async fn send_request(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> PageResult {
    check_csrf(&p, &form)?;
    let patient = pid(&id)?;
    let result = state.app.send_questionnaire(&p, patient, &f(&form, "instrument"), &f(&form, "session"), &f(&form, "timepoint")).await;
    let v = state.app.patient(&p, patient).await.map_err(ui)?;
    let view = state.app.outcomes(&p, patient).await.map_err(ui)?;
    let (name, mrn) = (v.demographics.name.display(), v.demographics.mrn.as_str().to_owned());
    match result {
        Ok(sent) => {
            let inst = state.app.knowledge().instrument(&sent.request.instrument).map(|i| i.name.clone()).unwrap_or_default();
            let link = format!("/q/{}", sent.token);
            let body = outcome_body(&state, &p, &id, &name, &mrn, &view, Some(Sent::Link(&inst, &link)), &headers);
            Ok((StatusCode::CREATED, layout(Some(&p), "Outcomes", body)).into_response())
        }
        Err(AppError::Validation(e)) => {
            let body = outcome_body(&state, &p, &id, &name, &mrn, &view, Some(Sent::Refused(&e, &form)), &headers);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Outcomes", body)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn cancel_request(State(state): State<AppState>, Auth(p): Auth, Path(rid): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let rid = RequestId::parse(&rid).map_err(|_| ui(AppError::NotFound))?;
    state.app.cancel_questionnaire(&p, rid).await.map_err(ui)?;
    Ok(Redirect::to(&format!("/patients/{}/outcomes#requests", pid(&f(&form, "patient"))?)).into_response())
}

async fn create_schedule(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let form: Fields = pairs.iter().cloned().collect();
    check_csrf(&p, &form)?;
    let input = ScheduleInput {
        instrument: f(&form, "schedule_instrument"),
        anchor: f(&form, "anchor"),
        timepoints: pairs.iter().filter(|(k, _)| k == "timepoints").map(|(_, v)| v.clone()).collect(),
        interval_days: f(&form, "interval_days"),
        start: f(&form, "start"),
    };
    state.app.create_schedule(&p, pid(&id)?, &input).await.map_err(ui)?;
    Ok(Redirect::to(&format!("/patients/{id}/outcomes#due")).into_response())
}

async fn end_schedule(State(state): State<AppState>, Auth(p): Auth, Path(sid): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let sid = ScheduleId::parse(&sid).map_err(|_| ui(AppError::NotFound))?;
    state.app.end_schedule(&p, sid).await.map_err(ui)?;
    Ok(Redirect::to(&format!("/patients/{}/outcomes#due", pid(&f(&form, "patient"))?)).into_response())
}

#[derive(serde::Deserialize)]
struct AlertQuery {
    all: Option<String>,
}

async fn alerts_body(
    state: &AppState,
    p: &Principal,
    all: bool,
    errors: &FieldErrors,
    failed: Option<(&str, &Fields)>,
) -> Result<Markup, WebError> {
    let alerts = state.app.alerts(p, !all).await.map_err(ui)?;
    let write = p.can(Permission::WriteClinical);
    Ok(html! {
        h1 { "Safety alerts" }
        p { @if all { a href="/alerts" { "Show open alerts only" } } @else { a href="/alerts?all=1" { "Show acknowledged alerts too" } } }
        @if alerts.is_empty() { p.muted { @if all { "No alerts." } @else { "No open alerts." } } }
        @for a in &alerts {
            article.card.alert-card.open[a.acknowledgement.is_none()] id=(format!("alert-{}", a.id)) {
                h2 { (a.label) }
                p.muted {
                    "Raised " (when(a.raised_at)) " UTC · "
                    a href=(format!("/patients/{}/outcomes", a.patient_id)) { "patient outcomes" } " · "
                    a href=(format!("/records/{}", a.source_record)) { "the answers" }
                    @if a.assigned_to == Some(p.user.id) { " · " strong { "assigned to you" } }
                }
                @match &a.acknowledgement {
                    Some(ack) => p { "Acknowledged by " (ack.by_name) " at " (when(ack.at)) " UTC: " (ack.action_taken) },
                    None if write => form method="post" action=(format!("/alerts/{}/acknowledge", a.id)) {
                        (csrf(p))
                        @let mine = failed.filter(|(id, _)| *id == a.id.to_string());
                        @let errs = if mine.is_some() { errors.clone() } else { FieldErrors::new() };
                        @let empty = Fields::new();
                        (textarea("action_taken", "What was done", mine.map(|(_, v)| v).unwrap_or(&empty), &errs))
                        button.primary type="submit" { "Acknowledge" }
                    },
                    None => p.muted { "Open. A clinician must acknowledge it." },
                }
            }
        }
    })
}

async fn alerts_page(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<AlertQuery>) -> PageResult {
    let body = alerts_body(&state, &p, q.all.is_some(), &FieldErrors::new(), None).await?;
    Ok(layout(Some(&p), "Safety alerts", body).into_response())
}

async fn acknowledge(State(state): State<AppState>, Auth(p): Auth, Path(aid): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let id = AlertId::parse(&aid).map_err(|_| ui(AppError::NotFound))?;
    match state.app.acknowledge_alert(&p, id, &f(&form, "action_taken")).await {
        Ok(_) => Ok(Redirect::to("/alerts").into_response()),
        Err(AppError::Validation(e)) => {
            let body = alerts_body(&state, &p, false, &e, Some((&aid, &form))).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Safety alerts", body)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

// ---------------------------------------------------------------- catalogue

async fn catalogue(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    let k = state.app.knowledge();
    let wordings = state.app.clinic_wordings().await.map_err(ui)?;
    let body = html! {
        h1 { "Rating scales" }
        p { "Definitions in force, from the versioned knowledge files. Item wording of licensed instruments is not shipped, only short labels; a clinic that holds a licence loads its wording on the instrument's page." }
        table {
            thead { tr { th { "Instrument" } th { "Filled in by" } th { "Items" } th { "Total" } th { "Version" } th { "Item wording" } } }
            tbody {
                @for i in &k.instruments {
                    tr {
                        td { a href=(format!("/instruments/{}", i.key)) { (i.name) } " " span.muted { (i.title) } }
                        td { (i.respondent.code()) }
                        td { (i.items.len()) }
                        td { @if i.has_total { (dec(i.total_range().0)) "–" (dec(i.total_range().1)) } @else { "—" } }
                        td { (i.version) }
                        td { @match wordings.get(&i.key) {
                            None => span.muted { "short labels" },
                            Some(l) => @match &l.wording {
                                Some(w) => { "clinic's licensed wording (" (w.language) ")" },
                                None => strong.error { "clinic wording no longer fits" },
                            },
                        } }
                    }
                }
            }
        }
    };
    Ok(layout(Some(&p), "Rating scales", body).into_response())
}

async fn instrument_page(State(state): State<AppState>, Auth(p): Auth, Path(key): Path<String>) -> PageResult {
    let body = instrument_body(&state, &p, &key, &Fields::new(), &FieldErrors::new()).await?;
    Ok(layout(Some(&p), "Rating scale", body).into_response())
}

async fn set_rule(State(state): State<AppState>, Auth(p): Auth, Path(key): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.set_instrument_rule(&p, &key, &f(&form, "field"), &f(&form, "value"), &f(&form, "reason")).await {
        Ok(()) => Ok(Redirect::to(&format!("/instruments/{key}#clinic-rules")).into_response()),
        Err(AppError::Validation(e)) => {
            let body = instrument_body(&state, &p, &key, &form, &e).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Rating scale", body)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn load_wording(State(state): State<AppState>, Auth(p): Auth, Path(key): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.load_wording(&p, &key, &f(&form, "wording"), &f(&form, "wording_reason")).await {
        Ok(_) => Ok(Redirect::to(&format!("/instruments/{key}#wording")).into_response()),
        Err(AppError::Validation(e)) => {
            // Field names from the file (item keys, `notice`, ...) are shown against the text area.
            let mut shown = FieldErrors::new();
            for x in e.iter() {
                let field = if x.field == "reason" { "wording_reason" } else { "wording_file" };
                let msg =
                    if x.field == "reason" || x.field == "wording" { x.message.clone() } else { format!("{}: {}", x.field, x.message) };
                shown.add(field, msg);
            }
            let body = instrument_body(&state, &p, &key, &form, &shown).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Rating scale", body)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn withdraw_wording(State(state): State<AppState>, Auth(p): Auth, Path(key): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.withdraw_wording(&p, &key, &f(&form, "withdraw_reason")).await {
        Ok(()) => Ok(Redirect::to(&format!("/instruments/{key}#wording")).into_response()),
        Err(AppError::Validation(e)) => {
            let mut shown = FieldErrors::new();
            for x in e.iter() {
                shown.add("withdraw_reason", x.message.clone());
            }
            let body = instrument_body(&state, &p, &key, &form, &shown).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, layout(Some(&p), "Rating scale", body)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

fn wording_section(
    i: &Instrument,
    loaded: Option<&ketacare_app::LoadedWording>,
    p: &Principal,
    values: &Fields,
    errors: &FieldErrors,
) -> Markup {
    html! {
        section #wording {
            h2 { "Licensed wording" }
            @match loaded {
                None => p.muted { "No clinic wording is loaded: forms show Ketacare's short item labels. A clinic that holds a licence for " (i.name) " can load its wording here (a TOML wording file; see the documentation for the format)." },
                Some(l) => {
                    p { "Loaded by " strong { (l.policy.set_by_name) } " on " (when(l.policy.set_at)) " UTC: " (l.policy.reason) }
                    @if let Some(w) = &l.wording {
                        dl {
                            dt { "Language" } dd { (w.language) }
                            dt { "Rights notice (shown under the form)" } dd { (w.notice) }
                            @if let Some(r) = &w.licence_reference { dt { "Licence reference" } dd { (r) } }
                            @if let Some(t) = &w.instructions { dt { "Instructions" } dd { (t) } }
                        }
                        details {
                            summary { "Item wording in force (" (w.items.len()) " items)" }
                            ol.wording { @for it in &w.items { li { (it.text) @if !it.choice_labels.is_empty() { br; small.muted { (it.choice_labels.join(" · ")) } } } } }
                        }
                    } @else {
                        div.alert.alert-error role="alert" {
                            p { strong { "The loaded wording no longer fits this definition (version " (i.version) "), so forms show the short labels. Load a corrected file:" } }
                            ul { @for pr in &l.problems { li { (pr) } } }
                        }
                    }
                }
            }
            @if p.can(Permission::ManagePolicy) {
                form.card method="post" action=(format!("/instruments/{}/wording", i.key)) {
                    (csrf(p))
                    @let file_errors: Vec<&str> = errors.iter().filter(|e| e.field == "wording_file").map(|e| e.message.as_str()).collect();
                    @if !file_errors.is_empty() {
                        div.alert.alert-error role="alert" #wording-errors {
                            p { strong { "Nothing was loaded. The file has " (file_errors.len()) " problem" (if file_errors.len() == 1 { "" } else { "s" }) ":" } }
                            ul { @for m in &file_errors { li { (m) } } }
                        }
                    }
                    (textarea("wording", "Wording file (TOML): paste the whole file", values, errors))
                    (textarea("wording_reason", "Licence and reason (who granted it, agreement reference)", values, errors))
                    button.primary type="submit" { "Check and load wording" }
                }
                @if loaded.is_some() {
                    form.card method="post" action=(format!("/instruments/{}/wording/withdraw", i.key)) {
                        (csrf(p))
                        (textarea("withdraw_reason", "Why withdraw the wording", values, errors))
                        button type="submit" { "Withdraw wording" }
                    }
                }
            }
        }
    }
}

async fn instrument_body(state: &AppState, p: &Principal, key: &str, values: &Fields, errors: &FieldErrors) -> Result<Markup, WebError> {
    let k = state.app.knowledge();
    let i = k.instrument(key).ok_or_else(|| ui(AppError::NotFound))?;
    let rules = state.app.rules_in_force(i).await.map_err(ui)?;
    let policies = state.app.instrument_policies(i).await.map_err(ui)?;
    let loaded = state.app.clinic_wording(i).await.map_err(ui)?;
    let mut rule_errors = FieldErrors::new();
    for e in errors.iter().filter(|e| !e.field.starts_with("wording") && !e.field.starts_with("withdraw")) {
        rule_errors.add(&e.field, e.message.clone());
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    if i.default_rules.response.is_some() {
        fields.push(("response_percent".into(), "Response: percent improvement".into()));
        fields.push(("response_strict".into(), "Response: strict (true = more than, false = at least)".into()));
    }
    if i.default_rules.remission.is_some() {
        fields.push(("remission_total_at_most".into(), "Remission: highest total".into()));
    }
    if i.band_sets.len() > 1 {
        let keys: Vec<&str> = i.band_sets.iter().map(|b| b.key.as_str()).collect();
        fields.push(("band_set".into(), format!("Severity bands: {}", keys.join(" or "))));
    }
    let body = html! {
        p { a href="/instruments" { "← Rating scales" } }
        h1 { (i.name) " " small.muted { (i.title) } }
        @for c in &i.caveats { p.alert.caveat { (c) } }
        dl {
            dt { "Filled in by" } dd { (i.respondent.code()) }
            @if let Some(r) = &i.recall { dt { "Recall" } dd { (r) } }
            dt { "Scoring source" } dd { (i.source) }
            dt { "Licence" } dd { (i.licence) }
            @if let Some(l) = &i.panel_loinc { dt { "LOINC panel" } dd { (l) } }
            @if let Some(l) = &i.total_loinc { dt { "LOINC total" } dd { (l) } }
            dt { "Version" } dd { (i.version) }
        }
        h2 { "Items" }
        table { thead { tr { th { "#" } th { "Key" } th { "Label" } th { "Answers" } th { "Scored" } th { "LOINC" } } }
            tbody { @for (n, it) in i.items.iter().enumerate() { tr { td { (n + 1) } td { code { (it.key) } } td { (it.label) } td { (it.accepted()) @if it.optional { " (optional)" } } td { @if it.scored { "yes" } @else { "no" } } td { (it.loinc.as_deref().unwrap_or("")) } } } }
        }
        @if !i.subscales.is_empty() {
            h2 { "Subscales" }
            ul { @for s in &i.subscales { li { (s.label) ": " (s.items.join(", ")) } } }
        }
        @for (n, bs) in i.band_sets.iter().enumerate() {
            h2 { "Severity bands: " (bs.label) @if n == 0 { " (default)" } }
            table { tbody { @for b in &bs.bands { tr { td { (dec(b.min)) "–" (dec(b.max)) } td { (b.label) } } } } }
            p.source { "Source: " (bs.source) }
        }
        h2 { "Response and remission" }
        @if let Some(r) = &rules.response { p { "Response: " (if r.strict { "more than " } else { "at least " }) (dec(r.percent)) " % improvement from baseline." } p.source { "Source: " (r.source) } }
        @if let Some(r) = &rules.remission { p { "Remission: total " (if i.direction == Direction::HigherIsWorse { "at most " } else { "at least " }) (dec(r.total_at_most)) @if let Some(m) = r.no_item_above { " with no item above " (m) } "." } p.source { "Source: " (r.source) } }
        @if rules.response.is_none() && rules.remission.is_none() { p.muted { "No response or remission rule is defined for this instrument." } }
        @if let Some(r) = &i.reliability {
            h2 { "Reliable change (Jacobson and Truax)" }
            p { "r = " (dec(r.coefficient)) ", SD = " (dec(r.sd)) "; a change of more than " (r.threshold_points().map(|t| dec(t.round_dp(1))).unwrap_or_default()) " points is reliable (|RCI| > " (dec(r.critical)) ")." }
            p.source { "Source: " (r.source) }
        }
        @if !i.triage.is_empty() { h2 { "Triage" } ol { @for t in &i.triage { li { strong { (t.label) } } } } }
        @if !i.flags.is_empty() { h2 { "Flags" } ul { @for fl in &i.flags { li { @if fl.urgent { strong { "Urgent: " } } (fl.label) span.source { " Source: " (fl.source) } } } } }
        section #clinic-rules {
            h2 { "Clinic rules" }
            @if policies.is_empty() { p.muted { "The clinic uses the defaults above." } } @else {
                table { thead { tr { th { "Rule" } th { "Clinic value" } th { "Set by" } th { "When (UTC)" } th { "Why" } } }
                    tbody { @for pv in &policies { tr { td { (pv.key) } td { (pv.value.as_deref().unwrap_or("default")) } td { (pv.set_by_name) } td { (when(pv.set_at)) } td { (pv.reason) } } } } }
            }
            @if p.can(Permission::ManagePolicy) && !fields.is_empty() {
                (error_summary(&rule_errors))
                form.card method="post" action=(format!("/instruments/{}/rules", i.key)) {
                    (csrf(p))
                    (select("field", "Rule", &fields, values, errors))
                    (input("value", "Clinic value (empty = back to the default)", values, errors, "text", None))
                    (textarea("reason", "Why the clinic chooses this", values, errors))
                    button.primary type="submit" { "Save clinic rule" }
                }
            }
        }
        (wording_section(i, loaded.as_ref(), p, values, errors))
    };
    Ok(body)
}

// ---------------------------------------------------------------- patient link

fn patient_layout(title: &str, body: Markup) -> Markup {
    html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta name="robots" content="noindex";
                title { (title) " · Ketacare" }
                link rel="stylesheet" href="/static/app.css";
            }
            body.patient {
                main #main { (body) }
                footer.foot { "If you feel unsafe or might act on thoughts of harming yourself, call your local emergency number now." }
            }
        }
    }
}

fn link_problem(p: LinkProblem) -> Response {
    let status = match p {
        LinkProblem::Unknown => StatusCode::NOT_FOUND,
        _ => StatusCode::GONE,
    };
    (status, patient_layout("Questionnaire", html! { h1 { "Questionnaire" } p.notice { (p.message()) } })).into_response()
}

fn questionnaire_form(token: &str, inst: &Instrument, wording: Option<&Wording>, values: &Fields, errors: &FieldErrors) -> Markup {
    html! {
        h1 { (inst.name) }
        p { (inst.title) }
        @if let Some(t) = wording.and_then(|w| w.instructions.as_ref()) { p.instructions { (t) } }
        p.hint { "Choose one answer for each question, then press Send. Your answers go to your clinic only." }
        @if !errors.is_empty() {
            div.alert.alert-error role="alert" {
                p { strong { "Nothing was sent yet. Please check:" } }
                ul { @for e in errors.iter() { li { a href=(format!("#f-item_{}", inst.items.iter().position(|i| i.key == e.field).map(|i| i + 1).unwrap_or(0))) { (e.message) } } } }
            }
        }
        form.questionnaire method="post" action=(format!("/q/{token}")) novalidate {
            (items_markup(inst, values, errors))
            button.primary.big type="submit" { "Send" }
        }
        @if let Some(w) = wording { p.notice.small lang=(w.language) { (w.notice) } }
    }
}

async fn questionnaire(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.app.open_questionnaire(&token).await {
        Ok(q) => patient_layout(
            &q.instrument.name,
            questionnaire_form(&token, &q.instrument, q.wording.as_ref(), &Fields::new(), &FieldErrors::new()),
        )
        .into_response(),
        Err(p) => link_problem(p),
    }
}

async fn submit_questionnaire(State(state): State<AppState>, Path(token): Path<String>, Form(form): Form<Fields>) -> Response {
    let answers = AssessmentInput::answers_from_fields(form.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match state.app.submit_questionnaire(&token, answers).await {
        Ok(Ok(_)) => patient_layout(
            "Thank you",
            html! {
                h1 { "Thank you" }
                p.notice { "Your answers have been sent to your clinic. You can close this page." }
                p { "If you are worried about your safety before your next appointment, contact the clinic or your local emergency number." }
            },
        )
        .into_response(),
        Ok(Err(errors)) => match state.app.open_questionnaire(&token).await {
            Ok(q) => (StatusCode::UNPROCESSABLE_ENTITY, patient_layout(&q.instrument.name, questionnaire_form(&token, &q.instrument, q.wording.as_ref(), &form, &errors))).into_response(),
            Err(p) => link_problem(p),
        },
        Err(p) => link_problem(p),
    }
}
