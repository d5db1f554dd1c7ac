//! A connector's sync history: one row per job, newest first, filtered and paged.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::input::Query;
use super::{ApiServices, connectors};
use crate::errors::{Result, SyncError};
use crate::model::{JobStatus, LogLevel, RecordCounts, Stage, SyncJob, SyncMode, Trigger};
use crate::store::{HistoryFilter, HistoryPage};
use crate::usage::Prices;

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

#[derive(Debug, Serialize)]
struct HistoryRow {
    job_id: String,
    activity: SyncMode,
    status: JobStatus,
    /// The last stage the sync started.
    stage: Option<Stage>,
    trigger: Trigger,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    /// How long fetching took: first chunk fetch started to last one ended.
    ingestion_ms: Option<i64>,
    /// How long normalizing and processing took together, once both ended.
    processing_ms: Option<i64>,
    /// What the sync did to the findings and assets (so far, while it runs), so that a
    /// history reads without fetching every job.
    counts: RecordCounts,
    /// What the sync consumed so far, at list prices.
    cost_usd: f64,
    /// The most serious level in the job's log.
    log_level: LogLevel,
}

impl From<SyncJob> for HistoryRow {
    fn from(job: SyncJob) -> Self {
        HistoryRow {
            stage: job.stage_reached(),
            duration_ms: job.duration_ms(),
            ingestion_ms: job.stages.get(&Stage::Fetching).and_then(|run| run.duration_ms()),
            processing_ms: span_ms(&job, &[Stage::Normalizing, Stage::Processing]),
            log_level: job.log_level(),
            cost_usd: job.usage.cost(&Prices::default()).total_usd,
            job_id: job.job_id,
            activity: job.mode,
            status: job.status,
            trigger: job.trigger,
            started_at: job.started_at,
            ended_at: job.ended_at,
            counts: job.counts,
        }
    }
}

/// From the first start to the last end of the stages that ran; none while one runs.
fn span_ms(job: &SyncJob, stages: &[Stage]) -> Option<i64> {
    let runs: Vec<_> = stages.iter().filter_map(|stage| job.stages.get(stage)).collect();
    let start = runs.iter().map(|run| run.started_at).min()?;
    let ends: Option<Vec<_>> = runs.iter().map(|run| run.ended_at).collect();
    let end = ends?.into_iter().max()?;
    Some((end - start).num_milliseconds())
}

#[derive(Debug, Serialize)]
pub(super) struct History {
    syncs: Vec<HistoryRow>,
    /// Present when more syncs may follow: pass it back to read the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

pub(super) async fn list(services: &ApiServices, connector_id: &str, query: &Query<'_>) -> Result<History> {
    let filter = HistoryFilter {
        modes: query.list("activity")?,
        statuses: query.list("status")?,
        stages: query.list("stage")?,
        trigger: query.one("trigger")?,
        from: query.time("from")?,
        to: query.time("to")?,
        level: query.one("level")?,
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && to < from
    {
        return Err(SyncError::invalid_field("to", "must not be before from"));
    }
    let page = HistoryPage {
        limit: query.number("limit", 1..=MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT),
        token: query.text("next_token")?.map(|token| services.page_tokens.open(token).map(String::from)).transpose()?,
    };
    connectors::found(services, connector_id).await?;
    let (jobs, next_token) = services.jobs.history(connector_id, &filter, &page).await?;
    let next_token = next_token.map(|cursor| services.page_tokens.seal(&cursor));
    Ok(History { syncs: jobs.into_iter().map(HistoryRow::from).collect(), next_token })
}
