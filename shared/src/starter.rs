//! Starting a sync: one path for the API's manual runs and the scheduler's, so that
//! both respect the same rule: one sync of a connector at a time.

use std::sync::Arc;

use chrono::Utc;

use crate::errors::{Result, SyncError};
use crate::job::{self, JobEnd, SyncRequest, failure_of};
use crate::model::{ConnectorRecord, JobStatus, Stage, SyncClaim, SyncJob};
use crate::store::{ConnectorStore, HistoryFilter, HistoryPage, JobStore};
use crate::workflow::{ExecutionState, Workflow};

/// How long a started sync may take to create its job before its claim on the
/// connector lapses (a starter that died between claiming and creating the job).
const START_GRACE: chrono::Duration = chrono::Duration::minutes(3);

/// What starting a sync needs. Built once per function process.
#[derive(Clone)]
pub struct SyncStarter {
    pub connectors: Arc<dyn ConnectorStore>,
    pub jobs: Arc<dyn JobStore>,
    pub workflow: Arc<dyn Workflow>,
    /// The deployment's name, recorded on the jobs it starts.
    pub deployment: String,
}

/// A sync whose execution started.
#[derive(Debug, Clone, PartialEq)]
pub struct StartedSync {
    pub job: SyncJob,
    pub execution_arn: String,
}

impl SyncStarter {
    /// Starts a sync of `record`'s connector as job (and execution) `job_id`.
    /// `Conflict` if a sync of the connector runs, or if `job_id` was used before.
    pub async fn start(&self, record: &ConnectorRecord, job_id: &str, request: SyncRequest) -> Result<StartedSync> {
        self.ensure_idle(record).await?;
        let input = serde_json::to_value(&request)
            .map_err(|e| SyncError::Internal(format!("cannot encode the sync request: {e}")))?;
        let mut job = job::new_job(job_id, record, request, &self.deployment, Utc::now())?;
        job::plan_resumption(self.jobs.as_ref(), &mut job).await?;
        let connector_id = &record.connector.connector_id;
        let claim = SyncClaim { job_id: job_id.to_string(), claimed_at: Utc::now() };
        let previous = record.sync_claim.as_ref().map(|claim| claim.job_id.as_str());
        if !self.connectors.claim_sync(connector_id, previous, &claim).await? {
            if self.connectors.connector_record(connector_id).await?.is_none() {
                return Err(SyncError::NotFound(format!("connector {connector_id} was deleted as the sync started")));
            }
            return Err(SyncError::Conflict(format!(
                "another sync of connector {connector_id} was started at the same moment: \
                 GET /connectors/{connector_id}/syncs shows it"
            )));
        }
        // The job exists before its execution, so that it can be followed at once.
        if let Err(error) = self.jobs.create_job(&job).await {
            self.release(connector_id, job_id).await;
            return Err(error);
        }
        let execution_arn = match self.workflow.start_sync(job_id, &input).await {
            Ok(arn) => arn,
            Err(error) => {
                self.not_started(job, &error).await;
                return Err(error);
            }
        };
        self.jobs.set_execution_arn(job_id, &execution_arn).await?;
        job.execution_arn = Some(execution_arn.clone());
        Ok(StartedSync { job, execution_arn })
    }

    /// `Conflict` if a sync of the connector runs, or was just started and has no job yet.
    /// A job whose execution ended without settling it holds the connector no longer.
    pub async fn ensure_idle(&self, record: &ConnectorRecord) -> Result<()> {
        let connector_id = &record.connector.connector_id;
        if let Some(claim) = &record.sync_claim {
            match self.jobs.get_job(&claim.job_id).await? {
                Some(job) if !job.status.is_terminal() => self.settle_if_orphaned(&job).await?,
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
        // Syncs started without a claim (straight through Step Functions) show only
        // in the jobs table.
        let filter = HistoryFilter { statuses: vec![JobStatus::Started, JobStatus::Delegated], ..Default::default() };
        let (running_jobs, _) =
            self.jobs.history(connector_id, &filter, &HistoryPage { limit: 1, token: None }).await?;
        match running_jobs.first() {
            Some(job) => self.settle_if_orphaned(job).await,
            None => Ok(()),
        }
    }

    /// `Conflict` if the job's execution still runs; a job whose execution ended is
    /// settled ([`Self::settle_if_ended`]).
    async fn settle_if_orphaned(&self, job: &SyncJob) -> Result<()> {
        if self.settle_if_ended(job).await? { Ok(()) } else { Err(running(job)) }
    }

    /// Settles a job whose execution ended without its finalize (stopped in the Step
    /// Functions console, timed out, or failed in a way no Catch handled) as
    /// GENERIC_ERROR, with what it processed kept. True when the execution has ended
    /// (and the job is settled now or was already); false while it runs or has not
    /// started.
    pub async fn settle_if_ended(&self, job: &SyncJob) -> Result<bool> {
        let what_happened = match job.execution_arn.as_deref() {
            Some(execution_arn) => match self.workflow.execution_state(execution_arn).await? {
                ExecutionState::Running => return Ok(false),
                ExecutionState::Ended { status, error, cause } => {
                    let why = [error, cause].into_iter().flatten().collect::<Vec<_>>().join(": ");
                    let why = if why.is_empty() { String::new() } else { format!(" ({why})") };
                    format!("its Step Functions execution ended {status}{why}")
                }
            },
            // The starter died between creating the job and starting its execution.
            None if Utc::now() - job.started_at > START_GRACE => "its Step Functions execution never started".into(),
            None => return Ok(false),
        };
        // Its finalize may have settled it since it was read: that outcome stands.
        let Some(job) = self.jobs.get_job(&job.job_id).await?.filter(|job| !job.status.is_terminal()) else {
            return Ok(true);
        };
        let message = format!(
            "{what_happened} before the sync could settle the job. What it processed is kept: resume it \
             (resume_job_id {}) or start a new sync",
            job.job_id
        );
        let stage = job.current_stage.or(job.stage_reached()).unwrap_or(Stage::Initiating);
        let failure = failure_of(&SyncError::Internal(message), stage, None, Utc::now());
        job::end(self.jobs.as_ref(), &job, JobEnd::Orphaned(failure)).await?;
        tracing::warn!(job_id = %job.job_id, connector_id = %job.connector_id, %what_happened, "settled a job that had stopped");
        Ok(true)
    }

    /// Ends the job of a sync whose execution did not start as failed, and frees its
    /// connector: the attempt stays in the history, and the connector must not look busy.
    async fn not_started(&self, job: SyncJob, error: &SyncError) {
        let failure = failure_of(error, Stage::Initiating, None, Utc::now());
        let (job_id, connector_id) = (&job.job_id, &job.connector_id);
        // A job left unended is settled later, once its start grace is over.
        if let Err(secondary) = job::end(self.jobs.as_ref(), &job, JobEnd::NeverStarted(failure)).await {
            tracing::error!(%job_id, %connector_id, error = %secondary, "could not record a sync that did not start");
        }
        self.release(connector_id, job_id).await;
    }

    async fn release(&self, connector_id: &str, job_id: &str) {
        if let Err(error) = self.connectors.release_sync(connector_id, job_id).await {
            tracing::error!(connector_id, job_id, %error, "could not release the claim of a sync that did not start");
        }
    }
}

fn running(job: &SyncJob) -> SyncError {
    SyncError::Conflict(format!(
        "sync {} of connector {} is running ({}): wait for it to end, or cancel it with POST /jobs/{}/cancel",
        job.job_id, job.connector_id, job.status, job.job_id
    ))
}
