//! Initiating: create the job record for an execution.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{JobRef, Services};
use crate::errors::{Result, SyncError};
use crate::job::{self, SyncRequest};
use crate::model::{Stage, SyncJob};

/// The request, with the execution's name as the job id: one execution, one job, and
/// a start that is retried cannot make two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartSync {
    pub job_id: String,
    #[serde(default)]
    pub execution_arn: Option<String>,
    pub input: SyncRequest,
}

/// Creates the job, or takes over the one its starter (the API, the dispatcher)
/// created so that it could be followed from the moment it was started.
pub async fn initiate(services: &Services, start: StartSync) -> Result<JobRef> {
    let request = start.input;
    if request.connector_id.trim().is_empty() || start.job_id.trim().is_empty() {
        return Err(SyncError::InvalidRequest("connector_id and job_id must not be empty".into()));
    }
    let record = services.connector_record(&request.connector_id).await?;
    let job_ref = |job: &SyncJob| JobRef {
        job_id: job.job_id.clone(),
        connector_id: job.connector_id.clone(),
        scanner: record.connector.kind,
        window_ends_at: job.window_ends_at,
    };
    let job = match services.jobs.get_job(&start.job_id).await? {
        Some(existing) if existing.connector_id != request.connector_id => {
            return Err(SyncError::InvalidRequest(format!("job {} belongs to another connector", start.job_id)));
        }
        // Retried after the job had initiated.
        Some(existing) if existing.stages.contains_key(&Stage::Initiating) => return Ok(job_ref(&existing)),
        Some(existing) => existing,
        None => {
            let mut job = job::new_job(&start.job_id, &record, request, &services.settings.deployment, Utc::now())?;
            job::plan_resumption(services.jobs.as_ref(), &mut job).await?;
            services.jobs.create_job(&job).await?;
            job
        }
    };
    if let Some(execution_arn) = start.execution_arn.as_deref().filter(|_| job.execution_arn.is_none()) {
        services.jobs.set_execution_arn(&job.job_id, execution_arn).await?;
    }
    services.run_stage(&job.job_id, Stage::Initiating, None, async { Ok(()) }).await?;
    tracing::info!(job_id = %job.job_id, connector_id = %job.connector_id, mode = ?job.mode, "sync job initiated");
    Ok(job_ref(&job))
}

#[cfg(test)]
mod tests {
    use tenable_simulator::SimulatorConfig;

    use super::*;
    use crate::job::new_job;
    use crate::model::{JobStatus, SyncMode, SyncScope, Trigger};
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
    async fn takes_over_the_job_its_starter_created() {
        let h = harness(SimulatorConfig::default()).await;
        let record = h.services.connector_record(CONNECTOR).await.unwrap();
        let request = SyncRequest {
            connector_id: CONNECTOR.into(),
            mode: Some(SyncMode::AssetsOnly),
            trigger: Some(Trigger::Manual { by: "ana@example.com".into() }),
            scope: SyncScope::default(),
            resumed_from: None,
        };
        let created = new_job("job-3", &record, request.clone(), "unit-tests", Utc::now()).unwrap();
        h.store.create_job(&created).await.unwrap();

        let start =
            StartSync { job_id: "job-3".into(), execution_arn: Some("arn:execution:job-3".into()), input: request };
        initiate(&h.services, start).await.expect("initiates the existing job");
        let job = h.store.get_job("job-3").await.unwrap().expect("the job exists");
        assert_eq!(job.mode, SyncMode::AssetsOnly);
        assert_eq!(job.started_at, created.started_at, "the job started when it was requested");
        assert_eq!(job.execution_arn.as_deref(), Some("arn:execution:job-3"));
        assert!(job.stages[&Stage::Initiating].ended_at.is_some());
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
                resumed_from: None,
            },
        };
        let error = initiate(&h.services, start).await.expect_err("no such connector");
        assert_eq!(error.error_name(), "Vulnflow.InvalidRequest");
        assert!(error.to_string().contains("there is no connector"));
    }
}
