//! Batch reads and writes of assets and findings: DynamoDB's per-call limits, and
//! unprocessed items retried with backoff.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::size::{MAX_ITEM_BYTES, encoded_size};
use super::{DynamoStore, decode, item, storage_error, string, unbuildable};
use crate::errors::{Result, SyncError};

/// An item, and an item's key, as DynamoDB takes them.
pub(super) type Item = HashMap<String, AttributeValue>;
pub(super) type Key = HashMap<String, AttributeValue>;

/// DynamoDB's limits per batch call.
const BATCH_GET_LIMIT: usize = 100;
const BATCH_WRITE_LIMIT: usize = 25;
/// Unprocessed items of a batch are retried this often, with backoff, before giving up.
const BATCH_RETRIES: u32 = 8;

impl DynamoStore {
    /// The items of `table` under `connector_id` whose sort key `sort_key` is one of `ids`.
    pub(super) async fn batch_get<T: DeserializeOwned>(
        &self,
        table: &str,
        connector_id: &str,
        sort_key: &str,
        ids: &[String],
    ) -> Result<Vec<T>> {
        let keys = ids
            .iter()
            .map(|id| {
                HashMap::from([("connector_id".to_string(), string(connector_id)), (sort_key.to_string(), string(id))])
            })
            .collect();
        self.batch_get_items(table, keys).await?.into_iter().map(|item| decode(table, item)).collect()
    }

    /// The items of `table` under these keys (those that exist), strongly consistent.
    pub(super) async fn batch_get_items(&self, table: &str, keys: Vec<Key>) -> Result<Vec<Item>> {
        let operation = format!("BatchGetItem on {table}");
        let mut found = Vec::with_capacity(keys.len());
        for batch in keys.chunks(BATCH_GET_LIMIT) {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(batch.to_vec()))
                .consistent_read(true)
                .build()
                .map_err(|e| unbuildable(&operation, e))?;
            for attempt in 0..=BATCH_RETRIES {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(table, request.clone())
                    .send()
                    .await
                    .map_err(|e| storage_error(&operation, e))?;
                found.extend(output.responses.and_then(|mut r| r.remove(table)).unwrap_or_default());
                match output.unprocessed_keys.and_then(|mut u| u.remove(table)) {
                    Some(unprocessed) if !unprocessed.keys.is_empty() => {
                        request = unprocessed;
                        backoff(attempt).await;
                    }
                    _ => break,
                }
                if attempt == BATCH_RETRIES {
                    return Err(SyncError::storage(
                        format!("DynamoDB {operation}"),
                        "keys stayed unprocessed (throttled)",
                        true,
                    ));
                }
            }
        }
        Ok(found)
    }

    /// Writes every record, or fails before writing any when one would be an item
    /// DynamoDB refuses for its size (normalizing bounds each field, so none should).
    pub(super) async fn batch_put<T: Serialize>(&self, table: &str, records: &[T]) -> Result<()> {
        let items = records.iter().map(item).collect::<Result<Vec<_>>>()?;
        self.batch_put_items(table, items).await
    }

    /// [`Self::batch_put`], of items already encoded.
    pub(super) async fn batch_put_items(&self, table: &str, items: Vec<Item>) -> Result<()> {
        let operation = format!("BatchWriteItem on {table}");
        let mut writes = Vec::with_capacity(items.len());
        for (position, item) in items.into_iter().enumerate() {
            let size = encoded_size(&item);
            if size > MAX_ITEM_BYTES {
                return Err(SyncError::Internal(format!(
                    "record {position} of a write to {table} would be a {size}-byte item, over DynamoDB's \
                     {MAX_ITEM_BYTES}-byte limit: nothing of it was written. Report it: normalizing should have \
                     cut or refused the field that makes it so large"
                )));
            }
            let put = PutRequest::builder().set_item(Some(item)).build().map_err(|e| unbuildable(&operation, e))?;
            writes.push(WriteRequest::builder().put_request(put).build());
        }
        while !writes.is_empty() {
            let mut requests: Vec<WriteRequest> = writes.drain(..writes.len().min(BATCH_WRITE_LIMIT)).collect();
            for attempt in 0..=BATCH_RETRIES {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .map_err(|e| storage_error(&operation, e))?;
                requests = output.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt == BATCH_RETRIES {
                    return Err(SyncError::storage(
                        format!("DynamoDB {operation}"),
                        "items stayed unprocessed (throttled)",
                        true,
                    ));
                }
                backoff(attempt).await;
            }
        }
        Ok(())
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt.min(6)))).await;
}
