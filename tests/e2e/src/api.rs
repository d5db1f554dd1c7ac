//! The deployed sync API, called over HTTP through API Gateway as an operator calls it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{ACCESS_KEY, Stack};

/// One answer of the API.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

/// A caller of the deployed sync API. It keeps every answer it saw, so that a test
/// can search them for secrets at the end.
pub struct ApiClient {
    http: reqwest::Client,
    pub base: String,
    pub seen: Mutex<Vec<String>>,
}

impl ApiClient {
    pub fn new(stack: &Stack) -> ApiClient {
        ApiClient {
            http: reqwest::Client::new(),
            base: format!(
                "http://127.0.0.1:4566/_aws/execute-api/{}/{}",
                stack.output("ApiId"),
                stack.output("ApiStageName")
            ),
            seen: Default::default(),
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        self.seen.lock().expect("lock").push(text.clone());
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, text }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(reqwest::Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(reqwest::Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.call(reqwest::Method::DELETE, path, Some(token), None).await
    }

    pub async fn wait_until_ended(&self, job_id: &str, token: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let status = self.get(&format!("/jobs/{job_id}/status"), token).await;
            assert_eq!(status.status, 200, "{}", status.text);
            if !matches!(status.body["status"].as_str(), Some("STARTED" | "DELEGATED")) {
                return status.body;
            }
            assert!(Instant::now() < deadline, "job {job_id} still running");
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
}

/// A new connector's body for the simulator at `base_url`, with no schedule.
pub fn new_connector(base_url: &str, secret_key: &str) -> Value {
    json!({
        "name": "Tenable (simulator)",
        "type": "tenable",
        "base_url": base_url,
        "access_key": ACCESS_KEY,
        "secret_key": secret_key,
        "schedule_hours": null,
        "default_mode": "full"
    })
}
