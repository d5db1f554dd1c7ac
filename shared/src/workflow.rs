//! The workflow port: starting and stopping sync executions. [`StepFunctions`] runs
//! the deployment's state machine; `recording::RecordingWorkflow` (with the
//! `test-support` feature) keeps what it was asked, for unit tests of the API.

use async_trait::async_trait;
use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::types::ExecutionStatus;

use crate::errors::{Result, SyncError};

#[async_trait]
pub trait Workflow: Send + Sync {
    /// Starts a sync execution named `job_id` (the job takes the execution's name) with
    /// `input`, and answers its ARN. `Conflict` if an execution of that name exists.
    async fn start_sync(&self, job_id: &str, input: &serde_json::Value) -> Result<String>;
    /// Stops the execution, keeping `cause` in its history. `NotFound` if there is none.
    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<()>;
    /// Whether the execution still runs.
    async fn execution_state(&self, execution_arn: &str) -> Result<ExecutionState>;
}

/// Whether a sync's execution still runs, as Step Functions tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionState {
    Running,
    /// It ended (`status`: SUCCEEDED, FAILED, TIMED_OUT, ABORTED), or Step Functions no
    /// longer has it (`status`: GONE).
    Ended {
        status: String,
        error: Option<String>,
        cause: Option<String>,
    },
}

/// The sync state machine in Step Functions.
#[derive(Clone)]
pub struct StepFunctions {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl StepFunctions {
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: impl Into<String>) -> Self {
        StepFunctions { client, state_machine_arn: state_machine_arn.into() }
    }
}

fn sfn_error<E, R>(operation: &str, error: SdkError<E, R>) -> SyncError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let reason = DisplayErrorContext(&error).to_string();
    match error.code() {
        Some("ExecutionDoesNotExist") => SyncError::NotFound(format!("Step Functions has no such execution: {reason}")),
        // The deployment's wiring or our own input is wrong: retrying will not help.
        Some(
            "StateMachineDoesNotExist"
            | "InvalidArn"
            | "InvalidName"
            | "InvalidExecutionInput"
            | "AccessDeniedException",
        ) => SyncError::Internal(format!("Step Functions {operation} failed: {reason}")),
        code => {
            let transient =
                matches!(code, None | Some("ThrottlingException" | "ServiceUnavailable" | "InternalServerError"));
            SyncError::storage(format!("Step Functions {operation}"), reason, transient)
        }
    }
}

#[async_trait]
impl Workflow for StepFunctions {
    async fn start_sync(&self, job_id: &str, input: &serde_json::Value) -> Result<String> {
        let output = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(job_id)
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| {
                if e.code() == Some("ExecutionAlreadyExists") {
                    SyncError::Conflict(format!(
                        "an execution named {job_id} already exists: a job id is used once, start a new sync"
                    ))
                } else {
                    sfn_error("StartExecution", e)
                }
            })?;
        Ok(output.execution_arn)
    }

    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<()> {
        self.client
            .stop_execution()
            .execution_arn(execution_arn)
            .cause(cause)
            .send()
            .await
            .map_err(|e| sfn_error("StopExecution", e))?;
        Ok(())
    }

    async fn execution_state(&self, execution_arn: &str) -> Result<ExecutionState> {
        let described = self.client.describe_execution().execution_arn(execution_arn).send().await;
        match described.map_err(|e| sfn_error("DescribeExecution", e)) {
            Ok(execution) => Ok(match execution.status {
                ExecutionStatus::Running | ExecutionStatus::PendingRedrive => ExecutionState::Running,
                status => ExecutionState::Ended {
                    status: status.as_str().to_string(),
                    error: execution.error,
                    cause: execution.cause,
                },
            }),
            Err(SyncError::NotFound(_)) => {
                Ok(ExecutionState::Ended { status: "GONE".into(), error: None, cause: None })
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
mod recording;
#[cfg(any(test, feature = "test-support"))]
pub use recording::{RecordedExecution, RecordingWorkflow};
