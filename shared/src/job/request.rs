//! A job as a sync request makes it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::errors::{Result, SyncError};
use crate::model::{ConnectorRecord, SyncJob, SyncMode, SyncScope, Trigger};

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
    /// The ended job this sync takes up again, with its mode and scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
}

/// A started job of the connector, before any stage ran: what `pipeline::initiate` records,
/// and what a starter records first so that the job can be followed at once.
pub fn new_job(
    job_id: &str,
    record: &ConnectorRecord,
    request: SyncRequest,
    deployment: &str,
    now: DateTime<Utc>,
) -> Result<SyncJob> {
    let connector = &record.connector;
    let mode = request.mode.unwrap_or(connector.default_mode);
    if mode == SyncMode::Incremental && !request.scope.is_everything() {
        return Err(SyncError::InvalidRequest(
            "an incremental sync starts where the last one ended: give a scope to a full sync instead".into(),
        ));
    }
    let trigger = request.trigger.unwrap_or(Trigger::Scheduled);
    Ok(SyncJob {
        scope: request.scope,
        resumed_from: request.resumed_from,
        window_ends_at: record.sync_window_minutes.map(|minutes| now + chrono::Duration::minutes(i64::from(minutes))),
        ..SyncJob::started(job_id, &connector.connector_id, mode, trigger, deployment, now)
    })
}
