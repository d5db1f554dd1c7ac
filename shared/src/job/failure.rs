//! What a job records when a stage fails.

use chrono::Utc;

use crate::errors::{SyncError, error_names};
use crate::model::{JobFailure, JobStatus, Stage, StageOutcome};
use crate::store::JobStore;

/// The job's account of an error.
pub fn failure_of(error: &SyncError, stage: Stage, chunk_key: Option<&str>, at: chrono::DateTime<Utc>) -> JobFailure {
    let response = error.response();
    JobFailure {
        status: error.job_status(),
        stage,
        error: error.error_name().to_string(),
        message: error.to_string(),
        action: error.action().to_string(),
        http_status: response.map(|r| r.status),
        payload: response.map(|r| r.to_payload()),
        chunk: chunk_key.or(error.chunk()).map(String::from),
        occurred_at: at,
    }
}

/// Records that `stage` failed with `error`: on the chunk record for a chunk's stage,
/// and, unless a retry may cure it, as the stage's end and the job's failure (the first
/// one recorded stands). A transient failure outside a chunk is kept as the job's last
/// retryable one, which finalize reports if the retries run out.
pub async fn record_stage_failure(
    jobs: &dyn JobStore,
    job_id: &str,
    stage: Stage,
    chunk_key: Option<&str>,
    error: &SyncError,
) {
    let now = Utc::now();
    tracing::warn!(job_id, %stage, chunk = chunk_key, error = error.error_name(), message = %error, "stage failed");
    let transient = error_names::TRANSIENT.contains(&error.error_name());
    let failure = failure_of(error, stage, chunk_key, now);
    let mut bookkeeping = Vec::new();
    if let Some(chunk_key) = chunk_key {
        bookkeeping.push(jobs.chunk_attempt_failed(job_id, chunk_key, &failure).await);
    }
    if !transient {
        let outcome = if failure.status == JobStatus::Paused { StageOutcome::Paused } else { StageOutcome::Failed };
        bookkeeping.push(jobs.stage_ended(job_id, stage, outcome, now).await);
        bookkeeping.push(jobs.record_failure(job_id, &failure).await);
    } else if chunk_key.is_none() {
        bookkeeping.push(jobs.note_retryable_failure(job_id, &failure).await);
    }
    // The stage's own error is what the state machine must see; a bookkeeping
    // failure on top of it is logged, and finalize rebuilds what it can.
    for result in bookkeeping {
        if let Err(secondary) = result {
            tracing::error!(job_id, error = %secondary, "could not record the stage failure");
        }
    }
}
