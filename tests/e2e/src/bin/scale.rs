//! The scale bench: `infra/local/scale.sh [FINDINGS]` (default 1,000,000) runs a full
//! sync, an unchanged re-sync and a re-sync after changes on the local stack, checks
//! every count and the stored findings against the simulator, and prints the figures.

use std::process::ExitCode;

use tenable_simulator::Faults;
use vulnflow_e2e::Stack;
use vulnflow_e2e::scale::{self, ScaleConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let findings = std::env::args().nth(1).and_then(|n| n.replace(['_', ','], "").parse().ok()).unwrap_or(1_000_000);
    let findings_per_asset = std::env::var("SCALE_FINDINGS_PER_ASSET").ok().and_then(|n| n.parse().ok()).unwrap_or(20);
    let stack = Stack::local().await;
    let config = ScaleConfig { findings, findings_per_asset, faults: Faults::default() };
    let report = scale::run(&stack, config, |line| println!("[scale] {line}")).await;

    println!(
        "\n| sync | wall | findings/s | findings written | read units | write units | invocations | transitions | cost | stages (s) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for sync in &report.syncs {
        let stages: Vec<String> =
            sync.stage_seconds().iter().map(|(stage, seconds)| format!("{stage} {seconds:.1}")).collect();
        let usage = &sync.job.usage;
        println!(
            "| {} | {:.1} s | {:.0} | {} | {:.0} | {:.0} | {} | {} | ${:.4} | {} |",
            sync.label,
            sync.wall.as_secs_f64(),
            sync.findings_per_second(),
            sync.findings_written,
            usage.read_units(),
            usage.write_units(),
            usage.lambda_invocations,
            sync.state_transitions,
            sync.cost_usd(),
            stages.join(", ")
        );
    }
    println!("\npeak memory of each function process:");
    for (function, kib) in &report.peak_rss_kib {
        println!("  {function}: {:.0} MB", *kib as f64 / 1024.0);
    }
    if report.failures.is_empty() {
        println!("\nevery count and every stored finding equals the simulator's truth");
        ExitCode::SUCCESS
    } else {
        for failure in &report.failures {
            eprintln!("MISMATCH {failure}");
        }
        ExitCode::FAILURE
    }
}
