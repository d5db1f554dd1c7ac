//! Scanner clients. Each scanner's API is reached through [`ExportScanner`]: the
//! pipeline asks for an export, polls it, and downloads its chunks, whatever the
//! scanner calls those steps.

mod exchange;
pub mod qualys;
pub mod tenable;

use std::time::Duration;

use async_trait::async_trait;

use crate::errors::{Result, SyncError};
use crate::model::{Connector, ExportKind, NormalizedRecord, ScannerCredentials, ScannerKind, Severity, TagFilter};
use crate::normalize::{ChunkError, NormalizedAsset};
use crate::scanner_network::ScannerHttp;

/// The state of an export on the scanner's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportState {
    Queued,
    Processing,
    Finished,
    Cancelled,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportStatus {
    pub state: ExportState,
    pub chunks_available: Vec<u32>,
    pub chunks_failed: Vec<u32>,
    /// Known only once the export finished.
    pub total_chunks: u64,
    /// How many calls the scanner serves at once, when it says (Qualys'
    /// `X-Concurrency-Limit-Limit`): the chunks fetched at once stay within it.
    pub concurrency_limit: Option<u32>,
}

/// What to export: the filters the sync mode asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub kind: ExportKind,
    /// Records changed at or after this unix time. A full sync sends 0: without an
    /// explicit time filter Tenable returns only the last 30 days.
    pub since: i64,
    /// Include fixed findings, which close stored ones. Without a state filter Tenable
    /// returns only open and reopened findings.
    pub include_fixed: bool,
    /// Assets per chunk.
    pub assets_per_chunk: u32,
    /// Only findings of these severities; all when empty.
    pub severities: Vec<Severity>,
    /// Only assets with these tags; all when empty.
    pub tags: Vec<TagFilter>,
}

/// An export the scanner is preparing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportStarted {
    pub export_uuid: String,
    /// The scanner was already running an identical export and we took it over.
    pub adopted: bool,
}

#[async_trait]
pub trait ExportScanner: Send + Sync {
    /// A cheap authenticated call that proves the keys and the URL work.
    async fn check_access(&self) -> Result<()>;
    async fn request_export(&self, request: &ExportRequest) -> Result<ExportStarted>;
    async fn export_status(&self, kind: ExportKind, export_uuid: &str) -> Result<ExportStatus>;
    async fn download_chunk(&self, kind: ExportKind, export_uuid: &str, chunk_id: u32) -> Result<Vec<u8>>;
    /// What a downloaded chunk refers to but does not hold, which its normalizer needs,
    /// gathered once when the chunk is fetched so that normalizing calls no scanner and
    /// a retried normalize reads the very same facts. Qualys detections name QIDs whose
    /// titles and CVEs are in its KnowledgeBase; Tenable's chunks are whole (None).
    /// `cache` keeps what earlier chunks and syncs gathered.
    async fn chunk_reference(
        &self,
        _kind: ExportKind,
        _chunk: &[u8],
        _cache: &dyn ReferenceCache,
    ) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

/// A connector's store of reference facts between syncs, by the scanner's own names.
#[async_trait]
pub trait ReferenceCache: Send + Sync {
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>>;
    async fn put(&self, name: &str, body: Vec<u8>) -> Result<()>;
}

/// What one scanner call may spend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallLimits {
    /// How long it may wait out the scanner's rate limit (its `Retry-After`) before it fails.
    pub throttle_budget: Duration,
    /// The largest answer it reads: a larger chunk fails with a clear error instead of
    /// the function running out of memory.
    pub max_answer_bytes: usize,
}

impl CallLimits {
    /// The answer bound for a function of `memory_mb`: a quarter of its memory, which
    /// leaves room for the answer's copy on its way to S3 and for the runtime.
    pub fn for_memory(throttle_budget: Duration, memory_mb: u64) -> Self {
        let max_answer_bytes = usize::try_from(memory_mb.saturating_mul(1024 * 1024) / 4).unwrap_or(usize::MAX);
        CallLimits { throttle_budget, max_answer_bytes }
    }
}

/// The fields a connector of `kind` is created with, as the API names them: the
/// credentials its scanner's API takes. Both are kept in the connector's secret.
pub fn credential_fields(kind: ScannerKind) -> [&'static str; 2] {
    match kind {
        ScannerKind::Tenable => ["access_key", "secret_key"],
        ScannerKind::Qualys => ["username", "password"],
    }
}

/// The credentials of a connector of `kind`, from the values of its
/// [`credential_fields`], in their order.
pub fn credentials(kind: ScannerKind, first: String, second: String) -> ScannerCredentials {
    match kind {
        ScannerKind::Tenable => ScannerCredentials::ApiKeys { access_key: first, secret_key: second },
        ScannerKind::Qualys => ScannerCredentials::Login { username: first, password: second },
    }
}

/// The client for a connector's scanner, with the credentials its secret holds.
pub fn connect(
    connector: &Connector,
    credentials: ScannerCredentials,
    http: &ScannerHttp,
    limits: CallLimits,
) -> Result<Box<dyn ExportScanner>> {
    match (connector.kind, credentials) {
        (ScannerKind::Tenable, ScannerCredentials::ApiKeys { access_key, secret_key }) => Ok(Box::new(
            tenable::client::TenableClient::new(http.clone(), &connector.base_url, &access_key, &secret_key, limits),
        )),
        (ScannerKind::Qualys, ScannerCredentials::Login { username, password }) => Ok(Box::new(
            qualys::client::QualysClient::new(http.clone(), &connector.base_url, &username, &password, limits),
        )),
        (kind, _) => Err(SyncError::InvalidRequest(format!(
            "the secret {} does not hold {} credentials ({}): give them with PATCH /connectors/{}",
            connector.secret_id,
            kind.as_str(),
            credential_fields(kind).join(" and "),
            connector.connector_id
        ))),
    }
}

/// A scanner's normalizer of raw chunks: each record mapped onto the model and handed
/// to `keep` in the chunk's order, so that no chunk is held whole. Stops at the first
/// unusable record, naming it.
pub trait ChunkNormalizer: Send + Sync {
    /// `reference` is what [`ExportScanner::chunk_reference`] gathered for the chunk.
    fn findings(
        &self,
        raw: &[u8],
        reference: Option<&[u8]>,
        keep: &mut dyn FnMut(NormalizedRecord) -> Result<(), ChunkError>,
    ) -> Result<u64, ChunkError>;
    fn assets(
        &self,
        raw: &[u8],
        keep: &mut dyn FnMut(NormalizedAsset) -> Result<(), ChunkError>,
    ) -> Result<u64, ChunkError>;
}

/// The normalizer of `kind`'s chunks.
pub fn normalizer(kind: ScannerKind) -> &'static dyn ChunkNormalizer {
    match kind {
        ScannerKind::Tenable => &tenable::normalize::TenableNormalizer,
        ScannerKind::Qualys => &qualys::normalize::QualysNormalizer,
    }
}
