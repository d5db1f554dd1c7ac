//! Normalizing: read a raw chunk from S3, map every record onto the domain model, and
//! write the normalized records to S3 as NDJSON, one per line, in the raw order.

use chrono::Utc;
use serde::Serialize;

use super::{ChunkOutput, ChunkTask, Services};
use crate::errors::{Result, SyncError};
use crate::model::{ChunkRecord, ChunkStatus, ExportKind, SeenAssets, Stage};
use crate::normalize::ChunkError;
use crate::scanners;
use crate::store::keys;

pub async fn normalize(services: &Services, task: ChunkTask) -> Result<ChunkOutput> {
    let job = &task.job;
    let chunk_key = task.chunk_key.as_str();
    services
        .run_stage(&job.job_id, Stage::Normalizing, Some(chunk_key), async {
            let raw = services.objects.get_object(&task.object_key).await?;
            let reference = match &task.reference_key {
                Some(key) => Some(services.objects.get_object(key).await?),
                None => None,
            };
            // The whole chunk is checked before anything is written: a bad record
            // leaves no half-normalized chunk behind.
            let malformed =
                |e: ChunkError| SyncError::MalformedChunk { chunk: chunk_key.to_string(), reason: e.to_string() };
            let normalizer = scanners::normalizer(job.scanner);
            let (ndjson, count) = match task.kind {
                ExportKind::Vulns => {
                    to_ndjson(|keep| normalizer.findings(&raw, reference.as_deref(), keep)).map_err(malformed)?
                }
                ExportKind::Assets => to_ndjson(|keep| normalizer.assets(&raw, keep)).map_err(malformed)?,
            };
            let normalized_key = keys::normalized_chunk(&job.connector_id, &job.job_id, chunk_key);
            services.objects.put_object(&normalized_key, ndjson, "application/x-ndjson").await?;
            services
                .jobs
                .save_chunk(&ChunkRecord {
                    job_id: job.job_id.clone(),
                    chunk_key: chunk_key.to_string(),
                    status: ChunkStatus::Normalized,
                    failed_attempts: 0,
                    raw_key: Some(task.object_key.clone()),
                    normalized_key: Some(normalized_key.clone()),
                    records: Some(count),
                    last_failure: None,
                    retried: false,
                    carried_from: None,
                    seen_assets: SeenAssets::default(),
                    updated_at: Utc::now(),
                })
                .await?;
            Ok(ChunkOutput {
                chunk_key: chunk_key.to_string(),
                kind: task.kind,
                object_key: normalized_key,
                records: count,
                reference_key: None,
            })
        })
        .await
}

/// The chunk's records normalized, one JSON line each, as `normalize` streams them
/// from the raw bytes: the chunk is never held as a whole, so memory stays near the raw
/// and the NDJSON bytes.
fn to_ndjson<T: Serialize>(
    normalize: impl FnOnce(&mut dyn FnMut(T) -> std::result::Result<(), ChunkError>) -> std::result::Result<u64, ChunkError>,
) -> std::result::Result<(Vec<u8>, u64), ChunkError> {
    let mut ndjson = Vec::new();
    let count = normalize(&mut |record| {
        serde_json::to_writer(&mut ndjson, &record).map_err(|e| ChunkError::Unwritable(e.to_string()))?;
        ndjson.push(b'\n');
        Ok(())
    })?;
    Ok((ndjson, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{JobStatus, NormalizedRecord};
    use crate::pipeline::test_support::harness;
    use crate::store::{JobStore, ObjectStore};
    use tenable_simulator::SimulatorConfig;

    async fn raw_chunk(
        h: &crate::pipeline::test_support::Harness,
        job: &super::super::JobRef,
        body: &[u8],
    ) -> ChunkTask {
        let object_key = keys::raw_chunk(&job.connector_id, &job.job_id, "vulns-00001");
        h.store.put_object(&object_key, body.to_vec(), "application/json").await.unwrap();
        ChunkTask {
            job: job.clone(),
            kind: ExportKind::Vulns,
            chunk_key: "vulns-00001".into(),
            object_key,
            reference_key: None,
        }
    }

    #[tokio::test]
    async fn writes_one_normalized_record_per_line() {
        let h = harness(SimulatorConfig::default()).await;
        let job = h.start_job("job-1").await;
        let vulns = serde_json::to_vec(&h.simulator.dataset().vulns()[..5]).unwrap();
        let output = normalize(&h.services, raw_chunk(&h, &job, &vulns).await).await.expect("normalizes");
        assert_eq!(output.records, 5);
        let ndjson = h.store.get_object(&output.object_key).await.unwrap();
        let lines: Vec<NormalizedRecord> = ndjson
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
    }

    #[tokio::test]
    async fn a_record_without_an_asset_fails_the_chunk_naming_chunk_and_field() {
        let h = harness(SimulatorConfig::default()).await;
        let job = h.start_job("job-1").await;
        let mut vulns: Vec<serde_json::Value> = h.simulator.dataset().vulns()[..3].to_vec();
        vulns[1].as_object_mut().unwrap().remove("asset");
        let task = raw_chunk(&h, &job, &serde_json::to_vec(&vulns).unwrap()).await;
        let error = normalize(&h.services, task).await.expect_err("the record has no asset");
        assert_eq!(error.error_name(), "Vulnflow.MalformedChunk");
        let message = error.to_string();
        assert!(
            message.contains("vulns-00001") && message.contains("record 1") && message.contains("`asset"),
            "{message}"
        );
        assert!(h.store.object_keys().iter().all(|k| !k.starts_with("normalized/")), "nothing half-written");
        let stored = h.store.get_job("job-1").await.unwrap().unwrap();
        let failure = stored.failure.expect("recorded");
        assert_eq!((failure.stage, failure.status), (Stage::Normalizing, JobStatus::ApiError));
        let chunk = h.store.get_chunk("job-1", "vulns-00001").await.unwrap().unwrap();
        assert_eq!((chunk.status, chunk.failed_attempts), (ChunkStatus::Failed, 1));
    }

    #[tokio::test]
    async fn a_chunk_that_is_not_json_fails_with_a_clear_error() {
        let h = harness(SimulatorConfig::default()).await;
        let job = h.start_job("job-1").await;
        let error = normalize(&h.services, raw_chunk(&h, &job, b"[{\"asset\": ").await).await.expect_err("not JSON");
        assert!(error.to_string().contains("not valid JSON"), "{error}");
    }
}
