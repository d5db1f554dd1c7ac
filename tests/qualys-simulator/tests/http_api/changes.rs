//! The estate changing between syncs, as a full and an incremental re-sync see it.

use std::collections::{BTreeMap, BTreeSet};

use qualys_simulator::{Changes, FindingKey, Route, SimulatorConfig};

use crate::support::{ALL_STATUSES, Element, get, host_id, id_set, page_hosts, qualys_time, start, url, walk_pages};

/// The keys and STATUS of every detection shown on the pages from `query`.
async fn shown_detections(
    simulator: &qualys_simulator::RunningSimulator,
    client: &reqwest::Client,
    query: &str,
) -> BTreeMap<FindingKey, String> {
    let pages = walk_pages(client, &url(simulator, Route::Detections, query)).await;
    let mut shown = BTreeMap::new();
    for host in pages.iter().flat_map(page_hosts) {
        for detection in host.expect_child("DETECTION_LIST").children("DETECTION") {
            let key = key_of(host, detection);
            let status = detection.text_of("STATUS").expect("STATUS").to_owned();
            assert!(shown.insert(key, status).is_none(), "a detection repeats");
        }
    }
    shown
}

/// A detection's key as an answer shows it.
fn key_of(host: &Element, detection: &Element) -> FindingKey {
    FindingKey {
        host_id: host_id(host),
        qid: detection.text_of("QID").and_then(|qid| qid.parse().ok()).expect("QID"),
        port: detection.text_of("PORT").map(|port| port.parse().expect("a port")),
        protocol: detection.text_of("PROTOCOL").map(str::to_owned),
    }
}

#[tokio::test]
async fn after_changes_answers_show_fixed_reopened_new_gone_and_vanished_hosts() {
    let config = SimulatorConfig { hosts: 90, detections_per_host: 5, ..Default::default() };
    let (simulator, client) = start(config).await;
    let everything = format!("action=list&truncation_limit=25&status={ALL_STATUSES}");
    let before = shown_detections(&simulator, &client, &everything).await;
    let snapshot = simulator.dataset();

    let report = simulator.apply_changes(Changes { fix: 6, reopen: 4, new_findings: 5, gone: 3, vanished_hosts: 2 });
    let counts = (report.fixed.len(), report.reopened.len(), report.added.len(), report.gone.len());
    assert_eq!((counts, report.vanished_hosts.len()), ((6, 4, 5, 3), 2));

    let after = shown_detections(&simulator, &client, &everything).await;
    for key in &report.fixed {
        assert_ne!(before[key], "Fixed");
        assert_eq!(after[key], "Fixed");
    }
    for key in &report.reopened {
        assert_eq!((before[key].as_str(), after[key].as_str()), ("Fixed", "Re-Opened"));
    }
    for key in &report.added {
        assert!(!before.contains_key(key));
        assert_eq!(after[key], "New");
    }
    for key in &report.gone {
        assert!(before.contains_key(key) && !after.contains_key(key));
    }
    let hosts_after: BTreeSet<u64> = after.keys().map(|key| key.host_id).collect();
    for id in &report.vanished_hosts {
        assert!(before.keys().any(|key| key.host_id == *id) && !hosts_after.contains(id));
    }
    let vanished_detections = before.keys().filter(|key| report.vanished_hosts.contains(&key.host_id)).count();
    assert_eq!(after.len(), before.len() - vanished_detections - 3 + 5);
    let unchanged = before.iter().filter(|(key, status)| after.get(*key) == Some(*status)).count();
    assert_eq!(unchanged, before.len() - vanished_detections - 3 - 6 - 4);

    // An incremental sync from the change on: the touched hosts, whole; or the changed detections alone.
    let since = qualys_time(report.changed_at);
    let processed = shown_detections(&simulator, &client, &format!("{everything}&vm_processed_after={since}")).await;
    let touched: BTreeSet<u64> = report
        .fixed
        .iter()
        .chain(&report.reopened)
        .chain(&report.added)
        .chain(&report.gone)
        .map(|key| key.host_id)
        .collect();
    assert_eq!(processed.keys().map(|key| key.host_id).collect::<BTreeSet<_>>(), touched);
    let touched_detections = after.keys().filter(|key| touched.contains(&key.host_id)).count();
    assert_eq!(processed.len(), touched_detections);

    let updated = shown_detections(&simulator, &client, &format!("{everything}&detection_updated_since={since}")).await;
    let changed: BTreeSet<&FindingKey> = report.fixed.iter().chain(&report.reopened).chain(&report.added).collect();
    assert_eq!(updated.keys().collect::<BTreeSet<_>>(), changed);

    let host_list =
        get(&client, &url(&simulator, Route::HostList, "action=list&details=None&truncation_limit=0")).await;
    let (listed, _) = id_set(&host_list);
    let remaining: Vec<u64> =
        snapshot.hosts().iter().map(|host| host.id).filter(|id| !report.vanished_hosts.contains(id)).collect();
    assert_eq!(listed, remaining, "purged hosts leave the host list");
    assert_eq!(listed.len(), 88);
    assert_eq!(snapshot.hosts().len(), 90, "dataset() is a snapshot");
}
