//! A security team syncs its Tenable tenant: the state machine runs in LocalStack, the
//! six functions run as real processes, and what they leave in DynamoDB and S3 is read
//! back through the AWS SDK.

use std::collections::HashSet;

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use tenable_simulator::{Faults, SimulatorConfig, VulnFilters};
use vulnflow_e2e::{ACCESS_KEY, SECRET_KEY, Stack, simulator};
use vulnflow_shared::errors::error_names;
use vulnflow_shared::model::{ChunkStatus, JobStatus, Stage, StageOutcome};
use vulnflow_shared::store::keys;

fn medium_tenant() -> SimulatorConfig {
    SimulatorConfig {
        seed: 7,
        assets: 120,
        findings_per_asset: 6,
        status_polls_before_finished: 2,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_full_sync_stores_every_finding_and_every_chunk() {
    let stack = Stack::local().await;
    let sim = simulator(medium_tenant()).await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;

    let run = stack.run_sync(&connector).await;

    assert_eq!(
        run.status,
        ExecutionStatus::Succeeded,
        "execution {} ended with job failure {:?}",
        run.execution_arn,
        run.job.failure
    );
    let job = &run.job;
    assert_eq!(job.status, JobStatus::Finished);
    assert!(job.failure.is_none(), "{:?}", job.failure);
    for stage in Stage::ALL {
        let timing = job.stages.get(&stage).unwrap_or_else(|| panic!("the job has no {stage} stage"));
        assert_eq!(timing.outcome, StageOutcome::Succeeded, "{stage}");
        let duration = timing.duration_ms().unwrap_or_else(|| panic!("{stage} has no end"));
        assert!(duration >= 0, "{stage} took {duration} ms");
    }
    assert!(job.ended_at.is_some_and(|end| end >= job.started_at));

    // Every finding the scanner holds, fixed and older than 30 days included.
    let served = sim.dataset().vulns_matching(&VulnFilters::everything()).len();
    assert_eq!(served, 720);
    assert_eq!(stack.count_findings(&connector.connector_id).await, served);
    assert_eq!(job.counts.findings_received, served as u64);
    assert_eq!(job.counts.findings_new, served as u64);
    let request = &sim.vuln_export_requests()[0];
    assert_eq!(request["filters"]["since"], 0, "a full sync sends an explicit time filter");

    // 120 assets: 2 asset-export chunks (at least 100 assets each) and 3 vulns-export
    // chunks (50 assets each: the local stack's ExportAssetsPerChunk).
    assert_eq!(job.chunks.total, 5);
    assert_eq!((job.chunks.processed, job.chunks.failed), (5, 0));
    assert_eq!(run.chunks.len(), 5);
    assert_eq!(job.counts.assets_new, 120);
    for chunk in &run.chunks {
        assert_eq!(chunk.status, ChunkStatus::Processed, "{}", chunk.chunk_key);
        assert!(!chunk.retried);
        let raw = keys::raw_chunk(&connector.connector_id, &job.job_id, &chunk.chunk_key);
        let normalized = keys::normalized_chunk(&connector.connector_id, &job.job_id, &chunk.chunk_key);
        assert_eq!(chunk.raw_key.as_deref(), Some(raw.as_str()));
        assert!(stack.object_exists(&raw).await, "raw chunk {raw} is in S3");
        assert!(stack.object_exists(&normalized).await, "normalized chunk {normalized} is in S3");
    }
}

#[tokio::test]
async fn the_functions_run_with_the_environment_the_template_gives_them() {
    let stack = Stack::local().await;
    let sim = simulator(SimulatorConfig { assets: 10, findings_per_asset: 2, ..Default::default() }).await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;

    let run = stack.run_sync(&connector).await;

    // DEPLOYMENT_NAME is set only in infra/template.yaml (to the stack's name).
    assert_eq!(run.job.deployment, stack.output("DeploymentName"));
    assert_eq!(run.job.execution_arn.as_deref(), Some(run.execution_arn.as_str()));
}

#[tokio::test]
async fn a_second_full_sync_of_the_same_data_adds_no_duplicate() {
    let stack = Stack::local().await;
    let sim = simulator(SimulatorConfig { seed: 11, assets: 60, findings_per_asset: 5, ..Default::default() }).await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;

    let first = stack.run_sync(&connector).await;
    let after_first = stack.finding_ids(&connector.connector_id).await;
    let second = stack.run_sync(&connector).await;
    let after_second = stack.finding_ids(&connector.connector_id).await;

    assert_eq!((first.job.status, second.job.status), (JobStatus::Finished, JobStatus::Finished));
    assert_eq!(after_first.len(), 300);
    assert_eq!(after_second, after_first, "the same findings, no duplicate");
    let counts = second.job.counts;
    assert_eq!(counts.findings_unchanged, 300);
    assert_eq!(counts.findings_new + counts.findings_updated + counts.findings_fixed + counts.findings_reopened, 0);
    assert_eq!(counts.assets_new, 0);
}

#[tokio::test]
async fn a_finding_is_keyed_by_asset_plugin_port_and_protocol() {
    let stack = Stack::local().await;
    let sim = simulator(SimulatorConfig { seed: 3, assets: 30, findings_per_asset: 8, ..Default::default() }).await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;

    let run = stack.run_sync(&connector).await;
    assert_eq!(run.job.status, JobStatus::Finished);

    let dataset = sim.dataset();
    let vulns = dataset.vulns();
    let asset_plugin: HashSet<(String, String)> =
        vulns.iter().map(|v| (v["asset"]["uuid"].to_string(), v["plugin"]["id"].to_string())).collect();
    assert!(asset_plugin.len() < vulns.len(), "the tenant has one plugin on two ports of an asset");
    let ids = stack.finding_ids(&connector.connector_id).await;
    assert_eq!(ids.len(), vulns.len(), "asset + plugin alone would have stored {}", asset_plugin.len());
    let same_plugin_two_ports = ids.iter().filter_map(|id| id.rsplitn(3, '/').nth(2).map(String::from)).fold(
        std::collections::HashMap::<String, usize>::new(),
        |mut seen, prefix| {
            *seen.entry(prefix).or_default() += 1;
            seen
        },
    );
    assert!(same_plugin_two_ports.values().any(|&n| n > 1), "stored ids keep port and protocol apart");
}

#[tokio::test]
async fn a_chunk_that_is_not_json_fails_the_sync_at_normalizing_and_keeps_the_rest() {
    let stack = Stack::local().await;
    let faults = Faults { malformed_json_chunks: vec![2], ..Default::default() };
    let sim =
        simulator(SimulatorConfig { seed: 5, assets: 150, findings_per_asset: 2, faults, ..Default::default() }).await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;

    let run = stack.run_sync(&connector).await;

    assert_eq!(run.status, ExecutionStatus::Failed);
    let job = &run.job;
    assert_eq!(job.status, JobStatus::ApiError);
    let failure = job.failure.as_ref().expect("the job says why it failed");
    assert_eq!(failure.stage, Stage::Normalizing);
    assert_eq!(failure.error, error_names::MALFORMED_CHUNK);
    assert_eq!(failure.chunk.as_deref(), Some("vulns-00002"));
    assert!(
        failure.message.contains("vulns-00002") && failure.message.contains("not valid JSON"),
        "{}",
        failure.message
    );
    assert!(failure.action.contains("Run the sync again"), "{}", failure.action);
    assert_eq!(job.stages[&Stage::Normalizing].outcome, StageOutcome::Failed);

    // Nothing half-written counts as processed; the good chunks are kept.
    assert_eq!((job.chunks.total, job.chunks.processed, job.chunks.failed), (5, 4, 1));
    let bad = run.chunks.iter().find(|c| c.chunk_key == "vulns-00002").expect("the bad chunk has a record");
    assert_eq!(bad.status, ChunkStatus::Failed);
    assert_eq!(bad.failed_attempts, 1, "a malformed chunk is not retried");
    assert!(!stack.object_exists(&keys::normalized_chunk(&connector.connector_id, &job.job_id, "vulns-00002")).await);
    assert_eq!(stack.count_findings(&connector.connector_id).await, 200);
}

#[tokio::test]
async fn a_record_without_an_asset_fails_naming_the_chunk_and_the_field() {
    let stack = Stack::local().await;
    let faults = Faults { records_missing_asset_chunks: vec![1], ..Default::default() };
    let sim =
        simulator(SimulatorConfig { seed: 9, assets: 20, findings_per_asset: 3, faults, ..Default::default() }).await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;

    let run = stack.run_sync(&connector).await;

    assert_eq!(run.job.status, JobStatus::ApiError);
    let failure = run.job.failure.as_ref().expect("the job says why it failed");
    assert_eq!(failure.stage, Stage::Normalizing);
    assert!(failure.message.contains("vulns-00001") && failure.message.contains("record 0"), "{}", failure.message);
    assert!(failure.message.contains("`asset"), "names the field: {}", failure.message);
    assert_eq!(run.job.chunks.processed, 1, "only the asset chunk");
    assert_eq!(stack.count_findings(&connector.connector_id).await, 0);
}

#[tokio::test]
async fn wrong_keys_end_in_a_credential_error_that_never_shows_the_keys() {
    let stack = Stack::local().await;
    let sim = simulator(SimulatorConfig { assets: 5, findings_per_asset: 1, ..Default::default() }).await;
    let wrong_secret = "e2e-wrong-secret-51f0c2d9e7";
    let connector = stack.connector_for(&sim, ACCESS_KEY, wrong_secret).await;

    let run = stack.run_sync(&connector).await;

    assert_eq!(run.status, ExecutionStatus::Failed);
    assert_eq!(run.job.status, JobStatus::CredentialError);
    let failure = run.job.failure.as_ref().expect("the job says why it failed");
    assert_eq!(failure.stage, Stage::ConnectivityTest);
    assert_eq!(failure.http_status, Some(401));
    assert!(failure.action.contains("credentials"), "{}", failure.action);
    let record = serde_json::to_string(&run.job).expect("the job serializes");
    assert!(!record.contains(wrong_secret) && !record.contains(ACCESS_KEY), "no key in the job record");
    assert!(sim.vuln_export_requests().is_empty(), "no export is requested with keys that do not work");

    let history_text = format!("{:?}", stack.execution_events(&run.execution_arn).await);
    assert!(!history_text.contains(wrong_secret), "no key in the execution history");
    let logs = vulnflow_e2e::repo_root().join(".local/logs/functions");
    for entry in std::fs::read_dir(&logs).unwrap_or_else(|_| panic!("function logs in {}", logs.display())) {
        let path = entry.expect("a log file").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains(wrong_secret) && !text.contains(SECRET_KEY), "a key in {}", path.display());
    }
}

#[tokio::test]
async fn the_parent_execution_stays_the_same_size_however_many_chunks_there_are() {
    let stack = Stack::local().await;
    let tenant = |assets| SimulatorConfig {
        seed: 3,
        assets,
        findings_per_asset: 2,
        status_polls_before_finished: 1,
        ..Default::default()
    };
    let (few, many) = (simulator(tenant(120)).await, simulator(tenant(1_200)).await);
    let few_run = stack.run_sync(&stack.connector_for(&few, ACCESS_KEY, SECRET_KEY).await).await;
    let many_run = stack.run_sync(&stack.connector_for(&many, ACCESS_KEY, SECRET_KEY).await).await;
    for run in [&few_run, &many_run] {
        assert_eq!(run.job.status, JobStatus::Finished, "{:?}", run.job.failure);
    }
    // 50 assets a vulns chunk and 100 an assets chunk on the local stack.
    assert_eq!((few_run.job.chunks.total, many_run.job.chunks.total), (3 + 2, 24 + 12));
    assert_eq!(stack.count_findings(&many_run.job.connector_id).await, 2_400);

    // The chunks run in the Distributed Map's child executions: the parent's history
    // does not grow with them, far from Step Functions' 25,000 events. It grows only with
    // Finalize's sweep: one more round (Finalize's five events, the SweepLeft choice's
    // two) per page of 100 assets on the local stack.
    let few_events = stack.execution_events(&few_run.execution_arn).await;
    let many_events = stack.execution_events(&many_run.execution_arn).await;
    let finalize_rounds = |events: &[HistoryEvent]| {
        events
            .iter()
            .filter(|event| event.state_entered_event_details().is_some_and(|details| details.name() == "Finalize"))
            .count()
    };
    // 120 assets: a page of 100 and one of 20; 1,200: twelve full pages and an empty one.
    assert_eq!((finalize_rounds(&few_events), finalize_rounds(&many_events)), (2, 13));
    const EVENTS_PER_SWEEP_ROUND: usize = 7;
    assert_eq!(
        many_events.len() - 11 * EVENTS_PER_SWEEP_ROUND,
        few_events.len(),
        "seven times the chunks, the same parent history but for the sweep's pages"
    );
    assert!(many_events.len() < 300, "{} events", many_events.len());
    // Only ids and S3 keys pass between states: no input or output comes near 256 KB.
    let largest = many_events
        .iter()
        .flat_map(|event| {
            let input = event.state_entered_event_details().and_then(|details| details.input());
            let output = event.state_exited_event_details().and_then(|details| details.output());
            [input, output]
        })
        .flatten()
        .map(str::len)
        .max()
        .expect("states with input and output");
    assert!(largest < 4_096, "the largest state payload is {largest} bytes");
}
