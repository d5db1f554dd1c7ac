//! The S3 adapter: raw chunks as the scanner sent them, normalized chunks as NDJSON.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::ObjectStore;
use crate::errors::{Result, SyncError};

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
}

impl S3Store {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3Store { client, bucket: bucket.into() }
    }
}

fn s3_error<E, R>(operation: String, error: SdkError<E, R>) -> SyncError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let transient = match &error {
        SdkError::ServiceError(service) => {
            matches!(service.err().code(), Some("SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout"))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        _ => false,
    };
    SyncError::storage(operation, DisplayErrorContext(&error), transient)
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put_object(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error(format!("writing s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    async fn get_object(&self, key: &str) -> Result<Vec<u8>> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error(format!("reading s3://{}/{key}", self.bucket), e))?;
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| SyncError::storage(format!("reading s3://{}/{key}", self.bucket), e, true))?;
        Ok(bytes.into_bytes().to_vec())
    }
}
