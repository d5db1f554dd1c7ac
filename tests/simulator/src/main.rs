//! `tenable-simulator`: serves a deterministic Tenable export API v2 on 127.0.0.1 for demos.
//! Prints `listening on http://127.0.0.1:PORT` on stdout once ready, a dataset summary on stderr.

use std::time::Duration;

use clap::Parser;
use tenable_simulator::{
    DEFAULT_WINDOW_DAYS, Faults, RunningSimulator, ServerErrors, SimulatorConfig, Throttle, ThrottledPaths, VulnFilters,
};

#[derive(Parser)]
#[command(version, about = "Simulator of the Tenable Vulnerability Management export API v2")]
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
    #[arg(long, env = "TENABLE_SIM_ACCESS_KEY", default_value = "sim-access-key", hide_env_values = true)]
    access_key: String,
    #[arg(long, env = "TENABLE_SIM_SECRET_KEY", default_value = "sim-secret-key", hide_env_values = true)]
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
    /// Answer every call with the right keys with this status (403: no permission).
    #[arg(long)]
    reject_keys_with: Option<u16>,
    /// Answer this many calls of --throttle-paths with 429 first.
    #[arg(long)]
    throttle_requests: Option<u32>,
    #[arg(long, default_value_t = 1)]
    throttle_retry_after_seconds: u32,
    /// all, export-creation or chunk-downloads.
    #[arg(long, default_value = "all")]
    throttle_paths: ThrottledPaths,
    /// Vulns chunk ids whose first downloads answer --server-error-status (comma-separated).
    #[arg(long, value_delimiter = ',')]
    server_error_chunks: Vec<u32>,
    #[arg(long, default_value_t = 503)]
    server_error_status: u16,
    #[arg(long, default_value_t = 1)]
    server_error_times: u32,
    /// Vulns exports end in ERROR once this many chunks are available.
    #[arg(long)]
    export_error_after_chunks: Option<u32>,
    /// Vulns chunk ids listed in `chunks_failed` (comma-separated).
    #[arg(long, value_delimiter = ',')]
    failed_chunks: Vec<u32>,
    /// Vulns chunk ids listed as available but answering 404 (comma-separated).
    #[arg(long, value_delimiter = ',')]
    expired_chunks: Vec<u32>,
    /// Start with an export of everything running: the first vulns export answers 409.
    #[arg(long)]
    duplicate_export_running: bool,
    /// Bytes of `<script>`-laden output in the first finding of vulns chunk 1.
    #[arg(long)]
    huge_output_finding: Option<usize>,
    /// Bytes of synopsis and of hostname in the first finding of vulns chunk 1.
    #[arg(long)]
    huge_text_finding: Option<usize>,
    /// Milliseconds every chunk download waits before answering.
    #[arg(long)]
    slow_chunks_ms: Option<u64>,
}

impl Args {
    fn faults(&self) -> Faults {
        Faults {
            malformed_json_chunks: self.malformed_json_chunks.clone(),
            records_missing_asset_chunks: self.records_missing_asset_chunks.clone(),
            reject_keys_with: self.reject_keys_with,
            throttle: self.throttle_requests.map(|requests| Throttle {
                requests,
                retry_after_seconds: self.throttle_retry_after_seconds,
                paths: self.throttle_paths,
            }),
            server_errors: (!self.server_error_chunks.is_empty()).then(|| ServerErrors {
                status: self.server_error_status,
                chunk_ids: self.server_error_chunks.clone(),
                times: self.server_error_times,
            }),
            export_error_after_chunks: self.export_error_after_chunks,
            failed_chunks: self.failed_chunks.clone(),
            expired_chunks: self.expired_chunks.clone(),
            duplicate_export_running: self.duplicate_export_running,
            huge_output_finding: self.huge_output_finding,
            huge_text_finding: self.huge_text_finding,
            slow_chunks: self.slow_chunks_ms.map(Duration::from_millis),
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    simulator_kit::init_tracing();
    let args = Args::parse();
    let faults = args.faults();
    let config = SimulatorConfig {
        access_key: args.access_key,
        secret_key: args.secret_key,
        seed: args.seed,
        assets: args.assets,
        findings_per_asset: args.findings_per_asset,
        status_polls_before_finished: args.status_polls,
        faults,
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
    if let Some(uuid) = simulator.preexisting_export_uuid() {
        eprintln!("export {uuid} is already running: the first vulns export answers 409");
    }
    simulator_kit::announce_and_serve(&simulator.base_url).await
}
