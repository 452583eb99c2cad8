//! Two-step sign-in on the web: the code page of a login, enrolment with a QR code, recovery
//! codes, the caller's Account page, the clinic policy of which roles must use it, and the
//! administrator's reset; with their JSON API twins.
//!
//! Between the password and the code the browser holds only a short-lived challenge cookie
//! (`Path=/login`, five minutes); the session cookie is set when the code is right.

use crate::api::{json, UserDto};
use crate::error::{Problem, WebError};
use crate::extract::{client_addr, cookie, Auth};
use crate::forms::{f, Fields};
use crate::pages::{check_csrf, ui, PageResult};
use crate::views::{csrf, error_summary, input, layout, textarea};
use crate::AppState;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use ketacare_app::{AppError, Enrolment, LoginStep, Principal, SignedIn};
use ketacare_domain::access::{Permission, Role};
use ketacare_domain::ids::UserId;
use ketacare_domain::mfa::{MfaPolicy, CHALLENGE_MINUTES};
use ketacare_domain::validation::FieldErrors;
use maud::{html, Markup, PreEscaped};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login/code", get(code_page).post(submit_code))
        .route("/account", get(account_page))
        .route("/account/mfa/enrol", post(begin_enrolment))
        .route("/account/mfa/confirm", post(confirm_enrolment))
        .route("/account/mfa/recovery-codes", post(new_recovery_codes))
        .route("/account/mfa-policy", post(set_policy))
        .route("/admin/users/{id}/reset-mfa", post(reset_mfa))
        .route("/api/login/code", post(api_code))
        .route("/api/account/mfa", get(api_status))
        .route("/api/account/mfa/enrol", post(api_enrol))
        .route("/api/account/mfa/confirm", post(api_confirm))
        .route("/api/account/mfa/recovery-codes", post(api_recovery_codes))
        .route("/api/policy/mfa", get(api_policy).post(api_set_policy))
        .route("/api/admin/users/{id}/reset-mfa", post(api_reset))
}

// ---------- the pending sign-in cookie ----------

fn signin_cookie_name(state: &AppState) -> &'static str {
    if state.config.secure_cookies {
        "__Secure-ketacare_signin"
    } else {
        "ketacare_signin"
    }
}

/// The `Set-Cookie` value of the pending sign-in (only `/login…` paths see it).
pub(crate) fn signin_cookie(state: &AppState, token: &str, max_age: i64) -> String {
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    format!("{}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}", signin_cookie_name(state))
}

/// The answer to a right password on the login page: straight in, or on to the code page.
pub(crate) fn after_password(state: &AppState, step: LoginStep) -> Response {
    match step {
        LoginStep::SignedIn { token, .. } => {
            let cookie = state.session_cookie(&token, state.app.settings().session_absolute.num_seconds());
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        LoginStep::CodeNeeded { challenge } | LoginStep::EnrolmentNeeded { challenge, .. } => {
            ([(header::SET_COOKIE, signin_cookie(state, &challenge, CHALLENGE_MINUTES * 60))], Redirect::to("/login/code")).into_response()
        }
    }
}

// ---------- views ----------

/// The otpauth:// address as an inline SVG QR code.
fn qr_svg(uri: &str) -> Markup {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build();
            // The renderer starts with an XML declaration, which has no place inside HTML.
            let svg = svg.find("<svg").map(|i| svg[i..].to_owned()).unwrap_or_default();
            html! { div.qr role="img" aria-label="QR code of the key for your authenticator app" { (PreEscaped(svg)) } }
        }
        Err(_) => html! { p.muted { "The QR code could not be drawn; type the key below into your app." } },
    }
}

fn grouped(secret: &str) -> String {
    secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

fn enrol_steps(e: &Enrolment) -> Markup {
    html! {
        ol.steps {
            li { "Open an authenticator app on your phone (any app for time-based codes, TOTP)." }
            li {
                "Scan this QR code with it, or type in the key by hand."
                (qr_svg(&e.otpauth_uri))
                p { "Key: " code #totp-secret data-secret=(e.secret) { (grouped(&e.secret)) } }
            }
            li { "Type the 6-digit code the app now shows." }
        }
    }
}

fn code_field(errors: &FieldErrors, label: &str) -> Markup {
    let err = errors.for_field("code");
    html! {
        div.field.invalid[err.is_some()] {
            label for="f-code" { (label) }
            input #f-code name="code" autocomplete="one-time-code" inputmode="text" autocapitalize="characters" spellcheck="false" required autofocus aria-invalid=[err.map(|_| "true")];
            @if let Some(e) = err { p.error role="alert" { "The code " (e) } }
        }
    }
}

fn code_page_markup(enrolment: Option<&Enrolment>, errors: &FieldErrors) -> Markup {
    let title = if enrolment.is_some() { "Set up two-step sign-in" } else { "Enter your sign-in code" };
    layout(
        None,
        title,
        html! {
            section.card.narrow {
                h1 { (title) }
                @if let Some(e) = enrolment {
                    p { "Your clinic requires a second step at sign-in for your role. Set it up once now; from then on you sign in with your password and a code from your phone." }
                    (enrol_steps(e))
                } @else {
                    p { "Open your authenticator app and type the 6-digit code it shows for Ketacare. If you have lost your phone, type one of your recovery codes instead." }
                }
                form method="post" action="/login/code" novalidate {
                    (code_field(errors, if enrolment.is_some() { "Code from the app" } else { "Code (or a recovery code)" }))
                    button.primary type="submit" { "Sign in" }
                }
                p.muted { "This step stays open for " (CHALLENGE_MINUTES) " minutes. " a href="/login" { "Start again" } }
            }
        },
    )
}

fn recovery_codes_markup(p: &Principal, codes: &[String], then: &str) -> Markup {
    layout(
        Some(p),
        "Recovery codes",
        html! {
            section.card.narrow {
                h1 { "Your recovery codes" }
                div.alert.alert-warning role="alert" {
                    "Store these now, somewhere safe away from your phone (print them, or keep them in a password manager). They are shown only once. Each works once, in place of a code, if you lose your phone. Earlier recovery codes no longer work."
                }
                ul #recovery-codes.codes { @for c in codes { li { code { (c) } } } }
                a.button.primary href=(then) { "I have stored them – continue" }
            }
        },
    )
}

fn account_markup(
    p: &Principal,
    status: &ketacare_app::MfaStatus,
    policy: Option<&MfaPolicy>,
    values: &Fields,
    errors: &FieldErrors,
    enrolment: Option<(&str, &Enrolment)>,
) -> Markup {
    html! {
        h1 { "Your account" }
        p { (p.user.display_name) " · " (p.user.username.as_str()) " · " (p.role().label()) }
        section.card #two-step {
            h2 { "Two-step sign-in" }
            @if let Some(at) = status.enrolled_at {
                p #mfa-status { strong { "On" } " since " (crate::views::minute(at)) " UTC. You have " (status.recovery_codes_left) " unused recovery code" @if status.recovery_codes_left != 1 { "s" } "." }
            } @else if status.required {
                p #mfa-status { strong { "Required for your role" } " and not set up yet: set it up below." }
            } @else {
                p #mfa-status { strong { "Off." } " Your clinic does not require it for your role; setting it up protects your account if your password is ever guessed or stolen." }
            }
            @if let Some((challenge, e)) = enrolment {
                h3 { "Set up a new authenticator" }
                (enrol_steps(e))
                (error_summary(errors))
                form method="post" action="/account/mfa/confirm" novalidate {
                    (csrf(p))
                    input type="hidden" name="challenge" value=(challenge);
                    (code_field(errors, "Code from the app"))
                    button.primary type="submit" { "Confirm" }
                }
                @if status.enrolled_at.is_some() { p.muted { "Your current authenticator keeps working until you confirm the new one." } }
            } @else {
                (error_summary(errors))
                form method="post" action="/account/mfa/enrol" novalidate {
                    (csrf(p))
                    (input("password", "Your password (to confirm it is you)", &Fields::new(), errors, "password", None))
                    @if status.enrolled_at.is_some() {
                        (input("code", "Code from your current app (or a recovery code)", &Fields::new(), errors, "text", None))
                    }
                    button.primary type="submit" { @if status.enrolled_at.is_some() { "Move to a new phone" } @else { "Set up two-step sign-in" } }
                }
                @if status.enrolled_at.is_some() {
                    form method="post" action="/account/mfa/recovery-codes" novalidate {
                        (csrf(p))
                        (input("recovery_password", "Your password", &Fields::new(), errors, "password", Some("New recovery codes replace all earlier ones")))
                        (input("recovery_code", "Code from your app (or a recovery code)", &Fields::new(), errors, "text", None))
                        button type="submit" { "Get new recovery codes" }
                    }
                }
            }
        }
        @if let Some(policy) = policy {
            section.card #policy {
                h2 { "Clinic policy: who must use two-step sign-in" }
                p.muted { "Clinic policy, versioned and audited. The default requires it of administrators, the medical director and prescribers: the roles that manage accounts, change clinic policy or order a controlled drug. API tokens issued by an administrator are not asked for a code." }
                form method="post" action="/account/mfa-policy" novalidate {
                    (csrf(p))
                    fieldset {
                        legend { "Roles that must use it" }
                        @for r in Role::ALL {
                            @let name = format!("role_{}", r.code());
                            @let checked = if values.is_empty() { policy.requires(r) } else { values.contains_key(&name) };
                            label.check { input type="checkbox" name=(name) value="1" checked[checked]; " " (r.label()) }
                        }
                    }
                    (textarea("reason", "Reason for the change", values, errors))
                    (input("policy_password", "Your password (to confirm it is you)", &Fields::new(), errors, "password", None))
                    @if status.enrolled_at.is_some() {
                        (input("policy_code", "Code from your app (or a recovery code)", &Fields::new(), errors, "text", None))
                    }
                    button.primary type="submit" { "Save policy" }
                }
            }
        }
    }
}

async fn render_account(
    state: &AppState,
    p: &Principal,
    values: &Fields,
    errors: &FieldErrors,
    enrolment: Option<(&str, &Enrolment)>,
) -> Result<Response, WebError> {
    let status = state.app.mfa_status(p).await.map_err(ui)?;
    let policy = if p.can(Permission::ManagePolicy) { Some(state.app.mfa_policy().await.map_err(ui)?) } else { None };
    Ok(layout(Some(p), "Account", account_markup(p, &status, policy.as_ref(), values, errors, enrolment)).into_response())
}

// ---------- page handlers ----------

async fn code_page(State(state): State<AppState>, req: Request) -> PageResult {
    let (parts, _) = req.into_parts();
    let Some(challenge) = cookie(&parts, signin_cookie_name(&state)) else {
        return Ok(Redirect::to("/login?signin=expired").into_response());
    };
    match state.app.pending_sign_in(&challenge).await.map_err(ui)? {
        None => Ok(([(header::SET_COOKIE, signin_cookie(&state, "", 0))], Redirect::to("/login?signin=expired")).into_response()),
        Some(enrolment) => Ok(code_page_markup(enrolment.as_ref(), &FieldErrors::new()).into_response()),
    }
}

async fn submit_code(State(state): State<AppState>, req: Request) -> PageResult {
    let (parts, body) = req.into_parts();
    let addr = client_addr(&parts);
    let challenge = cookie(&parts, signin_cookie_name(&state));
    let Form(form): Form<Fields> = Form::from_request(Request::from_parts(parts, body), &state)
        .await
        .map_err(|_| ui(AppError::Validation(FieldErrors::single("form", "could not be read"))))?;
    let Some(challenge) = challenge else { return Ok(Redirect::to("/login?signin=expired").into_response()) };
    let expired = || ([(header::SET_COOKIE, signin_cookie(&state, "", 0))], Redirect::to("/login?signin=expired")).into_response();
    match state.app.complete_login(&challenge, &f(&form, "code"), addr).await {
        Ok(SignedIn { token, principal, recovery_codes, recovery_codes_left }) => {
            let session = state.session_cookie(&token, state.app.settings().session_absolute.num_seconds());
            let mut r = if !recovery_codes.is_empty() {
                recovery_codes_markup(&principal, &recovery_codes, "/").into_response()
            } else if let Some(left) = recovery_codes_left {
                layout(
                    Some(&principal),
                    "Recovery code used",
                    html! {
                        section.card.narrow {
                            h1 { "You signed in with a recovery code" }
                            div.alert.alert-warning role="alert" #codes-left {
                                "That code is now used up. You have " (left) " left. If you have lost your phone, set up a new one on your Account page."
                            }
                            a.button.primary href="/account" { "Go to my account" } " " a.button href="/" { "Continue" }
                        }
                    },
                )
                .into_response()
            } else {
                Redirect::to("/").into_response()
            };
            let h = r.headers_mut();
            for c in [session, signin_cookie(&state, "", 0)] {
                if let Ok(v) = header::HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            Ok(r)
        }
        Err(AppError::Validation(e)) => {
            let enrolment = state.app.pending_sign_in(&challenge).await.map_err(ui)?;
            match enrolment {
                None => Ok(expired()),
                Some(en) => Ok((StatusCode::UNPROCESSABLE_ENTITY, code_page_markup(en.as_ref(), &e)).into_response()),
            }
        }
        Err(AppError::SignInAgain) => Ok(expired()),
        Err(AppError::Unauthenticated) => {
            Ok(([(header::SET_COOKIE, signin_cookie(&state, "", 0))], Redirect::to("/login?signin=locked")).into_response())
        }
        Err(AppError::RateLimited { retry_after_secs }) => Ok((
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            crate::views::error_page(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many failed sign-ins from this computer's network address. Try again in {}.",
                    crate::error::wait_words(retry_after_secs)
                ),
            ),
        )
            .into_response()),
        Err(e) => Err(ui(e)),
    }
}

async fn account_page(State(state): State<AppState>, Auth(p): Auth) -> PageResult {
    render_account(&state, &p, &Fields::new(), &FieldErrors::new(), None).await
}

async fn begin_enrolment(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.begin_mfa_enrolment(&p, &f(&form, "password"), &f(&form, "code")).await {
        Ok((challenge, e)) => render_account(&state, &p, &Fields::new(), &FieldErrors::new(), Some((&challenge, &e))).await,
        Err(AppError::Validation(e)) => {
            let r = render_account(&state, &p, &Fields::new(), &e, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, r).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn confirm_enrolment(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let challenge = f(&form, "challenge");
    match state.app.confirm_mfa_enrolment(&p, &challenge, &f(&form, "code")).await {
        Ok(codes) => Ok(recovery_codes_markup(&p, &codes, "/account").into_response()),
        Err(AppError::Validation(e)) => {
            // Show the same secret again while the enrolment is open.
            let pending = state.app.pending_sign_in(&challenge).await.map_err(ui)?.flatten();
            let r = match &pending {
                Some(en) => render_account(&state, &p, &Fields::new(), &e, Some((&challenge, en))).await?,
                None => render_account(&state, &p, &Fields::new(), &e, None).await?,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, r).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn new_recovery_codes(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state.app.new_recovery_codes(&p, &f(&form, "recovery_password"), &f(&form, "recovery_code")).await {
        Ok(codes) => Ok(recovery_codes_markup(&p, &codes, "/account").into_response()),
        Err(AppError::Validation(e)) => {
            // The errors are shown against this form's own fields.
            let mut shown = FieldErrors::new();
            for x in e.iter() {
                let field = match x.field.as_str() {
                    "password" => "recovery_password",
                    "code" => "recovery_code",
                    other => other,
                };
                shown.add(field, x.message.clone());
            }
            let r = render_account(&state, &p, &Fields::new(), &shown, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, r).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

fn policy_value(form: &Fields) -> String {
    let roles: Vec<&str> = Role::ALL.iter().filter(|r| form.contains_key(&format!("role_{}", r.code()))).map(|r| r.code()).collect();
    if roles.is_empty() {
        "none".into()
    } else {
        roles.join(",")
    }
}

async fn set_policy(State(state): State<AppState>, Auth(p): Auth, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    match state
        .app
        .set_mfa_policy(&p, &policy_value(&form), &f(&form, "reason"), &f(&form, "policy_password"), &f(&form, "policy_code"))
        .await
    {
        Ok(_) => Ok(Redirect::to("/account#policy").into_response()),
        Err(AppError::Validation(e)) => {
            let mut values = form.clone();
            values.insert("_submitted".into(), "1".into());
            // The errors are shown against this form's own fields.
            let mut shown = FieldErrors::new();
            for x in e.iter() {
                let field = match x.field.as_str() {
                    "password" => "policy_password",
                    "code" => "policy_code",
                    other => other,
                };
                shown.add(field, x.message.clone());
            }
            let r = render_account(&state, &p, &values, &shown, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, r).into_response())
        }
        Err(e) => Err(ui(e)),
    }
}

async fn reset_mfa(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>, Form(form): Form<Fields>) -> PageResult {
    check_csrf(&p, &form)?;
    let uid = UserId::parse(&id).map_err(|_| ui(AppError::NotFound))?;
    state.app.reset_mfa(&p, uid).await.map_err(ui)?;
    Ok(Redirect::to("/admin/users").into_response())
}

// ---------- API ----------

/// The second step of a login.
#[derive(Deserialize, ToSchema)]
pub struct CodeRequest {
    /// The `challenge` from `POST /api/login`.
    challenge: String,
    /// The 6-digit code from the authenticator app, or a recovery code.
    code: String,
}

/// What `POST /api/login` answers when a second step is needed (202).
#[derive(Serialize, ToSchema)]
pub struct SecondStepDto {
    /// `code` (send the authenticator's code) or `enrol` (add `secret` to an authenticator app,
    /// then send its first code).
    pub second_step: String,
    /// Send back to `POST /api/login/code`.
    pub challenge: String,
    /// Seconds the challenge stays open.
    pub expires_in: i64,
    /// The new secret (base32), for `enrol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The `otpauth://` address of the new secret, for `enrol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otpauth_uri: Option<String>,
}

impl SecondStepDto {
    /// The body for a step that is not yet a session.
    pub fn from_step(step: &LoginStep) -> Option<Self> {
        let expires_in = CHALLENGE_MINUTES * 60;
        match step {
            LoginStep::SignedIn { .. } => None,
            LoginStep::CodeNeeded { challenge } => {
                Some(Self { second_step: "code".into(), challenge: challenge.clone(), expires_in, secret: None, otpauth_uri: None })
            }
            LoginStep::EnrolmentNeeded { challenge, enrolment } => Some(Self {
                second_step: "enrol".into(),
                challenge: challenge.clone(),
                expires_in,
                secret: Some(enrolment.secret.clone()),
                otpauth_uri: Some(enrolment.otpauth_uri.clone()),
            }),
        }
    }
}

/// A finished second step.
#[derive(Serialize, ToSchema)]
pub struct SignedInDto {
    /// The account.
    #[serde(flatten)]
    user: UserDto,
    /// Recovery codes issued by this sign-in (it enrolled the account); shown once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    recovery_codes: Vec<String>,
    /// Unused recovery codes left, when this sign-in used one.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes_left: Option<i64>,
}

/// The caller's two-step sign-in.
#[derive(Serialize, ToSchema)]
pub struct MfaStatusDto {
    /// Whether it is set up.
    enrolled: bool,
    /// When it was set up (UTC).
    enrolled_at: Option<String>,
    /// Whether the clinic requires it for the caller's role.
    required: bool,
    /// Unused recovery codes.
    recovery_codes_left: i64,
}

/// The caller's password (and, once enrolled, a current code or a recovery code), to confirm
/// a change to their sign-in.
#[derive(Deserialize, ToSchema)]
pub struct PasswordRequest {
    password: String,
    /// A current 6-digit code or an unused recovery code; required when already enrolled.
    #[serde(default)]
    code: Option<String>,
}

/// A new secret being enrolled.
#[derive(Serialize, ToSchema)]
pub struct EnrolmentDto {
    /// Send back to `POST /api/account/mfa/confirm` with the first code.
    challenge: String,
    /// The secret (base32).
    secret: String,
    /// Its `otpauth://` address.
    otpauth_uri: String,
}

/// Recovery codes (shown once).
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesDto {
    recovery_codes: Vec<String>,
}

/// The clinic's two-step sign-in policy.
#[derive(Serialize, ToSchema)]
pub struct MfaPolicyDto {
    /// Role codes that must use two-step sign-in.
    required_roles: Vec<String>,
}

/// A change to the two-step sign-in policy.
#[derive(Deserialize, ToSchema)]
pub struct MfaPolicyRequest {
    /// Role codes separated by commas (`admin,medical_director,prescriber`), or `none`.
    required_roles: String,
    /// Why it changes.
    reason: String,
    /// The director's password, asked again.
    password: String,
    /// A current code or a recovery code, when the director uses two-step sign-in.
    #[serde(default)]
    code: Option<String>,
}

#[utoipa::path(post, path = "/api/login/code", request_body = CodeRequest, responses(
    (status = 200, body = SignedInDto, description = "Signed in; sets the session cookie. After an enrolment, the recovery codes (shown once)"),
    (status = 401, body = Problem, description = "The challenge has expired, been used or run out of attempts (sign in again with the password), or the account is locked"),
    (status = 422, body = Problem, description = "Wrong, reused or malformed code, with the attempts left"),
    (status = 429, body = Problem, description = "Too many failed logins from this address")), tag = "session")]
async fn api_code(State(state): State<AppState>, req: Request) -> Result<Response, WebError> {
    let (parts, body) = req.into_parts();
    let addr = client_addr(&parts);
    let r: CodeRequest = json(Request::from_parts(parts, body), &state).await?;
    let s = state.app.complete_login(&r.challenge, &r.code, addr).await?;
    let cookie = state.session_cookie(&s.token, state.app.settings().session_absolute.num_seconds());
    let body = SignedInDto {
        user: UserDto::from(&s.principal.user),
        recovery_codes: s.recovery_codes,
        recovery_codes_left: s.recovery_codes_left,
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

#[utoipa::path(get, path = "/api/account/mfa", responses((status = 200, body = MfaStatusDto), (status = 401, body = Problem)), tag = "session")]
async fn api_status(State(state): State<AppState>, Auth(p): Auth) -> Result<Json<MfaStatusDto>, WebError> {
    let s = state.app.mfa_status(&p).await?;
    Ok(Json(MfaStatusDto {
        enrolled: s.enrolled_at.is_some(),
        enrolled_at: s.enrolled_at.map(|t| t.to_rfc3339()),
        required: s.required,
        recovery_codes_left: s.recovery_codes_left,
    }))
}

#[utoipa::path(post, path = "/api/account/mfa/enrol", request_body = PasswordRequest, responses(
    (status = 200, body = EnrolmentDto, description = "A new secret; confirm it with its first code"),
    (status = 422, body = Problem, description = "Wrong password (counts towards the account lock), or not a signed-in person")), tag = "session")]
async fn api_enrol(State(state): State<AppState>, Auth(p): Auth, req: Request) -> Result<Json<EnrolmentDto>, WebError> {
    let r: PasswordRequest = json(req, &state).await?;
    let (challenge, e) = state.app.begin_mfa_enrolment(&p, &r.password, r.code.as_deref().unwrap_or("")).await?;
    Ok(Json(EnrolmentDto { challenge, secret: e.secret, otpauth_uri: e.otpauth_uri }))
}

#[utoipa::path(post, path = "/api/account/mfa/confirm", request_body = CodeRequest, responses(
    (status = 200, body = RecoveryCodesDto, description = "Enrolled; the recovery codes, shown once"),
    (status = 422, body = Problem, description = "Wrong code, or the enrolment has expired")), tag = "session")]
async fn api_confirm(State(state): State<AppState>, Auth(p): Auth, req: Request) -> Result<Json<RecoveryCodesDto>, WebError> {
    let r: CodeRequest = json(req, &state).await?;
    let codes = state.app.confirm_mfa_enrolment(&p, &r.challenge, &r.code).await?;
    Ok(Json(RecoveryCodesDto { recovery_codes: codes }))
}

#[utoipa::path(post, path = "/api/account/mfa/recovery-codes", request_body = PasswordRequest, responses(
    (status = 200, body = RecoveryCodesDto, description = "New recovery codes; earlier ones no longer work"),
    (status = 422, body = Problem)), tag = "session")]
async fn api_recovery_codes(State(state): State<AppState>, Auth(p): Auth, req: Request) -> Result<Json<RecoveryCodesDto>, WebError> {
    let r: PasswordRequest = json(req, &state).await?;
    let codes = state.app.new_recovery_codes(&p, &r.password, r.code.as_deref().unwrap_or("")).await?;
    Ok(Json(RecoveryCodesDto { recovery_codes: codes }))
}

fn policy_dto(p: &MfaPolicy) -> MfaPolicyDto {
    MfaPolicyDto { required_roles: Role::ALL.iter().filter(|r| p.requires(**r)).map(|r| r.code().to_owned()).collect() }
}

#[utoipa::path(get, path = "/api/policy/mfa", responses((status = 200, body = MfaPolicyDto), (status = 401, body = Problem)), tag = "admin")]
async fn api_policy(State(state): State<AppState>, Auth(_p): Auth) -> Result<Json<MfaPolicyDto>, WebError> {
    Ok(Json(policy_dto(&state.app.mfa_policy().await?)))
}

#[utoipa::path(post, path = "/api/policy/mfa", request_body = MfaPolicyRequest, responses(
    (status = 200, body = MfaPolicyDto), (status = 403, body = Problem, description = "Medical director only"), (status = 422, body = Problem)), tag = "admin")]
async fn api_set_policy(State(state): State<AppState>, Auth(p): Auth, req: Request) -> Result<Json<MfaPolicyDto>, WebError> {
    let r: MfaPolicyRequest = json(req, &state).await?;
    let policy = state.app.set_mfa_policy(&p, &r.required_roles, &r.reason, &r.password, r.code.as_deref().unwrap_or("")).await?;
    Ok(Json(policy_dto(&policy)))
}

#[utoipa::path(post, path = "/api/admin/users/{id}/reset-mfa", params(("id" = String, Path)), responses(
    (status = 204, description = "Two-step sign-in removed and the account's sessions ended; it enrols again at its next sign-in if its role requires it"),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem, description = "The account has no two-step sign-in")), tag = "admin")]
async fn api_reset(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> Result<StatusCode, WebError> {
    let uid = UserId::parse(&id).map_err(|_| WebError::api(AppError::NotFound))?;
    state.app.reset_mfa(&p, uid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The OpenAPI paths of this module.
#[derive(OpenApi)]
#[openapi(paths(api_code, api_status, api_enrol, api_confirm, api_recovery_codes, api_policy, api_set_policy, api_reset))]
pub struct AccountDoc;
