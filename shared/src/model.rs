//! The domain model: connectors, sync jobs and their stages, and the normalized
//! assets and findings every scanner is mapped onto.
//!
//! The serde form of [`Finding`] is the public data contract (README, "The finding
//! record"): `vulnflow normalize` prints it, normalized chunks in S3 hold it, and the
//! findings table stores it. Add fields; never rename or remove one.

mod seen;

pub use seen::SeenAssets;

use crate::usage::Usage;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which scanner a connector talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum ScannerKind {
    Tenable,
    /// Qualys VMDR.
    Qualys,
}

impl ScannerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScannerKind::Tenable => "tenable",
            ScannerKind::Qualys => "qualys",
        }
    }
}

/// A configured link to one scanner tenant. The credentials live in Secrets Manager;
/// the connector only names the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    pub connector_id: String,
    pub name: String,
    pub kind: ScannerKind,
    /// Scanner API root, e.g. `https://cloud.tenable.com`.
    pub base_url: String,
    /// Name or ARN of the Secrets Manager secret holding the API keys.
    pub secret_id: String,
    pub default_mode: SyncMode,
    /// Where the next incremental sync starts (unix seconds): the start of the last
    /// sync that processed every chunk. Absent until then, and an incremental sync
    /// without it runs as a full one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_cursor: Option<i64>,
}

/// A connector as the control plane keeps it: the connector the pipeline reads, and
/// what only the API manages. One item of the connectors table; a connector put there
/// by hand reads as a record with no schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorRecord {
    #[serde(flatten)]
    pub connector: Connector,
    /// Hours between two scheduled syncs (1 to 168); none: scheduled syncs are off.
    /// Stored as null rather than left out, so that an update turns the schedule off.
    #[serde(default)]
    pub schedule_hours: Option<u32>,
    /// The longest a sync of this connector may run (1 to 1440 minutes): past it, the
    /// sync fetches nothing more and ends PAUSED, keeping what it processed. None: no limit.
    #[serde(default)]
    pub sync_window_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// The last sync started through vulnflow (the API or the scheduler): it marks the
    /// connector busy between claiming it and creating the sync's job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_claim: Option<SyncClaim>,
}

impl From<Connector> for ConnectorRecord {
    fn from(connector: Connector) -> Self {
        ConnectorRecord {
            connector,
            schedule_hours: None,
            sync_window_minutes: None,
            created_at: None,
            updated_at: None,
            sync_claim: None,
        }
    }
}

/// A sync the API started on a connector: its job id (the execution's name) and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncClaim {
    pub job_id: String,
    pub claimed_at: DateTime<Utc>,
}

/// What a connector's secret holds: the credentials its scanner's API takes, stored as
/// the JSON object of their fields. `Debug` never prints them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScannerCredentials {
    /// An API key pair (Tenable).
    ApiKeys { access_key: String, secret_key: String },
    /// An API user's login (Qualys).
    Login { username: String, password: String },
}

impl ScannerCredentials {
    /// Every value to keep out of logs, errors and answers.
    pub fn values(&self) -> [String; 2] {
        match self {
            ScannerCredentials::ApiKeys { access_key, secret_key } => [access_key.clone(), secret_key.clone()],
            ScannerCredentials::Login { username, password } => [username.clone(), password.clone()],
        }
    }
}

impl fmt::Debug for ScannerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScannerCredentials { <redacted> }")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum SyncMode {
    #[default]
    Full,
    Incremental,
    AssetsOnly,
    VulnsOnly,
}

impl SyncMode {
    /// The exports a sync of this mode asks for, in order: assets first, so that a
    /// finding's asset is stored by the time the finding is.
    pub fn export_kinds(self) -> &'static [ExportKind] {
        match self {
            SyncMode::Full | SyncMode::Incremental => &[ExportKind::Assets, ExportKind::Vulns],
            SyncMode::AssetsOnly => &[ExportKind::Assets],
            SyncMode::VulnsOnly => &[ExportKind::Vulns],
        }
    }
}

/// What a manual sync may narrow its export to. An empty scope asks for everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncScope {
    /// Only records seen or changed at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severities: Vec<Severity>,
    /// Tenable tags: category and accepted values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagFilter>,
}

impl SyncScope {
    pub fn is_everything(&self) -> bool {
        self == &SyncScope::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagFilter {
    pub category: String,
    pub values: Vec<String>,
}

/// Who or what started a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    Manual { by: String },
    Scheduled,
}

impl Trigger {
    pub fn kind(&self) -> TriggerKind {
        match self {
            Trigger::Manual { .. } => TriggerKind::Manual,
            Trigger::Scheduled => TriggerKind::Scheduled,
        }
    }
}

/// A trigger without who pulled it: what a sync history is filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum TriggerKind {
    Manual,
    Scheduled,
}

/// The data lifecycle stages, in the order a sync passes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "PascalCase"))]
pub enum Stage {
    Initiating,
    ConnectivityTest,
    Fetching,
    Normalizing,
    Processing,
    Finalizing,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Initiating,
        Stage::ConnectivityTest,
        Stage::Fetching,
        Stage::Normalizing,
        Stage::Processing,
        Stage::Finalizing,
    ];

    /// The stable name used as the key in stored records.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Initiating => "Initiating",
            Stage::ConnectivityTest => "ConnectivityTest",
            Stage::Fetching => "Fetching",
            Stage::Normalizing => "Normalizing",
            Stage::Processing => "Processing",
            Stage::Finalizing => "Finalizing",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's status, in the words users know from the peers' sync history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "SCREAMING_SNAKE_CASE"))]
pub enum JobStatus {
    Started,
    /// A parent waiting on child work (the chunk map).
    Delegated,
    Finished,
    /// Authentication failed: check the keys, their scope and permissions.
    CredentialError,
    /// Authenticated, but the scanner's API failed or sent data we cannot use.
    ApiError,
    /// Our own fault.
    GenericError,
    Cancelled,
    Paused,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Started | JobStatus::Delegated)
    }

    /// How serious the log entry is that says a sync ended in this status.
    pub fn end_log_level(self) -> LogLevel {
        match self {
            JobStatus::Finished => LogLevel::Info,
            JobStatus::Cancelled | JobStatus::Paused => LogLevel::Warn,
            _ => LogLevel::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Started => "STARTED",
            JobStatus::Delegated => "DELEGATED",
            JobStatus::Finished => "FINISHED",
            JobStatus::CredentialError => "CREDENTIAL_ERROR",
            JobStatus::ApiError => "API_ERROR",
            JobStatus::GenericError => "GENERIC_ERROR",
            JobStatus::Cancelled => "CANCELLED",
            JobStatus::Paused => "PAUSED",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageOutcome {
    Running,
    Succeeded,
    Failed,
    /// The sync was cancelled while the stage ran.
    Cancelled,
    /// The connector's sync window ended while the stage ran.
    Paused,
}

impl StageOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StageOutcome::Running => "running",
            StageOutcome::Succeeded => "succeeded",
            StageOutcome::Failed => "failed",
            StageOutcome::Cancelled => "cancelled",
            StageOutcome::Paused => "paused",
        }
    }
}

/// One stage's timing on a job. Chunk stages (fetching, normalizing, processing) run
/// once per chunk: `started_at` is the first chunk's start, `ended_at` the last one's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRun {
    pub outcome: StageOutcome,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

impl StageRun {
    pub fn duration_ms(&self) -> Option<i64> {
        self.ended_at.map(|end| (end - self.started_at).num_milliseconds())
    }
}

/// How serious an entry of a job's log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

/// Chunk counts of a job: what the progress bar and the ETA are computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkCounts {
    pub total: u64,
    /// Processed by this job, or carried over from the job it resumed.
    pub processed: u64,
    pub failed: u64,
    /// Of the processed, those an earlier job of the same sync had processed: a resumed
    /// sync takes them over instead of fetching them again.
    #[serde(default)]
    pub carried_over: u64,
    /// Of the processed, those that failed before an attempt succeeded.
    #[serde(default)]
    pub retried: u64,
}

impl ChunkCounts {
    /// The counts a job ends with. The chunk records are the truth, whatever the map's
    /// own status says; a chunk that never got a record still counts as not processed.
    pub fn settled(announced_total: u64, chunks: &[ChunkRecord]) -> ChunkCounts {
        let processed = chunks.iter().filter(|c| c.status == ChunkStatus::Processed).count() as u64;
        let carried_over = chunks.iter().filter(|c| c.carried_from.is_some()).count() as u64;
        let retried =
            chunks.iter().filter(|c| c.status == ChunkStatus::Processed && c.failed_attempts > 0).count() as u64;
        let total = announced_total.max(chunks.len() as u64);
        ChunkCounts { total, processed, failed: total - processed, carried_over, retried }
    }
}

/// What processing did to the stored findings and assets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Finding records received from the scanner.
    pub findings_received: u64,
    /// Asset records received from the scanner's asset export.
    #[serde(default)]
    pub assets_received: u64,
    pub findings_new: u64,
    pub findings_updated: u64,
    pub findings_unchanged: u64,
    pub findings_reopened: u64,
    pub findings_fixed: u64,
    pub assets_new: u64,
    pub assets_updated: u64,
    /// Stored findings a full sync no longer returned: now inactive.
    #[serde(default)]
    pub findings_inactivated: u64,
}

impl RecordCounts {
    pub fn add(&mut self, other: &RecordCounts) {
        self.findings_received += other.findings_received;
        self.assets_received += other.assets_received;
        self.findings_new += other.findings_new;
        self.findings_updated += other.findings_updated;
        self.findings_unchanged += other.findings_unchanged;
        self.findings_reopened += other.findings_reopened;
        self.findings_fixed += other.findings_fixed;
        self.assets_new += other.assets_new;
        self.assets_updated += other.assets_updated;
        self.findings_inactivated += other.findings_inactivated;
    }

    /// Every counter by its stored name, for stores that add them field by field.
    pub fn fields(&self) -> [(&'static str, u64); 10] {
        [
            ("findings_received", self.findings_received),
            ("assets_received", self.assets_received),
            ("findings_new", self.findings_new),
            ("findings_updated", self.findings_updated),
            ("findings_unchanged", self.findings_unchanged),
            ("findings_reopened", self.findings_reopened),
            ("findings_fixed", self.findings_fixed),
            ("assets_new", self.assets_new),
            ("assets_updated", self.assets_updated),
            ("findings_inactivated", self.findings_inactivated),
        ]
    }
}

/// Why a job failed, in words a security engineer can act on. Secrets are redacted
/// before a `JobFailure` is built (see `errors::Redactor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFailure {
    pub status: JobStatus,
    pub stage: Stage,
    /// The stable error name, as the state machine saw it (e.g. `Vulnflow.MalformedChunk`).
    pub error: String,
    pub message: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The scanner's answer (status, headers, body excerpt), secrets redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// An export the job requested from the scanner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRef {
    pub kind: ExportKind,
    pub export_uuid: String,
    pub requested_at: DateTime<Utc>,
    /// The `since` filter sent (unix seconds): 0 for everything.
    #[serde(default)]
    pub since: i64,
    /// True when the scanner already ran an identical export and vulnflow adopted it.
    #[serde(default)]
    pub adopted: bool,
    /// The earlier job of the same sync that requested this export: a resumed sync takes
    /// it up again, with the chunks that job processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    Vulns,
    Assets,
}

impl ExportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportKind::Vulns => "vulns",
            ExportKind::Assets => "assets",
        }
    }

    /// The job's name for one chunk of this export: `vulns-00003`.
    pub fn chunk_key(self, chunk_id: u32) -> String {
        format!("{}-{chunk_id:05}", self.as_str())
    }
}

/// One sync run of one connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncJob {
    pub job_id: String,
    pub connector_id: String,
    pub mode: SyncMode,
    #[serde(default, skip_serializing_if = "SyncScope::is_everything")]
    pub scope: SyncScope,
    pub trigger: Trigger,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_stage: Option<Stage>,
    #[serde(default)]
    pub stages: BTreeMap<Stage, StageRun>,
    #[serde(default)]
    pub chunks: ChunkCounts,
    #[serde(default)]
    pub counts: RecordCounts,
    /// The exports requested so far, in order.
    #[serde(default)]
    pub exports: Vec<ExportRef>,
    /// The exports whose chunks `chunks.total` counts (Tenable tells an export's chunks
    /// only once it finished). Written by the store as they are counted, never whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counted_exports: Vec<ExportKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
    /// The last failure the state machine may still cure by retrying. It becomes the
    /// job's failure only if the retries run out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_retryable_failure: Option<JobFailure>,
    /// The ended job this one took up again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
    /// The earlier jobs of the same sync, nearest first, whose processed chunks count as
    /// this job's: empty unless a resumed sync could take up where they stopped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carries_from: Vec<String>,
    /// Why a resumed job could carry nothing over and started over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_over_because: Option<String>,
    /// When the connector's sync window ends: past it, the sync fetches nothing more and
    /// ends PAUSED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ends_at: Option<DateTime<Utc>>,
    /// The deployment (CloudFormation stack) whose functions ran the job.
    pub deployment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    /// What the sync consumed so far, as its stages measured it.
    #[serde(default)]
    pub usage: Usage,
    /// How far finalize's sweep for assets the sync did not see has come (full syncs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepMark>,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

/// How far finalize's sweep of a connector's assets has come. Kept as one string
/// (`after:<asset id>` or `done`) so that a store can compare it in a condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum SweepMark {
    /// Swept through this asset id: the next page starts after it.
    After(String),
    Done,
}

impl From<SweepMark> for String {
    fn from(mark: SweepMark) -> String {
        match mark {
            SweepMark::After(asset_id) => format!("after:{asset_id}"),
            SweepMark::Done => "done".to_string(),
        }
    }
}

impl TryFrom<String> for SweepMark {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Self, String> {
        match text.strip_prefix("after:") {
            Some(asset_id) => Ok(SweepMark::After(asset_id.to_string())),
            None if text == "done" => Ok(SweepMark::Done),
            None => Err(format!("`{text}` is not a sweep mark (after:<asset id> or done)")),
        }
    }
}

impl SyncJob {
    /// A job that has just started: no stage run yet, nothing counted, no export.
    pub fn started(
        job_id: &str,
        connector_id: &str,
        mode: SyncMode,
        trigger: Trigger,
        deployment: &str,
        at: DateTime<Utc>,
    ) -> Self {
        SyncJob {
            job_id: job_id.to_string(),
            connector_id: connector_id.to_string(),
            mode,
            scope: SyncScope::default(),
            trigger,
            status: JobStatus::Started,
            current_stage: None,
            stages: BTreeMap::new(),
            chunks: ChunkCounts::default(),
            counts: RecordCounts::default(),
            exports: Vec::new(),
            counted_exports: Vec::new(),
            failure: None,
            last_retryable_failure: None,
            resumed_from: None,
            carries_from: Vec::new(),
            starts_over_because: None,
            window_ends_at: None,
            deployment: deployment.to_string(),
            execution_arn: None,
            usage: Usage::default(),
            sweep: None,
            started_at: at,
            ended_at: None,
        }
    }

    /// The most serious level in the job's log, from the job record alone (so that a
    /// history filters on it without reading chunk records): errors for a failure, failed
    /// chunks or an error status; warnings for retries, a resume that started over, a
    /// cancel or a pause. A chunk failing while the sync runs counts once the sync retries
    /// it successfully or ends.
    pub fn log_level(&self) -> LogLevel {
        let ended = self.ended_at.map_or(LogLevel::Info, |_| self.status.end_log_level());
        let failed = self.failure.is_some() || self.chunks.failed > 0;
        let warned = self.chunks.retried > 0
            || self.retrying_failure().is_some()
            || (self.resumed_from.is_some() && self.starts_over_because.is_some());
        let level = match (failed, warned) {
            (true, _) => LogLevel::Error,
            (false, true) => LogLevel::Warn,
            (false, false) => LogLevel::Info,
        };
        level.max(ended)
    }

    /// A failure a retry may still cure, unless it became the job's failure.
    pub fn retrying_failure(&self) -> Option<&JobFailure> {
        self.last_retryable_failure.as_ref().filter(|kept| self.failure.as_ref() != Some(*kept))
    }

    /// Whether `chunks.total` is the sync's whole: the job ended, or every export its
    /// mode asks for has had its chunks counted.
    pub fn chunk_total_is_final(&self) -> bool {
        self.status.is_terminal() || self.mode.export_kinds().iter().all(|kind| self.counted_exports.contains(kind))
    }

    /// The last stage the sync started: how far it got.
    pub fn stage_reached(&self) -> Option<Stage> {
        self.stages.keys().next_back().copied()
    }

    pub fn duration_ms(&self) -> Option<i64> {
        self.ended_at.map(|end| (end - self.started_at).num_milliseconds())
    }

    /// The time the job's data is complete up to: its start, or the request of an older
    /// export that a resumed sync took up. The next incremental sync starts here.
    pub fn data_as_of(&self) -> DateTime<Utc> {
        self.exports.iter().map(|export| export.requested_at).fold(self.started_at, DateTime::min)
    }

    /// The jobs whose chunks make up this one's data: itself and those it carries from.
    pub fn sync_job_ids(&self) -> Vec<String> {
        std::iter::once(self.job_id.clone()).chain(self.carries_from.iter().cloned()).collect()
    }

    /// The jobs whose work on the export of `kind` is this job's too: itself, and the
    /// jobs it carries chunks from when it took that export up from them. (A resumed
    /// job that had to request the export anew saw its data alone.)
    pub fn jobs_of_export(&self, kind: ExportKind) -> Vec<String> {
        let taken_up = self.exports.iter().any(|export| export.kind == kind && export.resumed_from.is_some());
        if taken_up { self.sync_job_ids() } else { vec![self.job_id.clone()] }
    }

    /// Whether the sync sees every finding the scanner has (a full or vulns-only sync
    /// without a scope), so that a stored finding it does not return is gone.
    pub fn sees_every_finding(&self) -> bool {
        self.scope.is_everything() && matches!(self.mode, SyncMode::Full | SyncMode::VulnsOnly)
    }
}

/// Where a chunk is in the pipeline. A chunk counts as processed only once its
/// findings are all stored: the status moves to `Processed` in the same transaction
/// that adds its counts to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkStatus {
    Fetched,
    Normalized,
    Processed,
    Failed,
}

/// The job's record of one chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub job_id: String,
    /// `<export kind>-<chunk id, zero-padded>`, e.g. `vulns-00003`.
    pub chunk_key: String,
    pub status: ChunkStatus,
    /// Attempts that failed; a processed chunk with failed attempts was retried.
    #[serde(default)]
    pub failed_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalized_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Why the last failed attempt failed, as the job would show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<JobFailure>,
    /// True once a chunk succeeded after a failed attempt: shown as retried, not as an error.
    #[serde(default)]
    pub retried: bool,
    /// The earlier job of the same sync that processed this chunk, when a resumed sync
    /// carried it over instead of fetching it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_from: Option<String>,
    /// The assets a processed vulns chunk returned: finalize's sweep looks for the
    /// stored assets that none of the sync's chunks did.
    #[serde(default, skip_serializing_if = "SeenAssets::is_empty")]
    pub seen_assets: SeenAssets,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum), value(rename_all = "snake_case"))]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingState {
    Open,
    Reopened,
    Fixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OsCategory {
    WindowsServer,
    WindowsWorkstation,
    Linux,
    Macos,
    NetworkDevice,
    Other,
}

/// A host as the scanner knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    pub asset_id: String,
    pub source: ScannerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system: Option<String>,
    pub os_category: OsCategory,
}

/// One vulnerability on one asset, on one port and protocol: the public data contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `<source>/<asset_id>/<plugin_id>/<port>/<protocol>`: asset + plugin alone would
    /// merge distinct findings of one plugin on two ports.
    pub finding_id: String,
    pub source: ScannerKind,
    pub asset_id: String,
    pub plugin_id: String,
    pub port: u16,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub severity: Severity,
    pub state: FindingState,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss3_base_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpr_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synopsis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution: Option<String>,
    /// The plugin output, markup escaped and cut for display; the whole text stays in
    /// the raw chunk in S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default)]
    pub output_truncated: bool,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fixed: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    pub os_category: OsCategory,
}

impl Finding {
    pub fn key(source: ScannerKind, asset_id: &str, plugin_id: &str, port: u16, protocol: &str) -> String {
        format!("{}/{asset_id}/{plugin_id}/{port}/{protocol}", source.as_str())
    }
}

/// A normalized record: the finding and the asset it was seen on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizedRecord {
    pub finding: Finding,
    pub asset: Asset,
}
