//! Every way a job ends, written in one place.

use chrono::Utc;

use crate::errors::Result;
use crate::model::{ChunkCounts, JobFailure, JobStatus, StageOutcome, SyncJob};
use crate::store::{JobEnding, JobStore};

/// How a job ends.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEnd {
    /// Finalize settled it from its chunk records (`chunks`, as it counted them):
    /// FINISHED without a failure; otherwise the failure's status (PAUSED for a sync
    /// window that ended), with the failure recorded on the stage it names.
    Settled { failure: Option<JobFailure>, chunks: ChunkCounts },
    /// An operator cancelled it: its running stages end `cancelled`.
    Cancelled,
    /// Its execution ended before finalize could settle it (stopped in the console, timed
    /// out, failed where no Catch reaches): its running stages end `failed`, and the
    /// failure says what happened.
    Orphaned(JobFailure),
    /// Its execution never started: nothing ran, so only the failure is recorded.
    NeverStarted(JobFailure),
}

impl JobEnd {
    fn failure(&self) -> Option<&JobFailure> {
        match self {
            JobEnd::Settled { failure, .. } => failure.as_ref(),
            JobEnd::Cancelled => None,
            JobEnd::Orphaned(failure) | JobEnd::NeverStarted(failure) => Some(failure),
        }
    }

    fn status(&self) -> JobStatus {
        match self {
            JobEnd::Cancelled => JobStatus::Cancelled,
            _ => self.failure().map_or(JobStatus::Finished, |failure| failure.status),
        }
    }
}

/// Ends `job` as `how` says, keeping what it processed, and answers the ended job as
/// written. The first failure recorded on a job stands: a later one is its consequence.
pub async fn end(jobs: &dyn JobStore, job: &SyncJob, how: JobEnd) -> Result<SyncJob> {
    let now = Utc::now();
    let stopped_stages = match &how {
        JobEnd::Cancelled => Some(StageOutcome::Cancelled),
        JobEnd::Orphaned(_) => Some(StageOutcome::Failed),
        JobEnd::Settled { .. } | JobEnd::NeverStarted(_) => None,
    };
    if let Some(outcome) = stopped_stages {
        for (stage, run) in &job.stages {
            if run.outcome == StageOutcome::Running {
                jobs.stage_ended(&job.job_id, *stage, outcome, now).await?;
            }
        }
    }
    if let Some(failure) = how.failure().filter(|_| job.failure.is_none()) {
        jobs.record_failure(&job.job_id, failure).await?;
        if let JobEnd::Settled { .. } = how {
            jobs.stage_ended(&job.job_id, failure.stage, StageOutcome::Failed, failure.occurred_at).await?;
        }
    }
    let chunks = match &how {
        JobEnd::Settled { chunks, .. } => *chunks,
        JobEnd::NeverStarted(_) => job.chunks,
        // What the chunk records say was processed before the execution stopped.
        JobEnd::Cancelled | JobEnd::Orphaned(_) => {
            ChunkCounts::settled(job.chunks.total, &jobs.chunks(&job.job_id).await?)
        }
    };
    let ending = JobEnding { status: how.status(), chunks, ended_at: now };
    jobs.finish_job(&job.job_id, &ending).await?;
    Ok(SyncJob { status: ending.status, chunks, ended_at: Some(now), current_stage: None, ..job.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::SyncError;
    use crate::job::failure_of;
    use crate::model::{ChunkRecord, ChunkStatus, SeenAssets, Stage, SyncMode, Trigger};
    use crate::store::memory::MemoryStore;

    /// A job fetching, with one chunk processed of two announced.
    async fn fetching_job(jobs: &MemoryStore) -> SyncJob {
        let mut job =
            SyncJob::started("job-1", "tenable-1", SyncMode::Full, Trigger::Scheduled, "unit-tests", Utc::now());
        job.chunks.total = 2;
        jobs.create_job(&job).await.unwrap();
        jobs.stage_started("job-1", Stage::Fetching, Utc::now()).await.unwrap();
        let chunk = ChunkRecord {
            job_id: "job-1".into(),
            chunk_key: "vulns-00001".into(),
            status: ChunkStatus::Processed,
            failed_attempts: 0,
            raw_key: None,
            normalized_key: None,
            records: Some(10),
            last_failure: None,
            retried: false,
            carried_from: None,
            seen_assets: SeenAssets::default(),
            updated_at: Utc::now(),
        };
        jobs.save_chunk(&chunk).await.unwrap();
        jobs.get_job("job-1").await.unwrap().unwrap()
    }

    fn failure(status_of: SyncError) -> JobFailure {
        failure_of(&status_of, Stage::Fetching, None, Utc::now())
    }

    #[tokio::test]
    async fn each_end_sets_its_status_closes_running_stages_and_keeps_what_was_processed() {
        let window_ended = SyncError::SyncWindowEnded { ends_at: Utc::now() };
        let settled =
            |failure| JobEnd::Settled { failure, chunks: ChunkCounts { total: 2, processed: 2, ..Default::default() } };
        let cases = [
            (settled(None), JobStatus::Finished, StageOutcome::Running, 2),
            (settled(Some(failure(window_ended))), JobStatus::Paused, StageOutcome::Failed, 2),
            (JobEnd::Cancelled, JobStatus::Cancelled, StageOutcome::Cancelled, 1),
            (
                JobEnd::Orphaned(failure(SyncError::Internal("stopped".into()))),
                JobStatus::GenericError,
                StageOutcome::Failed,
                1,
            ),
            (
                JobEnd::NeverStarted(failure(SyncError::Internal("no execution".into()))),
                JobStatus::GenericError,
                StageOutcome::Running,
                0,
            ),
        ];
        for (how, status, fetching, processed) in cases {
            let jobs = MemoryStore::default();
            let job = fetching_job(&jobs).await;
            let expected_failure = how.failure().cloned();
            end(&jobs, &job, how.clone()).await.expect("ends");
            let stored = jobs.get_job("job-1").await.unwrap().unwrap();
            assert_eq!(stored.status, status, "{how:?}");
            assert!(stored.ended_at.is_some() && stored.current_stage.is_none(), "{how:?}");
            assert_eq!(stored.stages[&Stage::Fetching].outcome, fetching, "{how:?}");
            assert_eq!(stored.chunks.processed, processed, "{how:?}");
            assert_eq!(stored.failure.map(|f| f.message), expected_failure.map(|f| f.message), "{how:?}");
        }
    }

    #[tokio::test]
    async fn the_first_failure_recorded_stands() {
        let jobs = MemoryStore::default();
        let job = fetching_job(&jobs).await;
        jobs.record_failure("job-1", &failure(SyncError::Internal("the cause".into()))).await.unwrap();
        let job = SyncJob { failure: jobs.get_job("job-1").await.unwrap().unwrap().failure, ..job };
        end(&jobs, &job, JobEnd::Orphaned(failure(SyncError::Internal("a consequence".into())))).await.unwrap();
        let stored = jobs.get_job("job-1").await.unwrap().unwrap();
        assert!(stored.failure.is_some_and(|f| f.message.contains("the cause")));
    }
}
