//! The authentication extractor: a session cookie (UI and API) or an API bearer token.

use crate::error::WebError;
use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use ketacare_app::{AppError, Principal};
use std::net::SocketAddr;

/// An authenticated caller. Extracting it fails with 401 (API) or a redirect to the login page (UI).
pub struct Auth(pub Principal);

/// The client's address, if known.
pub fn client_addr(parts: &Parts) -> Option<String> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())
}

/// The value of cookie `name`.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Inside the nested `/api` router the path is stripped; the original URI tells.
        let path = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map(|u| u.0.path().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned());
        let api = path.starts_with("/api");
        let err = |e| if api { WebError::api(e) } else { WebError::ui(e) };
        let addr = client_addr(parts);
        if let Some(bearer) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
        {
            return state.app.authenticate_token(bearer.trim(), addr).await.map(Auth).map_err(err);
        }
        match cookie(parts, state.cookie_name()) {
            Some(token) => state.app.authenticate_session(&token, addr).await.map(Auth).map_err(err),
            None => Err(err(AppError::Unauthenticated)),
        }
    }
}
