//! Routes of this module.

use crate::AppState;
use axum::Router;
use utoipa::OpenApi;

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi()]
pub struct ExportsDoc;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
