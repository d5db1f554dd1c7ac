//! `tenable-simulator`: serves a deterministic Tenable export API v2 on 127.0.0.1 for demos.
//! Prints `listening on http://127.0.0.1:PORT` on stdout once ready, a dataset summary on stderr.

use clap::Parser;
use tenable_simulator::{
    DEFAULT_WINDOW_DAYS, Faults, RunningSimulator, SimulatorConfig, VulnFilters,
};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    version,
    about = "Simulator of the Tenable Vulnerability Management export API v2"
)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one). 8834 is Nessus' own port.
    #[arg(long, default_value_t = 8834)]
    port: u16,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 200)]
    assets: u32,
    #[arg(long, default_value_t = 12)]
    findings_per_asset: u32,
    #[arg(
        long,
        env = "TENABLE_SIM_ACCESS_KEY",
        default_value = "sim-access-key",
        hide_env_values = true
    )]
    access_key: String,
    #[arg(
        long,
        env = "TENABLE_SIM_SECRET_KEY",
        default_value = "sim-secret-key",
        hide_env_values = true
    )]
    secret_key: String,
    /// Status polls answered PROCESSING between QUEUED and FINISHED.
    #[arg(long, default_value_t = 2)]
    status_polls: u32,
    /// Vulns chunk ids answered with a body that is not JSON (comma-separated).
    #[arg(long, value_delimiter = ',')]
    malformed_json_chunks: Vec<u32>,
    /// Vulns chunk ids whose first record has no `asset` object (comma-separated).
    #[arg(long, value_delimiter = ',')]
    records_missing_asset_chunks: Vec<u32>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = SimulatorConfig {
        access_key: args.access_key,
        secret_key: args.secret_key,
        seed: args.seed,
        assets: args.assets,
        findings_per_asset: args.findings_per_asset,
        status_polls_before_finished: args.status_polls,
        faults: Faults {
            malformed_json_chunks: args.malformed_json_chunks,
            records_missing_asset_chunks: args.records_missing_asset_chunks,
        },
    };
    let simulator = RunningSimulator::start_on_port(config, args.port).await?;
    let dataset = simulator.dataset();
    eprintln!(
        "dataset (seed {}): {} assets, {} findings; a vulns export without filters returns {} \
         (OPEN/REOPENED, last found in the last {DEFAULT_WINDOW_DAYS} days)",
        args.seed,
        dataset.assets().len(),
        dataset.vulns().len(),
        dataset.vulns_matching(&VulnFilters::default()).len(),
    );
    println!("listening on {}", simulator.base_url);
    tokio::signal::ctrl_c().await
}
