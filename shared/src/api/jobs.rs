//! A job as the API shows it: the full view with its stages and log, and the light
//! status a progress bar polls.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ApiServices;
use super::input::Query;
use crate::errors::{Result, SyncError};
use crate::model::{
    ChunkCounts, ChunkRecord, ChunkStatus, ExportRef, JobFailure, JobStatus, LogLevel, RecordCounts, Stage,
    StageOutcome, SyncJob, SyncMode, SyncScope, Trigger,
};
use crate::usage::Prices;
use crate::usage::{Usage, UsageCost};

/// Below this share of chunks processed, the rate so far says little about the rest
/// (exports start slowly): no estimate.
const ETA_MIN_FRACTION: f64 = 0.15;
/// Estimates beyond this are noise: the job has more likely stalled.
const ETA_CAP_SECONDS: f64 = 14_400.0;

/// How far a job got, and how long it may still take.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Progress {
    chunks: ChunkCounts,
    /// Chunks processed, in whole percent; 0 while the total is unknown, at most 99
    /// while it may still grow.
    percent: u64,
    /// False while an export the sync asks for has not told its chunks yet.
    total_is_final: bool,
    /// Absent before 15% of the chunks are processed, while the total may still grow,
    /// and once the job ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    eta_seconds: Option<u64>,
    /// The estimate went past its cap.
    likely_stalled: bool,
}

pub(super) fn progress(job: &SyncJob, now: DateTime<Utc>) -> Progress {
    let ChunkCounts { total, processed, .. } = job.chunks;
    let total_is_final = job.chunk_total_is_final();
    let percent = (processed.min(total) * 100).checked_div(total).unwrap_or(0);
    // All the chunks counted so far are not all the sync's: not done, however many are.
    let percent = if total_is_final { percent } else { percent.min(99) };
    let fraction = if total == 0 { 0.0 } else { processed as f64 / total as f64 };
    let estimate = (!job.status.is_terminal() && total_is_final && fraction >= ETA_MIN_FRACTION).then(|| {
        let elapsed = (now - job.started_at).num_milliseconds().max(0) as f64 / 1000.0;
        elapsed / fraction - elapsed
    });
    Progress {
        chunks: job.chunks,
        percent,
        total_is_final,
        eta_seconds: estimate.map(|seconds| seconds.clamp(0.0, ETA_CAP_SECONDS).round() as u64),
        likely_stalled: estimate.is_some_and(|seconds| seconds > ETA_CAP_SECONDS),
    }
}

#[derive(Debug, Serialize)]
pub(super) struct StatusView {
    job_id: String,
    status: JobStatus,
    current_stage: Option<Stage>,
    #[serde(flatten)]
    progress: Progress,
}

#[derive(Debug, Serialize)]
struct StageView {
    stage: Stage,
    outcome: StageOutcome,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
}

#[derive(Debug, Serialize)]
pub(super) struct JobView {
    job_id: String,
    connector_id: String,
    status: JobStatus,
    mode: SyncMode,
    trigger: Trigger,
    scope: SyncScope,
    current_stage: Option<Stage>,
    #[serde(flatten)]
    progress: Progress,
    /// The stages that started, in the order a sync passes through them.
    stages: Vec<StageView>,
    counts: RecordCounts,
    /// What the sync consumed so far, and what that costs.
    usage: Usage,
    cost: UsageCost,
    exports: Vec<ExportRef>,
    /// Why the job failed; secrets were redacted before it was stored.
    failure: Option<JobFailure>,
    execution_arn: Option<String>,
    /// The ended job this one took up again.
    resumed_from: Option<String>,
    carries_from: Vec<String>,
    starts_over_because: Option<String>,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    log: Vec<LogEntry>,
}

#[derive(Debug, Serialize)]
struct LogEntry {
    at: DateTime<Utc>,
    level: LogLevel,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunk: Option<String>,
    message: String,
}

impl LogEntry {
    fn new(at: DateTime<Utc>, level: LogLevel, stage: Option<Stage>, message: String) -> Self {
        LogEntry { at, level, stage, chunk: None, message }
    }
}

/// The job, or `NotFound` naming it.
pub(super) async fn found(services: &ApiServices, job_id: &str) -> Result<SyncJob> {
    services.jobs.get_job(job_id).await?.ok_or_else(|| {
        SyncError::NotFound(format!(
            "there is no job {job_id}: check the id (GET /connectors/{{connector_id}}/syncs lists them); \
             the history of old syncs expires"
        ))
    })
}

/// The job as it stands: one still marked running whose execution has ended (a failure
/// no Catch handled, a stop in the console) is settled as it is read, so that no reader
/// follows a sync that is gone. If Step Functions cannot say, the job is shown as stored.
pub(super) async fn found_settled(services: &ApiServices, job_id: &str) -> Result<SyncJob> {
    let job = found(services, job_id).await?;
    if job.status.is_terminal() {
        return Ok(job);
    }
    match services.starter().settle_if_ended(&job).await {
        Ok(true) => found(services, job_id).await,
        Ok(false) => Ok(job),
        Err(error) => {
            tracing::warn!(job_id, %error, "could not ask Step Functions whether the job's execution still runs");
            Ok(job)
        }
    }
}

pub(super) async fn get(services: &ApiServices, job_id: &str, query: &Query<'_>) -> Result<JobView> {
    let level = query.one("level")?;
    get_view(services, &found_settled(services, job_id).await?, level).await
}

pub(super) async fn status(services: &ApiServices, job_id: &str) -> Result<StatusView> {
    let job = found_settled(services, job_id).await?;
    Ok(StatusView {
        progress: progress(&job, Utc::now()),
        job_id: job.job_id,
        status: job.status,
        current_stage: job.current_stage,
    })
}

/// The full view, its log cut to entries at `minimum` level or above.
pub(super) async fn get_view(services: &ApiServices, job: &SyncJob, minimum: Option<LogLevel>) -> Result<JobView> {
    let chunks = services.jobs.chunks(&job.job_id).await?;
    let log =
        log(job, &chunks).into_iter().filter(|entry| minimum.is_none_or(|minimum| entry.level >= minimum)).collect();
    let stages = job
        .stages
        .iter()
        .map(|(stage, run)| StageView {
            stage: *stage,
            outcome: run.outcome,
            started_at: run.started_at,
            ended_at: run.ended_at,
            duration_ms: run.duration_ms(),
        })
        .collect();
    let job = job.clone();
    Ok(JobView {
        progress: progress(&job, Utc::now()),
        duration_ms: job.duration_ms(),
        job_id: job.job_id,
        connector_id: job.connector_id,
        status: job.status,
        mode: job.mode,
        trigger: job.trigger,
        scope: job.scope,
        current_stage: job.current_stage,
        stages,
        counts: job.counts,
        usage: job.usage,
        cost: job.usage.cost(&Prices::default()),
        exports: job.exports,
        failure: job.failure,
        execution_arn: job.execution_arn,
        resumed_from: job.resumed_from,
        carries_from: job.carries_from,
        starts_over_because: job.starts_over_because,
        started_at: job.started_at,
        ended_at: job.ended_at,
        log,
    })
}

/// What happened, in order, as the job and its chunk records tell it.
fn log(job: &SyncJob, chunks: &[ChunkRecord]) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    for (stage, run) in &job.stages {
        entries.push(LogEntry::new(run.started_at, LogLevel::Info, Some(*stage), format!("{stage} started")));
        if let (Some(ended_at), Some(ms)) = (run.ended_at, run.duration_ms()) {
            let message = format!("{stage} ended: {} after {}", run.outcome.as_str(), readable(ms));
            entries.push(LogEntry::new(ended_at, LogLevel::Info, Some(*stage), message));
        }
    }
    if let (Some(earlier), Some(reason)) = (&job.resumed_from, &job.starts_over_because) {
        let message = format!("resumes job {earlier} from the start: {reason}");
        entries.push(LogEntry::new(job.started_at, LogLevel::Warn, None, message));
    }
    for export in &job.exports {
        let what = match (&export.resumed_from, export.adopted) {
            (Some(earlier), _) => format!("took up job {earlier}'s"),
            (None, true) => "adopted the scanner's identical".to_string(),
            (None, false) => "requested the".to_string(),
        };
        let since = match DateTime::from_timestamp(export.since, 0) {
            Some(since) if export.since > 0 => {
                format!("changes since {}", since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }
            _ => "everything".to_string(),
        };
        let message = format!("{what} {} export {} ({since})", export.kind.as_str(), export.export_uuid);
        entries.push(LogEntry::new(export.requested_at, LogLevel::Info, Some(Stage::Fetching), message));
    }
    let carried: Vec<&ChunkRecord> = chunks.iter().filter(|chunk| chunk.carried_from.is_some()).collect();
    if let Some(first) = carried.iter().min_by_key(|chunk| chunk.updated_at) {
        let mut from: Vec<&str> = carried.iter().filter_map(|chunk| chunk.carried_from.as_deref()).collect();
        from.sort_unstable();
        from.dedup();
        let message = format!(
            "{} chunk(s) carried over from job(s) {}, which had processed them",
            carried.len(),
            from.join(", ")
        );
        entries.push(LogEntry::new(first.updated_at, LogLevel::Info, Some(Stage::Fetching), message));
    }
    for chunk in chunks {
        let attempts = chunk.failed_attempts;
        let why = chunk.last_failure.as_ref().map_or_else(String::new, |failure| format!(": {}", failure.message));
        let (level, message) = match chunk.status {
            ChunkStatus::Processed if attempts > 0 => (
                LogLevel::Warn,
                format!("chunk {} was processed after {attempts} failed attempt(s){why}", chunk.chunk_key),
            ),
            ChunkStatus::Failed => {
                let action =
                    chunk.last_failure.as_ref().map_or_else(String::new, |failure| format!(" {}", failure.action));
                (LogLevel::Error, format!("chunk {} failed after {attempts} attempt(s){why}.{action}", chunk.chunk_key))
            }
            _ => continue,
        };
        let stage = chunk.last_failure.as_ref().map(|failure| failure.stage);
        entries.push(LogEntry {
            chunk: Some(chunk.chunk_key.clone()),
            ..LogEntry::new(chunk.updated_at, level, stage, message)
        });
    }
    if let Some(retryable) = job.retrying_failure() {
        let message = format!("{} failed and is retried: {}", retryable.stage, retryable.message);
        entries.push(LogEntry::new(retryable.occurred_at, LogLevel::Warn, Some(retryable.stage), message));
    }
    if let Some(failure) = &job.failure {
        let http = failure.http_status.map_or_else(String::new, |status| format!(" (HTTP {status})"));
        let message = format!("{} failed{http}: {}. {}", failure.stage, failure.message, failure.action);
        entries.push(LogEntry {
            chunk: failure.chunk.clone(),
            ..LogEntry::new(failure.occurred_at, LogLevel::Error, Some(failure.stage), message)
        });
    }
    if let Some(ended_at) = job.ended_at {
        let level = job.status.end_log_level();
        let ChunkCounts { total, processed, .. } = job.chunks;
        let message = format!("the sync ended {}: {processed} of {total} chunks processed", job.status);
        entries.push(LogEntry::new(ended_at, level, None, message));
    }
    // Stable: entries at the same instant keep the order above (a start before its end).
    entries.sort_by_key(|entry| entry.at);
    entries
}

/// `850 ms`, `12.4 s`, `3 min 5 s`.
fn readable(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}
