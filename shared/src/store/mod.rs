//! Storage ports: what the pipeline and the API need from DynamoDB, S3 and Secrets
//! Manager, as small traits. Adapters: [`dynamodb`], [`s3`], [`secrets`] for AWS, and
//! [`memory`] for unit tests of the logic.

#[cfg(any(test, feature = "test-support"))]
pub mod contract;
pub mod dynamodb;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
pub mod metering;
pub mod s3;
pub mod secrets;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::errors::{Result, SyncError};
use crate::model::{
    Asset, ChunkCounts, ChunkRecord, Connector, ConnectorRecord, ExportKind, ExportRef, Finding, JobFailure, JobStatus,
    LogLevel, RecordCounts, ScannerCredentials, SeenAssets, Stage, StageOutcome, SweepMark, SyncClaim, SyncJob,
    SyncMode, TriggerKind,
};
use crate::usage::Usage;

#[async_trait]
pub trait ConnectorStore: Send + Sync {
    async fn get_connector(&self, connector_id: &str) -> Result<Option<Connector>> {
        Ok(self.connector_record(connector_id).await?.map(|record| record.connector))
    }
    /// Replaces the whole record with a connector that has no schedule.
    async fn put_connector(&self, connector: &Connector) -> Result<()>;
    /// Moves the incremental cursor forward; an older cursor never replaces a newer one.
    async fn advance_cursor(&self, connector_id: &str, cursor: i64) -> Result<()>;

    async fn connector_record(&self, connector_id: &str) -> Result<Option<ConnectorRecord>>;
    async fn list_connectors(&self) -> Result<Vec<ConnectorRecord>>;
    /// Fails with `Conflict` if a connector with that id exists or was retired.
    async fn create_connector(&self, record: &ConnectorRecord) -> Result<()>;
    /// Replaces what the API manages, keeping what syncs wrote (the cursor and the
    /// claim): a sync that ends meanwhile loses nothing. `NotFound` if it is gone.
    async fn update_connector(&self, record: &ConnectorRecord) -> Result<()>;
    /// Removes the record outright, leaving the id free: for a connector that never
    /// synced (one whose keys could not be stored). False if there was no such connector.
    async fn delete_connector(&self, connector_id: &str) -> Result<bool>;
    /// Deletes the connector for good if its last claimed sync still is `last_claim`
    /// (none: no sync was ever claimed), as one conditional write, so that a sync
    /// starting meanwhile and the deletion cannot both succeed. The id stays retired: no
    /// new connector can take it and inherit the findings and assets stored under it.
    /// False, changing nothing, when the connector is gone or a sync was claimed since.
    async fn retire_connector(&self, connector_id: &str, last_claim: Option<&str>) -> Result<bool>;
    /// Makes `claim` the connector's last started sync if the last one still is
    /// `previous` (a job id; none: no sync was ever claimed). False, changing nothing,
    /// when another start came first.
    async fn claim_sync(&self, connector_id: &str, previous: Option<&str>, claim: &SyncClaim) -> Result<bool>;
    /// Drops the claim of a sync that could not start, if it still is `job_id`'s.
    async fn release_sync(&self, connector_id: &str, job_id: &str) -> Result<()>;
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn credentials(&self, secret_id: &str) -> Result<ScannerCredentials>;
    /// Creates the secret, or replaces its keys if it exists.
    async fn put_credentials(&self, secret_id: &str, credentials: &ScannerCredentials) -> Result<()>;
    /// Deletes the secret at once (no recovery window, so the id can be used again);
    /// a secret that is already gone is fine.
    async fn delete_secret(&self, secret_id: &str) -> Result<()>;
}

/// What ending a job writes.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEnding {
    pub status: JobStatus,
    pub chunks: ChunkCounts,
    pub ended_at: DateTime<Utc>,
}

/// Which of a connector's jobs a history lists. Empty lists and absent bounds keep all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryFilter {
    pub modes: Vec<SyncMode>,
    pub statuses: Vec<JobStatus>,
    /// The stage reached: the last stage the job started.
    pub stages: Vec<Stage>,
    pub trigger: Option<TriggerKind>,
    /// Jobs started at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Jobs started at or before this time.
    pub to: Option<DateTime<Utc>>,
    /// Jobs whose log has an entry at this level or a more serious one.
    pub level: Option<LogLevel>,
}

impl HistoryFilter {
    pub fn matches(&self, job: &SyncJob) -> bool {
        fn one_of<T: PartialEq>(allowed: &[T], value: Option<T>) -> bool {
            allowed.is_empty() || value.is_some_and(|value| allowed.contains(&value))
        }
        one_of(&self.modes, Some(job.mode))
            && one_of(&self.statuses, Some(job.status))
            && one_of(&self.stages, job.stage_reached())
            && self.trigger.is_none_or(|kind| job.trigger.kind() == kind)
            && self.from.is_none_or(|from| job.started_at >= from)
            && self.to.is_none_or(|to| job.started_at <= to)
            && self.level.is_none_or(|level| job.log_level() >= level)
    }
}

/// One page of a history, newest first: at most `limit` jobs, after where the page
/// `token` ended.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// At least 1.
    pub limit: usize,
    pub token: Option<String>,
}

/// Where a history page ended: the last job's keys in the jobs table's `by-connector`
/// index (the shape of DynamoDB's LastEvaluatedKey). Callers see it as an opaque token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryCursor {
    pub connector_id: String,
    pub started_at: DateTime<Utc>,
    pub job_id: String,
}

impl HistoryCursor {
    pub fn after(job: &SyncJob) -> Self {
        HistoryCursor { connector_id: job.connector_id.clone(), started_at: job.started_at, job_id: job.job_id.clone() }
    }

    pub fn token(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The cursor a token names; it must come from a page of the same connector.
    pub fn from_token(token: &str, connector_id: &str) -> Result<Self> {
        let cursor: HistoryCursor = URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|json| serde_json::from_slice::<HistoryCursor>(&json).ok())
            // A job id DynamoDB could not take as a key was never in a page.
            .filter(|cursor| (1..=2048).contains(&cursor.job_id.len()))
            .ok_or_else(|| {
                SyncError::invalid_field("next_token", "is not a token this API gave: pass next_token back as it came")
            })?;
        if cursor.connector_id != connector_id {
            return Err(SyncError::invalid_field("next_token", "belongs to another connector's history"));
        }
        Ok(cursor)
    }
}

/// Why a connector cannot be created with the id of one that was deleted.
pub(crate) fn retired_id(connector_id: &str) -> SyncError {
    SyncError::Conflict(format!(
        "the id {connector_id} belonged to a deleted connector whose findings and assets are kept under it: \
         choose another id"
    ))
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
    async fn set_execution_arn(&self, job_id: &str, execution_arn: &str) -> Result<()>;
    async fn add_export(&self, job_id: &str, export: &ExportRef) -> Result<()>;
    /// Adds the chunks of the job's export of `kind` to its total, once: a retried poll
    /// adds nothing.
    async fn add_total_chunks(&self, job_id: &str, kind: ExportKind, chunks: u64) -> Result<()>;
    async fn add_counts(&self, job_id: &str, counts: &RecordCounts) -> Result<()>;
    /// Adds what one stage invocation consumed to the job's usage.
    async fn add_usage(&self, job_id: &str, usage: &Usage) -> Result<()>;
    /// Keeps the first failure: it is the cause, what follows is consequence.
    async fn record_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()>;
    /// Keeps the latest failure a retry may still cure.
    async fn note_retryable_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()>;
    /// Ends the job: its final status and chunk counts, and no stage current.
    async fn finish_job(&self, job_id: &str, ending: &JobEnding) -> Result<()>;
    /// A connector's jobs that pass `filter`, newest first, and the token of the next
    /// page when more jobs may follow.
    async fn history(
        &self,
        connector_id: &str,
        filter: &HistoryFilter,
        page: &HistoryPage,
    ) -> Result<(Vec<SyncJob>, Option<String>)>;

    async fn get_chunk(&self, job_id: &str, chunk_key: &str) -> Result<Option<ChunkRecord>>;
    async fn chunks(&self, job_id: &str) -> Result<Vec<ChunkRecord>>;
    /// Saves a chunk's progress (fetched, normalized) unless it is already processed.
    async fn save_chunk(&self, chunk: &ChunkRecord) -> Result<()>;
    /// Counts a failed attempt on the chunk, keeping why it failed.
    async fn chunk_attempt_failed(&self, job_id: &str, chunk_key: &str, failure: &JobFailure) -> Result<()>;
    /// Marks the chunk processed, keeping the assets it returned, and adds its counts
    /// to the job, atomically and once: returns false, changing nothing, if the chunk
    /// was already processed or the job was cancelled.
    async fn commit_chunk(
        &self,
        job_id: &str,
        chunk_key: &str,
        counts: &RecordCounts,
        seen: &SeenAssets,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Records chunks an earlier job of the same sync processed as processed by this
    /// job (`chunk.job_id`, one job for all) too, counting each as processed and carried
    /// over, atomically and once: a chunk the job has already changes nothing, and
    /// nothing is carried into a cancelled job. Returns how many were carried over now.
    async fn carry_over_chunks(&self, chunks: &[ChunkRecord]) -> Result<u64>;
    /// Records one page of finalize's sweep, once: moves the job's sweep mark from
    /// `from` (none: the sweep has not begun) to `to` and adds the findings the page
    /// inactivated. False, changing nothing, when the mark is no longer at `from` (the
    /// page was recorded by an earlier attempt) or the job was cancelled.
    async fn record_sweep(
        &self,
        job_id: &str,
        from: Option<&SweepMark>,
        to: &SweepMark,
        inactivated: u64,
    ) -> Result<bool>;
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
    /// A full sync no longer returned it.
    Inactivated,
}

/// The partition of an asset's findings: `<connector id>/<asset id>`. One partition per
/// asset spreads a sync's writes over its assets (a single DynamoDB partition takes at
/// most 1,000 write units a second), and one Query reads all an asset holds, which is
/// what merging a chunk needs: a vulns chunk carries every finding of its assets.
pub fn asset_key(connector_id: &str, asset_id: &str) -> String {
    format!("{connector_id}/{asset_id}")
}

/// A finding as kept in the findings table: the public record plus bookkeeping.
///
/// A finding is written only when a sync changes it, so the items a job last wrote are
/// exactly what it changed, and a re-sync of unchanged data writes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFinding {
    /// See [`asset_key`].
    pub asset_key: String,
    pub connector_id: String,
    #[serde(flatten)]
    pub finding: Finding,
    /// False once a full sync no longer returns the finding.
    pub active: bool,
    pub first_job_id: String,
    pub last_job_id: String,
    /// The chunk of the last job that wrote it ([`SWEEP_CHUNK`] for finalize's sweep).
    #[serde(default)]
    pub last_chunk: String,
    /// What that chunk changed: replayed as-is if the chunk is retried, so a retry
    /// counts nothing twice.
    pub last_change: Change,
    /// Where the full plugin output is: `s3://<raw chunk key>#<record index>`.
    pub raw_ref: String,
    pub updated_at: DateTime<Utc>,
}

impl StoredFinding {
    /// The finding as `job_id`'s `chunk` leaves it when the scanner no longer returns it.
    pub fn inactivated(&self, job_id: &str, chunk: &str, at: DateTime<Utc>) -> StoredFinding {
        StoredFinding {
            active: false,
            last_job_id: job_id.to_string(),
            last_chunk: chunk.to_string(),
            last_change: Change::Inactivated,
            updated_at: at,
            ..self.clone()
        }
    }
}

/// What [`StoredFinding::last_chunk`] says when finalize's sweep of unseen assets wrote it.
pub const SWEEP_CHUNK: &str = "sweep";

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

/// The most jobs one sync may be made of (a job and the jobs it resumed).
pub const MAX_SYNC_JOBS: usize = 100;

/// One page of a connector's assets in asset id order, and the asset id the next page
/// starts after (none on the last page).
pub type AssetsPage = (Vec<StoredAsset>, Option<String>);

/// One asset's stored findings, as read for a merge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssetFindings {
    /// Every finding of the asset, active or not.
    pub findings: Vec<StoredFinding>,
    /// How the store kept them when they were read. A merge hands it back with its
    /// write, so that a store keeping several findings to an item knows which items to
    /// rewrite; callers do not look inside.
    pub layout: FindingsLayout,
}

/// How a store spread an asset's findings over its items (see [`AssetFindings::layout`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FindingsLayout {
    /// How many items the findings are spread over; 0 when none is stored.
    pub(crate) parts: u32,
    /// True when items of two layouts were found: a write that grew the layout was cut
    /// short, and the next write must lay every item out again.
    pub(crate) unsettled: bool,
}

/// What a merge leaves of one asset's findings.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingsUpdate {
    pub asset_id: String,
    /// The layout the findings were read in.
    pub layout: FindingsLayout,
    /// Every finding the asset has after the merge, changed or not: a store that keeps
    /// several findings to an item rewrites a changed finding's neighbours with it.
    pub findings: Vec<StoredFinding>,
    /// The finding ids of those the merge changed; nothing else needs a write.
    pub changed: HashSet<String>,
}

impl FindingsUpdate {
    /// An update of the asset whose stored findings were `stored`, holding none yet.
    pub fn of(asset_id: impl Into<String>, stored: &AssetFindings) -> Self {
        FindingsUpdate {
            asset_id: asset_id.into(),
            layout: stored.layout,
            findings: Vec::with_capacity(stored.findings.len()),
            changed: HashSet::new(),
        }
    }

    /// Adds a finding as stored: it needs no write of its own.
    pub fn keep(&mut self, finding: StoredFinding) {
        self.findings.push(finding);
    }

    /// Adds a finding the merge changed.
    pub fn change(&mut self, finding: StoredFinding) {
        self.changed.insert(finding.finding.finding_id.clone());
        self.findings.push(finding);
    }

    /// Whether the update writes anything.
    pub fn changes_anything(&self) -> bool {
        !self.changed.is_empty()
    }
}

/// The current state of a connector's assets and findings.
#[async_trait]
pub trait InventoryStore: Send + Sync {
    /// Every stored finding of each asset, active or not, by asset id (assets with none
    /// are left out).
    async fn findings_of_assets(
        &self,
        connector_id: &str,
        asset_ids: &[String],
    ) -> Result<HashMap<String, AssetFindings>>;
    /// Writes the changed findings of each asset (updates that change nothing are
    /// skipped).
    async fn put_findings(&self, connector_id: &str, updates: &[FindingsUpdate]) -> Result<()>;
    async fn assets(&self, connector_id: &str, asset_ids: &[String]) -> Result<HashMap<String, StoredAsset>>;
    async fn put_assets(&self, assets: &[StoredAsset]) -> Result<()>;
    /// At most `limit` of the connector's assets, in asset id order, after `after`.
    async fn assets_page(&self, connector_id: &str, after: Option<&str>, limit: usize) -> Result<AssetsPage>;
}

/// Raw and normalized chunks (S3).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn put_object(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<()>;
    async fn get_object(&self, key: &str) -> Result<Vec<u8>>;
    /// The object, or None when there is none under `key`.
    async fn find_object(&self, key: &str) -> Result<Option<Vec<u8>>>;
}

/// Where a job's chunks are kept: by connector, job and chunk, so a job's data can be
/// listed, kept or expired as one prefix.
pub mod keys {
    pub fn raw_chunk(connector_id: &str, job_id: &str, chunk_key: &str) -> String {
        format!("raw/{connector_id}/{job_id}/{chunk_key}.json")
    }

    /// What the raw chunk refers to and its normalizer needs (see
    /// [`crate::scanners::ExportScanner::chunk_reference`]), kept beside it.
    pub fn chunk_reference(connector_id: &str, job_id: &str, chunk_key: &str) -> String {
        format!("raw/{connector_id}/{job_id}/{chunk_key}.reference.json")
    }

    /// A connector's reference cache, kept between syncs: `name` is the scanner's own.
    pub fn reference(connector_id: &str, name: &str) -> String {
        format!("reference/{connector_id}/{name}")
    }

    pub fn normalized_chunk(connector_id: &str, job_id: &str, chunk_key: &str) -> String {
        format!("normalized/{connector_id}/{job_id}/{chunk_key}.ndjson")
    }

    /// The assets a job's vulns chunks returned, put together for its sweep (see
    /// [`crate::model::SeenAssets`]).
    pub fn seen_assets(connector_id: &str, job_id: &str) -> String {
        format!("sweep/{connector_id}/{job_id}/seen-assets.bin")
    }

    /// The list of chunk ids the state machine's Distributed Map reads.
    pub fn chunk_manifest(connector_id: &str, job_id: &str, export_kind: &str) -> String {
        format!("manifests/{connector_id}/{job_id}/{export_kind}.json")
    }
}
