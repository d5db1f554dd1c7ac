//! How a sync meets the Tenable export API's real behaviour, one case per test, on the
//! local stack: each ends in the status a user would expect, with the job record
//! checked as a user would read it.

use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use tenable_simulator::{Faults, Route, ServerErrors, SimulatorConfig, Throttle, ThrottledPaths};
use vulnflow_e2e::{ACCESS_KEY, SECRET_KEY, Stack, SyncRun, simulator};
use vulnflow_shared::errors::error_names;
use vulnflow_shared::model::{ChunkStatus, ExportKind, Finding, JobStatus, LogLevel, Stage};

fn tenant_with(faults: Faults) -> SimulatorConfig {
    SimulatorConfig {
        seed: 31,
        assets: 120,
        findings_per_asset: 3,
        status_polls_before_finished: 1,
        faults,
        ..Default::default()
    }
}

async fn sync_against(faults: Faults) -> (Stack, tenable_simulator::RunningSimulator, SyncRun) {
    let stack = Stack::local().await;
    let sim = simulator(tenant_with(faults)).await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;
    let run = stack.run_sync(&connector).await;
    (stack, sim, run)
}

fn assert_failed(run: &SyncRun, status: JobStatus, stage: Stage, error: &str) {
    assert_eq!(run.status, ExecutionStatus::Failed, "the execution fails");
    assert_eq!(run.job.status, status, "{:?}", run.job.failure);
    let failure = run.job.failure.as_ref().expect("the job says why it failed");
    assert_eq!((failure.stage, failure.error.as_str()), (stage, error), "{failure:?}");
    assert!(!failure.action.is_empty());
    assert!(run.job.ended_at.is_some());
}

#[tokio::test]
async fn an_identical_export_already_running_is_adopted() {
    let (stack, sim, run) = sync_against(Faults { duplicate_export_running: true, ..Default::default() }).await;

    assert_eq!(run.job.status, JobStatus::Finished, "{:?}", run.job.failure);
    let vulns = run.job.exports.iter().find(|e| e.kind == ExportKind::Vulns).expect("a vulns export");
    assert!(vulns.adopted);
    assert_eq!(Some(vulns.export_uuid.clone()), sim.preexisting_export_uuid());
    assert_eq!(stack.count_findings(&run.job.connector_id).await, 360);
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_retry_after_says() {
    let throttle = Throttle { requests: 2, retry_after_seconds: 1, paths: ThrottledPaths::ExportCreation };
    let (_stack, sim, run) = sync_against(Faults { throttle: Some(throttle), ..Default::default() }).await;

    assert_eq!(run.job.status, JobStatus::Finished, "{:?}", run.job.failure);
    assert!(run.job.failure.is_none() && run.job.last_retryable_failure.is_none());
    // Two 429s, then the assets export; then the vulns export.
    assert_eq!(sim.requests_received(Route::ExportCreation), 4);
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_wait_budget_fails_with_the_answer_kept() {
    // Retry-After 30 s is beyond the local stack's 5 s budget, on every attempt.
    let throttle = Throttle { requests: 1_000, retry_after_seconds: 30, paths: ThrottledPaths::ExportCreation };
    let (_stack, _sim, run) = sync_against(Faults { throttle: Some(throttle), ..Default::default() }).await;

    assert_failed(&run, JobStatus::ApiError, Stage::Fetching, error_names::SCANNER_UNAVAILABLE);
    let failure = run.job.failure.as_ref().expect("failure");
    assert_eq!(failure.http_status, Some(429));
    let payload = failure.payload.as_ref().expect("the scanner's answer is kept").to_string();
    assert!(payload.to_ascii_lowercase().contains("retry-after"), "{payload}");
}

#[tokio::test]
async fn a_chunk_that_fails_with_5xx_then_succeeds_is_shown_as_retried() {
    let errors = ServerErrors { status: 503, chunk_ids: vec![2], times: 2 };
    let (stack, _sim, run) = sync_against(Faults { server_errors: Some(errors), ..Default::default() }).await;

    assert_eq!(run.status, ExecutionStatus::Succeeded);
    assert_eq!(run.job.status, JobStatus::Finished);
    assert!(run.job.failure.is_none(), "a cured error is not left on the job");
    let chunk = run.chunks.iter().find(|c| c.chunk_key == "vulns-00002").expect("the chunk");
    assert_eq!((chunk.status, chunk.failed_attempts, chunk.retried), (ChunkStatus::Processed, 2, true));
    assert_eq!(
        (run.job.chunks.retried, run.job.log_level()),
        (1, LogLevel::Warn),
        "the history shows it among the warnings"
    );
    assert_eq!(stack.count_findings(&run.job.connector_id).await, 360);
}

#[tokio::test]
async fn a_chunk_that_keeps_failing_with_5xx_fails_the_sync_after_the_retries() {
    let errors = ServerErrors { status: 502, chunk_ids: vec![1], times: 100 };
    let (stack, _sim, run) = sync_against(Faults { server_errors: Some(errors), ..Default::default() }).await;

    assert_failed(&run, JobStatus::ApiError, Stage::Fetching, error_names::SCANNER_UNAVAILABLE);
    let failure = run.job.failure.as_ref().expect("failure");
    assert_eq!(failure.http_status, Some(502));
    assert_eq!(failure.chunk.as_deref(), Some("vulns-00001"));
    assert!(failure.message.contains("1 of 5 chunks were not processed"), "{}", failure.message);
    let chunk = run.chunks.iter().find(|c| c.chunk_key == "vulns-00001").expect("the chunk");
    assert_eq!((chunk.status, chunk.failed_attempts), (ChunkStatus::Failed, 5), "1 attempt + 4 retries");
    assert_eq!(stack.count_findings(&run.job.connector_id).await, 360 - 150, "the other chunks are kept");
}

#[tokio::test]
async fn a_failed_sync_resumed_takes_up_its_exports_and_fetches_only_what_it_had_not_processed() {
    // Chunk 1 fails all five attempts of the first sync, and answers the sixth.
    let errors = ServerErrors { status: 502, chunk_ids: vec![1], times: 5 };
    let (stack, sim, failed) = sync_against(Faults { server_errors: Some(errors), ..Default::default() }).await;
    assert_failed(&failed, JobStatus::ApiError, Stage::Fetching, error_names::SCANNER_UNAVAILABLE);
    let total = failed.job.chunks.total;
    assert_eq!(failed.job.chunks.processed, total - 1);
    let downloads = sim.chunk_downloads();

    let connector = stack.connector(&failed.job.connector_id).await;
    let resumed = stack.run_sync_with(&connector, serde_json::json!({ "resumed_from": failed.job.job_id })).await;

    assert_eq!(resumed.status, ExecutionStatus::Succeeded, "{:?}", resumed.job.failure);
    assert_eq!(resumed.job.status, JobStatus::Finished);
    assert_eq!(resumed.job.carries_from, [failed.job.job_id.as_str()]);
    let chunks = resumed.job.chunks;
    assert_eq!((chunks.total, chunks.processed, chunks.failed, chunks.carried_over), (total, total, 0, total - 1));
    assert_eq!(sim.export_requests().len(), 2, "the assets and vulns exports were taken up, not requested again");
    assert!(
        resumed.job.exports.iter().all(|export| export.resumed_from.as_deref() == Some(failed.job.job_id.as_str()))
    );
    assert_eq!(sim.chunk_downloads() - downloads, 1, "only the chunk that had failed is fetched");
    assert_eq!(resumed.job.counts.findings_received, 150, "its own work: vulns chunk 1, 50 assets × 3");
    assert_eq!(resumed.job.counts.findings_inactivated, 0, "what the failed sync stored belongs to this sync too");
    assert_eq!(
        (
            stack.count_findings(&connector.connector_id).await,
            stack.count_active_findings(&connector.connector_id).await
        ),
        (360, 360)
    );
    let data_as_of = resumed.job.exports.iter().map(|export| export.requested_at).min().expect("exports");
    assert!(data_as_of < resumed.job.started_at);
    let cursor = stack.connector(&connector.connector_id).await.sync_cursor;
    assert_eq!(cursor, Some(data_as_of.timestamp()), "the next incremental sync starts where the exports' data starts");
}

#[tokio::test]
async fn a_scanner_that_stops_answering_is_retried_then_fails_the_sync() {
    // Every chunk download stays silent longer than the local stack's 10 s scanner timeout.
    let silent = Faults { slow_chunks: Some(Duration::from_secs(15)), ..Default::default() };
    let (_stack, _sim, run) = sync_against(silent).await;

    assert_failed(&run, JobStatus::ApiError, Stage::Fetching, error_names::SCANNER_UNAVAILABLE);
    let failure = run.job.failure.as_ref().expect("failure");
    assert!(failure.message.contains("did not get an answer"), "{}", failure.message);
    assert_eq!(failure.http_status, None, "no answer, so no status");
    assert_eq!(run.chunks.len(), 5);
    for chunk in &run.chunks {
        assert_eq!((chunk.status, chunk.failed_attempts), (ChunkStatus::Failed, 5), "1 attempt + 4 retries: {chunk:?}");
    }
}

#[tokio::test]
async fn keys_without_permission_end_in_a_credential_error() {
    let (_stack, _sim, run) = sync_against(Faults { reject_keys_with: Some(403), ..Default::default() }).await;

    assert_failed(&run, JobStatus::CredentialError, Stage::ConnectivityTest, error_names::CREDENTIAL_ERROR);
    let failure = run.job.failure.as_ref().expect("failure");
    assert_eq!(failure.http_status, Some(403));
    assert!(failure.action.contains("permissions"), "{}", failure.action);
}

#[tokio::test]
async fn an_export_that_ends_in_error_fails_the_sync() {
    let (_stack, _sim, run) = sync_against(Faults { export_error_after_chunks: Some(1), ..Default::default() }).await;

    assert_failed(&run, JobStatus::ApiError, Stage::Fetching, error_names::SCANNER_ERROR);
    assert!(run.job.failure.as_ref().is_some_and(|f| f.message.contains("ERROR")));
    assert!(run.chunks.iter().all(|c| c.chunk_key.starts_with("assets-")), "no chunk of a failed export is processed");
}

#[tokio::test]
async fn an_export_finished_with_failed_chunks_fails_the_sync() {
    let (_stack, _sim, run) = sync_against(Faults { failed_chunks: vec![2], ..Default::default() }).await;

    assert_failed(&run, JobStatus::ApiError, Stage::Fetching, error_names::SCANNER_ERROR);
    let message = &run.job.failure.as_ref().expect("failure").message;
    assert!(message.contains("failed chunks [2]"), "{message}");
}

#[tokio::test]
async fn an_expired_chunk_fails_that_chunk_without_retrying_it() {
    let (stack, _sim, run) = sync_against(Faults { expired_chunks: vec![3], ..Default::default() }).await;

    assert_failed(&run, JobStatus::ApiError, Stage::Fetching, error_names::SCANNER_ERROR);
    let failure = run.job.failure.as_ref().expect("failure");
    assert_eq!((failure.http_status, failure.chunk.as_deref()), (Some(404), Some("vulns-00003")));
    assert!(failure.message.contains("24 hours"), "{}", failure.message);
    let chunk = run.chunks.iter().find(|c| c.chunk_key == "vulns-00003").expect("the chunk");
    assert_eq!((chunk.status, chunk.failed_attempts), (ChunkStatus::Failed, 1));
    assert_eq!(stack.count_findings(&run.job.connector_id).await, 300);
}

#[tokio::test]
async fn a_megabyte_of_synopsis_and_hostname_is_cut_and_every_finding_is_stored_and_counted() {
    let (stack, sim, run) = sync_against(Faults { huge_text_finding: Some(1_048_576), ..Default::default() }).await;

    assert_eq!(run.job.status, JobStatus::Finished, "{:?}", run.job.failure);
    let findings = stack.findings(&run.job.connector_id).await;
    let total = sim.dataset().vulns().len();
    assert_eq!(findings.len(), total, "every finding of the chunk is stored");
    assert_eq!(run.job.counts.findings_new, total as u64, "the job counts what is stored");
    let longest = |field: fn(&Finding) -> Option<&String>| {
        findings.iter().filter_map(|stored| field(&stored.finding)).map(String::len).max().unwrap_or(0)
    };
    assert_eq!(
        (longest(|f| f.synopsis.as_ref()), longest(|f| f.hostname.as_ref())),
        (4096, 4096),
        "cut to 4 KB, not refused by DynamoDB"
    );
}

#[tokio::test]
async fn a_megabyte_of_plugin_output_is_cut_for_display_and_kept_whole_in_s3() {
    let (stack, _sim, run) = sync_against(Faults { huge_output_finding: Some(1_048_576), ..Default::default() }).await;

    assert_eq!(run.job.status, JobStatus::Finished, "{:?}", run.job.failure);
    let findings = stack.findings_with_truncated_output(&run.job.connector_id).await;
    assert_eq!(findings.len(), 1);
    let output = findings[0].finding.output.as_deref().expect("an output");
    assert!(output.chars().count() < 20_000, "cut for display");
    assert!(!output.contains("<script>") && output.contains("&lt;script&gt;"), "markup escaped");
    let raw_key = findings[0].raw_ref.split('#').next().expect("a reference to the raw record");
    assert!(stack.object_size(raw_key).await > 1_048_576, "the raw chunk keeps the whole output");
}
