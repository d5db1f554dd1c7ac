//! DynamoDB adapters: connectors, jobs, chunk records, assets and findings.
//!
//! Job updates are single-attribute update expressions rather than read-modify-write,
//! because chunks of one job are processed concurrently by the state machine's map.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, ReturnValue, TransactWriteItem, Update, WriteRequest,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value, to_item};

use super::{
    AssetsPage, ConnectorStore, HistoryCursor, HistoryFilter, HistoryPage, InventoryStore, JobStore, StoredAsset,
    StoredFinding, asset_key, retired_id,
};
use crate::errors::{Result, SyncError};
use crate::model::{
    ChunkRecord, ChunkStatus, Connector, ConnectorRecord, ExportKind, ExportRef, JobFailure, JobStatus, RecordCounts,
    Stage, StageOutcome, StageRun, SweepMark, SyncClaim, SyncJob,
};
use crate::usage::Usage;

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

/// DynamoDB's limits per batch call.
const BATCH_GET_LIMIT: usize = 100;
const BATCH_WRITE_LIMIT: usize = 25;
/// Assets whose findings are read at once while a chunk is merged.
const ASSET_QUERIES_IN_FLIGHT: usize = 16;
/// The condition every write to a job item carries: a stage still in flight when a
/// cancel stopped the execution must not write over what the cancel settled (its
/// status, stages and counts).
const NOT_CANCELLED: &str = "#status <> :cancelled";
/// Chunks carried over in one transaction: with the job's count, DynamoDB's limit of
/// 100 items a transaction.
const CARRY_OVER_BATCH: usize = 99;
/// Unprocessed items of a batch are retried this often, with backoff, before giving up.
const BATCH_RETRIES: u32 = 8;
/// The jobs table's index of a connector's jobs by start time (infra/template.yaml).
const JOBS_BY_CONNECTOR: &str = "by-connector";
/// Jobs a history query reads per call; the filter then keeps what the page asked for.
const HISTORY_QUERY_PAGE: i32 = 100;
/// Connector attributes that syncs write, which an update from the API must leave alone.
const SYNC_OWNED_CONNECTOR_ATTRIBUTES: [&str; 2] = ["sync_cursor", "sync_claim"];

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

/// The attribute that marks a deleted connector's item: its id stays taken.
const RETIRED_AT: &str = "retired_at";

fn is_conditional_check_failure<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

fn attribute<T: Serialize>(value: &T) -> Result<AttributeValue> {
    to_attribute_value(value).map_err(|e| SyncError::Internal(format!("cannot encode a DynamoDB attribute: {e}")))
}

fn item<T: Serialize>(value: &T) -> Result<HashMap<String, AttributeValue>> {
    to_item(value).map_err(|e| SyncError::Internal(format!("cannot encode a DynamoDB item: {e}")))
}

/// DynamoDB's limit on one item, names and values together.
const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The size DynamoDB bills an item at, by its published rules: names and strings by
/// their UTF-8 length, numbers one byte per two significant digits plus one, lists and
/// maps 3 bytes plus 1 per element.
pub fn item_size<T: Serialize>(value: &T) -> Result<usize> {
    Ok(encoded_size(&item(value)?))
}

fn encoded_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &AttributeValue) -> usize {
    let number_size = |number: &str| {
        let digits = number.trim_start_matches('-').replace('.', "");
        digits.trim_start_matches('0').trim_end_matches('0').len().div_ceil(2) + 1
    };
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_size(number),
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::L(values) => 3 + values.iter().map(|value| 1 + value_size(value)).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(name, value)| 1 + name.len() + value_size(value)).sum::<usize>(),
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|number| number_size(number)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|blob| blob.as_ref().len()).sum(),
        // BOOL and NULL, and whatever DynamoDB adds later.
        _ => 1,
    }
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

/// A bound on `started_at` for the history index's key condition. Stored times carry
/// a varying number of fraction digits, so the bound is widened to the whole second;
/// the filter then decides exactly.
fn started_at_bound(at: DateTime<Utc>, upper: bool) -> AttributeValue {
    let second = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    // `~` sorts after the `.` and `Z` any time of that second goes on with.
    string(&if upper { format!("{second}~") } else { second })
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables, job_retention: chrono::Duration) -> Self {
        DynamoStore { client, tables, job_retention }
    }

    /// Writes `guarded` and `then` in one transaction, unless a condition says it was
    /// done already (or, `then` being a [`Self::job_update`], that the job was
    /// cancelled): true when written, false when not.
    async fn write_once(&self, what: &str, guarded: Vec<TransactWriteItem>, then: TransactWriteItem) -> Result<bool> {
        let result =
            self.client.transact_write_items().set_transact_items(Some(guarded)).transact_items(then).send().await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if a_condition_failed(&e) => Ok(false),
            Err(e) => Err(storage_error(&format!("TransactWriteItems ({what})"), e)),
        }
    }

    /// Carries a batch of chunks over (see [`JobStore::carry_over_chunks`]) in one
    /// transaction: false, changing nothing, if the job has one of them already.
    async fn carry_over_batch(&self, batch: &[ChunkRecord]) -> Result<bool> {
        let Some(first) = batch.first() else { return Ok(true) };
        let mut puts = Vec::with_capacity(batch.len());
        for chunk in batch {
            let put = Put::builder()
                .table_name(&self.tables.chunks)
                .set_item(Some(item(chunk)?))
                .condition_expression("attribute_not_exists(chunk_key)")
                .build()
                .map_err(|e| SyncError::Internal(e.to_string()))?;
            puts.push(TransactWriteItem::builder().put(put).build());
        }
        let count = self
            .job_update(&first.job_id)?
            .update_expression("ADD chunks.#processed :carried, chunks.#carried_over :carried")
            .expression_attribute_names("#processed", "processed")
            .expression_attribute_names("#carried_over", "carried_over")
            .expression_attribute_values(":carried", number(batch.len() as u64))
            .build()
            .map_err(|e| SyncError::Internal(e.to_string()))?;
        self.write_once("carry over chunks", puts, TransactWriteItem::builder().update(count).build()).await
    }

    /// An update of a job item inside a transaction, refused with the whole transaction
    /// once the job was cancelled (see [`NOT_CANCELLED`]).
    fn job_update(&self, job_id: &str) -> Result<aws_sdk_dynamodb::types::builders::UpdateBuilder> {
        Ok(Update::builder()
            .table_name(&self.tables.jobs)
            .set_key(Some(self.job_key(job_id)))
            .condition_expression(NOT_CANCELLED)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", attribute(&JobStatus::Cancelled)?))
    }

    fn job_key(&self, job_id: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("job_id".to_string(), string(job_id))])
    }

    fn chunk_key(job_id: &str, chunk_key: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("job_id".to_string(), string(job_id)), ("chunk_key".to_string(), string(chunk_key))])
    }

    /// Runs one update expression on a job item. A job cancelled meanwhile is left as
    /// the cancel settled it (see [`Self::update_job_if`]).
    async fn update_job(
        &self,
        job_id: &str,
        expression: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<()> {
        if self.update_job_if(job_id, expression, "attribute_exists(job_id)", names, values).await? {
            return Ok(());
        }
        match self.get_job(job_id).await? {
            Some(_) => Ok(()),
            None => Err(SyncError::InvalidRequest(format!("there is no job {job_id}"))),
        }
    }

    /// Adds counters to a job item (an `ADD` of [`map_addition`]'s parts, with `extra_names`).
    async fn add_to_job(
        &self,
        job_id: &str,
        (expression, names, values): ExpressionParts,
        extra_names: &[(&str, &str)],
    ) -> Result<()> {
        let mut names: Vec<(&str, &str)> = names.iter().map(|(name, field)| (name.as_str(), *field)).collect();
        names.extend_from_slice(extra_names);
        let values = values.iter().map(|(name, value)| (name.as_str(), value.clone())).collect();
        self.update_job(job_id, &format!("ADD {expression}"), &names, values).await
    }

    /// Runs one update expression on a job item if `condition` holds and the job was
    /// not cancelled ([`NOT_CANCELLED`]): false, changing nothing, when either fails.
    async fn update_job_if(
        &self,
        job_id: &str,
        expression: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.jobs)
            .set_key(Some(self.job_key(job_id)))
            .update_expression(expression)
            .condition_expression(format!("({condition}) AND {NOT_CANCELLED}"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", attribute(&JobStatus::Cancelled)?);
        for (name, attribute) in names {
            request = request.expression_attribute_names(*name, *attribute);
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_check_failure(&e) => Ok(false),
            Err(e) => Err(storage_error("UpdateItem on the jobs table", e)),
        }
    }

    async fn batch_get<T: DeserializeOwned>(
        &self,
        table: &str,
        connector_id: &str,
        sort_key: &str,
        ids: &[String],
    ) -> Result<Vec<T>> {
        let mut found = Vec::with_capacity(ids.len());
        for batch in ids.chunks(BATCH_GET_LIMIT) {
            let keys = batch
                .iter()
                .map(|id| {
                    HashMap::from([
                        ("connector_id".to_string(), string(connector_id)),
                        (sort_key.to_string(), string(id)),
                    ])
                })
                .collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| SyncError::Internal(e.to_string()))?;
            for attempt in 0..=BATCH_RETRIES {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(table, request.clone())
                    .send()
                    .await
                    .map_err(|e| storage_error("BatchGetItem", e))?;
                for item in output.responses.and_then(|mut r| r.remove(table)).unwrap_or_default() {
                    found.push(decode(table, item)?);
                }
                match output.unprocessed_keys.and_then(|mut u| u.remove(table)) {
                    Some(unprocessed) if !unprocessed.keys.is_empty() => {
                        request = unprocessed;
                        backoff(attempt).await;
                    }
                    _ => break,
                }
                if attempt == BATCH_RETRIES {
                    return Err(SyncError::storage(
                        "DynamoDB BatchGetItem",
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
    async fn batch_put<T: Serialize>(&self, table: &str, records: &[T]) -> Result<()> {
        let mut writes = Vec::with_capacity(records.len());
        for (position, record) in records.iter().enumerate() {
            let item = item(record)?;
            let size = encoded_size(&item);
            if size > MAX_ITEM_BYTES {
                return Err(SyncError::Internal(format!(
                    "record {position} of a write to {table} would be a {size}-byte item, over DynamoDB's \
                     {MAX_ITEM_BYTES}-byte limit: nothing of it was written. Report it: normalizing should have \
                     cut or refused the field that makes it so large"
                )));
            }
            let put = PutRequest::builder().set_item(Some(item)).build();
            writes.push(
                WriteRequest::builder().put_request(put.map_err(|e| SyncError::Internal(e.to_string()))?).build(),
            );
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
                    .map_err(|e| storage_error("BatchWriteItem", e))?;
                requests = output.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt == BATCH_RETRIES {
                    return Err(SyncError::storage(
                        "DynamoDB BatchWriteItem",
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

/// An update expression's text with its attribute names and values.
type ExpressionParts = (String, Vec<(String, &'static str)>, Vec<(String, AttributeValue)>);

/// `<map>.#field :field, ...` with its names and values, adding each counter to the
/// job's map at `map` (a path, or a `#name` the caller names). Attribute names
/// throughout: DynamoDB reserves words like `processed`.
fn map_addition<const N: usize>(map: &str, fields: [(&'static str, u64); N]) -> ExpressionParts {
    let expression = fields.iter().map(|(field, _)| format!("{map}.#{field} :{field}")).collect::<Vec<_>>().join(", ");
    let names = fields.iter().map(|(field, _)| (format!("#{field}"), *field)).collect();
    let values = fields.iter().map(|(field, value)| (format!(":{field}"), number(*value))).collect();
    (expression, names, values)
}

fn counts_addition(counts: &RecordCounts) -> ExpressionParts {
    map_addition("counts", counts.fields())
}

/// What an update from the API sets on a connector item: everything but its key and
/// what syncs write.
fn api_managed_attributes(record: &ConnectorRecord) -> Result<HashMap<String, AttributeValue>> {
    let mut attributes = item(record)?;
    attributes.remove("connector_id");
    for owned in SYNC_OWNED_CONNECTOR_ATTRIBUTES {
        attributes.remove(owned);
    }
    Ok(attributes)
}

/// The key a history query resumes after: the job's keys in the `by-connector` index,
/// encoded exactly as the job item stores them.
fn history_start_key(cursor: &HistoryCursor) -> Result<HashMap<String, AttributeValue>> {
    Ok(HashMap::from([
        ("connector_id".to_string(), string(&cursor.connector_id)),
        ("started_at".to_string(), attribute(&cursor.started_at)?),
        ("job_id".to_string(), string(&cursor.job_id)),
    ]))
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt.min(6)))).await;
}

#[async_trait]
impl ConnectorStore for DynamoStore {
    async fn connector_record(&self, connector_id: &str) -> Result<Option<ConnectorRecord>> {
        if !can_be_key(connector_id) {
            return Ok(None);
        }
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.connectors)
            .key("connector_id", string(connector_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| storage_error("GetItem on the connectors table", e))?;
        output.item.filter(|item| !item.contains_key(RETIRED_AT)).map(|item| decode("connectors", item)).transpose()
    }

    async fn list_connectors(&self) -> Result<Vec<ConnectorRecord>> {
        let items = self
            .client
            .scan()
            .table_name(&self.tables.connectors)
            .consistent_read(true)
            .filter_expression("attribute_not_exists(retired_at)")
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|e| storage_error("Scan on the connectors table", e))?;
        items.into_iter().map(|item| decode("connectors", item)).collect()
    }

    async fn create_connector(&self, record: &ConnectorRecord) -> Result<()> {
        let connector_id = &record.connector.connector_id;
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.connectors)
            .set_item(Some(item(record)?))
            .condition_expression("attribute_not_exists(connector_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The id is taken: by a connector, or by a deleted one's tombstone.
            Err(e) if is_conditional_check_failure(&e) => Err(match self.connector_record(connector_id).await? {
                None => retired_id(connector_id),
                Some(_) => SyncError::Conflict(format!("a connector {connector_id} already exists: choose another id")),
            }),
            Err(e) => Err(storage_error("PutItem on the connectors table", e)),
        }
    }

    async fn update_connector(&self, record: &ConnectorRecord) -> Result<()> {
        let connector_id = &record.connector.connector_id;
        let attributes = api_managed_attributes(record)?;
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.connectors)
            .key("connector_id", string(connector_id))
            .condition_expression("attribute_exists(connector_id) AND attribute_not_exists(retired_at)");
        let mut assignments = Vec::with_capacity(attributes.len());
        for (index, (name, value)) in attributes.into_iter().enumerate() {
            assignments.push(format!("#a{index} = :a{index}"));
            request = request
                .expression_attribute_names(format!("#a{index}"), name)
                .expression_attribute_values(format!(":a{index}"), value);
        }
        request.update_expression(format!("SET {}", assignments.join(", "))).send().await.map_err(|e| {
            if is_conditional_check_failure(&e) {
                SyncError::NotFound(format!("there is no connector {connector_id}"))
            } else {
                storage_error("UpdateItem on the connectors table", e)
            }
        })?;
        Ok(())
    }

    async fn delete_connector(&self, connector_id: &str) -> Result<bool> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.tables.connectors)
            .key("connector_id", string(connector_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| storage_error("DeleteItem on the connectors table", e))?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    async fn retire_connector(&self, connector_id: &str, last_claim: Option<&str>) -> Result<bool> {
        if !can_be_key(connector_id) {
            return Ok(false);
        }
        let tombstone = HashMap::from([
            ("connector_id".to_string(), string(connector_id)),
            (RETIRED_AT.to_string(), attribute(&Utc::now())?),
        ]);
        let request = self.client.put_item().table_name(&self.tables.connectors).set_item(Some(tombstone));
        let request = match last_claim {
            Some(job_id) => request
                .condition_expression("attribute_not_exists(retired_at) AND sync_claim.job_id = :claim")
                .expression_attribute_values(":claim", string(job_id)),
            None => request.condition_expression(
                "attribute_exists(connector_id) AND attribute_not_exists(retired_at) AND attribute_not_exists(sync_claim)",
            ),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_check_failure(&e) => Ok(false),
            Err(e) => Err(storage_error("PutItem on the connectors table", e)),
        }
    }

    async fn claim_sync(&self, connector_id: &str, previous: Option<&str>, claim: &SyncClaim) -> Result<bool> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.connectors)
            .key("connector_id", string(connector_id))
            .update_expression("SET sync_claim = :claim")
            .expression_attribute_values(":claim", attribute(claim)?);
        request = match previous {
            Some(job_id) => request
                .condition_expression("sync_claim.job_id = :previous")
                .expression_attribute_values(":previous", string(job_id)),
            None => request.condition_expression(
                "attribute_exists(connector_id) AND attribute_not_exists(retired_at) AND attribute_not_exists(sync_claim)",
            ),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_check_failure(&e) => Ok(false),
            Err(e) => Err(storage_error("UpdateItem on the connectors table", e)),
        }
    }

    async fn release_sync(&self, connector_id: &str, job_id: &str) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.connectors)
            .key("connector_id", string(connector_id))
            .update_expression("REMOVE sync_claim")
            .condition_expression("sync_claim.job_id = :job")
            .expression_attribute_values(":job", string(job_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another start claimed the connector since: that claim stays.
            Err(e) if is_conditional_check_failure(&e) => Ok(()),
            Err(e) => Err(storage_error("UpdateItem on the connectors table", e)),
        }
    }

    async fn advance_cursor(&self, connector_id: &str, cursor: i64) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.connectors)
            .key("connector_id", string(connector_id))
            .update_expression("SET sync_cursor = :cursor")
            .condition_expression(
                "attribute_exists(connector_id) AND attribute_not_exists(retired_at) \
                 AND (attribute_not_exists(sync_cursor) OR sync_cursor < :cursor)",
            )
            .expression_attribute_values(":cursor", AttributeValue::N(cursor.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_check_failure(&e) => Ok(()),
            Err(e) => Err(storage_error("UpdateItem on the connectors table", e)),
        }
    }

    async fn put_connector(&self, connector: &Connector) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.tables.connectors)
            .set_item(Some(item(connector)?))
            .send()
            .await
            .map_err(|e| storage_error("PutItem on the connectors table", e))?;
        Ok(())
    }
}

#[async_trait]
impl JobStore for DynamoStore {
    async fn create_job(&self, job: &SyncJob) -> Result<()> {
        let mut job_item = item(job)?;
        let expires_at = (job.started_at + self.job_retention).timestamp();
        job_item.insert("expires_at".to_string(), AttributeValue::N(expires_at.to_string()));
        self.client
            .put_item()
            .table_name(&self.tables.jobs)
            .set_item(Some(job_item))
            .condition_expression("attribute_not_exists(job_id)")
            .send()
            .await
            .map_err(|e| {
                if is_conditional_check_failure(&e) {
                    SyncError::Conflict(format!("job {} already exists", job.job_id))
                } else {
                    storage_error("PutItem on the jobs table", e)
                }
            })?;
        Ok(())
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<SyncJob>> {
        if !can_be_key(job_id) {
            return Ok(None);
        }
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.jobs)
            .set_key(Some(self.job_key(job_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| storage_error("GetItem on the jobs table", e))?;
        output.item.map(|item| decode("jobs", item)).transpose()
    }

    async fn stage_started(&self, job_id: &str, stage: Stage, at: DateTime<Utc>) -> Result<()> {
        let run = StageRun { outcome: StageOutcome::Running, started_at: at, ended_at: None };
        self.update_job(
            job_id,
            "SET stages.#stage = if_not_exists(stages.#stage, :run), current_stage = :stage",
            &[("#stage", stage.as_str())],
            vec![(":run", attribute(&run)?), (":stage", string(stage.as_str()))],
        )
        .await
    }

    async fn stage_ended(&self, job_id: &str, stage: Stage, outcome: StageOutcome, at: DateTime<Utc>) -> Result<()> {
        let names = [("#stage", stage.as_str())];
        let ended = self
            .update_job_if(
                job_id,
                "SET stages.#stage.ended_at = :at, stages.#stage.outcome = :outcome",
                "stages.#stage.outcome <> :failed",
                &names,
                vec![
                    (":at", attribute(&at)?),
                    (":outcome", attribute(&outcome)?),
                    (":failed", attribute(&StageOutcome::Failed)?),
                ],
            )
            .await?;
        if ended {
            return Ok(());
        }
        // The stage already failed on another chunk: it stays failed; only its end moves.
        self.update_job(job_id, "SET stages.#stage.ended_at = :at", &names, vec![(":at", attribute(&at)?)]).await
    }

    async fn set_status(&self, job_id: &str, status: JobStatus) -> Result<()> {
        self.update_job(
            job_id,
            "SET #status = :status",
            &[("#status", "status")],
            vec![(":status", attribute(&status)?)],
        )
        .await
    }

    async fn add_export(&self, job_id: &str, export: &ExportRef) -> Result<()> {
        self.update_job(
            job_id,
            "SET exports = list_append(if_not_exists(exports, :none), :export)",
            &[],
            vec![(":export", AttributeValue::L(vec![attribute(export)?])), (":none", AttributeValue::L(vec![]))],
        )
        .await
    }

    async fn add_total_chunks(&self, job_id: &str, kind: ExportKind, chunks: u64) -> Result<()> {
        // `counted_exports` (a string set) remembers which exports are in the total; an
        // export counted already changes nothing, and a job that does not exist fails at
        // the stage's next write.
        self.update_job_if(
            job_id,
            "ADD chunks.#total :chunks, counted_exports :kind",
            "attribute_exists(job_id) AND NOT contains(counted_exports, :kind_name)",
            &[("#total", "total")],
            vec![
                (":chunks", number(chunks)),
                (":kind", AttributeValue::Ss(vec![kind.as_str().to_string()])),
                (":kind_name", string(kind.as_str())),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn add_counts(&self, job_id: &str, counts: &RecordCounts) -> Result<()> {
        self.add_to_job(job_id, counts_addition(counts), &[]).await
    }

    async fn add_usage(&self, job_id: &str, usage: &Usage) -> Result<()> {
        // `usage` is a reserved word.
        self.add_to_job(job_id, map_addition("#usage", usage.fields()), &[("#usage", "usage")]).await
    }

    async fn record_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()> {
        // The first failure recorded stands.
        self.update_job_if(
            job_id,
            "SET failure = :failure",
            "attribute_exists(job_id) AND attribute_not_exists(failure)",
            &[],
            vec![(":failure", attribute(failure)?)],
        )
        .await
        .map(|_| ())
    }

    async fn set_execution_arn(&self, job_id: &str, execution_arn: &str) -> Result<()> {
        let arn = AttributeValue::S(execution_arn.to_string());
        self.update_job(job_id, "SET execution_arn = :arn", &[], vec![(":arn", arn)]).await
    }

    async fn note_retryable_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()> {
        self.update_job(job_id, "SET last_retryable_failure = :failure", &[], vec![(":failure", attribute(failure)?)])
            .await
    }

    async fn finish_job(&self, job: &SyncJob) -> Result<()> {
        let mut values = vec![
            (":status", attribute(&job.status)?),
            (":chunks", attribute(&job.chunks)?),
            (":ended_at", attribute(&job.ended_at)?),
        ];
        let expression = match job.current_stage {
            Some(stage) => {
                values.push((":stage", string(stage.as_str())));
                "SET #status = :status, chunks = :chunks, ended_at = :ended_at, current_stage = :stage"
            }
            None => "SET #status = :status, chunks = :chunks, ended_at = :ended_at REMOVE current_stage",
        };
        self.update_job(&job.job_id, expression, &[("#status", "status")], values).await
    }

    async fn history(
        &self,
        connector_id: &str,
        filter: &HistoryFilter,
        page: &HistoryPage,
    ) -> Result<(Vec<SyncJob>, Option<String>)> {
        let mut start_key = match page.token.as_deref() {
            Some(token) => Some(history_start_key(&HistoryCursor::from_token(token, connector_id)?)?),
            None => None,
        };
        let (condition, bounds) = match (filter.from, filter.to) {
            (Some(from), Some(to)) => (
                "connector_id = :connector AND started_at BETWEEN :from AND :to",
                vec![(":from", started_at_bound(from, false)), (":to", started_at_bound(to, true))],
            ),
            (Some(from), None) => {
                ("connector_id = :connector AND started_at >= :from", vec![(":from", started_at_bound(from, false))])
            }
            (None, Some(to)) => {
                ("connector_id = :connector AND started_at <= :to", vec![(":to", started_at_bound(to, true))])
            }
            (None, None) => ("connector_id = :connector", vec![]),
        };
        let mut values: HashMap<String, AttributeValue> =
            bounds.into_iter().map(|(name, value)| (name.to_string(), value)).collect();
        values.insert(":connector".to_string(), string(connector_id));
        let mut kept = Vec::new();
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.jobs)
                .index_name(JOBS_BY_CONNECTOR)
                .key_condition_expression(condition)
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .limit(HISTORY_QUERY_PAGE)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| storage_error("Query on the jobs table's by-connector index", e))?;
            let items = output.items.unwrap_or_default();
            let read = items.len();
            for (index, item) in items.into_iter().enumerate() {
                let job: SyncJob = decode("jobs", item)?;
                if !filter.matches(&job) {
                    continue;
                }
                kept.push(job);
                if kept.len() == page.limit {
                    let more = index + 1 < read || output.last_evaluated_key.is_some();
                    let token = more.then(|| kept.last().map(|last| HistoryCursor::after(last).token())).flatten();
                    return Ok((kept, token));
                }
            }
            match output.last_evaluated_key {
                Some(key) => start_key = Some(key),
                None => return Ok((kept, None)),
            }
        }
    }

    async fn get_chunk(&self, job_id: &str, chunk_key: &str) -> Result<Option<ChunkRecord>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.chunks)
            .set_key(Some(Self::chunk_key(job_id, chunk_key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| storage_error("GetItem on the chunks table", e))?;
        output.item.map(|item| decode("chunks", item)).transpose()
    }

    async fn chunks(&self, job_id: &str) -> Result<Vec<ChunkRecord>> {
        let pages = self
            .client
            .query()
            .table_name(&self.tables.chunks)
            .key_condition_expression("job_id = :job")
            .expression_attribute_values(":job", string(job_id))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|e| storage_error("Query on the chunks table", e))?;
        pages.into_iter().map(|item| decode("chunks", item)).collect()
    }

    async fn save_chunk(&self, chunk: &ChunkRecord) -> Result<()> {
        let mut expression = String::from(
            "SET #status = :status, updated_at = :at, failed_attempts = if_not_exists(failed_attempts, :zero), \
             retried = if_not_exists(retried, :false)",
        );
        let mut values = vec![
            (":status", attribute(&chunk.status)?),
            (":at", attribute(&chunk.updated_at)?),
            (":zero", number(0)),
            (":false", AttributeValue::Bool(false)),
            (":processed", attribute(&ChunkStatus::Processed)?),
        ];
        for (field, value) in [
            ("raw_key", chunk.raw_key.as_ref().map(|k| string(k))),
            ("normalized_key", chunk.normalized_key.as_ref().map(|k| string(k))),
            ("records", chunk.records.map(number)),
        ] {
            if let Some(value) = value {
                expression.push_str(&format!(", {field} = :{field}"));
                values.push((field, value));
            }
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.chunks)
            .set_key(Some(Self::chunk_key(&chunk.job_id, &chunk.chunk_key)))
            .update_expression(expression)
            .condition_expression("attribute_not_exists(#status) OR #status <> :processed")
            .expression_attribute_names("#status", "status");
        for (name, value) in values {
            let name = if name.starts_with(':') { name.to_string() } else { format!(":{name}") };
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            // Already processed: a late retry of an earlier stage must not move it back.
            Err(e) if is_conditional_check_failure(&e) => Ok(()),
            Err(e) => Err(storage_error("UpdateItem on the chunks table", e)),
        }
    }

    async fn chunk_attempt_failed(&self, job_id: &str, chunk_key: &str, failure: &JobFailure) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.chunks)
            .set_key(Some(Self::chunk_key(job_id, chunk_key)))
            .update_expression(
                "SET #status = :failed, last_failure = :failure, updated_at = :at, retried = if_not_exists(retried, :false) \
                 ADD failed_attempts :one",
            )
            .condition_expression("attribute_not_exists(#status) OR #status <> :processed")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":failed", attribute(&ChunkStatus::Failed)?)
            .expression_attribute_values(":processed", attribute(&ChunkStatus::Processed)?)
            .expression_attribute_values(":failure", attribute(failure)?)
            .expression_attribute_values(":at", attribute(&failure.occurred_at)?)
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":one", number(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_check_failure(&e) => Ok(()),
            Err(e) => Err(storage_error("UpdateItem on the chunks table", e)),
        }
    }

    async fn commit_chunk(
        &self,
        job_id: &str,
        chunk_key: &str,
        counts: &RecordCounts,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let chunk = self
            .get_chunk(job_id, chunk_key)
            .await?
            .ok_or_else(|| SyncError::InvalidRequest(format!("chunk {chunk_key} of job {job_id} was never fetched")))?;
        if chunk.status == ChunkStatus::Processed {
            return Ok(false);
        }
        let mark_processed = Update::builder()
            .table_name(&self.tables.chunks)
            .set_key(Some(Self::chunk_key(job_id, chunk_key)))
            .update_expression("SET #status = :processed, retried = :retried, updated_at = :at")
            .condition_expression("#status <> :processed")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":processed", attribute(&ChunkStatus::Processed)?)
            .expression_attribute_values(":retried", AttributeValue::Bool(chunk.failed_attempts > 0))
            .expression_attribute_values(":at", attribute(&at)?)
            .build()
            .map_err(|e| SyncError::Internal(e.to_string()))?;
        let (additions, names, values) = counts_addition(counts);
        let mut add_counts = self
            .job_update(job_id)?
            .update_expression(format!("ADD chunks.#processed :one, chunks.#retried :retried, {additions}"))
            .expression_attribute_names("#processed", "processed")
            .expression_attribute_names("#retried", "retried")
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":retried", number(u64::from(chunk.failed_attempts > 0)));
        for (name, field) in names {
            add_counts = add_counts.expression_attribute_names(name, field);
        }
        for (name, value) in values {
            add_counts = add_counts.expression_attribute_values(name, value);
        }
        let add_counts = add_counts.build().map_err(|e| SyncError::Internal(e.to_string()))?;
        let mark_processed = TransactWriteItem::builder().update(mark_processed).build();
        let add_counts = TransactWriteItem::builder().update(add_counts).build();
        self.write_once("commit chunk", vec![mark_processed], add_counts).await
    }

    async fn carry_over_chunks(&self, chunks: &[ChunkRecord]) -> Result<u64> {
        let mut carried = 0;
        for batch in chunks.chunks(CARRY_OVER_BATCH) {
            if self.carry_over_batch(batch).await? {
                carried += batch.len() as u64;
                continue;
            }
            // An earlier attempt carried some of these: one by one, each counted once.
            for chunk in batch {
                if self.carry_over_batch(std::slice::from_ref(chunk)).await? {
                    carried += 1;
                }
            }
        }
        Ok(carried)
    }

    async fn record_sweep(
        &self,
        job_id: &str,
        from: Option<&SweepMark>,
        to: &SweepMark,
        inactivated: u64,
    ) -> Result<bool> {
        let mut values = vec![(":to", attribute(to)?), (":inactivated", number(inactivated))];
        let condition = match from {
            None => "attribute_exists(job_id) AND attribute_not_exists(sweep)",
            Some(from) => {
                values.push((":from", attribute(from)?));
                "sweep = :from"
            }
        };
        self.update_job_if(
            job_id,
            "SET sweep = :to ADD counts.#inactivated :inactivated",
            condition,
            &[("#inactivated", "findings_inactivated")],
            values,
        )
        .await
    }
}

/// Whether a transaction was cancelled because a condition failed: the "already done"
/// answer of [`DynamoStore::write_once`].
fn a_condition_failed<R>(error: &SdkError<TransactWriteItemsError, R>) -> bool {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons
            .iter()
            .flatten()
            .any(|reason| reason.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

#[async_trait]
impl InventoryStore for DynamoStore {
    async fn findings_of_assets(
        &self,
        connector_id: &str,
        asset_ids: &[String],
    ) -> Result<HashMap<String, Vec<StoredFinding>>> {
        // One Query per asset partition, a few at a time: each reads only its asset.
        let mut found = HashMap::new();
        for batch in asset_ids.chunks(ASSET_QUERIES_IN_FLIGHT) {
            let queries = batch.iter().map(|asset_id| self.findings_of_asset(connector_id, asset_id));
            for (asset_id, findings) in batch.iter().zip(futures::future::try_join_all(queries).await?) {
                if !findings.is_empty() {
                    found.insert(asset_id.clone(), findings);
                }
            }
        }
        Ok(found)
    }

    async fn put_findings(&self, findings: &[StoredFinding]) -> Result<()> {
        self.batch_put(&self.tables.findings, findings).await
    }

    async fn assets(&self, connector_id: &str, asset_ids: &[String]) -> Result<HashMap<String, StoredAsset>> {
        let found: Vec<StoredAsset> = self.batch_get(&self.tables.assets, connector_id, "asset_id", asset_ids).await?;
        Ok(found.into_iter().map(|a| (a.asset.asset_id.clone(), a)).collect())
    }

    async fn put_assets(&self, assets: &[StoredAsset]) -> Result<()> {
        self.batch_put(&self.tables.assets, assets).await
    }

    async fn assets_page(&self, connector_id: &str, after: Option<&str>, limit: usize) -> Result<AssetsPage> {
        let start_key = after.map(|asset_id| {
            HashMap::from([
                ("connector_id".to_string(), string(connector_id)),
                ("asset_id".to_string(), string(asset_id)),
            ])
        });
        let output = self
            .client
            .query()
            .table_name(&self.tables.assets)
            .key_condition_expression("connector_id = :connector")
            .expression_attribute_values(":connector", string(connector_id))
            .set_exclusive_start_key(start_key)
            // The sweep must see every mark the sync's chunks wrote.
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| storage_error("Query on the assets table", e))?;
        let assets: Vec<StoredAsset> =
            output.items.unwrap_or_default().into_iter().map(|item| decode("assets", item)).collect::<Result<_>>()?;
        let next = output
            .last_evaluated_key
            .and_then(|mut key| key.remove("asset_id"))
            .and_then(|asset_id| asset_id.as_s().ok().cloned());
        Ok((assets, next))
    }
}

impl DynamoStore {
    /// Every finding stored in one asset's partition (strongly consistent: a retried
    /// chunk must see what its earlier attempt wrote).
    async fn findings_of_asset(&self, connector_id: &str, asset_id: &str) -> Result<Vec<StoredFinding>> {
        let items = self
            .client
            .query()
            .table_name(&self.tables.findings)
            .key_condition_expression("asset_key = :asset")
            .expression_attribute_values(":asset", string(&asset_key(connector_id, asset_id)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|e| storage_error("Query on the findings table", e))?;
        items.into_iter().map(|item| decode("findings", item)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SyncMode, Trigger};

    #[test]
    fn an_item_is_sized_as_dynamodb_bills_it() {
        #[derive(Serialize)]
        struct Sample {
            name: &'static str,
            count: u32,
            active: bool,
            tags: Vec<&'static str>,
        }
        let sample = Sample { name: "héllo", count: 12_345, active: true, tags: vec!["a", "bc"] };
        // name: 4 + 6 (é is two bytes); count: 5 + 3 (five digits) + 1; active: 6 + 1;
        // tags: 4 + 3 + (1 + 1) + (1 + 2).
        assert_eq!(item_size(&sample).unwrap(), 10 + 9 + 7 + 12);
    }

    #[test]
    fn a_job_round_trips_through_a_dynamodb_item() {
        let now = Utc::now();
        let by_ana = Trigger::Manual { by: "ana@example.com".into() };
        let mut job = SyncJob {
            current_stage: Some(Stage::Fetching),
            ..SyncJob::started("job-1", "c-1", SyncMode::Full, by_ana, "vulnflow-local", now)
        };
        job.stages.insert(
            Stage::Initiating,
            StageRun { outcome: StageOutcome::Succeeded, started_at: now, ended_at: Some(now) },
        );
        let encoded = item(&job).expect("encodes");
        assert!(matches!(encoded.get("stages"), Some(AttributeValue::M(stages)) if stages.contains_key("Initiating")));
        let decoded: SyncJob = decode("jobs", encoded.clone()).expect("decodes");
        assert_eq!(decoded, job);

        let start_key = history_start_key(&HistoryCursor::after(&job)).expect("encodes");
        for key in ["connector_id", "started_at", "job_id"] {
            assert_eq!(start_key.get(key), encoded.get(key), "a page resumes after exactly the stored {key}");
        }
    }

    fn record() -> ConnectorRecord {
        ConnectorRecord {
            connector: Connector {
                connector_id: "tenable-1".into(),
                name: "Tenable".into(),
                kind: crate::model::ScannerKind::Tenable,
                base_url: "https://cloud.tenable.com".into(),
                secret_id: "vulnflow/tenable-1".into(),
                default_mode: SyncMode::Full,
                sync_cursor: Some(1_700_000_000),
            },
            schedule_hours: Some(24),
            sync_window_minutes: None,
            created_at: Some(Utc::now()),
            updated_at: Some(Utc::now()),
            sync_claim: Some(SyncClaim { job_id: "job-1".into(), claimed_at: Utc::now() }),
        }
    }

    #[test]
    fn a_connector_record_round_trips_and_a_hand_made_connector_reads_as_one() {
        let record = record();
        let decoded: ConnectorRecord = decode("connectors", item(&record).expect("encodes")).expect("decodes");
        assert_eq!(decoded, record);
        let by_hand: ConnectorRecord =
            decode("connectors", item(&record.connector).expect("encodes")).expect("decodes");
        assert_eq!(by_hand, ConnectorRecord::from(record.connector.clone()));
    }

    #[test]
    fn an_update_from_the_api_leaves_what_syncs_wrote_and_clears_a_schedule_turned_off() {
        let attributes = api_managed_attributes(&record()).expect("encodes");
        for kept in ["connector_id", "sync_cursor", "sync_claim"] {
            assert!(!attributes.contains_key(kept), "{kept} is not the API's to set");
        }
        let window = attributes.get("sync_window_minutes");
        assert_eq!(window, Some(&AttributeValue::Null(true)), "null, so an update turns it off");
        assert_eq!(attributes.get("schedule_hours"), Some(&AttributeValue::N("24".into())));
    }

    #[test]
    fn history_time_bounds_take_in_every_stored_fraction_of_their_second() {
        let at = DateTime::parse_from_rfc3339("2024-03-01T08:00:05Z").expect("a time").with_timezone(&Utc);
        let stored = |at: DateTime<Utc>| match attribute(&at) {
            Ok(AttributeValue::S(text)) => text,
            other => panic!("a time is stored as a string, not {other:?}"),
        };
        let bounds = (started_at_bound(at, false), started_at_bound(at, true));
        let (AttributeValue::S(lower), AttributeValue::S(upper)) = bounds else { panic!("bounds are strings") };
        for inside in [at, at + chrono::Duration::milliseconds(999), at + chrono::Duration::nanoseconds(1)] {
            assert!(lower <= stored(inside) && stored(inside) <= upper, "{} within {lower}..{upper}", stored(inside));
        }
        assert!(
            stored(at + chrono::Duration::seconds(1)) > upper && stored(at - chrono::Duration::milliseconds(1)) < lower
        );
    }
}
