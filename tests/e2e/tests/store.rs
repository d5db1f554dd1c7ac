//! The DynamoDB adapter against DynamoDB Local, for what a sync on the local stack
//! reaches only at a scale, or in a race, these tests do not run.

use chrono::Utc;
use serde_json::json;
use vulnflow_e2e::Stack;
use vulnflow_shared::model::{
    ChunkRecord, ChunkStatus, ExportKind, JobStatus, RecordCounts, SyncJob, SyncMode, Trigger,
};
use vulnflow_shared::store::JobStore;

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
