//! API Gateway's Lambda proxy integration: its events in, HTTP answers out.

use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use super::{ApiRequest, ApiResponse, ApiServices, Identity, handle};
use crate::auth;

/// The API as the function serves it.
pub struct HttpApi {
    services: ApiServices,
    /// The deployment's token signing key, to check bearer tokens where no authorizer ran.
    token_key: Option<Vec<u8>>,
}

impl HttpApi {
    pub fn new(services: ApiServices, token_key: Option<Vec<u8>>) -> Self {
        HttpApi { services, token_key }
    }

    pub async fn answer(&self, request: Request) -> Response<Body> {
        let request = api_request(&request, self.token_key.as_deref(), Utc::now());
        into_response(handle(&self.services, request).await)
    }
}

pub fn api_request(request: &Request, token_key: Option<&[u8]>, now: DateTime<Utc>) -> ApiRequest {
    // Without the stage API Gateway puts in front (`/v1/connectors`).
    let path = match request.raw_http_path() {
        "" => request.uri().path(),
        raw => raw,
    };
    let query = request
        .query_string_parameters_ref()
        .map(|parameters| parameters.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect())
        .unwrap_or_default();
    ApiRequest {
        method: request.method().as_str().to_string(),
        path: path.to_string(),
        query,
        body: request.body().to_vec(),
        identity: identity(request, token_key, now),
    }
}

/// The caller the authorizer named in the request context. Where no authorizer ran
/// (LocalStack's community edition runs none), the bearer token is checked here, as
/// the authorizer would check it.
fn identity(request: &Request, token_key: Option<&[u8]>, now: DateTime<Utc>) -> Result<Identity, String> {
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

pub fn into_response(answer: ApiResponse) -> Response<Body> {
    let body = match &answer.body {
        Some(json) => Body::Text(json.to_string()),
        None => Body::Empty,
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if answer.body.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    // Job status changes from one poll to the next.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
