//! The one HTTP error type. What the user sees is kept apart from what the log records.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use ketacare_app::AppError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error response for the UI or the API.
#[derive(Debug)]
pub struct WebError {
    /// The application error.
    pub inner: AppError,
    /// Whether the caller is the JSON API (else the HTML UI).
    pub api: bool,
}

/// One field problem.
#[derive(Serialize, ToSchema)]
pub struct FieldProblem {
    /// Field name.
    pub field: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

/// A warning the caller must acknowledge by resubmitting with its code.
#[derive(Serialize, ToSchema)]
pub struct WarningDto {
    /// Stable code to put in `acknowledge`.
    pub code: String,
    /// What to check.
    pub message: String,
}

/// The JSON error body.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// `unauthenticated`, `forbidden`, `outside_care_team`, `not_found`, `validation`, `needs_confirmation`, `conflict`, `rate_limited`, `sign_in_again`, `internal`.
    pub error: String,
    /// Human-readable summary.
    pub message: String,
    /// Field problems (validation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldProblem>,
    /// Warnings to acknowledge (needs_confirmation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<WarningDto>,
}

impl WebError {
    /// An API error.
    pub fn api(inner: AppError) -> Self {
        Self { inner, api: true }
    }
    /// A UI error.
    pub fn ui(inner: AppError) -> Self {
        Self { inner, api: false }
    }

    fn problem(&self) -> (StatusCode, Problem) {
        let p = |status, error: &str, message: String| (status, Problem { error: error.into(), message, fields: vec![], warnings: vec![] });
        match &self.inner {
            AppError::Unauthenticated => p(StatusCode::UNAUTHORIZED, "unauthenticated", "log in first".into()),
            AppError::Forbidden => p(StatusCode::FORBIDDEN, "forbidden", "your role does not allow this".into()),
            AppError::NotFound => p(StatusCode::NOT_FOUND, "not_found", "no such record".into()),
            AppError::OutsideCareTeam(id) => p(
                StatusCode::FORBIDDEN,
                "outside_care_team",
                format!(
                    "this patient is not on your care team; to open the chart in an emergency, give your reason to POST /api/patients/{id}/emergency-access (the medical director reviews every emergency access)"
                ),
            ),
            AppError::Conflict(c) => p(StatusCode::CONFLICT, "conflict", c.clone()),
            AppError::Validation(e) => {
                let (s, mut pr) = p(StatusCode::UNPROCESSABLE_ENTITY, "validation", format!("check these fields: {e}"));
                pr.fields = e.iter().map(|f| FieldProblem { field: f.field.clone(), message: f.message.clone() }).collect();
                (s, pr)
            }
            AppError::NeedsConfirmation(w) => {
                let (s, mut pr) = p(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "needs_confirmation",
                    "check the value; resubmit with the warning codes in acknowledge to save it".into(),
                );
                pr.warnings = w.iter().map(|w| WarningDto { code: w.code().into(), message: w.message() }).collect();
                (s, pr)
            }
            AppError::RateLimited { retry_after_secs } => p(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many failed logins from this address; try again in {}", wait_words(*retry_after_secs)),
            ),
            AppError::SignInAgain => p(
                StatusCode::UNAUTHORIZED,
                "sign_in_again",
                "this sign-in has expired, was used, or had too many wrong codes; sign in again with your password".into(),
            ),
            AppError::Storage(_) | AppError::Internal(_) => p(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "something went wrong on the server; nothing was saved; try again or call the administrator".into(),
            ),
        }
    }
}

/// "1 minute", "14 minutes" (rounded up), for a wait in seconds.
pub(crate) fn wait_words(secs: i64) -> String {
    let m = (secs.max(1) + 59) / 60;
    if m == 1 {
        "1 minute".into()
    } else {
        format!("{m} minutes")
    }
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        Self::api(e)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let AppError::Storage(e) = &self.inner {
            tracing::error!(error = ?e, "storage failure");
        }
        if let AppError::Internal(e) = &self.inner {
            tracing::error!(error = %e, "internal failure");
        }
        let (status, problem) = self.problem();
        let retry = match &self.inner {
            AppError::RateLimited { retry_after_secs } => Some(retry_after_secs.to_string()),
            _ => None,
        };
        if self.api {
            let mut r = (status, Json(problem)).into_response();
            if let Some(v) = retry.and_then(|v| axum::http::HeaderValue::from_str(&v).ok()) {
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
            return r;
        }
        if status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/login?expired=1").into_response();
        }
        if let AppError::OutsideCareTeam(id) = &self.inner {
            return (status, crate::access::outside_page(*id)).into_response();
        }
        (status, crate::views::error_page(status, &problem.message)).into_response()
    }
}
