//! Export jobs and their status lifecycle: QUEUED on the first status poll, PROCESSING for a
//! configured number of polls while chunks become available (out of order, as on Tenable),
//! then FINISHED, or ERROR when so configured. `total_chunks` stays 0 until FINISHED, as the
//! real API only knows it then. A job holds its records from its creation on: later changes
//! to the dataset do not show in it (it keeps the dataset's snapshot of that moment and the
//! indexes of its records, not copies: a million-finding export holds 8 MB, not 7 GB).

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};
use simulator_kit::SplitMix64;
use uuid::Uuid;

use crate::Dataset;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExportKind {
    Vulns,
    Assets,
}

impl ExportKind {
    /// The first path segment: `/vulns/export`, `/assets/export`.
    pub(crate) fn from_path_segment(segment: &str) -> Option<Self> {
        match segment {
            "vulns" => Some(ExportKind::Vulns),
            "assets" => Some(ExportKind::Assets),
            _ => None,
        }
    }
}

/// How an export goes wrong, if it does.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExportFaults {
    /// Chunk ids that fail: listed in `chunks_failed` instead of `chunks_available`.
    pub failed_chunks: Vec<u32>,
    /// The export ends in ERROR once this many chunks are available.
    pub error_after_chunks: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Processing,
    Finished,
    Cancelled,
    Error,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "QUEUED",
            Phase::Processing => "PROCESSING",
            Phase::Finished => "FINISHED",
            Phase::Cancelled => "CANCELLED",
            Phase::Error => "ERROR",
        }
    }
}

pub(crate) struct ExportJob {
    pub(crate) kind: ExportKind,
    uuid: Uuid,
    created_ms: i64,
    filters: Value,
    /// Assets per chunk (`num_assets` or `chunk_size`).
    chunk_size: u32,
    /// The dataset as it was when the export was created.
    snapshot: Arc<Dataset>,
    /// The snapshot's record indexes of each chunk; chunk id N is `chunks[N - 1]`.
    chunks: Vec<Vec<usize>>,
    /// Chunk ids in the order they become available.
    availability_order: Vec<u32>,
    available: usize,
    status_polls: u32,
    phase: Phase,
    faults: ExportFaults,
}

impl ExportJob {
    pub(crate) fn new(
        kind: ExportKind,
        filters: Value,
        chunk_size: u32,
        snapshot: Arc<Dataset>,
        chunks: Vec<Vec<usize>>,
        order_seed: u64,
        faults: ExportFaults,
    ) -> Self {
        let mut availability_order: Vec<u32> = (1..=chunks.len() as u32).collect();
        SplitMix64::new(order_seed).shuffle(&mut availability_order);
        Self {
            kind,
            uuid: Uuid::new_v4(),
            created_ms: Utc::now().timestamp_millis(),
            filters,
            chunk_size,
            snapshot,
            chunks,
            availability_order,
            available: 0,
            status_polls: 0,
            phase: Phase::Queued,
            faults,
        }
    }

    pub(crate) fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// Answers one status poll, moving the lifecycle one step forward.
    pub(crate) fn poll(&mut self, processing_polls: u32) -> Value {
        if matches!(self.phase, Phase::Queued | Phase::Processing) {
            let poll = self.status_polls;
            self.status_polls += 1;
            let total = self.chunks.len();
            if poll == 0 {
                self.phase = Phase::Queued;
            } else if poll <= processing_polls {
                self.phase = Phase::Processing;
                self.available = total * poll as usize / (processing_polls as usize + 1);
            } else {
                self.phase = Phase::Finished;
                self.available = total;
            }
            if let Some(limit) = self.faults.error_after_chunks
                && poll > 0
                && self.available >= (limit as usize).min(total)
            {
                self.phase = Phase::Error;
                self.available = (limit as usize).min(total);
            }
        }
        self.status()
    }

    /// Cancels a running export; a finished or failed one stays so.
    pub(crate) fn cancel(&mut self) -> Value {
        if matches!(self.phase, Phase::Queued | Phase::Processing) {
            self.phase = Phase::Cancelled;
        }
        json!({"status": self.phase.as_str()})
    }

    /// The records of an available chunk; `None` for unknown, failed or not yet available ids.
    pub(crate) fn available_chunk(&self, chunk_id: u32) -> Option<Vec<Value>> {
        let (available, _) = self.revealed_chunks();
        let indexes = available.contains(&chunk_id).then(|| &self.chunks[chunk_id as usize - 1])?;
        let record = |index: usize| match self.kind {
            ExportKind::Vulns => self.snapshot.vuln(index).clone(),
            ExportKind::Assets => self.snapshot.asset(index).clone(),
        };
        Some(indexes.iter().copied().map(record).collect())
    }

    /// The chunks processed so far, split into (available, failed).
    fn revealed_chunks(&self) -> (Vec<u32>, Vec<u32>) {
        self.availability_order[..self.available]
            .iter()
            .partition(|chunk_id| !self.faults.failed_chunks.contains(chunk_id))
    }

    fn status(&self) -> Value {
        let (available, failed) = self.revealed_chunks();
        let cancelled: &[u32] =
            if self.phase == Phase::Cancelled { &self.availability_order[self.available..] } else { &[] };
        let total_chunks = if self.phase == Phase::Finished { self.chunks.len() } else { 0 };
        let chunk_size_field = match self.kind {
            ExportKind::Vulns => "num_assets_per_chunk",
            ExportKind::Assets => "chunk_size",
        };
        let mut status = json!({
            "uuid": self.uuid,
            "status": self.phase.as_str(),
            "chunks_available": available,
            "chunks_failed": failed,
            "chunks_cancelled": cancelled,
            "total_chunks": total_chunks,
            "finished_chunks": available.len(),
            "filters": self.filters,
            "created": self.created_ms,
        });
        status[chunk_size_field] = json!(self.chunk_size);
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An export of `chunks` chunks, one finding each.
    fn job_with(chunks: usize, faults: ExportFaults) -> ExportJob {
        let snapshot = Arc::new(Dataset::generate(7, chunks as u32, 1, 0));
        let chunks = (0..chunks).map(|index| vec![index]).collect();
        ExportJob::new(ExportKind::Vulns, json!({}), 50, snapshot, chunks, 7, faults)
    }

    fn job(chunks: usize) -> ExportJob {
        job_with(chunks, ExportFaults::default())
    }

    fn ids(status: &Value, field: &str) -> Vec<u64> {
        let mut ids: Vec<u64> =
            status[field].as_array().map(|ids| ids.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn lifecycle_reveals_chunks_progressively_and_total_only_when_finished() {
        let mut job = job(4);
        let queued = job.poll(3);
        assert_eq!(queued["status"], "QUEUED");
        assert_eq!(queued["chunks_available"], json!([]));
        let mut seen = 0;
        for _ in 0..3 {
            let processing = job.poll(3);
            assert_eq!(processing["status"], "PROCESSING");
            assert_eq!(processing["total_chunks"], 0);
            let available = processing["chunks_available"].as_array().map_or(0, Vec::len);
            assert!(available >= seen);
            seen = available;
        }
        let finished = job.poll(3);
        assert_eq!(finished["status"], "FINISHED");
        assert_eq!(finished["total_chunks"], 4);
        assert_eq!(finished["finished_chunks"], 4);
        assert!(job.available_chunk(4).is_some());
        assert!(job.available_chunk(5).is_none());
        assert!(job.available_chunk(0).is_none());
    }

    #[test]
    fn chunks_are_not_served_before_they_are_available() {
        let mut job = job(2);
        assert!(job.available_chunk(1).is_none());
        job.poll(0);
        assert!(job.available_chunk(1).is_none());
        job.poll(0);
        assert!(job.available_chunk(1).is_some());
    }

    #[test]
    fn cancel_stops_the_lifecycle() {
        let mut job = job(3);
        job.poll(2);
        assert_eq!(job.cancel()["status"], "CANCELLED");
        let status = job.poll(2);
        assert_eq!(status["status"], "CANCELLED");
        assert_eq!(status["chunks_cancelled"].as_array().map_or(0, Vec::len), 3);
    }

    #[test]
    fn error_after_chunks_ends_in_error_with_those_chunks_available() {
        let faults = ExportFaults { error_after_chunks: Some(3), ..ExportFaults::default() };
        let mut job = job_with(6, faults);
        let statuses: Vec<Value> = (0..5).map(|_| job.poll(2)).collect();
        let phases: Vec<&Value> = statuses.iter().map(|status| &status["status"]).collect();
        assert_eq!(phases, ["QUEUED", "PROCESSING", "ERROR", "ERROR", "ERROR"]);
        let error = &statuses[2];
        assert_eq!(ids(error, "chunks_available").len(), 3);
        assert_eq!(error["total_chunks"], 0);
        let available = ids(error, "chunks_available");
        assert!(available.iter().all(|&id| job.available_chunk(id as u32).is_some()));
        assert_eq!(job.cancel()["status"], "ERROR");
    }

    #[test]
    fn failed_chunks_are_listed_apart_and_never_served() {
        let faults = ExportFaults { failed_chunks: vec![2, 4], ..ExportFaults::default() };
        let mut job = job_with(4, faults);
        job.poll(0);
        let finished = job.poll(0);
        assert_eq!(finished["status"], "FINISHED");
        assert_eq!(ids(&finished, "chunks_available"), [1, 3]);
        assert_eq!(ids(&finished, "chunks_failed"), [2, 4]);
        assert_eq!(finished["total_chunks"], 4);
        assert_eq!(finished["finished_chunks"], 2);
        assert!(job.available_chunk(2).is_none());
        assert!(job.available_chunk(3).is_some());
    }
}
