//! The S3 adapter: raw chunks as the scanner sent them, normalized chunks as NDJSON.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use std::sync::Arc;

use super::ObjectStore;
use crate::errors::{Result, SyncError};
use crate::usage::Meter;

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Counts the requests, for the job's usage.
    meter: Arc<Meter>,
}

impl S3Store {
    pub fn new(client: Client, bucket: impl Into<String>, meter: Arc<Meter>) -> Self {
        S3Store { client, bucket: bucket.into(), meter }
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
        self.meter.s3_put();
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
        self.find_object(key).await?.ok_or_else(|| {
            SyncError::storage(format!("reading s3://{}/{key}", self.bucket), "there is no such object", false)
        })
    }

    async fn find_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.meter.s3_get();
        let output = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(SdkError::ServiceError(service)) if service.err().is_no_such_key() => return Ok(None),
            Err(e) => return Err(s3_error(format!("reading s3://{}/{key}", self.bucket), e)),
        };
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|e| SyncError::storage(format!("reading s3://{}/{key}", self.bucket), e, true))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }
}
