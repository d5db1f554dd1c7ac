//! Resuming: a sync that ended before its time (paused when its window ended, failed,
//! cancelled) is taken up by a new job that reuses the scanner's exports and carries
//! over the chunks the earlier job had processed, instead of starting over.
//!
//! Carrying over is only right while the earlier job's work still stands, so a resumed
//! job starts over instead when the earlier job finished, asked for other data (mode or
//! scope), or when another sync of the connector started since (its data is newer).
//! Each export is taken up only while the scanner still serves it.

use std::collections::HashMap;

use chrono::Utc;

use super::{JobRef, Services};
use crate::errors::{Result, SyncError};
use crate::model::{ChunkRecord, ChunkStatus, ExportKind, ExportRef, SyncJob};
use crate::scanners::{ExportScanner, ExportState};

/// How long after its request an export is taken up again. Tenable's chunks expire
/// about a day after the export was requested; this leaves time to fetch the rest.
const EXPORT_REUSABLE_FOR: chrono::Duration = chrono::Duration::hours(20);

/// The export of `kind` that the job's nearest earlier job requested, when the scanner
/// still serves it: the job takes it up, with the chunks that job processed.
pub(crate) async fn reusable_export(
    services: &Services,
    job: &SyncJob,
    kind: ExportKind,
    scanner: &dyn ExportScanner,
) -> Result<Option<ExportRef>> {
    let Some(earlier_id) = job.carries_from.first() else { return Ok(None) };
    let Some(earlier) = services.jobs.get_job(earlier_id).await? else { return Ok(None) };
    let Some(export) = earlier.exports.into_iter().find(|export| export.kind == kind) else { return Ok(None) };
    let uuid = &export.export_uuid;
    if Utc::now() - export.requested_at > EXPORT_REUSABLE_FOR {
        tracing::info!(job_id = %job.job_id, export_uuid = %uuid, "the earlier export is too old to take up: its chunks expire");
        return Ok(None);
    }
    let usable = match scanner.export_status(kind, uuid).await {
        Ok(status) => match status.state {
            ExportState::Queued | ExportState::Processing => true,
            ExportState::Finished => status.chunks_failed.is_empty(),
            ExportState::Error | ExportState::Cancelled => false,
        },
        // Gone (404) or not understood: a new export does the job.
        Err(SyncError::ScannerRejected { reason, .. }) => {
            tracing::info!(job_id = %job.job_id, export_uuid = %uuid, %reason, "the earlier export cannot be taken up");
            false
        }
        Err(error) => return Err(error),
    };
    Ok(usable.then(|| ExportRef { resumed_from: Some(earlier_id.clone()), ..export }))
}

/// Records as this job's the chunks of `export` that the earlier job had processed, and
/// answers the chunk ids left to fetch. A retry carries nothing twice.
pub(crate) async fn carry_over_chunks(
    services: &Services,
    job: &JobRef,
    export: &ExportRef,
    chunk_ids: Vec<u32>,
) -> Result<Vec<u32>> {
    let Some(earlier_id) = &export.resumed_from else { return Ok(chunk_ids) };
    let processed: HashMap<String, ChunkRecord> = services
        .jobs
        .chunks(earlier_id)
        .await?
        .into_iter()
        .filter(|chunk| chunk.status == ChunkStatus::Processed)
        .map(|chunk| (chunk.chunk_key.clone(), chunk))
        .collect();
    let mut pending = Vec::new();
    let mut done_before = Vec::new();
    for chunk_id in chunk_ids {
        let Some(done) = processed.get(&export.kind.chunk_key(chunk_id)) else {
            pending.push(chunk_id);
            continue;
        };
        done_before.push(ChunkRecord {
            job_id: job.job_id.clone(),
            failed_attempts: 0,
            last_failure: None,
            retried: false,
            // The job that did the work, however many resumes ago.
            carried_from: Some(done.carried_from.clone().unwrap_or_else(|| earlier_id.clone())),
            updated_at: Utc::now(),
            ..done.clone()
        });
    }
    let carried = services.jobs.carry_over_chunks(&done_before).await?;
    tracing::info!(job_id = %job.job_id, from = %earlier_id, carried, pending = pending.len(), "chunks carried over");
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use tenable_simulator::{Faults, Route, ServerErrors, SimulatorConfig};

    use super::*;
    use crate::job::{SyncRequest, new_job, plan_resumption};
    use crate::model::{ChunkCounts, JobStatus, SyncMode, SyncScope};
    use crate::pipeline::connectivity::test_connectivity;
    use crate::pipeline::fetch::{next_export, poll_export};
    use crate::pipeline::finalize::FinalizeEvent;
    use crate::pipeline::test_support::{CONNECTOR, Harness, harness};
    use crate::store::{JobStore, ObjectStore};

    /// 150 assets × 2 findings in three vulns chunks; the first download of chunk 2
    /// answers 500.
    async fn tenant_whose_chunk_2_fails_once() -> Harness {
        let errors = ServerErrors { status: 500, chunk_ids: vec![2], times: 1 };
        let faults = Faults { server_errors: Some(errors), ..Default::default() };
        harness(SimulatorConfig {
            assets: 150,
            findings_per_asset: 2,
            status_polls_before_finished: 0,
            faults,
            ..Default::default()
        })
        .await
    }

    /// A vulns-only sync that ends API_ERROR with chunks 1 and 3 processed.
    async fn stopped_sync(h: &Harness, job_id: &str) -> SyncJob {
        let job = h.start_job_with(job_id, SyncMode::VulnsOnly, SyncScope::default()).await;
        let summary = h.run(&job).await;
        assert_eq!((summary.status, summary.chunks.processed, summary.chunks.total), (JobStatus::ApiError, 2, 3));
        h.store.get_job(job_id).await.unwrap().expect("the job")
    }

    #[tokio::test]
    async fn a_resumed_sync_takes_up_the_export_and_fetches_only_the_chunks_not_processed() {
        let h = tenant_whose_chunk_2_fails_once().await;
        let stopped = stopped_sync(&h, "job-0").await;
        let downloads_before = h.simulator.chunk_downloads();

        let job = h.resume_job("job-1", "job-0").await;
        assert_eq!(h.store.get_job("job-1").await.unwrap().unwrap().carries_from, ["job-0"]);
        test_connectivity(&h.services, &job).await.unwrap();
        let export = next_export(&h.services, &job, None).await.unwrap().expect("the vulns export");
        assert_eq!(export.export_uuid, stopped.exports[0].export_uuid, "the same export");
        assert_eq!(export.resumed_from.as_deref(), Some("job-0"));
        assert_eq!(h.simulator.vuln_export_requests().len(), 1, "no new export was requested");

        let poll = poll_export(&h.services, &job, &export).await.unwrap();
        let again = poll_export(&h.services, &job, &export).await.unwrap();
        assert_eq!((poll.ready, poll.total_chunks, poll.pending_chunks), (true, 3, 1));
        assert_eq!(again, poll, "a retried poll carries nothing twice");
        let manifest = h.store.get_object(poll.manifest_key.as_deref().unwrap()).await.unwrap();
        assert_eq!(serde_json::from_slice::<Vec<u32>>(&manifest).unwrap(), [2], "only the chunk left to fetch");
        let progress = h.store.get_job("job-1").await.unwrap().unwrap().chunks;
        assert_eq!((progress.processed, progress.carried_over), (2, 2));

        h.one_chunk(&job, &export, 2).await.expect("the chunk that failed is processed now");
        assert_eq!(next_export(&h.services, &job, Some(&export)).await.unwrap(), None);
        let summary = h.finalize(FinalizeEvent { job_id: "job-1".into(), failure: None }).await;
        assert_eq!(summary.status, JobStatus::Finished, "{:?}", summary.failure);
        assert_eq!(summary.chunks, ChunkCounts { total: 3, processed: 3, failed: 0, carried_over: 2, retried: 0 });
        assert_eq!(h.simulator.chunk_downloads() - downloads_before, 1, "one chunk fetched again, not three");
        assert_eq!(summary.counts.findings_received, 100, "this job's own work: one chunk of 50 assets × 2");
        assert_eq!(summary.counts.findings_inactivated, 0, "what job-0 stored was seen by this sync");
        let findings = h.store.all_findings(CONNECTOR);
        assert_eq!((findings.len(), findings.iter().filter(|f| f.active).count()), (300, 300));
        let carried = h.store.get_chunk("job-1", "vulns-00003").await.unwrap().expect("carried over");
        assert_eq!((carried.status, carried.carried_from.as_deref()), (ChunkStatus::Processed, Some("job-0")));
    }

    #[tokio::test]
    async fn a_resume_of_a_resume_counts_the_chunks_of_every_job_of_the_sync() {
        // Chunk 3 fails for the first two jobs: the third takes it up from the second,
        // which carried chunks 1 and 2 over from the first.
        let errors = ServerErrors { status: 500, chunk_ids: vec![3], times: 2 };
        let faults = Faults { server_errors: Some(errors), ..Default::default() };
        let h = harness(SimulatorConfig {
            assets: 150,
            findings_per_asset: 2,
            status_polls_before_finished: 0,
            faults,
            ..Default::default()
        })
        .await;
        let first = h.start_job_with("job-0", SyncMode::VulnsOnly, SyncScope::default()).await;
        assert_eq!(h.run(&first).await.chunks.processed, 2);
        let second = h.resume_job("job-1", "job-0").await;
        let second_summary = h.run(&second).await;
        assert_eq!((second_summary.status, second_summary.chunks.carried_over), (JobStatus::ApiError, 2));
        let third = h.resume_job("job-2", "job-1").await;
        let summary = h.run(&third).await;

        assert_eq!(h.store.get_job("job-2").await.unwrap().unwrap().carries_from, ["job-1", "job-0"]);
        assert_eq!(summary.status, JobStatus::Finished, "{:?}", summary.failure);
        assert_eq!(summary.chunks, ChunkCounts { total: 3, processed: 3, failed: 0, carried_over: 2, retried: 0 });
        assert_eq!(summary.counts.findings_inactivated, 0, "no finding a job of the sync stored is inactivated");
        assert_eq!(h.store.all_findings(CONNECTOR).iter().filter(|f| f.active).count(), 300);
        let chunk_1 = h.store.get_chunk("job-2", "vulns-00001").await.unwrap().expect("carried over");
        assert_eq!(chunk_1.carried_from.as_deref(), Some("job-0"), "named after the job that processed it");
        assert_eq!(h.simulator.vuln_export_requests().len(), 1);
    }

    #[tokio::test]
    async fn a_resume_starts_over_when_another_sync_of_the_connector_started_since() {
        let h = tenant_whose_chunk_2_fails_once().await;
        stopped_sync(&h, "job-0").await;
        assert_eq!(h.run_new("job-x").await.status, JobStatus::Finished);

        let job = h.resume_job("job-1", "job-0").await;
        let stored = h.store.get_job("job-1").await.unwrap().unwrap();
        assert!(stored.carries_from.is_empty());
        let reason = stored.starts_over_because.expect("says why");
        assert!(reason.contains("job-x") && reason.contains("newer"), "{reason}");
        let summary = h.run(&job).await;
        assert_eq!(summary.status, JobStatus::Finished);
        assert_eq!(summary.chunks, ChunkCounts { total: 3, processed: 3, failed: 0, carried_over: 0, retried: 0 });
        assert_eq!(h.simulator.vuln_export_requests().len(), 3, "its own export, as for a new sync");
    }

    #[tokio::test]
    async fn a_resume_of_a_finished_sync_or_for_other_data_starts_over() {
        let h = tenant_whose_chunk_2_fails_once().await;
        let record = h.services.connector_record(CONNECTOR).await.unwrap();
        let stopped = stopped_sync(&h, "job-0").await;
        let resume = |mode| SyncRequest {
            connector_id: CONNECTOR.into(),
            mode: Some(mode),
            trigger: None,
            scope: SyncScope::default(),
            resumed_from: Some("job-0".into()),
        };

        let mut other_mode = new_job("job-1", &record, resume(SyncMode::Full), "unit-tests", Utc::now()).unwrap();
        plan_resumption(h.store.as_ref(), &mut other_mode).await.unwrap();
        assert!(other_mode.carries_from.is_empty());
        assert!(other_mode.starts_over_because.is_some_and(|reason| reason.contains("other data")));

        let mut same_mode = new_job("job-1", &record, resume(stopped.mode), "unit-tests", Utc::now()).unwrap();
        plan_resumption(h.store.as_ref(), &mut same_mode).await.unwrap();
        assert_eq!((same_mode.carries_from, same_mode.starts_over_because), (vec!["job-0".to_string()], None));

        let mut finished = stopped;
        finished.job_id = "job-done".into();
        finished.status = JobStatus::Finished;
        h.store.create_job(&finished).await.unwrap();
        let mut after_finished = new_job("job-2", &record, resume(finished.mode), "unit-tests", Utc::now()).unwrap();
        after_finished.resumed_from = Some("job-done".into());
        plan_resumption(h.store.as_ref(), &mut after_finished).await.unwrap();
        assert!(after_finished.starts_over_because.is_some_and(|reason| reason.contains("FINISHED")));
    }

    #[tokio::test]
    async fn an_export_the_scanner_no_longer_serves_or_too_old_is_requested_anew() {
        let h = tenant_whose_chunk_2_fails_once().await;
        let record = h.services.connector_record(CONNECTOR).await.unwrap();
        let connector = record.connector.clone();
        let scanner = h.services.scanner(&connector).await.unwrap();
        let gone = ExportRef {
            kind: ExportKind::Vulns,
            export_uuid: "0b8f3c1e-0000-4000-8000-000000000000".into(),
            requested_at: Utc::now(),
            since: 0,
            adopted: false,
            resumed_from: None,
        };
        let too_old = ExportRef { requested_at: Utc::now() - chrono::Duration::hours(21), ..gone.clone() };
        for (job_id, export) in [("job-gone", gone), ("job-old", too_old)] {
            let request = SyncRequest {
                connector_id: CONNECTOR.into(),
                mode: Some(SyncMode::VulnsOnly),
                trigger: None,
                scope: SyncScope::default(),
                resumed_from: None,
            };
            let mut earlier = new_job(job_id, &record, request, "unit-tests", Utc::now()).unwrap();
            earlier.status = JobStatus::ApiError;
            earlier.exports = vec![export];
            let resuming = SyncJob {
                job_id: format!("{job_id}-resumed"),
                carries_from: vec![job_id.to_string()],
                ..earlier.clone()
            };
            h.store.create_job(&earlier).await.unwrap();
            let status_calls = h.simulator.requests_received(Route::ExportStatus);
            let reused = reusable_export(&h.services, &resuming, ExportKind::Vulns, scanner.as_ref()).await.unwrap();
            assert_eq!(reused, None, "{job_id}: a new export is requested instead");
            let asked = h.simulator.requests_received(Route::ExportStatus) - status_calls;
            assert_eq!(asked, u32::from(job_id == "job-gone"), "{job_id}: only an export young enough is asked after");
        }
    }
}
