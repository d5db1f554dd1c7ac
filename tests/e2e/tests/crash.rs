//! A function process killed in the middle of a chunk: the state machine runs the chunk
//! again (Runtime.ExitError is retried) and the sync loses nothing.

use std::time::Duration;

use serde_json::json;
use tenable_simulator::{Faults, Route, SimulatorConfig};
use vulnflow_e2e::{ACCESS_KEY, SECRET_KEY, Stack, simulator};
use vulnflow_shared::model::JobStatus;
use vulnflow_shared::store::JobStore;

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

fn kill(pids: &[i32]) {
    for pid in pids {
        let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().expect("runs kill");
        assert!(status.success(), "kill -9 {pid}");
    }
}

#[tokio::test]
async fn a_fetch_function_killed_while_it_downloads_a_chunk_is_run_again_and_the_sync_loses_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
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
    kill(&killed);

    let run = stack.wait_for(started, |_| {}).await;
    assert_eq!(run.job.status, JobStatus::Finished, "{:?}", run.job.failure);
    assert_eq!(run.job.counts.findings_received, 300);
    assert_eq!(stack.count_findings(&connector.connector_id).await, 300, "nothing of the killed chunk is lost");
}

/// The processes of `name` using the CPU: their CPU time grows within 30 ms. A function
/// process that waits for its next invocation uses none.
async fn busy_processes(name: &str) -> Vec<i32> {
    let before: Vec<(i32, u64)> =
        function_processes(name).into_iter().filter_map(|pid| Some((pid, cpu_ticks(pid)?))).collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    before
        .into_iter()
        .filter(|(pid, ticks)| cpu_ticks(*pid).is_some_and(|now| now > *ticks))
        .map(|(pid, _)| pid)
        .collect()
}

/// User and system CPU time of a process, in clock ticks (`/proc/<pid>/stat` fields 14
/// and 15, counted after the command's closing parenthesis).
fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The kill tests run one at a time: a test's kills and its sync's timing stay its own.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A sync of 100 assets with `findings_per_asset` each in two vulns chunks, during which
/// the processes `at_work` names (none yet: empty) are killed; the sync must end as a
/// clean one would.
async fn a_sync_with(findings_per_asset: u32, at_work: impl AsyncFn(&Stack, &str, &str) -> Vec<i32>) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let stack = Stack::local().await;
    let total = u64::from(100 * findings_per_asset);
    let sim = simulator(SimulatorConfig {
        assets: 100,
        findings_per_asset,
        status_polls_before_finished: 1,
        ..Default::default()
    })
    .await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;
    let started = stack.start_sync(&connector, json!({ "mode": "vulns_only" })).await;

    let mut killed = Vec::new();
    for _ in 0..6000 {
        killed = at_work(&stack, &started.job_id, &connector.connector_id).await;
        if !killed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!killed.is_empty(), "a process was seen at work on a chunk");
    kill(&killed);

    let run = stack.wait_for(started, |_| {}).await;
    assert_eq!(run.job.status, JobStatus::Finished, "{:?}", run.job.failure);
    assert_eq!(
        stack.count_findings(&connector.connector_id).await as u64,
        total,
        "nothing of the killed chunk is lost"
    );
    assert_eq!(run.job.counts.findings_new, total, "the job counts what is stored, each finding once");
}

#[tokio::test]
async fn a_process_function_killed_while_it_stores_a_chunk_is_run_again_and_counts_each_finding_once() {
    // Findings stored that no committed chunk counts yet: a chunk is being written.
    a_sync_with(30, async |stack: &Stack, job_id: &str, connector_id: &str| {
        let stored = stack.count_findings(connector_id).await as u64;
        let job = stack.store.get_job(job_id).await.expect("reads the job");
        let writing = job.is_some_and(|job| stored > job.counts.findings_received);
        if writing { function_processes("process") } else { Vec::new() }
    })
    .await;
}

#[tokio::test]
async fn a_normalize_function_killed_while_it_normalizes_a_chunk_is_run_again_and_the_sync_loses_nothing() {
    // Chunks of 10,000 findings keep normalize at work long enough to be seen.
    a_sync_with(200, async |_: &Stack, _: &str, _: &str| busy_processes("normalize").await).await;
}
