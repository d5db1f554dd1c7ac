//! The scale run: a full sync of a large simulated tenant through the deployed stack,
//! an unchanged re-sync, then a re-sync after 1 % of findings are new, 1 % fixed, 1 %
//! gone and some assets vanished. Every count and the stored findings are checked
//! against the simulator's truth; the figures (wall time, findings/s, each stage's
//! time, items written, each function's peak memory) are what the bench prints.
//! `infra/local/scale.sh` runs it at a million findings, the e2e tests at a few thousand.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::json;
use tenable_simulator::{ChangeReport, Changes, Faults, FindingKey, RunningSimulator, SimulatorConfig};
use vulnflow_shared::model::{Connector, Finding, JobStatus, RecordCounts, ScannerKind, Stage, SyncJob};
use vulnflow_shared::store::JobStore;
use vulnflow_shared::usage::Prices;

use crate::{ACCESS_KEY, SECRET_KEY, Stack, simulator};

/// The function binaries whose memory the run watches.
const FUNCTIONS: [&str; 6] = ["initiate", "connectivity-test", "fetch-chunk", "normalize", "process", "finalize"];

#[derive(Debug, Clone)]
pub struct ScaleConfig {
    pub findings: u32,
    pub findings_per_asset: u32,
    /// What the simulated scanner does wrong meanwhile.
    pub faults: Faults,
}

/// One sync of the run, as measured.
#[derive(Debug, Clone)]
pub struct SyncFigures {
    pub label: &'static str,
    pub job: SyncJob,
    pub wall: Duration,
    /// Findings items this sync wrote (their `last_job_id` is its job).
    pub findings_written: usize,
    /// Step Functions state transitions: the parent execution's, counted from its
    /// history, and three a chunk (its child execution's three tasks).
    pub state_transitions: u64,
}

impl SyncFigures {
    /// What the sync cost at list prices: its measured usage and its transitions.
    pub fn cost_usd(&self) -> f64 {
        let prices = Prices::default();
        self.job.usage.cost(&prices).total_usd
            + self.state_transitions as f64 / 1e3 * prices.step_functions_per_thousand_transitions
    }

    pub fn findings_per_second(&self) -> f64 {
        self.job.counts.findings_received as f64 / self.wall.as_secs_f64().max(0.001)
    }

    /// Each stage's span: from its first start to its last end, over all chunks.
    pub fn stage_seconds(&self) -> Vec<(Stage, f64)> {
        self.job
            .stages
            .iter()
            .filter_map(|(stage, run)| {
                let ended = run.ended_at?;
                Some((*stage, (ended - run.started_at).num_milliseconds() as f64 / 1000.0))
            })
            .collect()
    }
}

#[derive(Debug, Default)]
pub struct ScaleReport {
    pub syncs: Vec<SyncFigures>,
    /// The largest resident set each function process reached, in KiB.
    pub peak_rss_kib: BTreeMap<String, u64>,
    /// Every equality that did not hold, in words.
    pub failures: Vec<String>,
}

/// A finding as stored, read back for the checks.
struct StoredState {
    active: bool,
    state: String,
    last_job_id: String,
}

pub async fn run(stack: &Stack, config: ScaleConfig, progress: impl Fn(&str)) -> ScaleReport {
    let assets = (config.findings / config.findings_per_asset).max(1);
    let sim = simulator(SimulatorConfig {
        assets,
        findings_per_asset: config.findings_per_asset,
        status_polls_before_finished: 1,
        faults: config.faults,
        ..Default::default()
    })
    .await;
    let connector = stack.connector_for(&sim, ACCESS_KEY, SECRET_KEY).await;
    let mut report = ScaleReport::default();
    let total = sim.dataset().vulns().len() as u64;
    progress(&format!("simulated tenant: {assets} assets, {total} findings"));

    let (first, stored) = sync(stack, &connector, "first full sync", &mut report, &progress).await;
    let assets = u64::from(assets);
    // The assets export returns every asset each time; its chunks store them first.
    let expected = RecordCounts {
        findings_received: total,
        findings_new: total,
        assets_received: assets,
        assets_new: assets,
        ..RecordCounts::default()
    };
    report.check("first sync counts", &expected, &first.job.counts);
    report.check_stored(&stored, &sim, &first, None);
    report.check_eq("assets the first sync wrote", assets as usize, assets_written_by(stack, &connector, &first).await);

    let (second, _) = sync(stack, &connector, "unchanged re-sync", &mut report, &progress).await;
    let expected = RecordCounts {
        findings_received: total,
        findings_unchanged: total,
        assets_received: assets,
        ..RecordCounts::default()
    };
    report.check("unchanged re-sync counts", &expected, &second.job.counts);
    report.check_eq("findings the unchanged re-sync wrote", 0, second.findings_written);
    // Nor the assets: the sweep learns which it saw from the chunks' records.
    report.check_eq("assets the unchanged re-sync wrote", 0, assets_written_by(stack, &connector, &second).await);

    let one_percent = (total / 100).max(1) as usize;
    let changes = sim.apply_changes(Changes {
        new_findings: one_percent,
        fix: one_percent,
        gone: one_percent,
        vanished_assets: (assets / 200).max(1) as usize,
        ..Changes::default()
    });
    let effects = Effects::of(&changes);
    progress(&format!(
        "the scanner changed: {} new, {} fixed, {} gone ({} of them on {} vanished assets)",
        effects.new.len(),
        effects.fixed.len(),
        effects.inactivated.len(),
        effects.inactivated.len().saturating_sub(one_percent),
        changes.vanished_assets.len()
    ));
    let (third, stored) = sync(stack, &connector, "re-sync after changes", &mut report, &progress).await;
    let received = sim.dataset().vulns().len() as u64;
    let changed = (effects.new.len() + effects.fixed.len()) as u64;
    let expected = RecordCounts {
        findings_received: received,
        findings_new: effects.new.len() as u64,
        findings_fixed: effects.fixed.len() as u64,
        findings_unchanged: received - changed,
        findings_inactivated: effects.inactivated.len() as u64,
        assets_received: assets,
        ..RecordCounts::default()
    };
    report.check("re-sync after changes counts", &expected, &third.job.counts);
    report.check_eq(
        "findings the re-sync after changes wrote",
        effects.new.len() + effects.fixed.len() + effects.inactivated.len(),
        third.findings_written,
    );
    report.check_stored(&stored, &sim, &third, Some(&effects));
    report
}

/// What a batch of changes must do to the stored findings. A finding both added and
/// dropped was never stored; one both fixed and dropped is only gone.
struct Effects {
    new: HashSet<String>,
    fixed: HashSet<String>,
    inactivated: HashSet<String>,
}

impl Effects {
    fn of(report: &ChangeReport) -> Effects {
        let ids = |keys: &[FindingKey]| keys.iter().map(finding_id).collect::<HashSet<_>>();
        let (added, fixed, gone) = (ids(&report.added), ids(&report.fixed), ids(&report.gone));
        Effects {
            new: added.difference(&gone).cloned().collect(),
            fixed: fixed.difference(&gone).cloned().collect(),
            inactivated: gone.difference(&added).cloned().collect(),
        }
    }
}

pub fn finding_id(key: &FindingKey) -> String {
    Finding::key(
        ScannerKind::Tenable,
        &key.asset_uuid,
        &key.plugin_id.to_string(),
        key.port,
        &key.protocol.to_lowercase(),
    )
}

impl ScaleReport {
    fn check(&mut self, what: &str, expected: &RecordCounts, actual: &RecordCounts) {
        if expected != actual {
            self.failures.push(format!("{what}: expected {expected:?}, got {actual:?}"));
        }
    }

    fn check_eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, expected: T, actual: T) {
        if expected != actual {
            self.failures.push(format!("{what}: expected {expected:?}, got {actual:?}"));
        }
    }

    /// The stored findings equal the simulator's: one per finding it exports, active,
    /// in its state; and those that went (with `effects`) kept, inactive.
    fn check_stored(
        &mut self,
        stored: &HashMap<String, StoredState>,
        sim: &RunningSimulator,
        run: &SyncFigures,
        effects: Option<&Effects>,
    ) {
        let dataset = sim.dataset();
        let truth: HashMap<String, &str> = dataset
            .vulns()
            .iter()
            .filter_map(|record| Some((finding_id(&FindingKey::of_record(record)?), record["state"].as_str()?)))
            .collect();
        let gone = effects.map(|effects| effects.inactivated.len()).unwrap_or_default();
        self.check_eq(&format!("findings stored after the {}", run.label), truth.len() + gone, stored.len());
        let mut wrong = Vec::new();
        for (id, state) in &truth {
            match stored.get(id) {
                Some(finding) if finding.active && finding.state.eq_ignore_ascii_case(state) => {}
                Some(finding) => {
                    wrong.push(format!("{id}: stored {} active={}, scanner {state}", finding.state, finding.active))
                }
                None => wrong.push(format!("{id}: not stored")),
            }
        }
        for id in effects.iter().flat_map(|effects| &effects.inactivated) {
            match stored.get(id) {
                Some(finding) if !finding.active && finding.last_job_id == run.job.job_id => {}
                _ => wrong.push(format!("{id}: gone from the scanner, but not inactivated by {}", run.job.job_id)),
            }
        }
        if !wrong.is_empty() {
            let sample: Vec<&String> = wrong.iter().take(5).collect();
            self.failures.push(format!(
                "after the {}: {} stored findings differ, e.g. {sample:?}",
                run.label,
                wrong.len()
            ));
        }
    }
}

/// Runs one full sync to its end, watching the functions' memory; its figures, and the
/// stored findings as it left them (read once, for the figures and the checks).
async fn sync(
    stack: &Stack,
    connector: &Connector,
    label: &'static str,
    report: &mut ScaleReport,
    progress: &impl Fn(&str),
) -> (SyncFigures, HashMap<String, StoredState>) {
    let started_at = Instant::now();
    let started = stack.start_sync(connector, json!({ "mode": "full" })).await;
    let mut last_line = String::new();
    loop {
        sample_peak_rss(&mut report.peak_rss_kib);
        let execution =
            stack.sfn.describe_execution().execution_arn(&started.execution_arn).send().await.expect("describes");
        if let Some(job) = stack.store.get_job(&started.job_id).await.expect("reads the job") {
            let line = format!(
                "{label}: {} {} chunks {}/{}",
                job.status,
                job.current_stage.map(|stage| stage.to_string()).unwrap_or_default(),
                job.chunks.processed,
                job.chunks.total
            );
            if line != last_line {
                progress(&format!("{line} ({:.0} s)", started_at.elapsed().as_secs_f64()));
                last_line = line;
            }
        }
        if execution.status != ExecutionStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let wall = started_at.elapsed();
    let job = stack.store.get_job(&started.job_id).await.expect("reads the job").expect("the job exists");
    if job.status != JobStatus::Finished {
        report.failures.push(format!("{label} ended {}: {:?}", job.status, job.failure));
    }
    let stored = stored_findings(stack, &connector.connector_id).await;
    let findings_written = stored.values().filter(|finding| finding.last_job_id == job.job_id).count();
    let parent_transitions = stack
        .execution_events(&started.execution_arn)
        .await
        .iter()
        .filter(|event| event.state_entered_event_details().is_some())
        .count() as u64;
    let state_transitions = parent_transitions + 3 * (job.chunks.processed + job.chunks.failed);
    let figures = SyncFigures { label, job, wall, findings_written, state_transitions };
    report.syncs.push(figures.clone());
    (figures, stored)
}

/// The connector's assets whose last write was the sync's.
async fn assets_written_by(stack: &Stack, connector: &Connector, sync: &SyncFigures) -> usize {
    let job_id = AttributeValue::S(sync.job.job_id.clone());
    stack.count_items("AssetsTable", &connector.connector_id, Some(("last_job_id = :value", job_id))).await
}

/// Every stored finding of the connector, by id: only what the checks read, so that a
/// million of them fit beside the simulator's dataset.
async fn stored_findings(stack: &Stack, connector_id: &str) -> HashMap<String, StoredState> {
    let mut stored = HashMap::new();
    stack
        .each_finding(connector_id, |finding| {
            let state = StoredState {
                active: finding.active,
                state: format!("{:?}", finding.finding.state),
                last_job_id: finding.last_job_id,
            };
            stored.insert(finding.finding.finding_id, state);
        })
        .await;
    stored
}

/// Keeps the highest `VmHWM` seen of each function process on this machine (the local
/// executor runs them as `target/<profile>/<name>`).
fn sample_peak_rss(peaks: &mut BTreeMap<String, u64>) {
    let Ok(processes) = std::fs::read_dir("/proc") else { return };
    for process in processes.flatten() {
        let path = process.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else { continue };
        let program = String::from_utf8_lossy(cmdline.split(|byte| *byte == 0).next().unwrap_or_default()).to_string();
        let Some(name) = FUNCTIONS.iter().find(|name| {
            program.ends_with(&format!("/target/debug/{name}")) || program.ends_with(&format!("/target/release/{name}"))
        }) else {
            continue;
        };
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let peak = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        if let Some(peak) = peak {
            let kept = peaks.entry((*name).to_string()).or_default();
            *kept = (*kept).max(peak);
        }
    }
}
