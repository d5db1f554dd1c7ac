//! A function process killed in the middle of a chunk: the state machine runs the chunk
//! again (Runtime.ExitError is retried) and the sync loses nothing.

use std::time::Duration;

use serde_json::json;
use tenable_simulator::{Faults, Route, SimulatorConfig};
use vulnflow_e2e::{ACCESS_KEY, SECRET_KEY, Stack, simulator};
use vulnflow_shared::model::JobStatus;

/// The pids of the running processes of one function binary (`target/<profile>/<name>`).
fn function_processes(name: &str) -> Vec<i32> {
    let Ok(processes) = std::fs::read_dir("/proc") else { return Vec::new() };
    processes
        .flatten()
        .filter_map(|process| {
            let pid: i32 = process.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(process.path().join("cmdline")).ok()?;
            let program = String::from_utf8_lossy(cmdline.split(|byte| *byte == 0).next()?).to_string();
            program.ends_with(&format!("/target/debug/{name}")).then_some(pid)
        })
        .collect()
}

#[tokio::test]
async fn a_fetch_function_killed_while_it_downloads_a_chunk_is_run_again_and_the_sync_loses_nothing() {
    let stack = Stack::local().await;
    // Every chunk download takes 3 s: long enough to kill the function in the middle.
    let faults = Faults { slow_chunks: Some(Duration::from_secs(3)), ..Default::default() };
    let sim = simulator(SimulatorConfig {
        assets: 100,
        findings_per_asset: 3,
        status_polls_before_finished: 1,
        faults,
        ..Default::default()
    })
    .await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;
    let started = stack.start_sync(&connector, json!({ "mode": "vulns_only" })).await;

    let mut killed = Vec::new();
    for _ in 0..600 {
        if sim.requests_received(Route::ChunkDownload) > 0 {
            killed = function_processes("fetch-chunk");
            if !killed.is_empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!killed.is_empty(), "a fetch-chunk process was downloading a chunk");
    for pid in &killed {
        let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().expect("runs kill");
        assert!(status.success(), "kill -9 {pid}");
    }

    let run = stack.wait_for(started, |_| {}).await;
    assert_eq!(run.job.status, JobStatus::Finished, "{:?}", run.job.failure);
    assert_eq!(run.job.counts.findings_received, 300);
    assert_eq!(stack.count_findings(&connector.connector_id).await, 300, "nothing of the killed chunk is lost");
}
