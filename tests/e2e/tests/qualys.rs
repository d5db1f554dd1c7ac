//! Qualys connectors on the local stack: made through the API, synced by the real state
//! machine from the Qualys simulator (its XML, its paging, its limits and its
//! KnowledgeBase), full and then incremental, as a user of Tenable connectors would.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use qualys_simulator::{
    Changes, CredentialError, Dataset, DetectionStatus, Faults, FirstCalls, RateLimited, RunningSimulator,
    ServerErrors, SimulatorConfig,
};
use serde_json::{Value, json};
use vulnflow_e2e::Stack;
use vulnflow_e2e::api::ApiClient;
use vulnflow_shared::auth::Role;
use vulnflow_shared::errors::error_names;
use vulnflow_shared::model::{FindingState, JobStatus, Stage};
use vulnflow_shared::store::{JobStore, StoredFinding};

/// A finding as the simulator's truth says it must be stored: its id, and its state.
fn truth(simulator: &RunningSimulator) -> BTreeMap<String, FindingState> {
    let dataset = simulator.dataset();
    let mut findings = BTreeMap::new();
    for host in dataset.hosts() {
        for detection in &host.detections {
            let id = format!(
                "qualys/{}/{}/{}/{}",
                host.id,
                detection.qid,
                detection.port.unwrap_or(0),
                detection.protocol.unwrap_or("none")
            );
            let state = match detection.status {
                DetectionStatus::New | DetectionStatus::Active => FindingState::Open,
                DetectionStatus::ReOpened => FindingState::Reopened,
                DetectionStatus::Fixed => FindingState::Fixed,
            };
            findings.insert(id, state);
        }
    }
    findings
}

async fn stored(stack: &Stack, connector_id: &str) -> Vec<StoredFinding> {
    stack.findings(connector_id).await
}

fn states(findings: &[StoredFinding]) -> BTreeMap<String, FindingState> {
    findings.iter().map(|stored| (stored.finding.finding_id.clone(), stored.finding.state)).collect()
}

/// A Qualys connector made through the API, as an admin, for a simulator of a config.
struct QualysConnector {
    stack: Stack,
    api: ApiClient,
    admin: String,
    simulator: RunningSimulator,
    connector_id: String,
    password: String,
}

impl QualysConnector {
    async fn new(config: SimulatorConfig) -> QualysConnector {
        let stack = Stack::local().await;
        let api = ApiClient::new(&stack);
        let admin = stack.token("ana@example.com", Role::Admin).await;
        let password = config.password.clone();
        let simulator = RunningSimulator::start(config).await.expect("the simulator starts");
        let created = api
            .post(
                "/connectors",
                &admin,
                json!({
                    "name": "Qualys (simulator)",
                    "type": "qualys",
                    "base_url": simulator.base_url,
                    "username": "sim-user",
                    "password": password,
                }),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["type"], "qualys");
        assert!(!created.text.contains(&password), "the answer holds no password: {}", created.text);
        let connector_id = created.body["connector_id"].as_str().expect("an id").to_string();
        QualysConnector { stack, api, admin, simulator, connector_id, password }
    }

    /// Starts a sync through the API and answers the ended job's detail.
    async fn sync(&self, mode: &str) -> Value {
        let syncs = format!("/connectors/{}/syncs", self.connector_id);
        let started = self.api.post(&syncs, &self.admin, json!({ "mode": mode })).await;
        assert_eq!(started.status, 202, "{}", started.text);
        let job_id = started.body["job_id"].as_str().expect("a job id").to_string();
        self.api.wait_until_ended(&job_id, &self.admin).await;
        self.api.get(&format!("/jobs/{job_id}"), &self.admin).await.body
    }
}

#[tokio::test]
async fn a_qualys_connector_syncs_in_full_then_incrementally_with_titles_from_the_knowledge_base() {
    let config = SimulatorConfig { seed: 11, hosts: 60, detections_per_host: 6, ..Default::default() };
    let connector = QualysConnector::new(config).await;
    let QualysConnector { stack, simulator, connector_id, .. } = &connector;

    let full = connector.sync("full").await;
    assert_eq!(full["status"], "FINISHED", "{full}");
    let expected = truth(simulator);
    assert_eq!(expected.len(), 360, "60 hosts of 6 detections, fixed ones included");
    assert_eq!(full["counts"]["findings_new"], 360, "{}", full["counts"]);
    assert_eq!(full["counts"]["findings_received"], 360, "{}", full["counts"]);
    let findings = stored(stack, connector_id).await;
    assert_eq!(states(&findings), expected, "every detection stored once, in its state");

    let knowledge_base: BTreeMap<u64, &str> =
        simulator.dataset().knowledge_base().iter().map(|vuln| (u64::from(vuln.qid), vuln.title)).collect();
    for stored in &findings {
        let qid: u64 = stored.finding.plugin_id.parse().expect("a QID");
        assert_eq!(Some(stored.finding.title.as_str()), knowledge_base.get(&qid).copied(), "QID {qid}");
    }
    let asked_first = simulator.knowledge_base_qids_requested();
    let dataset_qids: BTreeSet<u64> = simulator.dataset().qids().into_iter().map(u64::from).collect();
    assert_eq!(asked_first.iter().copied().collect::<BTreeSet<_>>(), dataset_qids, "every QID found was asked");
    // Chunks running side by side may each ask for a QID neither found cached: the cache
    // saves the asking across chunks that follow and across syncs.

    let changes = simulator.apply_changes(Changes { fix: 5, reopen: 2, new_findings: 4, ..Default::default() });
    let incremental = connector.sync("incremental").await;
    assert_eq!(incremental["status"], "FINISHED", "{incremental}");
    let counts = &incremental["counts"];
    assert_eq!(counts["findings_new"], changes.added.len(), "{counts}");
    assert_eq!(counts["findings_fixed"], changes.fixed.len(), "{counts}");
    assert_eq!(counts["findings_reopened"], changes.reopened.len(), "{counts}");
    assert_eq!(states(&stored(stack, connector_id).await), truth(simulator), "the changes are stored");
    let asked_again: BTreeSet<u64> =
        simulator.knowledge_base_qids_requested()[asked_first.len()..].iter().copied().collect();
    assert!(
        asked_again.is_disjoint(&dataset_qids),
        "QIDs cached by the first sync are not asked again: {asked_again:?}"
    );
}

#[tokio::test]
async fn a_qualys_sync_waits_out_limits_and_retries_server_errors_then_stores_everything() {
    let faults = Faults {
        rate_limited: Some(RateLimited { first: FirstCalls { calls: 2, route: None }, to_wait_secs: 1 }),
        server_errors: Some(ServerErrors { status: 503, first: FirstCalls { calls: 2, route: None } }),
        ..Default::default()
    };
    let config = SimulatorConfig { seed: 12, hosts: 30, detections_per_host: 4, faults, ..Default::default() };
    let connector = QualysConnector::new(config).await;
    let QualysConnector { stack, simulator, connector_id, .. } = &connector;

    let job = connector.sync("full").await;
    assert_eq!(job["status"], "FINISHED", "{job}");
    assert_eq!(states(&stored(stack, connector_id).await), truth(simulator));
    assert_eq!(job["counts"]["findings_new"], 120, "{}", job["counts"]);
}

#[tokio::test]
async fn a_qualys_login_that_needs_secure_id_ends_the_sync_as_a_credential_error_without_the_password() {
    let faults = Faults { credential_error: Some(CredentialError::SecureIdRequired), ..Default::default() };
    let config = SimulatorConfig { seed: 13, hosts: 5, faults, ..Default::default() };
    let connector = QualysConnector::new(config).await;
    let QualysConnector { stack, connector_id, password, .. } = &connector;

    let job = connector.sync("full").await;
    assert_eq!(job["status"], "CREDENTIAL_ERROR", "{job}");
    assert!(!job.to_string().contains(password.as_str()), "{job}");
    assert_eq!(stack.count_findings(connector_id).await, 0);
}

#[tokio::test]
async fn a_qualys_sync_of_assets_only_stores_its_hosts_and_a_vulns_only_one_its_findings() {
    let config = SimulatorConfig { seed: 14, hosts: 70, detections_per_host: 3, ..Default::default() };
    let connector = QualysConnector::new(config).await;
    let QualysConnector { stack, simulator, connector_id, .. } = &connector;

    let assets = connector.sync("assets_only").await;
    assert_eq!(assets["status"], "FINISHED", "{assets}");
    assert_eq!(assets["counts"]["assets_received"], 70, "{}", assets["counts"]);
    assert_eq!(stack.count_items("AssetsTable", connector_id, None).await, 70);
    assert_eq!(stack.count_findings(connector_id).await, 0, "assets only: no finding");

    let vulns = connector.sync("vulns_only").await;
    assert_eq!(vulns["status"], "FINISHED", "{vulns}");
    assert_eq!(vulns["counts"]["assets_received"], 0, "{}", vulns["counts"]);
    assert_eq!(states(&stored(stack, connector_id).await), truth(simulator));
}

#[tokio::test]
async fn a_cancelled_qualys_sync_resumes_fetching_only_the_host_buckets_it_had_not_processed() {
    let faults = Faults { slow_detection_pages: Some(Duration::from_millis(1_500)), ..Default::default() };
    let config = SimulatorConfig { seed: 15, hosts: 400, detections_per_host: 5, faults, ..Default::default() };
    let connector = QualysConnector::new(config).await;
    let QualysConnector { stack, api, admin, simulator, connector_id, .. } = &connector;
    let syncs = format!("/connectors/{connector_id}/syncs");
    let started = api.post(&syncs, admin, json!({ "mode": "vulns_only" })).await;
    assert_eq!(started.status, 202, "{}", started.text);
    let job_id = started.body["job_id"].as_str().expect("a job id").to_string();

    stack.wait_until_received(&job_id, 250).await;
    let cancelled = api.post(&format!("/jobs/{job_id}/cancel"), admin, json!({})).await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.text);
    let resumed = api.post(&syncs, admin, json!({ "resume_job_id": job_id })).await;
    assert_eq!(resumed.status, 202, "{}", resumed.text);
    let resumed_id = resumed.body["job_id"].as_str().expect("a job id").to_string();
    let ended = api.wait_until_ended(&resumed_id, admin).await;
    assert_eq!(ended["status"], "FINISHED", "{ended}");

    let first = stack.store.get_job(&job_id).await.expect("reads").expect("the cancelled job");
    let second = stack.store.get_job(&resumed_id).await.expect("reads").expect("the resumed job");
    assert_eq!(first.status, JobStatus::Cancelled);
    assert_eq!(second.resumed_from.as_deref(), Some(job_id.as_str()));
    assert!(second.counts.findings_received < 2_000, "the resumption fetched only what was left: {:?}", second.counts);
    assert_eq!(
        first.counts.findings_new + second.counts.findings_new,
        2_000,
        "{:?} + {:?}",
        first.counts,
        second.counts
    );
    assert_eq!(states(&stored(stack, connector_id).await), truth(simulator));
}

#[tokio::test]
async fn a_detection_page_cut_inside_a_host_fails_its_chunks_at_normalizing_and_the_other_hosts_are_stored() {
    let (seed, hosts, detections_per_host) = (16, 120, 2);
    // Host ids come from the seed alone: the simulator below makes the same ones.
    let last_host = Dataset::generate(seed, hosts, detections_per_host, 0).hosts().last().expect("hosts").id;
    let faults = Faults { malformed_detection_hosts: Some(last_host..=last_host), ..Default::default() };
    let config = SimulatorConfig { seed, hosts, detections_per_host, faults, ..Default::default() };
    let connector = QualysConnector::new(config).await;
    let QualysConnector { stack, simulator, connector_id, .. } = &connector;

    let ended = connector.sync("full").await;
    let job_id = ended["job_id"].as_str().expect("a job id");
    let job = stack.store.get_job(job_id).await.expect("reads").expect("the job");
    assert_eq!(job.status, JobStatus::ApiError, "{ended}");
    let failure = job.failure.as_ref().expect("the job says why");
    assert_eq!((failure.stage, failure.error.as_str()), (Stage::Normalizing, error_names::MALFORMED_CHUNK));
    assert!(failure.message.contains("not well-formed XML"), "{}", failure.message);
    assert_eq!(job.chunks.failed, 2, "the bucket's assets chunk and vulns chunk: {:?}", job.chunks);

    let stored = states(&stored(stack, connector_id).await);
    let expected: BTreeMap<String, FindingState> =
        truth(simulator).into_iter().filter(|(id, _)| !id.starts_with(&format!("qualys/{last_host}/"))).collect();
    assert!(!stored.is_empty() && stored.len() < expected.len(), "the other chunks are stored, the cut one not at all");
    assert!(stored.iter().all(|(id, state)| expected.get(id) == Some(state)), "what is stored is true");
}
