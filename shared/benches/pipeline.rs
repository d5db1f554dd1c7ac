//! What the cost model starts from, measured on the pipeline's own code: the size of a
//! Tenable record raw, normalized and stored, the CPU time to normalize and to merge one,
//! and the memory one chunk needs. Prints the figures, then a sync of a million findings
//! priced with them.
//!
//! `cargo bench -p vulnflow-shared` (a release build; the stages run on the in-memory
//! store, so S3 and DynamoDB time is left to the cost model's latencies).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tenable_simulator::Dataset;
use vulnflow_shared::cost::{self, Measured, Workload};
use vulnflow_shared::job::{SyncRequest, new_job};
use vulnflow_shared::model::{Connector, ConnectorRecord, ExportKind, ScannerKind, SyncMode, SyncScope};
use vulnflow_shared::normalize::each_record;
use vulnflow_shared::pipeline::normalize::normalize;
use vulnflow_shared::pipeline::process::process;
use vulnflow_shared::pipeline::{ChunkTask, JobRef, Services, Settings};
use vulnflow_shared::scanners::tenable::normalize::{TenableNormalizer, normalize_vuln};
use vulnflow_shared::scanners::{CallLimits, ChunkNormalizer};
use vulnflow_shared::store::dynamodb::{item_size, packed_item_sizes};
use vulnflow_shared::store::memory::MemoryStore;
use vulnflow_shared::store::{ConnectorStore, ObjectStore, StoredFinding};
use vulnflow_shared::usage::Prices;

/// A chunk as the template's default cuts it: 500 assets, here with 20 findings each.
const ASSETS: u32 = 500;
const FINDINGS_PER_ASSET: u32 = 20;
const ROUNDS: usize = 5;
const CONNECTOR: &str = "bench";

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    let dataset = Dataset::generate(7, ASSETS, FINDINGS_PER_ASSET, chrono::Utc::now().timestamp());
    let raw = serde_json::to_vec(dataset.vulns()).expect("the chunk encodes");
    let findings = dataset.vulns().len() as f64;
    println!(
        "one vulns chunk: {} assets x {FINDINGS_PER_ASSET} findings, {:.1} MB raw",
        ASSETS,
        raw.len() as f64 / 1e6
    );

    let mut normalize_seconds = Vec::new();
    let mut process_seconds = Vec::new();
    let mut normalize_peak = 0;
    let mut chunk_peak = 0;
    let mut normalized_bytes = 0;
    let mut store = Arc::new(MemoryStore::default());
    for round in 0..ROUNDS {
        // A fresh store each round: every round merges into the same stored state
        // (the first sync: every finding new).
        store = Arc::new(MemoryStore::default());
        let services = services(&store).await;
        let job = job(&services, &format!("job-{round}")).await;
        let raw_key = format!("raw/{CONNECTOR}/{}/vulns-00001.json", job.job_id);
        store.put_object(&raw_key, raw.clone(), "application/json").await.expect("stored");
        let task = ChunkTask {
            job: job.clone(),
            kind: ExportKind::Vulns,
            chunk_key: "vulns-00001".into(),
            object_key: raw_key,
            reference_key: None,
        };

        let (started, baseline) = (Instant::now(), reset_peak_memory());
        let normalized = normalize(&services, task).await.expect("normalizes");
        normalize_seconds.push(started.elapsed().as_secs_f64());
        normalize_peak = normalize_peak.max(peak_memory().saturating_sub(baseline));
        normalized_bytes = store.get_object(&normalized.object_key).await.expect("written").len();

        let task = ChunkTask {
            job,
            kind: ExportKind::Vulns,
            chunk_key: normalized.chunk_key,
            object_key: normalized.object_key,
            reference_key: None,
        };
        let started = Instant::now();
        process(&services, task).await.expect("processes");
        process_seconds.push(started.elapsed().as_secs_f64());
        chunk_peak = chunk_peak.max(peak_memory().saturating_sub(baseline));
    }

    let stored_findings = store.all_findings(CONNECTOR);
    let stored_assets = store.all_assets(CONNECTOR);
    let mean = |sizes: Vec<usize>| sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
    // The items the DynamoDB store packs each asset's findings in, as a first sync writes them.
    let mut by_asset: HashMap<&str, Vec<StoredFinding>> = HashMap::new();
    for stored in &stored_findings {
        by_asset.entry(stored.finding.asset_id.as_str()).or_default().push(stored.clone());
    }
    let part_sizes: Vec<usize> = by_asset
        .iter()
        .flat_map(|(asset_id, findings)| packed_item_sizes(CONNECTOR, asset_id, findings).expect("packs"))
        .collect();
    let packed_bytes: usize = part_sizes.iter().sum();
    let part_write_units: usize = part_sizes.iter().map(|size| size.div_ceil(1024)).sum();
    let measured = Measured {
        raw_bytes_per_finding: raw.len() as f64 / findings,
        normalized_bytes_per_finding: normalized_bytes as f64 / findings,
        finding_stored_bytes: packed_bytes as f64 / stored_findings.len() as f64,
        asset_item_bytes: mean(stored_assets.iter().map(|a| item_size(a).expect("encodes")).collect()),
        normalize_micros_per_finding: best(&normalize_seconds) / findings * 1e6,
        process_micros_per_finding: best(&process_seconds) / findings * 1e6,
        peak_memory_per_raw_byte: chunk_peak.max(normalize_peak) as f64 / raw.len() as f64,
    };
    println!(
        "normalize: best of {ROUNDS} {:.1} ms, {:.0} findings/s, {:.1} MB/s, peak memory +{:.1} MB",
        best(&normalize_seconds) * 1e3,
        findings / best(&normalize_seconds),
        raw.len() as f64 / 1e6 / best(&normalize_seconds),
        normalize_peak as f64 / 1e6
    );
    println!(
        "process:   best of {ROUNDS} {:.1} ms, {:.0} findings/s; the chunk's peak memory (normalize, then process) +{:.1} MB",
        best(&process_seconds) * 1e3,
        findings / best(&process_seconds),
        chunk_peak as f64 / 1e6
    );
    println!(
        "per finding: {:.0} B raw, {:.0} B normalized, {:.0} B as a DynamoDB item of its own (as before), {:.0} B \
         packed in its asset's parts ({} items of {:.0} B on average: {:.3} write units a finding); asset item {:.0} B",
        measured.raw_bytes_per_finding,
        measured.normalized_bytes_per_finding,
        mean(stored_findings.iter().map(|f| item_size(f).expect("encodes")).collect()),
        measured.finding_stored_bytes,
        part_sizes.len(),
        mean(part_sizes.clone()),
        part_write_units as f64 / stored_findings.len() as f64,
        measured.asset_item_bytes
    );
    println!(
        "cpu per finding: normalize {:.2} us, process {:.2} us; peak memory {:.1} bytes per raw byte",
        measured.normalize_micros_per_finding, measured.process_micros_per_finding, measured.peak_memory_per_raw_byte
    );

    println!(
        "\nnormalize alone, best of {ROUNDS}: each record read whole (as before), then with only the fields it reads"
    );
    let real_size: Vec<Value> = dataset.vulns().iter().cloned().map(real_size).collect();
    for (label, records) in [("simulator records", dataset.vulns().to_vec()), ("real-size records", real_size)] {
        let raw = serde_json::to_vec(&records).expect("the chunk encodes");
        // No wanted fields: every record read whole, one at a time.
        let whole = best_of(|| {
            each_record(&raw, &[], normalize_vuln, |_| Ok(())).expect("normalizes");
        });
        let wanted = best_of(|| {
            TenableNormalizer.findings(&raw, None, &mut |_| Ok(())).expect("normalizes");
        });
        println!(
            "  {label}, {:.0} B each: whole {:.0} findings/s ({:.0} MB/s); wanted fields {:.0} findings/s ({:.0} MB/s): {:.1}x",
            raw.len() as f64 / findings,
            findings / whole,
            raw.len() as f64 / 1e6 / whole,
            findings / wanted,
            raw.len() as f64 / 1e6 / wanted,
            whole / wanted
        );
    }

    let estimate = cost::estimate(Workload::default(), measured, Prices::default());
    println!(
        "\na full sync of {} findings ({} assets, {} + {} chunks), priced with these figures:",
        estimate.workload.findings, estimate.assets, estimate.vulns_chunks, estimate.assets_chunks
    );
    for line in &estimate.lines {
        println!(
            "  {:<15} {:<18} {:>14.1} {:<12} ${:>8.4}",
            line.service, line.item, line.quantity, line.unit, line.usd
        );
    }
    println!(
        "  per sync ${:.4}; per million findings ${:.4}; storage ${:.4} a month",
        estimate.sync_usd, estimate.usd_per_million_findings, estimate.storage_usd_per_month
    );
}

/// The shortest of `ROUNDS` runs of `work`, in seconds.
fn best_of(mut work: impl FnMut()) -> f64 {
    let seconds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed().as_secs_f64()
        })
        .collect();
    best(&seconds)
}

/// A simulator record grown to the size of a real Tenable vulns record (about 5 KB) with
/// fields real exports carry and no normalizer reads: the plugin's description and
/// references, CVSS vectors, VPR drivers, the scan, more asset identifiers.
fn real_size(mut record: Value) -> Value {
    let description = "The remote host is affected by multiple vulnerabilities, as referenced in the vendor \
        advisory. An unauthenticated, remote attacker can exploit these to execute arbitrary code, cause a denial \
        of service or disclose sensitive information. Note that Nessus has not tested for these issues but has \
        instead relied only on the application's self-reported version number. ";
    if let Some(plugin) = record.get_mut("plugin").and_then(Value::as_object_mut) {
        plugin.insert("description".into(), json!(description.repeat(4)));
        plugin.insert(
            "see_also".into(),
            json!((0..6).map(|n| format!("https://vendor.example.com/advisory/{n}")).collect::<Vec<_>>()),
        );
        plugin.insert(
            "xrefs".into(),
            json!((0..8).map(|n| json!({ "type": "IAVA", "id": format!("2024-A-{n:04}") })).collect::<Vec<_>>()),
        );
        plugin.insert("cpe".into(), json!(["cpe:/a:openssl:openssl", "cpe:/o:microsoft:windows"]));
        plugin.insert("bid".into(), json!([101, 102, 103, 104]));
        plugin.insert("cvss_vector".into(), json!({ "AccessComplexity": "Low", "AccessVector": "Network", "Authentication": "None required", "Availability-Impact": "Partial", "Confidentiality-Impact": "Partial", "Integrity-Impact": "Partial", "raw": "AV:N/AC:L/Au:N/C:P/I:P/A:P" }));
        plugin.insert("cvss3_vector".into(), json!({ "AccessComplexity": "Low", "AccessVector": "Network", "Availability-Impact": "High", "Confidentiality-Impact": "High", "Integrity-Impact": "High", "raw": "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" }));
        plugin.insert("risk_factor".into(), json!("High"));
        plugin.insert("publication_date".into(), json!("2024-01-09T00:00:00Z"));
        plugin.insert("modification_date".into(), json!("2024-03-12T00:00:00Z"));
        plugin.insert("exploit_available".into(), json!(true));
        if let Some(vpr) = plugin.entry("vpr").or_insert_with(|| json!({})).as_object_mut() {
            vpr.insert("drivers".into(), json!({ "age_of_vuln": { "lower_bound": 366, "upper_bound": 730 }, "exploit_code_maturity": "FUNCTIONAL", "cvss_impact_score_predicted": false, "cvss3_impact_score": 5.9, "threat_intensity_last28": "VERY_LOW", "threat_sources_last28": ["No recorded events"], "product_coverage": "MEDIUM" }));
        }
    }
    if let Some(asset) = record.get_mut("asset").and_then(Value::as_object_mut) {
        asset.insert("mac_address".into(), json!("00:50:56:a1:b2:c3"));
        asset.insert("network_id".into(), json!("00000000-0000-0000-0000-000000000000"));
        asset.insert("agent_uuid".into(), json!("5b0a9f4c-6b9e-4a4c-8d3e-1f2a3b4c5d6e"));
        asset.insert("bios_uuid".into(), json!("4c4c4544-0031-3510-8052-b3c04f4d4e32"));
        asset.insert("tracked".into(), json!(true));
    }
    if let Some(fields) = record.as_object_mut() {
        fields.insert("scan".into(), json!({ "completed_at": "2024-03-12T10:00:00Z", "schedule_uuid": "template-2a3b", "started_at": "2024-03-12T09:00:00Z", "uuid": "7c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f" }));
        fields.insert("indexed".into(), json!("2024-03-12T10:05:00Z"));
    }
    record
}

fn best(seconds: &[f64]) -> f64 {
    seconds.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Starts a new peak of the process's resident memory (Linux: writing 5 to
/// `/proc/self/clear_refs` resets VmHWM), and answers the memory resident now.
fn reset_peak_memory() -> u64 {
    // Elsewhere the peak is not reset: the figures then overstate, never understate.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kb("VmRSS:") * 1024
}

/// The process's peak resident memory since the last reset, in bytes (0 off Linux).
fn peak_memory() -> u64 {
    status_kb("VmHWM:") * 1024
}

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn services(store: &Arc<MemoryStore>) -> Services {
    let connector = Connector {
        connector_id: CONNECTOR.into(),
        name: "bench".into(),
        kind: ScannerKind::Tenable,
        base_url: "http://127.0.0.1:9".into(),
        secret_id: "bench".into(),
        default_mode: SyncMode::Full,
        sync_cursor: None,
    };
    store.create_connector(&ConnectorRecord::from(connector)).await.expect("stored");
    let settings = Settings {
        deployment: "bench".into(),
        assets_per_chunk: ASSETS,
        export_timeout: chrono::Duration::minutes(5),
        export_poll_seconds: 1,
        scanner_calls: CallLimits::for_memory(std::time::Duration::from_secs(5), 512),
        sweep_page_assets: 1000,
    };
    Services::in_memory(store.clone(), settings)
}

async fn job(services: &Services, job_id: &str) -> JobRef {
    let record = services.connectors.connector_record(CONNECTOR).await.expect("read").expect("the connector");
    let request = SyncRequest {
        connector_id: CONNECTOR.into(),
        mode: None,
        trigger: None,
        scope: SyncScope::default(),
        resumed_from: None,
    };
    let job = new_job(job_id, &record, request, "bench", chrono::Utc::now()).expect("a job");
    services.jobs.create_job(&job).await.expect("stored");
    JobRef { job_id: job.job_id, connector_id: job.connector_id, scanner: ScannerKind::Tenable, window_ends_at: None }
}
