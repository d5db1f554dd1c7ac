//! The sync API over HTTP (api/openapi.yaml): where it is, who calls it, and its
//! answers and errors as [`CliError`]s.

use std::error::Error as _;
use std::time::Duration;

use clap::Args;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::CliError;

/// Where the sync API is and who calls it; every command takes them.
#[derive(Args)]
pub struct ApiOptions {
    /// The sync API's base URL, with the stage: https://<id>.execute-api.<region>.amazonaws.com/v1
    /// (the stack's ApiUrl output; on the local stack http://127.0.0.1:4566/_aws/execute-api/<id>/v1).
    #[arg(
        long,
        env = "VULNFLOW_API_URL",
        global = true,
        help_heading = "API",
        value_name = "URL",
        value_parser = base_url
    )]
    api_url: Option<Url>,
    /// The bearer token (`vulnflow token` mints one). Prefer the environment variable:
    /// command lines are visible to other users of the machine.
    #[arg(
        long,
        env = "VULNFLOW_TOKEN",
        global = true,
        help_heading = "API",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
}

impl ApiOptions {
    pub fn client(self) -> Result<ApiClient, CliError> {
        let base = self.api_url.ok_or_else(|| {
            CliError::Usage(
                "no API URL: pass --api-url or set VULNFLOW_API_URL (the stack's ApiUrl output)".to_string(),
            )
        })?;
        let token = self.token.filter(|token| !token.trim().is_empty()).ok_or_else(|| {
            CliError::Usage("no token: set VULNFLOW_TOKEN or pass --token (`vulnflow token` mints one)".to_string())
        })?;
        ApiClient::new(base, token.trim())
    }
}

fn base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| format!("{error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err("must be an http or https URL".to_string());
    }
    Ok(url)
}

/// How long one request may take; a poll that hangs longer is a failure to reach the API.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    /// `Bearer <token>`, marked sensitive so that it is never shown.
    authorization: HeaderValue,
}

impl ApiClient {
    fn new(base: Url, token: &str) -> Result<Self, CliError> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| CliError::Usage("the token holds characters no HTTP header can carry".to_string()))?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("vulnflow-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CliError::Usage(format!("cannot set up HTTP: {error}")))?;
        Ok(ApiClient { http, base, authorization })
    }

    pub async fn get(&self, path: &[&str], query: &[(&str, String)]) -> Result<Answer, CliError> {
        self.send(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &[&str], body: &Value) -> Result<Answer, CliError> {
        self.send(Method::POST, path, &[], Some(body)).await
    }

    /// The base URL with `path` appended and `query` set, each part escaped: an id
    /// cannot reach another endpoint.
    fn url(&self, path: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, CliError> {
        let url = self.url(path, query);
        let mut request = self.http.request(method, url.clone()).header(AUTHORIZATION, self.authorization.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable =
            |error: reqwest::Error| CliError::Unreachable { url: self.base.to_string(), reason: reason(&error) };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(refused(status, &text));
        }
        let body = serde_json::from_str(&text)
            .map_err(|error| CliError::Unexpected { url: url.to_string(), reason: format!("not JSON: {error}") })?;
        Ok(Answer { url, body })
    }
}

/// A successful answer: the API's JSON, which `--json` prints as it came.
pub struct Answer {
    url: Url,
    pub body: Value,
}

impl Answer {
    /// The answer as the type the CLI reads it as.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, CliError> {
        T::deserialize(&self.body)
            .map_err(|error| CliError::Unexpected { url: self.url.to_string(), reason: error.to_string() })
    }
}

/// The API's error body (`{"error", "message", "field"}`), or what a gateway in front
/// of it answered.
fn refused(status: StatusCode, text: &str) -> CliError {
    let body: Option<Value> = serde_json::from_str(text).ok();
    let field = |name: &str| body.as_ref().and_then(|body| body[name].as_str()).map(String::from);
    let message = field("message").unwrap_or_else(|| match text.trim() {
        "" => "the API answered without a message".to_string(),
        text => text.chars().take(300).collect(),
    });
    CliError::Refused { status, message, field: field("field") }
}

/// The error and its causes, which name what actually failed ("Connection refused").
fn reason(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    if error.is_timeout() {
        causes.push(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()));
    }
    let mut source = error.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        causes.push(error.to_string());
    }
    causes.join(": ")
}
