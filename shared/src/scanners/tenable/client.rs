//! Tenable Vulnerability Management, export API v2.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::errors::{Redactor, Result, ScannerResponse, SyncError};
use crate::model::{ExportKind, Severity};
use crate::scanner_network::ScannerHttp;
use crate::scanners::exchange::exchange;
use crate::scanners::{CallLimits, ExportRequest, ExportScanner, ExportStarted, ExportState, ExportStatus};

pub struct TenableClient {
    http: ScannerHttp,
    base_url: String,
    api_keys_header: String,
    redactor: Redactor,
    limits: CallLimits,
}

/// What a 429 without a usable `Retry-After` waits.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct ExportCreated {
    export_uuid: String,
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
    #[serde(default)]
    chunks_available: Vec<u32>,
    #[serde(default)]
    chunks_failed: Vec<u32>,
    #[serde(default)]
    total_chunks: u64,
}

impl TenableClient {
    pub fn new(http: ScannerHttp, base_url: &str, access_key: &str, secret_key: &str, limits: CallLimits) -> Self {
        TenableClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_keys_header: format!("accessKey={access_key};secretKey={secret_key}"),
            redactor: Redactor::new([access_key.to_string(), secret_key.to_string()]),
            limits,
        }
    }

    /// Sends a request, waiting out rate limits as long as Tenable's `Retry-After` asks
    /// while the budget lasts: a throttled call is the API working as designed.
    async fn call(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Result<Vec<u8>> {
        let mut waited = Duration::ZERO;
        loop {
            match self.call_once(method.clone(), path, body.clone()).await {
                Err(SyncError::ScannerUnavailable { reason, response: Some(response) }) if response.status == 429 => {
                    let retry_after = retry_after(&response).unwrap_or(DEFAULT_RETRY_AFTER);
                    if waited + retry_after > self.limits.throttle_budget {
                        return Err(SyncError::ScannerUnavailable {
                            reason: format!("{reason}; gave up after waiting {}s for the rate limit", waited.as_secs()),
                            response: Some(response),
                        });
                    }
                    tracing::info!(path, retry_after_seconds = retry_after.as_secs(), "throttled by Tenable: waiting");
                    tokio::time::sleep(retry_after).await;
                    waited += retry_after;
                }
                other => return other,
            }
        }
    }

    /// Sends one request and sorts the failures into what the pipeline acts on.
    async fn call_once(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.request(method.clone(), &url).header("X-ApiKeys", &self.api_keys_header);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = exchange(&self.http, request, (&method, path), &self.limits, &self.redactor).await?;
        let status = answer.status;
        if status.is_success() {
            return Ok(answer.body);
        }
        let recorded = answer.recorded(&self.redactor);
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => SyncError::Credentials { response: recorded },
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => SyncError::ScannerUnavailable {
                reason: format!("{method} {path} was throttled (HTTP {})", status.as_u16()),
                response: Some(recorded),
            },
            _ if status.is_server_error() => SyncError::ScannerUnavailable {
                reason: format!("{method} {path} answered HTTP {}", status.as_u16()),
                response: Some(recorded),
            },
            _ => SyncError::ScannerRejected {
                reason: format!("{method} {path} answered HTTP {}", status.as_u16()),
                response: Some(recorded),
            },
        })
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, path: &str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| SyncError::ScannerRejected {
            reason: format!("{path} answered something that is not the expected JSON: {e}"),
            response: Some(self.redactor.response(200, [], &String::from_utf8_lossy(bytes))),
        })
    }
}

fn retry_after(response: &ScannerResponse) -> Option<Duration> {
    response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, value)| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The uuid of the running export a 409 names: `active_job_id` (what Tenable's own
/// client reads), else the first uuid in the message ("Duplicate export (job_uuid=...").
fn running_export_uuid(body: &str) -> Option<String> {
    if let Some(uuid) = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|json| {
        json.get("active_job_id").or_else(|| json.get("export_uuid")).and_then(|v| v.as_str()).map(String::from)
    }) {
        return Some(uuid);
    }
    body.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')).find(|word| is_uuid(word)).map(String::from)
}

fn is_uuid(word: &str) -> bool {
    let groups: Vec<&str> = word.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

#[async_trait]
impl ExportScanner for TenableClient {
    async fn check_access(&self) -> Result<()> {
        self.call(Method::GET, "/session", None).await.map(|_| ())
    }

    async fn request_export(&self, request: &ExportRequest) -> Result<ExportStarted> {
        let mut filters = serde_json::Map::new();
        for tag in &request.tags {
            filters.insert(format!("tag.{}", tag.category), json!(tag.values));
        }
        let (path, body) = match request.kind {
            ExportKind::Vulns => {
                let mut states = vec!["OPEN", "REOPENED"];
                if request.include_fixed {
                    states.push("FIXED");
                }
                filters.insert("since".into(), json!(request.since));
                filters.insert("state".into(), json!(states));
                if !request.severities.is_empty() {
                    let names: Vec<&str> = request.severities.iter().map(|s| severity_name(*s)).collect();
                    filters.insert("severity".into(), json!(names));
                }
                ("/vulns/export", json!({ "num_assets": request.assets_per_chunk, "filters": filters }))
            }
            ExportKind::Assets => {
                if request.since > 0 {
                    filters.insert("updated_at".into(), json!(request.since));
                }
                // Tenable wants at least 100 assets per asset-export chunk.
                let chunk_size = request.assets_per_chunk.max(100);
                ("/assets/export", json!({ "chunk_size": chunk_size, "filters": filters }))
            }
        };
        match self.call(Method::POST, path, Some(body)).await {
            Ok(bytes) => {
                let created: ExportCreated = self.parse(path, &bytes)?;
                Ok(ExportStarted { export_uuid: created.export_uuid, adopted: false })
            }
            // An identical export is already running (an earlier attempt of ours, or
            // another client): Tenable refuses a second one, so take it over.
            Err(SyncError::ScannerRejected { response: Some(response), reason }) if response.status == 409 => {
                match running_export_uuid(&response.body) {
                    Some(export_uuid) => {
                        tracing::info!(export_uuid, "adopting the identical export Tenable is already running");
                        Ok(ExportStarted { export_uuid, adopted: true })
                    }
                    None => Err(SyncError::ScannerRejected {
                        reason: format!("{reason}: an identical export is running and its id is not in the answer"),
                        response: Some(response),
                    }),
                }
            }
            Err(other) => Err(other),
        }
    }

    async fn export_status(&self, kind: ExportKind, export_uuid: &str) -> Result<ExportStatus> {
        let path = format!("/{}/export/{export_uuid}/status", kind.as_str());
        let bytes = self.call(Method::GET, &path, None).await?;
        let body: StatusBody = self.parse(&path, &bytes)?;
        let state = match body.status.as_str() {
            "QUEUED" => ExportState::Queued,
            "PROCESSING" => ExportState::Processing,
            "FINISHED" => ExportState::Finished,
            "CANCELLED" => ExportState::Cancelled,
            "ERROR" => ExportState::Error,
            other => {
                return Err(SyncError::ScannerRejected {
                    reason: format!("{path} reported an unknown export status {other:?}"),
                    response: None,
                });
            }
        };
        Ok(ExportStatus {
            concurrency_limit: None,
            state,
            chunks_available: body.chunks_available,
            chunks_failed: body.chunks_failed,
            total_chunks: body.total_chunks,
        })
    }

    async fn download_chunk(&self, kind: ExportKind, export_uuid: &str, chunk_id: u32) -> Result<Vec<u8>> {
        let path = format!("/{}/export/{export_uuid}/chunks/{chunk_id}", kind.as_str());
        self.call(Method::GET, &path, None).await.map_err(|error| match error {
            SyncError::ScannerRejected { response: Some(response), .. } if response.status == 404 => {
                SyncError::ScannerRejected {
                    reason: format!(
                        "chunk {chunk_id} of export {export_uuid} is gone (HTTP 404): Tenable keeps chunks about 24 hours"
                    ),
                    response: Some(response),
                }
            }
            other => other,
        })
    }
}
