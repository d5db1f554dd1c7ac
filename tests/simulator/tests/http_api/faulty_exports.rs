//! Faults of exports and their chunks: server errors, ERROR and failed chunks, expired
//! chunks, broken, hostile or slow chunk bodies.

use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode, header};
use serde_json::{Value, json};
use tenable_simulator::{Faults, Route, ServerErrors, SimulatorConfig};

use crate::support::{
    API_KEYS, call, chunk_ids, chunk_url, everything, finished_chunks, get_json, send, settled_status, start,
    start_export,
};

/// 150 assets in three vulns chunks of 50.
fn with_faults(faults: Faults) -> SimulatorConfig {
    SimulatorConfig { assets: 150, findings_per_asset: 2, faults, ..Default::default() }
}

#[tokio::test]
async fn server_errors_fail_the_first_downloads_of_a_chunk_then_a_retry_succeeds() {
    for (code, content_type, body_text) in
        [(500, "application/json", r#""statusCode":500"#), (503, "text/html", "<h1>503 Service Unavailable</h1>")]
    {
        let faults = Faults {
            server_errors: Some(ServerErrors { status: code, chunk_ids: vec![2], times: 2 }),
            ..Default::default()
        };
        let (simulator, client) = start(with_faults(faults)).await;
        let uuid = start_export(&simulator, &client, "vulns", everything()).await;
        settled_status(&simulator, &client, "vulns", &uuid).await;
        let chunk = chunk_url(&simulator, "vulns", &uuid, 2);
        for _ in 0..2 {
            let response = send(&client, Method::GET, chunk.clone(), None).await;
            assert_eq!(response.status().as_u16(), code);
            let served_as = &response.headers()[header::CONTENT_TYPE];
            assert!(served_as.to_str().is_ok_and(|it| it.starts_with(content_type)));
            let body = response.text().await.expect("body read");
            assert!(body.contains(body_text), "{body}");
        }
        let (status, records) = get_json(&client, chunk).await;
        assert_eq!(status, StatusCode::OK);
        assert!(records.as_array().is_some_and(|records| !records.is_empty()));
        let (status, _) = get_json(&client, chunk_url(&simulator, "vulns", &uuid, 1)).await;
        assert_eq!(status, StatusCode::OK, "other chunks are healthy");

        let again = start_export(&simulator, &client, "vulns", everything()).await;
        settled_status(&simulator, &client, "vulns", &again).await;
        let (status, _) = get_json(&client, chunk_url(&simulator, "vulns", &again, 2)).await;
        assert_eq!(status, StatusCode::OK, "the errors are spent for every export");
        assert_eq!(simulator.requests_received(Route::ChunkDownload), 5);
        assert_eq!(simulator.chunk_downloads(), 3);
    }
}

#[tokio::test]
async fn an_export_ending_in_error_keeps_its_available_chunks_downloadable() {
    let faults = Faults { export_error_after_chunks: Some(3), ..Default::default() };
    let config = SimulatorConfig { assets: 300, ..with_faults(faults) };
    let (simulator, client) = start(config).await;
    let uuid = start_export(&simulator, &client, "vulns", everything()).await;
    let status = settled_status(&simulator, &client, "vulns", &uuid).await;
    assert_eq!(status["status"], "ERROR");
    assert_eq!(status["chunks_failed"], json!([]));
    let available = chunk_ids(&status, "chunks_available");
    assert_eq!(available.len(), 3, "of 6 chunks");
    for chunk_id in available {
        let (code, _) = get_json(&client, chunk_url(&simulator, "vulns", &uuid, chunk_id)).await;
        assert_eq!(code, StatusCode::OK);
    }

    let assets = start_export(&simulator, &client, "assets", json!({"chunk_size": 100})).await;
    let chunks = finished_chunks(&simulator, &client, "assets", &assets).await;
    assert_eq!(chunks.len(), 3, "asset exports do not fail");
}

#[tokio::test]
async fn failed_chunks_finish_listed_apart_and_answer_404() {
    let faults = Faults { failed_chunks: vec![2], ..Default::default() };
    let (simulator, client) = start(with_faults(faults)).await;
    let uuid = start_export(&simulator, &client, "vulns", everything()).await;
    let status = settled_status(&simulator, &client, "vulns", &uuid).await;
    assert_eq!(status["status"], "FINISHED");
    assert_eq!(chunk_ids(&status, "chunks_available"), [1, 3]);
    assert_eq!(chunk_ids(&status, "chunks_failed"), [2]);
    assert_eq!(status["total_chunks"], 3);
    let (code, error) = get_json(&client, chunk_url(&simulator, "vulns", &uuid, 2)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(error["statusCode"], 404);
}

#[tokio::test]
async fn expired_chunks_are_listed_but_answer_404() {
    let faults = Faults { expired_chunks: vec![1], ..Default::default() };
    let (simulator, client) = start(with_faults(faults)).await;
    let uuid = start_export(&simulator, &client, "vulns", everything()).await;
    let status = settled_status(&simulator, &client, "vulns", &uuid).await;
    assert_eq!(chunk_ids(&status, "chunks_available"), [1, 2, 3]);
    let (code, error) = get_json(&client, chunk_url(&simulator, "vulns", &uuid, 1)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(error, json!({"statusCode": 404, "error": "Not Found", "message": "Chunk 1 not found or expired"}));
    let (code, _) = get_json(&client, chunk_url(&simulator, "vulns", &uuid, 2)).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn faulty_chunk_bodies_are_served_as_configured() {
    let faults = Faults {
        malformed_json_chunks: vec![2],
        records_missing_asset_chunks: vec![3],
        huge_output_finding: Some(1_048_576),
        ..Default::default()
    };
    let (simulator, client) = start(with_faults(faults)).await;
    let uuid = start_export(&simulator, &client, "vulns", everything()).await;
    settled_status(&simulator, &client, "vulns", &uuid).await;
    let chunk = |chunk_id| chunk_url(&simulator, "vulns", &uuid, chunk_id);

    let (status, malformed) = call(&client, Method::GET, chunk(2), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&malformed).is_err());

    let (_, missing_asset) = get_json(&client, chunk(3)).await;
    let records = missing_asset.as_array().expect("records");
    assert!(records[0].get("asset").is_none());
    assert!(records[1..].iter().all(|record| record.get("asset").is_some()));

    let (_, first) = get_json(&client, chunk(1)).await;
    let records = first.as_array().expect("records");
    let output = records[0]["output"].as_str().expect("an output");
    assert_eq!(output.len(), 1_048_576);
    assert!(output.starts_with("<script>"));
    assert!(records[1..].iter().all(|record| { record["output"].as_str().is_none_or(|output| output.len() < 4096) }));
    assert!(records.iter().all(|record| record.get("asset").is_some()));
    assert_eq!(simulator.chunk_downloads(), 3);
}

#[tokio::test]
async fn slow_chunks_outlast_an_impatient_client() {
    let faults = Faults { slow_chunks: Some(Duration::from_millis(400)), ..Default::default() };
    let (simulator, client) = start(with_faults(faults)).await;
    let uuid = start_export(&simulator, &client, "vulns", everything()).await;
    settled_status(&simulator, &client, "vulns", &uuid).await;
    let chunk = chunk_url(&simulator, "vulns", &uuid, 1);

    let impatient = Client::builder().timeout(Duration::from_millis(100)).build().expect("client");
    let timed_out = impatient.get(&chunk).header("X-ApiKeys", API_KEYS).send().await;
    assert!(timed_out.is_err_and(|error| error.is_timeout()));

    let started = Instant::now();
    let (status, _) = call(&client, Method::GET, chunk, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(400));
}
