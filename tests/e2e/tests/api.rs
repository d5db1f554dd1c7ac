//! An operator drives syncs through the HTTP API on the local stack: API Gateway (REST)
//! with the Lambda proxy integration, tokens signed with the deployment's key, the
//! state machine behind it.

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use chrono::Utc;
use serde_json::json;
use tenable_simulator::SimulatorConfig;
use vulnflow_e2e::api::{ApiClient, new_connector};
use vulnflow_e2e::{ACCESS_KEY, SECRET_KEY, Stack, simulator};
use vulnflow_shared::auth::Role;
use vulnflow_shared::model::{JobStatus, Stage};
use vulnflow_shared::store::JobStore;

#[tokio::test]
async fn an_admin_runs_a_sync_and_a_reader_follows_it() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let reader = stack.token("rui@example.com", Role::Reader).await;
    let sim = simulator(SimulatorConfig { seed: 41, assets: 60, findings_per_asset: 4, ..Default::default() }).await;

    let created = api.post("/connectors", &admin, new_connector(&sim.base_url, SECRET_KEY)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let connector_id = created.body["connector_id"].as_str().expect("an id").to_string();
    let listed = api.get("/connectors", &reader).await;
    assert!(
        listed.body["connectors"]
            .as_array()
            .is_some_and(|all| all.iter().any(|c| c["connector_id"] == connector_id.as_str()))
    );

    let started = api.post(&format!("/connectors/{connector_id}/syncs"), &admin, json!({ "mode": "full" })).await;
    assert_eq!(started.status, 202, "{}", started.text);
    let job_id = started.body["job_id"].as_str().expect("a job id").to_string();
    let at_once = api.get(&format!("/jobs/{job_id}/status"), &reader).await;
    assert_eq!(at_once.status, 200, "a started job can be followed at once: {}", at_once.text);
    assert!(at_once.body.get("eta_seconds").is_none(), "no estimate before 15%: {}", at_once.text);
    let again = api.post(&format!("/connectors/{connector_id}/syncs"), &admin, json!({})).await;
    assert_eq!(again.status, 409, "a second start while one runs: {}", again.text);
    assert!(again.body["message"].as_str().is_some_and(|m| !m.is_empty()));

    let ended = api.wait_until_ended(&job_id, &reader).await;
    assert_eq!(ended["status"], "FINISHED", "{ended}");
    assert_eq!(ended["percent"], 100);

    let job = api.get(&format!("/jobs/{job_id}"), &reader).await;
    assert_eq!(job.status, 200);
    assert_eq!(job.body["trigger"]["by"], "ana@example.com");
    assert_eq!(job.body["counts"]["findings_new"], 240);
    assert!(job.body["stages"].as_array().is_some_and(|stages| stages.len() == 6), "{}", job.text);
    let errors_only = api.get(&format!("/jobs/{job_id}?level=error"), &reader).await;
    assert_eq!(errors_only.body["log"].as_array().map(Vec::len), Some(0), "{}", errors_only.text);

    let history = api.get(&format!("/connectors/{connector_id}/syncs?status=FINISHED"), &reader).await;
    assert_eq!(history.status, 200, "{}", history.text);
    let rows = history.body["syncs"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["job_id"], job_id.as_str());
    assert!(rows[0]["duration_ms"].as_i64().is_some_and(|ms| ms > 0));
    assert_eq!(rows[0]["log_level"], "info");
    let with_warnings = api.get(&format!("/connectors/{connector_id}/syncs?level=warn"), &reader).await;
    assert_eq!(with_warnings.body["syncs"].as_array().map(Vec::len), Some(0), "{}", with_warnings.text);

    let seen = api.seen.lock().expect("lock").join("\n");
    assert!(!seen.contains(SECRET_KEY) && !seen.contains(ACCESS_KEY), "no key in any API answer");
}

#[tokio::test]
async fn the_api_refuses_what_the_caller_may_not_do_and_explains_bad_requests() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let reader = stack.token("rui@example.com", Role::Reader).await;

    let anonymous = api.call(reqwest::Method::GET, "/connectors", None, None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    let forged = api.get("/connectors", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bm9wZQ").await;
    assert_eq!(forged.status, 401, "{}", forged.text);

    let by_reader = api.post("/connectors", &reader, new_connector("http://127.0.0.1:9", SECRET_KEY)).await;
    assert_eq!(by_reader.status, 403, "{}", by_reader.text);

    let bad_url = api.post("/connectors", &admin, new_connector("not a url", SECRET_KEY)).await;
    assert_eq!(bad_url.status, 400, "{}", bad_url.text);
    assert_eq!(bad_url.body["field"], "base_url");

    let created = api.post("/connectors", &admin, new_connector("http://127.0.0.1:9", SECRET_KEY)).await;
    let connector_id = created.body["connector_id"].as_str().expect("an id").to_string();
    let bad_mode =
        api.post(&format!("/connectors/{connector_id}/syncs"), &admin, json!({ "mode": "everything" })).await;
    assert_eq!(bad_mode.status, 400, "{}", bad_mode.text);
    assert_eq!(bad_mode.body["field"], "mode");

    let changed = api
        .call(
            reqwest::Method::PATCH,
            &format!("/connectors/{connector_id}"),
            Some(&admin),
            Some(json!({ "default_mode": "incremental" })),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(api.get(&format!("/connectors/{connector_id}"), &reader).await.body["default_mode"], "incremental");
    let bad_schedule = api
        .call(
            reqwest::Method::PATCH,
            &format!("/connectors/{connector_id}"),
            Some(&admin),
            Some(json!({ "schedule_hours": -1 })),
        )
        .await;
    assert_eq!(
        (bad_schedule.status, bad_schedule.body["field"].as_str()),
        (400, Some("schedule_hours")),
        "{}",
        bad_schedule.text
    );

    assert_eq!(api.get("/connectors/no-such-connector", &reader).await.status, 404);
    assert_eq!(api.get("/jobs/no-such-job", &reader).await.status, 404);
    assert_eq!(api.post("/jobs/no-such-job/cancel", &admin, json!({})).await.status, 404);

    let deleted = api.call(reqwest::Method::DELETE, &format!("/connectors/{connector_id}"), Some(&admin), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(api.get(&format!("/connectors/{connector_id}"), &reader).await.status, 404);
}

#[tokio::test]
async fn a_cancelled_sync_stops_and_keeps_what_it_processed() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let (_sim, sync) = a_long_sync(&api, &admin).await;
    let (job_id, execution_arn) = (sync.job_id.as_str(), sync.execution_arn.as_str());
    tokio::time::sleep(Duration::from_secs(4)).await;

    let cancelled = api.post(&format!("/jobs/{job_id}/cancel"), &admin, json!({})).await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "CANCELLED");
    let status = ended(&stack, execution_arn).await;
    let events = stack.execution_events(execution_arn).await;
    let entered: Vec<&str> = events
        .iter()
        .filter_map(|event| event.state_entered_event_details.as_ref())
        .map(|entered| entered.name.as_str())
        .collect();
    assert!(
        status == ExecutionStatus::Aborted || (status == ExecutionStatus::Failed && stopped_inside_a_task(&entered)),
        "the stopped execution ended {status:?}, not ABORTED, after the states {entered:?}; its last events: {:#?}",
        events.iter().rev().take(6).collect::<Vec<_>>()
    );
    let shown = api.get(&format!("/jobs/{job_id}"), &admin).await;
    assert_eq!(
        (shown.body["status"].as_str(), shown.body["current_stage"].as_str()),
        (Some("CANCELLED"), None),
        "{}",
        shown.text
    );

    // A stage still in flight when the execution stopped writes after the cancel: the
    // job keeps what the cancel settled.
    stack
        .store
        .stage_started(job_id, Stage::Processing, Utc::now())
        .await
        .expect("a write to a cancelled job is no error");
    stack.store.set_status(job_id, JobStatus::Delegated).await.expect("a write to a cancelled job is no error");
    let after = api.get(&format!("/jobs/{job_id}"), &admin).await;
    assert_eq!(
        (&after.body["status"], &after.body["current_stage"], &after.body["stages"]),
        (&shown.body["status"], &shown.body["current_stage"], &shown.body["stages"])
    );
    let again = api.post(&format!("/jobs/{job_id}/cancel"), &admin, json!({})).await;
    assert_eq!(again.status, 409, "an ended job cannot be cancelled: {}", again.text);
}

#[tokio::test]
async fn a_sync_stopped_outside_vulnflow_no_longer_holds_its_connector() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let (_sim, sync) = a_long_sync(&api, &admin).await;
    let (job_id, execution_arn) = (sync.job_id.as_str(), sync.execution_arn.as_str());
    let syncs = format!("/connectors/{}/syncs", sync.connector_id);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // An operator stops the execution in the Step Functions console: no finalize runs.
    stack
        .sfn
        .stop_execution()
        .execution_arn(execution_arn)
        .cause("stopped in the console")
        .send()
        .await
        .expect("stops");
    ended(&stack, execution_arn).await;
    // Reading the job asks Step Functions, which says the execution ended: it is
    // settled then and there, so that nobody follows a sync that is gone.
    let settled = api.get(&format!("/jobs/{job_id}/status"), &admin).await;
    assert_eq!(settled.body["status"], "GENERIC_ERROR", "{}", settled.text);
    let settled = api.get(&format!("/jobs/{job_id}"), &admin).await;
    let message = settled.body["failure"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("execution ended ABORTED") && message.contains("resume_job_id"), "{message}");
    assert_ne!(settled.body["ended_at"], serde_json::Value::Null);

    let next = api.post(&syncs, &admin, json!({})).await;
    assert_eq!(next.status, 202, "the connector is free: {}", next.text);
    let next_id = next.body["job_id"].as_str().expect("a job id");
    assert_eq!(api.post(&format!("/jobs/{next_id}/cancel"), &admin, json!({})).await.status, 202);
}

struct LongSync {
    connector_id: String,
    job_id: String,
    execution_arn: String,
}

/// A sync of a new connector whose export stays PROCESSING for a long while: it is still
/// polling whenever the test stops it.
async fn a_long_sync(api: &ApiClient, admin: &str) -> (tenable_simulator::RunningSimulator, LongSync) {
    let sim = simulator(SimulatorConfig {
        assets: 20,
        findings_per_asset: 2,
        status_polls_before_finished: 500,
        ..Default::default()
    })
    .await;
    let created = api.post("/connectors", admin, new_connector(&sim.base_url, SECRET_KEY)).await;
    let connector_id = created.body["connector_id"].as_str().expect("an id").to_string();
    let started = api.post(&format!("/connectors/{connector_id}/syncs"), admin, json!({})).await;
    let job_id = started.body["job_id"].as_str().expect("a job id").to_string();
    let execution_arn = started.body["execution_arn"].as_str().expect("an arn").to_string();
    (sim, LongSync { connector_id, job_id, execution_arn })
}

/// The status a stopped execution settles in: LocalStack settles it a moment after
/// StopExecution answers.
async fn ended(stack: &Stack, execution_arn: &str) -> ExecutionStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let execution = stack.sfn.describe_execution().execution_arn(execution_arn).send().await.expect("describes");
        if execution.status != ExecutionStatus::Running || Instant::now() > deadline {
            return execution.status;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// LocalStack's interpreter records FAILED, not ABORTED, when a stop lands while a Task
/// state is being evaluated (the error its pruned evaluation raises overrides the stop;
/// AWS aborts). The workflow itself did not fail if it never reached its failure path.
fn stopped_inside_a_task(entered_states: &[&str]) -> bool {
    !entered_states.iter().any(|state| matches!(*state, "FinalizeAfterFailure" | "Finalize" | "SyncFailed"))
}

#[tokio::test]
async fn a_sync_past_its_window_pauses_and_can_be_resumed() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    // The export stays PROCESSING for longer than the connector's one-minute window.
    let sim = simulator(SimulatorConfig {
        assets: 20,
        findings_per_asset: 2,
        status_polls_before_finished: 500,
        ..Default::default()
    })
    .await;
    let mut body = new_connector(&sim.base_url, SECRET_KEY);
    body["sync_window_minutes"] = json!(1);
    let created = api.post("/connectors", &admin, body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let connector_id = created.body["connector_id"].as_str().expect("an id").to_string();
    let started = api.post(&format!("/connectors/{connector_id}/syncs"), &admin, json!({ "mode": "vulns_only" })).await;
    let job_id = started.body["job_id"].as_str().expect("a job id").to_string();

    let ended = api.wait_until_ended(&job_id, &admin).await;
    assert_eq!(ended["status"], "PAUSED", "{ended}");
    let job = api.get(&format!("/jobs/{job_id}"), &admin).await;
    assert_eq!(job.body["failure"]["stage"], "Fetching", "{}", job.text);
    assert_eq!(job.body["failure"]["error"], "Vulnflow.SyncWindowEnded");
    assert!(job.body["failure"]["action"].as_str().is_some_and(|action| action.contains("resume")), "{}", job.text);
    let fetching = job.body["stages"].as_array().into_iter().flatten().find(|stage| stage["stage"] == "Fetching");
    assert_eq!(fetching.map(|stage| stage["outcome"].clone()), Some(json!("paused")), "{}", job.text);
    let duration = job.body["duration_ms"].as_i64().expect("a duration");
    assert!((60_000..180_000).contains(&duration), "it paused when its window ended: {duration} ms");

    let resumed =
        api.post(&format!("/connectors/{connector_id}/syncs"), &admin, json!({ "resume_job_id": job_id })).await;
    assert_eq!(resumed.status, 202, "{}", resumed.text);
    let resumed_id = resumed.body["job_id"].as_str().expect("a job id");
    let shown = api.get(&format!("/jobs/{resumed_id}"), &admin).await;
    assert_eq!(
        (shown.body["resumed_from"].as_str(), shown.body["mode"].as_str()),
        (Some(job_id.as_str()), Some("vulns_only"))
    );
    let cancelled = api.post(&format!("/jobs/{resumed_id}/cancel"), &admin, json!({})).await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.text);
}

#[tokio::test]
async fn the_authorizer_passes_the_callers_role_on_and_refuses_bad_tokens() {
    let stack = Stack::local().await;
    let token = stack.token("rui@example.com", Role::Reader).await;
    let method_arn = "arn:aws:execute-api:us-east-1:000000000000:abc123/v1/GET/jobs/42";

    let allowed = stack.invoke_authorizer(&format!("Bearer {token}"), method_arn).await.expect("allowed");
    assert_eq!(allowed["context"]["role"], "reader");
    assert_eq!(allowed["principalId"], "rui@example.com");
    assert_eq!(allowed["policyDocument"]["Statement"][0]["Effect"], "Allow");

    let refused = stack.invoke_authorizer("Bearer not-a-token", method_arn).await;
    assert_eq!(refused.expect_err("refused"), "Unauthorized");
}
