//! The `api` Lambda function: the control-plane HTTP API behind API Gateway (connectors,
//! manual syncs, job status and history, cancelling). The contract is api/openapi.yaml.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    vulnflow_shared::config::init_tracing();
    let api = vulnflow_shared::config::api_router_from_env().await?;
    lambda_http::run(api).await
}
