//! Changing and deleting connectors through the deployed API: the stored keys never
//! follow a new address, a deletion and a sync start cannot both succeed, and a deleted
//! connector's id is never taken by a new one.

use serde_json::json;
use tenable_simulator::SimulatorConfig;
use vulnflow_e2e::api::{ApiClient, new_connector};
use vulnflow_e2e::{SECRET_KEY, Stack, simulator};
use vulnflow_shared::auth::Role;

#[tokio::test]
async fn a_new_base_url_needs_the_keys_again() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let sim = simulator(SimulatorConfig { assets: 5, findings_per_asset: 1, ..Default::default() }).await;
    let created = api.post("/connectors", &admin, new_connector(&sim.base_url, SECRET_KEY)).await;
    let connector = format!("/connectors/{}", created.body["connector_id"].as_str().expect("an id"));

    let moved = api.patch(&connector, &admin, json!({ "base_url": "http://127.0.0.1:9" })).await;
    assert_eq!((moved.status, moved.body["field"].as_str()), (400, Some("access_key")), "{}", moved.text);
    assert_eq!(api.get(&connector, &admin).await.body["base_url"], sim.base_url.as_str(), "nothing changed");

    let with_keys =
        json!({ "base_url": "http://127.0.0.1:9", "access_key": "new-access-key", "secret_key": "new-secret-key" });
    let moved = api.patch(&connector, &admin, with_keys).await;
    assert_eq!((moved.status, moved.body["base_url"].as_str()), (200, Some("http://127.0.0.1:9")), "{}", moved.text);
}

#[tokio::test]
async fn a_deletion_and_a_sync_start_racing_never_both_succeed() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let sim = simulator(SimulatorConfig { assets: 5, findings_per_asset: 1, ..Default::default() }).await;
    for attempt in 0..6 {
        let created = api.post("/connectors", &admin, new_connector(&sim.base_url, SECRET_KEY)).await;
        let connector_id = created.body["connector_id"].as_str().expect("an id").to_string();
        let (connector, syncs) = (format!("/connectors/{connector_id}"), format!("/connectors/{connector_id}/syncs"));
        let (deleted, started) = tokio::join!(api.delete(&connector, &admin), api.post(&syncs, &admin, json!({})));
        assert!(
            !(deleted.status == 204 && started.status == 202),
            "try {attempt}: both succeeded: {} / {}",
            deleted.text,
            started.text
        );
        assert!(matches!(deleted.status, 204 | 409), "try {attempt}: {}", deleted.text);
        assert!(matches!(started.status, 202 | 404 | 409), "try {attempt}: {}", started.text);
        if let Some(job_id) = started.body["job_id"].as_str() {
            let ended = api.wait_until_ended(job_id, &admin).await;
            assert_eq!(ended["status"], "FINISHED", "the sync that won runs on its connector: {ended}");
        }
    }
}

#[tokio::test]
async fn a_deleted_connectors_id_is_not_taken_by_a_new_one_that_would_inherit_its_findings() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let sim = simulator(SimulatorConfig { assets: 5, findings_per_asset: 2, ..Default::default() }).await;
    let connector_id = format!("retired-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut body = new_connector(&sim.base_url, SECRET_KEY);
    body["connector_id"] = json!(connector_id);
    assert_eq!(api.post("/connectors", &admin, body.clone()).await.status, 201);
    let started = api.post(&format!("/connectors/{connector_id}/syncs"), &admin, json!({})).await;
    let ended = api.wait_until_ended(started.body["job_id"].as_str().expect("a job id"), &admin).await;
    assert_eq!(ended["status"], "FINISHED", "{ended}");
    assert_eq!(stack.count_findings(&connector_id).await, 10);

    let deleted = api.delete(&format!("/connectors/{connector_id}"), &admin).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let again = api.post("/connectors", &admin, body).await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(again.text.contains("deleted connector") && again.text.contains("choose another id"), "{}", again.text);
    assert_eq!(api.get(&format!("/connectors/{connector_id}"), &admin).await.status, 404);
    let listed = api.get("/connectors", &admin).await;
    assert!(!listed.text.contains(&connector_id), "a deleted connector is not listed");
}

#[tokio::test]
async fn a_history_token_the_api_did_not_give_is_refused() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let reader = stack.token("rui@example.com", Role::Reader).await;
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let created = api.post("/connectors", &admin, new_connector("http://127.0.0.1:9", SECRET_KEY)).await;
    let connector_id = created.body["connector_id"].as_str().expect("an id");
    let forged = json!({ "connector_id": connector_id, "started_at": chrono::Utc::now(), "job_id": "any-job" });
    for token in [
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, forged.to_string()),
        "eyJ9.AAAA".to_string(),
    ] {
        let answer = api.get(&format!("/connectors/{connector_id}/syncs?next_token={token}"), &reader).await;
        assert_eq!((answer.status, answer.body["field"].as_str()), (400, Some("next_token")), "{}", answer.text);
    }
}
