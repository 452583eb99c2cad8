//! Care teams, emergency ("break-glass") access and its review: pages and API.

use crate::api::{json, pid as api_pid};
use crate::error::{Problem, WebError};
use crate::extract::Auth;
use crate::forms::{f, Fields};
use crate::pages::{check_csrf, pid, ui, PageResult};
use crate::views::{csrf, error_summary, input, layout, textarea};
use crate::AppState;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use ketacare_app::access::{EmergencyAccessReport, PatientAccess, TeamMember};
use ketacare_app::{AppError, Principal};
use ketacare_db::EmergencyAccess;
use ketacare_domain::access::{ChartScope, Permission, EMERGENCY_ACCESS_HOURS};
use ketacare_domain::ids::{PatientId, UserId};
use ketacare_domain::validation::FieldErrors;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/emergency-access", get(emergency_form).post(emergency_open))
        .route("/patients/{id}/care-team", get(team_page).post(team_add))
        .route("/patients/{id}/care-team/{uid}/remove", post(team_remove))
        .route("/access", get(access_page))
        .route("/access/scope", post(set_scope))
        .route("/access/emergency/{gid}/review", post(review))
        .route("/api/patients/{id}/emergency-access", post(api_open))
        .route("/api/patients/{id}/care-team", get(api_team).post(api_team_add))
        .route("/api/patients/{id}/care-team/{uid}/remove", post(api_team_remove))
        .route("/api/emergency-access", get(api_list))
        .route("/api/emergency-access/{gid}/review", post(api_review))
        .route("/api/policy/chart-scope", get(api_scope).post(api_set_scope))
}

use crate::views::minute_utc as when;

/// The page shown instead of a chart outside the viewer's care teams.
pub(crate) fn outside_page(id: PatientId) -> Markup {
    layout(
        None,
        "Outside your care team",
        html! {
            section.card.narrow {
                h1 { "This patient is not on your care team" }
                p { "The clinic opens charts to the clinicians on the patient's care team. A member of the team or the medical director can add you." }
                p { "If you need this chart now, for the patient's care, you can open it in an emergency. You will be asked why; the access lasts "
                    (EMERGENCY_ACCESS_HOURS) " hours, is recorded in the audit trail, and the medical director reviews it." }
                p { a.button href=(format!("/patients/{id}/emergency-access")) { "Emergency access…" } " " a href="/patients" { "Back to my patients" } }
            }
        },
    )
}

/// A banner for a chart opened in an emergency.
pub(crate) fn emergency_banner(access: &PatientAccess) -> Markup {
    html! {
        @if let PatientAccess::Emergency(g) = access {
            div.alert.alert-warning role="status" data-testid="emergency-banner" {
                strong { "Emergency access" } " until " (when(g.expires_at)) ". Your reason: “" (g.reason) "”. Everything you open is recorded and the medical director reviews it."
            }
        }
    }
}

fn emergency_page(p: &Principal, id: PatientId, label: Option<&str>, values: &Fields, errors: &FieldErrors) -> Markup {
    layout(
        Some(p),
        "Emergency access",
        html! {
            section.card.narrow {
                h1 { "Emergency access" }
                @match label {
                    Some(l) => p { "Patient: " strong data-testid="emergency-patient" { (l) } },
                    None => p data-testid="emergency-patient" { "The patient you followed a link to. Their name is shown once the chart opens; to see it first, search for their MRN under Patients." },
                }
                p { "This patient is outside your care teams. Open the chart only if you need it now for the patient's care. The access lasts "
                    (EMERGENCY_ACCESS_HOURS) " hours; it is flagged in the audit trail with your reason, and the medical director reviews it." }
                (error_summary(errors))
                form method="post" action=(format!("/patients/{id}/emergency-access")) {
                    (csrf(p))
                    input type="hidden" name="mrn" value=(values.get("mrn").map(String::as_str).unwrap_or(""));
                    (textarea("reason", "Why do you need this chart now?", values, errors))
                    button.danger type="submit" { "Open the chart (emergency)" }
                }
                p { a href="/patients" { "Cancel" } }
            }
        },
    )
}

#[derive(Deserialize)]
struct TargetQuery {
    mrn: Option<String>,
}

async fn emergency_form(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Query(q): Query<TargetQuery>) -> PageResult {
    let id = pid(&id)?;
    let mrn = q.mrn.unwrap_or_default();
    let label = state.app.emergency_target(&p, id, &mrn).await.map_err(ui)?;
    let values: Fields = [("mrn".to_owned(), mrn)].into_iter().collect();
    Ok(emergency_page(&p, id, label.as_deref(), &values, &FieldErrors::new()).into_response())
}

async fn emergency_open(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let id = pid(&id)?;
    match state.app.grant_emergency_access(&p, id, &f(&form, "reason")).await {
        Ok(_) | Err(AppError::Conflict(_)) => Ok(Redirect::to(&format!("/patients/{id}")).into_response()),
        Err(AppError::Validation(e)) => {
            let label = state.app.emergency_target(&p, id, &f(&form, "mrn")).await.map_err(ui)?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, emergency_page(&p, id, label.as_deref(), &form, &e)).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

// ---------------------------------------------------------------- care team

async fn render_team(state: &AppState, p: &Principal, id: PatientId, values: &Fields, errors: &FieldErrors) -> Result<Markup, WebError> {
    let access = state.app.authorize_patient(p, id).await.map_err(ui)?;
    let patient = state.app.patient(p, id).await.map_err(ui)?;
    let team = state.app.care_team(p, id).await.map_err(ui)?;
    let scope = state.app.chart_scope().await.map_err(ui)?;
    let can_change = p.can(Permission::WriteDemographics) && access == PatientAccess::Usual;
    let d = &patient.demographics;
    Ok(layout(
        Some(p),
        "Care team",
        html! {
            p { a href=(format!("/patients/{id}")) { "← Chart" } }
            h1 { "Care team of " (d.name.display()) }
            (emergency_banner(&access))
            p.muted {
                @match scope {
                    ChartScope::All => "The clinic's chart scope is “every clinician sees every chart”: the care team is kept for when the medical director narrows it.",
                    ChartScope::CareTeam => "The clinic's chart scope is “care team”: nurses and prescribers open the charts of the patients whose team they are on; the medical director sees every chart.",
                }
            }
            section.card {
                h2 { "Members" }
                @if team.is_empty() { p.muted { "Nobody is on this patient's care team yet." } }
                @else {
                    table data-testid="care-team" {
                        thead { tr { th { "Clinician" } th { "Role" } th { "Added" } @if can_change { th { "Remove" } } } }
                        tbody {
                            @for m in &team { (member_row(p, id, m, can_change)) }
                        }
                    }
                }
            }
            @if can_change {
                section.card {
                    h2 { "Add a clinician" }
                    (error_summary(errors))
                    form method="post" action=(format!("/patients/{id}/care-team")) {
                        (csrf(p))
                        (input("username", "Username", values, errors, "text", Some("A prescriber, nurse or medical director of this clinic.")))
                        button.primary type="submit" { "Add to the care team" }
                    }
                }
            }
        },
    ))
}

fn member_row(p: &Principal, id: PatientId, m: &TeamMember, can_change: bool) -> Markup {
    let (name, role) = match &m.user {
        Some(u) => (format!("{} ({})", u.display_name, u.username.as_str()), u.role.label()),
        None => (m.membership.user_id.to_string(), ""),
    };
    html! {
        tr {
            td { (name) }
            td { (role) }
            td { (when(m.membership.added_at)) " by " (m.membership.added_by_name) }
            @if can_change {
                td {
                    form.inline method="post" action=(format!("/patients/{id}/care-team/{}/remove", m.membership.user_id)) {
                        (csrf(p))
                        label { "Reason " input name="reason" required minlength="3" aria-label=(format!("Reason to remove {name}")); }
                        " " button type="submit" { "Remove" }
                    }
                }
            }
        }
    }
}

async fn team_page(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> PageResult {
    let id = pid(&id)?;
    Ok(render_team(&state, &p, id, &Fields::new(), &FieldErrors::new()).await?.into_response())
}

async fn team_add(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let id = pid(&id)?;
    match state.app.add_to_care_team(&p, id, &f(&form, "username")).await {
        Ok(_) => Ok(Redirect::to(&format!("/patients/{id}/care-team")).into_response()),
        Err(AppError::Validation(e)) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render_team(&state, &p, id, &form, &e).await?).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn team_remove(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, uid)): Path<(String, String)>,
    Form(form): Form<Fields>,
) -> PageResult {
    check_csrf(&p, &form)?;
    let id = pid(&id)?;
    let uid = UserId::parse(&uid).map_err(|_| ui(AppError::NotFound))?;
    match state.app.remove_from_care_team(&p, id, uid, &f(&form, "reason")).await {
        Ok(()) => Ok(Redirect::to(&format!("/patients/{id}/care-team")).into_response()),
        Err(AppError::Validation(e)) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render_team(&state, &p, id, &Fields::new(), &e).await?).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

// ---------------------------------------------------------------- the director's review

#[derive(Deserialize, IntoParams)]
struct ListQuery {
    /// `true`: the latest 200 of all, reviewed ones included (default: those waiting for review).
    all: Option<bool>,
}

async fn render_access(state: &AppState, p: &Principal, all: bool, values: &Fields, errors: &FieldErrors) -> Result<Markup, WebError> {
    if !p.can(Permission::ReviewEmergencyAccess) {
        return Err(ui(AppError::Forbidden));
    }
    let scope = state.app.chart_scope().await.map_err(ui)?;
    let reports = state.app.emergency_accesses(p, all).await.map_err(ui)?;
    let checked =
        |s: ChartScope| if values.get("value").map(String::as_str).unwrap_or(scope.code()) == s.code() { Some("checked") } else { None };
    Ok(layout(
        Some(p),
        "Chart access",
        html! {
            h1 { "Chart access" }
            section.card id="scope" {
                h2 { "Who opens which charts" }
                p { "Now: " strong data-testid="chart-scope" { @match scope { ChartScope::All => "every clinician sees every chart", ChartScope::CareTeam => "care team" } } }
                (error_summary(errors))
                form method="post" action="/access/scope" {
                    (csrf(p))
                    fieldset {
                        legend { "Chart scope" }
                        div.choices.stacked {
                            label.choice { input type="radio" name="value" value="all" checked=[checked(ChartScope::All)]; "Every clinician sees every chart" }
                            label.choice { input type="radio" name="value" value="care_team" checked=[checked(ChartScope::CareTeam)]; "Care team: nurses and prescribers open their care teams' charts; any other chart only in an emergency, with a reason" }
                        }
                    }
                    (textarea("reason", "Reason for the change", values, errors))
                    button.primary type="submit" { "Save the chart scope" }
                }
                p.muted { "You, as medical director, always see every chart. The clinician who registers a patient joins the care team; anyone on the team can add others." }
            }
            section.card id="emergency" {
                div.row-between {
                    h2 { @if all { "Emergency accesses (latest 200)" } @else { "Emergency accesses waiting for review" } }
                    @if all { a href="/access" { "Show those waiting for review" } } @else { a href="/access?all=true" { "Show all" } }
                }
                @if reports.is_empty() { p.muted data-testid="no-emergency" { "None." } }
                @for r in &reports { (report(p, r)) }
            }
        },
    ))
}

fn report(p: &Principal, r: &EmergencyAccessReport) -> Markup {
    let g = &r.access;
    html! {
        article.card data-testid="emergency-access" {
            h3 { (g.username) " opened " (r.patient_label) }
            p { (when(g.granted_at)) " to " (when(g.expires_at)) ". Reason: “" (g.reason) "”" }
            details {
                summary { "What was done under it (" (r.trail.len()) " audit entries)" }
                table {
                    thead { tr { th { "#" } th { "When" } th { "Action" } th { "What" } th { "Outcome" } } }
                    tbody {
                        @for e in &r.trail {
                            tr { td { (e.seq) } td { (when(e.event.recorded_at)) } td { (e.event.action.code()) } td { (e.event.entity_type) " " (e.event.detail.clone().unwrap_or_default()) } td { (e.event.outcome.code()) } }
                        }
                    }
                }
            }
            @match &g.review {
                Some(rv) => p { "Reviewed by " (rv.by_name) " on " (when(rv.at)) ": “" (rv.note) "”" },
                None => form method="post" action=(format!("/access/emergency/{}/review", g.id)) {
                    (csrf(p))
                    label { "Review note " input name="note" required minlength="3" aria-label=(format!("Review note for {}", g.username)); }
                    " " button type="submit" { "Mark reviewed" }
                },
            }
        }
    }
}

async fn access_page(State(state): State<AppState>, Auth(p): Auth, Query(q): Query<ListQuery>) -> PageResult {
    Ok(render_access(&state, &p, q.all.unwrap_or(false), &Fields::new(), &FieldErrors::new()).await?.into_response())
}

async fn set_scope(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.set_chart_scope(&p, &f(&form, "value"), &f(&form, "reason")).await {
        Ok(_) => Ok(Redirect::to("/access#scope").into_response()),
        Err(AppError::Validation(e)) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render_access(&state, &p, false, &form, &e).await?).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn review(State(state): State<AppState>, Auth(p): Auth, Path(gid): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.review_emergency_access(&p, &gid, &f(&form, "note")).await {
        Ok(_) => Ok(Redirect::to("/access#emergency").into_response()),
        Err(AppError::Validation(e)) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render_access(&state, &p, false, &Fields::new(), &e).await?).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

// ---------------------------------------------------------------- API

/// An emergency ("break-glass") access.
#[derive(Serialize, ToSchema)]
pub struct EmergencyAccessDto {
    id: String,
    patient_id: String,
    username: String,
    reason: String,
    /// When it was granted (UTC, RFC 3339).
    granted_at: String,
    /// When it ends (UTC, RFC 3339).
    expires_at: String,
    /// The medical director's review, once done.
    review: Option<ReviewDto>,
}

/// A review of an emergency access.
#[derive(Serialize, ToSchema)]
pub struct ReviewDto {
    by: String,
    at: String,
    note: String,
}

/// An emergency access with the audit entries of what was done under it.
#[derive(Serialize, ToSchema)]
pub struct EmergencyAccessReportDto {
    access: EmergencyAccessDto,
    /// The patient's MRN and name.
    patient: String,
    /// Audit entries of that clinician on that patient while the access was in force.
    audit_entries: usize,
    /// Their sequence numbers in the audit trail.
    audit_seqs: Vec<i64>,
}

/// A member of a patient's care team.
#[derive(Serialize, ToSchema)]
pub struct CareTeamMemberDto {
    user_id: String,
    username: Option<String>,
    display_name: Option<String>,
    role: Option<String>,
    added_by: String,
    added_at: String,
}

/// Why an emergency access is needed.
#[derive(Deserialize, ToSchema)]
pub struct EmergencyRequest {
    /// At least 10 characters; the medical director reviews it.
    reason: String,
}

/// A clinician to add to a care team.
#[derive(Deserialize, ToSchema)]
pub struct TeamAddRequest {
    /// Username of an active prescriber, nurse or medical director.
    username: String,
}

/// A reason (removal from a care team).
#[derive(Deserialize, ToSchema)]
pub struct ReasonRequest {
    reason: String,
}

/// A review note.
#[derive(Deserialize, ToSchema)]
pub struct ReviewRequest {
    note: String,
}

/// The clinic's chart scope.
#[derive(Serialize, ToSchema)]
pub struct ChartScopeDto {
    /// `all` or `care_team`.
    scope: String,
}

/// A new chart scope.
#[derive(Deserialize, ToSchema)]
pub struct ChartScopeRequest {
    /// `all` (every clinician sees every chart) or `care_team`.
    value: String,
    /// Why (recorded with the change).
    reason: String,
}

fn access_dto(g: &EmergencyAccess) -> EmergencyAccessDto {
    EmergencyAccessDto {
        id: g.id.to_string(),
        patient_id: g.patient_id.to_string(),
        username: g.username.clone(),
        reason: g.reason.clone(),
        granted_at: g.granted_at.to_rfc3339(),
        expires_at: g.expires_at.to_rfc3339(),
        review: g.review.as_ref().map(|r| ReviewDto { by: r.by_name.clone(), at: r.at.to_rfc3339(), note: r.note.clone() }),
    }
}

fn member_dto(m: &TeamMember) -> CareTeamMemberDto {
    CareTeamMemberDto {
        user_id: m.membership.user_id.to_string(),
        username: m.user.as_ref().map(|u| u.username.as_str().to_owned()),
        display_name: m.user.as_ref().map(|u| u.display_name.clone()),
        role: m.user.as_ref().map(|u| u.role.code().to_owned()),
        added_by: m.membership.added_by_name.clone(),
        added_at: m.membership.added_at.to_rfc3339(),
    }
}

#[utoipa::path(post, path = "/api/patients/{id}/emergency-access", params(("id" = String, Path, description = "Patient id")), request_body = EmergencyRequest, responses(
    (status = 201, body = EmergencyAccessDto, description = "The chart is open to the caller until expires_at; flagged in the audit trail for the medical director's review"),
    (status = 200, body = EmergencyAccessDto, description = "An emergency access to this chart was in force already"),
    (status = 404, body = Problem), (status = 409, body = Problem, description = "The chart is in the caller's scope; no emergency access is needed"),
    (status = 422, body = Problem)), tag = "patients")]
async fn api_open(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<EmergencyAccessDto>), WebError> {
    let id = api_pid(&id)?;
    let r: EmergencyRequest = json(req, &state).await?;
    let (g, created) = state.app.grant_emergency_access(&p, id, &r.reason).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(access_dto(&g))))
}

#[utoipa::path(get, path = "/api/patients/{id}/care-team", params(("id" = String, Path, description = "Patient id")), responses(
    (status = 200, body = [CareTeamMemberDto]), (status = 403, body = Problem), (status = 404, body = Problem)), tag = "patients")]
async fn api_team(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> Result<Json<Vec<CareTeamMemberDto>>, WebError> {
    let team = state.app.care_team(&p, api_pid(&id)?).await?;
    Ok(Json(team.iter().map(member_dto).collect()))
}

#[utoipa::path(post, path = "/api/patients/{id}/care-team", params(("id" = String, Path, description = "Patient id")), request_body = TeamAddRequest, responses(
    (status = 201, body = CareTeamMemberDto), (status = 403, body = Problem, description = "Not on the team (nor the medical director), or the chart is open through an emergency access"),
    (status = 404, body = Problem), (status = 422, body = Problem)), tag = "patients")]
async fn api_team_add(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<CareTeamMemberDto>), WebError> {
    let id = api_pid(&id)?;
    let r: TeamAddRequest = json(req, &state).await?;
    let m = state.app.add_to_care_team(&p, id, &r.username).await?;
    Ok((StatusCode::CREATED, Json(member_dto(&m))))
}

#[utoipa::path(post, path = "/api/patients/{id}/care-team/{user_id}/remove", params(("id" = String, Path, description = "Patient id"), ("user_id" = String, Path, description = "The member's user id")), request_body = ReasonRequest, responses(
    (status = 204, description = "Removed; the membership is kept with who removed it, when and why"), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)), tag = "patients")]
async fn api_team_remove(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((id, uid)): Path<(String, String)>,
    req: Request,
) -> Result<StatusCode, WebError> {
    let id = api_pid(&id)?;
    let uid = UserId::parse(&uid).map_err(|_| WebError::api(AppError::NotFound))?;
    let r: ReasonRequest = json(req, &state).await?;
    state.app.remove_from_care_team(&p, id, uid, &r.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/emergency-access", params(ListQuery), responses(
    (status = 200, body = [EmergencyAccessReportDto]), (status = 403, body = Problem, description = "Medical director only")), tag = "admin")]
async fn api_list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<EmergencyAccessReportDto>>, WebError> {
    let reports = state.app.emergency_accesses(&p, q.all.unwrap_or(false)).await?;
    Ok(Json(
        reports
            .iter()
            .map(|r| EmergencyAccessReportDto {
                access: access_dto(&r.access),
                patient: r.patient_label.clone(),
                audit_entries: r.trail.len(),
                audit_seqs: r.trail.iter().map(|e| e.seq).collect(),
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/emergency-access/{id}/review", params(("id" = String, Path, description = "Emergency access id")), request_body = ReviewRequest, responses(
    (status = 200, body = EmergencyAccessDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem, description = "Already reviewed"), (status = 422, body = Problem)), tag = "admin")]
async fn api_review(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(gid): Path<String>,
    req: Request,
) -> Result<Json<EmergencyAccessDto>, WebError> {
    let r: ReviewRequest = json(req, &state).await?;
    Ok(Json(access_dto(&state.app.review_emergency_access(&p, &gid, &r.note).await?)))
}

#[utoipa::path(get, path = "/api/policy/chart-scope", responses((status = 200, body = ChartScopeDto), (status = 401, body = Problem)), tag = "admin")]
async fn api_scope(State(state): State<AppState>, Auth(_p): Auth) -> Result<Json<ChartScopeDto>, WebError> {
    Ok(Json(ChartScopeDto { scope: state.app.chart_scope().await?.code().to_owned() }))
}

#[utoipa::path(post, path = "/api/policy/chart-scope", request_body = ChartScopeRequest, responses(
    (status = 200, body = ChartScopeDto), (status = 403, body = Problem, description = "Medical director only"), (status = 422, body = Problem)), tag = "admin")]
async fn api_set_scope(State(state): State<AppState>, Auth(p): Auth, req: Request) -> Result<Json<ChartScopeDto>, WebError> {
    let r: ChartScopeRequest = json(req, &state).await?;
    Ok(Json(ChartScopeDto { scope: state.app.set_chart_scope(&p, &r.value, &r.reason).await?.code().to_owned() }))
}

/// The OpenAPI paths of this module.
#[derive(OpenApi)]
#[openapi(paths(api_open, api_team, api_team_add, api_team_remove, api_list, api_review, api_scope, api_set_scope))]
pub struct AccessDoc;
