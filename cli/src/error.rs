//! Why a command failed, and the one place a failure becomes an exit code.

use std::io;

use reqwest::StatusCode;
use vulnflow_shared::errors::SyncError;
use vulnflow_shared::model::{JobFailure, JobStatus};

/// The exit codes, as `--help` lists them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the sync ended in a failure status or was cancelled (normalize: the chunk cannot
     be normalized)
  2  bad usage or unreadable input
  3  the API refused or failed (HTTP 4xx or 5xx); for token, Secrets Manager did
  4  the API cannot be reached: check --api-url";

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command cannot run as asked (a missing option, an unreadable file).
    #[error("{0}")]
    Usage(String),
    /// The input cannot be used (a chunk `normalize` cannot map).
    #[error("{0}")]
    Unusable(String),
    #[error("cannot write to stdout: {0}")]
    Output(#[source] io::Error),
    /// The sync ended in another status than FINISHED.
    #[error("{}", ended(job_id, *status, failure.as_deref()))]
    SyncEnded { job_id: String, status: JobStatus, failure: Option<Box<JobFailure>> },
    /// The API answered with an error status.
    #[error("{}", refused(*status, message, field.as_deref()))]
    Refused { status: StatusCode, message: String, field: Option<String> },
    /// The API answered 2xx with something that is not what api/openapi.yaml says.
    #[error("the API at {url} answered something unexpected ({reason}): does --api-url name the sync API?")]
    Unexpected { url: String, reason: String },
    #[error(
        "cannot reach the API at {url}: {reason}; check --api-url (or VULNFLOW_API_URL): \
         the base URL with the stage, such as https://<id>.execute-api.<region>.amazonaws.com/v1"
    )]
    Unreachable { url: String, reason: String },
    #[error("cannot mint a token: {0}")]
    SigningKey(#[source] SyncError),
    /// Following a sync failed; the sync itself goes on.
    #[error("{error}\n  the sync {job_id} goes on: `vulnflow sync status {job_id}` shows it")]
    Following {
        job_id: String,
        #[source]
        error: Box<CliError>,
    },
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::SyncEnded { .. } | CliError::Unusable(_) | CliError::Output(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Refused { .. } | CliError::Unexpected { .. } | CliError::SigningKey(_) => 3,
            CliError::Unreachable { .. } => 4,
            CliError::Following { error, .. } => error.exit_code(),
        }
    }

    /// This error, noting that the sync `job_id` goes on without being followed.
    pub fn while_following(self, job_id: &str) -> CliError {
        CliError::Following { job_id: job_id.to_string(), error: Box::new(self) }
    }
}

/// "sync 1f0c ended API_ERROR at Normalizing (HTTP 500, chunk vulns-00002): ...
///   what to do: ..."
fn ended(job_id: &str, status: JobStatus, failure: Option<&JobFailure>) -> String {
    let Some(failure) = failure else {
        return format!("sync {job_id} ended {status}");
    };
    let details: Vec<String> = [
        failure.http_status.map(|code| format!("HTTP {code}")),
        failure.chunk.as_ref().map(|chunk| format!("chunk {chunk}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let details = match details.as_slice() {
        [] => String::new(),
        some => format!(" ({})", some.join(", ")),
    };
    format!(
        "sync {job_id} ended {status} at {}{details}: {}\n  what to do: {}",
        failure.stage, failure.message, failure.action
    )
}

/// "409 Conflict: sync ... is running ...", with the wrong field when the API names one.
fn refused(status: StatusCode, message: &str, field: Option<&str>) -> String {
    let mut text = format!("{status}: {message}");
    if let Some(field) = field {
        text.push_str(&format!(" [field: {field}]"));
    }
    if status == StatusCode::UNAUTHORIZED {
        text.push_str(" (check --token or VULNFLOW_TOKEN; `vulnflow token` mints one)");
    }
    text
}
