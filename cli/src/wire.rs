//! The sync API's answers, as far as the CLI reads them (api/openapi.yaml has them
//! whole). Fields the CLI does not show are left out, so answers may grow.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use vulnflow_shared::model::{
    ChunkCounts, JobFailure, JobStatus, LogLevel, RecordCounts, Stage, StageOutcome, Trigger,
};
use vulnflow_shared::usage::Usage;

#[derive(Debug, Deserialize)]
pub struct ConnectorList {
    pub connectors: Vec<Connector>,
}

#[derive(Debug, Deserialize)]
pub struct Connector {
    pub connector_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub base_url: String,
    pub default_mode: String,
    pub schedule_hours: Option<u32>,
    pub sync_window_minutes: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct Started {
    pub job_id: String,
}

/// `GET /jobs/{job_id}/status`: what the progress bar shows.
#[derive(Debug, Deserialize)]
pub struct JobStatusView {
    pub status: JobStatus,
    pub current_stage: Option<Stage>,
    pub chunks: ChunkCounts,
    pub percent: u64,
    /// Absent from deployments older than the CLI, which do not tell.
    #[serde(default = "assumed_final")]
    pub total_is_final: bool,
    pub eta_seconds: Option<u64>,
    #[serde(default)]
    pub likely_stalled: bool,
}

fn assumed_final() -> bool {
    true
}

/// `GET /jobs/{job_id}`.
#[derive(Debug, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub connector_id: String,
    pub status: JobStatus,
    pub mode: String,
    pub trigger: Trigger,
    pub chunks: ChunkCounts,
    pub stages: Vec<StageRun>,
    pub counts: RecordCounts,
    /// Absent from a deployment older than usage metering.
    #[serde(default)]
    pub usage: Usage,
    pub failure: Option<Box<JobFailure>>,
    #[serde(default)]
    pub resumed_from: Option<String>,
    #[serde(default)]
    pub carries_from: Vec<String>,
    #[serde(default)]
    pub starts_over_because: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct StageRun {
    pub stage: Stage,
    pub outcome: StageOutcome,
    pub started_at: DateTime<Utc>,
    pub duration_ms: Option<i64>,
}

/// A page of `GET /connectors/{connector_id}/syncs`.
#[derive(Debug, Deserialize)]
pub struct History {
    pub syncs: Vec<HistoryRow>,
    pub next_token: Option<String>,
}

/// One row of a sync history.
#[derive(Debug, Deserialize)]
pub struct HistoryRow {
    pub job_id: String,
    pub activity: String,
    pub status: JobStatus,
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
    pub duration_ms: Option<i64>,
    /// Absent from deployments older than the CLI.
    #[serde(default)]
    pub counts: Option<RecordCounts>,
    /// Absent from deployments older than the CLI.
    #[serde(default)]
    pub log_level: Option<LogLevel>,
    /// Absent from deployments older than the CLI.
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

/// "scheduled", or "manual by ana@example.com".
pub fn trigger(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Scheduled => "scheduled".to_string(),
        Trigger::Manual { by } => format!("manual by {by}"),
    }
}
