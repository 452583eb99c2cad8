//! The application error: what went wrong, for the caller. The web layer maps each variant to a
//! status code and a safe message; the log detail of internal errors stays in the log.

use ketacare_db::DbError;
use ketacare_domain::anthropometry::MeasurementWarning;
use ketacare_domain::validation::FieldErrors;

/// Errors of the use cases.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No valid session or token.
    #[error("not authenticated")]
    Unauthenticated,
    /// Authenticated but not permitted.
    #[error("not permitted")]
    Forbidden,
    /// The patient is outside the caller's care teams (clinic policy `access.chart_scope =
    /// care_team`) and no emergency access is in force; one can be opened with a reason.
    #[error("outside the care team")]
    OutsideCareTeam(ketacare_domain::ids::PatientId),
    /// The addressed thing does not exist (or is not visible to the caller).
    #[error("not found")]
    NotFound,
    /// Input failed validation; every problem, per field.
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    /// The value is plausible but suspicious; the user must acknowledge these warnings.
    #[error("needs confirmation")]
    NeedsConfirmation(Vec<MeasurementWarning>),
    /// Someone else changed the record, or a unique value is taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Too many failed logins from the caller's address; try again after this many seconds.
    #[error("too many failed logins; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the address may try again.
        retry_after_secs: i64,
    },
    /// A pending two-step sign-in has expired, been used, or run out of attempts; the person
    /// must start again with their password.
    #[error("the sign-in has expired; sign in again with your password")]
    SignInAgain,
    /// Storage failed; details are logged, not shown.
    #[error("storage failure")]
    Storage(#[source] DbError),
    /// Anything else internal.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => AppError::NotFound,
            DbError::Conflict(c) => AppError::Conflict(c),
            other => AppError::Storage(other),
        }
    }
}

impl From<FieldErrors> for AppError {
    fn from(e: FieldErrors) -> Self {
        AppError::Validation(e)
    }
}
