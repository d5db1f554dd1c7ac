//! The one way a vulnflow Lambda function runs: logging and AWS clients built once
//! per process, then every event handed to a pipeline stage. Errors reach Step
//! Functions under their stable names (`From<SyncError> for Diagnostic`).

use std::future::Future;

use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{init_tracing, services_from_env};
use crate::errors::SyncError;
use crate::pipeline::Services;

/// Runs a pipeline stage's function.
pub async fn run<Event, Output, Handler, Work>(handler: Handler) -> Result<(), lambda_runtime::Error>
where
    Event: DeserializeOwned,
    Output: Serialize,
    Handler: Fn(Services, Event) -> Work,
    Work: Future<Output = Result<Output, SyncError>>,
{
    run_with(services_from_env(), handler).await
}

/// Runs a function over the ports `build` makes once.
pub async fn run_with<Ports, Event, Output, Handler, Work>(
    build: impl Future<Output = Result<Ports, SyncError>>,
    handler: Handler,
) -> Result<(), lambda_runtime::Error>
where
    Ports: Clone,
    Event: DeserializeOwned,
    Output: Serialize,
    Handler: Fn(Ports, Event) -> Work,
    Work: Future<Output = Result<Output, SyncError>>,
{
    init_tracing();
    let services = build.await?;
    let handler = &handler;
    let services = &services;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        // Decoded here, not by the runtime, so a malformed event fails under our
        // `Vulnflow.InvalidRequest` name rather than a Rust type name.
        let event: Event = serde_json::from_value(event.payload)
            .map_err(|e| SyncError::InvalidRequest(format!("the event is not what this function takes: {e}")))?;
        handler(services.clone(), event).await
    }))
    .await
}
