//! The `finalize` Lambda function: settles the job's final status from its chunk records.

use vulnflow_shared::pipeline::finalize::{FinalizeEvent, finalize};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vulnflow_shared::lambda::run(|services, event: FinalizeEvent| async move { finalize(&services, event).await }).await
}
