//! The control-plane HTTP API: connectors, manual syncs, job status and history, and
//! cancelling. [`handle`] is a function over the ports, so every endpoint is tested
//! with the in-memory store and the recording workflow; [`http`] adapts it to API
//! Gateway's Lambda proxy events. The contract is `api/openapi.yaml`.

mod access;
mod connectors;
mod history;
pub mod http;
mod input;
mod jobs;
mod page_token;
mod response;
mod syncs;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use access::Endpoint;
pub use page_token::PageTokens;
use response::ApiError;
pub use response::ApiResponse;

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

/// The caller, as API Gateway's authorizer named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub principal: String,
    pub role: String,
}

/// One HTTP request, as far as the API reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    pub method: String,
    /// Without the API Gateway stage: `/connectors/tenable-1/syncs`.
    pub path: String,
    /// Every query parameter, repeated ones included.
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The caller, or why there is none.
    pub identity: Result<Identity, String>,
}

/// Answers one request: who may make it, what it asks, and what happened, as JSON.
pub async fn handle(services: &ApiServices, request: ApiRequest) -> ApiResponse {
    let answer = route(services, &request).await.unwrap_or_else(ApiError::into_response);
    // Never the body: it may hold API keys.
    let principal = request.identity.as_ref().map(|identity| identity.principal.as_str()).unwrap_or("-");
    let (method, path, status, error) = (&request.method, &request.path, answer.status, answer.error_code());
    if status >= 500 {
        tracing::error!(%method, %path, status, principal, error, "request failed");
    } else {
        tracing::info!(%method, %path, status, principal, error, "request answered");
    }
    answer
}

async fn route(services: &ApiServices, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let identity = request.identity.as_ref().map_err(|why| ApiError::Unauthenticated(why.clone()))?;
    let matched = access::resolve(&request.method, &request.path, &request.query)?;
    let caller = access::authorize(matched.route, identity)?;
    let query = input::Query::new(&request.query);
    let body = request.body.as_slice();
    let id = |name| matched.param(name);
    Ok(match matched.route.endpoint {
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
        Endpoint::StartSync => {
            ApiResponse::json(202, &syncs::start(services, &caller, id("connector_id"), body).await?)
        }
        Endpoint::ListSyncs => ApiResponse::json(200, &history::list(services, id("connector_id"), &query).await?),
        Endpoint::GetJob => ApiResponse::json(200, &jobs::get(services, id("job_id"), &query).await?),
        Endpoint::GetJobStatus => ApiResponse::json(200, &jobs::status(services, id("job_id")).await?),
        Endpoint::CancelJob => ApiResponse::json(202, &syncs::cancel(services, &caller, id("job_id"), body).await?),
    })
}
