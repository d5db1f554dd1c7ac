//! Storage ports: what the pipeline needs from DynamoDB, S3 and Secrets Manager, as
//! small traits. Adapters: [`dynamodb`], [`s3`], [`secrets`] for AWS, and [`memory`]
//! for unit tests of the pipeline logic.

pub mod dynamodb;
pub mod memory;
pub mod s3;
pub mod secrets;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::errors::Result;
use crate::model::{
    Asset, ChunkRecord, Connector, ExportRef, Finding, JobFailure, JobStatus, RecordCounts, Stage, StageOutcome,
    SyncJob, TenableCredentials,
};

#[async_trait]
pub trait ConnectorStore: Send + Sync {
    async fn get_connector(&self, connector_id: &str) -> Result<Option<Connector>>;
    async fn put_connector(&self, connector: &Connector) -> Result<()>;
    /// Moves the incremental cursor forward; an older cursor never replaces a newer one.
    async fn advance_cursor(&self, connector_id: &str, cursor: i64) -> Result<()>;
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn tenable_credentials(&self, secret_id: &str) -> Result<TenableCredentials>;
}

/// Jobs and their chunk records.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Creates the job; fails if a job with that id exists.
    async fn create_job(&self, job: &SyncJob) -> Result<()>;
    async fn get_job(&self, job_id: &str) -> Result<Option<SyncJob>>;
    /// Marks the stage started (the first start wins) and makes it the current stage.
    async fn stage_started(&self, job_id: &str, stage: Stage, at: DateTime<Utc>) -> Result<()>;
    /// Records the stage's end. A failed stage stays failed when a later chunk ends it well.
    async fn stage_ended(&self, job_id: &str, stage: Stage, outcome: StageOutcome, at: DateTime<Utc>) -> Result<()>;
    async fn set_status(&self, job_id: &str, status: JobStatus) -> Result<()>;
    async fn add_export(&self, job_id: &str, export: &ExportRef) -> Result<()>;
    /// Adds an export's chunks to the job's total.
    async fn add_total_chunks(&self, job_id: &str, chunks: u64) -> Result<()>;
    async fn add_counts(&self, job_id: &str, counts: &RecordCounts) -> Result<()>;
    /// Keeps the first failure: it is the cause, what follows is consequence.
    async fn record_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()>;
    /// Keeps the latest failure a retry may still cure.
    async fn note_retryable_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()>;
    /// Ends the job with its final status and chunk counts.
    async fn finish_job(&self, job: &SyncJob) -> Result<()>;

    async fn get_chunk(&self, job_id: &str, chunk_key: &str) -> Result<Option<ChunkRecord>>;
    async fn chunks(&self, job_id: &str) -> Result<Vec<ChunkRecord>>;
    /// Saves a chunk's progress (fetched, normalized) unless it is already processed.
    async fn save_chunk(&self, chunk: &ChunkRecord) -> Result<()>;
    /// Counts a failed attempt on the chunk, keeping why it failed.
    async fn chunk_attempt_failed(&self, job_id: &str, chunk_key: &str, failure: &JobFailure) -> Result<()>;
    /// Marks the chunk processed and adds its counts to the job, atomically and once:
    /// returns false, changing nothing, if the chunk was already processed.
    async fn commit_chunk(&self, job_id: &str, chunk_key: &str, counts: &RecordCounts, at: DateTime<Utc>) -> Result<bool>;
}

/// What changed on a stored record in the job that last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    New,
    Updated,
    Unchanged,
    Reopened,
    Fixed,
}

/// A finding as kept in the findings table: the public record plus bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFinding {
    pub connector_id: String,
    #[serde(flatten)]
    pub finding: Finding,
    /// False once a full sync no longer returns the finding.
    pub active: bool,
    pub first_job_id: String,
    pub last_job_id: String,
    /// The chunk of the last job that wrote it.
    #[serde(default)]
    pub last_chunk: String,
    /// What that chunk changed: replayed as-is if the chunk is retried, so a retry
    /// counts nothing twice.
    pub last_change: Change,
    /// Where the full plugin output is: `s3://<raw chunk key>#<record index>`.
    pub raw_ref: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAsset {
    pub connector_id: String,
    #[serde(flatten)]
    pub asset: Asset,
    pub first_job_id: String,
    pub last_job_id: String,
    #[serde(default)]
    pub last_chunk: String,
    pub last_change: Change,
    pub last_seen: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The current state of a connector's assets and findings.
#[async_trait]
pub trait InventoryStore: Send + Sync {
    async fn findings(&self, connector_id: &str, finding_ids: &[String]) -> Result<HashMap<String, StoredFinding>>;
    async fn put_findings(&self, findings: &[StoredFinding]) -> Result<()>;
    async fn assets(&self, connector_id: &str, asset_ids: &[String]) -> Result<HashMap<String, StoredAsset>>;
    async fn put_assets(&self, assets: &[StoredAsset]) -> Result<()>;
    /// Marks inactive every active finding of the connector that this job did not
    /// see, and says how many.
    async fn deactivate_unseen(&self, connector_id: &str, job_id: &str) -> Result<u64>;
}

/// Raw and normalized chunks (S3).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn put_object(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<()>;
    async fn get_object(&self, key: &str) -> Result<Vec<u8>>;
}

/// Where a job's chunks are kept: by connector, job and chunk, so a job's data can be
/// listed, kept or expired as one prefix.
pub mod keys {
    pub fn raw_chunk(connector_id: &str, job_id: &str, chunk_key: &str) -> String {
        format!("raw/{connector_id}/{job_id}/{chunk_key}.json")
    }

    pub fn normalized_chunk(connector_id: &str, job_id: &str, chunk_key: &str) -> String {
        format!("normalized/{connector_id}/{job_id}/{chunk_key}.ndjson")
    }

    /// The list of chunk ids the state machine's Distributed Map reads.
    pub fn chunk_manifest(connector_id: &str, job_id: &str, export_kind: &str) -> String {
        format!("manifests/{connector_id}/{job_id}/{export_kind}.json")
    }
}
