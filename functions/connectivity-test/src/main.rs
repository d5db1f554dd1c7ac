//! The `connectivity-test` Lambda function: proves the connector's keys and URL with one cheap call.

use vulnflow_shared::pipeline::{JobRef, connectivity::test_connectivity};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vulnflow_shared::lambda::run(|services, job: JobRef| async move { test_connectivity(&services, &job).await }).await
}
