//! Tenable Vulnerability Management, export API v2.

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{ExportRequest, ExportScanner, ExportState, ExportStatus};
use crate::errors::{Redactor, Result, SyncError};
use crate::model::{ExportKind, TenableCredentials};

pub struct TenableClient {
    http: reqwest::Client,
    base_url: String,
    api_keys_header: String,
    redactor: Redactor,
}

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
    pub fn new(http: reqwest::Client, base_url: &str, credentials: TenableCredentials) -> Self {
        TenableClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_keys_header: format!("accessKey={};secretKey={}", credentials.access_key, credentials.secret_key),
            redactor: Redactor::new([credentials.access_key, credentials.secret_key]),
        }
    }

    /// Sends one request and sorts the failures into what the pipeline acts on.
    async fn call(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.request(method.clone(), &url).header("X-ApiKeys", &self.api_keys_header);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| SyncError::ScannerUnavailable {
            reason: self.redactor.text(&format!("{method} {path} did not get an answer: {}", error_chain(&e))),
            response: None,
        })?;
        let status = response.status();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("<binary>").to_string()))
            .collect();
        let bytes = response.bytes().await.map_err(|e| SyncError::ScannerUnavailable {
            reason: format!("{method} {path}: the answer broke off: {}", error_chain(&e)),
            response: None,
        })?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let recorded = self.redactor.response(
            status.as_u16(),
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            &String::from_utf8_lossy(&bytes),
        );
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

/// The error and its sources, so "error sending request" says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl ExportScanner for TenableClient {
    async fn check_access(&self) -> Result<()> {
        self.call(Method::GET, "/session", None).await.map(|_| ())
    }

    async fn request_export(&self, request: &ExportRequest) -> Result<String> {
        let (path, body) = match request.kind {
            ExportKind::Vulns => {
                let mut states = vec!["OPEN", "REOPENED"];
                if request.include_fixed {
                    states.push("FIXED");
                }
                let filters = json!({ "since": request.since, "state": states });
                ("/vulns/export", json!({ "num_assets": request.assets_per_chunk, "filters": filters }))
            }
            ExportKind::Assets => {
                ("/assets/export", json!({ "chunk_size": request.assets_per_chunk, "filters": { "updated_at": request.since } }))
            }
        };
        let bytes = self.call(Method::POST, path, Some(body)).await?;
        let created: ExportCreated = self.parse(path, &bytes)?;
        Ok(created.export_uuid)
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
