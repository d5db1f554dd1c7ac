//! The chunks table: one item a chunk of a job's exports, keyed by job and chunk. A
//! processed chunk is final: nothing moves it back. Committing and carrying chunks
//! over also count them on the job, in one transaction with the jobs table.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::jobs::counts_addition;
use super::{DynamoStore, attribute, conditional_write, decode, item, number, string, unbuildable};
use crate::errors::{Result, SyncError};
use crate::model::{ChunkRecord, ChunkStatus, JobFailure, RecordCounts, SeenAssets};

/// Chunks carried over in one transaction: with the job's count, DynamoDB's limit of
/// 100 items a transaction.
const CARRY_OVER_BATCH: usize = 99;
/// A late retry of an earlier stage must not move a processed chunk back.
const NOT_PROCESSED: &str = "attribute_not_exists(#status) OR #status <> :processed";
const UPDATE_ITEM: &str = "UpdateItem on the chunks table";

impl DynamoStore {
    fn chunk_key(job_id: &str, chunk_key: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("job_id".to_string(), string(job_id)), ("chunk_key".to_string(), string(chunk_key))])
    }

    pub(super) async fn read_chunk(&self, job_id: &str, chunk_key: &str) -> Result<Option<ChunkRecord>> {
        let item = self.read_item(&self.tables.chunks, "chunks", Self::chunk_key(job_id, chunk_key)).await?;
        item.map(|item| decode("chunks", item)).transpose()
    }

    pub(super) async fn read_chunks_of_job(&self, job_id: &str) -> Result<Vec<ChunkRecord>> {
        self.query_partition(&self.tables.chunks, "chunks", "job_id", job_id).await
    }

    /// An update of a chunk item that changes nothing once it is processed ([`NOT_PROCESSED`]).
    fn unprocessed_chunk_update(&self, job_id: &str, chunk_key: &str) -> Result<UpdateItemFluentBuilder> {
        Ok(self
            .client
            .update_item()
            .table_name(&self.tables.chunks)
            .set_key(Some(Self::chunk_key(job_id, chunk_key)))
            .condition_expression(NOT_PROCESSED)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":processed", attribute(&ChunkStatus::Processed)?))
    }

    pub(super) async fn save_chunk_progress(&self, chunk: &ChunkRecord) -> Result<()> {
        let mut expression = String::from(
            "SET #status = :status, updated_at = :at, failed_attempts = if_not_exists(failed_attempts, :zero), \
             retried = if_not_exists(retried, :false)",
        );
        let mut values = vec![
            (":status", attribute(&chunk.status)?),
            (":at", attribute(&chunk.updated_at)?),
            (":zero", number(0)),
            (":false", AttributeValue::Bool(false)),
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
        let mut request = self.unprocessed_chunk_update(&chunk.job_id, &chunk.chunk_key)?.update_expression(expression);
        for (name, value) in values {
            let name = if name.starts_with(':') { name.to_string() } else { format!(":{name}") };
            request = request.expression_attribute_values(name, value);
        }
        conditional_write(UPDATE_ITEM, request.send()).await.map(|_saved| ())
    }

    pub(super) async fn count_failed_attempt(&self, job_id: &str, chunk_key: &str, failure: &JobFailure) -> Result<()> {
        let request = self
            .unprocessed_chunk_update(job_id, chunk_key)?
            .update_expression(
                "SET #status = :failed, last_failure = :failure, updated_at = :at, retried = if_not_exists(retried, :false) \
                 ADD failed_attempts :one",
            )
            .expression_attribute_values(":failed", attribute(&ChunkStatus::Failed)?)
            .expression_attribute_values(":failure", attribute(failure)?)
            .expression_attribute_values(":at", attribute(&failure.occurred_at)?)
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":one", number(1));
        conditional_write(UPDATE_ITEM, request.send()).await.map(|_counted| ())
    }

    pub(super) async fn commit_processed_chunk(
        &self,
        job_id: &str,
        chunk_key: &str,
        counts: &RecordCounts,
        seen: &SeenAssets,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let chunk = self
            .read_chunk(job_id, chunk_key)
            .await?
            .ok_or_else(|| SyncError::InvalidRequest(format!("chunk {chunk_key} of job {job_id} was never fetched")))?;
        if chunk.status == ChunkStatus::Processed {
            return Ok(false);
        }
        let mut mark_processed = Update::builder()
            .table_name(&self.tables.chunks)
            .set_key(Some(Self::chunk_key(job_id, chunk_key)))
            .condition_expression("#status <> :processed")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":processed", attribute(&ChunkStatus::Processed)?)
            .expression_attribute_values(":retried", AttributeValue::Bool(chunk.failed_attempts > 0))
            .expression_attribute_values(":at", attribute(&at)?);
        // An assets chunk returns none of the assets the sweep asks about: it keeps no set.
        mark_processed = if seen.is_empty() {
            mark_processed.update_expression("SET #status = :processed, retried = :retried, updated_at = :at")
        } else {
            mark_processed
                .update_expression(
                    "SET #status = :processed, retried = :retried, updated_at = :at, seen_assets = :seen",
                )
                .expression_attribute_values(":seen", attribute(seen)?)
        };
        let mark_processed = mark_processed
            .build()
            .map_err(|e| unbuildable("Update marking a chunk processed on the chunks table", e))?;
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
        let add_counts =
            add_counts.build().map_err(|e| unbuildable("Update adding a chunk's counts on the jobs table", e))?;
        let mark_processed = TransactWriteItem::builder().update(mark_processed).build();
        let add_counts = TransactWriteItem::builder().update(add_counts).build();
        self.write_once("commit chunk", vec![mark_processed], add_counts).await
    }

    pub(super) async fn carry_over_in_batches(&self, chunks: &[ChunkRecord]) -> Result<u64> {
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

    /// Carries a batch of chunks over (see [`crate::store::JobStore::carry_over_chunks`]) in one
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
                .map_err(|e| unbuildable("Put of a carried-over chunk on the chunks table", e))?;
            puts.push(TransactWriteItem::builder().put(put).build());
        }
        let count = self
            .job_update(&first.job_id)?
            .update_expression("ADD chunks.#processed :carried, chunks.#carried_over :carried")
            .expression_attribute_names("#processed", "processed")
            .expression_attribute_names("#carried_over", "carried_over")
            .expression_attribute_values(":carried", number(batch.len() as u64))
            .build()
            .map_err(|e| unbuildable("Update counting carried-over chunks on the jobs table", e))?;
        self.write_once("carry over chunks", puts, TransactWriteItem::builder().update(count).build()).await
    }

    /// Writes `guarded` and `then` in one transaction, unless a condition says it was
    /// done already (or, `then` being a [`Self::job_update`], that the job was
    /// cancelled): true when written, false when not.
    async fn write_once(&self, what: &str, guarded: Vec<TransactWriteItem>, then: TransactWriteItem) -> Result<bool> {
        let request = self.client.transact_write_items().set_transact_items(Some(guarded)).transact_items(then);
        conditional_write(&format!("TransactWriteItems ({what}) on the chunks and jobs tables"), request.send()).await
    }
}
