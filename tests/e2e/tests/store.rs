//! The DynamoDB adapter against DynamoDB Local, for what a sync on the local stack
//! reaches only at a scale, or in a race, these tests do not run.

use chrono::Utc;
use serde_json::json;
use vulnflow_e2e::Stack;
use vulnflow_shared::model::{
    ChunkRecord, ChunkStatus, ExportKind, JobStatus, RecordCounts, SweepMark, SyncJob, SyncMode, Trigger,
};
use vulnflow_shared::store::{InventoryStore, JobStore, StoredAsset, StoredFinding, asset_key};
use vulnflow_shared::usage::Usage;

/// A new full sync's job, as initiate records it.
async fn new_job(stack: &Stack, name: &str) -> SyncJob {
    let job_id = format!("{name}-{}", Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let job = SyncJob::started(&job_id, &format!("{name}-test"), SyncMode::Full, Trigger::Scheduled, "e2e", Utc::now());
    stack.store.create_job(&job).await.expect("creates the job");
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

#[tokio::test]
async fn a_resume_carries_hundreds_of_chunks_over_in_batches_and_counts_each_once() {
    let stack = Stack::local().await;
    let job_id = new_job(&stack, "carry").await.job_id;
    let done_before: Vec<ChunkRecord> =
        (1..=250).map(|id| chunk(&job_id, id, "processed", Some("an-earlier-job"))).collect();

    // A first attempt carried 120 chunks, then the function was retried with all of them.
    assert_eq!(stack.store.carry_over_chunks(&done_before[..120]).await.expect("carries"), 120);
    assert_eq!(
        stack.store.carry_over_chunks(&done_before).await.expect("carries"),
        130,
        "only what was not carried yet"
    );

    let job = stack.store.get_job(&job_id).await.expect("reads").expect("the job");
    assert_eq!((job.chunks.processed, job.chunks.carried_over), (250, 250));
    let chunks = stack.store.chunks(&job_id).await.expect("reads the chunks");
    assert_eq!(chunks.len(), 250);
    assert!(
        chunks
            .iter()
            .all(|c| c.status == ChunkStatus::Processed && c.carried_from.as_deref() == Some("an-earlier-job"))
    );
}

#[tokio::test]
async fn each_export_counts_its_chunks_once_and_the_total_is_final_once_all_told() {
    let stack = Stack::local().await;
    let job_id = new_job(&stack, "count").await.job_id;

    // A retried poll tells the assets export's chunks twice.
    for _ in 0..2 {
        stack.store.add_total_chunks(&job_id, ExportKind::Assets, 4).await.expect("counts");
    }
    let job = stack.store.get_job(&job_id).await.expect("reads").expect("the job");
    assert_eq!((job.chunks.total, job.counted_exports.as_slice()), (4, [ExportKind::Assets].as_slice()));
    assert!(!job.chunk_total_is_final(), "the vulns export has not told its chunks");

    stack.store.add_total_chunks(&job_id, ExportKind::Vulns, 8).await.expect("counts");
    let job = stack.store.get_job(&job_id).await.expect("reads").expect("the job");
    assert_eq!(job.chunks.total, 12);
    assert!(job.chunk_total_is_final());
}

#[tokio::test]
async fn a_stage_that_ends_after_its_job_was_cancelled_changes_nothing() {
    let stack = Stack::local().await;
    let job = new_job(&stack, "cancel").await;
    let job_id = job.job_id.as_str();
    stack.store.add_total_chunks(job_id, ExportKind::Vulns, 2).await.expect("counts");
    stack.store.save_chunk(&chunk(job_id, 1, "normalized", None)).await.expect("saves the chunk");
    let cancelled = SyncJob { status: JobStatus::Cancelled, ended_at: Some(Utc::now()), ..job.clone() };
    stack.store.finish_job(&cancelled).await.expect("cancels");
    let settled = stack.store.get_job(job_id).await.expect("reads").expect("the job");

    // The process and poll functions in flight when the execution stopped end now.
    let counts = RecordCounts { findings_received: 3, findings_new: 3, ..Default::default() };
    assert!(!stack.store.commit_chunk(job_id, "vulns-00001", &counts, Utc::now()).await.expect("no error"));
    assert_eq!(
        stack
            .store
            .carry_over_chunks(&[chunk(job_id, 2, "processed", Some("an-earlier-job"))])
            .await
            .expect("no error"),
        0
    );
    stack.store.set_status(job_id, JobStatus::Delegated).await.expect("no error");

    let after = stack.store.get_job(job_id).await.expect("reads").expect("the job");
    assert_eq!((after.status, after.chunks, after.counts), (settled.status, settled.chunks, settled.counts));
    let chunks = stack.store.chunks(job_id).await.expect("reads the chunks");
    assert_eq!(
        chunks.iter().map(|c| (c.chunk_key.as_str(), c.status)).collect::<Vec<_>>(),
        [("vulns-00001", ChunkStatus::Normalized)]
    );
}

#[tokio::test]
async fn a_sweep_page_is_counted_once_and_usage_adds_up() {
    let stack = Stack::local().await;
    let job_id = new_job(&stack, "sweep").await.job_id;
    let first = SweepMark::After("asset-0999".into());
    assert!(stack.store.record_sweep(&job_id, None, &first, 4).await.expect("records"));
    // A retry of the first page, which read the job before the mark moved.
    assert!(!stack.store.record_sweep(&job_id, None, &first, 4).await.expect("no error"));
    assert!(stack.store.record_sweep(&job_id, Some(&first), &SweepMark::Done, 2).await.expect("records"));
    assert!(!stack.store.record_sweep(&job_id, Some(&first), &SweepMark::Done, 2).await.expect("no error"));

    let usage = Usage { dynamodb_read_milliunits: 1_500, lambda_invocations: 1, s3_gets: 2, ..Usage::default() };
    stack.store.add_usage(&job_id, &usage).await.expect("adds");
    stack.store.add_usage(&job_id, &usage).await.expect("adds");
    let job = stack.store.get_job(&job_id).await.expect("reads").expect("the job");
    assert_eq!((job.sweep, job.counts.findings_inactivated), (Some(SweepMark::Done), 6));
    assert_eq!((job.usage.read_units(), job.usage.lambda_invocations, job.usage.s3_gets), (3.0, 2, 4));
}

#[tokio::test]
async fn an_assets_findings_are_one_partition_and_assets_come_in_pages() {
    let stack = Stack::local().await;
    let connector_id = format!("pages-{}", Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let asset = |id: u32| -> StoredAsset {
        serde_json::from_value(json!({
            "connector_id": connector_id, "asset_id": format!("asset-{id:03}"), "first_job_id": "job-1",
            "last_job_id": "job-1", "last_change": "new", "last_seen": Utc::now(), "updated_at": Utc::now(),
            "source": "tenable", "os_category": "linux",
        }))
        .expect("an asset")
    };
    let assets: Vec<StoredAsset> = (0..7).map(asset).collect();
    stack.store.put_assets(&assets).await.expect("stores the assets");

    let (page, next) = stack.store.assets_page(&connector_id, None, 3).await.expect("reads");
    let ids = |page: &[StoredAsset]| page.iter().map(|a| a.asset.asset_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&page), ["asset-000", "asset-001", "asset-002"]);
    assert_eq!(next.as_deref(), Some("asset-002"));
    let (page, _) = stack.store.assets_page(&connector_id, next.as_deref(), 3).await.expect("reads");
    assert_eq!(ids(&page), ["asset-003", "asset-004", "asset-005"]);
    let (page, next) = stack.store.assets_page(&connector_id, Some("asset-005"), 3).await.expect("reads");
    assert_eq!((ids(&page), next), (vec!["asset-006".to_string()], None), "a short page is the last");

    let finding = |asset_id: &str, plugin: u32| -> StoredFinding {
        let finding_id = format!("tenable/{asset_id}/{plugin}/0/none");
        serde_json::from_value(json!({
            "asset_key": asset_key(&connector_id, asset_id), "connector_id": connector_id, "finding_id": finding_id,
            "source": "tenable", "asset_id": asset_id, "plugin_id": plugin.to_string(), "port": 0, "protocol": "none",
            "severity": "high", "state": "open", "title": "t", "first_seen": Utc::now(), "last_seen": Utc::now(),
            "os_category": "linux", "active": true, "first_job_id": "job-1", "last_job_id": "job-1",
            "last_change": "new", "raw_ref": "", "updated_at": Utc::now(),
        }))
        .expect("a finding")
    };
    let findings: Vec<StoredFinding> =
        (1..=30).map(|plugin| finding(if plugin % 3 == 0 { "asset-001" } else { "asset-000" }, plugin)).collect();
    stack.store.put_findings(&findings).await.expect("stores the findings");
    let wanted = ["asset-000".to_string(), "asset-001".to_string(), "asset-006".to_string()];
    let found = stack.store.findings_of_assets(&connector_id, &wanted).await.expect("reads");
    assert_eq!((found["asset-000"].len(), found["asset-001"].len()), (20, 10));
    assert!(!found.contains_key("asset-006"), "an asset with no finding is left out");
}
