//! The `fetch-chunk` Lambda function: requests the scanner's export, polls it, and downloads chunks into S3.

use vulnflow_shared::pipeline::fetch::{FetchEvent, fetch};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    vulnflow_shared::lambda::run(|services, event: FetchEvent| async move { fetch(&services, event).await }).await
}
