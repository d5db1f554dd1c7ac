//! A connector's scanner must be public unless the deployment's allow list names it. The
//! local stack allows 127.0.0.1 only (`ScannerAllowList` in `infra/local/stack.sh`), where
//! the simulator listens: any other internal address is refused by the API, and by the
//! sync of a connector stored without the API.

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::json;
use tenable_simulator::{RunningSimulator, SimulatorConfig};
use vulnflow_e2e::api::{ApiClient, new_connector};
use vulnflow_e2e::{ACCESS_KEY, SECRET_KEY, Stack, simulator};
use vulnflow_shared::auth::Role;
use vulnflow_shared::errors::error_names;
use vulnflow_shared::model::Stage;
use vulnflow_shared::store::ConnectorStore;

async fn small_simulator() -> RunningSimulator {
    simulator(SimulatorConfig { seed: 17, assets: 5, findings_per_asset: 1, ..Default::default() }).await
}

/// The simulator's port: the refused URLs below would reach it but for the policy.
fn port_of(simulator: &RunningSimulator) -> &str {
    simulator.base_url.rsplit(':').next().expect("the simulator's port")
}

#[tokio::test]
async fn connectors_at_internal_addresses_are_refused_and_nothing_is_created() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("ana@example.com", Role::Admin).await;
    let sim = small_simulator().await;
    let port = port_of(&sim);

    for (base_url, found) in [
        ("http://169.254.169.254".to_string(), "169.254.169.254, the cloud metadata address"),
        (format!("http://[::1]:{port}"), "::1, a loopback address"),
        // Loopback, but not the allowed 127.0.0.1.
        (format!("http://127.0.0.2:{port}"), "127.0.0.2, a loopback address"),
        ("https://scanner.nowhere.invalid".to_string(), "does not resolve"),
    ] {
        let connector_id = format!("tenable-{}", uuid::Uuid::new_v4().simple());
        let mut request = new_connector(&base_url, SECRET_KEY);
        request["connector_id"] = json!(connector_id);
        let refused = api.post("/connectors", &admin, request).await;
        assert_eq!((refused.status, refused.body["field"].as_str()), (400, Some("base_url")), "{}", refused.text);
        assert!(refused.text.contains(found), "{base_url}: {}", refused.text);
        let created = api.get(&format!("/connectors/{connector_id}"), &admin).await;
        assert_eq!(created.status, 404, "{base_url} created nothing: {}", created.text);
    }

    let allowed = api.post("/connectors", &admin, new_connector(&sim.base_url, SECRET_KEY)).await;
    assert_eq!(allowed.status, 201, "the allow-listed simulator is accepted: {}", allowed.text);
}

#[tokio::test]
async fn a_sync_of_a_connector_stored_at_an_internal_address_fails_at_once_saying_what_to_fix() {
    let stack = Stack::local().await;
    let sim = small_simulator().await;
    // Stored without the API: as a connector created before addresses were checked.
    let mut connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;
    connector.base_url = format!("http://127.0.0.2:{}", port_of(&sim));
    stack.store.put_connector(&connector).await.expect("stores the connector");

    let run = stack.run_sync(&connector).await;

    assert_eq!(run.status, ExecutionStatus::Failed);
    let failure = run.job.failure.as_ref().expect("the job says why it failed");
    assert_eq!((failure.stage, failure.error.as_str()), (Stage::ConnectivityTest, error_names::INVALID_REQUEST));
    assert!(
        failure.message.starts_with("base_url is 127.0.0.2, a loopback address")
            && failure.message.contains("ScannerAllowList"),
        "{}",
        failure.message
    );
    assert!(failure.action.contains("base_url"), "{}", failure.action);
}
