//! In-memory adapters for unit tests of the pipeline logic. They keep the same
//! contracts as the AWS adapters (first failure wins, a chunk commits once), which the
//! end-to-end tests prove for the real ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ConnectorStore, InventoryStore, JobStore, ObjectStore, SecretStore, StoredAsset, StoredFinding};
use crate::errors::{Result, SyncError};
use crate::model::{
    ChunkRecord, ChunkStatus, Connector, ExportRef, JobFailure, JobStatus, RecordCounts, Stage, StageOutcome, StageRun,
    SyncJob, TenableCredentials,
};

/// Every port in one struct, so a test builds one value and passes it everywhere.
#[derive(Default)]
pub struct MemoryStore {
    connectors: Mutex<HashMap<String, Connector>>,
    secrets: Mutex<HashMap<String, TenableCredentials>>,
    jobs: Mutex<HashMap<String, SyncJob>>,
    chunks: Mutex<BTreeMap<(String, String), ChunkRecord>>,
    findings: Mutex<BTreeMap<(String, String), StoredFinding>>,
    assets: Mutex<BTreeMap<(String, String), StoredAsset>>,
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep the data readable.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryStore {
    pub fn put_secret(&self, secret_id: &str, credentials: TenableCredentials) {
        lock(&self.secrets).insert(secret_id.to_string(), credentials);
    }

    pub fn all_findings(&self, connector_id: &str) -> Vec<StoredFinding> {
        lock(&self.findings).values().filter(|f| f.connector_id == connector_id).cloned().collect()
    }

    pub fn all_assets(&self, connector_id: &str) -> Vec<StoredAsset> {
        lock(&self.assets).values().filter(|a| a.connector_id == connector_id).cloned().collect()
    }

    pub fn object_keys(&self) -> Vec<String> {
        lock(&self.objects).keys().cloned().collect()
    }

    fn with_job<T>(&self, job_id: &str, change: impl FnOnce(&mut SyncJob) -> T) -> Result<T> {
        let mut jobs = lock(&self.jobs);
        let job = jobs.get_mut(job_id).ok_or_else(|| SyncError::InvalidRequest(format!("no job {job_id}")))?;
        Ok(change(job))
    }
}

#[async_trait]
impl ConnectorStore for MemoryStore {
    async fn get_connector(&self, connector_id: &str) -> Result<Option<Connector>> {
        Ok(lock(&self.connectors).get(connector_id).cloned())
    }

    async fn put_connector(&self, connector: &Connector) -> Result<()> {
        lock(&self.connectors).insert(connector.connector_id.clone(), connector.clone());
        Ok(())
    }

    async fn advance_cursor(&self, connector_id: &str, cursor: i64) -> Result<()> {
        if let Some(connector) = lock(&self.connectors).get_mut(connector_id) {
            connector.sync_cursor = Some(connector.sync_cursor.map_or(cursor, |current| current.max(cursor)));
        }
        Ok(())
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    async fn tenable_credentials(&self, secret_id: &str) -> Result<TenableCredentials> {
        lock(&self.secrets)
            .get(secret_id)
            .cloned()
            .ok_or_else(|| SyncError::InvalidRequest(format!("the secret {secret_id} does not exist")))
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn create_job(&self, job: &SyncJob) -> Result<()> {
        let mut jobs = lock(&self.jobs);
        if jobs.contains_key(&job.job_id) {
            return Err(SyncError::InvalidRequest(format!("job {} already exists", job.job_id)));
        }
        jobs.insert(job.job_id.clone(), job.clone());
        Ok(())
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<SyncJob>> {
        Ok(lock(&self.jobs).get(job_id).cloned())
    }

    async fn stage_started(&self, job_id: &str, stage: Stage, at: DateTime<Utc>) -> Result<()> {
        self.with_job(job_id, |job| {
            job.stages.entry(stage).or_insert(StageRun { outcome: StageOutcome::Running, started_at: at, ended_at: None });
            job.current_stage = Some(stage);
        })
    }

    async fn stage_ended(&self, job_id: &str, stage: Stage, outcome: StageOutcome, at: DateTime<Utc>) -> Result<()> {
        self.with_job(job_id, |job| {
            let run = job.stages.entry(stage).or_insert(StageRun { outcome, started_at: at, ended_at: None });
            run.ended_at = Some(at);
            if run.outcome != StageOutcome::Failed {
                run.outcome = outcome;
            }
        })
    }

    async fn set_status(&self, job_id: &str, status: JobStatus) -> Result<()> {
        self.with_job(job_id, |job| job.status = status)
    }

    async fn add_export(&self, job_id: &str, export: &ExportRef) -> Result<()> {
        self.with_job(job_id, |job| job.exports.push(export.clone()))
    }

    async fn add_total_chunks(&self, job_id: &str, chunks: u64) -> Result<()> {
        self.with_job(job_id, |job| job.chunks.total += chunks)
    }

    async fn add_counts(&self, job_id: &str, counts: &RecordCounts) -> Result<()> {
        self.with_job(job_id, |job| job.counts.add(counts))
    }

    async fn record_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()> {
        self.with_job(job_id, |job| {
            job.failure.get_or_insert_with(|| failure.clone());
        })
    }

    async fn note_retryable_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()> {
        self.with_job(job_id, |job| job.last_retryable_failure = Some(failure.clone()))
    }

    async fn finish_job(&self, finished: &SyncJob) -> Result<()> {
        self.with_job(&finished.job_id, |job| {
            job.status = finished.status;
            job.chunks = finished.chunks;
            job.ended_at = finished.ended_at;
            job.current_stage = finished.current_stage;
        })
    }

    async fn get_chunk(&self, job_id: &str, chunk_key: &str) -> Result<Option<ChunkRecord>> {
        Ok(lock(&self.chunks).get(&(job_id.to_string(), chunk_key.to_string())).cloned())
    }

    async fn chunks(&self, job_id: &str) -> Result<Vec<ChunkRecord>> {
        Ok(lock(&self.chunks).values().filter(|c| c.job_id == job_id).cloned().collect())
    }

    async fn save_chunk(&self, chunk: &ChunkRecord) -> Result<()> {
        let mut chunks = lock(&self.chunks);
        let key = (chunk.job_id.clone(), chunk.chunk_key.clone());
        if chunks.get(&key).is_none_or(|stored| stored.status != ChunkStatus::Processed) {
            chunks.insert(key, chunk.clone());
        }
        Ok(())
    }

    async fn chunk_attempt_failed(&self, job_id: &str, chunk_key: &str, failure: &JobFailure) -> Result<()> {
        let at = failure.occurred_at;
        let mut chunks = lock(&self.chunks);
        let chunk = chunks.entry((job_id.to_string(), chunk_key.to_string())).or_insert_with(|| ChunkRecord {
            job_id: job_id.to_string(),
            chunk_key: chunk_key.to_string(),
            status: ChunkStatus::Failed,
            failed_attempts: 0,
            raw_key: None,
            normalized_key: None,
            records: None,
            last_failure: None,
            retried: false,
            updated_at: at,
        });
        if chunk.status != ChunkStatus::Processed {
            chunk.status = ChunkStatus::Failed;
            chunk.failed_attempts += 1;
            chunk.last_failure = Some(failure.clone());
            chunk.updated_at = at;
        }
        Ok(())
    }

    async fn commit_chunk(&self, job_id: &str, chunk_key: &str, counts: &RecordCounts, at: DateTime<Utc>) -> Result<bool> {
        let mut chunks = lock(&self.chunks);
        let Some(chunk) = chunks.get_mut(&(job_id.to_string(), chunk_key.to_string())) else {
            return Err(SyncError::InvalidRequest(format!("chunk {chunk_key} of job {job_id} was never fetched")));
        };
        if chunk.status == ChunkStatus::Processed {
            return Ok(false);
        }
        chunk.retried = chunk.failed_attempts > 0;
        chunk.status = ChunkStatus::Processed;
        chunk.updated_at = at;
        self.with_job(job_id, |job| {
            job.chunks.processed += 1;
            job.counts.add(counts);
        })?;
        Ok(true)
    }
}

#[async_trait]
impl InventoryStore for MemoryStore {
    async fn findings(&self, connector_id: &str, finding_ids: &[String]) -> Result<HashMap<String, StoredFinding>> {
        let findings = lock(&self.findings);
        Ok(finding_ids
            .iter()
            .filter_map(|id| findings.get(&(connector_id.to_string(), id.clone())).map(|f| (id.clone(), f.clone())))
            .collect())
    }

    async fn put_findings(&self, findings: &[StoredFinding]) -> Result<()> {
        let mut stored = lock(&self.findings);
        for finding in findings {
            stored.insert((finding.connector_id.clone(), finding.finding.finding_id.clone()), finding.clone());
        }
        Ok(())
    }

    async fn assets(&self, connector_id: &str, asset_ids: &[String]) -> Result<HashMap<String, StoredAsset>> {
        let assets = lock(&self.assets);
        Ok(asset_ids
            .iter()
            .filter_map(|id| assets.get(&(connector_id.to_string(), id.clone())).map(|a| (id.clone(), a.clone())))
            .collect())
    }

    async fn put_assets(&self, assets: &[StoredAsset]) -> Result<()> {
        let mut stored = lock(&self.assets);
        for asset in assets {
            stored.insert((asset.connector_id.clone(), asset.asset.asset_id.clone()), asset.clone());
        }
        Ok(())
    }

    async fn deactivate_unseen(&self, connector_id: &str, job_id: &str) -> Result<u64> {
        let mut deactivated = 0;
        for finding in lock(&self.findings).values_mut() {
            if finding.connector_id == connector_id && finding.active && finding.last_job_id != job_id {
                finding.active = false;
                deactivated += 1;
            }
        }
        Ok(deactivated)
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn put_object(&self, key: &str, body: Vec<u8>, _content_type: &str) -> Result<()> {
        lock(&self.objects).insert(key.to_string(), body);
        Ok(())
    }

    async fn get_object(&self, key: &str) -> Result<Vec<u8>> {
        lock(&self.objects)
            .get(key)
            .cloned()
            .ok_or_else(|| SyncError::storage(format!("reading s3 object {key}"), "no such key", false))
    }
}
