//! What every call goes through before its handler, in order: counting, the limit headers
//! (stamped on every answer), the URL length, authentication, the API limits, server errors.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use simulator_kit::route_of;

use crate::api::{SimulatorState, error};
use crate::limits::{LimitHeaders, Refusal};
use crate::traffic::Route;

type Shared = State<Arc<SimulatorState>>;

/// The longest GET URL (path and query) Qualys' web servers take: longer ones answer 414, and
/// clients must POST their parameters instead.
const MAX_GET_URL_BYTES: usize = 8 * 1024;

/// Counts the call, and tells the later layers which route it is for.
pub(crate) async fn count_calls(State(state): Shared, mut request: Request, next: Next) -> Response {
    let route = Route::of(request.uri().path());
    state.traffic.calls.count(&mut request, route);
    next.run(request).await
}

/// Every answer carries the limit headers: those of the admission or refusal when the call
/// reached the limits, the current ones otherwise.
pub(crate) async fn stamp_limit_headers(State(state): Shared, request: Request, next: Next) -> Response {
    let route = route_of(&request);
    let mut response = next.run(request).await;
    let headers = response.extensions().get::<LimitHeaders>().copied().unwrap_or_else(|| state.limits.current(route));
    headers.write(response.headers_mut());
    response
}

pub(crate) async fn reject_long_urls(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let url_bytes = uri.path().len() + uri.query().map_or(0, |query| query.len() + 1);
    if request.method() == Method::GET && url_bytes > MAX_GET_URL_BYTES {
        // From the web server in front of the API, as Apache words it.
        let page = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>414 Request-URI Too Long</title>\n\
            </head><body>\n<h1>Request-URI Too Long</h1>\n<p>The requested URL's length exceeds the capacity\nlimit for this server.<br />\n\
            </p>\n</body></html>\n";
        return (StatusCode::URI_TOO_LONG, Html(page)).into_response();
    }
    next.run(request).await
}

/// `X-Requested-With` (any value), then Basic credentials, then whether they are served.
pub(crate) async fn authenticate(State(state): Shared, request: Request, next: Next) -> Response {
    if !request.headers().contains_key("x-requested-with") {
        let text = "parameter X-Requested-With has invalid value: the X-Requested-With header is required";
        return error(StatusCode::BAD_REQUEST, 1905, text, &[]);
    }
    let credentials = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let authorized = credentials
        .and_then(basic_credentials)
        .is_some_and(|(username, password)| username == state.username() && password == state.password());
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, 2002, "Bad Login/Password", &[]);
    }
    match state.faults.credential_rejection() {
        Some(rejection) => rejection,
        None => next.run(request).await,
    }
}

/// `Basic base64(username:password)`.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

/// The injected limits first, then the configured ones; the call runs while admitted.
pub(crate) async fn enforce_limits(State(state): Shared, request: Request, next: Next) -> Response {
    let route = route_of(&request);
    let refusal = if let Some(to_wait_secs) = state.faults.rate_limit(route) {
        Some(Refusal::Rate(state.limits.rate_limited(route, to_wait_secs)))
    } else if state.faults.concurrency_limit(route) {
        Some(Refusal::Concurrency(state.limits.concurrency_limited(route)))
    } else {
        None
    };
    let admission = match (refusal, route) {
        (Some(refusal), _) => return limit_reached(refusal),
        // Paths the API does not have are answered 404 without counting against any limit.
        (None, None) => return next.run(request).await,
        (None, Some(route)) => match state.limits.admit(route) {
            Ok(admission) => admission,
            Err(refusal) => return limit_reached(refusal),
        },
    };
    let mut response = next.run(request).await;
    response.extensions_mut().insert(admission.headers);
    response
}

/// Qualys' 409 for a limit reached, carrying the headers of the refusal.
fn limit_reached(refusal: Refusal) -> Response {
    let (mut response, headers) = match refusal {
        Refusal::Concurrency(headers) => {
            let text = format!(
                "This API cannot be run again until {} currently running instance(s) have finished.",
                headers.running
            );
            (error(StatusCode::CONFLICT, 1960, &text, &[]), headers)
        }
        Refusal::Rate(headers) => {
            let seconds = headers.to_wait_secs;
            let text = format!("This API cannot be run again for another {seconds} seconds.");
            let items = [("SECONDS_TO_WAIT", seconds.to_string())];
            (error(StatusCode::CONFLICT, 1965, &text, &items), headers)
        }
    };
    response.extensions_mut().insert(headers);
    response
}

pub(crate) async fn inject_server_errors(State(state): Shared, request: Request, next: Next) -> Response {
    match state.faults.server_error(route_of(&request)) {
        Some(failure) => failure,
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode_and_keep_colons_in_passwords() {
        let header = format!("Basic {}", STANDARD.encode("user:pa:ss"));
        assert_eq!(basic_credentials(&header), Some(("user".into(), "pa:ss".into())));
        assert_eq!(basic_credentials(&format!("basic {}", STANDARD.encode("u:p"))), Some(("u".into(), "p".into())));
        for wrong in ["Bearer abc", "Basic !!!", "Basic", &format!("Basic {}", STANDARD.encode("no-colon"))] {
            assert_eq!(basic_credentials(wrong), None, "{wrong}");
        }
    }
}
