//! Starting a manual sync and cancelling a running one.

use serde::{Deserialize, Serialize};

use super::jobs::{self, JobView};
use super::{ApiServices, connectors, input};
use crate::auth::Caller;
use crate::errors::{Result, SyncError};
use crate::job::{self, JobEnd, SyncRequest};
use crate::model::{SyncJob, SyncMode, SyncScope, Trigger};

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
    let sync = SyncRequest {
        connector_id: connector_id.to_string(),
        mode: Some(mode),
        trigger: Some(Trigger::Manual { by: caller.principal.clone() }),
        scope,
        resumed_from: request.resume_job_id,
    };
    let job_id = uuid::Uuid::new_v4().to_string();
    let started = services.starter().start(&record, &job_id, sync).await?;
    tracing::info!(connector_id, job_id, by = %caller.principal, ?mode, "sync started");
    Ok(Started {
        status_url: format!("/jobs/{job_id}"),
        job_id,
        execution_arn: started.execution_arn,
        resumed_from: started.job.resumed_from,
    })
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
            return Err(SyncError::invalid_field(
                format!("scope.tags[{index}].values"),
                "must hold at least one value",
            ));
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
    // One stopped in the Step Functions console is settled first, then resumed.
    let job = if job.status.is_terminal() { job } else { jobs::found_settled(services, job_id).await? };
    if !job.status.is_terminal() {
        return Err(SyncError::Conflict(format!(
            "job {job_id} is still running ({}): only an ended job can be resumed",
            job.status
        )));
    }
    Ok(job)
}

pub(super) async fn cancel(services: &ApiServices, caller: &Caller, job_id: &str, body: &[u8]) -> Result<JobView> {
    let request: CancelRequest = input::body(body)?;
    let job = jobs::found_settled(services, job_id).await?;
    ensure_running(&job)?;
    let execution_arn = job.execution_arn.as_deref().ok_or_else(|| {
        SyncError::Internal(format!("job {job_id} has no execution recorded, so it cannot be stopped"))
    })?;
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
    job::end(services.jobs.as_ref(), &job, JobEnd::Cancelled).await?;
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
