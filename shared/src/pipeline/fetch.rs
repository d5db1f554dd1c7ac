//! Fetching: ask the scanner for an export, poll it (the state machine waits between
//! polls: no function sleeps), and download each chunk into S3 as the scanner sent it.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{ChunkOutput, JobRef, Services, resume};
use crate::errors::{Result, SyncError};
use crate::model::{ChunkRecord, ChunkStatus, ExportKind, ExportRef, JobStatus, SeenAssets, Stage, SyncJob, SyncMode};
use crate::scanners::{ExportRequest, ExportScanner, ExportState, ReferenceCache};
use crate::store::{ObjectStore, keys};

/// The fetch function's three calls, told apart by `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FetchEvent {
    /// Request the export that follows `previous` in the sync mode's plan (the first
    /// one when `previous` is null); answers null when every export is done.
    NextExport {
        job: JobRef,
        previous: Option<ExportRef>,
    },
    PollExport {
        job: JobRef,
        export: ExportRef,
    },
    FetchChunk {
        job: JobRef,
        export: ExportRef,
        chunk_id: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FetchOutput {
    Export(Option<ExportRef>),
    Poll(PollOutcome),
    Chunk(ChunkOutput),
}

/// What the state machine's poll loop decides on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollOutcome {
    /// True once every chunk can be downloaded.
    pub ready: bool,
    pub total_chunks: u64,
    /// The chunks left to fetch: all of them, but those a resumed sync carried over.
    /// The state machine skips the chunk map when none is left.
    pub pending_chunks: u64,
    /// The S3 key of the chunk id list the chunk map reads, once ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_key: Option<String>,
    /// How long the state machine waits before the next poll.
    pub wait_seconds: u64,
    /// How many chunks the chunk map fetches at once: [`CHUNKS_AT_ONCE`], or fewer when
    /// the scanner serves fewer calls at once.
    pub max_concurrency: u32,
}

/// Chunks fetched, normalized and processed at once by the chunk map, when the scanner
/// allows as many.
pub const CHUNKS_AT_ONCE: u32 = 4;

pub async fn fetch(services: &Services, event: FetchEvent) -> Result<FetchOutput> {
    match event {
        FetchEvent::NextExport { job, previous } => {
            next_export(services, &job, previous.as_ref()).await.map(FetchOutput::Export)
        }
        FetchEvent::PollExport { job, export } => poll_export(services, &job, &export).await.map(FetchOutput::Poll),
        FetchEvent::FetchChunk { job, export, chunk_id } => {
            fetch_chunk(services, &job, &export, chunk_id).await.map(FetchOutput::Chunk)
        }
    }
}

pub async fn next_export(
    services: &Services,
    job_ref: &JobRef,
    previous: Option<&ExportRef>,
) -> Result<Option<ExportRef>> {
    services
        .run_stage(&job_ref.job_id, Stage::Fetching, None, async {
            let job = services
                .jobs
                .get_job(&job_ref.job_id)
                .await?
                .ok_or_else(|| SyncError::InvalidRequest(format!("there is no job {}", job_ref.job_id)))?;
            let plan = job.mode.export_kinds();
            let next = match previous {
                None => plan.first(),
                Some(previous) => plan.iter().skip_while(|kind| **kind != previous.kind).nth(1),
            };
            let Some(&kind) = next else { return Ok(None) };
            // A retried request reuses the export the first attempt recorded.
            if let Some(requested) = job.exports.iter().find(|export| export.kind == kind) {
                return Ok(Some(requested.clone()));
            }
            job_ref.ensure_within_window(Utc::now())?;
            let connector = services.connector(&job.connector_id).await?;
            let scanner = services.scanner(&connector).await?;
            let export = match resume::reusable_export(services, &job, kind, scanner.as_ref()).await? {
                Some(export) => export,
                None => request_export(services, &job, kind, connector.sync_cursor, scanner.as_ref()).await?,
            };
            services.jobs.add_export(&job.job_id, &export).await?;
            tracing::info!(
                job_id = %job.job_id,
                kind = kind.as_str(),
                export_uuid = %export.export_uuid,
                since = export.since,
                resumed_from = export.resumed_from,
                "export requested"
            );
            Ok(Some(export))
        })
        .await
}

async fn request_export(
    services: &Services,
    job: &SyncJob,
    kind: ExportKind,
    cursor: Option<i64>,
    scanner: &dyn ExportScanner,
) -> Result<ExportRef> {
    // Explicit filters always: Tenable's defaults would silently drop findings older
    // than 30 days and every fixed one.
    let since = match (job.scope.from, job.mode, cursor) {
        (Some(from), _, _) => from.timestamp(),
        (None, SyncMode::Incremental, Some(cursor)) => cursor,
        _ => 0,
    };
    let request = ExportRequest {
        kind,
        since,
        include_fixed: true,
        assets_per_chunk: services.settings.assets_per_chunk,
        severities: job.scope.severities.clone(),
        tags: job.scope.tags.clone(),
    };
    let started = scanner.request_export(&request).await?;
    Ok(ExportRef {
        kind,
        export_uuid: started.export_uuid,
        requested_at: Utc::now(),
        since,
        adopted: started.adopted,
        resumed_from: None,
    })
}

pub async fn poll_export(services: &Services, job: &JobRef, export: &ExportRef) -> Result<PollOutcome> {
    services
        .run_stage(&job.job_id, Stage::Fetching, None, async {
            job.ensure_within_window(Utc::now())?;
            let connector = services.connector(&job.connector_id).await?;
            let status = services.scanner(&connector).await?.export_status(export.kind, &export.export_uuid).await?;
            let uuid = &export.export_uuid;
            match status.state {
                ExportState::Queued | ExportState::Processing => {
                    if Utc::now() - export.requested_at > services.settings.export_timeout {
                        return Err(SyncError::ScannerRejected {
                            reason: format!(
                                "export {uuid} was still unfinished after {} minutes",
                                services.settings.export_timeout.num_minutes()
                            ),
                            response: None,
                        });
                    }
                    Ok(PollOutcome {
                        ready: false,
                        total_chunks: 0,
                        pending_chunks: 0,
                        manifest_key: None,
                        wait_seconds: services.settings.export_poll_seconds,
                        max_concurrency: CHUNKS_AT_ONCE,
                    })
                }
                ExportState::Error => Err(SyncError::ScannerRejected {
                    reason: format!("the scanner ended export {uuid} in ERROR"),
                    response: None,
                }),
                ExportState::Cancelled => Err(SyncError::ScannerRejected {
                    reason: format!("export {uuid} was cancelled on the scanner's side"),
                    response: None,
                }),
                ExportState::Finished if !status.chunks_failed.is_empty() => Err(SyncError::ScannerRejected {
                    reason: format!("the scanner finished export {uuid} with failed chunks {:?}", status.chunks_failed),
                    response: None,
                }),
                ExportState::Finished => {
                    let mut chunk_ids = status.chunks_available;
                    chunk_ids.sort_unstable();
                    chunk_ids.dedup();
                    let total = chunk_ids.len() as u64;
                    services.jobs.add_total_chunks(&job.job_id, export.kind, total).await?;
                    let pending = resume::carry_over_chunks(services, job, export, chunk_ids).await?;
                    let manifest_key = keys::chunk_manifest(&job.connector_id, &job.job_id, export.kind.as_str());
                    let manifest = serde_json::to_vec(&pending).map_err(|e| SyncError::Internal(e.to_string()))?;
                    services.objects.put_object(&manifest_key, manifest, "application/json").await?;
                    if !pending.is_empty() {
                        // The chunk map's child executions do the work from here.
                        services.jobs.set_status(&job.job_id, JobStatus::Delegated).await?;
                    }
                    Ok(PollOutcome {
                        ready: true,
                        total_chunks: total,
                        pending_chunks: pending.len() as u64,
                        manifest_key: Some(manifest_key),
                        wait_seconds: 0,
                        max_concurrency: status
                            .concurrency_limit
                            .map_or(CHUNKS_AT_ONCE, |limit| limit.clamp(1, CHUNKS_AT_ONCE)),
                    })
                }
            }
        })
        .await
}

pub async fn fetch_chunk(services: &Services, job: &JobRef, export: &ExportRef, chunk_id: u32) -> Result<ChunkOutput> {
    let chunk_key = export.kind.chunk_key(chunk_id);
    services
        .run_stage(&job.job_id, Stage::Fetching, Some(&chunk_key), async {
            job.ensure_within_window(Utc::now())?;
            let connector = services.connector(&job.connector_id).await?;
            let scanner = services.scanner(&connector).await?;
            let bytes = scanner.download_chunk(export.kind, &export.export_uuid, chunk_id).await?;
            let cache = ConnectorReferences { objects: services.objects.as_ref(), connector_id: &job.connector_id };
            let reference_key = match scanner.chunk_reference(export.kind, &bytes, &cache).await? {
                Some(reference) => {
                    let key = keys::chunk_reference(&job.connector_id, &job.job_id, &chunk_key);
                    services.objects.put_object(&key, reference, "application/json").await?;
                    Some(key)
                }
                None => None,
            };
            let raw_key = keys::raw_chunk(&job.connector_id, &job.job_id, &chunk_key);
            let size = bytes.len();
            services.objects.put_object(&raw_key, bytes, "application/json").await?;
            services
                .jobs
                .save_chunk(&ChunkRecord {
                    job_id: job.job_id.clone(),
                    chunk_key: chunk_key.clone(),
                    status: ChunkStatus::Fetched,
                    failed_attempts: 0,
                    raw_key: Some(raw_key.clone()),
                    normalized_key: None,
                    records: None,
                    last_failure: None,
                    retried: false,
                    carried_from: None,
                    seen_assets: SeenAssets::default(),
                    updated_at: Utc::now(),
                })
                .await?;
            tracing::info!(job_id = %job.job_id, chunk = %chunk_key, bytes = size, "chunk fetched");
            Ok(ChunkOutput {
                chunk_key: chunk_key.clone(),
                kind: export.kind,
                object_key: raw_key,
                records: 0,
                reference_key,
            })
        })
        .await
}

/// A connector's reference cache: objects under its own prefix, kept between syncs.
struct ConnectorReferences<'a> {
    objects: &'a dyn ObjectStore,
    connector_id: &'a str,
}

#[async_trait::async_trait]
impl ReferenceCache for ConnectorReferences<'_> {
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.objects.find_object(&keys::reference(self.connector_id, name)).await
    }

    async fn put(&self, name: &str, body: Vec<u8>) -> Result<()> {
        self.objects.put_object(&keys::reference(self.connector_id, name), body, "application/json").await
    }
}

#[cfg(test)]
mod tests {
    use tenable_simulator::SimulatorConfig;

    use super::*;
    use crate::model::{ExportKind, Severity, SyncScope, TagFilter};
    use crate::pipeline::test_support::harness;
    use crate::store::{JobStore, ObjectStore};

    /// The job's vulns export, after its assets export.
    async fn vulns_export(h: &crate::pipeline::test_support::Harness, job: &JobRef) -> ExportRef {
        let assets = next_export(&h.services, job, None).await.expect("requests").expect("an assets export");
        assert_eq!(assets.kind, ExportKind::Assets);
        next_export(&h.services, job, Some(&assets)).await.expect("requests").expect("a vulns export")
    }

    #[tokio::test]
    async fn a_full_sync_asks_for_assets_then_every_vuln_state_since_the_beginning() {
        let h = harness(SimulatorConfig::default()).await;
        let job = h.start_job("job-1").await;
        let vulns = vulns_export(&h, &job).await;
        assert_eq!(next_export(&h.services, &job, Some(&vulns)).await.expect("answers"), None, "the plan is done");
        let requests = h.simulator.vuln_export_requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0]["filters"]["since"], 0);
        assert_eq!(requests[0]["filters"]["state"], serde_json::json!(["OPEN", "REOPENED", "FIXED"]));
        assert_eq!(h.simulator.asset_export_requests().len(), 1);
        let stored = h.store.get_job("job-1").await.unwrap().unwrap();
        assert_eq!(
            stored.exports.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![ExportKind::Assets, ExportKind::Vulns]
        );
    }

    #[tokio::test]
    async fn a_retried_request_reuses_the_recorded_export() {
        let h = harness(SimulatorConfig::default()).await;
        let job = h.start_job("job-1").await;
        let first = next_export(&h.services, &job, None).await.unwrap();
        let again = next_export(&h.services, &job, None).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(h.simulator.asset_export_requests().len(), 1);
    }

    #[tokio::test]
    async fn a_scoped_sync_sends_its_severities_tags_and_start() {
        let h = harness(SimulatorConfig::default()).await;
        let from = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let scope = SyncScope {
            from: Some(from),
            severities: vec![Severity::High, Severity::Critical],
            tags: vec![TagFilter { category: "env".into(), values: vec!["prod".into()] }],
        };
        let job = h.start_job_with("job-1", SyncMode::VulnsOnly, scope).await;
        next_export(&h.services, &job, None).await.unwrap();
        let filters = &h.simulator.vuln_export_requests()[0]["filters"];
        assert_eq!(filters["since"], from.timestamp());
        assert_eq!(filters["severity"], serde_json::json!(["high", "critical"]));
        assert_eq!(filters["tag.env"], serde_json::json!(["prod"]));
    }

    #[tokio::test]
    async fn polls_until_finished_then_writes_the_chunk_manifest() {
        let config = SimulatorConfig {
            assets: 120,
            findings_per_asset: 3,
            status_polls_before_finished: 2,
            ..Default::default()
        };
        let h = harness(config).await;
        let job = h.start_job("job-1").await;
        let export = vulns_export(&h, &job).await;
        let mut polls = 0;
        let outcome = loop {
            polls += 1;
            let outcome = poll_export(&h.services, &job, &export).await.expect("polls");
            if outcome.ready {
                break outcome;
            }
            assert!(polls < 10, "the export never finished");
        };
        assert!(polls > 1, "the simulator answers QUEUED/PROCESSING first");
        assert_eq!(outcome.total_chunks, 3, "120 assets at 50 per chunk");
        assert_eq!(outcome.max_concurrency, CHUNKS_AT_ONCE, "Tenable sets no limit on concurrent downloads");
        let manifest = h.store.get_object(outcome.manifest_key.as_deref().unwrap()).await.unwrap();
        assert_eq!(serde_json::from_slice::<Vec<u32>>(&manifest).unwrap(), vec![1, 2, 3]);
        let stored = h.store.get_job("job-1").await.unwrap().unwrap();
        assert_eq!((stored.chunks.total, stored.status), (3, JobStatus::Delegated));
    }

    #[tokio::test]
    async fn a_fetched_chunk_is_kept_raw_in_s3_under_connector_job_and_chunk() {
        let h = harness(SimulatorConfig { status_polls_before_finished: 0, ..Default::default() }).await;
        let job = h.start_job("job-1").await;
        let export = vulns_export(&h, &job).await;
        while !poll_export(&h.services, &job, &export).await.unwrap().ready {}
        let output = fetch_chunk(&h.services, &job, &export, 1).await.expect("fetched");
        assert_eq!(output.object_key, "raw/tenable-test/job-1/vulns-00001.json");
        let raw = h.store.get_object(&output.object_key).await.unwrap();
        assert!(serde_json::from_slice::<serde_json::Value>(&raw).unwrap().is_array());
        let chunk = h.store.get_chunk("job-1", "vulns-00001").await.unwrap().unwrap();
        assert_eq!(chunk.status, ChunkStatus::Fetched);
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_function_may_hold_fails_saying_what_to_change_and_stores_nothing() {
        let mut h = harness(SimulatorConfig { status_polls_before_finished: 0, ..Default::default() }).await;
        h.services.settings.scanner_calls.max_answer_bytes = 8 * 1024;
        let job = h.start_job("job-1").await;
        let export = vulns_export(&h, &job).await;
        while !poll_export(&h.services, &job, &export).await.unwrap().ready {}
        let error = fetch_chunk(&h.services, &job, &export, 1).await.expect_err("the chunk is over 8 KB");
        assert_eq!(error.error_name(), "Vulnflow.ScannerError", "not retried: a retry gets the same chunk");
        let message = error.to_string();
        assert!(message.contains("ExportAssetsPerChunk") && message.contains("MemorySize"), "{message}");
        assert!(h.store.object_keys().iter().all(|key| !key.starts_with("raw/")), "nothing stored");
    }
}
