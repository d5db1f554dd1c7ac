//! The rules every store adapter keeps, written once against the store traits: the
//! unit tests run them on the memory store, the end-to-end tests on DynamoDB Local
//! (`tests/e2e/tests/store.rs`). Each rule works on ids of its own, so that the rules
//! can run on a store other tests share.

use chrono::Utc;
use serde_json::json;

use super::{ConnectorStore, JobEnding, JobStore};
use crate::errors::{SyncError, error_names};
use crate::job::failure_of;
use crate::model::{
    ChunkRecord, ChunkStatus, Connector, ConnectorRecord, ExportKind, JobStatus, RecordCounts, ScannerKind, SeenAssets,
    Stage, StageOutcome, SweepMark, SyncClaim, SyncJob, SyncMode, Trigger,
};
use crate::usage::Usage;

/// The ports the rules need.
pub struct Stores<'a> {
    pub connectors: &'a dyn ConnectorStore,
    pub jobs: &'a dyn JobStore,
}

/// Runs every rule; a broken one panics naming itself.
pub async fn every_rule(stores: Stores<'_>) {
    a_connector_id_is_taken_once_and_a_deleted_ones_stays_retired(stores.connectors).await;
    a_deletion_and_a_sync_claim_never_both_succeed(stores.connectors).await;
    the_incremental_cursor_only_moves_forward(stores.connectors).await;
    a_chunk_commits_its_counts_once(stores.jobs).await;
    the_first_failure_is_kept_and_a_failed_stage_stays_failed(stores.jobs).await;
    a_resume_carries_chunks_over_once(stores.jobs).await;
    each_export_counts_its_chunks_once(stores.jobs).await;
    a_stage_that_ends_after_its_job_was_cancelled_changes_nothing(stores.jobs).await;
    a_sweep_page_is_counted_once_and_usage_adds_up(stores.jobs).await;
}

fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

fn connector(connector_id: &str) -> ConnectorRecord {
    ConnectorRecord::from(Connector {
        connector_id: connector_id.to_string(),
        name: "contract".into(),
        kind: ScannerKind::Tenable,
        base_url: "https://cloud.tenable.com".into(),
        secret_id: format!("vulnflow/{connector_id}"),
        default_mode: SyncMode::Full,
        sync_cursor: None,
    })
}

fn claim(job_id: &str) -> SyncClaim {
    SyncClaim { job_id: job_id.to_string(), claimed_at: Utc::now() }
}

async fn new_job(jobs: &dyn JobStore, name: &str) -> SyncJob {
    let job =
        SyncJob::started(&unique(name), &unique(name), SyncMode::Full, Trigger::Scheduled, "contract", Utc::now());
    jobs.create_job(&job).await.expect("creates the job");
    job
}

/// A chunk record of `job_id`, as the JSON a chunk item holds.
fn chunk(job_id: &str, chunk_id: u32, status: &str, carried_from: Option<&str>) -> ChunkRecord {
    serde_json::from_value(json!({
        "job_id": job_id, "chunk_key": format!("vulns-{chunk_id:05}"), "status": status, "failed_attempts": 0,
        "records": 3, "carried_from": carried_from, "updated_at": Utc::now(),
    }))
    .expect("a chunk record")
}

async fn a_connector_id_is_taken_once_and_a_deleted_ones_stays_retired(connectors: &dyn ConnectorStore) {
    let id = unique("retired");
    connectors.create_connector(&connector(&id)).await.expect("creates");
    let again = connectors.create_connector(&connector(&id)).await.expect_err("the id is taken");
    assert_eq!(again.error_name(), error_names::CONFLICT, "{again}");

    assert!(connectors.retire_connector(&id, None).await.expect("retires"), "no sync was ever claimed");
    assert_eq!(connectors.connector_record(&id).await.expect("reads"), None);
    assert!(!connectors.list_connectors().await.expect("lists").iter().any(|r| r.connector.connector_id == id));
    let reused = connectors.create_connector(&connector(&id)).await.expect_err("retired ids stay taken");
    assert!(matches!(&reused, SyncError::Conflict(message) if message.contains("deleted connector")), "{reused}");
    assert!(!connectors.claim_sync(&id, None, &claim("late")).await.expect("no error"), "no sync of a deleted one");
    let update = connectors.update_connector(&connector(&id)).await.expect_err("gone");
    assert_eq!(update.error_name(), error_names::NOT_FOUND, "{update}");
    assert!(!connectors.retire_connector(&id, None).await.expect("no error"), "retired once");
}

async fn a_deletion_and_a_sync_claim_never_both_succeed(connectors: &dyn ConnectorStore) {
    let id = unique("race");
    connectors.create_connector(&connector(&id)).await.expect("creates");
    assert!(connectors.claim_sync(&id, None, &claim("first")).await.expect("claims"));
    assert!(!connectors.claim_sync(&id, None, &claim("second")).await.expect("no error"), "one start wins");
    // A deletion that read the connector before the claim.
    assert!(!connectors.retire_connector(&id, None).await.expect("no error"));
    assert!(connectors.connector_record(&id).await.expect("reads").is_some(), "the claimed connector stays");
    assert!(connectors.retire_connector(&id, Some("first")).await.expect("retires"));
    assert!(!connectors.claim_sync(&id, Some("first"), &claim("third")).await.expect("no error"));
}

async fn the_incremental_cursor_only_moves_forward(connectors: &dyn ConnectorStore) {
    let id = unique("cursor");
    connectors.create_connector(&connector(&id)).await.expect("creates");
    for cursor in [1_700_000_200, 1_700_000_100] {
        connectors.advance_cursor(&id, cursor).await.expect("advances");
    }
    let record = connectors.connector_record(&id).await.expect("reads").expect("the connector");
    assert_eq!(record.connector.sync_cursor, Some(1_700_000_200), "an older cursor never replaces a newer one");
}

async fn a_chunk_commits_its_counts_once(jobs: &dyn JobStore) {
    let job_id = new_job(jobs, "commit").await.job_id;
    jobs.save_chunk(&chunk(&job_id, 1, "normalized", None)).await.expect("saves");
    let counts = RecordCounts { findings_received: 3, findings_new: 3, ..Default::default() };
    let seen = SeenAssets::of(["asset-1", "asset-2"]);
    assert!(jobs.commit_chunk(&job_id, "vulns-00001", &counts, &seen, Utc::now()).await.expect("commits"));
    let late = SeenAssets::of(["asset-3"]);
    assert!(!jobs.commit_chunk(&job_id, "vulns-00001", &counts, &late, Utc::now()).await.expect("no error"), "once");
    // A late save of an earlier stage never takes a processed chunk back.
    jobs.save_chunk(&chunk(&job_id, 1, "fetched", None)).await.expect("no error");
    let job = jobs.get_job(&job_id).await.expect("reads").expect("the job");
    assert_eq!((job.counts.findings_new, job.chunks.processed), (3, 1));
    let stored = jobs.get_chunk(&job_id, "vulns-00001").await.expect("reads").expect("the chunk");
    assert_eq!(stored.status, ChunkStatus::Processed);
    assert_eq!(stored.seen_assets, seen, "the assets of the commit that counted, for the sweep");
}

async fn the_first_failure_is_kept_and_a_failed_stage_stays_failed(jobs: &dyn JobStore) {
    let job_id = new_job(jobs, "failure").await.job_id;
    let first = failure_of(&SyncError::Internal("the cause".into()), Stage::Fetching, Some("vulns-00001"), Utc::now());
    let second = failure_of(&SyncError::Internal("a consequence".into()), Stage::Processing, None, Utc::now());
    jobs.record_failure(&job_id, &first).await.expect("records");
    jobs.record_failure(&job_id, &second).await.expect("records");
    jobs.stage_started(&job_id, Stage::Fetching, Utc::now()).await.expect("starts");
    jobs.stage_ended(&job_id, Stage::Fetching, StageOutcome::Failed, Utc::now()).await.expect("ends");
    jobs.stage_ended(&job_id, Stage::Fetching, StageOutcome::Succeeded, Utc::now()).await.expect("ends");
    let job = jobs.get_job(&job_id).await.expect("reads").expect("the job");
    assert_eq!(job.failure.map(|failure| failure.message), Some(first.message));
    assert_eq!(job.stages.get(&Stage::Fetching).map(|run| run.outcome), Some(StageOutcome::Failed));
}

async fn a_resume_carries_chunks_over_once(jobs: &dyn JobStore) {
    let job_id = new_job(jobs, "carry").await.job_id;
    let seen = |id: u32| SeenAssets::of([format!("asset-{id}").as_str()]);
    let done_before: Vec<ChunkRecord> = (1..=250)
        .map(|id| ChunkRecord { seen_assets: seen(id), ..chunk(&job_id, id, "processed", Some("an-earlier-job")) })
        .collect();
    // A first attempt carried 120 chunks, then the function was retried with all of them.
    assert_eq!(jobs.carry_over_chunks(&done_before[..120]).await.expect("carries"), 120);
    assert_eq!(jobs.carry_over_chunks(&done_before).await.expect("carries"), 130, "only what was not carried yet");
    let job = jobs.get_job(&job_id).await.expect("reads").expect("the job");
    assert_eq!((job.chunks.processed, job.chunks.carried_over), (250, 250));
    let chunks = jobs.chunks(&job_id).await.expect("reads the chunks");
    assert_eq!(chunks.len(), 250);
    assert!(
        chunks
            .iter()
            .all(|c| c.status == ChunkStatus::Processed && c.carried_from.as_deref() == Some("an-earlier-job"))
    );
    let carried = SeenAssets::union(chunks.iter().map(|chunk| &chunk.seen_assets));
    assert!(carried.len() == 250 && carried.contains("asset-1") && carried.contains("asset-250"), "with their assets");
}

async fn each_export_counts_its_chunks_once(jobs: &dyn JobStore) {
    let job_id = new_job(jobs, "count").await.job_id;
    // A retried poll tells the assets export's chunks twice.
    for _ in 0..2 {
        jobs.add_total_chunks(&job_id, ExportKind::Assets, 4).await.expect("counts");
    }
    let job = jobs.get_job(&job_id).await.expect("reads").expect("the job");
    assert_eq!((job.chunks.total, job.counted_exports.as_slice()), (4, [ExportKind::Assets].as_slice()));
    assert!(!job.chunk_total_is_final(), "the vulns export has not told its chunks");
    jobs.add_total_chunks(&job_id, ExportKind::Vulns, 8).await.expect("counts");
    let job = jobs.get_job(&job_id).await.expect("reads").expect("the job");
    assert_eq!(job.chunks.total, 12);
    assert!(job.chunk_total_is_final());
}

async fn a_stage_that_ends_after_its_job_was_cancelled_changes_nothing(jobs: &dyn JobStore) {
    let job = new_job(jobs, "cancel").await;
    let job_id = job.job_id.as_str();
    jobs.add_total_chunks(job_id, ExportKind::Vulns, 2).await.expect("counts");
    jobs.save_chunk(&chunk(job_id, 1, "normalized", None)).await.expect("saves the chunk");
    let cancelled = JobEnding { status: JobStatus::Cancelled, chunks: job.chunks, ended_at: Utc::now() };
    jobs.finish_job(job_id, &cancelled).await.expect("cancels");
    let settled = jobs.get_job(job_id).await.expect("reads").expect("the job");

    // The process and poll functions in flight when the execution stopped end now.
    let counts = RecordCounts { findings_received: 3, findings_new: 3, ..Default::default() };
    assert!(
        !jobs.commit_chunk(job_id, "vulns-00001", &counts, &SeenAssets::default(), Utc::now()).await.expect("no error")
    );
    let late = [chunk(job_id, 2, "processed", Some("an-earlier-job"))];
    assert_eq!(jobs.carry_over_chunks(&late).await.expect("no error"), 0);
    jobs.set_status(job_id, JobStatus::Delegated).await.expect("no error");
    jobs.stage_started(job_id, Stage::Processing, Utc::now()).await.expect("no error");
    assert!(!jobs.record_sweep(job_id, None, &SweepMark::Done, 5).await.expect("no error"));

    let after = jobs.get_job(job_id).await.expect("reads").expect("the job");
    assert_eq!((after.status, after.chunks, after.counts), (settled.status, settled.chunks, settled.counts));
    assert_eq!((after.current_stage, after.stages), (settled.current_stage, settled.stages));
    let chunks = jobs.chunks(job_id).await.expect("reads the chunks");
    assert_eq!(
        chunks.iter().map(|c| (c.chunk_key.as_str(), c.status)).collect::<Vec<_>>(),
        [("vulns-00001", ChunkStatus::Normalized)]
    );
}

async fn a_sweep_page_is_counted_once_and_usage_adds_up(jobs: &dyn JobStore) {
    let job_id = new_job(jobs, "sweep").await.job_id;
    let first = SweepMark::After("asset-0999".into());
    assert!(jobs.record_sweep(&job_id, None, &first, 4).await.expect("records"));
    // A retry of the first page, which read the job before the mark moved.
    assert!(!jobs.record_sweep(&job_id, None, &first, 4).await.expect("no error"));
    assert!(jobs.record_sweep(&job_id, Some(&first), &SweepMark::Done, 2).await.expect("records"));
    assert!(!jobs.record_sweep(&job_id, Some(&first), &SweepMark::Done, 2).await.expect("no error"));
    let usage = Usage { dynamodb_read_milliunits: 1_500, lambda_invocations: 1, s3_gets: 2, ..Usage::default() };
    jobs.add_usage(&job_id, &usage).await.expect("adds");
    jobs.add_usage(&job_id, &usage).await.expect("adds");
    let job = jobs.get_job(&job_id).await.expect("reads").expect("the job");
    assert_eq!((job.sweep, job.counts.findings_inactivated), (Some(SweepMark::Done), 6));
    assert_eq!((job.usage.read_units(), job.usage.lambda_invocations, job.usage.s3_gets), (3.0, 2, 4));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn the_memory_store_keeps_every_rule() {
        let store = MemoryStore::default();
        every_rule(Stores { connectors: &store, jobs: &store }).await;
    }
}
