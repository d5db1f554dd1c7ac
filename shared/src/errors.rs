//! Typed errors, and the ONE place they become what the outside sees: the stable
//! error names the state machine's Retry and Catch match, the job status users read,
//! and the recommended action.

use serde::Serialize;
use serde_json::json;

use crate::model::JobStatus;

/// The error names the functions report to Step Functions. `statemachine/sync.asl.json`
/// matches exactly these; a test checks that it names no other.
pub mod error_names {
    /// The scanner rejected the API keys. Never retried.
    pub const CREDENTIAL_ERROR: &str = "Vulnflow.CredentialError";
    /// The scanner timed out, throttled or answered 5xx. Retried with backoff.
    pub const SCANNER_UNAVAILABLE: &str = "Vulnflow.ScannerUnavailable";
    /// The scanner answered, but with an error a retry will not fix (export ERROR,
    /// expired chunk, 4xx).
    pub const SCANNER_ERROR: &str = "Vulnflow.ScannerError";
    /// A chunk the scanner sent cannot be read. Never retried: the same bytes fail again.
    pub const MALFORMED_CHUNK: &str = "Vulnflow.MalformedChunk";
    /// The request to the function is wrong (unknown connector, bad event), or its
    /// connector is (a base_url the deployment refuses).
    pub const INVALID_REQUEST: &str = "Vulnflow.InvalidRequest";
    /// What the request names does not exist (a connector, a job).
    pub const NOT_FOUND: &str = "Vulnflow.NotFound";
    /// The request contradicts the current state (a sync already runs, a job already ended).
    pub const CONFLICT: &str = "Vulnflow.Conflict";
    /// DynamoDB, S3, Secrets Manager or Step Functions failed in a way that may pass. Retried.
    pub const STORAGE_UNAVAILABLE: &str = "Vulnflow.StorageUnavailable";
    /// The sync ran past its connector's sync window: it pauses. Never retried.
    pub const SYNC_WINDOW_ENDED: &str = "Vulnflow.SyncWindowEnded";
    /// Our own fault.
    pub const INTERNAL: &str = "Vulnflow.Internal";

    /// The errors that a retry may cure.
    pub const TRANSIENT: [&str; 2] = [SCANNER_UNAVAILABLE, STORAGE_UNAVAILABLE];
    /// What Lambda and Step Functions report when a function died without answering: it
    /// crashed, ran out of memory or timed out. The chunk stages and Finalize retry them
    /// twice: a process killed mid-chunk loses nothing, its chunk is done again.
    pub const FUNCTION_DIED: [&str; 4] = ["Lambda.Unknown", "Runtime.ExitError", "Sandbox.Timedout", "States.Timeout"];
    pub const ALL: [&str; 10] = [
        CREDENTIAL_ERROR,
        SCANNER_UNAVAILABLE,
        SCANNER_ERROR,
        MALFORMED_CHUNK,
        INVALID_REQUEST,
        NOT_FOUND,
        CONFLICT,
        STORAGE_UNAVAILABLE,
        SYNC_WINDOW_ENDED,
        INTERNAL,
    ];
}

/// What the scanner answered, kept for the job's error detail. Built only through
/// [`Redactor::response`], so no secret reaches it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScannerResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the scanner rejected the API keys (HTTP {})", .response.status)]
    Credentials { response: ScannerResponse },

    #[error("the scanner API is unavailable: {reason}")]
    ScannerUnavailable { reason: String, response: Option<ScannerResponse> },

    #[error("the scanner API failed: {reason}")]
    ScannerRejected { reason: String, response: Option<ScannerResponse> },

    #[error("chunk {chunk} cannot be used: {reason}")]
    MalformedChunk { chunk: String, reason: String },

    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// One field of a request is wrong: the API names it to the caller. The reason
    /// reads on from the field's name: `must be ...`, `is not ...`.
    #[error("{field} {reason}")]
    InvalidField { field: String, reason: String },

    #[error("{0}")]
    NotFound(String),

    #[error("{0}")]
    Conflict(String),

    #[error(
        "the connector's sync window ended at {}: the sync fetched nothing more",
        ends_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )]
    SyncWindowEnded { ends_at: chrono::DateTime<chrono::Utc> },

    #[error("{operation} failed: {reason}")]
    Storage { operation: String, reason: String, transient: bool },

    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = SyncError> = std::result::Result<T, E>;

impl SyncError {
    pub fn storage(operation: impl Into<String>, error: impl std::fmt::Display, transient: bool) -> Self {
        SyncError::Storage { operation: operation.into(), reason: error.to_string(), transient }
    }

    pub fn invalid_field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SyncError::InvalidField { field: field.into(), reason: reason.into() }
    }

    /// The stable name the state machine matches.
    pub fn error_name(&self) -> &'static str {
        use error_names::*;
        match self {
            SyncError::Credentials { .. } => CREDENTIAL_ERROR,
            SyncError::ScannerUnavailable { .. } => SCANNER_UNAVAILABLE,
            SyncError::ScannerRejected { .. } => SCANNER_ERROR,
            SyncError::MalformedChunk { .. } => MALFORMED_CHUNK,
            SyncError::InvalidRequest(_) | SyncError::InvalidField { .. } => INVALID_REQUEST,
            SyncError::NotFound(_) => NOT_FOUND,
            SyncError::Conflict(_) => CONFLICT,
            SyncError::SyncWindowEnded { .. } => SYNC_WINDOW_ENDED,
            SyncError::Storage { transient: true, .. } => STORAGE_UNAVAILABLE,
            SyncError::Storage { transient: false, .. } | SyncError::Internal(_) => INTERNAL,
        }
    }

    pub fn job_status(&self) -> JobStatus {
        job_status_for(self.error_name())
    }

    /// What a security engineer should do about it.
    pub fn action(&self) -> &'static str {
        recommended_action(self.error_name())
    }

    pub fn response(&self) -> Option<&ScannerResponse> {
        match self {
            SyncError::Credentials { response } => Some(response),
            SyncError::ScannerUnavailable { response, .. } | SyncError::ScannerRejected { response, .. } => {
                response.as_ref()
            }
            _ => None,
        }
    }

    pub fn chunk(&self) -> Option<&str> {
        match self {
            SyncError::MalformedChunk { chunk, .. } => Some(chunk),
            _ => None,
        }
    }
}

/// The job status a failure with this error name leaves the job in. Also used for
/// failures no function could record (a crash, a timeout): those arrive as names
/// like `States.Timeout` and are our fault.
pub fn job_status_for(error_name: &str) -> JobStatus {
    use error_names::*;
    match error_name {
        CREDENTIAL_ERROR => JobStatus::CredentialError,
        SCANNER_UNAVAILABLE | SCANNER_ERROR | MALFORMED_CHUNK => JobStatus::ApiError,
        SYNC_WINDOW_ENDED => JobStatus::Paused,
        _ => JobStatus::GenericError,
    }
}

/// What to do when a function died without answering (see [`error_names::FUNCTION_DIED`]).
pub const FUNCTION_DIED_ACTION: &str = "The function crashed or timed out: raise its memory or timeout in the \
     template, or lower the chunk size (ExportAssetsPerChunk), then resume the sync (`vulnflow sync resume JOB`).";

pub fn recommended_action(error_name: &str) -> &'static str {
    use error_names::*;
    match error_name {
        CREDENTIAL_ERROR => {
            "Check the connector's credentials in Secrets Manager: they may be wrong or expired, \
             or the scanner's API user may lack the permissions a sync needs (Tenable: Administrator, \
             or Can View on the assets). Then run the sync again."
        }
        SCANNER_UNAVAILABLE => {
            "The scanner API kept failing after retries (timeouts, throttling or server errors). \
             Check the scanner's status page and the connector's base URL, then run the sync again."
        }
        SCANNER_ERROR => {
            "The scanner refused the request or ended the export in error. Run the sync again; \
             if it fails the same way, send the error payload to the scanner vendor's support."
        }
        MALFORMED_CHUNK => {
            "The scanner sent a chunk we cannot read (see the chunk and field named). Run the sync \
             again to re-export it; if the same record fails, report it with the chunk kept in S3."
        }
        INVALID_REQUEST => {
            "Check the connector id, the connector's base_url and the sync parameters as the message says, then \
             start the sync again."
        }
        NOT_FOUND => "Check the id: the connector may have been deleted, or the job's history expired.",
        CONFLICT => "Wait for the running sync to end, or cancel it, then try again.",
        SYNC_WINDOW_ENDED => {
            "What was processed is kept. Resume it (`vulnflow sync resume JOB`) or let the next \
             scheduled sync run; if syncs keep pausing, widen the connector's sync_window_minutes."
        }
        died if FUNCTION_DIED.contains(&died) => FUNCTION_DIED_ACTION,
        _ => "This is a vulnflow fault: keep the job id and the execution, check the function logs, and report it.",
    }
}

impl From<SyncError> for lambda_runtime::Diagnostic {
    fn from(error: SyncError) -> Self {
        lambda_runtime::Diagnostic { error_type: error.error_name().to_string(), error_message: error.to_string() }
    }
}

/// Removes secrets from everything that may be stored or logged: known secret values
/// anywhere in a text, and credential headers by name.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

const REDACTED: &str = "<redacted>";
/// Tenable's key header format (`accessKey=...;secretKey=...`): whatever follows these is
/// a key, configured or not (a scanner may echo keys vulnflow never had).
const KEY_MARKERS: [&str; 2] = ["accessKey=", "secretKey="];

/// `text` with the value after each `marker` (up to `;`, `&`, `,`, a quote or a space)
/// redacted.
fn redact_after(text: &str, marker: &str) -> String {
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find(marker) {
        let value_start = found + marker.len();
        redacted.push_str(&rest[..value_start]);
        let value = &rest[value_start..];
        let value_len = value.find([';', '&', ',', '"', '\'', ' ', '\n']).unwrap_or(value.len());
        if value_len > 0 && !value[..value_len].starts_with(REDACTED) {
            redacted.push_str(REDACTED);
        } else {
            redacted.push_str(&value[..value_len]);
        }
        rest = &value[value_len..];
    }
    redacted.push_str(rest);
    redacted
}
const SECRET_HEADERS: [&str; 6] =
    ["x-apikeys", "authorization", "cookie", "set-cookie", "x-api-key", "x-amz-security-token"];
/// Enough of a scanner's error body to act on; the rest is noise in a job record.
const BODY_EXCERPT_CHARS: usize = 2_000;

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        // Every configured secret, whatever its length (the API refuses keys under 8
        // characters, so a short one cannot redact innocent text).
        Redactor { secrets: secrets.into_iter().filter(|secret| !secret.is_empty()).collect() }
    }

    pub fn text(&self, text: &str) -> String {
        let known =
            self.secrets.iter().fold(text.to_string(), |redacted, secret| redacted.replace(secret.as_str(), REDACTED));
        KEY_MARKERS.iter().fold(known, |redacted, marker| redact_after(&redacted, marker))
    }

    pub fn response<'a>(
        &self,
        status: u16,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: &str,
    ) -> ScannerResponse {
        let headers = headers
            .into_iter()
            .map(|(name, value)| {
                let value = if SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    REDACTED.to_string()
                } else {
                    self.text(value)
                };
                (name.to_string(), value)
            })
            .collect();
        let excerpt: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
        ScannerResponse { status, headers, body: self.text(&excerpt) }
    }
}

impl ScannerResponse {
    pub fn to_payload(&self) -> serde_json::Value {
        json!({ "status_code": self.status, "headers": self.headers, "body": self.body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_scanner_outages_and_storage_hiccups_are_transient() {
        let transient: Vec<&str> =
            error_names::ALL.into_iter().filter(|n| error_names::TRANSIENT.contains(n)).collect();
        assert_eq!(transient, vec![error_names::SCANNER_UNAVAILABLE, error_names::STORAGE_UNAVAILABLE]);
        let credentials = SyncError::Credentials { response: Redactor::default().response(401, [], "") };
        assert!(!error_names::TRANSIENT.contains(&credentials.error_name()));
    }

    #[test]
    fn statuses_follow_the_error_names() {
        assert_eq!(job_status_for(error_names::CREDENTIAL_ERROR), JobStatus::CredentialError);
        assert_eq!(job_status_for(error_names::MALFORMED_CHUNK), JobStatus::ApiError);
        assert_eq!(job_status_for(error_names::SCANNER_UNAVAILABLE), JobStatus::ApiError);
        assert_eq!(job_status_for("States.Timeout"), JobStatus::GenericError);
        assert_eq!(job_status_for(error_names::STORAGE_UNAVAILABLE), JobStatus::GenericError);
    }

    #[test]
    fn diagnostics_carry_the_stable_name_not_the_rust_type() {
        let diagnostic: lambda_runtime::Diagnostic =
            SyncError::MalformedChunk { chunk: "vulns-00002".into(), reason: "not JSON".into() }.into();
        assert_eq!(diagnostic.error_type, "Vulnflow.MalformedChunk");
        assert!(diagnostic.error_message.contains("vulns-00002"));
    }

    #[test]
    fn redaction_removes_secret_values_and_credential_headers() {
        let redactor = Redactor::new(["AKEY-0123456789".to_string(), "SKEY-9876543210".to_string()]);
        let response = redactor.response(
            401,
            [
                ("X-ApiKeys", "accessKey=AKEY-0123456789;secretKey=SKEY-9876543210"),
                ("x-request-id", "id SKEY-9876543210"),
            ],
            "echo: SKEY-9876543210",
        );
        let text = serde_json::to_string(&response.to_payload()).unwrap_or_default();
        assert!(!text.contains("AKEY-0123456789") && !text.contains("SKEY-9876543210"), "{text}");
        assert!(text.contains("x-request-id"));
    }

    #[test]
    fn short_configured_keys_and_any_key_in_tenables_header_format_are_redacted() {
        let redactor = Redactor::new(["k3y-42".to_string()]);
        let echoed = "you sent k3y-42 and X-ApiKeys: accessKey=0a1b2c3d4e;secretKey=9f8e7d6c5b, \"accessKey=zz\"";
        let text = redactor.text(echoed);
        for secret in ["k3y-42", "0a1b2c3d4e", "9f8e7d6c5b", "zz"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(
            text,
            "you sent <redacted> and X-ApiKeys: accessKey=<redacted>;secretKey=<redacted>, \"accessKey=<redacted>\""
        );
        assert_eq!(redactor.text(&text), text, "redacting twice changes nothing");
    }

    #[test]
    fn every_error_name_used_by_the_state_machine_is_ours_and_retries_only_transient_ones() {
        let asl: serde_json::Value =
            serde_json::from_str(include_str!("../../statemachine/sync.asl.json")).expect("the ASL is JSON");
        let mut retried = Vec::new();
        let mut matched = Vec::new();
        collect_error_equals(&asl, &mut retried, &mut matched);
        assert!(!retried.is_empty(), "the state machine retries something");
        for name in &retried {
            assert!(
                error_names::TRANSIENT.contains(&name.as_str())
                    || error_names::FUNCTION_DIED.contains(&name.as_str())
                    || name.starts_with("Lambda."),
                "{name} is retried but a retry cannot cure it"
            );
        }
        for name in matched.iter().chain(&retried) {
            assert!(
                error_names::ALL.contains(&name.as_str())
                    || error_names::FUNCTION_DIED.contains(&name.as_str())
                    || name.starts_with("States.")
                    || name.starts_with("Lambda."),
                "{name} is not an error name vulnflow reports"
            );
        }
    }

    fn collect_error_equals(value: &serde_json::Value, retried: &mut Vec<String>, matched: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(fields) => {
                for (key, child) in fields {
                    let target = match key.as_str() {
                        "Retry" => Some(&mut *retried),
                        "Catch" => Some(&mut *matched),
                        _ => None,
                    };
                    if let (Some(target), Some(rules)) = (target, child.as_array()) {
                        for rule in rules {
                            let names = rule["ErrorEquals"].as_array().into_iter().flatten();
                            target.extend(names.filter_map(|n| n.as_str().map(String::from)));
                        }
                    }
                    collect_error_equals(child, retried, matched);
                }
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|item| collect_error_equals(item, retried, matched))
            }
            _ => {}
        }
    }
}
