//! The sync API as the CLI meets it: the `api` function's own router
//! (`vulnflow_shared::api::router`) over the in-memory store and the recording workflow,
//! served over HTTP on loopback under the stage `/v1` as API Gateway serves it, with the
//! deployment's key to check bearer tokens. Tests run the built `vulnflow` binary
//! against it and move jobs along in the store as the workflow would.

#![allow(dead_code)] // Each test file uses its own part of the harness.

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use chrono::Utc;
use serde_json::{Value, json};
use tower::ServiceExt;
use vulnflow_shared::api::{self, ApiServices, PageTokens};
use vulnflow_shared::auth::{self, Role};
use vulnflow_shared::model::{
    ChunkRecord, ChunkStatus, JobFailure, JobStatus, RecordCounts, SeenAssets, Stage, StageOutcome,
};
use vulnflow_shared::scanner_network::ScannerNetworkPolicy;
use vulnflow_shared::store::memory::MemoryStore;
use vulnflow_shared::store::{JobEnding, JobStore};
use vulnflow_shared::workflow::RecordingWorkflow;

/// The test deployment's token signing key.
pub const KEY: &[u8] = b"the CLI tests' signing key, 32 bytes or more";
pub const CONNECTOR: &str = "tenable-cli";
pub const ADMIN: &str = "ana@example.com";
pub const READER: &str = "rui@example.com";
/// API Gateway's stage, which the base URL carries and the API never sees.
const STAGE: &str = "/v1";
/// The test connectors' scanners: allowed by name, since they resolve nowhere.
const TEST_SCANNER_HOSTS: &str = "cloud.tenable.example, tenable.internal.example";
/// How long a test waits for the CLI to do something before failing.
const PATIENCE: Duration = Duration::from_secs(20);

/// One request the API answered.
#[derive(Debug, Clone)]
pub struct Served {
    pub method: String,
    /// Without the stage: `/jobs/<id>/status`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Value,
    pub status: u16,
    pub answer: Value,
}

pub struct TestApi {
    /// The base URL, with the stage, as `--api-url` takes it.
    pub url: String,
    pub store: Arc<MemoryStore>,
    pub workflow: Arc<RecordingWorkflow>,
    /// The API's router, as the function runs it.
    api: Router,
    served: Arc<Mutex<Vec<Served>>>,
}

pub fn token(principal: &str, role: Role) -> String {
    auth::mint(KEY, principal, role, chrono::Duration::hours(1), Utc::now())
}

pub fn admin() -> String {
    token(ADMIN, Role::Admin)
}

pub fn reader() -> String {
    token(READER, Role::Reader)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit code, with what the run printed when it is not the expected one.
#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", stdout(output), stderr(output));
}

impl TestApi {
    /// The API on a free loopback port, with the connector [`CONNECTOR`].
    pub async fn start() -> TestApi {
        let store = Arc::new(MemoryStore::default());
        let workflow = Arc::new(RecordingWorkflow::default());
        let services = ApiServices {
            connectors: store.clone(),
            secrets: store.clone(),
            jobs: store.clone(),
            workflow: workflow.clone(),
            deployment: "cli-tests".into(),
            page_tokens: PageTokens::new(b"cli-tests page key"),
            scanner_network: Arc::new(
                ScannerNetworkPolicy::from_allow_list(TEST_SCANNER_HOSTS).expect("a valid allow list"),
            ),
        };
        let router = api::router(services, Some(KEY.to_vec()));
        let served = Arc::new(Mutex::default());
        // API Gateway: the API under its stage, and its own refusal of any other path.
        let gateway = Router::new()
            .nest_service(STAGE, router.clone().layer(middleware::from_fn_with_state(served.clone(), record)))
            .fallback(|| async {
                (StatusCode::FORBIDDEN, axum::Json(json!({ "message": "Missing Authentication Token" })))
            });
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("a loopback port");
        let address = listener.local_addr().expect("the port");
        tokio::spawn(async move { axum::serve(listener, gateway).await });
        let api = TestApi { url: format!("http://{address}{STAGE}"), store, workflow, api: router, served };
        let created = api
            .call(
                &admin(),
                "POST",
                "/connectors",
                json!({
                    "connector_id": CONNECTOR,
                    "name": "Tenable (CLI tests)",
                    "type": "tenable",
                    "base_url": "https://cloud.tenable.example",
                    "access_key": "AKEY-cli-0123456789",
                    "secret_key": "SKEY-cli-9876543210",
                    "schedule_hours": 24,
                    "sync_window_minutes": 30
                }),
            )
            .await;
        assert_eq!(created["connector_id"], CONNECTOR, "{created}");
        api
    }

    /// Calls the API in-process as the caller `token` names (the setup a test needs,
    /// outside what the CLI is seen to ask), and answers its JSON.
    pub async fn call(&self, token: &str, method: &str, path: &str, body: Value) -> Value {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(body.to_string()))
            .expect("a request");
        let answer = self.api.clone().oneshot(request).await.expect("the router never fails");
        json(&to_bytes(answer.into_body(), usize::MAX).await.expect("the answer"))
    }

    /// Runs `vulnflow args` against this API with `token`, as a user would.
    pub async fn vulnflow(&self, token: &str, args: &[&str]) -> Output {
        vulnflow(args, &[("VULNFLOW_API_URL", &self.url), ("VULNFLOW_TOKEN", token)]).await
    }

    pub fn served(&self) -> Vec<Served> {
        lock(&self.served).clone()
    }

    /// Waits until the API has served `times` requests that `seen` matches.
    pub async fn wait_served(&self, what: &str, times: usize, seen: impl Fn(&Served) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.served().iter().filter(|served| seen(served)).count() < times {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the CLI did not ask for {what} {times} times; served: {:#?}",
                self.served()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts a sync through the API as the admin: its job id.
    pub async fn start_sync(&self, body: Value) -> String {
        let path = format!("/connectors/{CONNECTOR}/syncs");
        let started = self.call(&admin(), "POST", &path, body).await;
        started["job_id"].as_str().unwrap_or_else(|| panic!("the sync started: {started}")).to_string()
    }

    /// The job of the `nth` execution the workflow was asked for (0 is the first),
    /// once the CLI has started it.
    pub async fn started_job(&self, nth: usize) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(execution) = self.workflow.executions().get(nth) {
                return execution.name.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "no sync was started; served: {:#?}", self.served());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the job as the workflow would up to Processing, with `processed` of
    /// `total` chunks stored, each with `per_chunk` counts.
    pub async fn run_until_processing(&self, job_id: &str, total: u64, processed: u64, per_chunk: &RecordCounts) {
        let jobs = &self.store;
        for stage in [Stage::Initiating, Stage::ConnectivityTest] {
            jobs.stage_started(job_id, stage, Utc::now()).await.expect("the in-memory store");
            jobs.stage_ended(job_id, stage, StageOutcome::Succeeded, Utc::now()).await.expect("the in-memory store");
        }
        jobs.stage_started(job_id, Stage::Fetching, Utc::now()).await.expect("the in-memory store");
        // Every export of the mode tells its chunks; the last one has them all.
        let job = jobs.get_job(job_id).await.expect("the in-memory store");
        let kinds = job.expect("the job").mode.export_kinds();
        for (index, kind) in kinds.iter().enumerate() {
            let chunks = if index + 1 == kinds.len() { total } else { 0 };
            jobs.add_total_chunks(job_id, *kind, chunks).await.expect("the in-memory store");
        }
        jobs.set_status(job_id, JobStatus::Delegated).await.expect("the in-memory store");
        for stage in [Stage::Normalizing, Stage::Processing] {
            jobs.stage_started(job_id, stage, Utc::now()).await.expect("the in-memory store");
        }
        self.process_chunks(job_id, 0..processed, per_chunk).await;
    }

    /// Stores the chunks `chunks` of the job, each adding `counts`.
    pub async fn process_chunks(&self, job_id: &str, chunks: std::ops::Range<u64>, counts: &RecordCounts) {
        for chunk in chunks {
            let chunk_key = format!("vulns-{chunk:05}");
            let record = ChunkRecord {
                job_id: job_id.to_string(),
                chunk_key: chunk_key.clone(),
                status: ChunkStatus::Normalized,
                failed_attempts: 0,
                raw_key: None,
                normalized_key: None,
                records: Some(counts.findings_received),
                last_failure: None,
                retried: false,
                carried_from: None,
                seen_assets: SeenAssets::default(),
                updated_at: Utc::now(),
            };
            self.store.save_chunk(&record).await.expect("the in-memory store");
            let committed = self
                .store
                .commit_chunk(job_id, &chunk_key, counts, &SeenAssets::default(), Utc::now())
                .await
                .expect("the in-memory store");
            assert!(committed, "chunk {chunk_key} commits once");
        }
    }

    /// Ends the job with `status` as Finalize would: its running stages end, and a
    /// failure, when given, is recorded first.
    pub async fn end(&self, job_id: &str, status: JobStatus, failure: Option<JobFailure>) {
        let now = Utc::now();
        let outcome = match status {
            JobStatus::Finished => StageOutcome::Succeeded,
            _ => StageOutcome::Failed,
        };
        let job = self.store.get_job(job_id).await.expect("the in-memory store").expect("the job");
        for (stage, run) in &job.stages {
            if run.outcome == StageOutcome::Running {
                self.store.stage_ended(job_id, *stage, outcome, now).await.expect("the in-memory store");
            }
        }
        if status == JobStatus::Finished {
            self.store.stage_started(job_id, Stage::Finalizing, now).await.expect("the in-memory store");
            self.store
                .stage_ended(job_id, Stage::Finalizing, StageOutcome::Succeeded, now)
                .await
                .expect("the in-memory store");
        }
        if let Some(failure) = &failure {
            self.store.record_failure(job_id, failure).await.expect("the in-memory store");
        }
        let mut chunks = self.store.get_job(job_id).await.expect("the in-memory store").expect("the job").chunks;
        chunks.failed = chunks.total - chunks.processed;
        let ending = JobEnding { status, chunks, ended_at: now };
        self.store.finish_job(job_id, &ending).await.expect("the in-memory store");
    }
}

/// A failure as the pipeline records it.
pub fn failure(status: JobStatus, stage: Stage, message: &str, action: &str) -> JobFailure {
    JobFailure {
        status,
        stage,
        error: "Vulnflow.ScannerError".into(),
        message: message.into(),
        action: action.into(),
        http_status: None,
        payload: None,
        chunk: None,
        occurred_at: Utc::now(),
    }
}

/// Runs the built `vulnflow` with `args` and only the environment given (and PATH),
/// so that the caller's own VULNFLOW_* or AWS settings cannot leak in.
pub async fn vulnflow(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_vulnflow"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // Times show in the reader's zone: UTC unless a test says otherwise.
        .env("TZ", "UTC0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("vulnflow ends within a minute")
        .expect("vulnflow runs")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The JSON of a body; null when it holds none.
fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// Records every request the API answers, as the stage left it.
async fn record(State(served): State<Arc<Mutex<Vec<Served>>>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|query| {
            reqwest::Url::parse(&format!("http://api/?{query}"))
                .map(|url| url.query_pairs().into_owned().collect())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let (method, path) = (parts.method.to_string(), parts.uri.path().to_string());
    let answer = next.run(Request::from_parts(parts, Body::from(body.clone()))).await;
    let (answer, answer_body) = answer.into_parts();
    let answer_body = to_bytes(answer_body, usize::MAX).await.unwrap_or_default();
    lock(&served).push(Served {
        method,
        path,
        query,
        body: json(&body),
        status: answer.status.as_u16(),
        answer: json(&answer_body),
    });
    Response::from_parts(answer, Body::from(answer_body))
}
