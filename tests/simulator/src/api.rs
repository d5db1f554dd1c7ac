//! The HTTP routes of the Tenable export API v2, behind the layers of [`crate::middleware`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{Value, json};
use simulator_kit::{Snapshot, lock};
use uuid::Uuid;

use crate::data::{ChangeReport, Changes, Dataset};
use crate::exports::{ExportJob, ExportKind};
use crate::faults::{self, FaultInjector};
use crate::filters::{AssetFilters, VulnFilters, VulnState};
use crate::traffic::Traffic;
use crate::{SimulatorConfig, middleware as layers};

const NUM_ASSETS_DEFAULT: u32 = 50;
const NUM_ASSETS_RANGE: (u32, u32) = (50, 5000);
const CHUNK_SIZE_RANGE: (u32, u32) = (100, 10_000);
/// The simulated tenant.
pub(crate) const CONTAINER_UUID: &str = "0b7d3e8a-1c2f-4e5d-8a9b-c0d1e2f3a4b5";

pub(crate) struct SimulatorState {
    /// Its `faults` are moved into `faults` below.
    config: SimulatorConfig,
    /// Replaced whole on each change: exports keep the records they were created with.
    dataset: Snapshot<Dataset>,
    exports: Mutex<HashMap<Uuid, ExportJob>>,
    exports_created: AtomicU64,
    /// The export already running at start-up, when so configured.
    preexisting_export: Option<Uuid>,
    pub(crate) traffic: Traffic,
    pub(crate) faults: FaultInjector,
}

impl SimulatorState {
    pub(crate) fn new(mut config: SimulatorConfig, dataset: Dataset) -> Self {
        let faults = FaultInjector::new(std::mem::take(&mut config.faults));
        let mut state = Self {
            config,
            dataset: Snapshot::new(dataset),
            exports: Mutex::default(),
            exports_created: AtomicU64::new(0),
            preexisting_export: None,
            traffic: Traffic::default(),
            faults,
        };
        if state.faults.duplicate_export_running() {
            state.preexisting_export = Some(state.start_export_of_everything());
        }
        state
    }

    /// An export of every record, as an earlier client would have created it.
    fn start_export_of_everything(&self) -> Uuid {
        let states: Vec<&str> = VulnState::ALL.iter().map(|state| state.as_str()).collect();
        let request = json!({"num_assets": NUM_ASSETS_DEFAULT, "filters": {"since": 0, "state": states}});
        let job = match self.create_job(ExportKind::Vulns, &request) {
            Ok(job) => job,
            Err(message) => unreachable!("a valid request was refused: {message}"),
        };
        let uuid = job.uuid();
        lock(&self.exports).insert(uuid, job);
        uuid
    }

    pub(crate) fn access_key(&self) -> &str {
        &self.config.access_key
    }

    pub(crate) fn secret_key(&self) -> &str {
        &self.config.secret_key
    }

    pub(crate) fn preexisting_export(&self) -> Option<Uuid> {
        self.preexisting_export
    }

    pub(crate) fn dataset(&self) -> Arc<Dataset> {
        self.dataset.current()
    }

    pub(crate) fn apply_changes(&self, changes: Changes) -> ChangeReport {
        self.dataset.change(|dataset| dataset.apply_changes(changes, Utc::now().timestamp_millis()))
    }

    fn create_job(&self, kind: ExportKind, request: &Value) -> Result<ExportJob, String> {
        let dataset = self.dataset();
        let (chunk_size, chunks) = match kind {
            ExportKind::Vulns => {
                let num_assets = bounded(request, "num_assets", Some(NUM_ASSETS_DEFAULT), NUM_ASSETS_RANGE)?;
                let filters = VulnFilters::from_json(&request["filters"])?;
                let now_ms = Utc::now().timestamp_millis();
                (num_assets, dataset.vuln_chunks(&filters, now_ms, num_assets as usize))
            }
            ExportKind::Assets => {
                let chunk_size = bounded(request, "chunk_size", None, CHUNK_SIZE_RANGE)?;
                let filters = AssetFilters::from_json(&request["filters"])?;
                (chunk_size, dataset.asset_chunks(&filters, chunk_size as usize))
            }
        };
        let sequence = self.exports_created.fetch_add(1, Ordering::Relaxed);
        Ok(ExportJob::new(
            kind,
            request.get("filters").cloned().unwrap_or_else(|| json!({})),
            chunk_size,
            dataset,
            chunks,
            self.config.seed.wrapping_add(sequence),
            self.faults.export_faults(kind),
        ))
    }
}

type Shared = State<Arc<SimulatorState>>;

pub(crate) fn router(state: Arc<SimulatorState>) -> Router {
    Router::new()
        .route("/session", get(session))
        .route("/{kind}/export", post(create_export))
        .route("/{kind}/export/{uuid}/status", get(export_status))
        .route("/{kind}/export/{uuid}/chunks/{chunk_id}", get(download_chunk))
        .route("/{kind}/export/{uuid}/cancel", post(cancel_export))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not Found") })
        // The last layer added runs first.
        .layer(middleware::from_fn_with_state(state.clone(), layers::throttle))
        .layer(middleware::from_fn_with_state(state.clone(), layers::require_api_keys))
        .layer(middleware::from_fn_with_state(state.clone(), layers::count_calls))
        .with_state(state)
}

/// Tenable's error body: `{"statusCode", "error", "message"}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "statusCode": status.as_u16(),
        "error": status.canonical_reason().unwrap_or_default(),
        "message": message,
    });
    (status, Json(body)).into_response()
}

async fn session() -> Json<Value> {
    Json(json!({
        "id": 2,
        "uuid": "6c0d3d2e-5a6b-4f43-9b1f-5b2a8f7c1e01",
        "username": "sim@example.com",
        "email": "sim@example.com",
        "name": "Tenable Simulator",
        "type": "local",
        "permissions": 64,
        "enabled": true,
        "container_uuid": CONTAINER_UUID,
    }))
}

async fn create_export(State(state): Shared, Path(kind): Path<String>, body: Bytes) -> Response {
    let Some(kind) = ExportKind::from_path_segment(&kind) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let request = if body.is_empty() { Ok(json!({})) } else { serde_json::from_slice::<Value>(&body) };
    let received = match &request {
        Ok(request) => request.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    state.traffic.record_export_request(kind, received);
    if kind == ExportKind::Vulns
        && let Some(running) = state.preexisting_export
        && state.faults.claim_duplicate()
    {
        return faults::duplicate_export(running);
    }
    let Ok(request) = request else {
        return error(StatusCode::BAD_REQUEST, "Request body is not valid JSON");
    };
    match state.create_job(kind, &request) {
        Ok(job) => {
            let uuid = job.uuid();
            tracing::info!(?kind, %uuid, filters = %request["filters"], "export created");
            lock(&state.exports).insert(uuid, job);
            Json(json!({"export_uuid": uuid})).into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}

/// An integer field within `range` (inclusive); `default` when absent, required without one.
fn bounded(request: &Value, key: &str, default: Option<u32>, (min, max): (u32, u32)) -> Result<u32, String> {
    let out_of_range = || format!("{key} must be an integer between {min} and {max}");
    match (request.get(key), default) {
        (None, Some(default)) => Ok(default),
        (None, None) => Err(format!("{key} is required")),
        (Some(value), _) => value
            .as_u64()
            .and_then(|value| u32::try_from(value).ok())
            .filter(|value| (min..=max).contains(value))
            .ok_or_else(out_of_range),
    }
}

/// The export named by the path, if it exists and is of that kind.
fn find_export<'a>(exports: &'a mut HashMap<Uuid, ExportJob>, kind: &str, uuid: &str) -> Option<&'a mut ExportJob> {
    let kind = ExportKind::from_path_segment(kind);
    Uuid::parse_str(uuid).ok().and_then(|uuid| exports.get_mut(&uuid)).filter(|job| Some(job.kind) == kind)
}

fn export_not_found(uuid: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("Export {uuid} not found"))
}

async fn export_status(State(state): Shared, Path((kind, uuid)): Path<(String, String)>) -> Response {
    let mut exports = lock(&state.exports);
    match find_export(&mut exports, &kind, &uuid) {
        Some(job) => Json(job.poll(state.config.status_polls_before_finished)).into_response(),
        None => export_not_found(&uuid),
    }
}

async fn cancel_export(State(state): Shared, Path((kind, uuid)): Path<(String, String)>) -> Response {
    let mut exports = lock(&state.exports);
    match find_export(&mut exports, &kind, &uuid) {
        Some(job) => Json(job.cancel()).into_response(),
        None => export_not_found(&uuid),
    }
}

async fn download_chunk(
    State(state): Shared,
    Path((kind, uuid, chunk_id)): Path<(String, String, String)>,
) -> Response {
    if let Some(delay) = state.faults.chunk_delay() {
        tokio::time::sleep(delay).await;
    }
    let (kind, chunk_id, records) = {
        let mut exports = lock(&state.exports);
        let Some(job) = find_export(&mut exports, &kind, &uuid) else {
            return export_not_found(&uuid);
        };
        let chunk = chunk_id.parse::<u32>().ok().and_then(|id| Some((id, job.available_chunk(id)?)));
        let Some((id, records)) = chunk else {
            return error(StatusCode::NOT_FOUND, &format!("Chunk {chunk_id} not found"));
        };
        (job.kind, id, records)
    };
    if let Some(failure) = state.faults.chunk_failure(kind, chunk_id) {
        return failure;
    }
    state.traffic.count_chunk_download();
    let body = match kind {
        ExportKind::Vulns => state.faults.vuln_chunk_body(chunk_id, records),
        ExportKind::Assets => serde_json::to_vec(&records).unwrap_or_default(),
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_applies_default_and_range() {
        let range = NUM_ASSETS_RANGE;
        assert_eq!(bounded(&json!({}), "num_assets", Some(50), range), Ok(50));
        assert_eq!(bounded(&json!({"num_assets": 5000}), "num_assets", Some(50), range), Ok(5000));
        assert!(bounded(&json!({"num_assets": 49}), "num_assets", Some(50), range).is_err());
        assert!(bounded(&json!({"num_assets": "100"}), "num_assets", Some(50), range).is_err());
        assert!(bounded(&json!({}), "chunk_size", None, CHUNK_SIZE_RANGE).is_err());
    }
}
