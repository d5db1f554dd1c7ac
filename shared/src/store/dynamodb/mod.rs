//! DynamoDB adapters, a file a table: `connectors`, `jobs`, `chunks`, `findings`, and
//! `inventory` (the inventory port, over assets and findings); `batch` and `size` serve
//! the inventory's batch writes. Here:
//! the store, its tables, and what every adapter shares (error classification, the
//! conditional write, encoding).

mod batch;
mod chunks;
mod connectors;
mod findings;
mod inventory;
mod jobs;
mod size;

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value, to_item};

use crate::errors::{Result, SyncError};

pub use findings::{FINDINGS_PER_PART, findings_in_items, packed_item_sizes};
pub use size::item_size;

/// The table names of one deployment (the template passes them to every function).
#[derive(Debug, Clone)]
pub struct Tables {
    pub connectors: String,
    pub jobs: String,
    pub chunks: String,
    pub assets: String,
    pub findings: String,
}

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
    /// How long a job's history is kept: DynamoDB's TTL deletes it after.
    job_retention: chrono::Duration,
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables, job_retention: chrono::Duration) -> Self {
        DynamoStore { client, tables, job_retention }
    }

    /// The item of `table` (the `what` table, for errors) under `key`, strongly consistent.
    async fn read_item(
        &self,
        table: &str,
        what: &str,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Option<HashMap<String, AttributeValue>>> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| storage_error(&format!("GetItem on the {what} table"), e))?;
        Ok(output.item)
    }

    /// Every item of `table` (the `what` table, for errors) whose partition key
    /// `key_name` is `key`, strongly consistent, decoded.
    async fn query_partition<T: DeserializeOwned>(
        &self,
        table: &str,
        what: &str,
        key_name: &str,
        key: &str,
    ) -> Result<Vec<T>> {
        let items = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression(format!("{key_name} = :key"))
            .expression_attribute_values(":key", string(key))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|e| storage_error(&format!("Query on the {what} table"), e))?;
        items.into_iter().map(|item| decode(what, item)).collect()
    }
}

const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    // What DynamoDB Local behind LocalStack answers when a request overwhelms it.
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// `operation` names the call and its table (`UpdateItem on the jobs table`); throttling
/// and outages are transient, so the state machine retries them.
fn storage_error<E, R>(operation: &str, error: SdkError<E, R>) -> SyncError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let transient = match &error {
        SdkError::ServiceError(service) => service.err().code().is_some_and(|code| TRANSIENT_CODES.contains(&code)),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        _ => false,
    };
    let reason = match error.code() {
        Some(code) => format!("{code}: {}", error.message().unwrap_or_default()),
        None => aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string(),
    };
    SyncError::storage(format!("DynamoDB {operation}"), reason, transient)
}

/// A request the SDK would not build (a required field left out): our bug, never transient.
fn unbuildable(request: &str, error: BuildError) -> SyncError {
    SyncError::Internal(format!("cannot build the DynamoDB {request}: {error}"))
}

/// Sends a write that carries a condition: true when written, false when the condition
/// did not hold (the write's "already done" or "not allowed" answer), an error otherwise.
async fn conditional_write<Output, E, R>(
    operation: &str,
    write: impl Future<Output = std::result::Result<Output, SdkError<E, R>>>,
) -> Result<bool>
where
    E: ConditionalWriteError,
    R: std::fmt::Debug,
{
    match write.await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(ConditionalWriteError::condition_failed) => Ok(false),
        Err(e) => Err(storage_error(operation, e)),
    }
}

/// The error of a write that can carry a condition: says whether that condition failed.
trait ConditionalWriteError: ProvideErrorMetadata + std::error::Error + 'static {
    fn condition_failed(&self) -> bool;
}

impl ConditionalWriteError for PutItemError {
    fn condition_failed(&self) -> bool {
        item_condition_failed(self)
    }
}

impl ConditionalWriteError for UpdateItemError {
    fn condition_failed(&self) -> bool {
        item_condition_failed(self)
    }
}

impl ConditionalWriteError for TransactWriteItemsError {
    fn condition_failed(&self) -> bool {
        transaction_condition_failed(self)
    }
}

/// A single-item write (PutItem, UpdateItem) refused because its own condition failed.
fn item_condition_failed(error: &impl ProvideErrorMetadata) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

/// A transaction cancelled because one of its items' conditions failed (a conflict or
/// throttling cancels it too, and stays an error).
fn transaction_condition_failed(error: &TransactWriteItemsError) -> bool {
    match error {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => cancelled
            .cancellation_reasons
            .iter()
            .flatten()
            .any(|reason| reason.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

fn attribute<T: Serialize>(value: &T) -> Result<AttributeValue> {
    to_attribute_value(value).map_err(|e| cannot_encode::<T>("attribute", e))
}

fn item<T: Serialize>(value: &T) -> Result<HashMap<String, AttributeValue>> {
    to_item(value).map_err(|e| cannot_encode::<T>("item", e))
}

/// Names the type that failed: serde_dynamo's message says only what in it did.
fn cannot_encode<T>(shape: &str, error: serde_dynamo::Error) -> SyncError {
    SyncError::Internal(format!("cannot encode a {} as a DynamoDB {shape}: {error}", std::any::type_name::<T>()))
}

fn decode<T: DeserializeOwned>(table: &str, item: HashMap<String, AttributeValue>) -> Result<T> {
    from_item(item).map_err(|e| SyncError::Internal(format!("a {table} item cannot be read: {e}")))
}

/// Whether `id` can be a partition key at all (1 to 2048 bytes). An id from outside
/// (an API path) that cannot names no item: DynamoDB would refuse the request.
fn can_be_key(id: &str) -> bool {
    (1..=2048).contains(&id.len())
}

fn string(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod tests {
    use std::future::{Ready, ready};

    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::{ConditionalCheckFailedException, TransactionCanceledException};

    use super::*;
    use crate::errors::error_names;

    fn answered<E>(error: E) -> Ready<std::result::Result<(), SdkError<E, ()>>> {
        ready(Err(SdkError::service_error(error, ())))
    }

    fn code(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).build()
    }

    fn cancelled_for(reason: &str) -> TransactWriteItemsError {
        TransactWriteItemsError::TransactionCanceledException(
            TransactionCanceledException::builder()
                .cancellation_reasons(CancellationReason::builder().code(reason).build())
                .meta(code("TransactionCanceledException"))
                .build(),
        )
    }

    #[tokio::test]
    async fn a_failed_condition_is_an_answer_and_any_other_refusal_an_error() {
        let written: std::result::Result<(), SdkError<UpdateItemError, ()>> = Ok(());
        assert!(conditional_write("UpdateItem", ready(written)).await.unwrap());
        let refused = ConditionalCheckFailedException::builder().meta(code("ConditionalCheckFailedException")).build();
        let refused = answered(UpdateItemError::ConditionalCheckFailedException(refused));
        assert!(!conditional_write("UpdateItem", refused).await.unwrap());
        assert!(
            !conditional_write("TransactWriteItems", answered(cancelled_for("ConditionalCheckFailed"))).await.unwrap()
        );

        let throttled = answered(UpdateItemError::generic(code("ThrottlingException")));
        let error = conditional_write("UpdateItem on the jobs table", throttled).await.unwrap_err();
        assert_eq!(error.error_name(), error_names::STORAGE_UNAVAILABLE);
        assert!(error.to_string().starts_with("DynamoDB UpdateItem on the jobs table failed: ThrottlingException"));
        let conflict = answered(cancelled_for("TransactionConflict"));
        assert!(conditional_write("TransactWriteItems", conflict).await.is_err(), "a conflict is no answer");
    }
}
