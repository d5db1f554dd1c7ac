//! The `initiate` Lambda function: creates the job record of a sync execution.

use vulnflow_shared::pipeline::initiate::{StartSync, initiate};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vulnflow_shared::lambda::run(|services, start: StartSync| async move { initiate(&services, start).await }).await
}
