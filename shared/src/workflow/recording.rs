//! A workflow that runs nothing, for unit tests of the API and the CLI.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{ExecutionState, Workflow};
use crate::errors::{Result, SyncError};

/// One execution a [`RecordingWorkflow`] was asked to start.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedExecution {
    pub name: String,
    pub arn: String,
    pub input: serde_json::Value,
    /// The cause it was stopped with, once stopped.
    pub stopped: Option<String>,
    /// How it ended, once it did (see [`RecordingWorkflow::end`]); ABORTED once stopped.
    pub ended: Option<String>,
}

/// A workflow that runs nothing and remembers every start and stop, with the same
/// contract as Step Functions (names are used once; stopping needs an execution).
#[derive(Default)]
pub struct RecordingWorkflow {
    executions: Mutex<Vec<RecordedExecution>>,
}

impl RecordingWorkflow {
    pub fn executions(&self) -> Vec<RecordedExecution> {
        self.lock().clone()
    }

    /// Ends the execution named `name` with `status`, as if its workflow ended by itself.
    pub fn end(&self, name: &str, status: &str) {
        if let Some(execution) = self.lock().iter_mut().find(|execution| execution.name == name) {
            execution.ended = Some(status.to_string());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedExecution>> {
        // A test that panicked while holding the lock already failed; keep the record readable.
        self.executions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Workflow for RecordingWorkflow {
    async fn start_sync(&self, job_id: &str, input: &serde_json::Value) -> Result<String> {
        let mut executions = self.lock();
        if executions.iter().any(|execution| execution.name == job_id) {
            return Err(SyncError::Conflict(format!("an execution named {job_id} already exists")));
        }
        let arn = format!("arn:aws:states:local:000000000000:execution:vulnflow-sync:{job_id}");
        executions.push(RecordedExecution {
            name: job_id.to_string(),
            arn: arn.clone(),
            input: input.clone(),
            stopped: None,
            ended: None,
        });
        Ok(arn)
    }

    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<()> {
        let mut executions = self.lock();
        let execution = executions
            .iter_mut()
            .find(|execution| execution.arn == execution_arn)
            .ok_or_else(|| SyncError::NotFound(format!("no execution {execution_arn}")))?;
        execution.stopped = Some(cause.to_string());
        execution.ended.get_or_insert_with(|| "ABORTED".to_string());
        Ok(())
    }

    async fn execution_state(&self, execution_arn: &str) -> Result<ExecutionState> {
        let executions = self.lock();
        let execution = executions.iter().find(|execution| execution.arn == execution_arn);
        Ok(match execution.map(|execution| (&execution.ended, &execution.stopped)) {
            Some((None, _)) => ExecutionState::Running,
            Some((Some(status), stopped)) => {
                ExecutionState::Ended { status: status.clone(), error: None, cause: stopped.clone() }
            }
            None => ExecutionState::Ended { status: "GONE".into(), error: None, cause: None },
        })
    }
}
