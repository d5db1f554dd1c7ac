//! Sync modes on the local stack: full, incremental, assets only, vulnerabilities only,
//! and a scoped manual run; and what each leaves in the findings and assets tables.

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::json;
use tenable_simulator::{Changes, SimulatorConfig};
use vulnflow_e2e::{ACCESS_KEY, SECRET_KEY, Stack, simulator};
use vulnflow_shared::model::{ExportKind, JobStatus, SyncMode};

fn tenant(seed: u64) -> SimulatorConfig {
    SimulatorConfig { seed, assets: 40, findings_per_asset: 5, status_polls_before_finished: 1, ..Default::default() }
}

#[tokio::test]
async fn a_full_sync_stores_assets_from_the_asset_export_and_then_the_findings() {
    let stack = Stack::local().await;
    let sim = simulator(tenant(21)).await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;

    let run = stack.run_sync(&connector).await;

    assert_eq!(run.job.status, JobStatus::Finished, "{:?}", run.job.failure);
    let kinds: Vec<ExportKind> = run.job.exports.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![ExportKind::Assets, ExportKind::Vulns]);
    assert_eq!(run.job.counts.assets_received, 40);
    assert_eq!(run.job.counts.assets_new, 40);
    assert_eq!(stack.count_items("AssetsTable", &connector.connector_id, None).await, 40);
    assert_eq!(stack.count_findings(&connector.connector_id).await, 200);
    assert!(run.chunks.iter().any(|c| c.chunk_key.starts_with("assets-")));
}

#[tokio::test]
async fn an_incremental_sync_fetches_only_what_changed_since_the_last_successful_sync() {
    let stack = Stack::local().await;
    let sim = simulator(tenant(22)).await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;
    let full = stack.run_sync(&connector).await;
    assert_eq!(full.job.status, JobStatus::Finished, "{:?}", full.job.failure);
    let cursor =
        stack.connector(&connector.connector_id).await.sync_cursor.expect("a finished full sync sets the cursor");
    assert_eq!(cursor, full.job.started_at.timestamp());

    let report = sim.apply_changes(Changes { fix: 3, reopen: 2, new_findings: 4, ..Changes::default() });
    let incremental = stack.run_sync_with(&connector, json!({ "mode": "incremental" })).await;

    let job = &incremental.job;
    assert_eq!(job.status, JobStatus::Finished, "{:?}", job.failure);
    assert_eq!(job.mode, SyncMode::Incremental);
    let vulns = job.exports.iter().find(|e| e.kind == ExportKind::Vulns).expect("a vulns export");
    assert_eq!(vulns.since, cursor, "the export starts at the cursor");
    let changed = (report.fixed.len() + report.reopened.len() + report.added.len()) as u64;
    assert_eq!(job.counts.findings_received, changed, "only the changed findings are fetched");
    assert_eq!(job.counts.findings_fixed, 3);
    assert_eq!(job.counts.findings_reopened, 2);
    assert_eq!(job.counts.findings_new, 4);
    assert_eq!(job.counts.findings_inactivated, 0, "an incremental sync closes nothing by absence");
    assert_eq!(stack.count_findings(&connector.connector_id).await, 204);
    assert!(
        stack.connector(&connector.connector_id).await.sync_cursor > Some(cursor)
            || job.started_at.timestamp() == cursor
    );
}

#[tokio::test]
async fn a_failed_sync_does_not_move_the_incremental_cursor() {
    let stack = Stack::local().await;
    let sim = simulator(SimulatorConfig {
        faults: tenable_simulator::Faults { malformed_json_chunks: vec![1], ..Default::default() },
        ..tenant(23)
    })
    .await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;

    let run = stack.run_sync(&connector).await;

    assert_eq!(run.status, ExecutionStatus::Failed);
    assert_eq!(stack.connector(&connector.connector_id).await.sync_cursor, None);
}

#[tokio::test]
async fn assets_only_and_vulns_only_ask_for_one_export_each() {
    let stack = Stack::local().await;
    let sim = simulator(tenant(24)).await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;

    let assets_only = stack.run_sync_with(&connector, json!({ "mode": "assets_only" })).await;
    assert_eq!(assets_only.job.status, JobStatus::Finished, "{:?}", assets_only.job.failure);
    assert_eq!(assets_only.job.exports.iter().map(|e| e.kind).collect::<Vec<_>>(), vec![ExportKind::Assets]);
    assert_eq!(stack.count_items("AssetsTable", &connector.connector_id, None).await, 40);
    assert_eq!(stack.count_findings(&connector.connector_id).await, 0);

    let vulns_only = stack.run_sync_with(&connector, json!({ "mode": "vulns_only" })).await;
    assert_eq!(vulns_only.job.status, JobStatus::Finished, "{:?}", vulns_only.job.failure);
    assert_eq!(vulns_only.job.exports.iter().map(|e| e.kind).collect::<Vec<_>>(), vec![ExportKind::Vulns]);
    assert_eq!(stack.count_findings(&connector.connector_id).await, 200);
    assert_eq!(vulns_only.job.counts.assets_new, 0, "the assets were already known");
    assert_eq!(sim.asset_export_requests().len(), 1);
}

#[tokio::test]
async fn a_scoped_manual_run_sends_its_filters_and_closes_nothing_by_absence() {
    let stack = Stack::local().await;
    let sim = simulator(tenant(25)).await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;
    let full = stack.run_sync(&connector).await;
    assert_eq!(full.job.status, JobStatus::Finished);

    let scoped = stack
        .run_sync_with(
            &connector,
            json!({ "mode": "vulns_only", "scope": { "severities": ["critical"], "from": "2020-01-01T00:00:00Z" } }),
        )
        .await;

    assert_eq!(scoped.job.status, JobStatus::Finished, "{:?}", scoped.job.failure);
    let request = sim.vuln_export_requests().last().cloned().expect("a vulns export");
    assert_eq!(request["filters"]["severity"], json!(["critical"]));
    assert_eq!(request["filters"]["since"], 1_577_836_800);
    let criticals = sim.dataset().vulns().iter().filter(|v| v["severity"] == "critical").count() as u64;
    assert_eq!(scoped.job.counts.findings_received, criticals);
    assert_eq!(scoped.job.counts.findings_inactivated, 0, "a scoped sync saw only part of the data");
    assert_eq!(stack.count_active_findings(&connector.connector_id).await, 200);
}
