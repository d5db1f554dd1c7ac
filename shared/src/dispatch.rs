//! The scheduler: on each tick of the deployment's EventBridge rule, start a sync of
//! every connector whose schedule is due. A connector syncs once per slot of its
//! schedule (every N hours from midnight UTC); the job is named after the slot, so a
//! tick that fires twice, or a retried invocation, cannot start a second sync.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::errors::{Result, SyncError};
use crate::job::SyncRequest;
use crate::model::{ConnectorRecord, JobStatus, SyncScope, Trigger};
use crate::starter::SyncStarter;
use crate::store::{HistoryFilter, HistoryPage};

/// The part of EventBridge's scheduled event the dispatcher reads: the tick's time,
/// the same on every delivery of one tick.
#[derive(Debug, Default, Deserialize)]
pub struct Tick {
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
}

/// What one tick did, as the dispatcher's invocation answers it.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct DispatchReport {
    /// The jobs started.
    pub started: Vec<String>,
    /// Connectors due but busy with another sync: they are tried again next tick.
    pub busy: Vec<String>,
    /// Connectors that could not be started, with why.
    pub failed: Vec<(String, String)>,
}

pub async fn dispatch(starter: &SyncStarter, now: DateTime<Utc>) -> Result<DispatchReport> {
    let mut report = DispatchReport::default();
    for record in starter.connectors.list_connectors().await? {
        let Some(job_id) = due_job_id(&record, now) else { continue };
        if starter.jobs.get_job(&job_id).await?.is_some() {
            continue; // Started by an earlier tick of this slot.
        }
        let connector_id = record.connector.connector_id.clone();
        let request = SyncRequest {
            connector_id: connector_id.clone(),
            mode: None,
            trigger: Some(Trigger::Scheduled),
            scope: SyncScope::default(),
            resumed_from: paused_sync(starter, &connector_id).await?,
        };
        match starter.start(&record, &job_id, request).await {
            Ok(_) => {
                tracing::info!(connector_id, job_id, "scheduled sync started");
                report.started.push(job_id);
            }
            Err(SyncError::Conflict(why)) => {
                tracing::info!(connector_id, job_id, why, "scheduled sync waits: the connector is busy");
                report.busy.push(connector_id);
            }
            Err(error) => {
                tracing::error!(connector_id, job_id, %error, "scheduled sync could not start");
                report.failed.push((connector_id, error.to_string()));
            }
        }
    }
    Ok(report)
}

/// The connector's last sync, if its window ended before it did: the next scheduled
/// sync resumes it where it stopped.
async fn paused_sync(starter: &SyncStarter, connector_id: &str) -> Result<Option<String>> {
    let (latest, _) =
        starter.jobs.history(connector_id, &HistoryFilter::default(), &HistoryPage { limit: 1, token: None }).await?;
    Ok(latest.into_iter().find(|job| job.status == JobStatus::Paused).map(|job| job.job_id))
}

/// The job id of the connector's current slot, if its schedule is on.
pub fn due_job_id(record: &ConnectorRecord, now: DateTime<Utc>) -> Option<String> {
    let period = i64::from(record.schedule_hours.filter(|hours| *hours > 0)?) * 3600;
    let slot = Utc.timestamp_opt(now.timestamp().div_euclid(period) * period, 0).single()?;
    // At most 64 + 12 characters: within Step Functions' 80 for an execution name.
    Some(format!("{}-{}", record.connector.connector_id, slot.format("%Y%m%dT%HZ")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Duration;

    use super::*;
    use crate::model::{Connector, ScannerKind, SyncMode};
    use crate::store::memory::MemoryStore;
    use crate::store::{ConnectorStore, JobEnding, JobStore};
    use crate::workflow::RecordingWorkflow;

    fn ending(status: JobStatus, ended_at: DateTime<Utc>) -> JobEnding {
        JobEnding { status, chunks: crate::model::ChunkCounts::default(), ended_at }
    }

    fn record(connector_id: &str, schedule_hours: Option<u32>) -> ConnectorRecord {
        let mut record = ConnectorRecord::from(Connector {
            connector_id: connector_id.into(),
            name: connector_id.into(),
            kind: ScannerKind::Tenable,
            base_url: "http://127.0.0.1:9".into(),
            secret_id: format!("vulnflow/{connector_id}"),
            default_mode: SyncMode::Incremental,
            sync_cursor: None,
        });
        record.schedule_hours = schedule_hours;
        record
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("a time").with_timezone(&Utc)
    }

    struct Scheduler {
        store: Arc<MemoryStore>,
        workflow: Arc<RecordingWorkflow>,
        starter: SyncStarter,
    }

    async fn scheduler(records: &[ConnectorRecord]) -> Scheduler {
        let store = Arc::new(MemoryStore::default());
        for record in records {
            store.create_connector(record).await.expect("creates the connector");
        }
        let workflow = Arc::new(RecordingWorkflow::default());
        let starter = SyncStarter {
            connectors: store.clone(),
            jobs: store.clone(),
            workflow: workflow.clone(),
            deployment: "unit-tests".into(),
        };
        Scheduler { store, workflow, starter }
    }

    #[test]
    fn a_slot_is_named_by_its_start() {
        let six_hourly = record("tenable-prod", Some(6));
        assert_eq!(due_job_id(&six_hourly, at("2026-11-22T07:59:00Z")).as_deref(), Some("tenable-prod-20261122T06Z"));
        assert_eq!(due_job_id(&six_hourly, at("2026-11-22T12:00:00Z")).as_deref(), Some("tenable-prod-20261122T12Z"));
        assert_eq!(
            due_job_id(&record("daily", Some(24)), at("2026-11-22T23:59:59Z")).as_deref(),
            Some("daily-20261122T00Z")
        );
        assert_eq!(due_job_id(&record("off", None), at("2026-11-22T07:59:00Z")), None);
        assert_eq!(due_job_id(&record("zero", Some(0)), at("2026-11-22T07:59:00Z")), None);
    }

    #[tokio::test]
    async fn a_due_connector_syncs_once_per_slot_with_its_default_mode() {
        let s = scheduler(&[record("hourly", Some(1)), record("manual-only", None)]).await;
        let tick = at("2026-11-22T07:05:00Z");

        let first = dispatch(&s.starter, tick).await.expect("dispatches");
        assert_eq!(first.started, vec!["hourly-20261122T07Z".to_string()]);
        let job = s.store.get_job("hourly-20261122T07Z").await.unwrap().expect("the job exists");
        assert_eq!(
            (&job.trigger, job.mode, job.status),
            (&Trigger::Scheduled, SyncMode::Incremental, JobStatus::Started)
        );

        let twice = dispatch(&s.starter, tick).await.expect("dispatches");
        assert_eq!(twice, DispatchReport::default(), "the same tick again starts nothing");
        s.store.finish_job(&job.job_id, &ending(JobStatus::Finished, tick)).await.unwrap();
        let later = dispatch(&s.starter, tick + Duration::minutes(5)).await.expect("dispatches");
        assert!(later.started.is_empty(), "one sync per slot, even after it ended");
        assert_eq!(s.workflow.executions().len(), 1);

        let next_slot = dispatch(&s.starter, tick + Duration::hours(1)).await.expect("dispatches");
        assert_eq!(next_slot.started, vec!["hourly-20261122T08Z".to_string()]);
    }

    #[tokio::test]
    async fn a_busy_connector_waits_for_the_next_tick() {
        let s = scheduler(&[record("hourly", Some(1))]).await;
        let tick = at("2026-11-22T07:55:00Z");
        let manual = SyncRequest {
            connector_id: "hourly".into(),
            mode: Some(SyncMode::Full),
            trigger: Some(Trigger::Manual { by: "ana@example.com".into() }),
            scope: SyncScope::default(),
            resumed_from: None,
        };
        let running = s.store.connector_record("hourly").await.unwrap().expect("stored");
        s.starter.start(&running, "manual-1", manual).await.expect("a manual sync starts");

        let busy = dispatch(&s.starter, tick).await.expect("dispatches");
        assert_eq!((busy.started.len(), busy.busy.clone()), (0, vec!["hourly".to_string()]));
        assert!(
            s.store.get_job("hourly-20261122T07Z").await.unwrap().is_none(),
            "no job for a sync that did not start"
        );

        s.store.finish_job("manual-1", &ending(JobStatus::Finished, tick)).await.unwrap();
        let after = dispatch(&s.starter, tick + Duration::minutes(1)).await.expect("dispatches");
        assert_eq!(after.started, vec!["hourly-20261122T07Z".to_string()], "the slot's sync runs once it is free");
    }

    #[tokio::test]
    async fn the_sync_after_a_paused_one_resumes_it() {
        let s = scheduler(&[record("hourly", Some(1))]).await;
        let tick = at("2026-11-22T07:05:00Z");
        dispatch(&s.starter, tick).await.expect("dispatches");
        let paused = ending(JobStatus::Paused, tick + Duration::minutes(30));
        s.store.finish_job("hourly-20261122T07Z", &paused).await.unwrap();

        let next_slot = dispatch(&s.starter, tick + Duration::hours(1)).await.expect("dispatches");
        let job = s.store.get_job(&next_slot.started[0]).await.unwrap().expect("the next job");
        assert_eq!(job.resumed_from.as_deref(), Some("hourly-20261122T07Z"));
        assert_eq!(job.carries_from, ["hourly-20261122T07Z"], "it takes up where the paused one stopped");
        assert_eq!(s.workflow.executions()[1].input["resumed_from"], "hourly-20261122T07Z");

        let finished = ending(JobStatus::Finished, tick + Duration::hours(1) + Duration::minutes(10));
        s.store.finish_job(&job.job_id, &finished).await.unwrap();
        let after_finished = dispatch(&s.starter, tick + Duration::hours(2)).await.expect("dispatches");
        let job = s.store.get_job(&after_finished.started[0]).await.unwrap().expect("the third job");
        assert_eq!(job.resumed_from, None, "only a paused sync is resumed");
    }
}
