//! The real API's failure modes, to inject: what to break ([`Faults`]) and, while serving, how
//! many times it broke already ([`FaultInjector`]).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use simulator_kit::{FireCount, load_balancer_error, lock, status_code, text_of_length};
use uuid::Uuid;

use crate::api::{CONTAINER_UUID, error};
use crate::exports::{ExportFaults, ExportKind};
use crate::traffic::Route;

/// Misbehaviours to inject; the default injects none. Build with
/// `Faults { field: ..., ..Default::default() }` so that fields added later do not break
/// callers. Chunk ids name chunks of vulns exports (asset exports are only ever slow).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// These vulns chunk ids answer 200 with a truncated body that is not JSON.
    pub malformed_json_chunks: Vec<u32>,
    /// In these vulns chunk ids, the first record has no `asset` object.
    pub records_missing_asset_chunks: Vec<u32>,
    /// Every call with the right keys answers this status (403: Tenable's "You do not have
    /// permission to view this resource"), as for keys of a user without the permission.
    pub reject_keys_with: Option<u16>,
    pub throttle: Option<Throttle>,
    pub server_errors: Option<ServerErrors>,
    /// Vulns exports end in status ERROR once this many chunks are available; those stay
    /// listed in `chunks_available` and downloadable.
    pub export_error_after_chunks: Option<u32>,
    /// Vulns exports finish with these chunk ids in `chunks_failed`, not in
    /// `chunks_available`; downloading one answers 404, as Tenable answers for a chunk it
    /// does not have (its documented errors for a chunk download are 404 and 429, no 5xx).
    pub failed_chunks: Vec<u32>,
    /// Listed in `chunks_available`, but downloading answers 404: expired, as Tenable's
    /// chunks are after a while.
    pub expired_chunks: Vec<u32>,
    /// At start-up, an export of everything (`since` 0, every state) is already running, as
    /// if created by an earlier client: the first `POST /vulns/export`, whatever its body,
    /// answers 409 naming it (see [`crate::RunningSimulator::preexisting_export_uuid`]).
    pub duplicate_export_running: bool,
    /// The first record of vulns chunk 1 carries an `output` of this many bytes, beginning
    /// with `<script>` markup (whole from 32 bytes on).
    pub huge_output_finding: Option<usize>,
    /// The first record of vulns chunk 1 carries a `plugin.synopsis` and an
    /// `asset.hostname` of this many bytes each.
    pub huge_text_finding: Option<usize>,
    /// Every chunk download (vulns and assets) waits this long before answering.
    pub slow_chunks: Option<Duration>,
}

/// Rate limiting: the first `requests` calls of `paths` answer 429
/// `{"statusCode":429,"error":"Too Many Requests"}` with `Retry-After: <retry_after_seconds>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttle {
    pub requests: u32,
    pub retry_after_seconds: u32,
    pub paths: ThrottledPaths,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottledPaths {
    /// Every call with the right keys.
    All,
    /// `POST /vulns/export` and `POST /assets/export`.
    ExportCreation,
    /// `GET /{vulns,assets}/export/{uuid}/chunks/{id}`.
    ChunkDownloads,
}

impl ThrottledPaths {
    fn covers(self, route: Option<Route>) -> bool {
        match self {
            ThrottledPaths::All => true,
            ThrottledPaths::ExportCreation => route == Some(Route::ExportCreation),
            ThrottledPaths::ChunkDownloads => route == Some(Route::ChunkDownload),
        }
    }
}

/// `all`, `export-creation` or `chunk-downloads`.
impl FromStr for ThrottledPaths {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "all" => Ok(ThrottledPaths::All),
            "export-creation" => Ok(ThrottledPaths::ExportCreation),
            "chunk-downloads" => Ok(ThrottledPaths::ChunkDownloads),
            _ => Err(format!("{text:?}: expected all, export-creation or chunk-downloads")),
        }
    }
}

/// The first `times` downloads of each listed vulns chunk id (counted across exports, so a
/// new export does not fail again) answer `status`: 500 with Tenable's JSON error body,
/// any other (502, 503...) with the HTML page of a load balancer. Later ones succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerErrors {
    pub status: u16,
    pub chunk_ids: Vec<u32>,
    pub times: u32,
}

/// The faults and how many times each fired.
pub(crate) struct FaultInjector {
    faults: Faults,
    throttled: FireCount,
    server_errors_served: Mutex<HashMap<u32, u32>>,
    duplicate_pending: AtomicBool,
}

impl FaultInjector {
    pub(crate) fn new(faults: Faults) -> Self {
        Self {
            duplicate_pending: AtomicBool::new(faults.duplicate_export_running),
            faults,
            throttled: FireCount::default(),
            server_errors_served: Mutex::default(),
        }
    }

    pub(crate) fn duplicate_export_running(&self) -> bool {
        self.faults.duplicate_export_running
    }

    /// The answer to a call with the right keys, if they are to be rejected.
    pub(crate) fn key_rejection(&self) -> Option<Response> {
        let status = status_code(self.faults.reject_keys_with?);
        let message = match status {
            StatusCode::UNAUTHORIZED => "Invalid Credentials",
            StatusCode::FORBIDDEN => "You do not have permission to view this resource",
            _ => status.canonical_reason().unwrap_or_default(),
        };
        Some(error(status, message))
    }

    /// A 429 for this call, while the throttle lasts.
    pub(crate) fn throttling(&self, route: Option<Route>) -> Option<Response> {
        let throttle = self.faults.throttle.as_ref()?;
        if !throttle.paths.covers(route) || !self.throttled.fire_within(throttle.requests) {
            return None;
        }
        let seconds = throttle.retry_after_seconds.to_string();
        let status = StatusCode::TOO_MANY_REQUESTS;
        let headers = [
            (header::RETRY_AFTER, seconds.clone()),
            (HeaderName::from_static("x-ratelimit-remaining"), "0".into()),
            (HeaderName::from_static("x-ratelimit-reset"), seconds),
        ];
        let body = json!({"statusCode": status.as_u16(), "error": "Too Many Requests"});
        Some((status, headers, Json(body)).into_response())
    }

    /// True for the first `POST /vulns/export` while an identical export runs.
    pub(crate) fn claim_duplicate(&self) -> bool {
        self.duplicate_pending.swap(false, Ordering::Relaxed)
    }

    pub(crate) fn export_faults(&self, kind: ExportKind) -> ExportFaults {
        match kind {
            ExportKind::Vulns => ExportFaults {
                failed_chunks: self.faults.failed_chunks.clone(),
                error_after_chunks: self.faults.export_error_after_chunks,
            },
            ExportKind::Assets => ExportFaults::default(),
        }
    }

    pub(crate) fn chunk_delay(&self) -> Option<Duration> {
        self.faults.slow_chunks
    }

    /// The error a download of an available chunk answers instead of its records, if any.
    pub(crate) fn chunk_failure(&self, kind: ExportKind, chunk_id: u32) -> Option<Response> {
        if kind != ExportKind::Vulns {
            return None;
        }
        if self.faults.expired_chunks.contains(&chunk_id) {
            let message = format!("Chunk {chunk_id} not found or expired");
            return Some(error(StatusCode::NOT_FOUND, &message));
        }
        let errors = self.faults.server_errors.as_ref().filter(|errors| errors.chunk_ids.contains(&chunk_id))?;
        let mut served = lock(&self.server_errors_served);
        let served = served.entry(chunk_id).or_default();
        (*served < errors.times).then(|| {
            *served += 1;
            server_error(status_code(errors.status))
        })
    }

    /// The body of a vulns chunk, with the faults configured for it.
    pub(crate) fn vuln_chunk_body(&self, chunk_id: u32, mut records: Vec<Value>) -> Vec<u8> {
        let faults = &self.faults;
        if let Some(Value::Object(first)) = records.first_mut() {
            if faults.records_missing_asset_chunks.contains(&chunk_id) {
                first.remove("asset");
            }
            if let Some(bytes) = faults.huge_output_finding.filter(|_| chunk_id == 1) {
                first.insert("output".into(), json!(huge_output(bytes)));
            }
            if let Some(bytes) = faults.huge_text_finding.filter(|_| chunk_id == 1) {
                for (object, field) in [("plugin", "synopsis"), ("asset", "hostname")] {
                    if let Some(Value::Object(parent)) = first.get_mut(object) {
                        parent.insert(field.into(), json!(huge_output(bytes)));
                    }
                }
            }
        }
        let body = serde_json::to_vec(&records).unwrap_or_default();
        if faults.malformed_json_chunks.contains(&chunk_id) {
            // A body cut mid-stream, as a dropped connection or a truncating proxy produces.
            return body[..body.len() / 2].to_vec();
        }
        body
    }
}

/// 500 from Tenable itself; any other 5xx from the load balancer in front of it.
fn server_error(status: StatusCode) -> Response {
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        return error(status, "An unexpected error occurred");
    }
    load_balancer_error(status)
}

/// Tenable's 409 for an export identical to a running one. The message is the platform's;
/// `active_job_id` and `failure_reason` are the fields Tenable's own client, pyTenable, reads
/// to adopt the running export.
pub(crate) fn duplicate_export(running: Uuid) -> Response {
    let status = StatusCode::CONFLICT;
    let message = format!(
        "Duplicate export (job_uuid={running} container_uuid={CONTAINER_UUID}). not allowed. \
         Please modify request or wait until existing export is complete."
    );
    let body = json!({
        "statusCode": status.as_u16(),
        "error": "Conflict",
        "message": message,
        "active_job_id": running,
        "failure_reason": message,
    });
    (status, Json(body)).into_response()
}

/// Plugin output of exactly `bytes` bytes, as attacker-controlled as a service banner gets.
fn huge_output(bytes: usize) -> String {
    const MARKUP: &str = "<script>alert('output')</script>";
    const FILLER: &str = "\nService banner: <img src=x onerror=alert(1)> & \"quoted\" 'text'";
    text_of_length(bytes, MARKUP, FILLER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_output_is_exact_and_carries_markup() {
        let output = huge_output(1_048_576);
        assert_eq!(output.len(), 1_048_576);
        assert!(output.starts_with("<script>alert('output')</script>"));
    }

    #[test]
    fn throttled_paths_parse_and_cover_their_routes() {
        let paths: ThrottledPaths = "chunk-downloads".parse().expect("known");
        assert!(paths.covers(Some(Route::ChunkDownload)));
        assert!(!paths.covers(Some(Route::ExportStatus)));
        assert!(ThrottledPaths::All.covers(None));
        assert!("everything".parse::<ThrottledPaths>().is_err());
    }

    #[test]
    fn server_errors_stop_after_their_count_per_chunk() {
        let injector = FaultInjector::new(Faults {
            server_errors: Some(ServerErrors { status: 503, chunk_ids: vec![2], times: 2 }),
            ..Faults::default()
        });
        let statuses: Vec<Option<StatusCode>> =
            (0..3).map(|_| injector.chunk_failure(ExportKind::Vulns, 2).map(|response| response.status())).collect();
        let unavailable = Some(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(statuses, [unavailable, unavailable, None]);
        assert!(injector.chunk_failure(ExportKind::Vulns, 1).is_none());
        assert!(injector.chunk_failure(ExportKind::Assets, 2).is_none());
    }
}
