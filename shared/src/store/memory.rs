//! In-memory adapters for unit tests of the pipeline logic. They keep the same
//! contracts as the AWS adapters (first failure wins, a chunk commits once), which the
//! end-to-end tests prove for the real ones.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AssetFindings, AssetsPage, ConnectorStore, FindingsUpdate, HistoryCursor, HistoryFilter, HistoryPage,
    InventoryStore, JobEnding, JobStore, ObjectStore, SecretStore, StoredAsset, StoredFinding, retired_id,
};
use crate::errors::{Result, SyncError};
use crate::model::{
    ChunkRecord, ChunkStatus, Connector, ConnectorRecord, ExportKind, ExportRef, JobFailure, JobStatus, RecordCounts,
    ScannerCredentials, SeenAssets, Stage, StageOutcome, StageRun, SweepMark, SyncClaim, SyncJob,
};
use crate::usage::Usage;

/// Every port in one struct, so a test builds one value and passes it everywhere.
#[derive(Default)]
pub struct MemoryStore {
    connectors: Mutex<HashMap<String, ConnectorRecord>>,
    retired_connectors: Mutex<HashSet<String>>,
    secrets: Mutex<HashMap<String, ScannerCredentials>>,
    jobs: Mutex<HashMap<String, SyncJob>>,
    chunks: Mutex<BTreeMap<(String, String), ChunkRecord>>,
    /// The exports whose chunks are counted in their job's total.
    findings: Mutex<BTreeMap<(String, String), StoredFinding>>,
    assets: Mutex<BTreeMap<(String, String), StoredAsset>>,
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep the data readable.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryStore {
    pub fn put_secret(&self, secret_id: &str, credentials: ScannerCredentials) {
        lock(&self.secrets).insert(secret_id.to_string(), credentials);
    }

    pub fn secret(&self, secret_id: &str) -> Option<ScannerCredentials> {
        lock(&self.secrets).get(secret_id).cloned()
    }

    pub fn all_findings(&self, connector_id: &str) -> Vec<StoredFinding> {
        lock(&self.findings).values().filter(|f| f.connector_id == connector_id).cloned().collect()
    }

    /// Stores a finding as it is, for a test to set up what a sync will find.
    pub fn put_finding(&self, finding: StoredFinding) {
        lock(&self.findings).insert((finding.connector_id.clone(), finding.finding.finding_id.clone()), finding);
    }

    pub fn all_assets(&self, connector_id: &str) -> Vec<StoredAsset> {
        lock(&self.assets).values().filter(|a| a.connector_id == connector_id).cloned().collect()
    }

    pub fn object_keys(&self) -> Vec<String> {
        lock(&self.objects).keys().cloned().collect()
    }

    /// Changes a job, unless it was cancelled: as in DynamoDB, a stage still in flight
    /// when a cancel stopped the execution leaves the job as the cancel settled it.
    fn with_job(&self, job_id: &str, change: impl FnOnce(&mut SyncJob)) -> Result<()> {
        self.changed_job(job_id, change).map(|_| ())
    }

    /// [`Self::with_job`], telling whether the job was changed.
    fn changed_job(&self, job_id: &str, change: impl FnOnce(&mut SyncJob)) -> Result<bool> {
        let mut jobs = lock(&self.jobs);
        let job = jobs.get_mut(job_id).ok_or_else(|| SyncError::InvalidRequest(format!("no job {job_id}")))?;
        let open = job.status != JobStatus::Cancelled;
        if open {
            change(job);
        }
        Ok(open)
    }
}

#[async_trait]
impl ConnectorStore for MemoryStore {
    async fn put_connector(&self, connector: &Connector) -> Result<()> {
        lock(&self.connectors).insert(connector.connector_id.clone(), ConnectorRecord::from(connector.clone()));
        Ok(())
    }

    async fn advance_cursor(&self, connector_id: &str, cursor: i64) -> Result<()> {
        if let Some(record) = lock(&self.connectors).get_mut(connector_id) {
            let connector = &mut record.connector;
            connector.sync_cursor = Some(connector.sync_cursor.map_or(cursor, |current| current.max(cursor)));
        }
        Ok(())
    }

    async fn connector_record(&self, connector_id: &str) -> Result<Option<ConnectorRecord>> {
        Ok(lock(&self.connectors).get(connector_id).cloned())
    }

    async fn list_connectors(&self) -> Result<Vec<ConnectorRecord>> {
        Ok(lock(&self.connectors).values().cloned().collect())
    }

    async fn create_connector(&self, record: &ConnectorRecord) -> Result<()> {
        let mut connectors = lock(&self.connectors);
        let connector_id = &record.connector.connector_id;
        if connectors.contains_key(connector_id) {
            return Err(SyncError::Conflict(format!("a connector {connector_id} already exists: choose another id")));
        }
        if lock(&self.retired_connectors).contains(connector_id) {
            return Err(retired_id(connector_id));
        }
        connectors.insert(connector_id.clone(), record.clone());
        Ok(())
    }

    async fn update_connector(&self, record: &ConnectorRecord) -> Result<()> {
        let mut connectors = lock(&self.connectors);
        let connector_id = &record.connector.connector_id;
        let stored = connectors
            .get_mut(connector_id)
            .ok_or_else(|| SyncError::NotFound(format!("there is no connector {connector_id}")))?;
        let mut updated = record.clone();
        updated.connector.sync_cursor = stored.connector.sync_cursor;
        updated.sync_claim = stored.sync_claim.clone();
        *stored = updated;
        Ok(())
    }

    async fn delete_connector(&self, connector_id: &str) -> Result<bool> {
        Ok(lock(&self.connectors).remove(connector_id).is_some())
    }

    async fn retire_connector(&self, connector_id: &str, last_claim: Option<&str>) -> Result<bool> {
        let mut connectors = lock(&self.connectors);
        let claimed = |record: &ConnectorRecord| record.sync_claim.as_ref().map(|claim| claim.job_id.clone());
        if connectors.get(connector_id).is_none_or(|record| claimed(record).as_deref() != last_claim) {
            return Ok(false);
        }
        connectors.remove(connector_id);
        lock(&self.retired_connectors).insert(connector_id.to_string());
        Ok(true)
    }

    async fn claim_sync(&self, connector_id: &str, previous: Option<&str>, claim: &SyncClaim) -> Result<bool> {
        let mut connectors = lock(&self.connectors);
        let Some(record) = connectors.get_mut(connector_id) else { return Ok(false) };
        if record.sync_claim.as_ref().map(|c| c.job_id.as_str()) != previous {
            return Ok(false);
        }
        record.sync_claim = Some(claim.clone());
        Ok(true)
    }

    async fn release_sync(&self, connector_id: &str, job_id: &str) -> Result<()> {
        if let Some(record) = lock(&self.connectors).get_mut(connector_id)
            && record.sync_claim.as_ref().is_some_and(|c| c.job_id == job_id)
        {
            record.sync_claim = None;
        }
        Ok(())
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    async fn credentials(&self, secret_id: &str) -> Result<ScannerCredentials> {
        self.secret(secret_id)
            .ok_or_else(|| SyncError::InvalidRequest(format!("the secret {secret_id} does not exist")))
    }

    async fn put_credentials(&self, secret_id: &str, credentials: &ScannerCredentials) -> Result<()> {
        self.put_secret(secret_id, credentials.clone());
        Ok(())
    }

    async fn delete_secret(&self, secret_id: &str) -> Result<()> {
        lock(&self.secrets).remove(secret_id);
        Ok(())
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn create_job(&self, job: &SyncJob) -> Result<()> {
        let mut jobs = lock(&self.jobs);
        if jobs.contains_key(&job.job_id) {
            return Err(SyncError::Conflict(format!("job {} already exists", job.job_id)));
        }
        jobs.insert(job.job_id.clone(), job.clone());
        Ok(())
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<SyncJob>> {
        Ok(lock(&self.jobs).get(job_id).cloned())
    }

    async fn stage_started(&self, job_id: &str, stage: Stage, at: DateTime<Utc>) -> Result<()> {
        self.with_job(job_id, |job| {
            job.stages.entry(stage).or_insert(StageRun {
                outcome: StageOutcome::Running,
                started_at: at,
                ended_at: None,
            });
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

    async fn add_total_chunks(&self, job_id: &str, kind: ExportKind, chunks: u64) -> Result<()> {
        self.with_job(job_id, |job| {
            if !job.counted_exports.contains(&kind) {
                job.chunks.total += chunks;
                job.counted_exports.push(kind);
            }
        })
    }

    async fn add_counts(&self, job_id: &str, counts: &RecordCounts) -> Result<()> {
        self.with_job(job_id, |job| job.counts.add(counts))
    }

    async fn add_usage(&self, job_id: &str, usage: &Usage) -> Result<()> {
        self.with_job(job_id, |job| job.usage.add(usage))
    }

    async fn record_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()> {
        self.with_job(job_id, |job| {
            job.failure.get_or_insert_with(|| failure.clone());
        })
    }

    async fn set_execution_arn(&self, job_id: &str, execution_arn: &str) -> Result<()> {
        self.with_job(job_id, |job| job.execution_arn = Some(execution_arn.to_string()))
    }

    async fn note_retryable_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()> {
        self.with_job(job_id, |job| job.last_retryable_failure = Some(failure.clone()))
    }

    async fn finish_job(&self, job_id: &str, ending: &JobEnding) -> Result<()> {
        self.with_job(job_id, |job| {
            job.status = ending.status;
            job.chunks = ending.chunks;
            job.ended_at = Some(ending.ended_at);
            job.current_stage = None;
        })
    }

    async fn history(
        &self,
        connector_id: &str,
        filter: &HistoryFilter,
        page: &HistoryPage,
    ) -> Result<(Vec<SyncJob>, Option<String>)> {
        let after = page.token.as_deref().map(|token| HistoryCursor::from_token(token, connector_id)).transpose()?;
        let mut jobs: Vec<SyncJob> =
            lock(&self.jobs).values().filter(|job| job.connector_id == connector_id).cloned().collect();
        // The index's order: newest first. A page starts after the job the last one ended on.
        jobs.sort_by(|a, b| (b.started_at, &b.job_id).cmp(&(a.started_at, &a.job_id)));
        let mut rest = jobs
            .into_iter()
            .skip_while(|job| {
                after.as_ref().is_some_and(|end| (job.started_at, &job.job_id) >= (end.started_at, &end.job_id))
            })
            .filter(|job| filter.matches(job))
            .peekable();
        let kept: Vec<SyncJob> = rest.by_ref().take(page.limit).collect();
        let token = match (rest.peek(), kept.last()) {
            (Some(_), Some(last)) => Some(HistoryCursor::after(last).token()),
            _ => None,
        };
        Ok((kept, token))
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
            carried_from: None,
            seen_assets: SeenAssets::default(),
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

    async fn commit_chunk(
        &self,
        job_id: &str,
        chunk_key: &str,
        counts: &RecordCounts,
        seen: &SeenAssets,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut chunks = lock(&self.chunks);
        let Some(chunk) = chunks.get_mut(&(job_id.to_string(), chunk_key.to_string())) else {
            return Err(SyncError::InvalidRequest(format!("chunk {chunk_key} of job {job_id} was never fetched")));
        };
        if chunk.status == ChunkStatus::Processed {
            return Ok(false);
        }
        let retried = chunk.failed_attempts > 0;
        // As in one DynamoDB transaction: the job's counts and the chunk's mark, or neither.
        let counted = self.changed_job(job_id, |job| {
            job.chunks.processed += 1;
            job.chunks.retried += u64::from(retried);
            job.counts.add(counts);
        })?;
        if counted {
            chunk.retried = retried;
            chunk.status = ChunkStatus::Processed;
            chunk.seen_assets = seen.clone();
            chunk.updated_at = at;
        }
        Ok(counted)
    }

    async fn carry_over_chunks(&self, records: &[ChunkRecord]) -> Result<u64> {
        let mut chunks = lock(&self.chunks);
        let mut carried = 0;
        for chunk in records {
            let key = (chunk.job_id.clone(), chunk.chunk_key.clone());
            if chunks.contains_key(&key) {
                continue;
            }
            let counted = self.changed_job(&chunk.job_id, |job| {
                job.chunks.processed += 1;
                job.chunks.carried_over += 1;
            })?;
            if counted {
                chunks.insert(key, chunk.clone());
                carried += 1;
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
        let mut recorded = false;
        self.with_job(job_id, |job| {
            if job.sweep.as_ref() == from {
                job.sweep = Some(to.clone());
                job.counts.findings_inactivated += inactivated;
                recorded = true;
            }
        })?;
        Ok(recorded)
    }
}

#[async_trait]
impl InventoryStore for MemoryStore {
    async fn findings_of_assets(
        &self,
        connector_id: &str,
        asset_ids: &[String],
    ) -> Result<HashMap<String, AssetFindings>> {
        let wanted: HashSet<&String> = asset_ids.iter().collect();
        let mut found: HashMap<String, AssetFindings> = HashMap::new();
        for finding in lock(&self.findings).values() {
            if finding.connector_id == connector_id && wanted.contains(&finding.finding.asset_id) {
                found.entry(finding.finding.asset_id.clone()).or_default().findings.push(finding.clone());
            }
        }
        Ok(found)
    }

    async fn put_findings(&self, connector_id: &str, updates: &[FindingsUpdate]) -> Result<()> {
        let mut stored = lock(&self.findings);
        // As the DynamoDB store may: an asset's unchanged findings are written with its
        // changed ones, so a merge that hands them over altered shows.
        for update in updates.iter().filter(|update| update.changes_anything()) {
            for finding in &update.findings {
                stored.insert((connector_id.to_string(), finding.finding.finding_id.clone()), finding.clone());
            }
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

    async fn assets_page(&self, connector_id: &str, after: Option<&str>, limit: usize) -> Result<AssetsPage> {
        let assets = lock(&self.assets);
        let mut page: Vec<StoredAsset> = assets
            .range((connector_id.to_string(), after.unwrap_or_default().to_string())..)
            .take_while(|((connector, _), _)| connector == connector_id)
            .filter(|((_, asset_id), _)| after.is_none_or(|after| asset_id.as_str() > after))
            .map(|(_, asset)| asset.clone())
            .take(limit + 1)
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        let next = more.then(|| page.last().map(|asset| asset.asset.asset_id.clone())).flatten();
        Ok((page, next))
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

    async fn find_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(lock(&self.objects).get(key).cloned())
    }
}
