//! Initiating: create the job record for an execution.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{JobRef, Services};
use crate::errors::{Result, SyncError};
use crate::model::{JobStatus, Stage, SyncJob, SyncMode, SyncScope, Trigger};

/// What starts a sync: the state machine's execution input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub connector_id: String,
    /// The connector's default mode when absent.
    #[serde(default)]
    pub mode: Option<SyncMode>,
    /// Scheduled when absent.
    #[serde(default)]
    pub trigger: Option<Trigger>,
    /// A manual run may narrow what it exports; everything when absent.
    #[serde(default)]
    pub scope: SyncScope,
}

/// The request, with the execution's name as the job id: one execution, one job, and
/// a start that is retried cannot make two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartSync {
    pub job_id: String,
    #[serde(default)]
    pub execution_arn: Option<String>,
    pub input: SyncRequest,
}

pub async fn initiate(services: &Services, start: StartSync) -> Result<JobRef> {
    let request = start.input;
    if request.connector_id.trim().is_empty() || start.job_id.trim().is_empty() {
        return Err(SyncError::InvalidRequest("connector_id and job_id must not be empty".into()));
    }
    let job_ref = JobRef { job_id: start.job_id.clone(), connector_id: request.connector_id.clone() };
    if let Some(existing) = services.jobs.get_job(&start.job_id).await? {
        // The state machine retried this state after the job was created.
        if existing.connector_id == request.connector_id {
            return Ok(job_ref);
        }
        return Err(SyncError::InvalidRequest(format!("job {} belongs to another connector", start.job_id)));
    }
    let connector = services.connector(&request.connector_id).await?;
    let mode = request.mode.unwrap_or(connector.default_mode);
    if mode == SyncMode::Incremental && !request.scope.is_everything() {
        return Err(SyncError::InvalidRequest(
            "an incremental sync starts where the last one ended: give a scope to a full sync instead".into(),
        ));
    }
    let job = SyncJob {
        job_id: start.job_id.clone(),
        connector_id: connector.connector_id,
        mode,
        scope: request.scope,
        trigger: request.trigger.unwrap_or(Trigger::Scheduled),
        status: JobStatus::Started,
        current_stage: None,
        stages: Default::default(),
        chunks: Default::default(),
        counts: Default::default(),
        exports: Vec::new(),
        failure: None,
        last_retryable_failure: None,
        deployment: services.settings.deployment.clone(),
        execution_arn: start.execution_arn,
        started_at: Utc::now(),
        ended_at: None,
    };
    services.jobs.create_job(&job).await?;
    services.run_stage(&job.job_id, Stage::Initiating, None, async { Ok(()) }).await?;
    tracing::info!(job_id = %job.job_id, connector_id = %job.connector_id, ?mode, "sync job created");
    Ok(job_ref)
}

#[cfg(test)]
mod tests {
    use tenable_simulator::SimulatorConfig;

    use super::*;
    use crate::pipeline::test_support::{CONNECTOR, harness};
    use crate::store::JobStore;

    #[tokio::test]
    async fn creates_a_started_job_with_the_initiating_stage_timed() {
        let h = harness(SimulatorConfig::default()).await;
        let job_ref = h.start_job("job-1").await;
        let job = h.store.get_job(&job_ref.job_id).await.unwrap().expect("the job exists");
        assert_eq!(job.status, JobStatus::Started);
        assert_eq!(job.deployment, "unit-tests");
        assert!(job.stages[&Stage::Initiating].ended_at.is_some());
        assert_eq!(job.trigger, Trigger::Manual { by: "tester@example.com".into() });
    }

    #[tokio::test]
    async fn a_retried_start_keeps_one_job() {
        let h = harness(SimulatorConfig::default()).await;
        let first = h.start_job("job-1").await;
        let again = h.start_job("job-1").await;
        assert_eq!(first, again);
    }

    #[tokio::test]
    async fn an_unknown_connector_is_an_invalid_request() {
        let h = harness(SimulatorConfig::default()).await;
        let start = StartSync {
            job_id: "job-2".into(),
            execution_arn: None,
            input: SyncRequest {
                connector_id: format!("{CONNECTOR}-missing"),
                mode: None,
                trigger: None,
                scope: SyncScope::default(),
            },
        };
        let error = initiate(&h.services, start).await.expect_err("no such connector");
        assert_eq!(error.error_name(), "Vulnflow.InvalidRequest");
        assert!(error.to_string().contains("there is no connector"));
    }
}
