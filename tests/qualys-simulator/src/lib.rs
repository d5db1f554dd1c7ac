//! A simulator of the Qualys VMDR API v2 calls vulnflow makes (host list, Host List
//! Detection, KnowledgeBase), speaking the real wire format (XML with a DOCTYPE, comments,
//! CDATA and indentation), for vulnflow's end-to-end tests (in process) and demo (as the
//! `qualys-simulator` binary).
//!
//! It emulates Qualys' traps: the detection call omits Fixed detections unless asked, pages
//! at 1000 hosts by default and names the next page in a WARNING, refuses GET URLs over 8 KB,
//! unknown parameters and calls without `X-Requested-With`, and enforces rate and
//! concurrency limits. Times are anchored to the current UTC day (see [`Dataset`]).
//!
//! It also reproduces the real API's failure modes on demand ([`Faults`]), and the estate
//! changing between syncs ([`RunningSimulator::apply_changes`]).

mod answers;
mod api;
mod catalog;
mod data;
mod faults;
mod filters;
mod limits;
mod middleware;
mod traffic;
mod xml;

use std::sync::Arc;

use chrono::Utc;
use simulator_kit::{LocalListener, Server};

use crate::api::SimulatorState;

pub use crate::catalog::{KnowledgeBaseVuln, VulnType};
pub use crate::data::{
    ChangeReport, Changes, Dataset, Detection, DetectionStatus, DetectionType, DnsData, FindingKey, Host,
};
pub use crate::faults::{CredentialError, Faults, FirstCalls, RateLimited, ServerErrors};
pub use crate::filters::DEFAULT_TRUNCATION_LIMIT;
pub use crate::traffic::Route;

pub struct SimulatorConfig {
    /// The Basic auth credentials the simulator accepts.
    pub username: String,
    pub password: String,
    pub seed: u64,
    pub hosts: u32,
    /// Exact: every host has this many detections, Fixed ones included, before filtering.
    pub detections_per_host: u32,
    /// Calls of each route admitted per window.
    pub rate_limit: u32,
    pub rate_limit_window_secs: u32,
    /// Calls of each route allowed to run at once.
    pub concurrency_limit: u32,
    pub faults: Faults,
}

impl Default for SimulatorConfig {
    /// Qualys' standard limits: 300 calls an hour, 2 at once.
    fn default() -> Self {
        Self {
            username: "sim-user".to_owned(),
            password: "sim-password".to_owned(),
            seed: 42,
            hosts: 100,
            detections_per_host: 10,
            rate_limit: 300,
            rate_limit_window_secs: 3600,
            concurrency_limit: 2,
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
        let dataset = Dataset::generate(config.seed, config.hosts, config.detections_per_host, Utc::now().timestamp());
        let state = Arc::new(SimulatorState::new(config, base_url.clone(), dataset));
        let server = listener.serve(api::router(Arc::clone(&state)), "qualys simulator");
        Ok(RunningSimulator { base_url, state, _server: server })
    }

    /// What the simulator holds now, so tests can compute expectations: a snapshot, which
    /// later [`apply_changes`](Self::apply_changes) do not alter.
    pub fn dataset(&self) -> Arc<Dataset> {
        self.state.dataset()
    }

    /// Changes the estate as a new scan would: calls answered afterwards see the changes,
    /// stamped with the current time (whole seconds).
    pub fn apply_changes(&self, changes: Changes) -> ChangeReport {
        self.state.apply_changes(changes)
    }

    /// Calls received for this route, whatever their answer (401, 409, 414 and 5xx included).
    pub fn requests_received(&self, route: Route) -> u32 {
        self.state.traffic.calls.get(route)
    }

    /// The parameters (query string, then form body) of every detection call that reached
    /// the handler with valid parameters, in order.
    pub fn detection_requests(&self) -> Vec<Vec<(String, String)>> {
        self.state.traffic.detection_requests()
    }

    /// Every QID named by the `ids` of KnowledgeBase calls that reached the handler with
    /// valid parameters, ranges expanded, in order, repeats kept: a client that caches the
    /// KnowledgeBase asks each QID once.
    pub fn knowledge_base_qids_requested(&self) -> Vec<u64> {
        self.state.traffic.knowledge_base_qids()
    }
}
