//! Scheduled syncs: the deployment's EventBridge rule ticks (every minute on the local
//! stack), the dispatcher starts a sync of each connector that is due.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenable_simulator::SimulatorConfig;
use vulnflow_e2e::api::{ApiClient, new_connector};
use vulnflow_e2e::{SECRET_KEY, Stack, simulator};
use vulnflow_shared::auth::Role;

/// The rule ticks every minute locally; LocalStack's scheduler may start a minute late.
const FIRST_TICK_WITHIN: Duration = Duration::from_secs(180);

#[tokio::test]
async fn the_schedule_rule_starts_a_due_connectors_sync_once_per_slot() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let sim = simulator(SimulatorConfig { seed: 77, assets: 30, findings_per_asset: 3, ..Default::default() }).await;
    let mut body = new_connector(&sim.base_url, SECRET_KEY);
    body["schedule_hours"] = json!(1);
    let created = api.post("/connectors", &admin, body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let connector_id = created.body["connector_id"].as_str().expect("an id").to_string();

    let scheduled = first_scheduled_sync(&api, &admin, &connector_id).await;
    let job_id = scheduled["job_id"].as_str().expect("a job id").to_string();
    let slot = job_id.strip_prefix(&format!("{connector_id}-")).expect("the job is named after its connector");
    assert!(
        slot.len() == 12 && slot.ends_with('Z') && slot.chars().nth(8) == Some('T'),
        "and its slot (YYYYMMDDTHHZ): {job_id}"
    );
    assert_eq!(scheduled["trigger"]["type"], "scheduled", "{scheduled}");

    let ended = api.wait_until_ended(&job_id, &admin).await;
    assert_eq!(ended["status"], "FINISHED", "{ended}");
    let job = api.get(&format!("/jobs/{job_id}"), &admin).await;
    assert_eq!(job.body["counts"]["findings_new"], 90, "{}", job.text);
    assert_eq!(job.body["mode"], "full", "the connector's default mode");

    // The same tick delivered again (EventBridge delivers at least once) starts nothing.
    let slot_time = format!("{}-{}-{}T{}:00:00Z", &slot[0..4], &slot[4..6], &slot[6..8], &slot[9..11]);
    let again = stack.invoke("DispatchFunctionName", &json!({ "time": slot_time })).await.expect("the dispatcher runs");
    assert_eq!(again["started"], json!([]), "{again}");
    let history = api.get(&format!("/connectors/{connector_id}/syncs?trigger=scheduled"), &admin).await;
    assert_eq!(history.body["syncs"].as_array().map(Vec::len), Some(1), "{}", history.text);

    // Off again, so that later ticks leave the connector alone.
    let off = api
        .call(
            reqwest::Method::PATCH,
            &format!("/connectors/{connector_id}"),
            Some(&admin),
            Some(json!({ "schedule_hours": null })),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.text);
}

async fn first_scheduled_sync(api: &ApiClient, token: &str, connector_id: &str) -> Value {
    let deadline = Instant::now() + FIRST_TICK_WITHIN;
    loop {
        let history = api.get(&format!("/connectors/{connector_id}/syncs?trigger=scheduled"), token).await;
        assert_eq!(history.status, 200, "{}", history.text);
        if let Some(row) = history.body["syncs"].as_array().and_then(|rows| rows.first()) {
            return row.clone();
        }
        assert!(Instant::now() < deadline, "no scheduled sync of {connector_id} within {FIRST_TICK_WITHIN:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
