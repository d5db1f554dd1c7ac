//! A simulator of the Tenable Vulnerability Management export API v2, speaking the real wire
//! format, for vulnflow's end-to-end tests (in process) and demo (as the `tenable-simulator`
//! binary).
//!
//! It emulates Tenable's traps: a vulns export without a `state` filter returns only OPEN and
//! REOPENED records, and one without a time filter only records last found in the last 30
//! days. Timestamps are anchored to the current UTC day (see [`Dataset`]).

mod api;
mod catalog;
mod data;
mod exports;
mod filters;
mod prng;

use std::net::Ipv4Addr;
use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::api::SimulatorState;
use crate::exports::ExportKind;

pub use crate::data::Dataset;
pub use crate::filters::{
    AssetFilters, DEFAULT_WINDOW_DAYS, Severity, TagFilter, VulnFilters, VulnState,
};

pub struct SimulatorConfig {
    pub access_key: String,
    pub secret_key: String,
    pub seed: u64,
    pub assets: u32,
    /// Exact: the dataset holds `assets * findings_per_asset` findings before filtering.
    pub findings_per_asset: u32,
    /// Status answers QUEUED, then PROCESSING this many times, then FINISHED.
    pub status_polls_before_finished: u32,
    pub faults: Faults,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            access_key: "sim-access-key".to_owned(),
            secret_key: "sim-secret-key".to_owned(),
            seed: 42,
            assets: 100,
            findings_per_asset: 10,
            status_polls_before_finished: 2,
            faults: Faults::default(),
        }
    }
}

/// Misbehaviours to inject. Build with `Faults { field: ..., ..Default::default() }` so that
/// fields added later do not break callers.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// These vulns chunk ids answer 200 with a truncated body that is not JSON.
    pub malformed_json_chunks: Vec<u32>,
    /// In these vulns chunk ids, the first record has no `asset` object.
    pub records_missing_asset_chunks: Vec<u32>,
}

/// A simulator serving on 127.0.0.1 until dropped.
pub struct RunningSimulator {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base_url: String,
    state: Arc<SimulatorState>,
    server: JoinHandle<()>,
}

impl RunningSimulator {
    /// Serves on a free port of 127.0.0.1.
    pub async fn start(config: SimulatorConfig) -> std::io::Result<RunningSimulator> {
        Self::start_on_port(config, 0).await
    }

    /// Serves on the given port of 127.0.0.1 (0 picks a free one).
    pub async fn start_on_port(
        config: SimulatorConfig,
        port: u16,
    ) -> std::io::Result<RunningSimulator> {
        let dataset = Dataset::generate(
            config.seed,
            config.assets,
            config.findings_per_asset,
            Utc::now().timestamp(),
        );
        let state = Arc::new(SimulatorState::new(config, dataset));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let address = listener.local_addr()?;
        let app = api::router(Arc::clone(&state));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "tenable simulator stopped serving");
            }
        });
        Ok(RunningSimulator {
            base_url: format!("http://{address}"),
            state,
            server,
        })
    }

    /// What the simulator holds, so tests can compute expectations.
    pub fn dataset(&self) -> &Dataset {
        &self.state.dataset
    }

    /// Bodies of every `POST /vulns/export` and `POST /assets/export` received, in order
    /// (including rejected ones; a body that is not JSON is kept as a JSON string).
    pub fn export_requests(&self) -> Vec<Value> {
        self.state.export_requests(None)
    }

    /// Bodies of `POST /vulns/export` only.
    pub fn vuln_export_requests(&self) -> Vec<Value> {
        self.state.export_requests(Some(ExportKind::Vulns))
    }

    /// Bodies of `POST /assets/export` only.
    pub fn asset_export_requests(&self) -> Vec<Value> {
        self.state.export_requests(Some(ExportKind::Assets))
    }

    /// Chunk downloads answered with 200 (vulns and assets, faulty chunks included).
    pub fn chunk_downloads(&self) -> u64 {
        self.state.chunk_downloads()
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}
