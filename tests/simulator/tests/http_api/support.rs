//! Calls to the simulator, as vulnflow's connector makes them.

use std::collections::HashMap;

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use tenable_simulator::{RunningSimulator, SimulatorConfig};

pub(crate) const API_KEYS: &str = "accessKey=sim-access-key;secretKey=sim-secret-key";

pub(crate) async fn start(config: SimulatorConfig) -> (RunningSimulator, Client) {
    let simulator = RunningSimulator::start(config).await.expect("simulator starts");
    (simulator, Client::new())
}

/// An export request for every record: any state, no 30-day window.
pub(crate) fn everything() -> Value {
    json!({"filters": {"since": 0, "state": ["OPEN", "REOPENED", "FIXED"]}})
}

/// Sends a call with the right keys.
pub(crate) async fn send(client: &Client, method: Method, url: String, body: Option<Value>) -> Response {
    let mut request = client.request(method, url).header("X-ApiKeys", API_KEYS);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request sent")
}

pub(crate) async fn call(client: &Client, method: Method, url: String, body: Option<Value>) -> (StatusCode, String) {
    let response = send(client, method, url, body).await;
    let status = response.status();
    (status, response.text().await.expect("body read"))
}

pub(crate) async fn get_json(client: &Client, url: String) -> (StatusCode, Value) {
    let (status, body) = call(client, Method::GET, url, None).await;
    (status, serde_json::from_str(&body).expect("JSON body"))
}

pub(crate) async fn start_export(simulator: &RunningSimulator, client: &Client, kind: &str, body: Value) -> String {
    let url = format!("{}/{kind}/export", simulator.base_url);
    let (status, response) = call(client, Method::POST, url, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    let response: Value = serde_json::from_str(&response).expect("JSON body");
    response["export_uuid"].as_str().expect("export_uuid").to_owned()
}

pub(crate) fn status_url(simulator: &RunningSimulator, kind: &str, uuid: &str) -> String {
    format!("{}/{kind}/export/{uuid}/status", simulator.base_url)
}

pub(crate) fn chunk_url(simulator: &RunningSimulator, kind: &str, uuid: &str, id: u64) -> String {
    format!("{}/{kind}/export/{uuid}/chunks/{id}", simulator.base_url)
}

/// Polls until the export is no longer QUEUED nor PROCESSING and returns its status.
pub(crate) async fn settled_status(simulator: &RunningSimulator, client: &Client, kind: &str, uuid: &str) -> Value {
    for _ in 0..20 {
        let (_, status) = get_json(client, status_url(simulator, kind, uuid)).await;
        if status["status"] != "QUEUED" && status["status"] != "PROCESSING" {
            return status;
        }
    }
    panic!("export {uuid} still running after 20 polls");
}

/// The sorted chunk ids of a status field such as `chunks_available`.
pub(crate) fn chunk_ids(status: &Value, field: &str) -> Vec<u64> {
    let mut ids: Vec<u64> =
        status[field].as_array().expect("a list of chunk ids").iter().filter_map(Value::as_u64).collect();
    ids.sort_unstable();
    ids
}

/// Polls until FINISHED and returns the chunks by id.
pub(crate) async fn finished_chunks(
    simulator: &RunningSimulator,
    client: &Client,
    kind: &str,
    uuid: &str,
) -> HashMap<u64, Vec<Value>> {
    let status = settled_status(simulator, client, kind, uuid).await;
    assert_eq!(status["status"], "FINISHED");
    let mut chunks = HashMap::new();
    for chunk_id in chunk_ids(&status, "chunks_available") {
        let url = chunk_url(simulator, kind, uuid, chunk_id);
        let (code, records) = get_json(client, url).await;
        assert_eq!(code, StatusCode::OK);
        chunks.insert(chunk_id, records.as_array().expect("array of records").clone());
    }
    chunks
}

/// Every record of a finished export, in chunk id order.
pub(crate) async fn export_records(simulator: &RunningSimulator, client: &Client, uuid: &str) -> Vec<Value> {
    let mut chunks: Vec<(u64, Vec<Value>)> =
        finished_chunks(simulator, client, "vulns", uuid).await.into_iter().collect();
    chunks.sort_by_key(|(chunk_id, _)| *chunk_id);
    chunks.into_iter().flat_map(|(_, records)| records).collect()
}

pub(crate) async fn export_vulns(simulator: &RunningSimulator, client: &Client, body: Value) -> Vec<Value> {
    let uuid = start_export(simulator, client, "vulns", body).await;
    export_records(simulator, client, &uuid).await
}
