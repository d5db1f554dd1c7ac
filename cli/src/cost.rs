//! `vulnflow cost`: what a sync of a given size costs in AWS, before deploying. The
//! model is `vulnflow_shared::cost`; its measured figures come from `cargo bench`.

use clap::Args;
use vulnflow_shared::cost::{self, Measured, Workload};
use vulnflow_shared::usage::Prices;

use crate::error::CliError;
use crate::output::{self, Table};

#[derive(Args)]
pub struct CostArgs {
    /// Findings one sync's exports return (for an incremental sync, those that changed).
    #[arg(long, default_value_t = 1_000_000)]
    findings: u64,
    #[arg(long, default_value_t = 20.0)]
    findings_per_asset: f64,
    /// The template's ExportAssetsPerChunk.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(50..=5000))]
    assets_per_chunk: u32,
    /// The functions' MemorySize in the template.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(128..=10240))]
    memory_mb: u32,
    /// Syncs a month, for the monthly total (a daily sync: 30).
    #[arg(long, default_value_t = 30)]
    syncs_per_month: u32,
    /// Your DynamoDB price per million write units, if not us-east-1 on demand.
    #[arg(long)]
    dynamodb_write_price: Option<f64>,
    /// The estimate as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &CostArgs) -> Result<(), CliError> {
    if args.findings_per_asset.is_nan() || args.findings_per_asset < 1.0 {
        return Err(CliError::Usage("--findings-per-asset must be 1 or more".into()));
    }
    let workload = Workload {
        findings: args.findings,
        findings_per_asset: args.findings_per_asset,
        assets_per_chunk: args.assets_per_chunk,
        lambda_memory_mb: args.memory_mb,
        ..Workload::default()
    };
    let defaults = Prices::default();
    let prices = Prices {
        dynamodb_per_million_write_units: args
            .dynamodb_write_price
            .unwrap_or(defaults.dynamodb_per_million_write_units),
        ..defaults
    };
    let estimate = cost::estimate(workload, Measured::default(), prices);
    let monthly = estimate.sync_usd * f64::from(args.syncs_per_month) + estimate.storage_usd_per_month;
    let memory = if estimate.chunk_fits_in_memory() {
        format!("a chunk needs about {:.0} MB of the functions' {} MB", estimate.chunk_peak_memory_mb, args.memory_mb)
    } else {
        format!(
            "warning: a chunk needs about {:.0} MB, more than the functions' {} MB allow: \
             lower ExportAssetsPerChunk or raise MemorySize",
            estimate.chunk_peak_memory_mb, args.memory_mb
        )
    };
    if args.json {
        let mut value = serde_json::to_value(&estimate).map_err(|e| CliError::Usage(e.to_string()))?;
        value["prices"] = serde_json::to_value(prices).map_err(|e| CliError::Usage(e.to_string()))?;
        value["usd_per_month"] = serde_json::json!(monthly);
        value["chunk_fits_in_memory"] = serde_json::json!(estimate.chunk_fits_in_memory());
        return output::print_json(&value);
    }
    let mut table = Table::new(&["SERVICE", "ITEM", "QUANTITY", "UNIT", "USD"]);
    for line in &estimate.lines {
        table.row(vec![
            line.service.to_string(),
            line.item.to_string(),
            format!("{:.0}", line.quantity),
            line.unit.to_string(),
            format!("{:.4}", line.usd),
        ]);
    }
    output::print(&format!(
        "a sync of {} findings on {} assets: {} vulns and {} assets chunks\n\n{}\n\
         per sync:             ${:.4}\n\
         per million findings: ${:.4}\n\
         storage, a month:     ${:.4} (chunks kept in S3, stored state in DynamoDB)\n\
         a month, {} syncs:    ${:.2}\n{memory}\n\n\
         AWS list prices, us-east-1 (Lambda arm64, DynamoDB on demand); sizes and CPU time\n\
         measured on the pipeline's code (cargo bench -p vulnflow-shared). Free tiers not deducted.\n",
        estimate.workload.findings,
        estimate.assets,
        estimate.vulns_chunks,
        estimate.assets_chunks,
        table.render(),
        estimate.sync_usd,
        estimate.usd_per_million_findings,
        estimate.storage_usd_per_month,
        args.syncs_per_month,
        monthly,
    ))
}
