//! What stands in front of the routes, for lambda_http and a plain HTTP server alike:
//! the path as the API knows it (without API Gateway's stage), the caller, and the
//! request log.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Extensions;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use axum::http::request::Parts;
use axum::http::uri::{PathAndQuery, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tower::util::MapResponse;

use super::Identity;
use super::response::{ApiError, ErrorCode};
use crate::auth;

/// The deployment's token signing key, to check bearer tokens where no authorizer ran.
#[derive(Clone)]
struct Gate {
    token_key: Option<Arc<[u8]>>,
}

/// The path a request asked for, without the stage: what the log and the errors name.
#[derive(Clone)]
struct AskedPath(String);

/// The API as the Lambda function serves it.
pub type GatewayService = MapResponse<Router, fn(Response) -> Response>;

/// The router as the Lambda serves it behind API Gateway, which sets an answer's
/// `Content-Length` itself: the one axum adds is left out, as the function did before
/// it served a router, so that the gateway's is the only one.
pub fn behind_api_gateway(router: Router) -> GatewayService {
    fn without_length(mut response: Response) -> Response {
        response.headers_mut().remove(CONTENT_LENGTH);
        response
    }
    MapResponse::new(router, without_length as fn(Response) -> Response)
}

/// `endpoints` behind [`admit`]. A layer on a router runs once it has chosen the route,
/// so the path is set right in a router of its own, in front of the one that routes.
pub(super) fn in_front_of(endpoints: Router, token_key: Option<Vec<u8>>) -> Router {
    let gate = Gate { token_key: token_key.map(Arc::from) };
    Router::new().fallback_service(endpoints).layer(middleware::from_fn_with_state(gate, admit))
}

/// Every request: routed by its path without the stage, refused without a caller,
/// and logged once answered. Never the body: it may hold API keys.
async fn admit(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let path = asked_path(request.extensions(), request.uri()).to_string();
    if let Some(uri) = routed_uri(&request) {
        *request.uri_mut() = uri;
    }
    let method = request.method().clone();
    let identity = caller(&request, gate.token_key.as_deref(), Utc::now());
    let principal = identity.as_ref().map_or_else(|_| "-".to_string(), |identity| identity.principal.clone());
    let answer = match identity {
        Ok(identity) => {
            request.extensions_mut().insert(identity);
            request.extensions_mut().insert(AskedPath(path.clone()));
            next.run(request).await
        }
        Err(why) => ApiError::Unauthenticated(why).into_response(),
    };
    let status = answer.status().as_u16();
    let error = answer.extensions().get::<ErrorCode>().map(|code| code.0.as_str());
    if status >= 500 {
        tracing::error!(%method, %path, status, principal, error, "request failed");
    } else {
        tracing::info!(%method, %path, status, principal, error, "request answered");
    }
    answer
}

/// The path as asked. Under lambda_http the URI's path starts with API Gateway's stage
/// (`/v1/connectors`); the event's own path, which it keeps apart, does not.
pub(super) fn asked_path<'a>(extensions: &'a Extensions, uri: &'a Uri) -> &'a str {
    match extensions.get::<AskedPath>() {
        Some(asked) => &asked.0,
        None => match extensions.raw_http_path() {
            "" => uri.path(),
            raw => raw,
        },
    }
}

/// The URI the routes are matched on: the path without the stage and its empty
/// segments (`/connectors/` is `/connectors`), the query as it came.
fn routed_uri(request: &Request) -> Option<Uri> {
    let path: Vec<String> = match request.raw_http_path() {
        "" => segments(request.uri().path()).map(str::to_string).collect(),
        // API Gateway's path is decoded: each segment is encoded again, so that the
        // router reads it back as it was.
        raw => segments(raw).map(|segment| utf8_percent_encode(segment, SEGMENT).to_string()).collect(),
    };
    let path = format!("/{}", path.join("/"));
    let target = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut uri = request.uri().clone().into_parts();
    uri.path_and_query = Some(PathAndQuery::try_from(target).ok()?);
    Uri::from_parts(uri).ok()
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|segment| !segment.is_empty())
}

/// What a path segment encodes: every byte but the unreserved characters, the
/// sub-delimiters, `:` and `@` (RFC 3986's `pchar`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Every query parameter, repeated ones included. lambda_http writes API Gateway's
/// parameters into the URI's query.
pub(super) fn query(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect()
}

/// The caller [`admit`] let in.
pub(super) fn identity(request: &Parts) -> Result<&Identity, ApiError> {
    request
        .extensions
        .get::<Identity>()
        .ok_or_else(|| ApiError::Unauthenticated("no caller identity reached the API".to_string()))
}

/// The caller the authorizer named in the request context. Where no authorizer ran
/// (LocalStack's community edition runs none), the bearer token is checked here, as
/// the authorizer would check it.
fn caller(request: &Request, token_key: Option<&[u8]>, now: DateTime<Utc>) -> Result<Identity, String> {
    let context = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => Some(&context.authorizer.fields),
        Some(RequestContext::ApiGatewayV2(context)) => context.authorizer.as_ref().map(|authorizer| &authorizer.fields),
        _ => None,
    };
    let field = |name: &str| {
        context.and_then(|fields| fields.get(name)).and_then(|value| value.as_str()).filter(|text| !text.is_empty())
    };
    if let Some(principal) = field("principal") {
        return Ok(Identity { principal: principal.to_string(), role: field("role").unwrap_or_default().to_string() });
    }
    let token = request.headers().get(AUTHORIZATION).and_then(|value| value.to_str().ok());
    match (token_key, token) {
        (Some(key), Some(token)) => auth::verify(key, token, now)
            .map(|caller| Identity { principal: caller.principal, role: caller.role.as_str().to_string() })
            .map_err(|refused| format!("the bearer token was refused: {refused}")),
        _ => Err("no caller identity reached the API: send the header `Authorization: Bearer <token>`".to_string()),
    }
}
