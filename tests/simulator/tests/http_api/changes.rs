//! The estate changing between syncs, as incremental syncs see it.

use std::collections::HashSet;

use chrono::Utc;
use serde_json::json;
use tenable_simulator::{Changes, FindingKey, SimulatorConfig};

use crate::support::{everything, export_records, export_vulns, start, start_export};

#[tokio::test]
async fn an_export_since_a_change_returns_exactly_the_changed_findings() {
    let config = SimulatorConfig { assets: 80, findings_per_asset: 5, ..Default::default() };
    let (simulator, client) = start(config).await;
    let before = export_vulns(&simulator, &client, everything()).await;
    let created_before = start_export(&simulator, &client, "vulns", everything()).await;
    let snapshot = simulator.dataset();

    let since = Utc::now().timestamp();
    let report = simulator.apply_changes(Changes { fix: 6, reopen: 4, new_findings: 5, ..Changes::default() });
    assert_eq!((report.fixed.len(), report.reopened.len(), report.added.len()), (6, 4, 5));
    assert!(report.changed_at_unix_ms >= since * 1000);

    let incremental =
        export_vulns(&simulator, &client, json!({"filters": {"since": since, "state": ["OPEN", "REOPENED", "FIXED"]}}))
            .await;
    let keys: HashSet<FindingKey> = incremental.iter().filter_map(FindingKey::of_record).collect();
    let changed: HashSet<FindingKey> =
        [&report.fixed, &report.reopened, &report.added].into_iter().flatten().cloned().collect();
    assert_eq!(incremental.len(), 15);
    assert_eq!(keys, changed);
    for record in &incremental {
        let key = FindingKey::of_record(record).expect("a key");
        let state = if report.fixed.contains(&key) {
            "FIXED"
        } else if report.reopened.contains(&key) {
            "REOPENED"
        } else {
            "OPEN"
        };
        assert_eq!(record["state"], state);
    }

    let after = export_vulns(&simulator, &client, everything()).await;
    assert_eq!(after.len(), before.len() + 5);
    assert_eq!(after, simulator.dataset().vulns());
    assert_eq!(
        export_records(&simulator, &client, &created_before).await,
        before,
        "an export created before the change keeps the data it was created with"
    );
    assert_eq!(snapshot.vulns(), before, "dataset() is a snapshot");
}
