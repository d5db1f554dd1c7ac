//! The cost model: what one sync costs in the user's AWS account, read before deploying.
//!
//! It counts what the pipeline does for a sync of a given size (Lambda invocations and
//! their duration, Step Functions state transitions, DynamoDB reads and writes, S3
//! requests and bytes) from the data's shape, the deployment's settings and figures
//! measured on the real code (`cargo bench -p vulnflow-shared` prints them), then prices
//! each line with AWS list prices, which a user can replace with their own.

use serde::Serialize;

use crate::store::dynamodb::FINDINGS_PER_PART;
use crate::usage::Prices;

/// The sync to price: the data's shape and the deployment's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Workload {
    /// Findings the sync's exports return (for an incremental sync: those that changed).
    pub findings: u64,
    pub findings_per_asset: f64,
    /// The template's `ExportAssetsPerChunk`.
    pub assets_per_chunk: u32,
    /// The template's `MemorySize` of the functions.
    pub lambda_memory_mb: u32,
    /// How often the state machine polls an export before it is ready.
    pub polls_per_export: u32,
    /// How fast the scanner serves a chunk.
    pub scanner_megabytes_per_second: f64,
    /// One DynamoDB batch call's round trip, from the function.
    pub dynamodb_batch_latency_ms: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            findings: 1_000_000,
            findings_per_asset: 20.0,
            assets_per_chunk: 500,
            lambda_memory_mb: 512,
            polls_per_export: 10,
            scanner_megabytes_per_second: 10.0,
            dynamodb_batch_latency_ms: 15.0,
        }
    }
}

/// Figures measured on the pipeline's own code with realistic Tenable records.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measured {
    /// A vulns export record as the scanner sends it.
    pub raw_bytes_per_finding: f64,
    /// The same record normalized (NDJSON line in S3).
    pub normalized_bytes_per_finding: f64,
    /// A stored finding's share of the DynamoDB item it is packed in (DynamoDB's size
    /// rules; findings are kept about 16 to an item, deflated).
    pub finding_stored_bytes: f64,
    pub asset_item_bytes: f64,
    /// CPU time on one vCPU to normalize one record.
    pub normalize_micros_per_finding: f64,
    /// CPU time on one vCPU to merge one record into the stored state (reads and
    /// writes excluded: they are priced as DynamoDB calls and their latency).
    pub process_micros_per_finding: f64,
    /// A chunk's peak memory in the functions, per byte of the raw chunk: the raw JSON,
    /// its parsed form and the normalized records are held at once.
    pub peak_memory_per_raw_byte: f64,
}

impl Default for Measured {
    /// What `cargo bench -p vulnflow-shared` measured for the simulator's records (see
    /// README "Cost per million findings"); a bench run prints current figures.
    fn default() -> Self {
        Measured {
            raw_bytes_per_finding: 1_233.0,
            normalized_bytes_per_finding: 1_008.0,
            finding_stored_bytes: 226.0,
            asset_item_bytes: 349.0,
            normalize_micros_per_finding: 15.8,
            process_micros_per_finding: 21.7,
            peak_memory_per_raw_byte: 5.7,
        }
    }
}

/// One priced line of the estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLine {
    pub service: &'static str,
    pub item: &'static str,
    pub quantity: f64,
    pub unit: &'static str,
    pub usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub workload: Workload,
    pub assets: u64,
    pub vulns_chunks: u64,
    pub assets_chunks: u64,
    pub lines: Vec<CostLine>,
    /// What one sync costs.
    pub sync_usd: f64,
    /// The same, per million findings.
    pub usd_per_million_findings: f64,
    /// Keeping one sync's raw and normalized chunks (S3) and the stored state
    /// (DynamoDB) for a month: storage is billed monthly, not per sync.
    pub storage_usd_per_month: f64,
    /// What normalizing one vulns chunk needs, against the functions' memory: above it,
    /// lower `ExportAssetsPerChunk` or raise `MemorySize`.
    pub chunk_peak_memory_mb: f64,
}

impl Estimate {
    pub fn chunk_fits_in_memory(&self) -> bool {
        // The runtime and the SDK clients take their share too.
        self.chunk_peak_memory_mb < 0.8 * f64::from(self.workload.lambda_memory_mb)
    }
}

/// A Lambda function gets one full vCPU at 1,769 MB, and a share of one below.
const FULL_VCPU_MB: f64 = 1_769.0;
/// What one invocation of a light stage (initiate, a poll, finalize) takes.
const CONTROL_INVOCATION_MS: f64 = 100.0;
/// S3 GET or PUT of a chunk, from the function.
const S3_CALL_MS: f64 = 30.0;
/// DynamoDB's batch sizes: 100 keys a BatchGetItem, 25 items a BatchWriteItem.
const BATCH_GET_KEYS: f64 = 100.0;
const BATCH_WRITE_ITEMS: f64 = 25.0;
/// The job and chunk records one chunk writes (stage times, chunk status, and the
/// commit, a transaction of two items that costs double).
const BOOKKEEPING_WRITE_UNITS_PER_CHUNK: f64 = 12.0;
/// State transitions of one chunk's child execution: fetch, normalize, process.
const TRANSITIONS_PER_CHUNK: f64 = 3.0;
/// The parent's transitions around the exports: initiate, connectivity, the first
/// and last export choice, finalize, outcome.
const TRANSITIONS_PER_SYNC: f64 = 8.0;
const GB: f64 = 1_073_741_824.0;

/// Prices one full sync (assets export, then vulns export).
pub fn estimate(workload: Workload, measured: Measured, prices: Prices) -> Estimate {
    let findings = workload.findings as f64;
    let assets = (findings / workload.findings_per_asset.max(1.0)).ceil();
    // An asset's findings are packed in parts of about `FINDINGS_PER_PART`.
    let findings_per_asset = findings / assets.max(1.0);
    let parts_per_asset = (findings_per_asset / FINDINGS_PER_PART as f64).ceil().max(1.0);
    let part_bytes = findings_per_asset / parts_per_asset * measured.finding_stored_bytes;
    let per_chunk = f64::from(workload.assets_per_chunk.max(1));
    let vulns_chunks = (assets / per_chunk).ceil();
    // Tenable's asset export takes at least 100 assets a chunk.
    let assets_chunks = (assets / per_chunk.max(100.0)).ceil();
    let chunks = vulns_chunks + assets_chunks;
    let exports = 2.0;
    let polls = exports * f64::from(workload.polls_per_export);

    // Lambda: three invocations a chunk, and the light ones of the parent workflow.
    let control_invocations = 4.0 + exports + 1.0 + polls;
    let invocations = 3.0 * chunks + control_invocations;
    let cpu_share = (f64::from(workload.lambda_memory_mb) / FULL_VCPU_MB).min(1.0);
    let raw_mb = findings * measured.raw_bytes_per_finding / 1e6;
    let fetch_seconds = raw_mb / workload.scanner_megabytes_per_second + chunks * S3_CALL_MS / 1e3;
    let normalize_seconds =
        findings * measured.normalize_micros_per_finding / 1e6 / cpu_share + 2.0 * chunks * S3_CALL_MS / 1e3;
    // The assets' stored parts and the assets (once for each export) by BatchGetItem; the
    // parts and the assets (once) by BatchWriteItem.
    let parts = assets * parts_per_asset;
    let dynamodb_batches = (parts + 2.0 * assets) / BATCH_GET_KEYS + (parts + assets) / BATCH_WRITE_ITEMS;
    let process_seconds = findings * measured.process_micros_per_finding / 1e6 / cpu_share
        + dynamodb_batches * workload.dynamodb_batch_latency_ms / 1e3
        + chunks * S3_CALL_MS / 1e3;
    // Finalize sweeps the connector's assets, a Query page of up to 1,000 at a time.
    let finalize_seconds = (assets / 1_000.0).ceil() * workload.dynamodb_batch_latency_ms / 1e3;
    let lambda_seconds = fetch_seconds
        + normalize_seconds
        + process_seconds
        + finalize_seconds
        + control_invocations * CONTROL_INVOCATION_MS / 1e3;
    let gb_seconds = lambda_seconds * f64::from(workload.lambda_memory_mb) / 1024.0;

    let transitions = TRANSITIONS_PER_SYNC + exports * 4.0 + polls * 3.0 + chunks * TRANSITIONS_PER_CHUNK;

    // DynamoDB on demand: a write unit per started KB, a read unit per 4 KB (strongly
    // consistent); a query reads whole items, whatever it projects.
    let part_write_units = (part_bytes / 1024.0).ceil();
    let asset_write_units = (measured.asset_item_bytes / 1024.0).ceil();
    let write_units = assets * parts_per_asset * part_write_units
        + assets * asset_write_units
        + chunks * BOOKKEEPING_WRITE_UNITS_PER_CHUNK;
    // Merging a chunk reads each asset's parts and the asset, strongly consistent, by
    // BatchGetItem (a read unit per started 4 KB of an item), once for each export; the
    // sweep reads the assets once more, eventually consistent (half a unit per 4 KB).
    let read_units = assets * parts_per_asset * (part_bytes / 4096.0).ceil()
        + 2.0 * assets * (measured.asset_item_bytes / 4096.0).ceil()
        + (assets * measured.asset_item_bytes / 4096.0 / 2.0).ceil();

    let puts = 2.0 * chunks + exports;
    let gets = 2.0 * chunks + exports;
    let chunk_bytes = findings * (measured.raw_bytes_per_finding + measured.normalized_bytes_per_finding);
    let stored_bytes = findings * measured.finding_stored_bytes + assets * measured.asset_item_bytes;

    let lines = vec![
        line("Lambda", "invocations", invocations, "requests", invocations / 1e6 * prices.lambda_per_million_requests),
        line("Lambda", "compute", gb_seconds, "GB-s", gb_seconds * prices.lambda_per_gb_second),
        line(
            "Step Functions",
            "state transitions",
            transitions,
            "transitions",
            transitions / 1e3 * prices.step_functions_per_thousand_transitions,
        ),
        line(
            "DynamoDB",
            "writes",
            write_units,
            "write units",
            write_units / 1e6 * prices.dynamodb_per_million_write_units,
        ),
        line("DynamoDB", "reads", read_units, "read units", read_units / 1e6 * prices.dynamodb_per_million_read_units),
        line("S3", "PUT requests", puts, "requests", puts / 1e3 * prices.s3_per_thousand_puts),
        line("S3", "GET requests", gets, "requests", gets / 1e3 * prices.s3_per_thousand_gets),
    ];
    let sync_usd: f64 = lines.iter().map(|line| line.usd).sum();
    Estimate {
        workload,
        assets: assets as u64,
        vulns_chunks: vulns_chunks as u64,
        assets_chunks: assets_chunks as u64,
        lines,
        sync_usd,
        usd_per_million_findings: if findings > 0.0 { sync_usd / findings * 1e6 } else { 0.0 },
        storage_usd_per_month: chunk_bytes / GB * prices.s3_per_gb_month
            + stored_bytes / GB * prices.dynamodb_per_gb_month,
        chunk_peak_memory_mb: per_chunk
            * workload.findings_per_asset
            * measured.raw_bytes_per_finding
            * measured.peak_memory_per_raw_byte
            / 1_048_576.0,
    }
}

fn line(service: &'static str, item: &'static str, quantity: f64, unit: &'static str, usd: f64) -> CostLine {
    CostLine { service, item, quantity, unit, usd }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priced(findings: u64) -> Estimate {
        estimate(Workload { findings, ..Default::default() }, Measured::default(), Prices::default())
    }

    fn usd(estimate: &Estimate, service: &str, item: &str) -> f64 {
        estimate
            .lines
            .iter()
            .find(|line| line.service == service && line.item == item)
            .map(|line| line.usd)
            .expect("the line")
    }

    #[test]
    fn a_million_findings_in_chunks_of_500_assets() {
        let estimate = priced(1_000_000);
        assert_eq!((estimate.assets, estimate.vulns_chunks, estimate.assets_chunks), (50_000, 100, 100));
        let transitions = estimate.lines.iter().find(|line| line.item == "state transitions").unwrap().quantity;
        assert_eq!(transitions, 8.0 + 8.0 + 60.0 + 600.0, "parent, exports, 20 polls and 3 per chunk");
        // An asset's 20 findings in two parts of 2.26 KB, three units each; an asset item
        // under 1 KB, written once, by the assets export (its vulns chunk writes it only
        // when it says something new); twelve bookkeeping units a chunk.
        let writes = estimate.lines.iter().find(|line| line.item == "writes").unwrap().quantity;
        assert_eq!(writes, 50_000.0 * 2.0 * 3.0 + 50_000.0 + 200.0 * 12.0);
        assert!((usd(&estimate, "DynamoDB", "writes") - writes / 1e6 * 0.625).abs() < 1e-9);
    }

    #[test]
    fn writing_the_findings_is_most_of_the_cost() {
        let estimate = priced(1_000_000);
        let writes = usd(&estimate, "DynamoDB", "writes");
        assert!(writes > estimate.sync_usd / 2.0, "{estimate:#?}");
        let summed: f64 = estimate.lines.iter().map(|line| line.usd).sum();
        assert!((summed - estimate.sync_usd).abs() < 1e-12);
    }

    #[test]
    fn the_cost_grows_with_the_findings_and_not_faster() {
        let small = priced(100_000);
        let large = priced(1_000_000);
        assert!(large.sync_usd > 9.0 * small.sync_usd && large.sync_usd < 10.5 * small.sync_usd, "{small:?} {large:?}");
        assert!((large.usd_per_million_findings - large.sync_usd).abs() < 1e-9);
    }

    #[test]
    fn more_memory_buys_cpu_but_is_billed_by_the_gigabyte_second() {
        let at = |lambda_memory_mb| {
            let estimate =
                estimate(Workload { lambda_memory_mb, ..Default::default() }, Measured::default(), Prices::default());
            estimate.lines.iter().find(|line| line.item == "compute").unwrap().quantity
        };
        // The CPU-bound part costs the same GB-s at any size below a full vCPU; the
        // waiting (scanner, DynamoDB, S3) costs more with more memory.
        assert!(at(1024) > at(512));
        assert!(at(1024) < 2.0 * at(512));
    }

    #[test]
    fn a_chunk_too_large_for_the_functions_memory_is_flagged() {
        let at = |assets_per_chunk, lambda_memory_mb| {
            estimate(
                Workload { assets_per_chunk, lambda_memory_mb, ..Default::default() },
                Measured::default(),
                Prices::default(),
            )
        };
        let default = at(500, 512);
        assert!(default.chunk_fits_in_memory(), "{}", default.chunk_peak_memory_mb);
        let largest = at(5000, 512);
        assert!((largest.chunk_peak_memory_mb / default.chunk_peak_memory_mb - 10.0).abs() < 1e-9);
        assert!(!largest.chunk_fits_in_memory());
        assert!(at(5000, 2048).chunk_fits_in_memory());
    }

    #[test]
    fn prices_are_the_users_to_set() {
        let free_writes = Prices { dynamodb_per_million_write_units: 0.0, ..Default::default() };
        let estimate = estimate(Workload::default(), Measured::default(), free_writes);
        assert_eq!(usd(&estimate, "DynamoDB", "writes"), 0.0);
        assert!(estimate.sync_usd < priced(1_000_000).sync_usd);
    }
}
