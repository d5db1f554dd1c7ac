//! The demo, as an operator runs vulnflow: a connector for the bundled Tenable
//! simulator created through the sync API, then two full syncs started and followed
//! with the `vulnflow` CLI (progress, then each job's stages and counts), and the
//! connector's sync history. `infra/local/demo.sh` starts the stack and runs it.

use std::process::ExitCode;

use tenable_simulator::SimulatorConfig;
use vulnflow_e2e::api::{ApiClient, new_connector};
use vulnflow_e2e::{LOCAL_ENDPOINT, SECRET_KEY, Stack, repo_root, simulator};
use vulnflow_shared::auth::Role;

#[tokio::main]
async fn main() -> ExitCode {
    let assets = env_number("DEMO_ASSETS", 400);
    let findings_per_asset = env_number("DEMO_FINDINGS_PER_ASSET", 12);
    let stack = Stack::local().await;
    let sim = simulator(SimulatorConfig {
        assets,
        findings_per_asset,
        status_polls_before_finished: 3,
        ..Default::default()
    })
    .await;
    println!("Tenable simulator at {}: {assets} assets, {} findings", sim.base_url, sim.dataset().vulns().len());

    let api = ApiClient::new(&stack);
    let token = stack.token("demo@example.com", Role::Admin).await;
    let created = api.post("/connectors", &token, new_connector(&sim.base_url, SECRET_KEY)).await;
    if created.status != 201 {
        eprintln!("the API refused the connector: {}", created.text);
        return ExitCode::FAILURE;
    }
    let connector_id = created.body["connector_id"].as_str().unwrap_or_default().to_string();
    println!(
        "connector {connector_id} created through the API (keys in Secrets Manager as {})",
        created.body["secret_id"]
    );
    println!("API: {}\n", api.base);

    let cli = Cli { api_url: api.base.clone(), token };
    for round in 1..=2 {
        println!("$ vulnflow sync start {connector_id} --mode full    # sync {round}");
        if !cli.run(&["sync", "start", &connector_id, "--mode", "full"]).await {
            return ExitCode::FAILURE;
        }
        println!();
    }
    println!("$ vulnflow sync history {connector_id}");
    if !cli.run(&["sync", "history", &connector_id]).await {
        return ExitCode::FAILURE;
    }
    println!("\nfindings stored for the connector: {}", stack.count_findings(&connector_id).await);
    ExitCode::SUCCESS
}

/// The built `vulnflow` CLI, pointed at the local stack's API. Run without blocking:
/// the simulator serves on this process's runtime.
struct Cli {
    api_url: String,
    token: String,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> bool {
        let status = tokio::process::Command::new(repo_root().join("target/debug/vulnflow"))
            .args(args)
            .env("VULNFLOW_API_URL", &self.api_url)
            .env("VULNFLOW_TOKEN", &self.token)
            .env("AWS_ENDPOINT_URL", LOCAL_ENDPOINT)
            .status()
            .await;
        match status {
            Ok(status) => status.success(),
            Err(error) => {
                eprintln!("cannot run target/debug/vulnflow ({error}): build it with cargo build --workspace --bins");
                false
            }
        }
    }
}

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
