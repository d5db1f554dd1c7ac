//! What every call goes through before its handler, in order: counting, `X-ApiKeys`
//! authentication (and rejection of the right keys, when injected), rate limiting.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use simulator_kit::route_of;

use crate::api::{SimulatorState, error};
use crate::traffic::Route;

type Shared = State<Arc<SimulatorState>>;

/// Counts the call, and tells the later layers which route it is for.
pub(crate) async fn count_calls(State(state): Shared, mut request: Request, next: Next) -> Response {
    let route = Route::of(request.method(), request.uri().path());
    state.traffic.calls.count(&mut request, route);
    next.run(request).await
}

pub(crate) async fn require_api_keys(State(state): Shared, request: Request, next: Next) -> Response {
    let keys = request.headers().get("x-apikeys").and_then(|value| value.to_str().ok()).map(parse_api_keys);
    let authorized =
        keys.is_some_and(|(access, secret)| access == Some(state.access_key()) && secret == Some(state.secret_key()));
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, "Invalid Credentials");
    }
    match state.faults.key_rejection() {
        Some(rejection) => rejection,
        None => next.run(request).await,
    }
}

pub(crate) async fn throttle(State(state): Shared, request: Request, next: Next) -> Response {
    match state.faults.throttling(route_of(&request)) {
        Some(too_many_requests) => too_many_requests,
        None => next.run(request).await,
    }
}

/// `accessKey=<a>;secretKey=<b>`, in any order, with spaces around the parts.
fn parse_api_keys(header: &str) -> (Option<&str>, Option<&str>) {
    let mut access = None;
    let mut secret = None;
    for (name, value) in header.split(';').filter_map(|part| part.split_once('=')) {
        match name.trim() {
            "accessKey" => access = Some(value.trim()),
            "secretKey" => secret = Some(value.trim()),
            _ => {}
        }
    }
    (access, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_tolerate_order_and_spaces() {
        assert_eq!(parse_api_keys("accessKey=a;secretKey=s"), (Some("a"), Some("s")));
        assert_eq!(parse_api_keys(" secretKey = s ; accessKey=a "), (Some("a"), Some("s")));
        assert_eq!(parse_api_keys("accessKey=a"), (Some("a"), None));
    }
}
