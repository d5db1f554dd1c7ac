//! The export API's normal behaviour and Tenable's traps.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tenable_simulator::{SimulatorConfig, VulnFilters};

use crate::support::{call, export_vulns, finished_chunks, get_json, start, start_export, status_url};

#[tokio::test]
async fn wrong_or_missing_api_keys_answer_401_and_key_order_does_not_matter() {
    let (simulator, client) = start(SimulatorConfig::default()).await;
    let url = format!("{}/session", simulator.base_url);
    let unauthorized = json!({"statusCode": 401, "error": "Unauthorized", "message": "Invalid Credentials"});
    for keys in [None, Some("accessKey=sim-access-key;secretKey=wrong"), Some("accessKey=sim-access-key")] {
        let mut request = client.get(&url);
        if let Some(keys) = keys {
            request = request.header("X-ApiKeys", keys);
        }
        let response = request.send().await.expect("request sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.json::<Value>().await.expect("JSON"), unauthorized);
    }
    let response = client
        .post(format!("{}/vulns/export", simulator.base_url))
        .json(&json!({}))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = client
        .get(&url)
        .header("X-ApiKeys", " secretKey=sim-secret-key; accessKey=sim-access-key ")
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::OK);
    let session: Value = response.json().await.expect("JSON");
    assert_eq!(session["username"], "sim@example.com");
    assert_eq!(session["permissions"], 64);
}

#[tokio::test]
async fn status_goes_queued_processing_finished_with_total_chunks_known_only_at_the_end() {
    let config =
        SimulatorConfig { assets: 300, findings_per_asset: 3, status_polls_before_finished: 3, ..Default::default() };
    let (simulator, client) = start(config).await;
    let uuid = start_export(&simulator, &client, "vulns", json!({"num_assets": 50, "filters": {"since": 0}})).await;
    let status_url = status_url(&simulator, "vulns", &uuid);

    let (_, queued) = get_json(&client, status_url.clone()).await;
    assert_eq!(queued["status"], "QUEUED");
    assert_eq!(queued["uuid"], uuid.as_str());
    assert_eq!(queued["chunks_available"], json!([]));
    let mut available = Vec::new();
    for _ in 0..3 {
        let (_, processing) = get_json(&client, status_url.clone()).await;
        assert_eq!(processing["status"], "PROCESSING");
        assert_eq!(processing["total_chunks"], 0);
        let now_available: Vec<u64> = processing["chunks_available"]
            .as_array()
            .expect("chunks_available")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert!(now_available.starts_with(&available), "available chunks only grow");
        available = now_available;
    }
    let (_, finished) = get_json(&client, status_url).await;
    assert_eq!(finished["status"], "FINISHED");
    assert_eq!(finished["total_chunks"], 6);
    assert_eq!(finished["finished_chunks"], 6);
    assert_eq!(finished["num_assets_per_chunk"], 50);
    assert_eq!(finished["chunks_failed"], json!([]));
    assert!(finished["created"].as_i64().is_some());
    let mut ids: Vec<u64> =
        finished["chunks_available"].as_array().expect("ids").iter().filter_map(Value::as_u64).collect();
    assert_ne!(ids, (1..=6).collect::<Vec<_>>(), "chunks finish out of order");
    ids.sort_unstable();
    assert_eq!(ids, (1..=6).collect::<Vec<_>>());
}

#[tokio::test]
async fn without_filters_only_recent_open_and_reopened_findings_are_exported() {
    let (simulator, client) = start(SimulatorConfig::default()).await;
    let exported = export_vulns(&simulator, &client, json!({})).await;
    let expected: Vec<Value> =
        simulator.dataset().vulns_matching(&VulnFilters::default()).into_iter().cloned().collect();
    assert_eq!(exported, expected);
    assert!(exported.len() < simulator.dataset().vulns().len());
    assert!(exported.iter().all(|vuln| vuln["state"] == "OPEN" || vuln["state"] == "REOPENED"));
    let window_start = chrono::Utc::now() - chrono::TimeDelta::days(30);
    assert!(exported.iter().all(|vuln| {
        let last_found = vuln["last_found"].as_str().and_then(|time| chrono::DateTime::parse_from_rfc3339(time).ok());
        last_found.is_some_and(|last_found| last_found >= window_start)
    }));

    // A state filter alone still gets the 30-day window; a time filter alone still open-only.
    let fixed_recent = export_vulns(&simulator, &client, json!({"filters": {"state": ["fixed"]}})).await;
    assert!(!fixed_recent.is_empty() && fixed_recent.iter().all(|vuln| vuln["state"] == "FIXED"));
    let all_open = export_vulns(&simulator, &client, json!({"filters": {"since": 0}})).await;
    assert!(all_open.len() > exported.len() && all_open.iter().all(|vuln| vuln["state"] != "FIXED"));
}

#[tokio::test]
async fn explicit_time_and_state_filters_export_everything() {
    let (simulator, client) = start(SimulatorConfig::default()).await;
    let body = json!({"num_assets": 50, "filters": {"since": 0, "state": ["OPEN", "reopened", "Fixed"]}});
    let exported = export_vulns(&simulator, &client, body.clone()).await;
    assert_eq!(exported.len(), 1000);
    assert_eq!(exported, simulator.dataset().vulns());
    assert_eq!(simulator.export_requests(), vec![body.clone()]);
    assert_eq!(simulator.vuln_export_requests(), vec![body]);
    assert_eq!(simulator.chunk_downloads(), 2);

    let critical = export_vulns(
        &simulator,
        &client,
        json!({"filters": {"since": 0, "state": ["OPEN"], "severity": ["CRITICAL"]}}),
    )
    .await;
    assert!(!critical.is_empty());
    assert!(critical.iter().all(|vuln| vuln["severity"] == "critical" && vuln["state"] == "OPEN"));
}

#[tokio::test]
async fn chunks_hold_num_assets_assets_and_never_split_an_asset() {
    let config = SimulatorConfig { assets: 230, findings_per_asset: 4, ..Default::default() };
    let (simulator, client) = start(config).await;
    let uuid = start_export(
        &simulator,
        &client,
        "vulns",
        json!({"num_assets": 50, "filters": {"since": 0, "state": ["OPEN", "REOPENED", "FIXED"]}}),
    )
    .await;
    let chunks = finished_chunks(&simulator, &client, "vulns", &uuid).await;
    assert_eq!(chunks.len(), 5);
    let mut chunk_of_asset = HashMap::new();
    for (chunk_id, records) in &chunks {
        let mut assets_in_chunk = std::collections::HashSet::new();
        for record in records {
            let asset = record["asset"]["uuid"].as_str().expect("asset uuid").to_owned();
            assert_eq!(*chunk_of_asset.entry(asset.clone()).or_insert(*chunk_id), *chunk_id);
            assets_in_chunk.insert(asset);
        }
        assert!(assets_in_chunk.len() <= 50);
    }
    assert_eq!(chunk_of_asset.len(), 230);
}

#[tokio::test]
async fn asset_export_serves_every_asset_in_chunk_size_chunks() {
    let config = SimulatorConfig { assets: 250, findings_per_asset: 1, ..Default::default() };
    let (simulator, client) = start(config).await;
    let missing =
        call(&client, reqwest::Method::POST, format!("{}/assets/export", simulator.base_url), Some(json!({}))).await;
    assert_eq!(missing.0, StatusCode::BAD_REQUEST);

    let uuid = start_export(&simulator, &client, "assets", json!({"chunk_size": 100})).await;
    let chunks = finished_chunks(&simulator, &client, "assets", &uuid).await;
    let sizes: Vec<usize> = (1..=3).map(|chunk_id| chunks[&chunk_id].len()).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    let all: Vec<Value> = (1..=3).flat_map(|chunk_id| chunks[&chunk_id].clone()).collect();
    assert_eq!(all, simulator.dataset().assets());
    assert_eq!(simulator.asset_export_requests().len(), 2);
    assert!(simulator.vuln_export_requests().is_empty());
}

#[tokio::test]
async fn invalid_requests_and_unknown_ids_get_tenable_errors() {
    let (simulator, client) = start(SimulatorConfig::default()).await;
    let base = &simulator.base_url;
    for body in [json!({"num_assets": 10}), json!({"num_assets": 5001}), json!({"filters": {"state": ["CLOSED"]}})] {
        let (status, response) = call(&client, reqwest::Method::POST, format!("{base}/vulns/export"), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let response: Value = serde_json::from_str(&response).expect("JSON error");
        assert_eq!(response["statusCode"], 400);
        assert!(response["message"].as_str().is_some_and(|message| !message.is_empty()));
    }
    let unknown = "9f1c2d3e-4b5a-4c6d-8e7f-001122334455";
    let (status, _) = get_json(&client, format!("{base}/vulns/export/{unknown}/status")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let uuid = start_export(&simulator, &client, "vulns", json!({})).await;
    let (status, _) = get_json(&client, format!("{base}/assets/export/{uuid}/status")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a vulns export is not an assets export");
    finished_chunks(&simulator, &client, "vulns", &uuid).await;
    for chunk_id in ["0", "99", "first"] {
        let (status, error) = get_json(&client, format!("{base}/vulns/export/{uuid}/chunks/{chunk_id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error["statusCode"], 404);
    }
}

#[tokio::test]
async fn cancel_answers_cancelled_and_status_stays_cancelled() {
    let (simulator, client) = start(SimulatorConfig::default()).await;
    let uuid = start_export(&simulator, &client, "vulns", json!({})).await;
    let (status, body) =
        call(&client, reqwest::Method::POST, format!("{}/vulns/export/{uuid}/cancel", simulator.base_url), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON"), json!({"status": "CANCELLED"}));
    let (_, status) = get_json(&client, format!("{}/vulns/export/{uuid}/status", simulator.base_url)).await;
    assert_eq!(status["status"], "CANCELLED");
}
