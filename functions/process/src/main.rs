//! The `process` Lambda function: merges a normalized chunk into the stored assets and findings, once.

use vulnflow_shared::pipeline::{ChunkTask, process::process};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vulnflow_shared::lambda::run(|services, task: ChunkTask| async move { process(&services, task).await }).await
}
