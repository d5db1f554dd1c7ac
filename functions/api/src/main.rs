//! The `api` Lambda function: the control-plane HTTP API behind API Gateway (connectors,
//! manual syncs, job status and history, cancelling). The contract is api/openapi.yaml.

use std::convert::Infallible;

use lambda_http::{Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    vulnflow_shared::config::init_tracing();
    let api = vulnflow_shared::config::http_api_from_env().await?;
    let api = &api;
    lambda_http::run(service_fn(move |request: Request| async move { Ok::<_, Infallible>(api.answer(request).await) }))
        .await
}
