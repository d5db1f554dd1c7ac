//! Answers, and the one place errors become HTTP statuses and error bodies.

use axum::body::Body;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::errors::SyncError;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ApiResponse {
    pub(super) status: u16,
    /// None for 204.
    pub(super) body: Option<Value>,
}

impl ApiResponse {
    pub(super) fn json(status: u16, body: &impl Serialize) -> ApiResponse {
        match serde_json::to_value(body) {
            Ok(body) => ApiResponse { status, body: Some(body) },
            Err(e) => ApiError::from(SyncError::Internal(format!("cannot encode the answer: {e}"))).into(),
        }
    }

    pub(super) fn no_content() -> ApiResponse {
        ApiResponse { status: 204, body: None }
    }

    /// The `error` code of an error answer, for the request log.
    fn error_code(&self) -> Option<&str> {
        self.body.as_ref().and_then(|body| body["error"].as_str())
    }
}

/// The `error` code of an error answer, kept on the HTTP response for the request log.
#[derive(Debug, Clone)]
pub(super) struct ErrorCode(pub(super) String);

impl IntoResponse for ApiResponse {
    fn into_response(self) -> Response {
        let code = self.error_code().map(|code| ErrorCode(code.to_string()));
        let body = match &self.body {
            Some(json) => Body::from(json.to_string()),
            None => Body::empty(),
        };
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if self.body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        // Job status changes from one poll to the next.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(code) = code {
            response.extensions_mut().insert(code);
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        ApiResponse::from(self).into_response()
    }
}

/// Why a request was not served.
#[derive(Debug)]
pub(super) enum ApiError {
    /// No caller identity reached the function.
    Unauthenticated(String),
    /// The caller's role may not call the endpoint.
    Forbidden(String),
    MethodNotAllowed(String),
    Sync(SyncError),
}

impl From<SyncError> for ApiError {
    fn from(error: SyncError) -> Self {
        ApiError::Sync(error)
    }
}

impl From<ApiError> for ApiResponse {
    fn from(error: ApiError) -> Self {
        let (status, code, message, field) = match error {
            ApiError::Unauthenticated(why) => (401, "unauthenticated", why, None),
            ApiError::Forbidden(why) => (403, "forbidden", why, None),
            ApiError::MethodNotAllowed(why) => (405, "method_not_allowed", why, None),
            ApiError::Sync(error) => match error {
                SyncError::InvalidField { ref field, .. } => {
                    (400, "invalid_request", error.to_string(), Some(field.clone()))
                }
                SyncError::InvalidRequest(message) => (400, "invalid_request", message, None),
                SyncError::NotFound(message) => (404, "not_found", message, None),
                SyncError::Conflict(message) => (409, "conflict", message, None),
                SyncError::Storage { .. } => (
                    503,
                    "unavailable",
                    format!("{error}: try again in a moment; if it goes on, check the API function's logs"),
                    None,
                ),
                // The API runs no sync stage: meeting one of their errors is our fault.
                SyncError::Internal(_) | SyncError::SyncWindowEnded { .. } => {
                    (500, "internal", format!("{error}. {}", error.action()), None)
                }
                SyncError::Credentials { .. }
                | SyncError::ScannerUnavailable { .. }
                | SyncError::ScannerRejected { .. }
                | SyncError::MalformedChunk { .. } => {
                    (502, "scanner_error", format!("{error}. {}", error.action()), None)
                }
            },
        };
        let mut body = json!({ "error": code, "message": message });
        if let Some(field) = field {
            body["field"] = json!(field);
        }
        ApiResponse { status, body: Some(body) }
    }
}
