//! The DynamoDB adapter against DynamoDB Local, for what a sync on the local stack
//! reaches only at a scale these tests do not run.

use chrono::Utc;
use serde_json::json;
use vulnflow_e2e::Stack;
use vulnflow_shared::model::{ChunkRecord, ChunkStatus, ExportKind, SyncJob, SyncMode, Trigger};
use vulnflow_shared::store::JobStore;

#[tokio::test]
async fn a_resume_carries_hundreds_of_chunks_over_in_batches_and_counts_each_once() {
    let stack = Stack::local().await;
    let job_id = format!("carry-{}", Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let job = SyncJob::started(&job_id, "carry-test", SyncMode::Full, Trigger::Scheduled, "e2e", Utc::now());
    stack.store.create_job(&job).await.expect("creates the job");
    let done_before: Vec<ChunkRecord> = (1..=250)
        .map(|id| {
            serde_json::from_value(json!({
                "job_id": job_id, "chunk_key": format!("vulns-{id:05}"), "status": "processed", "failed_attempts": 0,
                "records": 3, "carried_from": "an-earlier-job", "updated_at": Utc::now(),
            }))
            .expect("a chunk record")
        })
        .collect();

    // A first attempt carried 120 chunks, then the function was retried with all of them.
    assert_eq!(stack.store.carry_over_chunks(&done_before[..120]).await.expect("carries"), 120);
    assert_eq!(stack.store.carry_over_chunks(&done_before).await.expect("carries"), 130, "only what was not carried yet");

    let job = stack.store.get_job(&job_id).await.expect("reads").expect("the job");
    assert_eq!((job.chunks.processed, job.chunks.carried_over), (250, 250));
    let chunks = stack.store.chunks(&job_id).await.expect("reads the chunks");
    assert_eq!(chunks.len(), 250);
    assert!(chunks.iter().all(|c| c.status == ChunkStatus::Processed && c.carried_from.as_deref() == Some("an-earlier-job")));
}

#[tokio::test]
async fn each_export_counts_its_chunks_once_and_the_total_is_final_once_all_told() {
    let stack = Stack::local().await;
    let job_id = format!("count-{}", Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let job = SyncJob::started(&job_id, "count-test", SyncMode::Full, Trigger::Scheduled, "e2e", Utc::now());
    stack.store.create_job(&job).await.expect("creates the job");

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
