//! Export jobs and their status lifecycle: QUEUED on the first status poll, PROCESSING for a
//! configured number of polls while chunks become available (out of order, as on Tenable),
//! then FINISHED. `total_chunks` stays 0 until FINISHED, as the real API only knows it then.

use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::prng::SplitMix64;

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Processing,
    Finished,
    Cancelled,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "QUEUED",
            Phase::Processing => "PROCESSING",
            Phase::Finished => "FINISHED",
            Phase::Cancelled => "CANCELLED",
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
    /// Dataset record indexes of each chunk; chunk id N is `chunks[N - 1]`.
    chunks: Vec<Vec<usize>>,
    /// Chunk ids in the order they become available.
    availability_order: Vec<u32>,
    available: usize,
    status_polls: u32,
    phase: Phase,
}

impl ExportJob {
    pub(crate) fn new(
        kind: ExportKind,
        filters: Value,
        chunk_size: u32,
        chunks: Vec<Vec<usize>>,
        order_seed: u64,
    ) -> Self {
        let mut availability_order: Vec<u32> = (1..=chunks.len() as u32).collect();
        SplitMix64::new(order_seed).shuffle(&mut availability_order);
        Self {
            kind,
            uuid: Uuid::new_v4(),
            created_ms: Utc::now().timestamp_millis(),
            filters,
            chunk_size,
            chunks,
            availability_order,
            available: 0,
            status_polls: 0,
            phase: Phase::Queued,
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
        }
        self.status()
    }

    /// Cancels a running export; a finished one stays finished.
    pub(crate) fn cancel(&mut self) -> Value {
        if self.phase != Phase::Finished {
            self.phase = Phase::Cancelled;
        }
        json!({"status": self.phase.as_str()})
    }

    /// The record indexes of an available chunk; `None` for unknown or not yet available ids.
    pub(crate) fn available_chunk(&self, chunk_id: u32) -> Option<&[usize]> {
        self.availability_order[..self.available]
            .contains(&chunk_id)
            .then(|| self.chunks[chunk_id as usize - 1].as_slice())
    }

    fn status(&self) -> Value {
        let (available, pending) = self.availability_order.split_at(self.available);
        let cancelled: &[u32] = if self.phase == Phase::Cancelled {
            pending
        } else {
            &[]
        };
        let total_chunks = if self.phase == Phase::Finished {
            self.chunks.len()
        } else {
            0
        };
        let chunk_size_field = match self.kind {
            ExportKind::Vulns => "num_assets_per_chunk",
            ExportKind::Assets => "chunk_size",
        };
        let mut status = json!({
            "uuid": self.uuid,
            "status": self.phase.as_str(),
            "chunks_available": available,
            "chunks_failed": [],
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

    fn job(chunks: usize) -> ExportJob {
        ExportJob::new(ExportKind::Vulns, json!({}), 50, vec![vec![0]; chunks], 7)
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
            let available = processing["chunks_available"]
                .as_array()
                .map_or(0, Vec::len);
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
}
