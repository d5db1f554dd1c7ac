//! A sync cancelled part way and then resumed, through the deployed API: the data ends
//! equal to a clean sync's, and the two jobs' counts add up to it, chunks that were in
//! flight at the cancel included.

use serde_json::json;
use tenable_simulator::SimulatorConfig;
use vulnflow_e2e::api::{ApiClient, new_connector};
use vulnflow_e2e::{SECRET_KEY, Stack, simulator};
use vulnflow_shared::auth::Role;
use vulnflow_shared::store::JobStore;

#[tokio::test]
async fn the_counts_of_a_cancelled_sync_and_its_resumption_add_up_to_what_is_stored() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let sim = simulator(SimulatorConfig { assets: 400, findings_per_asset: 10, ..Default::default() }).await;
    let created = api.post("/connectors", &admin, new_connector(&sim.base_url, SECRET_KEY)).await;
    let connector_id = created.body["connector_id"].as_str().expect("an id").to_string();
    let syncs = format!("/connectors/{connector_id}/syncs");
    let started = api.post(&syncs, &admin, json!({ "mode": "full" })).await;
    let job_id = started.body["job_id"].as_str().expect("a job id").to_string();

    // Cancel once a quarter of the findings is processed, with more chunks in flight.
    stack.wait_until_received(&job_id, 1_000).await;
    let cancelled = api.post(&format!("/jobs/{job_id}/cancel"), &admin, json!({})).await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.text);
    let resumed = api.post(&syncs, &admin, json!({ "resume_job_id": job_id })).await;
    assert_eq!(resumed.status, 202, "{}", resumed.text);
    let resumed_id = resumed.body["job_id"].as_str().expect("a job id");
    let ended = api.wait_until_ended(resumed_id, &admin).await;
    assert_eq!(ended["status"], "FINISHED", "{ended}");

    let first = stack.store.get_job(&job_id).await.expect("reads").expect("the cancelled job");
    let second = stack.store.get_job(resumed_id).await.expect("reads").expect("the resumed job");
    assert!(first.counts.findings_new < 4_000, "the cancel cut the first sync short: {:?}", first.counts);
    assert_eq!(second.resumed_from.as_deref(), Some(job_id.as_str()));
    assert_eq!(
        first.counts.findings_new + second.counts.findings_new,
        4_000,
        "every finding counted new once: {:?} + {:?}",
        first.counts,
        second.counts
    );
    assert_eq!(stack.count_findings(&connector_id).await, 4_000);
    assert_eq!(stack.count_active_findings(&connector_id).await, 4_000);
}
