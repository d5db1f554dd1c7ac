//! The end-to-end harness: a deployed vulnflow stack on LocalStack (brought up by
//! `infra/local/test.sh`), read through the real AWS SDK, and a Tenable simulator on
//! loopback that the deployed functions call.

pub mod api;
pub mod scale;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use serde_json::json;
use tenable_simulator::{RunningSimulator, SimulatorConfig};
use vulnflow_shared::auth::{self, Role, signing_key};
use vulnflow_shared::config::s3_client;
use vulnflow_shared::model::{ChunkRecord, Connector, ScannerKind, SyncJob, SyncMode};
use vulnflow_shared::store::dynamodb::{DynamoStore, Tables, findings_in_items};
use vulnflow_shared::store::{ConnectorStore, JobStore, StoredFinding};

pub const LOCAL_ENDPOINT: &str = "http://127.0.0.1:4566";
/// A sync of a few thousand findings takes seconds; this only stops a hung test.
const EXECUTION_TIMEOUT: Duration = Duration::from_secs(600);

/// The deployed stack, as `infra/local/deploy.py` recorded its outputs.
pub struct Stack {
    pub outputs: HashMap<String, String>,
    pub sfn: aws_sdk_sfn::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub store: DynamoStore,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Stack {
    /// The running local stack. Panics with what to run when there is none: these
    /// tests are never skipped.
    pub async fn local() -> Stack {
        let outputs_file = repo_root().join(".local/stack-outputs.json");
        let text = std::fs::read_to_string(&outputs_file).unwrap_or_else(|_| {
            panic!(
                "{} is missing: run the tests with infra/local/test.sh, which starts and deploys the local stack",
                outputs_file.display()
            )
        });
        let outputs: HashMap<String, String> = serde_json::from_str(&text).expect("the stack outputs are JSON");
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(LOCAL_ENDPOINT)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sfn::config::Credentials::new("test", "test", None, None, "vulnflow-e2e"))
            .load()
            .await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let output = |key: &str| outputs.get(key).cloned().unwrap_or_else(|| panic!("the stack has no output {key}"));
        let tables = Tables {
            connectors: output("ConnectorsTable"),
            jobs: output("JobsTable"),
            chunks: output("ChunksTable"),
            assets: output("AssetsTable"),
            findings: output("FindingsTable"),
        };
        Stack {
            sfn: aws_sdk_sfn::Client::new(&config),
            s3: s3_client(&config, true),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            store: DynamoStore::new(dynamodb.clone(), tables, chrono::Duration::days(14)),
            dynamodb,
            outputs,
        }
    }

    pub fn output(&self, key: &str) -> &str {
        self.outputs.get(key).map(String::as_str).unwrap_or_else(|| panic!("the stack has no output {key}"))
    }

    /// A connector to the simulator, with its keys in Secrets Manager as a user would
    /// keep them.
    pub async fn connector_for(&self, simulator: &RunningSimulator, access_key: &str, secret_key: &str) -> Connector {
        let connector_id = format!("tenable-{}", uuid::Uuid::new_v4().simple());
        let secret_id = format!("vulnflow/{connector_id}");
        self.secrets
            .create_secret()
            .name(&secret_id)
            .secret_string(json!({ "access_key": access_key, "secret_key": secret_key }).to_string())
            .send()
            .await
            .expect("creates the connector's secret");
        let connector = Connector {
            connector_id,
            name: "Tenable (simulator)".into(),
            kind: ScannerKind::Tenable,
            base_url: simulator.base_url.clone(),
            secret_id,
            default_mode: SyncMode::Full,
            sync_cursor: None,
        };
        self.store.put_connector(&connector).await.expect("stores the connector");
        connector
    }

    /// Starts a manual sync in the connector's default mode and waits for its execution to end.
    pub async fn run_sync(&self, connector: &Connector) -> SyncRun {
        self.run_sync_with(connector, json!({})).await
    }

    /// The same, with more execution input (`mode`, `scope`).
    pub async fn run_sync_with(&self, connector: &Connector, request: serde_json::Value) -> SyncRun {
        let started = self.start_sync(connector, request).await;
        self.wait_for(started, |_| {}).await
    }

    /// Starts a manual sync: the execution's name is the job id.
    pub async fn start_sync(&self, connector: &Connector, request: serde_json::Value) -> StartedSync {
        let job_id = uuid::Uuid::new_v4().to_string();
        let mut input =
            json!({ "connector_id": connector.connector_id, "trigger": { "type": "manual", "by": "e2e@example.com" } });
        if let (Some(input), Some(request)) = (input.as_object_mut(), request.as_object()) {
            input.extend(request.clone());
        }
        let started = self
            .sfn
            .start_execution()
            .state_machine_arn(self.output("StateMachineArn"))
            .name(&job_id)
            .input(input.to_string())
            .send()
            .await
            .expect("starts the sync execution");
        StartedSync { job_id, execution_arn: started.execution_arn }
    }

    /// Waits for the execution to end, showing the job record to `on_progress` as it goes.
    pub async fn wait_for(&self, started: StartedSync, mut on_progress: impl FnMut(&SyncJob)) -> SyncRun {
        let StartedSync { job_id, execution_arn } = started;
        let deadline = Instant::now() + EXECUTION_TIMEOUT;
        let execution = loop {
            let execution = self
                .sfn
                .describe_execution()
                .execution_arn(&execution_arn)
                .send()
                .await
                .expect("describes the execution");
            if let Some(job) = self.store.get_job(&job_id).await.expect("reads the job") {
                on_progress(&job);
            }
            if execution.status != ExecutionStatus::Running {
                break execution;
            }
            assert!(Instant::now() < deadline, "execution {execution_arn} still running after {EXECUTION_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let job = self.store.get_job(&job_id).await.expect("reads the job").expect("the job exists");
        let chunks = self.store.chunks(&job_id).await.expect("reads the chunk records");
        SyncRun { execution_arn, status: execution.status, output: execution.output, job, chunks }
    }

    /// Waits until the running job has received `findings` findings, to act mid-sync.
    pub async fn wait_until_received(&self, job_id: &str, findings: u64) {
        let deadline = Instant::now() + EXECUTION_TIMEOUT;
        loop {
            let job = self.store.get_job(job_id).await.expect("reads the job").expect("the job exists");
            if job.counts.findings_received >= findings {
                return;
            }
            assert!(!job.status.is_terminal() && Instant::now() < deadline, "the sync ended first: {:?}", job.status);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn connector(&self, connector_id: &str) -> Connector {
        self.store.get_connector(connector_id).await.expect("reads the connector").expect("the connector exists")
    }

    pub async fn count_findings(&self, connector_id: &str) -> usize {
        self.findings(connector_id).await.len()
    }

    pub async fn count_active_findings(&self, connector_id: &str) -> usize {
        self.findings(connector_id).await.iter().filter(|finding| finding.active).count()
    }

    /// A connector's stored findings, read from the findings table's items, in finding id
    /// order (the scan segments answer in any order).
    pub async fn findings(&self, connector_id: &str) -> Vec<StoredFinding> {
        let mut findings = Vec::new();
        self.each_finding(connector_id, |finding| findings.push(finding)).await;
        findings.sort_by(|a, b| a.finding.finding_id.cmp(&b.finding.finding_id));
        findings
    }

    /// Hands each stored finding of a connector to `each`, a scan page at a time, so a
    /// million findings need not be held at once. The table is keyed by asset, so it is
    /// read whole, by four parallel scan segments.
    pub async fn each_finding(&self, connector_id: &str, mut each: impl FnMut(StoredFinding)) {
        const SEGMENTS: i32 = 4;
        let (pages, mut decoded) = tokio::sync::mpsc::channel::<Vec<StoredFinding>>(SEGMENTS as usize);
        let scans = (0..SEGMENTS).map(|segment| {
            let pages = pages.clone();
            async move {
                let mut scan = self
                    .dynamodb
                    .scan()
                    .table_name(self.output("FindingsTable"))
                    .segment(segment)
                    .total_segments(SEGMENTS)
                    .filter_expression("connector_id = :c")
                    .expression_attribute_values(":c", AttributeValue::S(connector_id.into()))
                    .into_paginator()
                    .send();
                while let Some(page) = scan.next().await {
                    let items = page.expect("scans the findings").items.unwrap_or_default();
                    let findings = findings_in_items(items).expect("the findings table's items read back");
                    pages.send(findings).await.expect("the reader takes every page");
                }
            }
        });
        let scans: Vec<_> = scans.collect();
        // The scans hold the only senders: the reader stops when the last scan ends.
        drop(pages);
        let reading = async {
            while let Some(page) = decoded.recv().await {
                page.into_iter().for_each(&mut each);
            }
        };
        futures::future::join(futures::future::join_all(scans), reading).await;
    }

    /// The items of a connector in one of the stack's tables (named by its output), those
    /// that pass `filter` if given: an expression of `:value`, and that value.
    pub async fn count_items(
        &self,
        table_output: &str,
        connector_id: &str,
        filter: Option<(&str, AttributeValue)>,
    ) -> usize {
        let mut count = 0;
        let mut start_key = None;
        loop {
            let mut query = self
                .dynamodb
                .query()
                .table_name(self.output(table_output))
                .key_condition_expression("connector_id = :c")
                .expression_attribute_values(":c", AttributeValue::S(connector_id.into()))
                .select(Select::Count)
                .set_exclusive_start_key(start_key);
            if let Some((expression, value)) = &filter {
                query = query.filter_expression(*expression).expression_attribute_values(":value", value.clone());
            }
            let page = query.send().await.expect("counts the items");
            count += page.count as usize;
            start_key = page.last_evaluated_key;
            if start_key.is_none() {
                return count;
            }
        }
    }

    /// The finding ids stored for a connector.
    pub async fn finding_ids(&self, connector_id: &str) -> Vec<String> {
        self.findings(connector_id).await.into_iter().map(|stored| stored.finding.finding_id).collect()
    }

    /// Findings whose plugin output was cut for display.
    pub async fn findings_with_truncated_output(&self, connector_id: &str) -> Vec<StoredFinding> {
        self.findings(connector_id).await.into_iter().filter(|stored| stored.finding.output_truncated).collect()
    }

    pub async fn object_size(&self, key: &str) -> i64 {
        let head = self.s3.head_object().bucket(self.output("DataBucket")).key(key).send().await;
        head.unwrap_or_else(|e| panic!("s3 object {key}: {e}")).content_length.unwrap_or_default()
    }

    /// A bearer token for the sync API, signed with the deployment's key as an
    /// operator's token service would sign it.
    pub async fn token(&self, principal: &str, role: Role) -> String {
        let key =
            signing_key(&self.secrets, self.output("ApiSigningKeySecret")).await.expect("reads the API signing key");
        auth::mint(&key, principal, role, chrono::Duration::hours(1), chrono::Utc::now())
    }

    /// Invokes the deployed authorizer as API Gateway would: the policy it answers, or
    /// the error message it fails with.
    pub async fn invoke_authorizer(&self, token: &str, method_arn: &str) -> Result<serde_json::Value, String> {
        let event = json!({ "type": "TOKEN", "authorizationToken": token, "methodArn": method_arn });
        self.invoke("AuthorizerFunctionName", &event).await
    }

    /// Invokes the function the stack output `function_output` names, through
    /// LocalStack's Lambda API: its answer, or the error message it fails with.
    pub async fn invoke(&self, function_output: &str, event: &serde_json::Value) -> Result<serde_json::Value, String> {
        let url = format!("{LOCAL_ENDPOINT}/2015-03-31/functions/{}/invocations", self.output(function_output));
        let response = reqwest::Client::new()
            .post(url)
            // LocalStack reads the region and account from the credential scope only.
            .header("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0")
            .json(event)
            .send()
            .await
            .expect("LocalStack's Lambda API answers");
        let failed = response.headers().contains_key("x-amz-function-error");
        let body: serde_json::Value = response.json().await.expect("a JSON answer");
        if failed { Err(body["errorMessage"].as_str().unwrap_or_default().to_string()) } else { Ok(body) }
    }

    pub async fn object_exists(&self, key: &str) -> bool {
        self.s3.head_object().bucket(self.output("DataBucket")).key(key).send().await.is_ok()
    }

    /// The execution's history, every state's input and output included, as the Step
    /// Functions console shows it.
    pub async fn execution_events(&self, execution_arn: &str) -> Vec<HistoryEvent> {
        let events = self
            .sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .include_execution_data(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .expect("reads the execution history");
        assert!(!events.is_empty(), "execution {execution_arn} has a history");
        events
    }
}

pub struct StartedSync {
    pub job_id: String,
    pub execution_arn: String,
}

/// One finished sync, as a user would look at it.
pub struct SyncRun {
    pub execution_arn: String,
    pub status: ExecutionStatus,
    pub output: Option<String>,
    pub job: SyncJob,
    pub chunks: Vec<ChunkRecord>,
}

pub const ACCESS_KEY: &str = "e2e-access-7f3c9a51d2";
pub const SECRET_KEY: &str = "e2e-secret-0b8e44c6a9f1";

pub async fn simulator(config: SimulatorConfig) -> RunningSimulator {
    let config = SimulatorConfig { access_key: ACCESS_KEY.into(), secret_key: SECRET_KEY.into(), ..config };
    RunningSimulator::start(config).await.expect("the simulator starts")
}
