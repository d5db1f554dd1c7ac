//! The `normalize` Lambda function: maps a raw chunk onto the domain model, as NDJSON in S3.

use vulnflow_shared::pipeline::{ChunkTask, normalize::normalize};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vulnflow_shared::lambda::run(|services, task: ChunkTask| async move { normalize(&services, task).await }).await
}
