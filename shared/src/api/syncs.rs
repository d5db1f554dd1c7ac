//! Starting a manual sync and cancelling a running one.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::jobs::{self, JobView};
use super::{ApiServices, connectors, input};
use crate::auth::Caller;
use crate::errors::{Result, SyncError};
use crate::model::{
    ChunkCounts, ConnectorRecord, JobStatus, Stage, StageOutcome, SyncClaim, SyncJob, SyncMode, SyncScope, Trigger,
};
use crate::pipeline::failure_of;
use crate::pipeline::initiate::{SyncRequest, new_job};
use crate::store::{HistoryFilter, HistoryPage};

/// How long a started sync may take to create its job (the workflow's first state,
/// retries included) before its claim on the connector lapses.
const START_GRACE: chrono::Duration = chrono::Duration::minutes(3);
const MAX_REASON_CHARS: usize = 500;

#[derive(Deserialize)]
struct StartRequest {
    #[serde(default)]
    mode: Option<SyncMode>,
    #[serde(default)]
    scope: Option<SyncScope>,
    /// A job that ended before its time: the new sync runs with its mode and scope
    /// unless the request gives others.
    #[serde(default)]
    resume_job_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct Started {
    job_id: String,
    execution_arn: String,
    status_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resumed_from: Option<String>,
}

#[derive(Deserialize)]
struct CancelRequest {
    /// Kept in the execution's history with who cancelled.
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn start(services: &ApiServices, caller: &Caller, connector_id: &str, body: &[u8]) -> Result<Started> {
    let request: StartRequest = input::body(body)?;
    let record = connectors::found(services, connector_id).await?;
    let resumed = match &request.resume_job_id {
        Some(job_id) => Some(resumable(services, connector_id, job_id).await?),
        None => None,
    };
    let mode = request.mode.or(resumed.as_ref().map(|job| job.mode)).unwrap_or(record.connector.default_mode);
    let scope = request.scope.or(resumed.as_ref().map(|job| job.scope.clone())).unwrap_or_default();
    validate_scope(mode, &scope)?;
    ensure_idle(services, &record).await?;

    let job_id = uuid::Uuid::new_v4().to_string();
    let claim = SyncClaim { job_id: job_id.clone(), claimed_at: Utc::now() };
    let previous = record.sync_claim.as_ref().map(|claim| claim.job_id.as_str());
    if !services.connectors.claim_sync(connector_id, previous, &claim).await? {
        return Err(SyncError::Conflict(format!(
            "another sync of connector {connector_id} was started at the same moment: \
             GET /connectors/{connector_id}/syncs shows it"
        )));
    }
    let sync = SyncRequest {
        connector_id: connector_id.to_string(),
        mode: Some(mode),
        trigger: Some(Trigger::Manual { by: caller.principal.clone() }),
        scope,
    };
    let input = execution_input(&sync, request.resume_job_id.as_deref())?;
    // The job exists before its execution, so that it can be followed at once.
    let job = new_job(&job_id, &record.connector, sync, &services.deployment, Utc::now())?;
    services.jobs.create_job(&job).await?;
    let execution_arn = match services.workflow.start_sync(&job_id, &input).await {
        Ok(arn) => arn,
        Err(error) => {
            not_started(services, job, &error).await;
            return Err(error);
        }
    };
    services.jobs.set_execution_arn(&job_id, &execution_arn).await?;
    tracing::info!(connector_id, job_id, by = %caller.principal, ?mode, "sync started");
    Ok(Started { status_url: format!("/jobs/{job_id}"), job_id, execution_arn, resumed_from: request.resume_job_id })
}

/// Ends the job of a sync whose execution did not start as failed, and frees its
/// connector: the attempt stays in the history, and the connector must not look busy.
async fn not_started(services: &ApiServices, mut job: SyncJob, error: &SyncError) {
    let now = Utc::now();
    let failure = failure_of(error, Stage::Initiating, None, now);
    job.status = failure.status;
    job.ended_at = Some(now);
    let (job_id, connector_id) = (&job.job_id, &job.connector_id);
    for bookkeeping in [
        services.jobs.record_failure(job_id, &failure).await,
        services.jobs.finish_job(&job).await,
        services.connectors.release_sync(connector_id, job_id).await,
    ] {
        if let Err(secondary) = bookkeeping {
            tracing::error!(%job_id, %connector_id, error = %secondary, "could not record a sync that did not start");
        }
    }
}

/// The execution's input: the [`SyncRequest`] the workflow's first state reads, and
/// the job a resumed sync continues.
fn execution_input(sync: &SyncRequest, resumed_from: Option<&str>) -> Result<serde_json::Value> {
    let mut input =
        serde_json::to_value(sync).map_err(|e| SyncError::Internal(format!("cannot encode the sync request: {e}")))?;
    if let Some(job_id) = resumed_from {
        input["resumed_from"] = serde_json::Value::String(job_id.to_string());
    }
    Ok(input)
}

fn validate_scope(mode: SyncMode, scope: &SyncScope) -> Result<()> {
    if mode == SyncMode::Incremental && !scope.is_everything() {
        return Err(SyncError::invalid_field(
            "scope",
            "cannot narrow an incremental sync, which starts where the last complete one started: \
             leave the scope out, or ask for mode full",
        ));
    }
    for (index, tag) in scope.tags.iter().enumerate() {
        if tag.category.trim().is_empty() {
            return Err(SyncError::invalid_field(format!("scope.tags[{index}].category"), "must not be empty"));
        }
        if tag.values.iter().all(|value| value.trim().is_empty()) {
            return Err(SyncError::invalid_field(format!("scope.tags[{index}].values"), "must hold at least one value"));
        }
    }
    Ok(())
}

/// The job a sync resumes: it must be this connector's and must have ended.
async fn resumable(services: &ApiServices, connector_id: &str, job_id: &str) -> Result<SyncJob> {
    let job = services.jobs.get_job(job_id).await?.ok_or_else(|| {
        SyncError::invalid_field("resume_job_id", format!("names no job ({job_id}); its history may have expired"))
    })?;
    if job.connector_id != connector_id {
        return Err(SyncError::invalid_field(
            "resume_job_id",
            format!("names a job of connector {}, not {connector_id}", job.connector_id),
        ));
    }
    if !job.status.is_terminal() {
        return Err(SyncError::Conflict(format!(
            "job {job_id} is still running ({}): only an ended job can be resumed",
            job.status
        )));
    }
    Ok(job)
}

/// `Conflict` if a sync of the connector runs, or was just started and has no job yet.
pub(super) async fn ensure_idle(services: &ApiServices, record: &ConnectorRecord) -> Result<()> {
    let connector_id = &record.connector.connector_id;
    if let Some(claim) = &record.sync_claim {
        match services.jobs.get_job(&claim.job_id).await? {
            Some(job) if !job.status.is_terminal() => return Err(running(&job)),
            None if Utc::now() - claim.claimed_at < START_GRACE => {
                return Err(SyncError::Conflict(format!(
                    "sync {} of connector {connector_id} was started at {} and is setting up: follow it at /jobs/{}",
                    claim.job_id,
                    claim.claimed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    claim.job_id
                )));
            }
            _ => {}
        }
    }
    // Syncs the API did not start (scheduled ones) show only in the jobs table.
    let filter = HistoryFilter { statuses: vec![JobStatus::Started, JobStatus::Delegated], ..Default::default() };
    let (running_jobs, _) = services.jobs.history(connector_id, &filter, &HistoryPage { limit: 1, token: None }).await?;
    match running_jobs.first() {
        Some(job) => Err(running(job)),
        None => Ok(()),
    }
}

fn running(job: &SyncJob) -> SyncError {
    SyncError::Conflict(format!(
        "sync {} of connector {} is running ({}): wait for it to end, or cancel it with POST /jobs/{}/cancel",
        job.job_id, job.connector_id, job.status, job.job_id
    ))
}

pub(super) async fn cancel(services: &ApiServices, caller: &Caller, job_id: &str, body: &[u8]) -> Result<JobView> {
    let request: CancelRequest = input::body(body)?;
    let job = jobs::found(services, job_id).await?;
    ensure_running(&job)?;
    let execution_arn = job
        .execution_arn
        .as_deref()
        .ok_or_else(|| SyncError::Internal(format!("job {job_id} has no execution recorded, so it cannot be stopped")))?;
    let reason: String = request.reason.unwrap_or_default().chars().take(MAX_REASON_CHARS).collect();
    let cause = match reason.trim() {
        "" => format!("cancelled by {}", caller.principal),
        reason => format!("cancelled by {}: {reason}", caller.principal),
    };
    match services.workflow.stop(execution_arn, &cause).await {
        // An execution that is gone (its history expired) has nothing left to stop.
        Ok(()) | Err(SyncError::NotFound(_)) => {}
        Err(error) => return Err(error),
    }
    // The workflow may have settled the job while its execution was being stopped:
    // that outcome stands.
    let job = jobs::found(services, job_id).await?;
    ensure_running(&job)?;
    settle_cancelled(services, &job).await?;
    tracing::info!(job_id, by = %caller.principal, "sync cancelled");
    jobs::get_view(services, &jobs::found(services, job_id).await?, None).await
}

fn ensure_running(job: &SyncJob) -> Result<()> {
    if job.status.is_terminal() {
        return Err(SyncError::Conflict(format!(
            "job {} already ended ({}): there is nothing to cancel",
            job.job_id, job.status
        )));
    }
    Ok(())
}

/// Ends a stopped job as CANCELLED, keeping what it processed: the chunk counts come
/// from the chunk records, as when the workflow finalizes a job.
async fn settle_cancelled(services: &ApiServices, job: &SyncJob) -> Result<()> {
    let now = Utc::now();
    for (stage, run) in &job.stages {
        if run.outcome == StageOutcome::Running {
            services.jobs.stage_ended(&job.job_id, *stage, StageOutcome::Cancelled, now).await?;
        }
    }
    let chunks = services.jobs.chunks(&job.job_id).await?;
    let mut cancelled = job.clone();
    cancelled.status = JobStatus::Cancelled;
    cancelled.chunks = ChunkCounts::settled(job.chunks.total, &chunks);
    cancelled.ended_at = Some(now);
    cancelled.current_stage = None;
    services.jobs.finish_job(&cancelled).await
}
