//! The demo: a full sync of the bundled Tenable simulator through the state machine on
//! the local stack, with live progress, then the job's stages, counts and the
//! connector's sync history. `infra/local/demo.sh` starts the stack and runs it.

use std::fmt::Write as _;

use tenable_simulator::SimulatorConfig;
use vulnflow_e2e::{ACCESS_KEY, SECRET_KEY, Stack, simulator};
use vulnflow_shared::model::{Stage, SyncJob};

#[tokio::main]
async fn main() {
    let assets = env_number("DEMO_ASSETS", 400);
    let findings_per_asset = env_number("DEMO_FINDINGS_PER_ASSET", 12);
    let stack = Stack::local().await;
    let sim = simulator(SimulatorConfig { assets, findings_per_asset, status_polls_before_finished: 3, ..Default::default() }).await;
    println!("Tenable simulator at {}: {assets} assets, {} findings", sim.base_url, sim.dataset().vulns().len());
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;
    println!("connector {} (keys in Secrets Manager as {})", connector.connector_id, connector.secret_id);

    let mut history = Vec::new();
    for round in 1..=2 {
        let started = stack.start_sync(&connector, serde_json::json!({})).await;
        println!("\nsync {round}: job {} (execution {})", started.job_id, started.execution_arn);
        let mut last_line = String::new();
        let run = stack
            .wait_for(started, |job| {
                let line = progress_line(job);
                if line != last_line {
                    println!("  {line}");
                    last_line = line;
                }
            })
            .await;
        println!("{}", stage_table(&run.job));
        println!("execution: {:?}; job: {}", run.status, run.job.status);
        if let Some(failure) = &run.job.failure {
            println!("failed at {}: {}\n  what to do: {}", failure.stage, failure.message, failure.action);
        }
        history.push(run.job);
    }

    println!("\nsync history of {} (newest first)", connector.connector_id);
    println!("{:<38} {:<9} {:<10} {:>9} {:>8} {:>10} {:>10}", "job", "trigger", "status", "duration", "chunks", "new", "unchanged");
    for job in history.iter().rev() {
        let duration = job.ended_at.map(|end| format!("{:.1}s", (end - job.started_at).num_milliseconds() as f64 / 1000.0));
        let trigger = match &job.trigger {
            vulnflow_shared::model::Trigger::Manual { .. } => "manual",
            vulnflow_shared::model::Trigger::Scheduled => "scheduled",
        };
        println!(
            "{:<38} {:<9} {:<10} {:>9} {:>8} {:>10} {:>10}",
            job.job_id,
            trigger,
            job.status.as_str(),
            duration.unwrap_or_default(),
            format!("{}/{}", job.chunks.processed, job.chunks.total),
            job.counts.findings_new,
            job.counts.findings_unchanged
        );
    }
    println!("findings stored for the connector: {}", stack.count_findings(&connector.connector_id).await);
}

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn progress_line(job: &SyncJob) -> String {
    let stage = job.current_stage.map_or("-".to_string(), |s| s.to_string());
    let chunks = job.chunks;
    let percent = (chunks.processed * 100).checked_div(chunks.total).unwrap_or(0);
    format!("{:<10} stage {:<16} chunks {}/{} ({percent}%)", job.status.as_str(), stage, chunks.processed, chunks.total)
}

fn stage_table(job: &SyncJob) -> String {
    let mut table = format!("  {:<18} {:<10} {:>10}\n", "stage", "outcome", "duration");
    for stage in Stage::ALL {
        let (outcome, duration) = match job.stages.get(&stage) {
            Some(run) => (format!("{:?}", run.outcome), run.duration_ms().map(|ms| format!("{ms} ms")).unwrap_or_default()),
            None => ("not run".to_string(), String::new()),
        };
        let _ = writeln!(table, "  {:<18} {:<10} {:>10}", stage.as_str(), outcome, duration);
    }
    let c = job.counts;
    let _ = write!(
        table,
        "  findings: {} received, {} new, {} updated, {} unchanged, {} reopened, {} fixed; assets: {} new",
        c.findings_received, c.findings_new, c.findings_updated, c.findings_unchanged, c.findings_reopened, c.findings_fixed, c.assets_new
    );
    table
}
