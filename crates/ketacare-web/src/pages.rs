//! The staff web UI: server-rendered pages and form handlers.

use crate::error::WebError;
use crate::extract::{client_addr, Auth};
use crate::forms::{self, f, Fields};
use crate::views::*;
use crate::AppState;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use ketacare_app::{AppError, MeasurementInput, NewUserInput, Principal};
use ketacare_db::{AuditFilter, AuditSort, Page};
use ketacare_domain::access::Permission;
use ketacare_domain::audit::{AuditAction, AuditOutcome};
use ketacare_domain::ids::{PatientId, RecordId, TokenId, UserId};
use ketacare_domain::patient::{DemographicsInput, Sex};
use ketacare_domain::record::*;
use ketacare_domain::validation::FieldErrors;
use maud::{html, Markup};

pub(crate) type PageResult = Result<Response, WebError>;

pub(crate) fn ui(e: AppError) -> WebError {
    WebError::ui(e)
}

/// Checks the form's anti-forgery token against the session's.
pub(crate) fn check_csrf(p: &Principal, form: &Fields) -> Result<(), WebError> {
    match p.csrf_token() {
        Some(t) if form.get("_csrf").map(String::as_str) == Some(t) => Ok(()),
        _ => Err(ui(AppError::Forbidden)),
    }
}

fn page(p: &Principal, title: &str, body: Markup) -> Response {
    layout(Some(p), title, body).into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/patients", get(patient_list).post(register))
        .route("/patients/new", get(register_form))
        .route("/patients/{id}", get(chart))
        .route("/patients/{id}/edit", get(edit_form).post(edit))
        .route("/patients/{id}/void", post(void_patient))
        .route("/patients/{id}/history", get(patient_history))
        .route("/patients/{id}/measurements", get(measurement_form).post(measurement))
        .route("/patients/{id}/records", get(record_form).post(add_record))
        .route("/records/{rid}", get(record_page))
        .route("/records/{rid}/amend", get(amend_form).post(amend))
        .route("/records/{rid}/void", post(void_record))
        .route("/audit", get(audit))
        .route("/admin/users", get(users).post(create_user))
        .route("/admin/users/{id}/active", post(set_active))
        .route("/admin/users/{id}/unlock", post(unlock_user))
        .route("/admin/tokens", post(issue_token))
        .route("/admin/tokens/{id}/revoke", post(revoke_token))
        .route("/research", get(research))
        .route("/knowledge", get(knowledge))
}

async fn home(Auth(p): Auth) -> Redirect {
    if p.can(Permission::ReadPatients) {
        Redirect::to("/patients")
    } else if p.can(Permission::ManageUsers) {
        Redirect::to("/admin/users")
    } else {
        Redirect::to("/research")
    }
}

// ---------- login ----------

fn login_page(message: Option<&str>, username: &str) -> Markup {
    layout(
        None,
        "Log in",
        html! {
            section.card.narrow {
                h1 { "Log in" }
                @if let Some(m) = message { div.alert.alert-error role="alert" { (m) } }
                form method="post" action="/login" {
                    div.field { label for="username" { "Username" } input #username name="username" autocomplete="username" required value=(username); }
                    div.field { label for="password" { "Password" } input #password name="password" type="password" autocomplete="current-password" required; }
                    button.primary type="submit" { "Log in" }
                }
                p.muted { "Sessions end after 15 minutes without activity." }
            }
        },
    )
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    expired: Option<String>,
    signin: Option<String>,
}

async fn login_form(Query(q): Query<LoginQuery>) -> Markup {
    let message = match q.signin.as_deref() {
        Some("locked") => Some(
            "The account is locked after too many failed sign-ins. It unlocks by itself after a while, or an administrator can unlock it.",
        ),
        Some(_) => Some("That sign-in has expired or had too many wrong codes. Log in again with your password."),
        None => q.expired.as_ref().map(|_| "Please log in. Your session has ended or you are not logged in."),
    };
    login_page(message, "")
}

async fn login(State(state): State<AppState>, req: Request) -> PageResult {
    let (parts, body) = req.into_parts();
    let addr = client_addr(&parts);
    let Form(form): Form<Fields> = Form::from_request(Request::from_parts(parts, body), &state)
        .await
        .map_err(|_| ui(AppError::Validation(FieldErrors::single("form", "could not be read"))))?;
    let (user, pw) = (f(&form, "username"), f(&form, "password"));
    match state.app.login(&user, &pw, addr).await {
        Ok(step) => Ok(crate::account::after_password(&state, step)),
        Err(AppError::Unauthenticated) => Ok((
            axum::http::StatusCode::UNAUTHORIZED,
            login_page(
                Some(&format!(
                    "The username or password is not correct, the account is inactive, or it is locked after {} failed logins in a row (it unlocks by itself after {}, or an administrator can unlock it).",
                    state.app.settings().login.max_failures,
                    crate::error::wait_words(state.app.settings().login.lock_for.num_seconds())
                )),
                &user,
            ),
        )
            .into_response()),
        Err(AppError::RateLimited { retry_after_secs }) => Ok((
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            login_page(
                Some(&format!(
                    "Too many failed logins from this computer's network address. Try again in {}.",
                    crate::error::wait_words(retry_after_secs)
                )),
                &user,
            ),
        )
            .into_response()),
        Err(e) => Err(ui(e)),
    }
}

async fn logout(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    state.app.logout(&p).await.map_err(ui)?;
    Ok(([(header::SET_COOKIE, state.session_cookie("", 0))], Redirect::to("/login")).into_response())
}

// ---------- patients ----------

#[derive(serde::Deserialize)]
struct ListQuery {
    q: Option<String>,
    page: Option<i64>,
}

async fn patient_list(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<ListQuery>) -> PageResult {
    let query = q.q.unwrap_or_default();
    let pg = q.page.unwrap_or(0).max(0);
    let rows = state.app.search_patients(&p, &query, Page { limit: 50, offset: pg * 50 }).await.map_err(ui)?;
    // An exact MRN outside the clinician's care teams is named, with the way to open it in an
    // emergency (the list itself holds their own patients).
    let (outside, held) = if rows.is_empty() {
        match state.app.locate_outside_scope(&p, &query).await {
            Ok(found) => (found, None),
            Err(AppError::RateLimited { retry_after_secs }) => (None, Some(retry_after_secs)),
            Err(e) => return Err(ui(e)),
        }
    } else {
        (None, None)
    };
    let today = state.app.clock().now().date_naive();
    let open_alerts = state.app.open_alert_count(&p).await;
    Ok(page(
        &p,
        "Patients",
        html! {
            @if open_alerts > 0 {
                div.alert.alert-error role="alert" #open-alerts {
                    strong { (open_alerts) " open safety alert" @if open_alerts != 1 { "s" } } " need acknowledging. "
                    a href="/alerts" { "Review safety alerts" }
                }
            }
            div.row-between {
                h1 { "Patients" }
                @if p.can(Permission::WriteDemographics) { a.button.primary href="/patients/new" { "Register patient" } }
            }
            form.search method="get" action="/patients" role="search" {
                label for="q" { "Search by name or MRN" }
                input #q name="q" type="search" value=(query);
                button type="submit" { "Search" }
            }
            @if let Some((oid, label)) = &outside {
                div.alert.alert-warning role="status" data-testid="outside-scope" {
                    (label) " is not on your care team. "
                    a href=(format!("/patients/{oid}/emergency-access?mrn={}", urlencode(query.trim()))) { "Open in an emergency…" }
                }
            }
            @if let Some(secs) = held {
                div.alert.alert-warning role="status" data-testid="outside-held" {
                    "You have looked up " (ketacare_domain::access::OUTSIDE_LOOKUPS_PER_HOUR) " patients outside your care teams within an hour; the next lookup is possible in "
                    (crate::error::wait_words(secs)) ". For a patient in front of you now, ask a member of their care team or the medical director."
                }
            }
            @if rows.is_empty() { @if outside.is_none() && held.is_none() { p.muted { "No patients match." } } }
            @else {
                table.list {
                    thead { tr { th { "Name" } th { "MRN" } th { "Age" } th { "Sex" } } }
                    tbody {
                        @for v in &rows {
                            tr {
                                td { a href=(format!("/patients/{}", v.patient_id)) { (v.demographics.name.display()) } }
                                td { (v.demographics.mrn.as_str()) }
                                td { (v.demographics.date_of_birth.age_on(today)) }
                                td { (v.demographics.sex.label()) }
                            }
                        }
                    }
                }
                nav.pager {
                    @if pg > 0 { a href=(format!("/patients?q={}&page={}", urlencode(&query), pg - 1)) { "Previous" } }
                    @if rows.len() == 50 { a href=(format!("/patients?q={}&page={}", urlencode(&query), pg + 1)) { "Next" } }
                }
            }
        },
    ))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn sex_options() -> Vec<(String, String)> {
    let mut v = vec![(String::new(), "Choose…".to_owned())];
    v.extend(Sex::ALL.iter().map(|s| (s.code().to_owned(), s.label().to_owned())));
    v
}

fn demographics_form(p: &Principal, action: &str, values: &Fields, errors: &FieldErrors, amend: Option<u32>) -> Markup {
    html! {
        (error_summary(errors))
        form.card method="post" action=(action) novalidate {
            (csrf(p))
            @if let Some(v) = amend { input type="hidden" name="base_version" value=(v); }
            fieldset {
                legend { "Identity" }
                (input("mrn", "MRN", values, errors, "text", Some("Clinic medical record number. Leave blank to assign one.")))
                (input("family_name", "Family name", values, errors, "text", None))
                (input("given_name", "Given name", values, errors, "text", None))
                (input("date_of_birth", "Date of birth", values, errors, "date", Some("YYYY-MM-DD")))
                (select("sex", "Sex", &sex_options(), values, errors))
            }
            fieldset {
                legend { "Contact" }
                (input("phone", "Phone", values, errors, "tel", None))
                (input("email", "E-mail", values, errors, "email", None))
                (input("address", "Address", values, errors, "text", None))
            }
            fieldset {
                legend { "Emergency contact" }
                (input("emergency_name", "Name", values, errors, "text", None))
                (input("emergency_relationship", "Relationship", values, errors, "text", None))
                (input("emergency_phone", "Phone", values, errors, "tel", None))
            }
            @if amend.is_some() { (textarea("reason", "Reason for the amendment", values, errors)) }
            button.primary type="submit" { @if amend.is_some() { "Save amendment" } @else { "Register patient" } }
        }
    }
}

async fn register_form(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    state.app.authorize(&p, Permission::WriteDemographics, "Patient").await.map_err(ui)?;
    Ok(page(
        &p,
        "Register patient",
        html! { h1 { "Register patient" } (demographics_form(&p, "/patients", &Fields::new(), &FieldErrors::new(), None)) },
    ))
}

async fn register(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.register_patient(&p, &forms::demographics(&form)).await {
        Ok(v) => Ok(Redirect::to(&format!("/patients/{}", v.patient_id)).into_response()),
        Err(AppError::Validation(e)) => Ok((
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            page(&p, "Register patient", html! { h1 { "Register patient" } (demographics_form(&p, "/patients", &form, &e, None)) }),
        )
            .into_response()),
        Err(e) => Err(ui(e)),
    }
}

pub(crate) fn pid(s: &str) -> Result<PatientId, WebError> {
    PatientId::parse(s).map_err(|_| ui(AppError::NotFound))
}

fn rid(s: &str) -> Result<RecordId, WebError> {
    RecordId::parse(s).map_err(|_| ui(AppError::NotFound))
}

fn provenance(v: &Provenance) -> Markup {
    html! { span.muted { (v.username) " · " (crate::views::minute_utc(v.recorded_at)) } }
}

fn record_links(r: &RecordVersion) -> Markup {
    html! { a.small href=(format!("/records/{}", r.record_id)) { "history" @if r.version > 1 { " (v" (r.version) ")" } } }
}

async fn chart(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let c = state.app.chart(&p, pid(&id)?).await.map_err(ui)?;
    let access = state.app.authorize_patient(&p, c.patient.patient_id).await.map_err(ui)?;
    let d = &c.patient.demographics;
    let today = state.app.clock().now().date_naive();
    let base = format!("/patients/{}", c.patient.patient_id);
    let write = p.can(Permission::WriteClinical);
    let section = |kind: RecordKind, title: &str, empty: &str| {
        let rows: Vec<&RecordVersion> = c.of_kind(kind).filter(|r| !matches!(&r.record, ClinicalRecord::Observation(o) if o.code.code() == ketacare_domain::coding::loinc::BODY_WEIGHT || o.code.code() == ketacare_domain::coding::loinc::BODY_HEIGHT)).collect();
        let can_add = if kind == RecordKind::Diagnosis { p.can(Permission::WriteDiagnoses) } else { write };
        html! {
            section.card id=(kind.code()) {
                div.row-between {
                    h2 { (title) }
                    @if can_add { a.button href=(format!("{base}/records?kind={}", kind.code())) { "Add " (kind.label().to_lowercase()) } }
                }
                @if rows.is_empty() { p.muted { (empty) } }
                @else {
                    ul.records {
                        @for r in rows {
                            li { span { (r.record.summary()) } " " (provenance(&r.provenance)) " " (record_links(r)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        &p,
        &d.name.display(),
        html! {
            div.row-between {
                div {
                    h1 { (d.name.display()) }
                    p.muted { "MRN " strong { (d.mrn.as_str()) } " · born " (d.date_of_birth.date().format("%Y-%m-%d")) " (" (d.date_of_birth.age_on(today)) " y) · " (d.sex.label()) }
                }
                div.actions {
                    a.button.primary href=(format!("{base}/screening")) { "Screening" }
                    a.button.primary href=(format!("{base}/dosing")) { "Dosing" }
                    a.button.primary href=(format!("{base}/sessions")) { "Treatment sessions" }
                    a.button.primary href=(format!("{base}/outcomes")) { "Outcomes and rating scales" }
                    a.button.primary href=(format!("{base}/safety")) { "Long-term safety" }
                    a.button.primary href=(format!("{base}/care-plan")) { "Care plan" }
                    @if p.can(Permission::WriteDemographics) { a.button href=(format!("{base}/edit")) { "Amend demographics" } }
                    a.button href=(format!("{base}/history")) { "Demographics history (v" (c.patient.version) ")" }
                    a.button href=(format!("{base}/care-team")) { "Care team" }
                }
            }
            (crate::access::emergency_banner(&access))
            div.grid {
                section.card #contact {
                    h2 { "Contact" }
                    dl {
                        dt { "Phone" } dd { (d.contact.phone.as_deref().unwrap_or("—")) }
                        dt { "E-mail" } dd { (d.contact.email.as_deref().unwrap_or("—")) }
                        dt { "Address" } dd { (d.contact.address.as_deref().unwrap_or("—")) }
                        dt { "Emergency contact" } dd {
                            (d.emergency_contact.name.as_deref().unwrap_or("—"))
                            @if let Some(r) = &d.emergency_contact.relationship { " (" (r) ")" }
                            @if let Some(ph) = &d.emergency_contact.phone { " · " (ph) }
                        }
                    }
                }
                section.card #anthropometry {
                    div.row-between {
                        h2 { "Weight and height" }
                        @if write {
                            div.actions {
                                a.button href=(format!("{base}/measurements?type=weight")) { "Record weight" }
                                a.button href=(format!("{base}/measurements?type=height")) { "Record height" }
                            }
                        }
                    }
                    p.summary {
                        "Latest weight: " strong #latest-weight { @if let Some(w) = c.latest_weight() { (w.value.to_string()) } @else { "none recorded" } }
                        @if let Some(w) = c.latest_weight() { " (" (crate::views::minute_utc(w.effective)) ", " (w.version.provenance.username) ")" }
                        br;
                        "Latest height: " strong { @if let Some(h) = c.latest_height() { (h.value.to_string()) } @else { "none recorded" } }
                        br;
                        "BMI (derived): " strong { @if let Some(b) = c.bmi() { (b.normalize().to_string()) " kg/m²" } @else { "—" } }
                    }
                    (weight_chart(&c.weights))
                    @if !c.weights.is_empty() || !c.heights.is_empty() {
                        table.list #weights {
                            thead { tr { th { "Measured" } th { "Value" } th { "Recorded by" } th {} } }
                            tbody {
                                @for m in c.weights.iter().rev() {
                                    tr { td { (crate::views::minute(m.effective)) } td { (m.value.to_string()) } td { (provenance(&m.version.provenance)) } td { (record_links(&m.version)) } }
                                }
                                @for m in c.heights.iter().rev() {
                                    tr { td { (crate::views::minute(m.effective)) } td { (m.value.to_string()) } td { (provenance(&m.version.provenance)) } td { (record_links(&m.version)) } }
                                }
                            }
                        }
                    }
                }
            }
            (section(RecordKind::Diagnosis, "Diagnoses", "No diagnoses recorded."))
            (section(RecordKind::Medication, "Medications", "No medications recorded."))
            (section(RecordKind::Allergy, "Allergies", "No known allergies recorded."))
            (section(RecordKind::Condition, "Comorbid conditions", "No comorbid conditions recorded."))
            (section(RecordKind::PriorTreatment, "Prior treatments", "No prior treatments recorded."))
            (section(RecordKind::Encounter, "Encounters", "No encounters recorded."))
            (section(RecordKind::Observation, "Other observations", "No other observations."))
            @if !c.voided.is_empty() {
                details.card #voided {
                    summary { "Voided records (" (c.voided.len()) ")" }
                    ul.records {
                        @for r in &c.voided {
                            li { s { (r.record.summary()) } " voided: " (r.reason.as_ref().map(|x| x.as_str()).unwrap_or("")) " " (provenance(&r.provenance)) " " (record_links(r)) }
                        }
                    }
                }
            }
            @if p.can(Permission::WriteDemographics) {
                details.card.danger {
                    summary { "Void this registration" }
                    form method="post" action=(format!("{base}/void")) {
                        (csrf(&p))
                        input type="hidden" name="base_version" value=(c.patient.version);
                        (textarea("reason", "Reason (for example: duplicate registration)", &Fields::new(), &FieldErrors::new()))
                        button.danger type="submit" { "Void registration" }
                    }
                }
            }
        },
    ))
}

async fn edit_form(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let v = state.app.patient(&p, pid(&id)?).await.map_err(ui)?;
    let values = forms::demographics_fields(&DemographicsInput::from_demographics(&v.demographics));
    Ok(page(
        &p,
        "Amend demographics",
        html! {
            h1 { "Amend demographics" }
            p.muted { "The current version stays in the history; this creates version " (v.version + 1) "." }
            (demographics_form(&p, &format!("/patients/{id}/edit"), &values, &FieldErrors::new(), Some(v.version)))
        },
    ))
}

fn base_version(form: &Fields) -> u32 {
    f(form, "base_version").parse().unwrap_or(0)
}

async fn edit(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let patient = pid(&id)?;
    match state.app.amend_patient(&p, patient, base_version(&form), &forms::demographics(&form), &f(&form, "reason")).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}")).into_response()),
        Err(AppError::Validation(e)) => Ok((
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            page(
                &p,
                "Amend demographics",
                html! {
                    h1 { "Amend demographics" }
                    (demographics_form(&p, &format!("/patients/{id}/edit"), &form, &e, Some(base_version(&form))))
                },
            ),
        )
            .into_response()),
        Err(e) => Err(ui(e)),
    }
}

async fn void_patient(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    state.app.void_patient(&p, pid(&id)?, base_version(&form), &f(&form, "reason")).await.map_err(ui)?;
    Ok(Redirect::to("/patients").into_response())
}

async fn patient_history(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let h = state.app.patient_history(&p, pid(&id)?).await.map_err(ui)?;
    Ok(page(
        &p,
        "Demographics history",
        html! {
            h1 { "Demographics history" }
            p { a href=(format!("/patients/{id}")) { "Back to the chart" } }
            table.list #history {
                thead { tr { th { "Version" } th { "Action" } th { "Name" } th { "MRN" } th { "Born" } th { "Sex" } th { "Phone" } th { "Reason" } th { "By" } } }
                tbody {
                    @for v in h.iter().rev() {
                        tr {
                            td { (v.version) } td { (v.action.code()) } td { (v.demographics.name.display()) } td { (v.demographics.mrn.as_str()) }
                            td { (v.demographics.date_of_birth.date().format("%Y-%m-%d")) } td { (v.demographics.sex.label()) }
                            td { (v.demographics.contact.phone.as_deref().unwrap_or("—")) }
                            td { (v.reason.as_ref().map(|r| r.as_str()).unwrap_or("")) } td { (provenance(&v.provenance)) }
                        }
                    }
                }
            }
        },
    ))
}

// ---------- weight and height ----------

#[derive(serde::Deserialize)]
struct MeasureQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn measurement_body(
    p: &Principal,
    action: &str,
    is_weight: bool,
    values: &Fields,
    errors: &FieldErrors,
    warnings: &[(String, String)],
    amend: Option<u32>,
) -> Markup {
    let (name, label, hint) = if is_weight {
        ("value", "Weight (kg)", "Kilograms only, measured today on the clinic scale, for example 72.4")
    } else {
        ("value", "Height (cm)", "Centimetres only, for example 171.5")
    };
    html! {
        h1 { @if is_weight { "Record weight" } @else { "Record height" } }
        @if !warnings.is_empty() {
            div.alert.alert-warning role="alert" #warnings {
                p { strong { "Check this value before saving." } }
                ul { @for (_, m) in warnings { li { (m) } } }
                p { "Correct the value, or tick the box to confirm it is right." }
            }
        }
        (error_summary(&FieldErrors::new()))
        form.card method="post" action=(action) novalidate {
            (csrf(p))
            input type="hidden" name="type" value=(if is_weight { "weight" } else { "height" });
            @if let Some(v) = amend { input type="hidden" name="base_version" value=(v); }
            (input(name, label, values, errors, "decimal", Some(hint)))
            (input("measured_at", "Measured at (UTC)", values, errors, "datetime-local", Some("Leave blank for now")))
            @for (code, _) in warnings {
                div.field.check {
                    input type="checkbox" id=(format!("ack-{code}")) name="acknowledge" value=(code);
                    label for=(format!("ack-{code}")) { "I have checked this value and it is correct" }
                }
            }
            @if amend.is_some() { (textarea("reason", "Reason for the amendment", values, errors)) }
            button.primary type="submit" { "Save" }
        }
    }
}

async fn measurement_form(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<MeasureQuery>,
) -> PageResult {
    state.app.authorize(&p, Permission::WriteClinical, "Record").await.map_err(ui)?;
    let v = state.app.patient(&p, pid(&id)?).await.map_err(ui)?;
    let is_weight = q.kind.as_deref() != Some("height");
    Ok(page(
        &p,
        "Record measurement",
        html! {
            p.muted { (v.demographics.name.display()) " · MRN " (v.demographics.mrn.as_str()) }
            (measurement_body(&p, &format!("/patients/{id}/measurements"), is_weight, &Fields::new(), &FieldErrors::new(), &[], None))
        },
    ))
}

/// Reads repeated `acknowledge` fields from a urlencoded body.
fn acknowledged(raw: &str) -> Vec<String> {
    raw.split('&').filter_map(|kv| kv.split_once('=')).filter(|(k, _)| *k == "acknowledge").map(|(_, v)| v.replace('+', " ")).collect()
}

fn parse_form(body: &str) -> Fields {
    serde_urlencoded_like(body)
}

fn serde_urlencoded_like(body: &str) -> Fields {
    // axum's Form uses serde_urlencoded; repeated keys are read separately by `acknowledged`.
    axum::extract::Query::<Fields>::try_from_uri(&format!("/?{body}").parse().unwrap_or_default()).map(|q| q.0).unwrap_or_default()
}

fn measurement_render(p: &Principal, action: &str, is_weight: bool, form: &Fields, e: AppError, amend: Option<u32>) -> PageResult {
    match e {
        AppError::Validation(errs) => Ok((
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            page(p, "Record measurement", measurement_body(p, action, is_weight, form, &errs, &[], amend)),
        )
            .into_response()),
        AppError::NeedsConfirmation(w) => {
            let w: Vec<(String, String)> = w.iter().map(|w| (w.code().to_owned(), w.message())).collect();
            Ok((
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                page(p, "Record measurement", measurement_body(p, action, is_weight, form, &FieldErrors::new(), &w, amend)),
            )
                .into_response())
        }
        e => Err(ui(e)),
    }
}

async fn measurement(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, body: String) -> PageResult {
    let form = parse_form(&body);
    check_csrf(&p, &form)?;
    let patient = pid(&id)?;
    let is_weight = f(&form, "type") != "height";
    let input = MeasurementInput { value: f(&form, "value"), measured_at: f(&form, "measured_at"), acknowledged: acknowledged(&body) };
    let r = if is_weight { state.app.record_weight(&p, patient, &input).await } else { state.app.record_height(&p, patient, &input).await };
    match r {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}#anthropometry")).into_response()),
        Err(e) => measurement_render(&p, &format!("/patients/{id}/measurements"), is_weight, &form, e, None),
    }
}

// ---------- other records ----------

#[derive(serde::Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

fn diagnosis_choices(k: &ketacare_knowledge::Knowledge) -> Vec<(String, String)> {
    let mut choices: Vec<(String, String)> = k
        .diagnoses
        .iter()
        .map(|d| {
            let icd = d.icd10.as_ref().map(|c| format!(", ICD-10-CM {}", c.code())).unwrap_or_default();
            (d.key.clone(), format!("{} (SNOMED CT {}{icd})", d.snomed.display(), d.snomed.code()))
        })
        .collect();
    choices.push(("other".into(), "Other (enter code system and code)".into()));
    choices
}

fn record_form_body(
    state: &AppState,
    p: &Principal,
    kind: RecordKind,
    action: &str,
    values: &Fields,
    errors: &FieldErrors,
    amend: Option<u32>,
) -> Markup {
    let k = state.app.knowledge();
    let opts = |xs: Vec<(&str, &str)>| xs.into_iter().map(|(a, b)| (a.to_owned(), b.to_owned())).collect::<Vec<_>>();
    html! {
        (error_summary(errors))
        form.card method="post" action=(action) novalidate {
            (csrf(p))
            input type="hidden" name="kind" value=(kind.code());
            @if let Some(v) = amend { input type="hidden" name="base_version" value=(v); }
            @match kind {
                RecordKind::Diagnosis => {
                    @let choices = diagnosis_choices(k);
                    (select("choice", "Diagnosis", &choices, values, errors))
                    @for d in k.diagnoses.iter().filter(|d| d.caveat.is_some()) { p.hint { (d.snomed.display()) ": " (d.caveat.as_deref().unwrap_or("")) } }
                    fieldset {
                        legend { "Other diagnosis" }
                        (input("system", "Code system", values, errors, "text", Some("snomed, icd10, or a code system URI")))
                        (input("code", "Code", values, errors, "text", None))
                        (input("display", "Description", values, errors, "text", None))
                        (input("icd10", "ICD-10-CM code (optional)", values, errors, "text", None))
                    }
                    (input("onset", "Onset date", values, errors, "date", None))
                    (select("status", "Status", &opts(vec![("active", "Active"), ("remission", "In remission"), ("resolved", "Resolved")]), values, errors))
                    (textarea("note", "Note", values, errors))
                }
                RecordKind::Medication => {
                    (input("name", "Medication", values, errors, "text", Some("Name as prescribed, for example Sertraline")))
                    (input("rxnorm", "RxNorm code", values, errors, "text", Some("Digits only, if known")))
                    (input("dose", "Dose and frequency", values, errors, "text", Some("For example 100 mg once daily")))
                    (input("start", "Start date", values, errors, "date", None))
                    (input("stop", "Stop date", values, errors, "date", None))
                }
                RecordKind::Allergy => {
                    (input("substance", "Substance", values, errors, "text", None))
                    (input("reaction", "Reaction", values, errors, "text", None))
                    (select("severity", "Severity", &opts(vec![("unknown", "Unknown"), ("mild", "Mild"), ("moderate", "Moderate"), ("severe", "Severe")]), values, errors))
                }
                RecordKind::Encounter => {
                    (select("encounter_kind", "Kind", &EncounterKind::ALL.iter().map(|e| (e.code().to_owned(), e.label().to_owned())).collect::<Vec<_>>(), values, errors))
                    (input("start", "Start (UTC)", values, errors, "datetime-local", None))
                    (input("end", "End (UTC)", values, errors, "datetime-local", None))
                    (input("reason_for_visit", "Reason for visit", values, errors, "text", None))
                    (textarea("note", "Note", values, errors))
                }
                RecordKind::Assessment => {
                    (crate::outcomes::assessment_fields(k, &f(values, "instrument"), values, errors))
                }
                RecordKind::PriorTreatment => {
                    (select("treatment_kind", "Kind", &opts(vec![("pharmacological", "Medicine (pharmacological)"), ("psychotherapy", "Psychological therapy")]), values, errors))
                    (input("name", "Medicine or therapy", values, errors, "text", Some("Generic name, for example sertraline; or CBT")))
                    (input("dose", "Dose", values, errors, "text", Some("For example 150 mg daily; for therapy, number of sessions")))
                    (input("weeks", "Duration (weeks)", values, errors, "text", None))
                    (select("adequate", "Adequate dose or delivery?", &opts(vec![("", "Not known"), ("yes", "Yes"), ("no", "No")]), values, errors))
                    fieldset {
                        legend { "Response (ratings before and at the end)" }
                        (select("instrument", "Scale", &opts(vec![("", "Not rated"), ("hama", "HAM-A"), ("bai", "BAI (Beck Anxiety Inventory)"), ("cgi_i", "CGI-I (final rating only)"), ("gad7", "GAD-7"), ("lsas", "LSAS")]), values, errors))
                        (input("baseline", "Rating before", values, errors, "text", None))
                        (input("final", "Rating at the end", values, errors, "text", None))
                    }
                    (textarea("stop_reason", "Why it stopped", values, errors))
                }
                RecordKind::Condition => {
                    @let conds: Vec<(String, String)> = k.screening.conditions.iter().map(|c| (c.key.clone(), c.label.clone())).chain([("other".to_owned(), "Other (name it below)".to_owned())]).collect();
                    (select("condition", "Condition", &conds, values, errors))
                    (input("other", "Other condition", values, errors, "text", Some("Only when the condition is not in the list")))
                    (select("status", "Status", &opts(vec![("present", "Present"), ("absent", "Absent (asked and ruled out, e.g. not pregnant)")]), values, errors))
                    (select("controlled", "Controlled or treated?", &opts(vec![("", "Not applicable or not known"), ("yes", "Yes, controlled"), ("no", "No, not controlled")]), values, errors))
                    (textarea("note", "Note", values, errors))
                }
                RecordKind::Screening => {
                    p.notice { "A screening verdict is signed on the patient's screening page." }
                }
                RecordKind::TreatmentPlan | RecordKind::DoseOrder => {
                    p.notice { "Treatment plans and dose orders are made on the patient's dosing page." }
                }
                RecordKind::LabResult | RecordKind::SafetyEvent | RecordKind::SafetyReview | RecordKind::CarePlan => {
                    p.notice { "Lab results, safety observations, benefit-risk reviews and the care plan are entered on the patient's Safety page." }
                }
                RecordKind::Observation => {
                    (input("code", "LOINC code", values, errors, "text", Some("For example 8310-5 (body temperature)")))
                    (input("display", "What was observed", values, errors, "text", None))
                    (select("value_type", "Value type", &opts(vec![("quantity", "Number with unit"), ("text", "Text"), ("boolean", "Yes / no")]), values, errors))
                    (input("value", "Value", values, errors, "text", None))
                    (input("unit", "Unit (UCUM)", values, errors, "text", Some("For example Cel, mm[Hg], /min, %")))
                    (input("effective", "Measured at (UTC)", values, errors, "datetime-local", None))
                }
            }
            @if amend.is_some() { (textarea("reason", "Reason for the amendment", values, errors)) }
            button.primary type="submit" { "Save" }
        }
    }
}

async fn record_form(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Query(q): Query<KindQuery>) -> PageResult {
    let kind = RecordKind::parse(q.kind.as_deref().unwrap_or("")).map_err(|_| ui(AppError::NotFound))?;
    let perm = if kind == RecordKind::Diagnosis { Permission::WriteDiagnoses } else { Permission::WriteClinical };
    state.app.authorize(&p, perm, "Record").await.map_err(ui)?;
    let v = state.app.patient(&p, pid(&id)?).await.map_err(ui)?;
    let recheck = if kind == RecordKind::Encounter {
        crate::screening::recheck_panel(&state, &p, &id).await?
    } else {
        html! {}
    };
    Ok(page(
        &p,
        &format!("Add {}", kind.label().to_lowercase()),
        html! {
            h1 { "Add " (kind.label().to_lowercase()) }
            p.muted { (v.demographics.name.display()) " · MRN " (v.demographics.mrn.as_str()) }
            (recheck)
            (record_form_body(&state, &p, kind, &format!("/patients/{id}/records"), &Fields::new(), &FieldErrors::new(), None))
        },
    ))
}

async fn add_record(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let kind = RecordKind::parse(&f(&form, "kind")).map_err(|m| ui(AppError::Validation(FieldErrors::single("kind", m))))?;
    match state.app.add_record(&p, pid(&id)?, &forms::record_input(kind, &form)).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}#{}", kind.code())).into_response()),
        Err(AppError::Validation(e)) => Ok((
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            page(
                &p,
                "Add record",
                html! {
                    h1 { "Add " (kind.label().to_lowercase()) }
                    @if kind == RecordKind::Encounter { (crate::screening::recheck_panel(&state, &p, &id).await?) }
                    (record_form_body(&state, &p, kind, &format!("/patients/{id}/records"), &form, &e, None))
                },
            ),
        )
            .into_response()),
        Err(e) => Err(ui(e)),
    }
}

fn is_measurement(r: &ClinicalRecord) -> Option<bool> {
    match r {
        ClinicalRecord::Observation(o) if o.code.code() == ketacare_domain::coding::loinc::BODY_WEIGHT => Some(true),
        ClinicalRecord::Observation(o) if o.code.code() == ketacare_domain::coding::loinc::BODY_HEIGHT => Some(false),
        _ => None,
    }
}

async fn record_page(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let h = state.app.record_history(&p, rid(&id)?).await.map_err(ui)?;
    let cur = h.last().ok_or_else(|| ui(AppError::NotFound))?;
    let can_change = !cur.is_void()
        && if cur.record.kind() == RecordKind::Diagnosis { p.can(Permission::WriteDiagnoses) } else { p.can(Permission::WriteClinical) };
    Ok(page(
        &p,
        "Record history",
        html! {
            h1 { (cur.record.kind().label()) " history" }
            p { a href=(format!("/patients/{}", cur.patient_id)) { "Back to the chart" } }
            @if cur.is_void() { div.alert.alert-warning { "This record is voided. It no longer shows on the chart." } }
            @if let ClinicalRecord::Assessment(a) = &cur.record {
                p { a href=(format!("/patients/{}/outcomes", cur.patient_id)) { "Outcomes of this patient" } }
                (crate::outcomes::assessment_detail(state.app.knowledge(), a))
            }
            table.list #history {
                thead { tr { th { "Version" } th { "Action" } th { "Content" } th { "Reason" } th { "By" } } }
                tbody {
                    @for v in h.iter().rev() {
                        tr {
                            td { (v.version) } td { (v.action.code()) } td { (v.record.summary()) }
                            td { (v.reason.as_ref().map(|r| r.as_str()).unwrap_or("")) } td { (provenance(&v.provenance)) }
                        }
                    }
                }
            }
            @if can_change {
                div.actions {
                    a.button href=(format!("/records/{id}/amend")) { "Amend" }
                }
                details.card.danger {
                    summary { "Void this record" }
                    form method="post" action=(format!("/records/{id}/void")) {
                        (csrf(&p))
                        input type="hidden" name="base_version" value=(cur.version);
                        (textarea("reason", "Reason (for example: entered in error)", &Fields::new(), &FieldErrors::new()))
                        button.danger type="submit" { "Void record" }
                    }
                }
            }
        },
    ))
}

async fn amend_form(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let cur = state.app.record(&p, rid(&id)?).await.map_err(ui)?;
    let action = format!("/records/{id}/amend");
    let body = if let Some(is_weight) = is_measurement(&cur.record) {
        let mut values = Fields::new();
        if let ClinicalRecord::Observation(o) = &cur.record {
            if let ObservationValue::Quantity { value, .. } = &o.value {
                values.insert("value".into(), value.normalize().to_string());
            }
            values.insert("measured_at".into(), o.effective.format("%Y-%m-%dT%H:%M").to_string());
        }
        measurement_body(&p, &action, is_weight, &values, &FieldErrors::new(), &[], Some(cur.version))
    } else {
        let values = forms::record_fields(&cur.record, &state.app.knowledge().diagnoses);
        html! { h1 { "Amend " (cur.record.kind().label().to_lowercase()) } (record_form_body(&state, &p, cur.record.kind(), &action, &values, &FieldErrors::new(), Some(cur.version))) }
    };
    Ok(page(&p, "Amend record", body))
}

async fn amend(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, body: String) -> PageResult {
    let form = parse_form(&body);
    check_csrf(&p, &form)?;
    let record = rid(&id)?;
    let cur = state.app.record(&p, record).await.map_err(ui)?;
    let action = format!("/records/{id}/amend");
    let bv = base_version(&form);
    if let Some(is_weight) = is_measurement(&cur.record) {
        let input = MeasurementInput { value: f(&form, "value"), measured_at: f(&form, "measured_at"), acknowledged: acknowledged(&body) };
        return match state.app.amend_measurement(&p, record, bv, &input, &f(&form, "reason")).await {
            Ok(_) => Ok(Redirect::to(&format!("/records/{id}")).into_response()),
            Err(e) => measurement_render(&p, &action, is_weight, &form, e, Some(bv)),
        };
    }
    let kind = cur.record.kind();
    match state.app.amend_record(&p, record, bv, &forms::record_input(kind, &form), &f(&form, "reason")).await {
        Ok(_) => Ok(Redirect::to(&format!("/records/{id}")).into_response()),
        Err(AppError::Validation(e)) => Ok((
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            page(
                &p,
                "Amend record",
                html! {
                    h1 { "Amend " (kind.label().to_lowercase()) }
                    (record_form_body(&state, &p, kind, &action, &form, &e, Some(bv)))
                },
            ),
        )
            .into_response()),
        Err(e) => Err(ui(e)),
    }
}

async fn void_record(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.void_record(&p, rid(&id)?, base_version(&form), &f(&form, "reason")).await {
        Ok(_) => Ok(Redirect::to(&format!("/records/{id}")).into_response()),
        Err(AppError::Validation(e)) => Ok((
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            page(
                &p,
                "Void record",
                html! {
                    h1 { "Void record" }
                    (error_summary(&e))
                    p { a href=(format!("/records/{id}")) { "Back to the record" } }
                },
            ),
        )
            .into_response()),
        Err(e) => Err(ui(e)),
    }
}

// ---------- audit ----------

/// Audit trail search parameters (UI query string and API).
#[derive(serde::Deserialize, Default, utoipa::IntoParams)]
pub(crate) struct AuditQuery {
    /// Username.
    pub user: Option<String>,
    /// Patient id.
    pub patient: Option<String>,
    /// C, R, U, D or E.
    pub action: Option<String>,
    /// success, denied or not_found.
    pub outcome: Option<String>,
    /// From date (YYYY-MM-DD, inclusive).
    pub from: Option<String>,
    /// To date (YYYY-MM-DD, inclusive).
    pub to: Option<String>,
    /// time, user, patient, action, entity or outcome.
    pub sort: Option<String>,
    /// 1 for ascending.
    pub asc: Option<String>,
    /// Page number from 0.
    pub page: Option<i64>,
}

/// Parses the audit query into a filter, with field errors for bad values.
pub(crate) fn audit_filter(q: &AuditQuery) -> Result<AuditFilter, FieldErrors> {
    let mut e = FieldErrors::new();
    let nz = |o: &Option<String>| o.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let patient = nz(&q.patient).and_then(|s| e.check("patient", PatientId::parse(&s)));
    let action = nz(&q.action).and_then(|s| e.check("action", AuditAction::parse(&s)));
    let outcome = nz(&q.outcome).and_then(|s| e.check("outcome", AuditOutcome::parse(&s)));
    let day = |s: String, field: &str, e: &mut FieldErrors| {
        e.check(field, chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| "must be a date YYYY-MM-DD".to_owned()))
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc())
    };
    let from = nz(&q.from).and_then(|s| day(s, "from", &mut e));
    let to = nz(&q.to).and_then(|s| day(s, "to", &mut e)).map(|t| t + chrono::Duration::days(1));
    let sort = e.check("sort", AuditSort::parse(q.sort.as_deref().unwrap_or(""))).unwrap_or_default();
    e.clone().into_result()?;
    Ok(AuditFilter {
        username: nz(&q.user).map(|u| u.to_ascii_lowercase()),
        patient_id: patient,
        action,
        outcome,
        entity_type: None,
        from,
        to,
        sort,
        ascending: q.asc.as_deref() == Some("1"),
        page: Page { limit: 100, offset: q.page.unwrap_or(0).max(0) * 100 },
    })
}

async fn audit(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<AuditQuery>) -> PageResult {
    state.app.authorize(&p, Permission::ReadAudit, "AuditEvent").await.map_err(ui)?;
    let mut values = Fields::new();
    for (k, v) in [
        ("user", &q.user),
        ("patient", &q.patient),
        ("action", &q.action),
        ("outcome", &q.outcome),
        ("from", &q.from),
        ("to", &q.to),
        ("sort", &q.sort),
    ] {
        values.insert(k.into(), v.clone().unwrap_or_default());
    }
    let (rows, errors) = match audit_filter(&q) {
        Ok(filter) => (state.app.search_audit(&p, &filter).await.map_err(ui)?, FieldErrors::new()),
        Err(e) => (Vec::new(), e),
    };
    let opts = |xs: &[(&str, &str)]| xs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect::<Vec<_>>();
    Ok(page(
        &p,
        "Audit trail",
        html! {
            h1 { "Audit trail" }
            form.card.filters method="get" action="/audit" {
                (input("user", "Username", &values, &errors, "text", None))
                (input("patient", "Patient id", &values, &errors, "text", None))
                (select("action", "Action", &opts(&[("", "Any"), ("C", "Create"), ("R", "Read"), ("U", "Amend"), ("D", "Void"), ("E", "Execute (login, search)")]), &values, &errors))
                (select("outcome", "Outcome", &opts(&[("", "Any"), ("success", "Success"), ("denied", "Denied"), ("not_found", "Not found")]), &values, &errors))
                (input("from", "From", &values, &errors, "date", None))
                (input("to", "To", &values, &errors, "date", None))
                (select("sort", "Sort by", &opts(&[("time", "Time"), ("user", "User"), ("patient", "Patient"), ("action", "Action"), ("entity", "Entity"), ("outcome", "Outcome")]), &values, &errors))
                button type="submit" { "Search" }
            }
            table.list #audit {
                thead { tr { th { "#" } th { "When (UTC)" } th { "User" } th { "Role" } th { "Action" } th { "Outcome" } th { "What" } th { "Patient" } th { "From" } th { "Detail" } } }
                tbody {
                    @for e in &rows {
                        @let ev = &e.event;
                        tr {
                            td { (e.seq) } td { (crate::views::second(ev.recorded_at)) } td { (ev.actor.username) }
                            td { (ev.actor.role.map(|r| r.label()).unwrap_or("—")) } td { (ev.action.label()) } td { (ev.outcome.code()) }
                            td { (ev.entity_type) } td { @if let Some(pid) = ev.patient_id { a href=(format!("/audit?patient={pid}")) { (pid.to_string()[..8]) } } }
                            td { (ev.actor.client_addr.as_deref().unwrap_or("")) } td { (ev.detail.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        },
    ))
}

// ---------- admin ----------

async fn users_page(state: &AppState, p: &Principal, values: &Fields, errors: &FieldErrors, new_token: Option<String>) -> PageResult {
    let users = state.app.list_users(p).await.map_err(ui)?;
    let tokens = state.app.list_api_tokens(p).await.map_err(ui)?;
    let enrolled = state.app.mfa_enrolled(p).await.map_err(ui)?;
    let mfa_policy = state.app.mfa_policy().await.map_err(ui)?;
    let now = state.app.clock().now();
    let user_opts: Vec<(String, String)> =
        users.iter().map(|u| (u.id.to_string(), format!("{} ({})", u.username.as_str(), u.role.label()))).collect();
    Ok(page(
        p,
        "Users",
        html! {
            h1 { "Users and API tokens" }
            @if let Some(t) = new_token {
                div.alert.alert-warning role="alert" #new-token { p { "New API token (shown once; store it now):" } code { (t) } }
            }
            table.list #users {
                thead { tr { th { "Username" } th { "Name" } th { "Role" } th { "Status" } th { "Two-step sign-in" } th {} } }
                tbody {
                    @for u in &users {
                        tr {
                            td { (u.username.as_str()) } td { (u.display_name) } td { (u.role.label()) }
                            td {
                                @if u.active { "active" } @else { "inactive" }
                                @if let Some(until) = u.lock.locked_until.filter(|t| *t > now) {
                                    br; strong.locked { "locked until " (until.format("%H:%M")) " UTC" } " (" (u.lock.failed) " failed logins)"
                                } @else if u.lock.failed > 0 {
                                    br; span.muted { (u.lock.failed) " failed logins since the last success" }
                                }
                            }
                            td.mfa {
                                @if enrolled.contains(&u.id) { "on" } @else if mfa_policy.requires(u.role) { "required; set up at next sign-in" } @else { "off" }
                            }
                            td {
                                @if enrolled.contains(&u.id) {
                                    form method="post" action=(format!("/admin/users/{}/reset-mfa", u.id)) {
                                        (csrf(p))
                                        button.link type="submit" { "Reset two-step sign-in" }
                                    }
                                }
                                @if u.lock.locked_until.is_some_and(|t| t > now) || u.lock.failed > 0 {
                                    form method="post" action=(format!("/admin/users/{}/unlock", u.id)) {
                                        (csrf(p))
                                        button.link type="submit" { "Unlock" }
                                    }
                                }
                                @if u.id != p.user.id {
                                    form method="post" action=(format!("/admin/users/{}/active", u.id)) {
                                        (csrf(p))
                                        input type="hidden" name="active" value=(if u.active { "0" } else { "1" });
                                        button.link type="submit" { @if u.active { "Deactivate" } @else { "Activate" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "Create user" }
                (error_summary(errors))
                form method="post" action="/admin/users" novalidate {
                    (csrf(p))
                    (input("username", "Username", values, errors, "text", None))
                    (input("display_name", "Full name", values, errors, "text", None))
                    (select("role", "Role", &role_options(), values, errors))
                    (input("password", "Initial password", &Fields::new(), errors, "password", Some("At least 12 characters; a phrase of several words works well")))
                    button.primary type="submit" { "Create user" }
                }
            }
            section.card {
                h2 { "API tokens" }
                p.muted { "For scripts and device gateways. A token acts with the role of its account." }
                table.list #tokens {
                    thead { tr { th { "Label" } th { "Account" } th { "Created" } th { "Status" } th {} } }
                    tbody {
                        @for t in &tokens {
                            tr {
                                td { (t.label) }
                                td { (users.iter().find(|u| u.id == t.user_id).map(|u| u.username.as_str()).unwrap_or("?")) }
                                td { (t.created_at.format("%Y-%m-%d")) }
                                td { @if t.revoked_at.is_some() { "revoked" } @else { "active" } }
                                td { @if t.revoked_at.is_none() {
                                    form method="post" action=(format!("/admin/tokens/{}/revoke", t.id)) { (csrf(p)) button.link type="submit" { "Revoke" } }
                                } }
                            }
                        }
                    }
                }
                form method="post" action="/admin/tokens" {
                    (csrf(p))
                    (select("user_id", "Account", &user_opts, &Fields::new(), &FieldErrors::new()))
                    (input("label", "Label", &Fields::new(), &FieldErrors::new(), "text", Some("What the token is for")))
                    button type="submit" { "Issue token" }
                }
            }
        },
    ))
}

async fn users(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    users_page(&state, &p, &Fields::new(), &FieldErrors::new(), None).await
}

async fn create_user(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let input = NewUserInput {
        username: f(&form, "username"),
        display_name: f(&form, "display_name"),
        role: f(&form, "role"),
        password: f(&form, "password"),
    };
    match state.app.create_user(&p, &input).await {
        Ok(_) => Ok(Redirect::to("/admin/users").into_response()),
        Err(AppError::Validation(e)) => {
            let r = users_page(&state, &p, &form, &e, None).await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, r).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn set_active(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let uid = UserId::parse(&id).map_err(|_| ui(AppError::NotFound))?;
    state.app.set_user_active(&p, uid, f(&form, "active") == "1").await.map_err(ui)?;
    Ok(Redirect::to("/admin/users").into_response())
}

async fn unlock_user(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let uid = UserId::parse(&id).map_err(|_| ui(AppError::NotFound))?;
    state.app.unlock_user(&p, uid).await.map_err(ui)?;
    Ok(Redirect::to("/admin/users").into_response())
}

async fn issue_token(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.issue_api_token(&p, &f(&form, "user_id"), &f(&form, "label")).await {
        Ok((secret, _)) => users_page(&state, &p, &Fields::new(), &FieldErrors::new(), Some(secret)).await,
        Err(AppError::Validation(e)) => users_page(&state, &p, &Fields::new(), &e, None).await,
        Err(e) => Err(ui(e)),
    }
}

async fn revoke_token(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let tid = TokenId::parse(&id).map_err(|_| ui(AppError::NotFound))?;
    state.app.revoke_api_token(&p, tid).await.map_err(ui)?;
    Ok(Redirect::to("/admin/users").into_response())
}

// ---------- research and knowledge ----------

async fn research(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    let rows = state.app.research_cohort(&p).await.map_err(ui)?;
    Ok(page(
        &p,
        "Research cohort",
        html! {
            h1 { "De-identified cohort" }
            nav.card aria-label="Research" {
                a href="/research/outcomes" { "Cohort outcomes" } " — response, remission, durability and tolerability, beside the published studies · "
                a href="/research/exports" { "Exports" } " — CSV with a data dictionary, OMOP CDM, FHIR NDJSON"
            }
            p.muted { (rows.len()) " patients. No names, MRNs, dates of birth or contact details are shown; ages are in five-year bands and ids are pseudonyms." }
            table.list #cohort {
                thead { tr { th { "Research id" } th { "Age band" } th { "Sex" } th { "Diagnoses" } th { "BMI" } } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { (r.research_id) } td { (r.age_band) } td { (r.sex.label()) }
                            td { (r.diagnoses.iter().map(|(c, d)| format!("{d} ({c})")).collect::<Vec<_>>().join("; ")) }
                            td { (r.bmi.map(|b| b.normalize().to_string()).unwrap_or_else(|| "—".into())) }
                        }
                    }
                }
            }
        },
    ))
}

async fn knowledge(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    let k = state.app.knowledge();
    Ok(page(
        &p,
        "Clinical rules",
        html! {
            h1 { "Clinical rules in force" }
            p.muted { "Values marked policy are clinic defaults for the medical director to review." }
            p { a href="/instruments" { "Rating scales: definitions, bands, response and remission rules, with their sources" } }
            @for t in &k.tables {
                section.card {
                    h2 { (t.title) " " small.muted { (t.file) " · version " (t.version) } }
                    table.list {
                        thead { tr { th { "Rule" } th { "Value" } th { "Kind" } th { "Source" } } }
                        tbody { @for (key, v) in &t.values { tr { td { (key) } td { (v.value) @if v.unverified { " " span.badge.unverified { "UNVERIFIED" } } } td { @if v.policy { "policy" } @else { "constant" } } td { (v.source) } } } }
                    }
                }
            }
            section.card #screening-conditions {
                h2 { "Screening: conditions and contraindications " small.muted { (k.screening_files.files.first().map(|f| format!("{} · version {}", f.0, f.1)).unwrap_or_default()) } }
                table.list {
                    thead { tr { th { "Condition" } th { "Grade" } th { "What to do" } th { "Source" } } }
                    tbody { @for c in &k.screening.conditions { tr {
                        td { strong { (c.label) } br; small.muted { (c.key) } }
                        td { (c.grade.code()) @if let Some(g) = c.grade_if_controlled { "; " (g.code()) " when controlled" } @if c.policy { " (policy)" } @if c.unverified { " " span.badge.unverified { "UNVERIFIED" } } }
                        td { (c.action) @if let Some(x) = &c.conflict { br; small { "Sources conflict: " (x) } } }
                        td.source { (c.source) }
                    } } }
                }
            }
            section.card #screening-interactions {
                h2 { "Screening: interactions " small.muted { (k.screening_files.files.get(1).map(|f| format!("{} · version {}", f.0, f.1)).unwrap_or_default()) } }
                table.list {
                    thead { tr { th { "Class" } th { "Grade" } th { "Medicines (RxNorm)" } th { "Effect and what to do" } th { "Source" } } }
                    tbody { @for i in &k.screening.interactions { tr {
                        td { strong { (i.class) } @if i.unverified { " " span.badge.unverified { "UNVERIFIED" } } }
                        td { (i.grade.code()) }
                        td { (i.members.iter().map(|m| match &m.rxnorm { Some(r) => format!("{} ({r})", m.name), None => m.name.clone() }).collect::<Vec<_>>().join(", ")) }
                        td { (i.effect) " " (i.action) @if let Some(x) = &i.conflict { br; small { "Sources conflict: " (x) } } }
                        td.source { (i.source) }
                    } } }
                }
                p.small { "No interaction listed: " (k.screening.no_interaction.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")) ". " (k.screening.no_interaction_source) }
            }
            section.card #screening-resistance {
                h2 { "Screening: treatment resistance and inclusion" }
                ul { @for d in &k.screening.resistance { li { strong { (d.label) } @if d.key == k.screening.resistance_in_force { " (in force)" } ": at least " (d.min_pharmacological_failures) " failed adequate pharmacological trials or " (d.min_psychotherapy_failures) " failed adequate CBT course; failure = reduction below " (d.failure_reduction_below_percent) " % on " (d.failure_instruments.join(", ")) ". " span.source { (d.source) } } } }
                ul { @for r in &k.screening.inclusion { li { strong { (r.label) } ". " span.source { (r.source) } } } }
            }
            section.card {
                h2 { "Diagnosis codes " small.muted { "diagnoses.toml · version " (k.diagnoses_version) } }
                ul { @for d in &k.diagnoses { li { (d.snomed.display()) " — SNOMED CT " (d.snomed.code()) @if let Some(i) = &d.icd10 { ", ICD-10-CM " (i.code()) } @if let Some(c) = &d.caveat { " (" (c) ")" } } } }
            }
        },
    ))
}
