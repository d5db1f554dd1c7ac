//! Processing: merge a normalized chunk into the stored assets and findings, then
//! commit the chunk: its counts reach the job exactly once, however often the state
//! machine retries it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ChunkTask, Services};
use crate::errors::{Result, SyncError};
use crate::model::{Asset, ExportKind, FindingState, NormalizedRecord, RecordCounts, SeenAssets, Stage};
use crate::normalize::NormalizedAsset;
use crate::store::{Change, FindingsUpdate, StoredAsset, StoredFinding, asset_key};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessOutput {
    pub chunk_key: String,
    /// False when an earlier attempt had already committed the chunk.
    pub committed: bool,
    pub counts: RecordCounts,
}

pub async fn process(services: &Services, task: ChunkTask) -> Result<ProcessOutput> {
    let job = &task.job;
    services
        .run_stage(&job.job_id, Stage::Processing, Some(&task.chunk_key), async {
            let ndjson = services.objects.get_object(&task.object_key).await?;
            let raw_key = services
                .jobs
                .get_chunk(&job.job_id, &task.chunk_key)
                .await?
                .and_then(|chunk| chunk.raw_key)
                .unwrap_or_default();
            let sync = services
                .jobs
                .get_job(&job.job_id)
                .await?
                .ok_or_else(|| SyncError::InvalidRequest(format!("there is no job {}", job.job_id)))?;
            let merge = Merge {
                connector_id: &job.connector_id,
                job_id: &job.job_id,
                chunk_key: &task.chunk_key,
                raw_key: &raw_key,
                export_jobs: sync.jobs_of_export(task.kind),
                sees_every_finding: sync.sees_every_finding(),
                now: Utc::now(),
            };
            let (counts, seen) = match task.kind {
                ExportKind::Vulns => merge.findings_chunk(services, read_ndjson(&task.object_key, &ndjson)?).await?,
                ExportKind::Assets => {
                    let counts = merge.assets_chunk(services, read_ndjson(&task.object_key, &ndjson)?).await?;
                    (counts, SeenAssets::default())
                }
            };
            let committed =
                services.jobs.commit_chunk(&job.job_id, &task.chunk_key, &counts, &seen, Utc::now()).await?;
            tracing::info!(job_id = %job.job_id, chunk = %task.chunk_key, committed, ?counts, "chunk processed");
            Ok(ProcessOutput { chunk_key: task.chunk_key.clone(), committed, counts })
        })
        .await
}

fn read_ndjson<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<Vec<T>> {
    bytes
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(line, text)| {
            serde_json::from_slice(text).map_err(|e| {
                SyncError::Internal(format!("line {} of the normalized chunk {key} cannot be read: {e}", line + 1))
            })
        })
        .collect()
}

/// Adds a merged finding to its asset's update, and counts what the merge did to it.
fn keep(update: &mut FindingsUpdate, merged: Merged<StoredFinding>, counts: &mut RecordCounts) {
    count_finding(counts, merged.change);
    if merged.write { update.change(merged.record) } else { update.keep(merged.record) }
}

fn count_finding(counts: &mut RecordCounts, change: Change) {
    match change {
        Change::New => counts.findings_new += 1,
        Change::Updated => counts.findings_updated += 1,
        Change::Unchanged => counts.findings_unchanged += 1,
        Change::Reopened => counts.findings_reopened += 1,
        Change::Fixed => counts.findings_fixed += 1,
        Change::Inactivated => counts.findings_inactivated += 1,
    }
}

/// A stored record merged with what a chunk says of it, what the chunk did to it, and
/// whether it must be written. Nothing is written for a record the chunk leaves as it
/// was (it stays exactly as stored), nor for one an earlier attempt of the same chunk
/// already wrote (its change is replayed).
struct Merged<T> {
    record: T,
    change: Change,
    write: bool,
}

impl Merged<StoredFinding> {
    fn replayed(previous: &StoredFinding) -> Self {
        Merged { record: previous.clone(), change: previous.last_change, write: false }
    }
}

/// How one job's records are merged into what is stored.
struct Merge<'a> {
    connector_id: &'a str,
    job_id: &'a str,
    chunk_key: &'a str,
    raw_key: &'a str,
    /// The jobs whose work on this chunk's export is this job's (see
    /// [`crate::model::SyncJob::jobs_of_export`]).
    export_jobs: Vec<String>,
    /// A finding of a chunk's asset that the chunk does not return is gone.
    sees_every_finding: bool,
    now: DateTime<Utc>,
}

impl Merge<'_> {
    /// Whether this very chunk wrote the stored record: an earlier attempt of this job,
    /// or of a job this one took the export up from, which stopped before committing it.
    fn wrote(&self, job_id: &str, chunk_key: &str) -> bool {
        chunk_key == self.chunk_key && self.export_jobs.iter().any(|export_job| export_job == job_id)
    }

    /// A vulns chunk holds every finding of its assets (the export chunks by asset), so
    /// merging it reconciles those assets whole: the stored findings of one of them that
    /// the chunk no longer returns become inactive, when the sync sees every finding.
    /// Answers what it counted and the assets it saw, which the chunk's commit keeps for
    /// finalize's sweep of the assets no chunk returned.
    async fn findings_chunk(
        &self,
        services: &Services,
        records: Vec<NormalizedRecord>,
    ) -> Result<(RecordCounts, SeenAssets)> {
        let mut counts = RecordCounts { findings_received: records.len() as u64, ..Default::default() };
        let latest = self.latest_findings(&records);
        let latest_assets = self.latest_assets(&records);
        let asset_ids: Vec<String> = latest_assets.keys().cloned().collect();
        let seen = SeenAssets::of(asset_ids.iter().map(String::as_str));
        let mut stored_by_asset = services.inventory.findings_of_assets(self.connector_id, &asset_ids).await?;
        let mut chunk_findings: HashMap<&str, Vec<(usize, &NormalizedRecord)>> = HashMap::new();
        for (index, record) in latest.values() {
            chunk_findings.entry(record.asset.asset_id.as_str()).or_default().push((*index, *record));
        }
        let mut updates = Vec::with_capacity(chunk_findings.len());
        for (asset_id, records) in chunk_findings {
            let stored = stored_by_asset.remove(asset_id).unwrap_or_default();
            let mut update = FindingsUpdate::of(asset_id, &stored);
            let mut unreturned: HashMap<&str, &StoredFinding> =
                stored.findings.iter().map(|f| (f.finding.finding_id.as_str(), f)).collect();
            for (index, record) in records {
                let previous = unreturned.remove(record.finding.finding_id.as_str());
                keep(&mut update, self.finding(index, record, previous), &mut counts);
            }
            for previous in unreturned.into_values() {
                match self.sees_every_finding.then(|| self.inactivated(previous)).flatten() {
                    Some(merged) => keep(&mut update, merged, &mut counts),
                    // Kept as it is: its part may be rewritten with the asset's changes.
                    None => update.keep(previous.clone()),
                }
            }
            updates.push(update);
        }

        let assets: Vec<(&Asset, DateTime<Utc>)> =
            latest_assets.into_values().map(|r| (&r.asset, r.finding.last_seen)).collect();
        // Assets first: a finding is never stored before the asset it points at.
        self.store_assets(services, &assets, &mut counts).await?;
        services.inventory.put_findings(self.connector_id, &updates).await?;
        Ok((counts, seen))
    }

    async fn assets_chunk(&self, services: &Services, records: Vec<NormalizedAsset>) -> Result<RecordCounts> {
        let mut counts = RecordCounts { assets_received: records.len() as u64, ..Default::default() };
        let assets: Vec<(&Asset, DateTime<Utc>)> =
            records.iter().filter(|r| !r.deleted).map(|r| (&r.asset, r.last_seen.unwrap_or(self.now))).collect();
        self.store_assets(services, &assets, &mut counts).await?;
        Ok(counts)
    }

    async fn store_assets(
        &self,
        services: &Services,
        assets: &[(&Asset, DateTime<Utc>)],
        counts: &mut RecordCounts,
    ) -> Result<()> {
        let ids: Vec<String> = assets.iter().map(|(asset, _)| asset.asset_id.clone()).collect();
        let stored = services.inventory.assets(self.connector_id, &ids).await?;
        let mut merged: HashMap<String, Merged<StoredAsset>> = HashMap::new();
        for (asset, last_seen) in assets {
            merged.insert(asset.asset_id.clone(), self.asset(asset, *last_seen, stored.get(&asset.asset_id)));
        }
        for asset in merged.values() {
            match asset.change {
                Change::New => counts.assets_new += 1,
                Change::Updated => counts.assets_updated += 1,
                _ => {}
            }
        }
        let writes: Vec<StoredAsset> = merged.into_values().filter(|m| m.write).map(|m| m.record).collect();
        services.inventory.put_assets(&writes).await
    }

    /// One record per finding id: a chunk that names a finding twice keeps the one
    /// seen last. The index is the record's place in the raw chunk.
    fn latest_findings<'r>(&self, records: &'r [NormalizedRecord]) -> HashMap<&'r str, (usize, &'r NormalizedRecord)> {
        let mut latest: HashMap<&str, (usize, &NormalizedRecord)> = HashMap::new();
        for (index, record) in records.iter().enumerate() {
            let id = record.finding.finding_id.as_str();
            match latest.get(id) {
                Some((_, kept)) if kept.finding.last_seen > record.finding.last_seen => {}
                _ => {
                    latest.insert(id, (index, record));
                }
            }
        }
        latest
    }

    fn latest_assets<'r>(&self, records: &'r [NormalizedRecord]) -> HashMap<String, &'r NormalizedRecord> {
        let mut latest: HashMap<String, &NormalizedRecord> = HashMap::new();
        for record in records {
            let kept = latest.entry(record.asset.asset_id.clone()).or_insert(record);
            if record.finding.last_seen > kept.finding.last_seen {
                *kept = record;
            }
        }
        latest
    }

    fn finding(
        &self,
        index: usize,
        record: &NormalizedRecord,
        stored: Option<&StoredFinding>,
    ) -> Merged<StoredFinding> {
        let mut finding = record.finding.clone();
        let (first_job_id, change) = match stored {
            // This chunk was already merged (a retried attempt): replay the change.
            Some(previous) if self.wrote(&previous.last_job_id, &previous.last_chunk) => {
                return Merged::replayed(previous);
            }
            Some(previous) => {
                // Another chunk of this sync found it gone: the scanner split its asset over
                // two chunks (Tenable does not). It is still there, not back.
                let split = !previous.active
                    && previous.last_change == Change::Inactivated
                    && self.export_jobs.contains(&previous.last_job_id);
                if split {
                    tracing::warn!(finding = %finding.finding_id, chunk = self.chunk_key, "an asset's findings came in two chunks");
                }
                let was_closed = previous.finding.state == FindingState::Fixed || (!previous.active && !split);
                let change = match finding.state {
                    FindingState::Fixed if was_closed => unchanged_or_updated(previous, &finding),
                    FindingState::Fixed => Change::Fixed,
                    // It came back: the same finding, reopened, never a second one.
                    _ if was_closed => {
                        finding.state = FindingState::Reopened;
                        Change::Reopened
                    }
                    _ => unchanged_or_updated(previous, &finding),
                };
                if change == Change::Unchanged && previous.active {
                    return Merged { record: previous.clone(), change, write: false };
                }
                (previous.first_job_id.clone(), change)
            }
            None => (self.job_id.to_string(), Change::New),
        };
        let record = StoredFinding {
            asset_key: asset_key(self.connector_id, &finding.asset_id),
            connector_id: self.connector_id.to_string(),
            finding,
            active: true,
            first_job_id,
            last_job_id: self.job_id.to_string(),
            last_chunk: self.chunk_key.to_string(),
            last_change: change,
            raw_ref: format!("{}#{index}", self.raw_key),
            updated_at: self.now,
        };
        Merged { record, change, write: true }
    }

    /// A stored finding of the chunk's assets that the chunk no longer returns.
    fn inactivated(&self, previous: &StoredFinding) -> Option<Merged<StoredFinding>> {
        if self.wrote(&previous.last_job_id, &previous.last_chunk) {
            return Some(Merged::replayed(previous));
        }
        previous.active.then(|| Merged {
            record: previous.inactivated(self.job_id, self.chunk_key, self.now),
            change: Change::Inactivated,
            write: true,
        })
    }

    /// The asset as stored after this chunk: written only when it changed or was seen
    /// later than stored (the chunk's commit keeps that it was seen, for the sweep).
    fn asset(&self, asset: &Asset, last_seen: DateTime<Utc>, stored: Option<&StoredAsset>) -> Merged<StoredAsset> {
        let (first_job_id, change, write) = match stored {
            Some(previous) if self.wrote(&previous.last_job_id, &previous.last_chunk) => {
                return Merged { record: previous.clone(), change: previous.last_change, write: false };
            }
            Some(previous) => {
                let change = if &previous.asset == asset { Change::Unchanged } else { Change::Updated };
                let write = change != Change::Unchanged || last_seen > previous.last_seen;
                (previous.first_job_id.clone(), change, write)
            }
            None => (self.job_id.to_string(), Change::New, true),
        };
        let record = StoredAsset {
            connector_id: self.connector_id.to_string(),
            asset: asset.clone(),
            first_job_id,
            last_job_id: self.job_id.to_string(),
            last_chunk: self.chunk_key.to_string(),
            last_change: change,
            last_seen: stored.map_or(last_seen, |previous| previous.last_seen.max(last_seen)),
            updated_at: self.now,
        };
        Merged { record, change, write }
    }
}

fn unchanged_or_updated(previous: &StoredFinding, finding: &crate::model::Finding) -> Change {
    if &previous.finding == finding { Change::Unchanged } else { Change::Updated }
}

#[cfg(test)]
mod tests {
    use tenable_simulator::SimulatorConfig;

    use super::*;
    use crate::model::{ChunkStatus, ExportRef, NormalizedRecord, SyncJob, SyncMode, Trigger};
    use crate::pipeline::JobRef;
    use crate::pipeline::test_support::{CONNECTOR, Harness, harness};
    use crate::scanners::tenable::normalize::normalize_vulns_chunk;
    use crate::store::{JobStore, ObjectStore, keys};

    /// Puts a chunk through fetch's and normalize's bookkeeping without HTTP, so each
    /// test states only the records it is about.
    async fn normalized_chunk(h: &Harness, job: &JobRef, chunk: &str, vulns: &[serde_json::Value]) -> ChunkTask {
        let raw = serde_json::to_vec(vulns).unwrap();
        let raw_key = keys::raw_chunk(&job.connector_id, &job.job_id, chunk);
        h.store.put_object(&raw_key, raw.clone(), "application/json").await.unwrap();
        let task = |object_key| ChunkTask {
            job: job.clone(),
            kind: ExportKind::Vulns,
            chunk_key: chunk.into(),
            object_key,
            reference_key: None,
        };
        let output = crate::pipeline::normalize::normalize(&h.services, task(raw_key)).await.expect("normalizes");
        task(output.object_key)
    }

    fn sample(h: &Harness, count: usize) -> Vec<serde_json::Value> {
        h.simulator.dataset().vulns()[..count].to_vec()
    }

    #[tokio::test]
    async fn stores_every_finding_and_commits_the_chunk_once() {
        let h = harness(SimulatorConfig::default()).await;
        let job = h.start_job("job-1").await;
        let vulns = sample(&h, 40);
        let task = normalized_chunk(&h, &job, "vulns-00001", &vulns).await;
        let first = process(&h.services, task.clone()).await.expect("processes");
        assert!(first.committed);
        assert_eq!(first.counts.findings_new, 40);
        assert_eq!(h.store.all_findings(CONNECTOR).len(), 40);

        // The state machine retries the same chunk: nothing is counted twice.
        let again = process(&h.services, task).await.expect("processes again");
        assert!(!again.committed);
        let stored = h.store.get_job("job-1").await.unwrap().unwrap();
        assert_eq!((stored.chunks.processed, stored.counts.findings_new), (1, 40));
        let chunk = h.store.get_chunk("job-1", "vulns-00001").await.unwrap().unwrap();
        assert_eq!(chunk.status, ChunkStatus::Processed);
    }

    #[tokio::test]
    async fn a_resumed_job_counts_what_the_job_it_took_the_export_from_wrote_but_never_committed() {
        let h = harness(SimulatorConfig::default()).await;
        let vulns = sample(&h, 40);
        // job-0 wrote chunk 1; as far as job-1 knows, it stopped before committing it.
        let stopped = h.start_job("job-0").await;
        process(&h.services, normalized_chunk(&h, &stopped, "vulns-00001", &vulns).await).await.unwrap();

        let now = Utc::now();
        let taken_up = ExportRef {
            kind: ExportKind::Vulns,
            export_uuid: "export-of-job-0".into(),
            requested_at: now,
            since: 0,
            adopted: false,
            resumed_from: Some("job-0".into()),
        };
        let resumed = |job_id: &str, export: Option<ExportRef>| SyncJob {
            carries_from: vec!["job-0".into()],
            exports: export.into_iter().collect(),
            ..SyncJob::started(job_id, CONNECTOR, SyncMode::Full, Trigger::Scheduled, "unit-tests", now)
        };
        h.store.create_job(&resumed("job-1", Some(taken_up))).await.unwrap();
        let job_1 = JobRef {
            job_id: "job-1".into(),
            connector_id: CONNECTOR.into(),
            scanner: crate::model::ScannerKind::Tenable,
            window_ends_at: None,
        };
        let output = process(&h.services, normalized_chunk(&h, &job_1, "vulns-00001", &vulns).await).await.unwrap();
        assert_eq!(
            (output.counts.findings_new, output.counts.findings_unchanged),
            (40, 0),
            "the same chunk of one export"
        );

        // A resumed job that had to request the export anew saw its chunk 1 afresh.
        h.store.create_job(&resumed("job-2", None)).await.unwrap();
        let job_2 = JobRef { job_id: "job-2".into(), ..job_1 };
        let output = process(&h.services, normalized_chunk(&h, &job_2, "vulns-00001", &vulns).await).await.unwrap();
        assert_eq!((output.counts.findings_new, output.counts.findings_unchanged), (0, 40));
    }

    #[tokio::test]
    async fn a_second_sync_of_the_same_data_adds_no_duplicate_and_changes_nothing() {
        let h = harness(SimulatorConfig::default()).await;
        let vulns = sample(&h, 30);
        let first_job = h.start_job("job-1").await;
        process(&h.services, normalized_chunk(&h, &first_job, "vulns-00001", &vulns).await).await.unwrap();
        let before = h.store.all_findings(CONNECTOR);

        let second_job = h.start_job("job-2").await;
        let second =
            process(&h.services, normalized_chunk(&h, &second_job, "vulns-00001", &vulns).await).await.unwrap();
        assert_eq!(second.counts.findings_unchanged, 30);
        assert_eq!(second.counts.findings_new + second.counts.findings_updated + second.counts.findings_fixed, 0);
        let after = h.store.all_findings(CONNECTOR);
        assert_eq!(after.len(), before.len());
        for (old, new) in before.iter().zip(&after) {
            assert_eq!((&old.finding, old.active, &old.first_job_id), (&new.finding, new.active, &new.first_job_id));
        }
    }

    #[tokio::test]
    async fn a_finding_that_changes_leaves_the_other_findings_of_its_asset_as_stored() {
        let h = harness(SimulatorConfig { assets: 1, findings_per_asset: 12, ..Default::default() }).await;
        let mut vulns = h.simulator.dataset().vulns().to_vec();
        let first_job = h.start_job("job-1").await;
        process(&h.services, normalized_chunk(&h, &first_job, "vulns-00001", &vulns).await).await.unwrap();
        let before = h.store.all_findings(CONNECTOR);

        vulns[0]["state"] = "FIXED".into();
        vulns[0]["last_fixed"] = vulns[0]["last_found"].clone();
        let second_job = h.start_job("job-2").await;
        let second =
            process(&h.services, normalized_chunk(&h, &second_job, "vulns-00002", &vulns).await).await.unwrap();
        assert_eq!((second.counts.findings_fixed, second.counts.findings_unchanged), (1, 11));
        let after = h.store.all_findings(CONNECTOR);
        let written: Vec<&StoredFinding> = after.iter().filter(|f| f.last_job_id == "job-2").collect();
        assert_eq!(written.len(), 1, "only the fixed finding is job-2's");
        assert_eq!(written[0].finding.state, FindingState::Fixed);
        let unchanged = |findings: &[StoredFinding]| -> Vec<StoredFinding> {
            findings.iter().filter(|f| f.finding.finding_id != written[0].finding.finding_id).cloned().collect()
        };
        assert_eq!(unchanged(&after), unchanged(&before), "the other eleven exactly as the first sync stored them");
    }

    #[tokio::test]
    async fn the_same_plugin_on_two_ports_is_two_findings() {
        let h = harness(SimulatorConfig::default()).await;
        let job = h.start_job("job-1").await;
        let mut on_443 = sample(&h, 1).remove(0);
        on_443["port"] = serde_json::json!({"port": 443, "protocol": "TCP"});
        let mut on_8443 = on_443.clone();
        on_8443["port"] = serde_json::json!({"port": "8443", "protocol": "TCP"});
        let output =
            process(&h.services, normalized_chunk(&h, &job, "vulns-00001", &[on_443, on_8443]).await).await.unwrap();
        assert_eq!(output.counts.findings_new, 2);
        let ports: Vec<u16> = h.store.all_findings(CONNECTOR).iter().map(|f| f.finding.port).collect();
        assert_eq!(ports.len(), 2);
        assert!(ports.contains(&443) && ports.contains(&8443));
    }

    #[tokio::test]
    async fn fixed_closes_and_a_return_reopens_the_same_finding() {
        let h = harness(SimulatorConfig::default()).await;
        let mut record = sample(&h, 1).remove(0);
        record["state"] = "OPEN".into();
        let job_1 = h.start_job("job-1").await;
        process(&h.services, normalized_chunk(&h, &job_1, "vulns-00001", &[record.clone()]).await).await.unwrap();

        record["state"] = "FIXED".into();
        record["last_fixed"] = record["last_found"].clone();
        let job_2 = h.start_job("job-2").await;
        let fixed =
            process(&h.services, normalized_chunk(&h, &job_2, "vulns-00001", &[record.clone()]).await).await.unwrap();
        assert_eq!(fixed.counts.findings_fixed, 1);

        record["state"] = "OPEN".into();
        let job_3 = h.start_job("job-3").await;
        let back = process(&h.services, normalized_chunk(&h, &job_3, "vulns-00001", &[record]).await).await.unwrap();
        assert_eq!(back.counts.findings_reopened, 1);
        let findings = h.store.all_findings(CONNECTOR);
        assert_eq!(findings.len(), 1, "reopened, not duplicated");
        assert_eq!(findings[0].finding.state, FindingState::Reopened);
        assert_eq!(findings[0].first_job_id, "job-1");
    }

    #[tokio::test]
    async fn assets_are_stored_once_per_host() {
        let h = harness(SimulatorConfig { assets: 4, findings_per_asset: 5, ..Default::default() }).await;
        let job = h.start_job("job-1").await;
        let vulns = h.simulator.dataset().vulns().to_vec();
        let output = process(&h.services, normalized_chunk(&h, &job, "vulns-00001", &vulns).await).await.unwrap();
        assert_eq!(output.counts.assets_new, 4);
        assert_eq!(h.store.all_assets(CONNECTOR).len(), 4);
        let records: Vec<NormalizedRecord> = normalize_vulns_chunk(&serde_json::to_vec(&vulns).unwrap()).unwrap();
        assert_eq!(records.len(), 20);
    }
}
