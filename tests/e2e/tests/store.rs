//! The DynamoDB adapter against DynamoDB Local: the store contract every adapter keeps
//! (`shared/src/store/contract.rs`, which the unit tests run on the memory store), and
//! what a sync on the local stack reaches only at a scale these tests do not run.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use serde_json::json;
use vulnflow_e2e::Stack;
use vulnflow_shared::model::FindingState;
use vulnflow_shared::store::contract::{self, Stores};
use vulnflow_shared::store::{FindingsLayout, FindingsUpdate, InventoryStore, StoredAsset, StoredFinding, asset_key};

#[tokio::test]
async fn the_dynamodb_store_keeps_every_rule_the_memory_store_keeps() {
    let stack = Stack::local().await;
    contract::every_rule(Stores { connectors: &stack.store, jobs: &stack.store }).await;
}

#[tokio::test]
async fn an_assets_findings_are_one_partition_and_assets_come_in_pages() {
    let stack = Stack::local().await;
    let connector_id = format!("pages-{}", Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let asset = |id: u32| -> StoredAsset {
        serde_json::from_value(json!({
            "connector_id": connector_id, "asset_id": format!("asset-{id:03}"), "first_job_id": "job-1",
            "last_job_id": "job-1", "last_change": "new", "last_seen": Utc::now(), "updated_at": Utc::now(),
            "source": "tenable", "os_category": "linux",
        }))
        .expect("an asset")
    };
    let assets: Vec<StoredAsset> = (0..7).map(asset).collect();
    stack.store.put_assets(&assets).await.expect("stores the assets");

    let (page, next) = stack.store.assets_page(&connector_id, None, 3).await.expect("reads");
    let ids = |page: &[StoredAsset]| page.iter().map(|a| a.asset.asset_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&page), ["asset-000", "asset-001", "asset-002"]);
    assert_eq!(next.as_deref(), Some("asset-002"));
    let (page, _) = stack.store.assets_page(&connector_id, next.as_deref(), 3).await.expect("reads");
    assert_eq!(ids(&page), ["asset-003", "asset-004", "asset-005"]);
    let (page, next) = stack.store.assets_page(&connector_id, Some("asset-005"), 3).await.expect("reads");
    assert_eq!((ids(&page), next), (vec!["asset-006".to_string()], None), "a short page is the last");

    let finding = |asset_id: &str, plugin: u32, job_id: &str| -> StoredFinding {
        let finding_id = format!("tenable/{asset_id}/{plugin}/0/none");
        serde_json::from_value(json!({
            "asset_key": asset_key(&connector_id, asset_id), "connector_id": connector_id, "finding_id": finding_id,
            "source": "tenable", "asset_id": asset_id, "plugin_id": plugin.to_string(), "port": 0, "protocol": "none",
            "severity": "high", "state": "open", "title": "t", "first_seen": Utc::now(), "last_seen": Utc::now(),
            "os_category": "linux", "active": true, "first_job_id": "job-1", "last_job_id": job_id,
            "last_change": "new", "raw_ref": "", "updated_at": Utc::now(),
        }))
        .expect("a finding")
    };
    let every = |findings: &[StoredFinding]| findings.iter().map(|f| f.finding.finding_id.clone()).collect();
    let first: Vec<StoredFinding> = (1..=20).map(|plugin| finding("asset-000", plugin, "job-1")).collect();
    let other: Vec<StoredFinding> = (1..=10).map(|plugin| finding("asset-001", plugin, "job-1")).collect();
    let updates = [
        FindingsUpdate {
            asset_id: "asset-000".into(),
            layout: FindingsLayout::default(),
            changed: every(&first),
            findings: first,
        },
        FindingsUpdate {
            asset_id: "asset-001".into(),
            layout: FindingsLayout::default(),
            changed: every(&other),
            findings: other,
        },
    ];
    stack.store.put_findings(&connector_id, &updates).await.expect("stores the findings");
    let wanted = ["asset-000".to_string(), "asset-001".to_string(), "asset-006".to_string()];
    let mut found = stack.store.findings_of_assets(&connector_id, &wanted).await.expect("reads");
    assert_eq!((found["asset-000"].findings.len(), found["asset-001"].findings.len()), (20, 10));
    assert!(!found.contains_key("asset-006"), "an asset with no finding is left out");
    let items = |asset_id: &str| {
        let key = asset_key(&connector_id, asset_id);
        let query = stack.dynamodb.query().table_name(stack.output("FindingsTable"));
        query.key_condition_expression("asset_key = :key").expression_attribute_values(":key", AttributeValue::S(key))
    };
    let count = |query: QueryFluentBuilder| async move { query.send().await.expect("queries").count };
    assert_eq!(count(items("asset-000")).await, 2, "20 findings, packed in two items");

    // One finding changes: the rest of the asset is kept as it was.
    let read = found.remove("asset-000").expect("read above");
    let mut findings = read.findings.clone();
    findings[3].finding.state = FindingState::Fixed;
    findings[3].last_job_id = "job-2".into();
    let fixed = findings[3].finding.finding_id.clone();
    let change = FindingsUpdate {
        asset_id: "asset-000".into(),
        layout: read.layout,
        changed: [fixed.clone()].into(),
        findings: findings.clone(),
    };
    stack.store.put_findings(&connector_id, &[change]).await.expect("stores the change");
    let after = stack.store.findings_of_assets(&connector_id, &wanted[..1]).await.expect("reads");
    assert_eq!(after["asset-000"].findings, findings, "the change, and the others as they were");

    // The asset grows past what its items hold: laid out anew, nothing lost.
    let mut grown = after["asset-000"].findings.clone();
    grown.extend((21..=70).map(|plugin| finding("asset-000", plugin, "job-3")));
    let growth = FindingsUpdate {
        asset_id: "asset-000".into(),
        layout: after["asset-000"].layout,
        changed: every(&grown[20..]),
        findings: grown.clone(),
    };
    stack.store.put_findings(&connector_id, &[growth]).await.expect("stores the growth");
    let read = stack.store.findings_of_assets(&connector_id, &wanted[..1]).await.expect("reads");
    grown.sort_by(|a, b| a.finding.finding_id.cmp(&b.finding.finding_id));
    assert_eq!(read["asset-000"].findings, grown);
    assert_eq!(
        read["asset-000"].findings.iter().filter(|f| f.finding.finding_id == fixed && f.last_job_id == "job-2").count(),
        1
    );
    assert_eq!(count(items("asset-000")).await, 8, "70 findings in eight items");
}
