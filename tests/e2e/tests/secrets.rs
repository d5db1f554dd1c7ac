//! A scanner's API keys never leave their secret: not in an API answer, a job record,
//! the execution history Step Functions keeps, or a log line of any function or of
//! LocalStack. One sync succeeds and one fails on its keys; then everything is searched.

use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue;
use tenable_simulator::SimulatorConfig;
use vulnflow_e2e::api::{ApiClient, new_connector};
use vulnflow_e2e::{ACCESS_KEY, SECRET_KEY, Stack, repo_root, simulator};
use vulnflow_shared::auth::Role;

const WRONG_SECRET_KEY: &str = "e2e-wrong-secret-5d1e0c93b7";

#[tokio::test]
async fn no_key_shows_in_answers_records_execution_histories_or_logs() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let sim = simulator(SimulatorConfig { seed: 5, assets: 10, findings_per_asset: 2, ..Default::default() }).await;

    let mut jobs = Vec::new();
    for (secret_key, expected) in [(SECRET_KEY, "FINISHED"), (WRONG_SECRET_KEY, "CREDENTIAL_ERROR")] {
        let created = api.post("/connectors", &admin, new_connector(&sim.base_url, secret_key)).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let connector_id = created.body["connector_id"].as_str().expect("an id").to_string();
        let started = api.post(&format!("/connectors/{connector_id}/syncs"), &admin, serde_json::json!({})).await;
        assert_eq!(started.status, 202, "{}", started.text);
        let job_id = started.body["job_id"].as_str().expect("a job id").to_string();
        let ended = api.wait_until_ended(&job_id, &admin).await;
        assert_eq!(ended["status"], expected, "{ended}");
        api.get(&format!("/jobs/{job_id}"), &admin).await;
        api.get(&format!("/connectors/{connector_id}"), &admin).await;
        api.get(&format!("/connectors/{connector_id}/syncs"), &admin).await;
        jobs.push((job_id, started.body["execution_arn"].as_str().expect("an arn").to_string()));
    }
    api.get("/connectors", &admin).await;

    let mut places: Vec<(String, String)> = vec![("API answers".into(), api.seen.lock().expect("lock").join("\n"))];
    for (job_id, execution_arn) in &jobs {
        places.push((format!("job record {job_id}"), job_item(&stack, job_id).await));
        places.push((format!("execution history of {job_id}"), execution_history(&stack, execution_arn).await));
    }
    places.extend(log_files(&repo_root().join(".local/logs")));
    assert!(places.iter().any(|(place, _)| place.contains("functions")), "the functions' logs were searched");

    for (place, text) in &places {
        for key in [ACCESS_KEY, SECRET_KEY, WRONG_SECRET_KEY] {
            assert!(!text.contains(key), "a key shows in {place}");
        }
    }
}

/// The job's item in the jobs table, every attribute.
async fn job_item(stack: &Stack, job_id: &str) -> String {
    let item = stack
        .dynamodb
        .get_item()
        .table_name(stack.output("JobsTable"))
        .key("job_id", AttributeValue::S(job_id.into()))
        .send()
        .await
        .expect("reads the job");
    format!("{:?}", item.item.expect("the job exists"))
}

/// Every input and output of every state, as the Step Functions console shows them.
async fn execution_history(stack: &Stack, execution_arn: &str) -> String {
    let events = stack.execution_events(execution_arn).await;
    events.iter().map(|event| format!("{event:?}")).collect::<Vec<_>>().join("\n")
}

fn log_files(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the log directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(log_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "log") {
            let text = String::from_utf8_lossy(&std::fs::read(&path).expect("reads a log")).into_owned();
            found.push((path.display().to_string(), text));
        }
    }
    found
}
