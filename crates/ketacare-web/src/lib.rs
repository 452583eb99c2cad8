//! Ketacare's HTTP layer: the only crate that knows HTTP, HTML and JSON.
//!
//! - [`router`] builds the axum router: the staff UI (`pages`), the JSON API under `/api`
//!   (`api`, documented at `/api/openapi.json`), `/health` and embedded static assets.
//! - [`extract::Auth`] turns a session cookie or an API bearer token into the application's
//!   `Principal`; every route except login, health, the OpenAPI document and static assets
//!   requires it.
//! - [`error::WebError`] maps application errors to responses: field errors for forms,
//!   JSON problems for the API, and a generic message for internal errors (the detail goes to
//!   the log, never to the client).
//! - Every response carries security headers and `Cache-Control: no-store`; state-changing
//!   requests must be same-origin, forms carry a per-session anti-forgery token, and JSON
//!   endpoints only accept `application/json` bodies (which a cross-site form cannot send).

mod access;
mod account;
pub mod api;
mod api_dosing;
mod api_outcomes;
pub mod api_pk;
mod api_research;
mod api_safety;
mod api_screening;
mod api_session;
mod clinic_report;
mod dosing;
pub mod error;
mod exports;
pub mod extract;
mod fhir_api;
mod forms;
mod outcomes;
mod pages;
mod pk;
mod reports;
mod research;
mod safety_pages;
mod screening;
pub use ketacare_intake::screening_doc;
mod session;
mod svg_chart;
mod views;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ketacare_app::App;
use std::sync::Arc;
use std::time::Duration;

/// Web settings.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Mark cookies `Secure` with the `__Host-` prefix (serve behind HTTPS). Off only for the
    /// local demo and tests on plain HTTP.
    pub secure_cookies: bool,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The application.
    pub app: Arc<App>,
    /// Web settings.
    pub config: WebConfig,
}

impl AppState {
    /// Name of the session cookie.
    pub fn cookie_name(&self) -> &'static str {
        if self.config.secure_cookies {
            "__Host-ketacare_session"
        } else {
            "ketacare_session"
        }
    }

    /// The `Set-Cookie` value for a session token (`max_age` 0 with an empty token ends it).
    pub fn session_cookie(&self, token: &str, max_age: i64) -> String {
        let secure = if self.config.secure_cookies { "; Secure" } else { "" };
        format!("{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}", self.cookie_name())
    }
}

const CSS: &str = include_str!("../static/app.css");

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], CSS)
}

async fn health(State(state): State<AppState>) -> Response {
    match state.app.store().schema_version().await {
        Ok(v) => {
            (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok", "schema_version": v, "backend": state.app.store().backend()})))
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"status": "unavailable"}))).into_response()
        }
    }
}

/// Refuses cross-site state-changing requests (Origin and Sec-Fetch-Site checks).
async fn same_origin(req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let h = req.headers();
        if h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
            return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
        }
        if let (Some(origin), Some(host)) =
            (h.get(header::ORIGIN).and_then(|v| v.to_str().ok()), h.get(header::HOST).and_then(|v| v.to_str().ok()))
        {
            let origin_host = origin.split("://").nth(1).unwrap_or("");
            if origin != "null" && origin_host != host {
                return (StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
            }
        }
    }
    next.run(req).await
}

/// `Strict-Transport-Security` when the UI is served over HTTPS (`secure_cookies` on): one year,
/// subdomains included.
const HSTS: &str = "max-age=31536000; includeSubDomains";

async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let static_asset = req.uri().path().starts_with("/static/");
    let https = state.config.secure_cookies;
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "content-security-policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "same-origin");
    set(h, "x-frame-options", "DENY");
    set(h, "permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()");
    // Referrer-Policy stays same-origin, not no-referrer: under no-referrer browsers send
    // `Origin: null` on form posts, and the same-origin check of every state change needs the
    // real origin. Nothing leaves the site either way.
    if https {
        set(h, "strict-transport-security", HSTS);
    }
    if !static_asset {
        set(h, "cache-control", "no-store");
    }
    res
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(pages::routes())
        .merge(account::routes())
        .merge(access::routes())
        .merge(outcomes::routes())
        .merge(screening::routes())
        .merge(dosing::routes())
        .merge(dosing::patient_routes())
        .merge(pk::routes())
        .merge(session::routes())
        .merge(safety_pages::routes())
        .merge(research::routes())
        .merge(reports::routes())
        .merge(clinic_report::routes())
        .merge(exports::routes())
        .nest("/fhir", fhir_api::routes())
        .nest("/api", api::routes())
        .route("/health", get(health))
        .route("/static/app.css", get(css))
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::from_fn_with_state(state.clone(), security_headers))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(256 * 1024))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // Path only: no query string (it may hold a searched name), and never a
            // questionnaire link token.
            let path = req.uri().path();
            let path = if path.starts_with("/q/") { "/q/{token}" } else { path };
            tracing::info_span!("request", method = %req.method(), path = %path)
        }))
        .with_state(state)
}
