//! A simulator of the Tenable Vulnerability Management export API v2, speaking the real wire
//! format, for vulnflow's end-to-end tests (in process) and demo (as the `tenable-simulator`
//! binary).
//!
//! It emulates Tenable's traps: a vulns export without a `state` filter returns only OPEN and
//! REOPENED records, and one without a time filter only records last found in the last 30
//! days. Timestamps are anchored to the current UTC day (see [`Dataset`]).
//!
//! It also reproduces the real API's failure modes on demand ([`Faults`]), and the estate
//! changing between syncs ([`RunningSimulator::apply_changes`]).

mod api;
mod catalog;
mod data;
mod exports;
mod faults;
mod filters;
mod middleware;
mod traffic;

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use simulator_kit::{LocalListener, Server};

use crate::api::SimulatorState;
use crate::exports::ExportKind;

pub use crate::data::{ChangeReport, Changes, Dataset, FindingKey};
pub use crate::faults::{Faults, ServerErrors, Throttle, ThrottledPaths};
pub use crate::filters::{AssetFilters, DEFAULT_WINDOW_DAYS, Severity, TagFilter, VulnFilters, VulnState};
pub use crate::traffic::Route;

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

/// A simulator serving on 127.0.0.1 until dropped.
pub struct RunningSimulator {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base_url: String,
    state: Arc<SimulatorState>,
    /// Serves until the simulator is dropped.
    _server: Server,
}

impl RunningSimulator {
    /// Serves on a free port of 127.0.0.1.
    pub async fn start(config: SimulatorConfig) -> std::io::Result<RunningSimulator> {
        Self::start_on_port(config, 0).await
    }

    /// Serves on the given port of 127.0.0.1 (0 picks a free one).
    pub async fn start_on_port(config: SimulatorConfig, port: u16) -> std::io::Result<RunningSimulator> {
        let listener = LocalListener::bind(port).await?;
        let base_url = listener.base_url().to_owned();
        let dataset = Dataset::generate(config.seed, config.assets, config.findings_per_asset, Utc::now().timestamp());
        let state = Arc::new(SimulatorState::new(config, dataset));
        let server = listener.serve(api::router(Arc::clone(&state)), "tenable simulator");
        Ok(RunningSimulator { base_url, state, _server: server })
    }

    /// What the simulator holds now, so tests can compute expectations: a snapshot, which
    /// later [`apply_changes`](Self::apply_changes) do not alter.
    pub fn dataset(&self) -> Arc<Dataset> {
        self.state.dataset()
    }

    /// Changes the estate as a new scan would: exports created afterwards see the changed
    /// records, stamped with the current time; exports created before do not.
    pub fn apply_changes(&self, changes: Changes) -> ChangeReport {
        self.state.apply_changes(changes)
    }

    /// The export already running at start-up, with [`Faults::duplicate_export_running`].
    pub fn preexisting_export_uuid(&self) -> Option<String> {
        self.state.preexisting_export().map(|uuid| uuid.to_string())
    }

    /// Calls received for this route, whatever their answer (401, 403, 429 and 5xx included).
    pub fn requests_received(&self, route: Route) -> u32 {
        self.state.traffic.calls.get(route)
    }

    /// Bodies of every `POST /vulns/export` and `POST /assets/export` that reached the
    /// handler, in order: those answered 400 or 409 included (a body that is not JSON is
    /// kept as a JSON string), those refused for their keys or throttled not.
    pub fn export_requests(&self) -> Vec<Value> {
        self.state.traffic.export_requests(None)
    }

    /// Bodies of `POST /vulns/export` only.
    pub fn vuln_export_requests(&self) -> Vec<Value> {
        self.state.traffic.export_requests(Some(ExportKind::Vulns))
    }

    /// Bodies of `POST /assets/export` only.
    pub fn asset_export_requests(&self) -> Vec<Value> {
        self.state.traffic.export_requests(Some(ExportKind::Assets))
    }

    /// Chunk downloads answered with 200 (vulns and assets, faulty chunks included).
    pub fn chunk_downloads(&self) -> u64 {
        self.state.traffic.chunk_downloads()
    }
}
