//! The operator CLI against the deployed stack, as an operator runs it: a token minted
//! with the deployment's signing key, a sync followed to its end, its history.

use std::process::Output;

use serde_json::Value;
use tenable_simulator::SimulatorConfig;
use vulnflow_e2e::api::{ApiClient, new_connector};
use vulnflow_e2e::{LOCAL_ENDPOINT, SECRET_KEY, Stack, repo_root, simulator};
use vulnflow_shared::auth::Role;

/// The built CLI (infra/local/test.sh builds every binary before the tests run). Run
/// without blocking: the simulator it syncs from serves on this test's runtime.
async fn vulnflow(api: &ApiClient, token: &str, args: &[&str]) -> Output {
    let binary = repo_root().join("target/debug/vulnflow");
    tokio::process::Command::new(&binary)
        .args(args)
        .env("VULNFLOW_API_URL", &api.base)
        .env("VULNFLOW_TOKEN", token)
        .env("AWS_ENDPOINT_URL", LOCAL_ENDPOINT)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .await
        .unwrap_or_else(|e| panic!("{} runs ({e}): build it with cargo build --workspace --bins", binary.display()))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn an_operator_mints_a_token_runs_a_sync_to_its_end_and_reads_its_history() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let sim = simulator(SimulatorConfig { seed: 9, assets: 30, findings_per_asset: 2, ..Default::default() }).await;

    let minted = vulnflow(
        &api,
        "",
        &[
            "token",
            "--principal",
            "ops@example.com",
            "--role",
            "admin",
            "--secret-id",
            stack.output("ApiSigningKeySecret"),
        ],
    )
    .await;
    assert_eq!(minted.status.code(), Some(0), "{}", stderr(&minted));
    let token = stdout(&minted).trim().to_string();

    let created = api.post("/connectors", &token, new_connector(&sim.base_url, SECRET_KEY)).await;
    assert_eq!(created.status, 201, "the minted token is an admin's: {}", created.text);
    let connector_id = created.body["connector_id"].as_str().expect("an id").to_string();
    let listed = vulnflow(&api, &token, &["connectors"]).await;
    assert!(stdout(&listed).contains(&connector_id), "{}", stdout(&listed));

    let synced = vulnflow(&api, &token, &["sync", "start", &connector_id, "--mode", "full"]).await;
    assert_eq!(synced.status.code(), Some(0), "{}\n{}", stdout(&synced), stderr(&synced));
    let report = stdout(&synced);
    assert!(report.contains("FINISHED"), "{report}");
    for stage in ["Initiating", "ConnectivityTest", "Fetching", "Normalizing", "Processing", "Finalizing"] {
        assert!(report.contains(stage), "the stage table shows {stage}: {report}");
    }

    let history = vulnflow(&api, &token, &["sync", "history", &connector_id, "--json"]).await;
    assert_eq!(history.status.code(), Some(0), "{}", stderr(&history));
    let rows: Value = serde_json::from_slice(&history.stdout).expect("the history is JSON");
    let rows = rows["syncs"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "FINISHED");
    assert_eq!(rows[0]["counts"]["findings_new"], 60);
    assert_eq!(rows[0]["trigger"]["by"], "ops@example.com");

    let reader = stack.token("rui@example.com", Role::Reader).await;
    let refused = vulnflow(&api, &reader, &["sync", "start", &connector_id]).await;
    assert_eq!(refused.status.code(), Some(3), "a reader may not start a sync: {}", stderr(&refused));
    assert!(stderr(&refused).contains("403"), "{}", stderr(&refused));
}
