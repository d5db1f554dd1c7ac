//! Faults of whole calls: refused keys, rate limiting, a duplicate export.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tenable_simulator::{Faults, Route, SimulatorConfig, Throttle, ThrottledPaths};

use crate::support::{call, chunk_url, everything, export_records, send, settled_status, start, start_export};

fn with_faults(faults: Faults) -> SimulatorConfig {
    SimulatorConfig { assets: 120, findings_per_asset: 3, faults, ..Default::default() }
}

#[tokio::test]
async fn rejected_keys_answer_403_to_every_call_and_wrong_keys_still_401() {
    let faults = Faults { reject_keys_with: Some(403), ..Default::default() };
    let (simulator, client) = start(with_faults(faults)).await;
    let base = &simulator.base_url;
    let forbidden = json!({
        "statusCode": 403,
        "error": "Forbidden",
        "message": "You do not have permission to view this resource",
    });
    for (method, path, body) in [
        (Method::GET, "/session", None),
        (Method::POST, "/vulns/export", Some(everything())),
        (Method::POST, "/assets/export", Some(json!({"chunk_size": 100}))),
    ] {
        let (status, answer) = call(&client, method, format!("{base}{path}"), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(serde_json::from_str::<Value>(&answer).ok(), Some(forbidden.clone()));
    }
    let wrong_keys = client
        .get(format!("{base}/session"))
        .header("X-ApiKeys", "accessKey=sim-access-key;secretKey=wrong")
        .send()
        .await
        .expect("request sent");
    assert_eq!(wrong_keys.status(), StatusCode::UNAUTHORIZED);
    assert!(simulator.export_requests().is_empty());
    assert_eq!(simulator.requests_received(Route::Session), 2);
    assert_eq!(simulator.requests_received(Route::ExportCreation), 2);
}

fn throttled(requests: u32, paths: ThrottledPaths) -> SimulatorConfig {
    with_faults(Faults { throttle: Some(Throttle { requests, retry_after_seconds: 7, paths }), ..Default::default() })
}

async fn assert_throttled(response: Response) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let headers = response.headers();
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(body, json!({"statusCode": 429, "error": "Too Many Requests"}));
}

#[tokio::test]
async fn throttling_all_paths_answers_429_with_retry_after_until_spent() {
    let (simulator, client) = start(throttled(2, ThrottledPaths::All)).await;
    let session = format!("{}/session", simulator.base_url);
    for _ in 0..2 {
        assert_throttled(send(&client, Method::GET, session.clone(), None).await).await;
    }
    let (status, _) = call(&client, Method::GET, session, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(simulator.requests_received(Route::Session), 3);
}

#[tokio::test]
async fn throttling_export_creation_spares_other_calls() {
    let (simulator, client) = start(throttled(1, ThrottledPaths::ExportCreation)).await;
    let (status, _) = call(&client, Method::GET, format!("{}/session", simulator.base_url), None).await;
    assert_eq!(status, StatusCode::OK);
    let create = format!("{}/vulns/export", simulator.base_url);
    assert_throttled(send(&client, Method::POST, create, Some(everything())).await).await;
    let uuid = start_export(&simulator, &client, "vulns", everything()).await;
    assert_eq!(settled_status(&simulator, &client, "vulns", &uuid).await["status"], "FINISHED");
    assert_eq!(simulator.requests_received(Route::ExportCreation), 2);
    assert_eq!(simulator.vuln_export_requests(), vec![everything()], "a throttled call never reaches the handler");
}

#[tokio::test]
async fn throttling_chunk_downloads_spares_export_creation_and_status() {
    let (simulator, client) = start(throttled(1, ThrottledPaths::ChunkDownloads)).await;
    let uuid = start_export(&simulator, &client, "vulns", everything()).await;
    settled_status(&simulator, &client, "vulns", &uuid).await;
    let chunk = chunk_url(&simulator, "vulns", &uuid, 1);
    assert_throttled(send(&client, Method::GET, chunk.clone(), None).await).await;
    let (status, _) = call(&client, Method::GET, chunk, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(simulator.requests_received(Route::ChunkDownload), 2);
    assert_eq!(simulator.chunk_downloads(), 1);
}

#[tokio::test]
async fn a_running_duplicate_answers_409_and_adopting_it_yields_everything() {
    let faults = Faults { duplicate_export_running: true, ..Default::default() };
    let (simulator, client) = start(with_faults(faults)).await;
    let running = simulator.preexisting_export_uuid().expect("an export runs from the start");
    let create = format!("{}/vulns/export", simulator.base_url);

    let request = json!({"num_assets": 100, "filters": {"since": 0}});
    let (status, conflict) = call(&client, Method::POST, create.clone(), Some(request)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let conflict: Value = serde_json::from_str(&conflict).expect("JSON body");
    assert_eq!(conflict["statusCode"], 409);
    assert_eq!(conflict["error"], "Conflict");
    assert_eq!(conflict["active_job_id"], running.as_str());
    assert_eq!(conflict["failure_reason"], conflict["message"]);
    let message = conflict["message"].as_str().expect("a message");
    assert!(message.starts_with(&format!("Duplicate export (job_uuid={running} ")));
    assert!(message.ends_with("wait until existing export is complete."));

    let adopted = export_records(&simulator, &client, &running).await;
    assert_eq!(adopted, simulator.dataset().vulns());

    let (status, created) = call(&client, Method::POST, create, Some(everything())).await;
    assert_eq!(status, StatusCode::OK, "only the first creation conflicts");
    assert!(!created.contains(&running));
    assert_eq!(simulator.vuln_export_requests().len(), 2);

    let (plain, _) = start(SimulatorConfig::default()).await;
    assert_eq!(plain.preexisting_export_uuid(), None);
}
