//! Finalizing: settle the job's status from its chunk records (the one source of
//! truth, whatever the map's own status says) and from the failure the state
//! machine caught, if any.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::errors::{FUNCTION_DIED_ACTION, Result, error_names, job_status_for, recommended_action};
use crate::job::{self, JobEnd};
use crate::model::{
    ChunkCounts, ChunkRecord, ChunkStatus, JobFailure, JobStatus, RecordCounts, SeenAssets, Stage, SweepMark, SyncJob,
    SyncMode,
};
use crate::store::{FindingsUpdate, SWEEP_CHUNK, keys};

/// An error the state machine caught, as Step Functions hands it over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalizeEvent {
    pub job_id: String,
    #[serde(default)]
    pub failure: Option<CaughtError>,
}

/// The job's outcome, as the state machine's last states and the execution output show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub job_id: String,
    pub status: JobStatus,
    pub chunks: ChunkCounts,
    pub counts: RecordCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
    /// The job is not settled yet: its sweep for assets the sync did not see has more
    /// pages, and the state machine calls finalize again.
    pub sweeping: bool,
}

pub async fn finalize(services: &Services, event: FinalizeEvent) -> Result<JobSummary> {
    let Some(job) = services.jobs.get_job(&event.job_id).await? else {
        // The sync failed before its job existed (e.g. an unknown connector): there
        // is nothing to settle, only the reason to pass on.
        let failure = event.failure.as_ref().map(|caught| caught_failure(caught, Stage::Initiating));
        return Ok(JobSummary {
            job_id: event.job_id,
            status: failure.as_ref().map_or(JobStatus::GenericError, |f| f.status),
            chunks: ChunkCounts::default(),
            counts: RecordCounts::default(),
            failure,
            sweeping: false,
        });
    };
    if job.status.is_terminal() {
        // Settled already: by an earlier attempt of this finalize (which then failed on
        // its way out), or by a cancel. That outcome stands.
        return Ok(JobSummary {
            job_id: job.job_id,
            status: job.status,
            chunks: job.chunks,
            counts: job.counts,
            failure: job.failure,
            sweeping: false,
        });
    }
    let job_id = job.job_id.clone();
    services
        .run_stage(&job_id, Stage::Finalizing, None, async {
            // A sweep under way was begun by a finalize that found nothing failed: its
            // later pages need not read every chunk record again.
            let sweep_under_way = event.failure.is_none() && matches!(job.sweep, Some(SweepMark::After(_)));
            if sweep_under_way && sweep_page(services, &job, None).await? != SweepMark::Done {
                return Ok(still_sweeping(&job, job.chunks));
            }
            let chunks = services.jobs.chunks(&job_id).await?;
            let counts = ChunkCounts::settled(job.chunks.total, &chunks);

            let failure = match (&job.failure, &event.failure) {
                (Some(recorded), _) => Some(recorded.clone()),
                // Retries ran out: the failure the function kept has the scanner's answer.
                (None, Some(caught)) => match &job.last_retryable_failure {
                    Some(kept) if kept.error == caught.error => Some(kept.clone()),
                    _ => Some(caught_failure(caught, job.current_stage.unwrap_or(Stage::Finalizing))),
                },
                (None, None) if counts.failed > 0 => Some(unprocessed_chunks_failure(&chunks, counts)),
                (None, None) => None,
            };
            if failure.is_none() {
                let sweep_begins = !sweep_under_way && job.sees_every_finding() && job.sweep != Some(SweepMark::Done);
                if sweep_begins && sweep_page(services, &job, Some(&chunks)).await? != SweepMark::Done {
                    return Ok(still_sweeping(&job, counts));
                }
                if job.scope.is_everything() && matches!(job.mode, SyncMode::Full | SyncMode::Incremental) {
                    services.connectors.advance_cursor(&job.connector_id, job.data_as_of().timestamp()).await?;
                }
            }
            let settled = JobEnd::Settled { failure: failure.clone(), chunks: counts };
            let finished = job::end(services.jobs.as_ref(), &job, settled).await?;
            tracing::info!(job_id, status = %finished.status, ?counts, "sync job finished");
            let stored = services.jobs.get_job(&job_id).await?.unwrap_or(finished);
            Ok(JobSummary {
                job_id: job_id.clone(),
                status: stored.status,
                chunks: counts,
                counts: stored.counts,
                failure,
                sweeping: false,
            })
        })
        .await
}

/// What finalize answers while its sweep has pages left: the state machine calls it again.
fn still_sweeping(job: &SyncJob, chunks: ChunkCounts) -> JobSummary {
    JobSummary {
        job_id: job.job_id.clone(),
        status: job.status,
        chunks,
        counts: job.counts,
        failure: None,
        sweeping: true,
    }
}

/// One page of a complete sync's sweep: the findings still active on the assets of the
/// page that none of the sync's vulns chunks returned become inactive (assets the sync
/// did see were reconciled as their chunks were processed). Returns the mark the sweep
/// reached; the page is counted on the job once, however often it is retried. `chunks`
/// are the job's chunk records when the caller has just read them (the sweep begins).
async fn sweep_page(services: &Services, job: &SyncJob, chunks: Option<&[ChunkRecord]>) -> Result<SweepMark> {
    let after = match &job.sweep {
        Some(SweepMark::After(asset_id)) => Some(asset_id.as_str()),
        _ => None,
    };
    let (assets, next) =
        services.inventory.assets_page(&job.connector_id, after, services.settings.sweep_page_assets).await?;
    let seen = seen_assets(services, job, chunks).await?;
    let unseen: Vec<String> = assets
        .iter()
        .filter(|asset| !seen.contains(&asset.asset.asset_id))
        .map(|asset| asset.asset.asset_id.clone())
        .collect();
    let now = Utc::now();
    let mut reached = next.map_or(SweepMark::Done, SweepMark::After);
    let mut inactivated = 0;
    let mut updates = Vec::new();
    let mut writes = 0;
    let mut batches = unseen.chunks(SWEEP_ASSETS_PER_READ).peekable();
    while let Some(batch) = batches.next() {
        for (asset_id, stored) in services.inventory.findings_of_assets(&job.connector_id, batch).await? {
            let mut update = FindingsUpdate::of(asset_id, &stored);
            for finding in stored.findings {
                if finding.last_job_id == job.job_id && finding.last_chunk == SWEEP_CHUNK {
                    // An earlier attempt of this page wrote it.
                    inactivated += 1;
                    update.keep(finding);
                } else if finding.active {
                    update.change(finding.inactivated(&job.job_id, SWEEP_CHUNK, now));
                    inactivated += 1;
                } else {
                    update.keep(finding);
                }
            }
            writes += update.changed.len();
            updates.push(update);
        }
        // Many vanished assets at once: the page ends early, so that one invocation's
        // writes stay within its time.
        if writes >= SWEEP_WRITE_BUDGET
            && batches.peek().is_some()
            && let Some(last) = batch.last()
        {
            reached = SweepMark::After(last.clone());
            break;
        }
    }
    services.inventory.put_findings(&job.connector_id, &updates).await?;
    services.jobs.record_sweep(&job.job_id, job.sweep.as_ref(), &reached, inactivated).await?;
    Ok(reached)
}

/// The assets the job's vulns chunks returned, those it carried over from an earlier job
/// of the sync among them. Put together from the chunk records when the sweep begins and
/// kept in S3 for its later pages, so that each page reads one object (8 bytes an asset),
/// not every chunk record again.
async fn seen_assets(services: &Services, job: &SyncJob, chunks: Option<&[ChunkRecord]>) -> Result<SeenAssets> {
    let key = keys::seen_assets(&job.connector_id, &job.job_id);
    let seen = match chunks {
        Some(chunks) => seen_in(chunks),
        None => {
            let kept = services.objects.find_object(&key).await?;
            if let Some(seen) = kept.as_deref().and_then(SeenAssets::from_bytes) {
                return Ok(seen);
            }
            if kept.is_some() {
                tracing::warn!(key, "the sweep's set of seen assets cannot be read: it is put together again");
            }
            seen_in(&services.jobs.chunks(&job.job_id).await?)
        }
    };
    services.objects.put_object(&key, seen.to_bytes(), "application/octet-stream").await?;
    Ok(seen)
}

/// Every asset the processed chunks returned.
fn seen_in(chunks: &[ChunkRecord]) -> SeenAssets {
    let processed = chunks.iter().filter(|chunk| chunk.status == ChunkStatus::Processed);
    SeenAssets::union(processed.map(|chunk| &chunk.seen_assets))
}

/// Assets of a sweep page whose findings are read at once.
const SWEEP_ASSETS_PER_READ: usize = 16;
/// Findings one sweep page inactivates at most (the page ends after the asset that
/// reaches it): 200 batch writes, well within Finalize's time.
const SWEEP_WRITE_BUDGET: usize = 5_000;

/// A failure no function could record itself (a crash, a timeout, retries used up).
fn caught_failure(caught: &CaughtError, stage: Stage) -> JobFailure {
    // A Lambda error's cause is `{"errorType": ..., "errorMessage": ...}`.
    let message = caught
        .cause
        .as_deref()
        .map(|cause| {
            serde_json::from_str::<serde_json::Value>(cause)
                .ok()
                .and_then(|json| json["errorMessage"].as_str().map(String::from))
                .unwrap_or_else(|| cause.to_string())
        })
        .unwrap_or_else(|| format!("the state machine caught {}", caught.error));
    JobFailure {
        status: job_status_for(&caught.error),
        stage,
        error: caught.error.clone(),
        message,
        action: recommended_action(&caught.error).to_string(),
        http_status: None,
        payload: None,
        chunk: None,
        occurred_at: Utc::now(),
    }
}

fn unprocessed_chunks_failure(chunks: &[ChunkRecord], counts: ChunkCounts) -> JobFailure {
    let failed = chunks.iter().find(|c| c.status != ChunkStatus::Processed);
    let summary = format!("{} of {} chunks were not processed", counts.failed, counts.total);
    match failed.and_then(|c| c.last_failure.clone()) {
        // The chunk kept why its last attempt failed, with the scanner's answer.
        Some(last) => JobFailure { message: format!("{summary}; {}", last.message), ..last },
        // A chunk that never ran, or whose function died without a word: the stage
        // after the last one its record reached.
        None => {
            let error = error_names::INTERNAL;
            let stage = match failed.map(|c| c.status) {
                Some(ChunkStatus::Fetched) => Stage::Normalizing,
                Some(ChunkStatus::Normalized) => Stage::Processing,
                _ => Stage::Fetching,
            };
            JobFailure {
                status: job_status_for(error),
                stage,
                error: error.to_string(),
                message: format!(
                    "{summary}; a chunk ended without an error in {stage}: the function crashed or timed out"
                ),
                action: FUNCTION_DIED_ACTION.to_string(),
                http_status: None,
                payload: None,
                chunk: failed.map(|c| c.chunk_key.clone()),
                occurred_at: Utc::now(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tenable_simulator::{Changes, Faults, FindingKey, SimulatorConfig};

    use super::*;
    use crate::model::{Finding, ScannerKind, StageOutcome};
    use crate::pipeline::JobRef;
    use crate::pipeline::fetch::{next_export, poll_export};
    use crate::pipeline::test_support::{CONNECTOR, harness};
    use crate::store::{ConnectorStore, JobStore, ObjectStore};

    #[tokio::test]
    async fn a_clean_sync_finishes_with_every_stage_timed_and_every_finding_stored() {
        let h = harness(SimulatorConfig {
            assets: 110,
            findings_per_asset: 4,
            status_polls_before_finished: 1,
            ..Default::default()
        })
        .await;
        let summary = h.run_new("job-1").await;
        assert_eq!(summary.status, JobStatus::Finished);
        // Two asset chunks (100 assets each at least) and three vuln chunks (50 assets each).
        assert_eq!(summary.chunks, ChunkCounts { total: 5, processed: 5, failed: 0, ..Default::default() });
        assert_eq!((summary.counts.assets_received, summary.counts.assets_new), (110, 110));
        assert_eq!(summary.counts.findings_received, 440);
        assert_eq!(h.store.all_findings(CONNECTOR).len(), 440);
        let job = h.store.get_job("job-1").await.unwrap().unwrap();
        for stage in Stage::ALL {
            let run = job.stages.get(&stage).unwrap_or_else(|| panic!("{stage} ran"));
            assert_eq!(run.outcome, StageOutcome::Succeeded, "{stage}");
            assert!(run.duration_ms().is_some_and(|ms| ms >= 0), "{stage} is timed");
        }
        assert!(job.ended_at.is_some() && job.current_stage.is_none());
        let connector = h.store.get_connector(CONNECTOR).await.unwrap().unwrap();
        assert_eq!(connector.sync_cursor, Some(job.started_at.timestamp()), "the next incremental sync starts here");
    }

    #[tokio::test]
    async fn a_full_sync_makes_findings_it_no_longer_sees_inactive_and_a_failed_one_does_not() {
        let h = harness(SimulatorConfig { assets: 20, findings_per_asset: 2, ..Default::default() }).await;
        assert_eq!(h.run_new("job-1").await.status, JobStatus::Finished);
        let mut gone = h.store.all_findings(CONNECTOR).remove(0);
        gone.finding.finding_id = format!("{}-retired", gone.finding.finding_id);
        h.store.put_finding(gone.clone());

        let second = h.run_new("job-2").await;
        assert_eq!(second.counts.findings_inactivated, 1);
        let stored = h.store.all_findings(CONNECTOR);
        let retired =
            stored.iter().find(|f| f.finding.finding_id == gone.finding.finding_id).expect("kept, not deleted");
        assert!(!retired.active);
        assert_eq!(stored.iter().filter(|f| f.active).count(), 40);
    }

    fn finding_id(key: &FindingKey) -> String {
        Finding::key(
            ScannerKind::Tenable,
            &key.asset_uuid,
            &key.plugin_id.to_string(),
            key.port,
            &key.protocol.to_lowercase(),
        )
    }

    #[tokio::test]
    async fn a_full_sync_inactivates_what_the_scanner_stopped_returning_on_assets_it_saw_and_assets_it_did_not() {
        let h = harness(SimulatorConfig { assets: 30, findings_per_asset: 3, ..Default::default() }).await;
        assert_eq!(h.run_new("job-1").await.status, JobStatus::Finished);
        let report = h.simulator.apply_changes(Changes { gone: 4, vanished_assets: 2, ..Changes::default() });
        assert_eq!(report.vanished_assets.len(), 2);
        assert_eq!(report.gone.len(), 4 + 2 * 3, "the 4 findings and those of the 2 vanished assets");

        let second = h.run_new("job-2").await;
        assert_eq!(second.status, JobStatus::Finished);
        assert_eq!(second.counts.findings_inactivated, 10);
        let stored = h.store.all_findings(CONNECTOR);
        assert_eq!(stored.len(), 90, "inactive findings are kept, not deleted");
        let gone: Vec<String> = report.gone.iter().map(finding_id).collect();
        for finding in &stored {
            assert_eq!(finding.active, !gone.contains(&finding.finding.finding_id), "{}", finding.finding.finding_id);
        }
        let job = h.store.get_job("job-2").await.unwrap().unwrap();
        assert_eq!(job.sweep, Some(SweepMark::Done), "30 assets swept 7 at a time, to the end");
    }

    #[tokio::test]
    async fn a_resync_of_unchanged_data_writes_no_finding_and_no_asset() {
        let h = harness(SimulatorConfig { assets: 12, findings_per_asset: 4, ..Default::default() }).await;
        h.run_new("job-1").await;
        let before = h.store.all_findings(CONNECTOR);
        let assets_before = h.store.all_assets(CONNECTOR);

        let second = h.run_new("job-2").await;
        assert_eq!(second.status, JobStatus::Finished);
        assert_eq!((second.counts.findings_unchanged, second.counts.findings_inactivated), (48, 0));
        assert_eq!(h.store.all_findings(CONNECTOR), before, "every stored finding is as the first sync wrote it");
        assert_eq!(h.store.all_assets(CONNECTOR), assets_before, "the sweep needs no mark on the assets it saw");
    }

    #[tokio::test]
    async fn a_retried_sweep_page_inactivates_and_counts_once() {
        let h = harness(SimulatorConfig { assets: 10, findings_per_asset: 2, ..Default::default() }).await;
        h.run_new("job-1").await;
        h.simulator.apply_changes(Changes { vanished_assets: 10, ..Changes::default() });
        let job = h.start_job("job-2").await;
        h.sync_chunks(&job).await.expect("syncs");
        let before_sweep = h.store.get_job("job-2").await.unwrap().unwrap();

        // The first page is swept, then swept again by a retry that read the job before.
        let first = sweep_page(&h.services, &before_sweep, None).await.unwrap();
        let again = sweep_page(&h.services, &before_sweep, None).await.unwrap();
        assert_eq!(first, again);
        let job = h.store.get_job("job-2").await.unwrap().unwrap();
        assert_eq!(job.counts.findings_inactivated, 7 * 2, "the 7 assets of the first page, counted once");
        assert_eq!(job.sweep, Some(first));
        assert_eq!(h.store.all_findings(CONNECTOR).iter().filter(|f| !f.active).count(), 14);
    }

    #[tokio::test]
    async fn a_malformed_chunk_fails_the_job_but_keeps_the_other_chunks() {
        let faults = Faults { malformed_json_chunks: vec![2], ..Default::default() };
        let h = harness(SimulatorConfig { assets: 150, findings_per_asset: 2, faults, ..Default::default() }).await;
        let summary = h.run_new("job-1").await;
        assert_eq!(summary.status, JobStatus::ApiError);
        assert_eq!(summary.chunks, ChunkCounts { total: 5, processed: 4, failed: 1, ..Default::default() });
        let connector = h.store.get_connector(CONNECTOR).await.unwrap().unwrap();
        assert_eq!(connector.sync_cursor, None, "a failed sync does not move the cursor");
        let failure = summary.failure.expect("the failure is explained");
        assert_eq!(failure.stage, Stage::Normalizing);
        assert_eq!(failure.error, error_names::MALFORMED_CHUNK);
        assert_eq!(failure.chunk.as_deref(), Some("vulns-00002"));
        assert!(
            failure.message.contains("vulns-00002") && failure.message.contains("not valid JSON"),
            "{}",
            failure.message
        );
        assert_eq!(h.store.all_findings(CONNECTOR).len(), 200, "the two good chunks are kept");
        let job = h.store.get_job("job-1").await.unwrap().unwrap();
        assert_eq!(job.stages[&Stage::Normalizing].outcome, StageOutcome::Failed);
    }

    #[tokio::test]
    async fn a_sync_past_its_window_pauses_and_keeps_what_it_processed() {
        let h = harness(SimulatorConfig {
            assets: 110,
            findings_per_asset: 2,
            status_polls_before_finished: 1,
            ..Default::default()
        })
        .await;
        let mut record = h.store.connector_record(CONNECTOR).await.unwrap().expect("the connector");
        record.sync_window_minutes = Some(30);
        h.store.update_connector(&record).await.unwrap();
        let job = h.start_job("job-1").await;
        let window_ends_at = job.window_ends_at.expect("the job carries its window");
        let started_at = h.store.get_job("job-1").await.unwrap().unwrap().started_at;
        assert_eq!(window_ends_at - started_at, chrono::Duration::minutes(30));

        // Within the window: the assets export, and its first chunk.
        crate::pipeline::connectivity::test_connectivity(&h.services, &job).await.unwrap();
        let assets = next_export(&h.services, &job, None).await.unwrap().expect("the assets export");
        let manifest_key = loop {
            if let Some(key) = poll_export(&h.services, &job, &assets).await.unwrap().manifest_key {
                break key;
            }
        };
        let chunk_ids: Vec<u32> = serde_json::from_slice(&h.store.get_object(&manifest_key).await.unwrap()).unwrap();
        assert_eq!(chunk_ids.len(), 2);
        h.one_chunk(&job, &assets, chunk_ids[0]).await.expect("processed in time");

        // The window ends: the next chunk and the next export are not fetched.
        let late = JobRef { window_ends_at: Some(Utc::now() - chrono::Duration::seconds(1)), ..job.clone() };
        let refused = h.one_chunk(&late, &assets, chunk_ids[1]).await.expect_err("past the window");
        assert_eq!(refused.error_name(), error_names::SYNC_WINDOW_ENDED);
        let stopped = next_export(&h.services, &late, Some(&assets)).await.expect_err("past the window");
        let caught = CaughtError { error: stopped.error_name().to_string(), cause: Some(stopped.to_string()) };
        let summary =
            finalize(&h.services, FinalizeEvent { job_id: "job-1".into(), failure: Some(caught) }).await.unwrap();

        assert_eq!(summary.status, JobStatus::Paused);
        assert_eq!(summary.chunks, ChunkCounts { total: 2, processed: 1, failed: 1, ..Default::default() });
        assert_eq!(summary.counts.assets_new, 100, "the processed chunk is kept");
        let failure = summary.failure.expect("the pause is explained");
        assert_eq!(failure.stage, Stage::Fetching);
        assert!(failure.message.contains("sync window ended"), "{}", failure.message);
        assert!(failure.action.contains("sync resume"), "{}", failure.action);
        let job = h.store.get_job("job-1").await.unwrap().unwrap();
        assert_eq!(job.stages[&Stage::Fetching].outcome, StageOutcome::Paused);
        let connector = h.store.get_connector(CONNECTOR).await.unwrap().unwrap();
        assert_eq!(connector.sync_cursor, None, "a paused sync does not move the cursor");
    }

    #[tokio::test]
    async fn a_failure_no_function_recorded_is_taken_from_the_state_machine() {
        let h = harness(SimulatorConfig::default()).await;
        h.start_job("job-1").await;
        let caught = CaughtError { error: "States.Timeout".into(), cause: Some("the task timed out".into()) };
        let summary =
            finalize(&h.services, FinalizeEvent { job_id: "job-1".into(), failure: Some(caught) }).await.unwrap();
        assert_eq!(summary.status, JobStatus::GenericError);
        assert_eq!(summary.failure.unwrap().message, "the task timed out");
    }
}
