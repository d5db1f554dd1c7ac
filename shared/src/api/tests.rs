//! Every endpoint over the in-memory store and the recording workflow, asked as the
//! `api` function is: API Gateway's proxy events, through lambda_http, to the router.

use std::sync::{Arc, Mutex};

use std::convert::Infallible;

use chrono::{DateTime, Duration, Utc};
use lambda_http::tower::Service;
use lambda_http::tower::ServiceExt;
use serde_json::{Value, json};

use super::jobs::progress;
use super::{ApiResponse, ApiServices, GatewayService, Identity, PageTokens, behind_api_gateway, router};
use crate::errors::{Result, SyncError};
use crate::model::{
    ChunkCounts, ChunkRecord, ChunkStatus, ExportKind, ExportRef, JobFailure, JobStatus, RecordCounts, SeenAssets,
    Stage, StageOutcome, StageRun, SyncJob, SyncMode, Trigger,
};
use crate::scanner_network::ScannerNetworkPolicy;
use crate::store::memory::MemoryStore;
use crate::store::{ConnectorStore, JobEnding, JobStore};
use crate::workflow::{ExecutionState, RecordingWorkflow, Workflow};

const ACCESS_KEY: &str = "AKEY-3f9a0c6e1b2d4c58";
const SECRET_KEY: &str = "SKEY-7d2e9b41a0c3f685";
const CONNECTOR: &str = "tenable-unit";
/// The test connectors' scanners: allowed by name, since they resolve nowhere.
const TEST_SCANNER_HOSTS: &str = "cloud.tenable.example,elsewhere.example";
/// The deployment's token signing key.
const TOKEN_KEY: &[u8] = b"the deployment's signing key, 32+ bytes";

fn admin() -> Result<Identity, String> {
    Ok(Identity { principal: "ana@example.com".into(), role: "admin".into() })
}

fn reader() -> Result<Identity, String> {
    Ok(Identity { principal: "rui@example.com".into(), role: "reader".into() })
}

fn anonymous() -> Result<Identity, String> {
    Err("no caller identity".into())
}

/// A REST API proxy event as API Gateway sends it on the stage `v1`: `authorizer` is
/// the context the authorizer gave (null where none ran), `query` the parameters as
/// `multiValueQueryStringParameters`.
fn rest_event(method: &str, path: &str, query: Value, body: Option<Value>, authorizer: Value, headers: Value) -> Value {
    json!({
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {},
        "queryStringParameters": {},
        "multiValueQueryStringParameters": query,
        "pathParameters": { "proxy": path.trim_start_matches('/') },
        "stageVariables": null,
        "requestContext": {
            "accountId": "000000000000",
            "resourceId": "abc",
            "stage": "v1",
            "requestId": "req-1",
            "identity": { "sourceIp": "127.0.0.1" },
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "apiId": "api123",
            "path": format!("/v1{path}"),
            "authorizer": authorizer
        },
        "body": body.map(|json| json.to_string()),
        "isBase64Encoded": false
    })
}

/// The authorizer's context naming `identity`.
fn authorizer(identity: &Result<Identity, String>) -> Value {
    match identity {
        Ok(identity) => {
            json!({ "principal": identity.principal, "role": identity.role, "principalId": identity.principal })
        }
        Err(_) => Value::Null,
    }
}

/// The function's HTTP answer to `event`: lambda_http's request, through `api` (the
/// router, as the function serves it or bare).
async fn answer<S>(api: &S, event: &Value) -> axum::response::Response
where
    S: Service<lambda_http::Request, Response = axum::response::Response, Error = Infallible> + Clone,
{
    let request = lambda_http::request::from_str(&event.to_string()).expect("a REST proxy event");
    api.clone().oneshot(request).await.expect("the router never fails")
}

/// An answer's status and JSON.
async fn read(answer: axum::response::Response) -> ApiResponse {
    let status = answer.status().as_u16();
    let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX).await.expect("the body");
    let body = (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).expect("a JSON answer"));
    ApiResponse { status, body }
}

struct Api {
    store: Arc<MemoryStore>,
    workflow: Arc<RecordingWorkflow>,
    services: ApiServices,
    /// The router as the function serves it, with the deployment's token key.
    router: GatewayService,
    /// Every answer's text, to search for keys.
    seen: Mutex<Vec<String>>,
}

impl Api {
    fn new() -> Api {
        Api::with_workflow(Arc::new(RecordingWorkflow::default()), None)
    }

    /// The recording workflow, or `other` in the services when given.
    fn with_workflow(workflow: Arc<RecordingWorkflow>, other: Option<Arc<dyn Workflow>>) -> Api {
        let store = Arc::new(MemoryStore::default());
        let services = ApiServices {
            connectors: store.clone(),
            secrets: store.clone(),
            jobs: store.clone(),
            workflow: other.unwrap_or_else(|| workflow.clone()),
            deployment: "api-tests".into(),
            page_tokens: PageTokens::new(b"api-tests page key"),
            scanner_network: Arc::new(
                ScannerNetworkPolicy::from_allow_list(TEST_SCANNER_HOSTS).expect("a valid allow list"),
            ),
        };
        let router = behind_api_gateway(router(services.clone(), Some(TOKEN_KEY.to_vec())));
        Api { store, workflow, services, router, seen: Mutex::default() }
    }

    /// `target` is the path with its query: `/jobs/1?level=warn`. The caller reaches
    /// the function as the authorizer named them.
    async fn call(
        &self,
        identity: Result<Identity, String>,
        method: &str,
        target: &str,
        body: Option<Value>,
    ) -> ApiResponse {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut parameters = serde_json::Map::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let values = parameters.entry(name).or_insert_with(|| json!([]));
            values.as_array_mut().expect("a list").push(json!(value));
        }
        let event = rest_event(method, path, Value::Object(parameters), body, authorizer(&identity), json!({}));
        let answer = read(answer(&self.router, &event).await).await;
        self.seen.lock().expect("lock").push(answer.body.as_ref().map(Value::to_string).unwrap_or_default());
        answer
    }

    async fn get(&self, target: &str) -> ApiResponse {
        self.call(reader(), "GET", target, None).await
    }

    async fn post(&self, target: &str, body: Value) -> ApiResponse {
        self.call(admin(), "POST", target, Some(body)).await
    }

    async fn patch(&self, target: &str, body: Value) -> ApiResponse {
        self.call(admin(), "PATCH", target, Some(body)).await
    }

    async fn delete(&self, target: &str) -> ApiResponse {
        self.call(admin(), "DELETE", target, None).await
    }

    async fn create_connector(&self, connector_id: &str) -> ApiResponse {
        self.post("/connectors", with(new_connector(), json!({ "connector_id": connector_id }))).await
    }

    /// Starts a sync: its job exists from the start.
    async fn start_running_sync(&self, connector_id: &str) -> SyncJob {
        let started = self.post(&format!("/connectors/{connector_id}/syncs"), json!({})).await;
        assert_eq!(started.status, 202, "{:?}", started.body);
        let body = started.body.expect("a body");
        let job_id = body["job_id"].as_str().expect("a job id");
        self.store.get_job(job_id).await.expect("reads the job").expect("the job exists")
    }

    fn answers(&self) -> String {
        self.seen.lock().expect("lock").join("\n")
    }
}

/// `base` with the top-level fields of `changes` set over it.
fn with(base: Value, changes: Value) -> Value {
    let mut merged = base;
    for (key, value) in changes.as_object().into_iter().flatten() {
        merged[key] = value.clone();
    }
    merged
}

fn new_connector() -> Value {
    json!({
        "name": "Tenable (unit)",
        "type": "tenable",
        "base_url": "https://cloud.tenable.example/",
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "schedule_hours": 24,
        "sync_window_minutes": 30,
        "default_mode": "full"
    })
}

fn job(job_id: &str, connector_id: &str, status: JobStatus, started_at: DateTime<Utc>) -> SyncJob {
    let by_ana = Trigger::Manual { by: "ana@example.com".into() };
    SyncJob {
        status,
        execution_arn: Some(format!("arn:aws:states:local:000000000000:execution:vulnflow-sync:{job_id}")),
        ended_at: status.is_terminal().then(|| started_at + Duration::minutes(5)),
        // Both exports told their chunks: the tests set the total.
        counted_exports: vec![ExportKind::Assets, ExportKind::Vulns],
        ..SyncJob::started(job_id, connector_id, SyncMode::Full, by_ana, "unit-tests", started_at)
    }
}

fn run(started_at: DateTime<Utc>, seconds: i64, outcome: StageOutcome) -> StageRun {
    let ended_at = (outcome != StageOutcome::Running).then(|| started_at + Duration::seconds(seconds));
    StageRun { outcome, started_at, ended_at }
}

fn chunk(job_id: &str, chunk_key: &str, status: ChunkStatus, failed_attempts: u32, at: DateTime<Utc>) -> ChunkRecord {
    ChunkRecord {
        job_id: job_id.into(),
        chunk_key: chunk_key.into(),
        status,
        failed_attempts,
        raw_key: None,
        normalized_key: None,
        records: None,
        last_failure: (failed_attempts > 0)
            .then(|| failure(Stage::Normalizing, "chunk vulns-00002 is not valid JSON", at)),
        retried: status == ChunkStatus::Processed && failed_attempts > 0,
        carried_from: None,
        seen_assets: SeenAssets::default(),
        updated_at: at,
    }
}

fn failure(stage: Stage, message: &str, at: DateTime<Utc>) -> JobFailure {
    JobFailure {
        status: JobStatus::ApiError,
        stage,
        error: "Vulnflow.MalformedChunk".into(),
        message: message.into(),
        action: "Run the sync again.".into(),
        http_status: Some(200),
        payload: Some(json!({ "status_code": 200, "body": "[{" })),
        chunk: Some("vulns-00002".into()),
        occurred_at: at,
    }
}

fn field(answer: &ApiResponse) -> &str {
    answer.body.as_ref().and_then(|body| body["field"].as_str()).unwrap_or_default()
}

fn body(answer: &ApiResponse) -> &Value {
    answer.body.as_ref().expect("the answer has a body")
}

#[tokio::test]
async fn creating_a_connector_keeps_its_keys_in_its_secret_only() {
    let api = Api::new();
    let created = api.post("/connectors", new_connector()).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let view = body(&created);
    let connector_id = view["connector_id"].as_str().expect("an id");
    assert!(connector_id.starts_with("tenable-") && connector_id.len() == "tenable-".len() + 12, "{connector_id}");
    assert_eq!(view["base_url"], "https://cloud.tenable.example");
    assert_eq!((view["schedule_hours"].clone(), view["sync_window_minutes"].clone()), (json!(24), json!(30)));
    assert_eq!(view["secret_id"], format!("vulnflow/{connector_id}"));

    let secret = api.store.secret(&format!("vulnflow/{connector_id}")).expect("the secret exists");
    assert_eq!(secret.values(), [ACCESS_KEY, SECRET_KEY]);
    let connector = api.store.get_connector(connector_id).await.unwrap().expect("stored");
    assert_eq!(connector.secret_id, format!("vulnflow/{connector_id}"), "the pipeline reads the keys from there");
}

#[tokio::test]
async fn a_qualys_connector_keeps_its_login_in_its_secret_only() {
    let api = Api::new();
    let mut request = new_connector();
    let fields = request.as_object_mut().expect("an object");
    fields.remove("access_key");
    fields.remove("secret_key");
    fields.extend([
        ("type".to_owned(), json!("qualys")),
        ("username".to_owned(), json!("acme_ab12")),
        ("password".to_owned(), json!("correct-horse-battery")),
    ]);
    let created = api.post("/connectors", request).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let view = body(&created);
    let connector_id = view["connector_id"].as_str().expect("an id");
    assert!(connector_id.starts_with("qualys-"), "{connector_id}");
    assert_eq!(view["type"], "qualys");
    assert!(!view.to_string().contains("correct-horse-battery"), "{view}");
    let secret = api.store.secret(&format!("vulnflow/{connector_id}")).expect("the secret exists");
    assert_eq!(secret.values(), ["acme_ab12", "correct-horse-battery"]);
}

#[tokio::test]
async fn a_connector_request_names_the_field_that_is_wrong() {
    let api = Api::new();
    let cases = [
        (with(new_connector(), json!({ "name": "  " })), "name"),
        (with(new_connector(), json!({ "type": "nessus" })), "type"),
        (with(new_connector(), json!({ "base_url": "not a url" })), "base_url"),
        (with(new_connector(), json!({ "base_url": "ftp://cloud.tenable.com" })), "base_url"),
        (with(new_connector(), json!({ "schedule_hours": 0 })), "schedule_hours"),
        (with(new_connector(), json!({ "schedule_hours": 169 })), "schedule_hours"),
        (with(new_connector(), json!({ "schedule_hours": 1.5 })), "schedule_hours"),
        (with(new_connector(), json!({ "sync_window_minutes": 0 })), "sync_window_minutes"),
        (with(new_connector(), json!({ "default_mode": "everything" })), "default_mode"),
        (with(new_connector(), json!({ "connector_id": "No_Caps" })), "connector_id"),
        (with(new_connector(), json!({ "connector_id": "ab" })), "connector_id"),
        (with(new_connector(), json!({ "secret_key": "" })), "secret_key"),
        (with(new_connector(), json!({ "colour": "blue" })), "colour"),
    ];
    for (request, expected) in cases {
        let answer = api.post("/connectors", request).await;
        assert_eq!((answer.status, field(&answer)), (400, expected), "{:?}", answer.body);
        assert_eq!(body(&answer)["error"], "invalid_request");
        assert!(body(&answer)["message"].as_str().is_some_and(|m| m.starts_with(expected)), "{:?}", answer.body);
    }
    let mut missing = new_connector();
    missing.as_object_mut().expect("an object").remove("name");
    let answer = api.post("/connectors", missing).await;
    assert_eq!((answer.status, field(&answer)), (400, "name"));
    let qualys_with_tenable_keys = api.post("/connectors", with(new_connector(), json!({ "type": "qualys" }))).await;
    assert_eq!((qualys_with_tenable_keys.status, field(&qualys_with_tenable_keys)), (400, "access_key"));
    assert!(
        body(&qualys_with_tenable_keys)["message"].as_str().is_some_and(|m| m.contains("takes username and password")),
        "{:?}",
        qualys_with_tenable_keys.body
    );
    let not_json = api.call(admin(), "POST", "/connectors", None).await;
    assert_eq!(field(&not_json), "name", "an empty body reads as {{}}");
    assert!(api.store.list_connectors().await.unwrap().is_empty(), "nothing was stored");
}

/// Scanner URLs that reach no public scanner: the metadata service, the VPC, the host itself.
const INTERNAL_BASE_URLS: [&str; 4] =
    ["http://169.254.169.254", "https://10.0.0.5", "https://[::1]:8443", "https://[::ffff:169.254.169.254]"];

#[tokio::test]
async fn a_connector_cannot_point_at_an_internal_address() {
    let api = Api::new();
    for base_url in INTERNAL_BASE_URLS {
        let request = with(new_connector(), json!({ "connector_id": "tenable-internal", "base_url": base_url }));
        let answer = api.post("/connectors", request).await;
        assert_eq!((answer.status, field(&answer)), (400, "base_url"), "{base_url}: {:?}", answer.body);
        let message = body(&answer)["message"].as_str().unwrap_or_default();
        assert!(message.contains("ScannerAllowList"), "says what to do: {message}");
    }
    let private = api.post("/connectors", with(new_connector(), json!({ "base_url": "https://10.0.0.5" }))).await;
    assert_eq!(
        body(&private)["message"],
        "base_url is 10.0.0.5, a private address: vulnflow refuses non-public scanner addresses unless the \
         deployment's ScannerAllowList names them"
    );
    assert!(api.store.list_connectors().await.unwrap().is_empty(), "nothing was stored");
    assert!(api.store.secret("vulnflow/tenable-internal").is_none(), "no keys were stored");
}

#[tokio::test]
async fn a_connector_cannot_be_changed_to_an_internal_address() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let target = format!("/connectors/{CONNECTOR}");
    let before = api.get(&target).await.body;
    for base_url in INTERNAL_BASE_URLS {
        let changes = json!({
            "name": "Renamed",
            "base_url": base_url,
            "access_key": "AKEY-rotated-00000000",
            "secret_key": "SKEY-rotated-00000000"
        });
        let answer = api.patch(&target, changes).await;
        assert_eq!((answer.status, field(&answer)), (400, "base_url"), "{base_url}: {:?}", answer.body);
    }
    assert_eq!(api.get(&target).await.body, before, "the connector is unchanged");
    assert_eq!(
        api.store.secret(&format!("vulnflow/{CONNECTOR}")).map(|s| s.values()[1].clone()),
        Some(SECRET_KEY.to_string()),
        "its keys too"
    );
}

#[tokio::test]
async fn a_given_connector_id_is_kept_and_cannot_be_taken_twice() {
    let api = Api::new();
    assert_eq!(api.create_connector(CONNECTOR).await.status, 201);
    let again = api
        .post(
            "/connectors",
            with(new_connector(), json!({ "connector_id": CONNECTOR, "secret_key": "SKEY-other-0000000" })),
        )
        .await;
    assert_eq!(again.status, 409, "{:?}", again.body);
    assert_eq!(
        api.store.secret(&format!("vulnflow/{CONNECTOR}")).map(|s| s.values()[1].clone()),
        Some(SECRET_KEY.to_string()),
        "keys untouched"
    );
}

#[tokio::test]
async fn connectors_are_listed_read_changed_and_deleted() {
    let api = Api::new();
    api.create_connector("tenable-b").await;
    api.create_connector("tenable-a").await;
    let listed = api.get("/connectors").await;
    let ids: Vec<&str> = body(&listed)["connectors"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["connector_id"].as_str())
        .collect();
    assert_eq!(ids, ["tenable-a", "tenable-b"]);
    assert_eq!(api.get("/connectors/tenable-a").await.status, 200);
    assert_eq!(api.get("/connectors/tenable-zz").await.status, 404);

    api.store.advance_cursor("tenable-a", 1_700_000_000).await.unwrap();
    let changed = api
        .patch(
            "/connectors/tenable-a",
            json!({ "name": "Renamed", "schedule_hours": null, "default_mode": "incremental" }),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let view = body(&changed);
    assert_eq!((view["name"].clone(), view["schedule_hours"].clone()), (json!("Renamed"), Value::Null));
    assert_eq!((view["sync_window_minutes"].clone(), view["default_mode"].clone()), (json!(30), json!("incremental")));
    assert_eq!(view["incremental_from"], "2023-11-14T22:13:20Z", "a change keeps the sync cursor");

    let half = api.patch("/connectors/tenable-a", json!({ "access_key": "AKEY-rotated-00000000" })).await;
    assert_eq!((half.status, field(&half)), (400, "secret_key"));
    let rotated = api
        .patch(
            "/connectors/tenable-a",
            json!({ "access_key": "AKEY-rotated-00000000", "secret_key": "SKEY-rotated-00000000" }),
        )
        .await;
    assert_eq!(rotated.status, 200);
    assert_eq!(
        api.store.secret("vulnflow/tenable-a").map(|s| s.values()[1].clone()),
        Some("SKEY-rotated-00000000".into())
    );
    assert_eq!(api.patch("/connectors/tenable-zz", json!({ "name": "x" })).await.status, 404);

    let moved = api.patch("/connectors/tenable-a", json!({ "base_url": "https://elsewhere.example" })).await;
    assert_eq!((moved.status, field(&moved)), (400, "access_key"), "the stored keys never follow a new host");
    assert_eq!(body(&api.get("/connectors/tenable-a").await)["base_url"], "https://cloud.tenable.example");
    let same_host = api.patch("/connectors/tenable-a", json!({ "base_url": "https://cloud.tenable.example/" })).await;
    assert_eq!(same_host.status, 200, "the same address needs no keys: {:?}", same_host.body);
    let moved = api
        .patch(
            "/connectors/tenable-a",
            json!({ "base_url": "https://elsewhere.example", "access_key": "AKEY-moved-000000", "secret_key": "SKEY-moved-000000" }),
        )
        .await;
    assert_eq!((moved.status, body(&moved)["base_url"].clone()), (200, json!("https://elsewhere.example")));
    assert_eq!(api.store.secret("vulnflow/tenable-a").map(|s| s.values()[1].clone()), Some("SKEY-moved-000000".into()));

    let deleted = api.delete("/connectors/tenable-a").await;
    assert_eq!((deleted.status, deleted.body), (204, None));
    assert!(api.store.secret("vulnflow/tenable-a").is_none(), "the keys went with it");
    assert_eq!(api.get("/connectors/tenable-a").await.status, 404);
    assert_eq!(api.delete("/connectors/tenable-a").await.status, 404);
    let again = api.create_connector("tenable-a").await;
    let message = body(&again)["message"].as_str().unwrap_or_default();
    assert_eq!(again.status, 409, "a new connector never inherits a deleted one's findings");
    assert!(message.contains("deleted connector") && message.contains("choose another id"), "{message}");
    assert_eq!(api.patch("/connectors/tenable-a", json!({ "name": "x" })).await.status, 404);
    assert_eq!(api.post("/connectors/tenable-a/syncs", json!({})).await.status, 404);
}

#[tokio::test]
async fn a_connector_cannot_be_deleted_while_it_syncs() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    api.start_running_sync(CONNECTOR).await;
    let refused = api.delete(&format!("/connectors/{CONNECTOR}")).await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert!(api.store.secret(&format!("vulnflow/{CONNECTOR}")).is_some());
}

#[tokio::test]
async fn every_request_needs_an_identity_and_a_role_that_may_make_it() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let job = api.start_running_sync(CONNECTOR).await;
    let connector = format!("/connectors/{CONNECTOR}");
    let changes = [
        ("POST", "/connectors".to_string()),
        ("PATCH", connector.clone()),
        ("DELETE", connector.clone()),
        ("POST", format!("{connector}/syncs")),
        ("POST", format!("/jobs/{}/cancel", job.job_id)),
    ];
    let reads = [
        ("GET", "/connectors".to_string()),
        ("GET", connector.clone()),
        ("GET", format!("{connector}/syncs")),
        ("GET", format!("/jobs/{}", job.job_id)),
        ("GET", format!("/jobs/{}/status", job.job_id)),
    ];
    for (method, path) in changes.iter().chain(&reads) {
        let answer = api.call(anonymous(), method, path, None).await;
        assert_eq!((answer.status, body(&answer)["error"].clone()), (401, json!("unauthenticated")), "{method} {path}");
        let auditor = Ok(Identity { principal: "eve@example.com".into(), role: "auditor".into() });
        assert_eq!(api.call(auditor, method, path, None).await.status, 403, "{method} {path}: an unknown role");
    }
    for (method, path) in &changes {
        let answer = api.call(reader(), method, path, Some(json!({}))).await;
        assert_eq!(answer.status, 403, "{method} {path}");
        assert!(body(&answer)["message"].as_str().is_some_and(|m| m.contains("admin")), "{:?}", answer.body);
    }
    for (method, path) in &reads {
        assert_eq!(api.call(reader(), method, path, None).await.status, 200, "{method} {path}");
    }
    assert!(api.workflow.executions().iter().all(|e| e.stopped.is_none()), "no refused request did anything");
    assert_eq!(api.get("/findings").await.status, 404);
    let wrong_method = api.call(admin(), "PUT", &connector, None).await;
    assert_eq!((wrong_method.status, body(&wrong_method)["error"].clone()), (405, json!("method_not_allowed")));
}

#[tokio::test]
async fn a_manual_sync_starts_the_workflow_with_the_sync_request_and_a_new_job_id() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let scope = json!({
        "from": "2024-01-05T10:11:12Z",
        "severities": ["high", "critical"],
        "tags": [{ "category": "env", "values": ["prod"] }]
    });
    let started =
        api.post(&format!("/connectors/{CONNECTOR}/syncs"), json!({ "mode": "vulns_only", "scope": scope })).await;
    assert_eq!(started.status, 202, "{:?}", started.body);
    let answer = body(&started);
    let job_id = answer["job_id"].as_str().expect("a job id");
    assert!(uuid::Uuid::parse_str(job_id).is_ok(), "{job_id}");
    assert_eq!(answer["status_url"], format!("/jobs/{job_id}"));
    let executions = api.workflow.executions();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].name, job_id, "the job takes the execution's name");
    assert_eq!(answer["execution_arn"], executions[0].arn.as_str());
    assert_eq!(
        executions[0].input,
        json!({
            "connector_id": CONNECTOR,
            "mode": "vulns_only",
            "scope": scope,
            "trigger": { "type": "manual", "by": "ana@example.com" }
        })
    );
    let request: crate::job::SyncRequest =
        serde_json::from_value(executions[0].input.clone()).expect("initiate reads it");
    assert_eq!(request.mode, Some(SyncMode::VulnsOnly));

    let record = api.store.connector_record(CONNECTOR).await.unwrap().expect("stored");
    assert_eq!(record.sync_claim.map(|claim| claim.job_id), Some(job_id.to_string()), "the connector is busy");
    let created = api.store.get_job(job_id).await.unwrap().expect("the job exists before its workflow ran");
    assert_eq!((created.status, created.mode), (JobStatus::Started, SyncMode::VulnsOnly));
    assert_eq!(created.trigger, Trigger::Manual { by: "ana@example.com".into() });
    assert_eq!(created.execution_arn.as_deref(), Some(executions[0].arn.as_str()));

    api.store.finish_job(job_id, &finished_now()).await.unwrap();
    let again = api.post(&format!("/connectors/{CONNECTOR}/syncs"), json!({})).await;
    assert_eq!(again.status, 202, "the first one ended: {:?}", again.body);
    assert_eq!(api.workflow.executions()[1].input["mode"], "full", "the connector's default mode");
}

#[tokio::test]
async fn a_second_start_while_a_sync_runs_or_sets_up_is_a_conflict() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let syncs = format!("/connectors/{CONNECTOR}/syncs");
    let first = api.post(&syncs, json!({})).await;
    let job_id = body(&first)["job_id"].as_str().expect("a job id").to_string();

    let setting_up = api.post(&syncs, json!({})).await;
    assert_eq!(setting_up.status, 409, "its workflow has not begun: {:?}", setting_up.body);
    assert!(body(&setting_up)["message"].as_str().is_some_and(|m| m.contains(&job_id)));

    api.store.set_status(&job_id, JobStatus::Delegated).await.unwrap();
    let running = api.post(&syncs, json!({ "mode": "full" })).await;
    assert_eq!(running.status, 409);
    assert!(body(&running)["message"].as_str().is_some_and(|m| m.contains("DELEGATED") && m.contains("/cancel")));

    api.store.finish_job(&job_id, &finished_now()).await.unwrap();
    assert_eq!(api.post(&syncs, json!({})).await.status, 202);
    assert_eq!(api.workflow.executions().len(), 2);
}

#[tokio::test]
async fn a_scheduled_sync_that_runs_blocks_a_manual_one_and_a_lapsed_claim_does_not() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let claim =
        crate::model::SyncClaim { job_id: "never-started".into(), claimed_at: Utc::now() - Duration::minutes(10) };
    assert!(api.store.claim_sync(CONNECTOR, None, &claim).await.unwrap());
    let mut scheduled = job("scheduled-1", CONNECTOR, JobStatus::Started, Utc::now());
    scheduled.trigger = Trigger::Scheduled;
    scheduled.execution_arn = Some(api.workflow.start_sync("scheduled-1", &json!({})).await.unwrap());
    api.store.create_job(&scheduled).await.unwrap();
    assert_eq!(api.post(&format!("/connectors/{CONNECTOR}/syncs"), json!({})).await.status, 409);
    api.store.finish_job("scheduled-1", &finished_now()).await.unwrap();
    assert_eq!(api.post(&format!("/connectors/{CONNECTOR}/syncs"), json!({})).await.status, 202);
}

#[tokio::test]
async fn a_job_whose_execution_ended_without_settling_it_no_longer_holds_the_connector() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let syncs = format!("/connectors/{CONNECTOR}/syncs");
    let started = api.post(&syncs, json!({})).await;
    let orphan = body(&started)["job_id"].as_str().expect("a job id").to_string();
    let now = Utc::now();
    api.store.stage_started(&orphan, Stage::Fetching, now).await.unwrap();
    api.store.add_total_chunks(&orphan, ExportKind::Vulns, 2).await.unwrap();
    api.store.save_chunk(&chunk(&orphan, "vulns-00001", ChunkStatus::Processed, 0, now)).await.unwrap();
    assert_eq!(api.post(&syncs, json!({})).await.status, 409, "its execution runs");

    // Stopped in the Step Functions console: no finalize ran.
    api.workflow.end(&orphan, "ABORTED");
    let next = api.post(&syncs, json!({})).await;
    assert_eq!(next.status, 202, "{:?}", next.body);
    let settled = api.get(&format!("/jobs/{orphan}")).await;
    let view = body(&settled);
    assert_eq!((&view["status"], &view["current_stage"]), (&json!("GENERIC_ERROR"), &Value::Null));
    assert_eq!(view["failure"]["stage"], "Fetching");
    let message = view["failure"]["message"].as_str().expect("why");
    assert!(
        message.contains("execution ended ABORTED") && message.contains(&format!("resume_job_id {orphan}")),
        "{message}"
    );
    assert_eq!(view["chunks"]["processed"], 1, "what it processed is kept");
    assert_eq!(view["stages"][0]["outcome"], "failed");
}

#[tokio::test]
async fn reading_a_job_whose_execution_failed_without_settling_it_settles_it() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let started = api.post(&format!("/connectors/{CONNECTOR}/syncs"), json!({})).await;
    let job_id = body(&started)["job_id"].as_str().expect("a job id").to_string();
    api.store.stage_started(&job_id, Stage::Finalizing, Utc::now()).await.unwrap();
    let running = api.get(&format!("/jobs/{job_id}/status")).await;
    assert_eq!(body(&running)["status"], "STARTED", "its execution runs");

    // Finalize itself failed where no Catch applied: the execution ended FAILED.
    api.workflow.end(&job_id, "FAILED");
    let status = api.get(&format!("/jobs/{job_id}/status")).await;
    let status = body(&status);
    assert_eq!((&status["status"], &status["current_stage"]), (&json!("GENERIC_ERROR"), &Value::Null));
    let view = api.get(&format!("/jobs/{job_id}")).await;
    let view = body(&view);
    assert_eq!(view["failure"]["stage"], "Finalizing");
    let message = view["failure"]["message"].as_str().expect("why");
    assert!(message.contains("execution ended FAILED"), "{message}");
    let cancel = api.post(&format!("/jobs/{job_id}/cancel"), json!({})).await;
    assert_eq!(cancel.status, 409, "it already ended: {:?}", cancel.body);
}

#[tokio::test]
async fn a_job_whose_execution_never_started_is_settled_once_the_start_grace_is_over() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    // The API function died between creating these jobs and starting their executions.
    let never_started = |job_id: &str, minutes_ago: i64| SyncJob {
        execution_arn: None,
        ..job(job_id, CONNECTOR, JobStatus::Started, Utc::now() - Duration::minutes(minutes_ago))
    };
    api.store.create_job(&never_started("just-now", 1)).await.unwrap();
    let fresh = api.get("/jobs/just-now/status").await;
    assert_eq!(body(&fresh)["status"], "STARTED", "it may still be starting");
    assert_eq!(api.post(&format!("/connectors/{CONNECTOR}/syncs"), json!({})).await.status, 409);

    api.store.create_job(&never_started("long-ago", 10)).await.unwrap();
    let settled = api.get("/jobs/long-ago").await;
    let view = body(&settled);
    assert_eq!(view["status"], "GENERIC_ERROR");
    let message = view["failure"]["message"].as_str().expect("why");
    assert!(message.contains("never started") && message.contains("resume_job_id long-ago"), "{message}");
}

#[tokio::test]
async fn a_sync_stopped_in_the_console_can_be_resumed_at_once() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let syncs = format!("/connectors/{CONNECTOR}/syncs");
    let started = api.post(&syncs, json!({})).await;
    let stopped = body(&started)["job_id"].as_str().expect("a job id").to_string();
    api.workflow.end(&stopped, "ABORTED");

    let resumed = api.post(&syncs, json!({ "resume_job_id": stopped })).await;
    assert_eq!(resumed.status, 202, "settled, then resumed: {:?}", resumed.body);
    let view = body(&api.get(&format!("/jobs/{stopped}")).await).clone();
    assert_eq!(view["status"], "GENERIC_ERROR");
}

#[tokio::test]
async fn a_body_that_is_not_an_object_or_a_key_too_short_is_refused_naming_it() {
    let api = Api::new();
    let positional = json!(["Tenable", "tenable", "https://cloud.tenable.example/", ACCESS_KEY, SECRET_KEY]);
    let refused = api.post("/connectors", positional).await;
    assert_eq!((refused.status, field(&refused)), (400, "body"), "{:?}", refused.body);
    assert!(body(&refused)["message"].as_str().unwrap_or_default().contains("JSON object"));

    let short = api.post("/connectors", with(new_connector(), json!({ "secret_key": "abc12" }))).await;
    assert_eq!((short.status, field(&short)), (400, "secret_key"));
    assert!(!format!("{:?}", short.body).contains("abc12"), "an error never quotes a key");
    assert!(api.store.list_connectors().await.unwrap().is_empty(), "nothing was created");
}

#[tokio::test]
async fn a_forged_history_token_is_refused_before_it_reaches_the_store() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    for job_id in ["", "a-job-no-page-listed"] {
        let forged = json!({ "connector_id": CONNECTOR, "started_at": Utc::now(), "job_id": job_id });
        let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, forged.to_string());
        let answer = api.get(&format!("/connectors/{CONNECTOR}/syncs?next_token={token}")).await;
        assert_eq!((answer.status, field(&answer)), (400, "next_token"), "{job_id:?}: {:?}", answer.body);
    }
}

/// A workflow whose service is down.
struct Unavailable;

#[async_trait::async_trait]
impl Workflow for Unavailable {
    async fn start_sync(&self, _job_id: &str, _input: &Value) -> Result<String> {
        Err(SyncError::storage("Step Functions StartExecution", "ServiceUnavailable", true))
    }

    async fn stop(&self, _execution_arn: &str, _cause: &str) -> Result<()> {
        Err(SyncError::storage("Step Functions StopExecution", "ServiceUnavailable", true))
    }

    async fn execution_state(&self, _execution_arn: &str) -> Result<ExecutionState> {
        Err(SyncError::storage("Step Functions DescribeExecution", "ServiceUnavailable", true))
    }
}

#[tokio::test]
async fn a_sync_the_workflow_could_not_start_leaves_the_connector_free() {
    let api = Api::with_workflow(Arc::default(), Some(Arc::new(Unavailable)));
    api.create_connector(CONNECTOR).await;
    let failed = api.post(&format!("/connectors/{CONNECTOR}/syncs"), json!({})).await;
    assert_eq!((failed.status, body(&failed)["error"].clone()), (503, json!("unavailable")), "{:?}", failed.body);
    let record = api.store.connector_record(CONNECTOR).await.unwrap().expect("stored");
    assert_eq!(record.sync_claim, None, "a retry may start at once");
}

#[tokio::test]
async fn a_bad_sync_request_names_the_field() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let syncs = format!("/connectors/{CONNECTOR}/syncs");
    let cases = [
        (json!({ "mode": "everything" }), "mode"),
        (json!({ "scope": { "from": "yesterday" } }), "scope.from"),
        (json!({ "scope": { "severities": ["severe"] } }), "scope.severities[0]"),
        (json!({ "scope": { "severity": ["high"] } }), "scope.severity"),
        (json!({ "scope": { "tags": [{ "category": "env", "values": [] }] } }), "scope.tags[0].values"),
        (json!({ "scope": { "tags": [{ "values": ["prod"] }] } }), "scope.tags[0].category"),
        (
            json!({ "scope": { "tags": [{ "category": "env", "values": ["prod"], "colour": "red" }] } }),
            "scope.tags[0].colour",
        ),
        (json!({ "mode": "incremental", "scope": { "severities": ["high"] } }), "scope"),
        (json!({ "resume_job_id": "no-such-job" }), "resume_job_id"),
        (json!({ "modes": "full" }), "modes"),
    ];
    for (request, expected) in cases {
        let answer = api.post(&syncs, request.clone()).await;
        assert_eq!((answer.status, field(&answer)), (400, expected), "{request}: {:?}", answer.body);
    }
    let from = api.post(&syncs, json!({ "scope": { "from": "yesterday" } })).await;
    assert!(body(&from)["message"].as_str().is_some_and(|m| m.contains("RFC 3339")), "{:?}", from.body);

    api.patch(&format!("/connectors/{CONNECTOR}"), json!({ "default_mode": "incremental" })).await;
    let scoped_default = api.post(&syncs, json!({ "scope": { "severities": ["high"] } })).await;
    assert_eq!(field(&scoped_default), "scope", "the default mode is incremental");
    assert_eq!(api.post("/connectors/tenable-zz/syncs", json!({})).await.status, 404);
    assert!(api.workflow.executions().is_empty());
}

#[tokio::test]
async fn a_resumed_sync_continues_an_ended_job_of_the_same_connector() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    api.create_connector("tenable-other").await;
    let syncs = format!("/connectors/{CONNECTOR}/syncs");
    let mut failed = job("failed-1", CONNECTOR, JobStatus::ApiError, Utc::now() - Duration::hours(1));
    failed.mode = SyncMode::AssetsOnly;
    failed.scope.severities = vec![crate::model::Severity::Critical];
    api.store.create_job(&failed).await.unwrap();
    api.store.create_job(&job("other-1", "tenable-other", JobStatus::Finished, Utc::now())).await.unwrap();
    api.store.create_job(&job("running-1", CONNECTOR, JobStatus::Started, Utc::now())).await.unwrap();
    api.workflow.start_sync("running-1", &json!({})).await.unwrap();

    let others = api.post(&syncs, json!({ "resume_job_id": "other-1" })).await;
    assert_eq!((others.status, field(&others)), (400, "resume_job_id"));
    assert_eq!(api.post(&syncs, json!({ "resume_job_id": "running-1" })).await.status, 409);
    api.store.finish_job("running-1", &finished_now()).await.unwrap();

    let resumed = api.post(&syncs, json!({ "resume_job_id": "failed-1" })).await;
    assert_eq!(resumed.status, 202, "{:?}", resumed.body);
    assert_eq!(body(&resumed)["resumed_from"], "failed-1");
    let executions = api.workflow.executions();
    let input = &executions.last().expect("the resumed sync's execution").input;
    assert_eq!(input["resumed_from"], "failed-1");
    assert_eq!(
        (input["mode"].clone(), input["scope"].clone()),
        (json!("assets_only"), json!({ "severities": ["critical"] }))
    );
    let job_id = body(&resumed)["job_id"].as_str().expect("a job id").to_string();
    let shown = api.get(&format!("/jobs/{job_id}")).await;
    assert_eq!(body(&shown)["resumed_from"], "failed-1", "the new job names the one it took up");
}

/// A job half way through: stages, chunks (one retried, one failed), a failure.
async fn job_with_history(api: &Api) -> SyncJob {
    let start = Utc::now() - Duration::minutes(10);
    let mut running = job("job-1", CONNECTOR, JobStatus::Delegated, start);
    running.current_stage = Some(Stage::Processing);
    running.stages.insert(Stage::Initiating, run(start, 1, StageOutcome::Succeeded));
    running.stages.insert(Stage::ConnectivityTest, run(start + Duration::seconds(1), 1, StageOutcome::Succeeded));
    running.stages.insert(Stage::Fetching, run(start + Duration::seconds(2), 60, StageOutcome::Succeeded));
    running.stages.insert(Stage::Normalizing, run(start + Duration::seconds(3), 70, StageOutcome::Failed));
    running.stages.insert(Stage::Processing, run(start + Duration::seconds(4), 0, StageOutcome::Running));
    running.chunks = ChunkCounts { total: 4, processed: 2, failed: 0, ..Default::default() };
    running.failure =
        Some(failure(Stage::Normalizing, "chunk vulns-00002 is not valid JSON", start + Duration::seconds(50)));
    // Its execution runs.
    api.workflow.start_sync(&running.job_id, &json!({})).await.unwrap();
    api.store.create_job(&running).await.unwrap();
    for record in [
        chunk("job-1", "assets-00001", ChunkStatus::Processed, 0, start + Duration::seconds(20)),
        chunk("job-1", "vulns-00001", ChunkStatus::Processed, 2, start + Duration::seconds(40)),
        chunk("job-1", "vulns-00002", ChunkStatus::Failed, 3, start + Duration::seconds(50)),
        chunk("job-1", "vulns-00003", ChunkStatus::Fetched, 0, start + Duration::seconds(55)),
    ] {
        api.store.save_chunk(&record).await.unwrap();
    }
    running
}

#[tokio::test]
async fn a_job_shows_its_stages_progress_failure_and_log() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    job_with_history(&api).await;
    let answer = api.get("/jobs/job-1").await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let view = body(&answer);
    assert_eq!((view["status"].clone(), view["current_stage"].clone()), (json!("DELEGATED"), json!("Processing")));
    assert_eq!(view["chunks"], json!({ "total": 4, "processed": 2, "failed": 0, "carried_over": 0, "retried": 0 }));
    assert_eq!(view["percent"], 50);
    assert!(view["eta_seconds"].as_u64().is_some_and(|eta| (590..=610).contains(&eta)), "10 minutes for half: {view}");
    assert_eq!(view["likely_stalled"], false);
    let stages = view["stages"].as_array().expect("stages");
    let names: Vec<&str> = stages.iter().filter_map(|s| s["stage"].as_str()).collect();
    assert_eq!(names, ["Initiating", "ConnectivityTest", "Fetching", "Normalizing", "Processing"]);
    assert_eq!((stages[2]["duration_ms"].clone(), stages[2]["outcome"].clone()), (json!(60_000), json!("succeeded")));
    assert_eq!((stages[4]["ended_at"].clone(), stages[4]["duration_ms"].clone()), (Value::Null, Value::Null));
    assert_eq!(view["failure"]["stage"], "Normalizing");
    assert_eq!(view["failure"]["http_status"], 200);
    assert_eq!((view["ended_at"].clone(), view["duration_ms"].clone()), (Value::Null, Value::Null));

    let log = view["log"].as_array().expect("a log");
    let levels = |level: &str| log.iter().filter(|entry| entry["level"] == level).count();
    assert_eq!((levels("info"), levels("warn"), levels("error")), (9, 1, 2), "{log:#?}");
    let times: Vec<&str> = log.iter().filter_map(|entry| entry["at"].as_str()).collect();
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "in order: {times:?}");
    let retried = log.iter().find(|entry| entry["level"] == "warn").expect("the retried chunk");
    assert_eq!(retried["chunk"], "vulns-00001");
    assert!(retried["message"].as_str().is_some_and(|m| m.contains("2 failed attempt")));

    let warnings = api.get("/jobs/job-1?level=warn").await;
    let levels: Vec<&str> =
        body(&warnings)["log"].as_array().expect("a log").iter().filter_map(|e| e["level"].as_str()).collect();
    assert_eq!(levels, ["warn", "error", "error"]);
    let errors = api.get("/jobs/job-1?level=error").await;
    assert_eq!(body(&errors)["log"].as_array().map(Vec::len), Some(2));
    let bad_level = api.get("/jobs/job-1?level=debug").await;
    assert_eq!((bad_level.status, field(&bad_level)), (400, "level"));
    let unknown = api.get("/jobs/job-1?levle=warn").await;
    assert_eq!((unknown.status, field(&unknown)), (400, "levle"));
    assert_eq!(api.get("/jobs/no-such-job").await.status, 404);
    // API Gateway hands the path decoded: the router reads each segment back as it was.
    let odd_id = api.get("/jobs/a b%2Fc:d@e").await;
    assert_eq!(odd_id.status, 404);
    assert!(
        body(&odd_id)["message"].as_str().is_some_and(|m| m.starts_with("there is no job a b%2Fc:d@e:")),
        "{:?}",
        odd_id.body
    );
}

#[tokio::test]
async fn the_history_filters_on_the_most_serious_entry_of_each_jobs_log() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let start = Utc::now() - Duration::hours(1);
    // Each sync's chunks: their status and failed attempts.
    type Chunks = &'static [(ChunkStatus, u32)];
    let syncs: [(&str, JobStatus, Chunks); 4] = [
        ("clean", JobStatus::Finished, &[(ChunkStatus::Processed, 0), (ChunkStatus::Processed, 0)]),
        ("retried", JobStatus::Finished, &[(ChunkStatus::Processed, 0), (ChunkStatus::Processed, 2)]),
        ("cancelled", JobStatus::Cancelled, &[(ChunkStatus::Processed, 0)]),
        ("failed", JobStatus::ApiError, &[(ChunkStatus::Processed, 0), (ChunkStatus::Failed, 3)]),
    ];
    for (minute, (job_id, status, chunks)) in (0..).zip(syncs) {
        let records: Vec<ChunkRecord> = (1..)
            .zip(chunks)
            .map(|(id, (chunk_status, attempts))| {
                chunk(job_id, &format!("vulns-{id:05}"), *chunk_status, *attempts, start)
            })
            .collect();
        // Settled as finalize settles a job.
        let mut ended = job(job_id, CONNECTOR, status, start + Duration::minutes(minute));
        ended.chunks = ChunkCounts::settled(records.len() as u64, &records);
        if status == JobStatus::ApiError {
            ended.failure = Some(failure(Stage::Normalizing, "chunk vulns-00002 is not valid JSON", start));
        }
        api.store.create_job(&ended).await.unwrap();
        for record in &records {
            api.store.save_chunk(record).await.unwrap();
        }
    }

    let syncs_path = format!("/connectors/{CONNECTOR}/syncs");
    let history = api.get(&syncs_path).await;
    let rows = body(&history)["syncs"].as_array().expect("rows");
    let levels: Vec<&str> = rows.iter().filter_map(|row| row["log_level"].as_str()).collect();
    assert_eq!(levels, ["error", "warn", "warn", "info"]);
    for row in rows {
        let job_id = row["job_id"].as_str().expect("an id");
        let view = api.get(&format!("/jobs/{job_id}")).await;
        let log = body(&view)["log"].as_array().expect("a log");
        let most_serious =
            ["error", "warn", "info"].into_iter().find(|level| log.iter().any(|entry| entry["level"] == *level));
        assert_eq!(row["log_level"].as_str(), most_serious, "{job_id}: {log:#?}");
    }
    assert_eq!(job_ids(&api.get(&format!("{syncs_path}?level=warn")).await), ["failed", "cancelled", "retried"]);
    assert_eq!(job_ids(&api.get(&format!("{syncs_path}?level=error&status=API_ERROR")).await), ["failed"]);
    let bad = api.get(&format!("{syncs_path}?level=debug")).await;
    assert_eq!((bad.status, field(&bad)), (400, "level"));
}

#[tokio::test]
async fn a_resumed_job_shows_what_it_carried_over_or_why_it_started_over() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let start = Utc::now() - Duration::minutes(10);
    let mut resumed = job("job-2", CONNECTOR, JobStatus::Finished, start);
    resumed.resumed_from = Some("job-1".into());
    resumed.carries_from = vec!["job-1".into(), "job-0".into()];
    // One chunk of its own; carrying the other two counts them.
    resumed.chunks = ChunkCounts { total: 3, processed: 1, failed: 0, carried_over: 0, retried: 0 };
    resumed.exports = vec![ExportRef {
        kind: ExportKind::Vulns,
        export_uuid: "5b0c9f5e-7c52-4d0b-9b1e-2f4c8a1d9e77".into(),
        requested_at: start - Duration::hours(1),
        since: 0,
        adopted: false,
        resumed_from: Some("job-1".into()),
    }];
    api.store.create_job(&resumed).await.unwrap();
    let carried = [("vulns-00001", "job-0"), ("vulns-00002", "job-1")].map(|(chunk_key, from)| ChunkRecord {
        carried_from: Some(from.into()),
        seen_assets: SeenAssets::default(),
        ..chunk("job-2", chunk_key, ChunkStatus::Processed, 0, start)
    });
    assert_eq!(api.store.carry_over_chunks(&carried).await.unwrap(), 2);

    let answer = api.get("/jobs/job-2").await;
    let view = body(&answer);
    assert_eq!(view["carries_from"], json!(["job-1", "job-0"]));
    assert_eq!(view["chunks"], json!({ "total": 3, "processed": 3, "failed": 0, "carried_over": 2, "retried": 0 }));
    assert_eq!(view["exports"][0]["resumed_from"], "job-1");
    let messages: Vec<&str> =
        view["log"].as_array().expect("a log").iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(messages.iter().any(|m| m.starts_with("took up job job-1's vulns export")), "{messages:#?}");
    assert!(
        messages.contains(&"2 chunk(s) carried over from job(s) job-0, job-1, which had processed them"),
        "{messages:#?}"
    );

    let mut fresh = job("job-3", CONNECTOR, JobStatus::Started, Utc::now());
    fresh.resumed_from = Some("job-2".into());
    fresh.starts_over_because = Some("job job-2 is FINISHED, not stopped part way".into());
    api.store.create_job(&fresh).await.unwrap();
    let answer = api.get("/jobs/job-3?level=warn").await;
    let view = body(&answer);
    assert_eq!(
        view["log"][0]["message"],
        "resumes job job-2 from the start: job job-2 is FINISHED, not stopped part way"
    );
    assert_eq!(view["starts_over_because"], "job job-2 is FINISHED, not stopped part way");
}

#[tokio::test]
async fn the_status_view_is_what_a_progress_bar_needs() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    job_with_history(&api).await;
    let answer = api.get("/jobs/job-1/status").await;
    let view = body(&answer);
    let mut keys: Vec<&str> = view.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["chunks", "current_stage", "eta_seconds", "job_id", "likely_stalled", "percent", "status", "total_is_final"]
    );
    assert_eq!(api.get("/jobs/no-such-job/status").await.status, 404);
}

#[test]
fn the_estimate_waits_for_15_percent_then_extrapolates_and_is_capped() {
    let now = Utc::now();
    let at = |processed: u64, total: u64, elapsed_seconds: i64| {
        let mut running = job("job-1", CONNECTOR, JobStatus::Delegated, now - Duration::seconds(elapsed_seconds));
        running.chunks = ChunkCounts { total, processed, failed: 0, ..Default::default() };
        progress(&running, now)
    };
    let early = serde_json::to_value(at(14, 100, 600)).unwrap();
    assert_eq!(early.get("eta_seconds"), None, "absent, not null, before 15%");
    assert_eq!((early["percent"].clone(), early["likely_stalled"].clone()), (json!(14), json!(false)));

    let quarter = serde_json::to_value(at(25, 100, 300)).unwrap();
    assert_eq!(quarter["eta_seconds"], 900, "300 s for a quarter: 900 s for the rest");
    assert_eq!(serde_json::to_value(at(15, 100, 150)).unwrap()["eta_seconds"], 850);

    let slow = serde_json::to_value(at(20, 100, 3_601)).unwrap();
    assert_eq!((slow["eta_seconds"].clone(), slow["likely_stalled"].clone()), (json!(14_400), json!(true)));
    let just_under = serde_json::to_value(at(20, 100, 3_600)).unwrap();
    assert_eq!(
        (just_under["eta_seconds"].clone(), just_under["likely_stalled"].clone()),
        (json!(14_400), json!(false))
    );

    let unknown_total = serde_json::to_value(at(0, 0, 60)).unwrap();
    assert_eq!((unknown_total["percent"].clone(), unknown_total.get("eta_seconds")), (json!(0), None));
    let mut ended = job("job-2", CONNECTOR, JobStatus::Finished, now - Duration::seconds(60));
    ended.chunks = ChunkCounts { total: 3, processed: 3, failed: 0, ..Default::default() };
    let finished = serde_json::to_value(progress(&ended, now)).unwrap();
    assert_eq!((finished["percent"].clone(), finished.get("eta_seconds")), (json!(100), None));
}

#[test]
fn until_every_export_told_its_chunks_the_sync_is_not_done_and_has_no_estimate() {
    let now = Utc::now();
    // A full sync: the assets export's 4 chunks are processed, the vulns export runs.
    let mut running = job("job-1", CONNECTOR, JobStatus::Delegated, now - Duration::seconds(120));
    running.counted_exports = vec![ExportKind::Assets];
    running.chunks = ChunkCounts { total: 4, processed: 4, ..Default::default() };
    let assets_done = serde_json::to_value(progress(&running, now)).unwrap();
    assert_eq!(
        (&assets_done["percent"], &assets_done["total_is_final"], assets_done.get("eta_seconds")),
        (&json!(99), &json!(false), None)
    );

    running.counted_exports.push(ExportKind::Vulns);
    running.chunks.total = 12;
    let both_told = serde_json::to_value(progress(&running, now)).unwrap();
    assert_eq!((&both_told["percent"], &both_told["total_is_final"]), (&json!(33), &json!(true)));
    assert_eq!(both_told["eta_seconds"], 240, "120 s for a third: 240 s for the rest");
}

/// Seven jobs of one connector, a minute apart, oldest first; one of another connector.
async fn history_of_seven(api: &Api) -> DateTime<Utc> {
    let base = DateTime::parse_from_rfc3339("2024-03-01T08:00:00Z").expect("a time").with_timezone(&Utc);
    let kinds = [
        (SyncMode::Full, JobStatus::Finished, Trigger::Scheduled),
        (SyncMode::Incremental, JobStatus::Finished, Trigger::Scheduled),
        (SyncMode::Full, JobStatus::CredentialError, Trigger::Manual { by: "ana@example.com".into() }),
        (SyncMode::AssetsOnly, JobStatus::Finished, Trigger::Manual { by: "ana@example.com".into() }),
        (SyncMode::Full, JobStatus::Cancelled, Trigger::Scheduled),
        (SyncMode::VulnsOnly, JobStatus::ApiError, Trigger::Manual { by: "rui@example.com".into() }),
        (SyncMode::Full, JobStatus::Finished, Trigger::Scheduled),
    ];
    for (index, (mode, status, trigger)) in kinds.into_iter().enumerate() {
        let start = base + Duration::minutes(index as i64);
        let mut past = job(&format!("job-{index}"), CONNECTOR, status, start);
        (past.mode, past.trigger) = (mode, trigger);
        let reached = if status == JobStatus::CredentialError { 2 } else { 6 };
        for (offset, stage) in Stage::ALL.into_iter().take(reached).enumerate() {
            past.stages.insert(stage, run(start + Duration::seconds(offset as i64 * 10), 10, StageOutcome::Succeeded));
        }
        api.store.create_job(&past).await.unwrap();
    }
    api.store.create_job(&job("elsewhere", "tenable-other", JobStatus::Finished, base)).await.unwrap();
    base
}

fn job_ids(answer: &ApiResponse) -> Vec<String> {
    body(answer)["syncs"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|row| row["job_id"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn the_history_lists_newest_first_with_each_syncs_timings() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    history_of_seven(&api).await;
    let answer = api.get(&format!("/connectors/{CONNECTOR}/syncs")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(job_ids(&answer), ["job-6", "job-5", "job-4", "job-3", "job-2", "job-1", "job-0"]);
    assert!(body(&answer).get("next_token").is_none());
    let row = &body(&answer)["syncs"][0];
    assert_eq!(row["activity"], "full");
    assert_eq!(row["stage"], "Finalizing");
    assert_eq!(row["trigger"], json!({ "type": "scheduled" }));
    assert_eq!(row["duration_ms"], 300_000);
    assert_eq!(row["ingestion_ms"], 10_000, "the Fetching stage");
    assert_eq!(row["processing_ms"], 20_000, "Normalizing's start to Processing's end");
    let failed = &body(&answer)["syncs"][4];
    assert_eq!(
        (failed["stage"].clone(), failed["ingestion_ms"].clone(), failed["processing_ms"].clone()),
        (json!("ConnectivityTest"), Value::Null, Value::Null)
    );
    assert_eq!(failed["trigger"], json!({ "type": "manual", "by": "ana@example.com" }));
    assert_eq!(api.get("/connectors/tenable-zz/syncs").await.status, 404);
}

#[tokio::test]
async fn the_history_filters_by_activity_status_stage_trigger_and_time() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    history_of_seven(&api).await;
    let syncs = format!("/connectors/{CONNECTOR}/syncs");
    let cases = [
        ("activity=full", vec!["job-6", "job-4", "job-2", "job-0"]),
        ("activity=incremental,vulns_only", vec!["job-5", "job-1"]),
        ("status=FINISHED", vec!["job-6", "job-3", "job-1", "job-0"]),
        ("status=CANCELLED&status=API_ERROR", vec!["job-5", "job-4"]),
        ("stage=ConnectivityTest", vec!["job-2"]),
        ("trigger=manual", vec!["job-5", "job-3", "job-2"]),
        ("trigger=scheduled&activity=full&status=FINISHED", vec!["job-6", "job-0"]),
        ("from=2024-03-01T08:02:00Z&to=2024-03-01T08:04:00Z", vec!["job-4", "job-3", "job-2"]),
        ("from=2024-03-01T08:05:30Z", vec!["job-6"]),
    ];
    for (query, expected) in cases {
        let answer = api.get(&format!("{syncs}?{query}")).await;
        assert_eq!(job_ids(&answer), expected, "{query}");
    }
    let refused = [
        ("activity=everything", "activity"),
        ("status=DONE", "status"),
        ("stage=Sleeping", "stage"),
        ("trigger=cron", "trigger"),
        ("from=yesterday", "from"),
        ("from=2024-03-02T00:00:00Z&to=2024-03-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("next_token=garbage", "next_token"),
        ("state=FINISHED", "state"),
    ];
    for (query, expected) in refused {
        let answer = api.get(&format!("{syncs}?{query}")).await;
        assert_eq!((answer.status, field(&answer)), (400, expected), "{query}: {:?}", answer.body);
    }
}

#[tokio::test]
async fn the_history_pages_with_an_opaque_token() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    api.create_connector("tenable-other").await;
    history_of_seven(&api).await;
    let syncs = format!("/connectors/{CONNECTOR}/syncs");
    let mut seen = Vec::new();
    let mut target = format!("{syncs}?limit=3");
    loop {
        let page = api.get(&target).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let ids = job_ids(&page);
        assert!(ids.len() <= 3);
        seen.extend(ids);
        match body(&page)["next_token"].as_str() {
            Some(token) => target = format!("{syncs}?limit=3&next_token={token}"),
            None => break,
        }
    }
    assert_eq!(seen, ["job-6", "job-5", "job-4", "job-3", "job-2", "job-1", "job-0"]);

    let filtered = api.get(&format!("{syncs}?limit=2&status=FINISHED")).await;
    assert_eq!(job_ids(&filtered), ["job-6", "job-3"]);
    let token = body(&filtered)["next_token"].as_str().expect("more follow");
    let next = api.get(&format!("{syncs}?limit=2&status=FINISHED&next_token={token}")).await;
    assert_eq!(job_ids(&next), ["job-1", "job-0"]);
    let elsewhere = api.get(&format!("/connectors/tenable-other/syncs?next_token={token}")).await;
    assert_eq!((elsewhere.status, field(&elsewhere)), (400, "next_token"), "a token belongs to its connector");
}

#[tokio::test]
async fn cancelling_stops_the_execution_and_keeps_what_was_processed() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    let started = api.start_running_sync(CONNECTOR).await;
    let job_id = started.job_id.as_str();
    let now = Utc::now();
    api.store.stage_started(job_id, Stage::Fetching, now).await.unwrap();
    api.store.add_total_chunks(job_id, ExportKind::Vulns, 3).await.unwrap();
    for record in [
        chunk(job_id, "vulns-00001", ChunkStatus::Processed, 0, now),
        chunk(job_id, "vulns-00002", ChunkStatus::Processed, 0, now),
        chunk(job_id, "vulns-00003", ChunkStatus::Fetched, 0, now),
        chunk(job_id, "vulns-00004", ChunkStatus::Normalized, 0, now),
    ] {
        api.store.save_chunk(&record).await.unwrap();
    }

    let cancelled = api.post(&format!("/jobs/{job_id}/cancel"), json!({ "reason": "wrong scope" })).await;
    assert_eq!(cancelled.status, 202, "{:?}", cancelled.body);
    let view = body(&cancelled);
    assert_eq!(view["status"], "CANCELLED");
    assert_eq!(
        view["chunks"],
        json!({ "total": 4, "processed": 2, "failed": 2, "carried_over": 0, "retried": 0 }),
        "counted from the chunk records"
    );
    assert_eq!(
        (view["current_stage"].clone(), view["stages"][0]["outcome"].clone()),
        (Value::Null, json!("cancelled"))
    );
    assert!(view["ended_at"].is_string());
    assert!(view["log"].as_array().is_some_and(|log| {
        log.iter().any(|e| e["level"] == "warn" && e["message"].as_str().is_some_and(|m| m.contains("CANCELLED")))
    }));
    let execution = api.workflow.executions().into_iter().find(|e| e.name == job_id).expect("the execution");
    assert_eq!(execution.stopped.as_deref(), Some("cancelled by ana@example.com: wrong scope"));

    // The stage in flight when the execution stopped ends after the cancel: the job
    // keeps what the cancel settled.
    api.store.stage_started(job_id, Stage::Normalizing, now).await.unwrap();
    api.store.set_status(job_id, JobStatus::Delegated).await.unwrap();
    api.store.stage_ended(job_id, Stage::Fetching, StageOutcome::Succeeded, now).await.unwrap();
    let late = RecordCounts { findings_received: 10, findings_new: 10, ..Default::default() };
    assert!(
        !api.store.commit_chunk(job_id, "vulns-00003", &late, &SeenAssets::default(), now).await.unwrap(),
        "nothing commits into it"
    );
    let carried = chunk(job_id, "vulns-00005", ChunkStatus::Processed, 0, now);
    assert_eq!(api.store.carry_over_chunks(&[carried]).await.unwrap(), 0, "nothing is carried into it");
    let chunk_3 = api.store.get_chunk(job_id, "vulns-00003").await.unwrap().expect("the chunk");
    assert_eq!(chunk_3.status, ChunkStatus::Fetched, "its chunk is not marked without the job's counts");
    let shown = api.get(&format!("/jobs/{job_id}")).await;
    let shown = body(&shown);
    for field in ["status", "current_stage", "stages", "chunks", "counts", "ended_at"] {
        assert_eq!(shown[field], view[field], "{field}");
    }

    let again = api.post(&format!("/jobs/{job_id}/cancel"), json!({})).await;
    assert_eq!(again.status, 409, "{:?}", again.body);
    assert_eq!(api.post("/jobs/no-such-job/cancel", json!({})).await.status, 404);
    assert_eq!(
        api.post(&format!("/connectors/{CONNECTOR}/syncs"), json!({})).await.status,
        202,
        "the connector is free again"
    );
}

#[tokio::test]
async fn no_answer_ever_holds_a_key() {
    let api = Api::new();
    api.create_connector(CONNECTOR).await;
    api.post("/connectors", new_connector()).await;
    api.get("/connectors").await;
    api.get(&format!("/connectors/{CONNECTOR}")).await;
    api.patch(&format!("/connectors/{CONNECTOR}"), json!({ "access_key": ACCESS_KEY, "secret_key": SECRET_KEY })).await;
    api.patch(&format!("/connectors/{CONNECTOR}"), json!({ "access_key": ACCESS_KEY })).await;
    api.post(
        "/connectors",
        with(new_connector(), json!({ "access_key": [ACCESS_KEY], "secret_key": { "k": SECRET_KEY } })),
    )
    .await;
    api.post("/connectors", with(new_connector(), json!({ "secret_key": 1_234_567_890_123_456_u64 }))).await;
    api.post(
        "/connectors",
        with(new_connector(), json!({ "base_url": format!("https://{ACCESS_KEY}:{SECRET_KEY}@cloud.tenable.com") })),
    )
    .await;
    api.post("/connectors", json!(SECRET_KEY)).await;
    let job = api.start_running_sync(CONNECTOR).await;
    api.get(&format!("/jobs/{}", job.job_id)).await;
    api.get(&format!("/connectors/{CONNECTOR}/syncs")).await;
    api.post(&format!("/jobs/{}/cancel", job.job_id), json!({})).await;
    let answers = api.answers();
    for secret in [ACCESS_KEY, SECRET_KEY, "1234567890123456"] {
        assert!(!answers.contains(secret), "{secret} in {answers}");
    }
    assert!(answers.contains("access_key") || answers.contains("secret_key"), "the errors name the fields");
}

mod lambda {
    use lambda_http::Body;

    use super::*;
    use crate::auth::{self, Role};

    /// `GET /connectors/tenable-1/syncs` as API Gateway hands it on after `authorizer`
    /// ran, with a query both single- and multi-valued and a body.
    fn history_event(authorizer: Value, headers: Value) -> Value {
        let mut event = rest_event(
            "GET",
            "/connectors/tenable-1/syncs",
            json!({ "status": ["FINISHED", "CANCELLED"], "limit": ["5"] }),
            Some(json!({ "mode": "full" })),
            authorizer,
            headers,
        );
        event["queryStringParameters"] = json!({ "status": "CANCELLED" });
        event
    }

    /// `event` as the sync's start: a POST with its body and no query.
    fn start_sync(event: &Value) -> Value {
        let mut start = event.clone();
        start["httpMethod"] = json!("POST");
        start["multiValueQueryStringParameters"] = json!({});
        start["queryStringParameters"] = json!({});
        start
    }

    #[tokio::test]
    async fn an_api_gateway_event_is_answered_for_the_path_without_the_stage_and_the_authorizers_caller() {
        let api = Api::new();
        api.create_connector("tenable-1").await;
        let start = Utc::now() - Duration::hours(1);
        let statuses = [JobStatus::Finished, JobStatus::Cancelled, JobStatus::ApiError];
        for minute in 0..9 {
            let job_id = format!("job-{minute}");
            let started_at = start + Duration::minutes(minute);
            let status = statuses[minute as usize % statuses.len()];
            api.store.create_job(&job(&job_id, "tenable-1", status, started_at)).await.unwrap();
        }
        let event = history_event(authorizer(&admin()), json!({}));
        let listed = read(answer(&api.router, &event).await).await;
        assert_eq!(listed.status, 200, "{:?}", listed.body);
        // Every value of the multi-valued parameters (the single-valued one names only
        // CANCELLED), five at the most, newest first.
        assert_eq!(job_ids(&listed), ["job-7", "job-6", "job-4", "job-3", "job-1"]);

        let started = read(answer(&api.router, &start_sync(&event)).await).await;
        assert_eq!(started.status, 202, "{:?}", started.body);
        let job_id = body(&started)["job_id"].as_str().expect("a job id");
        let job = api.store.get_job(job_id).await.unwrap().expect("the job");
        assert_eq!((job.mode, job.trigger), (SyncMode::Full, Trigger::Manual { by: "ana@example.com".into() }));
    }

    #[tokio::test]
    async fn without_an_authorizer_the_bearer_token_is_checked_here() {
        let api = Api::new();
        api.create_connector("tenable-1").await;
        let token = auth::mint(TOKEN_KEY, "rui@example.com", Role::Reader, Duration::hours(1), Utc::now());
        let event = history_event(Value::Null, json!({ "Authorization": format!("Bearer {token}") }));
        assert_eq!(read(answer(&api.router, &event).await).await.status, 200);
        let refused = read(answer(&api.router, &start_sync(&event)).await).await;
        assert_eq!(refused.status, 403, "{:?}", refused.body);
        let message = body(&refused)["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(r#"rui@example.com has the role "reader""#), "the token's caller: {message}");

        let foreign = router(api.services.clone(), Some(b"another deployment's key entirely".to_vec()));
        assert_eq!(read(answer(&foreign, &event).await).await.status, 401, "a foreign signature");
        let keyless = router(api.services.clone(), None);
        assert_eq!(read(answer(&keyless, &event).await).await.status, 401, "no key: no token is trusted");
        let gateway_sets_the_length = answer(&api.router, &event).await;
        assert!(!gateway_sets_the_length.headers().contains_key("content-length"), "API Gateway sets it");
        let anonymous = read(answer(&api.router, &history_event(Value::Null, json!({}))).await).await;
        assert_eq!(anonymous.status, 401);
        let refused = body(&anonymous)["message"].as_str().unwrap_or_default();
        assert!(refused.contains("Authorization: Bearer"), "{refused}");
    }

    #[tokio::test]
    async fn answers_are_json_and_never_cached() {
        let api = Api::new();
        api.create_connector(CONNECTOR).await;
        api.start_running_sync(CONNECTOR).await;
        let syncs = format!("/connectors/{CONNECTOR}/syncs");
        let again = rest_event("POST", &syncs, json!({}), None, authorizer(&admin()), json!({}));
        // As lambda_http hands the answer back to API Gateway.
        let conflict = lambda_http::IntoResponse::into_response(answer(&api.router, &again).await).await;
        assert_eq!(conflict.status(), 409);
        assert_eq!(conflict.headers()["content-type"], "application/json");
        assert_eq!(conflict.headers()["cache-control"], "no-store");
        assert!(matches!(conflict.body(), Body::Text(text) if text.contains("conflict")));

        api.create_connector("tenable-idle").await;
        let delete = rest_event("DELETE", "/connectors/tenable-idle", json!({}), None, authorizer(&admin()), json!({}));
        let empty = lambda_http::IntoResponse::into_response(answer(&api.router, &delete).await).await;
        assert_eq!(empty.status(), 204);
        assert!(empty.body().is_empty() && !empty.headers().contains_key("content-type"));
    }

    #[tokio::test]
    async fn the_stage_and_empty_segments_never_reach_the_routes() {
        let api = Api::new();
        api.create_connector(CONNECTOR).await;
        for path in [format!("/connectors/{CONNECTOR}/"), format!("//connectors/{CONNECTOR}")] {
            let event = rest_event("GET", &path, json!({}), None, authorizer(&reader()), json!({}));
            let answer = read(answer(&api.router, &event).await).await;
            assert_eq!((answer.status, body(&answer)["connector_id"].clone()), (200, json!(CONNECTOR)), "{path}");
        }
        let unknown = rest_event("GET", "/v2/connectors", json!({}), None, authorizer(&reader()), json!({}));
        let answer = read(answer(&api.router, &unknown).await).await;
        assert_eq!(answer.status, 404);
        assert_eq!(
            body(&answer)["message"],
            "there is no endpoint /v2/connectors: see api/openapi.yaml for the routes",
            "the path as asked"
        );
    }
}

/// A job's end as FINISHED now, with no chunks.
fn finished_now() -> JobEnding {
    JobEnding { status: JobStatus::Finished, chunks: ChunkCounts::default(), ended_at: Utc::now() }
}
