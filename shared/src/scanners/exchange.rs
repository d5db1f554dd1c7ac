//! One call to a scanner, the same for every scanner: sent through the address guard,
//! the answer read up to the function's limit, transport failures sorted into what the
//! pipeline acts on. What an answer means is each scanner's business.

use reqwest::{Method, RequestBuilder, StatusCode};

use super::CallLimits;
use crate::errors::{Redactor, Result, ScannerResponse, SyncError};
use crate::scanner_network::{ScannerHttp, SendError};

/// A scanner's answer, whatever its status.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The answer as a job may keep it: the scanner's keys redacted.
    pub fn recorded(&self, redactor: &Redactor) -> ScannerResponse {
        redactor.response(
            self.status.as_u16(),
            self.headers.iter().map(|(name, value)| (name.as_str(), value.as_str())),
            &String::from_utf8_lossy(&self.body),
        )
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// Sends `request` (`method path`, for errors) and reads the whole answer. No answer
/// at all is `ScannerUnavailable` (retried); an answer larger than
/// `limits.max_answer_bytes` fails before it is held.
pub(crate) async fn exchange(
    http: &ScannerHttp,
    request: RequestBuilder,
    (method, path): (&Method, &str),
    limits: &CallLimits,
    redactor: &Redactor,
) -> Result<Answer> {
    let mut response = http.send(request).await.map_err(|error| match error {
        SendError::Refused(refused) => SyncError::from(refused),
        SendError::Http(e) => SyncError::ScannerUnavailable {
            reason: redactor.text(&format!("{method} {path} did not get an answer: {}", error_chain(&e))),
            response: None,
        },
    })?;
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("<binary>").to_string()))
        .collect();
    let limit = limits.max_answer_bytes;
    let too_large = || SyncError::ScannerRejected {
        reason: format!(
            "{method} {path} answered more than {} MB, more than this function's memory holds: lower the \
             template's ExportAssetsPerChunk (smaller chunks) or raise the function's MemorySize",
            limit >> 20
        ),
        response: None,
    };
    let announced = response.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(too_large());
    }
    // Read piece by piece into one buffer: a chunk too large for the function fails
    // here, before it is held.
    let mut body = Vec::with_capacity(announced as usize);
    while let Some(piece) = response.chunk().await.map_err(|e| SyncError::ScannerUnavailable {
        reason: format!("{method} {path}: the answer broke off: {}", error_chain(&e)),
        response: None,
    })? {
        if body.len() + piece.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&piece);
    }
    Ok(Answer { status, headers, body })
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
