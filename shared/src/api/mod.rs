//! The control-plane HTTP API: connectors, manual syncs, job status and history, and
//! cancelling, as one axum [`router`]. The `api` function runs it under lambda_http,
//! and the tests serve the very same router: over the in-memory store and the
//! recording workflow, every endpoint is tested as the function answers it. The
//! contract is `api/openapi.yaml`.

mod access;
mod connectors;
mod history;
mod http;
mod input;
mod jobs;
mod page_token;
mod response;
mod syncs;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use access::Endpoint;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::routing::any;
pub use http::{GatewayService, behind_api_gateway};
pub use page_token::PageTokens;
use response::{ApiError, ApiResponse};

use crate::auth::Caller;
use crate::errors::SyncError;
use crate::scanner_network::ScannerNetworkPolicy;
use crate::starter::SyncStarter;
use crate::store::{ConnectorStore, JobStore, SecretStore};
use crate::workflow::Workflow;

/// What the API works with. Built once per function process.
#[derive(Clone)]
pub struct ApiServices {
    pub connectors: Arc<dyn ConnectorStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub jobs: Arc<dyn JobStore>,
    pub workflow: Arc<dyn Workflow>,
    /// The deployment's name, recorded on the jobs it starts.
    pub deployment: String,
    /// Signs the history's page tokens.
    pub page_tokens: PageTokens,
    /// Where connectors' scanners may be: checked whenever a base_url is set.
    pub scanner_network: Arc<ScannerNetworkPolicy>,
}

impl ApiServices {
    pub fn starter(&self) -> SyncStarter {
        SyncStarter {
            connectors: self.connectors.clone(),
            jobs: self.jobs.clone(),
            workflow: self.workflow.clone(),
            deployment: self.deployment.clone(),
        }
    }
}

/// The caller, as API Gateway's authorizer named them or their bearer token does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub principal: String,
    pub role: String,
}

/// The API: every route of the role table, each answered as JSON. Paths are without
/// API Gateway's stage (`/connectors/tenable-1/syncs`): under lambda_http the stage is
/// dropped before routing; a server of its own nests the router under the stage.
/// `token_key`, the deployment's token signing key, checks bearer tokens where no
/// authorizer ran.
pub fn router(services: ApiServices, token_key: Option<Vec<u8>>) -> Router {
    let endpoints = access::paths()
        .fold(Router::new(), |router, path| {
            router.route(
                path,
                any(move |State(services): State<ApiServices>, request: Request| answer(services, path, request)),
            )
        })
        .fallback(|request: Request| async move {
            access::no_endpoint(http::asked_path(request.extensions(), request.uri()))
        })
        .with_state(services);
    http::in_front_of(endpoints, token_key)
}

/// Answers a request on the route `path`: whether it takes the method and the query,
/// whether the caller's role may make it, and what happened.
async fn answer(services: ApiServices, path: &'static str, request: Request) -> Result<ApiResponse, ApiError> {
    let (mut parts, body) = request.into_parts();
    let asked = http::asked_path(&parts.extensions, &parts.uri).to_string();
    let query = http::query(&parts.uri);
    let route = access::resolve(path, parts.method.as_str(), &asked, &query)?;
    let caller = access::authorize(route, http::identity(&parts)?)?;
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(&mut parts, &())
        .await
        .map_err(|_| access::no_endpoint(&asked))?;
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| SyncError::InvalidRequest(format!("the request's body could not be read: {e}")))?;
    serve(&services, route.endpoint, &caller, &params, &query, &body).await
}

async fn serve(
    services: &ApiServices,
    endpoint: Endpoint,
    caller: &Caller,
    params: &[(String, String)],
    query: &[(String, String)],
    body: &[u8],
) -> Result<ApiResponse, ApiError> {
    let id = |name: &str| params.iter().find(|(param, _)| param == name).map_or("", |(_, value)| value.as_str());
    let query = input::Query::new(query);
    Ok(match endpoint {
        Endpoint::CreateConnector => ApiResponse::json(201, &connectors::create(services, body).await?),
        Endpoint::ListConnectors => ApiResponse::json(200, &connectors::list(services).await?),
        Endpoint::GetConnector => ApiResponse::json(200, &connectors::get(services, id("connector_id")).await?),
        Endpoint::UpdateConnector => {
            ApiResponse::json(200, &connectors::update(services, id("connector_id"), body).await?)
        }
        Endpoint::DeleteConnector => {
            connectors::delete(services, id("connector_id")).await?;
            ApiResponse::no_content()
        }
        Endpoint::StartSync => ApiResponse::json(202, &syncs::start(services, caller, id("connector_id"), body).await?),
        Endpoint::ListSyncs => ApiResponse::json(200, &history::list(services, id("connector_id"), &query).await?),
        Endpoint::GetJob => ApiResponse::json(200, &jobs::get(services, id("job_id"), &query).await?),
        Endpoint::GetJobStatus => ApiResponse::json(200, &jobs::status(services, id("job_id")).await?),
        Endpoint::CancelJob => ApiResponse::json(202, &syncs::cancel(services, caller, id("job_id"), body).await?),
    })
}
