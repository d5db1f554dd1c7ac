//! The HTTP routes of the Tenable export API v2, behind `X-ApiKeys` authentication.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::SimulatorConfig;
use crate::data::Dataset;
use crate::exports::{ExportJob, ExportKind};
use crate::filters::{AssetFilters, VulnFilters};

const NUM_ASSETS_DEFAULT: u32 = 50;
const NUM_ASSETS_RANGE: (u32, u32) = (50, 5000);
const CHUNK_SIZE_RANGE: (u32, u32) = (100, 10_000);

pub(crate) struct SimulatorState {
    config: SimulatorConfig,
    pub(crate) dataset: Dataset,
    exports: Mutex<HashMap<Uuid, ExportJob>>,
    export_requests: Mutex<Vec<(ExportKind, Value)>>,
    chunk_downloads: AtomicU64,
    exports_created: AtomicU64,
}

impl SimulatorState {
    pub(crate) fn new(config: SimulatorConfig, dataset: Dataset) -> Self {
        Self {
            config,
            dataset,
            exports: Mutex::default(),
            export_requests: Mutex::default(),
            chunk_downloads: AtomicU64::new(0),
            exports_created: AtomicU64::new(0),
        }
    }

    pub(crate) fn export_requests(&self, kind: Option<ExportKind>) -> Vec<Value> {
        lock(&self.export_requests)
            .iter()
            .filter(|(request_kind, _)| kind.is_none_or(|kind| kind == *request_kind))
            .map(|(_, body)| body.clone())
            .collect()
    }

    pub(crate) fn chunk_downloads(&self) -> u64 {
        self.chunk_downloads.load(Ordering::Relaxed)
    }
}

/// A panic in one handler must not take every later request down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

type Shared = State<Arc<SimulatorState>>;

pub(crate) fn router(state: Arc<SimulatorState>) -> Router {
    Router::new()
        .route("/session", get(session))
        .route("/{kind}/export", post(create_export))
        .route("/{kind}/export/{uuid}/status", get(export_status))
        .route(
            "/{kind}/export/{uuid}/chunks/{chunk_id}",
            get(download_chunk),
        )
        .route("/{kind}/export/{uuid}/cancel", post(cancel_export))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not Found") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_keys,
        ))
        .with_state(state)
}

/// Tenable's error body: `{"statusCode", "error", "message"}`.
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "statusCode": status.as_u16(),
        "error": status.canonical_reason().unwrap_or_default(),
        "message": message,
    });
    (status, Json(body)).into_response()
}

async fn require_api_keys(State(state): Shared, request: Request, next: Next) -> Response {
    let keys = request
        .headers()
        .get("x-apikeys")
        .and_then(|value| value.to_str().ok())
        .map(parse_api_keys);
    let config = &state.config;
    let authorized = keys.is_some_and(|(access, secret)| {
        access == Some(config.access_key.as_str()) && secret == Some(config.secret_key.as_str())
    });
    if authorized {
        next.run(request).await
    } else {
        error(StatusCode::UNAUTHORIZED, "Invalid Credentials")
    }
}

/// `accessKey=<a>;secretKey=<b>`, in any order, with spaces around the parts.
fn parse_api_keys(header: &str) -> (Option<&str>, Option<&str>) {
    let mut access = None;
    let mut secret = None;
    for (name, value) in header.split(';').filter_map(|part| part.split_once('=')) {
        match name.trim() {
            "accessKey" => access = Some(value.trim()),
            "secretKey" => secret = Some(value.trim()),
            _ => {}
        }
    }
    (access, secret)
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
        "container_uuid": "0b7d3e8a-1c2f-4e5d-8a9b-c0d1e2f3a4b5",
    }))
}

async fn create_export(State(state): Shared, Path(kind): Path<String>, body: Bytes) -> Response {
    let Some(kind) = ExportKind::from_path_segment(&kind) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let request = if body.is_empty() {
        Ok(json!({}))
    } else {
        serde_json::from_slice::<Value>(&body)
    };
    let received = match &request {
        Ok(request) => request.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    lock(&state.export_requests).push((kind, received));
    let Ok(request) = request else {
        return error(StatusCode::BAD_REQUEST, "Request body is not valid JSON");
    };
    let sequence = state.exports_created.fetch_add(1, Ordering::Relaxed);
    let order_seed = state.config.seed.wrapping_add(sequence);
    let job = match kind {
        ExportKind::Vulns => vuln_export(&state, &request, order_seed),
        ExportKind::Assets => asset_export(&state, &request, order_seed),
    };
    match job {
        Ok(job) => {
            let uuid = job.uuid();
            tracing::info!(?kind, %uuid, filters = %request["filters"], "export created");
            lock(&state.exports).insert(uuid, job);
            Json(json!({"export_uuid": uuid})).into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}

fn vuln_export(
    state: &SimulatorState,
    request: &Value,
    order_seed: u64,
) -> Result<ExportJob, String> {
    let num_assets = bounded(
        request,
        "num_assets",
        Some(NUM_ASSETS_DEFAULT),
        NUM_ASSETS_RANGE,
    )?;
    let filters = VulnFilters::from_json(&request["filters"])?;
    let now_ms = Utc::now().timestamp_millis();
    let chunks = state
        .dataset
        .vuln_chunks(&filters, now_ms, num_assets as usize);
    Ok(ExportJob::new(
        ExportKind::Vulns,
        echoed_filters(request),
        num_assets,
        chunks,
        order_seed,
    ))
}

fn asset_export(
    state: &SimulatorState,
    request: &Value,
    order_seed: u64,
) -> Result<ExportJob, String> {
    let chunk_size = bounded(request, "chunk_size", None, CHUNK_SIZE_RANGE)?;
    let filters = AssetFilters::from_json(&request["filters"])?;
    let chunks = state.dataset.asset_chunks(&filters, chunk_size as usize);
    Ok(ExportJob::new(
        ExportKind::Assets,
        echoed_filters(request),
        chunk_size,
        chunks,
        order_seed,
    ))
}

fn echoed_filters(request: &Value) -> Value {
    request.get("filters").cloned().unwrap_or_else(|| json!({}))
}

/// An integer field within `range` (inclusive); `default` when absent, required without one.
fn bounded(
    request: &Value,
    key: &str,
    default: Option<u32>,
    (min, max): (u32, u32),
) -> Result<u32, String> {
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
fn find_export<'a>(
    exports: &'a mut HashMap<Uuid, ExportJob>,
    kind: &str,
    uuid: &str,
) -> Option<&'a mut ExportJob> {
    let kind = ExportKind::from_path_segment(kind);
    Uuid::parse_str(uuid)
        .ok()
        .and_then(|uuid| exports.get_mut(&uuid))
        .filter(|job| Some(job.kind) == kind)
}

fn export_not_found(uuid: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("Export {uuid} not found"))
}

async fn export_status(
    State(state): Shared,
    Path((kind, uuid)): Path<(String, String)>,
) -> Response {
    let mut exports = lock(&state.exports);
    match find_export(&mut exports, &kind, &uuid) {
        Some(job) => Json(job.poll(state.config.status_polls_before_finished)).into_response(),
        None => export_not_found(&uuid),
    }
}

async fn cancel_export(
    State(state): Shared,
    Path((kind, uuid)): Path<(String, String)>,
) -> Response {
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
    let (kind, chunk_id, indexes) = {
        let mut exports = lock(&state.exports);
        let Some(job) = find_export(&mut exports, &kind, &uuid) else {
            return export_not_found(&uuid);
        };
        let chunk = chunk_id
            .parse::<u32>()
            .ok()
            .and_then(|id| Some((id, job.available_chunk(id)?.to_vec())));
        let Some((id, indexes)) = chunk else {
            return error(
                StatusCode::NOT_FOUND,
                &format!("Chunk {chunk_id} not found"),
            );
        };
        (job.kind, id, indexes)
    };
    state.chunk_downloads.fetch_add(1, Ordering::Relaxed);
    let body = chunk_body(&state, kind, chunk_id, &indexes);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn chunk_body(
    state: &SimulatorState,
    kind: ExportKind,
    chunk_id: u32,
    indexes: &[usize],
) -> Vec<u8> {
    let faults = &state.config.faults;
    let dataset = &state.dataset;
    let mut records: Vec<Value> = match kind {
        ExportKind::Vulns => indexes
            .iter()
            .map(|&index| dataset.vuln(index).clone())
            .collect(),
        ExportKind::Assets => indexes
            .iter()
            .map(|&index| dataset.asset(index).clone())
            .collect(),
    };
    if kind == ExportKind::Vulns
        && faults.records_missing_asset_chunks.contains(&chunk_id)
        && let Some(Value::Object(first)) = records.first_mut()
    {
        first.remove("asset");
    }
    let body = serde_json::to_vec(&records).unwrap_or_default();
    if kind == ExportKind::Vulns && faults.malformed_json_chunks.contains(&chunk_id) {
        // A body cut mid-stream, as a dropped connection or a truncating proxy produces.
        return body[..body.len() / 2].to_vec();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_tolerate_order_and_spaces() {
        assert_eq!(
            parse_api_keys("accessKey=a;secretKey=s"),
            (Some("a"), Some("s"))
        );
        assert_eq!(
            parse_api_keys(" secretKey = s ; accessKey=a "),
            (Some("a"), Some("s"))
        );
        assert_eq!(parse_api_keys("accessKey=a"), (Some("a"), None));
    }

    #[test]
    fn bounded_applies_default_and_range() {
        let range = NUM_ASSETS_RANGE;
        assert_eq!(bounded(&json!({}), "num_assets", Some(50), range), Ok(50));
        assert_eq!(
            bounded(&json!({"num_assets": 5000}), "num_assets", Some(50), range),
            Ok(5000)
        );
        assert!(bounded(&json!({"num_assets": 49}), "num_assets", Some(50), range).is_err());
        assert!(bounded(&json!({"num_assets": "100"}), "num_assets", Some(50), range).is_err());
        assert!(bounded(&json!({}), "chunk_size", None, CHUNK_SIZE_RANGE).is_err());
    }
}
